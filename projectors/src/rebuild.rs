//! Rebuilding a projection from the log beside the live one.
//!
//! The rebuild writes into copies of the projection's tables in a schema of its own,
//! `rebuild_<projection>`, with its own `projection_offsets` and `quarantine`, through the
//! very code the live projector runs (only the search path differs). The live tables keep
//! serving meanwhile. Stopped, a rebuild resumes from its stored offsets.
//!
//! The rebuild's tables are unlogged while it fills them: no write-ahead log for millions of
//! row versions that only the last one of matters. A crash of PostgreSQL empties unlogged
//! tables, offsets and rows together, and the rebuild then starts again from the log's
//! start. Before the switchover they are made logged, in one transaction (PostgreSQL writes
//! each table to the log once).
//!
//! The switchover is one transaction: it locks the live projection's offsets (the live
//! projector waits), checks that the rebuild has applied at least as much of every partition,
//! swaps the tables, hands the rebuild's offsets to the live projector and bumps the
//! generation so that no cached answer outlives the old tables. If the live projector got
//! ahead meanwhile, nothing changes and the caller catches up again.

use std::collections::BTreeMap;
use std::ops::ControlFlow;
use std::time::{Duration, Instant};

use rdkafka::message::OwnedMessage;
use sqlx::postgres::PgPoolOptions;
use sqlx::{Executor, PgConnection, PgPool};
use tidemark_events::Topics;
use tidemark_schemas::EventCodec;

use crate::apply::{self, ensure_standing};
use crate::{Projection, ProjectionError};

const BROKER_TIMEOUT: Duration = Duration::from_secs(10);
/// Records applied per transaction by default. The larger the batch, the more of an
/// aggregate's events fold into one row version: at a million events, 10,000 gave 21,000
/// events/s, 100,000 gave 36,000 and 200,000 gave 38,000. The memory grows with it, by
/// about 3 KB a record (470 MB at 100,000).
/// (Reading the next batch while one is written gained nothing: on 2 cores, the reading
/// took its CPU from the writing.)
const BATCH: usize = 100_000;

/// A rebuild in progress: its schema and a pool whose connections write there.
pub struct Rebuild {
    pub schema: String,
    /// Records applied per transaction.
    pub batch_size: usize,
    shadow: PgPool,
    live: PgPool,
}

/// What a catch-up applied, and where its time went.
#[derive(Debug, Default, Clone, Copy)]
pub struct CatchUp {
    pub records: u64,
    /// Fetching from the broker and decoding.
    pub reading: Duration,
    /// Folding and writing to PostgreSQL, commits included.
    pub writing: Duration,
}

/// Where the rebuild stands against the log when it starts.
pub struct Start {
    /// The rebuild went on from an earlier, interrupted one.
    pub resumed: bool,
    /// Records between the rebuild's offsets and the log end.
    pub remaining: i64,
}

impl Rebuild {
    /// Prepares the rebuild's tables, or finds those of an interrupted rebuild (unless
    /// `restart`, which drops them first).
    pub async fn prepare<P: Projection>(live: &PgPool, brokers: &str, topics: &Topics, restart: bool) -> Result<(Rebuild, Start), ProjectionError> {
        let schema = format!("rebuild_{}", P::NAME);
        let mut tx = live.begin().await?;
        if restart {
            tx.execute(format!("DROP SCHEMA IF EXISTS \"{schema}\" CASCADE").as_str()).await?;
        }
        let resumed = sqlx::query_scalar!(r#"SELECT EXISTS (SELECT FROM pg_namespace WHERE nspname = $1) AS "resumed!""#, schema).fetch_one(&mut *tx).await?;
        if !resumed {
            tx.execute(format!("CREATE SCHEMA \"{schema}\"").as_str()).await?;
            for table in P::TABLES.iter().chain(&["projection_offsets", "quarantine"]) {
                copy_table(&mut tx, &schema, table).await?;
            }
        }
        tx.commit().await?;
        let options = (*live.connect_options()).clone().options([("search_path", schema.as_str())]);
        let shadow = PgPoolOptions::new().max_connections(2).connect_with(options).await?;
        let rebuild = Rebuild { schema, batch_size: BATCH, shadow, live: live.clone() };
        let ends = log_ends(brokers, &P::topics(topics))?;
        let mut db = rebuild.shadow.acquire().await?;
        for (topic, partition) in ends.keys() {
            ensure_standing(&mut db, P::NAME, topic, *partition).await?;
        }
        let applied = offsets(&mut db, "projection_offsets", P::NAME).await?;
        let remaining = ends.iter().map(|(key, end)| (end - applied.get(key).copied().unwrap_or(0)).max(0)).sum();
        Ok((rebuild, Start { resumed, remaining }))
    }

    /// Applies the log from the rebuild's offsets up to at least the log end as it is now,
    /// calling `progress` with the number of records of each applied batch; it can stop the
    /// rebuild there (to be resumed later). Returns what it applied and where the time went.
    pub async fn catch_up<P: Projection>(
        &self,
        brokers: &str,
        codec: &EventCodec,
        topics: &Topics,
        mut progress: impl FnMut(usize) -> ControlFlow<()>,
    ) -> Result<CatchUp, ProjectionError> {
        let ends = log_ends(brokers, &P::topics(topics))?;
        let from = offsets(&mut *self.shadow.acquire().await?, "projection_offsets", P::NAME).await?;
        let mut log = tidemark_log::ToEnd::new(tidemark_log::reader(brokers, &format!("tidemark-rebuild-{}", P::NAME)), &from, ends, BROKER_TIMEOUT)?;
        let mut done = CatchUp::default();
        loop {
            let started = Instant::now();
            let Some(first) = log.next().await? else { break };
            let mut batch: Vec<OwnedMessage> = vec![first];
            while batch.len() < self.batch_size {
                match log.next_within(Duration::from_millis(20)).await? {
                    Some(message) => batch.push(message),
                    None => break,
                }
            }
            let count = batch.len();
            let received = apply::decode(codec, batch).await?;
            let decoded = Instant::now();
            let mut tx = self.shadow.begin().await?;
            apply::apply_batch::<P>(&mut tx, &received).await?;
            // Every record delivered is in this batch or an earlier one: the positions move
            // the offsets past the transaction markers between and after them.
            apply::advance(&mut tx, P::NAME, &log.positions()?).await?;
            tx.commit().await?;
            done.records += count as u64;
            done.reading += decoded - started;
            done.writing += decoded.elapsed();
            if progress(count).is_break() {
                return Ok(done);
            }
        }
        // The last records may be followed by markers alone.
        apply::advance(&mut *self.shadow.acquire().await?, P::NAME, &log.positions()?).await?;
        Ok(done)
    }

    /// Swaps the rebuilt tables in when the rebuild has applied at least what the live
    /// projection has, in every partition. Otherwise changes nothing and returns the
    /// partitions where the live projection is ahead.
    pub async fn switch_over<P: Projection>(&self) -> Result<Vec<(String, i32)>, ProjectionError> {
        let schema = &self.schema;
        // Outside the switchover's transaction, which holds the live projector: a table is
        // written out whole. (A logged table stays as it is.)
        let mut tx = self.shadow.begin().await?;
        for table in P::TABLES.iter().chain(&["projection_offsets", "quarantine"]) {
            tx.execute(format!("ALTER TABLE \"{schema}\".\"{table}\" SET LOGGED").as_str()).await?;
        }
        tx.commit().await?;
        let mut tx = self.live.begin().await?;
        let live: BTreeMap<(String, i32), i64> =
            sqlx::query_as::<_, (String, i32, i64)>("SELECT topic, partition, next_offset FROM projection_offsets WHERE projection = $1 FOR UPDATE")
                .bind(P::NAME)
                .fetch_all(&mut *tx)
                .await?
                .into_iter()
                .map(|(t, p, o)| ((t, p), o))
                .collect();
        let rebuilt = offsets(&mut tx, &format!("\"{schema}\".projection_offsets"), P::NAME).await?;
        let ahead: Vec<(String, i32)> =
            live.iter().filter(|(key, offset)| rebuilt.get(*key).copied().unwrap_or(0) < **offset).map(|(key, _)| key.clone()).collect();
        if !ahead.is_empty() {
            tx.rollback().await?;
            return Ok(ahead);
        }
        for table in P::TABLES {
            tx.execute(format!("DROP TABLE public.\"{table}\"; ALTER TABLE \"{schema}\".\"{table}\" SET SCHEMA public").as_str()).await?;
        }
        sqlx::query!("UPDATE projection_offsets SET generation = generation + 1 WHERE projection = $1", P::NAME).execute(&mut *tx).await?;
        sqlx::query(&format!(
            "INSERT INTO projection_offsets (projection, topic, partition, next_offset, fence_epoch, generation)
             SELECT projection, topic, partition, next_offset, fence_epoch, 1 FROM \"{schema}\".projection_offsets WHERE projection = $1
             ON CONFLICT (projection, topic, partition) DO UPDATE
             SET next_offset = EXCLUDED.next_offset, fence_epoch = EXCLUDED.fence_epoch, updated_at = now()"
        ))
        .bind(P::NAME)
        .execute(&mut *tx)
        .await?;
        sqlx::query!("DELETE FROM quarantine WHERE projection = $1", P::NAME).execute(&mut *tx).await?;
        sqlx::query(&format!(
            "INSERT INTO quarantine (projection, topic, partition, \"offset\", key, aggregate_version, reason, payload, quarantined_at)
             SELECT projection, topic, partition, \"offset\", key, aggregate_version, reason, payload, quarantined_at FROM \"{schema}\".quarantine"
        ))
        .execute(&mut *tx)
        .await?;
        tx.execute(format!("DROP SCHEMA \"{schema}\" CASCADE").as_str()).await?;
        tx.commit().await?;
        self.shadow.close().await;
        Ok(Vec::new())
    }
}

/// An empty copy of `public.<table>` in `schema`, with the same columns, defaults, keys and
/// indexes under the same names (names are per schema), so that the copy can replace the
/// original without a trace.
async fn copy_table(db: &mut PgConnection, schema: &str, table: &str) -> Result<(), ProjectionError> {
    db.execute(format!("CREATE UNLOGGED TABLE \"{schema}\".\"{table}\" (LIKE public.\"{table}\" INCLUDING DEFAULTS INCLUDING CONSTRAINTS)").as_str()).await?;
    let keys: Vec<(String, String)> = sqlx::query!(
        r#"SELECT conname, pg_get_constraintdef(oid) AS "definition!" FROM pg_constraint
           WHERE conrelid = (SELECT c.oid FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace WHERE n.nspname = 'public' AND c.relname = $1)
             AND contype IN ('p', 'u')"#,
        table,
    )
    .fetch_all(&mut *db)
    .await?
    .into_iter()
    .map(|k| (k.conname, k.definition))
    .collect();
    for (name, definition) in &keys {
        db.execute(format!("ALTER TABLE \"{schema}\".\"{table}\" ADD CONSTRAINT \"{name}\" {definition}").as_str()).await?;
    }
    let indexes: Vec<(String, String)> = sqlx::query!(r#"SELECT indexname AS "indexname!", indexdef AS "indexdef!" FROM pg_indexes WHERE schemaname = 'public' AND tablename = $1"#, table)
        .fetch_all(&mut *db)
        .await?
        .into_iter()
        .map(|i| (i.indexname, i.indexdef))
        .collect();
    for (name, definition) in indexes.iter().filter(|(name, _)| !keys.iter().any(|(key, _)| key == name)) {
        let on_copy = definition.replacen(&format!(" ON public.{table} "), &format!(" ON \"{schema}\".\"{table}\" "), 1);
        if &on_copy == definition {
            return Err(ProjectionError::UnexpectedIndex(name.clone()));
        }
        db.execute(on_copy.as_str()).await?;
    }
    Ok(())
}

async fn offsets(db: &mut PgConnection, table: &str, projection: &str) -> sqlx::Result<BTreeMap<(String, i32), i64>> {
    let rows: Vec<(String, i32, i64)> =
        sqlx::query_as(&format!("SELECT topic, partition, next_offset FROM {table} WHERE projection = $1")).bind(projection).fetch_all(db).await?;
    Ok(rows.into_iter().map(|(t, p, o)| ((t, p), o)).collect())
}

/// The end of every partition of `topics`, now.
fn log_ends(brokers: &str, topics: &[String]) -> Result<BTreeMap<(String, i32), i64>, ProjectionError> {
    let client: rdkafka::consumer::BaseConsumer = tidemark_log::reader(brokers, "tidemark-rebuild").create()?;
    tidemark_log::topic_ends(&client, topics, BROKER_TIMEOUT).map_err(ProjectionError::LogEnds)
}
