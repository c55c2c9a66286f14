//! `tidemark replay verify`: replays the log, up to exactly the offsets the projection says
//! it reflects, and compares the result with the live read model row by row, for every
//! projection. The comparison is exact even while the projection keeps running: both sides
//! stand at the same position, read in one snapshot. The log streams through the fold and
//! the rows stream from the database: memory follows the number of aggregates, not the
//! length of the log.

use std::collections::{BTreeMap, HashMap};

use futures::future::BoxFuture;
use futures::TryStreamExt;
use rust_decimal::Decimal;
use sqlx::{PgConnection, PgPool};
use tidemark_events::fold::PartitionFold;
use tidemark_events::opportunity::Opportunity;
use tidemark_events::AnyAggregate;
use tidemark_projectors::quotes::QuoteView;
use tidemark_projectors::{fold_record, Named, Projection};
use uuid::Uuid;

use crate::fold::Fold;
use crate::{each_record, Replayer};

/// Rows read back from a read model per query.
const CHUNK: usize = 10_000;

/// One difference between the log and the read model.
#[derive(Debug, Clone, PartialEq, serde::Serialize)]
pub struct Drift {
    pub table: &'static str,
    pub key: String,
    pub field: String,
    pub expected: String,
    pub found: String,
}

pub async fn verify(replayer: &Replayer, pool: &PgPool, projection: &str) -> anyhow::Result<(String, Vec<Drift>)> {
    let mut tx = pool.begin().await?;
    sqlx::query("SET TRANSACTION ISOLATION LEVEL REPEATABLE READ READ ONLY").execute(&mut *tx).await?;
    if matches!(projection, "opportunities" | "pipeline") {
        // These two are held against the domain's own fold, which shares no code with
        // their projections, so a mistake in a projection's `evolve` shows too.
        let (opportunities, drift) = against_the_domain(replayer, &mut tx, projection).await?;
        return Ok((format!("{opportunities} opportunities"), drift));
    }
    struct Rows<'a>(&'a Replayer, &'a mut PgConnection);
    impl<'a> Named for Rows<'a> {
        type Output = BoxFuture<'a, anyhow::Result<(usize, Vec<Drift>)>>;
        fn run<P: Projection>(self) -> Self::Output {
            Box::pin(against_the_projection::<P>(self.0, self.1))
        }
    }
    let (rows, drift) = tidemark_projectors::with_named(projection, Rows(replayer, &mut tx)).map_err(anyhow::Error::msg)?.await?;
    Ok((format!("{rows} rows of {projection}"), drift))
}

/// The offsets of `topic` that `projection` says it reflects, per partition.
async fn reflected(db: &mut PgConnection, projection: &str, topic: &str) -> anyhow::Result<HashMap<i32, i64>> {
    Ok(sqlx::query!("SELECT partition, next_offset FROM projection_offsets WHERE projection = $1 AND topic = $2", projection, topic)
        .fetch_all(db)
        .await?
        .into_iter()
        .map(|r| (r.partition, r.next_offset))
        .collect())
}

/// Folds the projection's topics with its own `evolve` under the fold rule, as its runner
/// does, and compares each row with the stored one. Records the runner quarantined fail to
/// apply here too, and are left out the same way.
async fn against_the_projection<P: Projection>(replayer: &Replayer, db: &mut PgConnection) -> anyhow::Result<(usize, Vec<Drift>)> {
    let mut rows: HashMap<Uuid, P::Row> = HashMap::new();
    for topic in P::topics(&replayer.topics) {
        let reflected = reflected(&mut *db, P::NAME, &topic).await?;
        let mut folds: HashMap<i32, PartitionFold> = HashMap::new();
        each_record(&replayer.brokers, &replayer.codec, &topic, None, |record| {
            if record.offset < reflected.get(&record.partition).copied().unwrap_or(0) {
                if let Ok(decoded) = &record.decoded {
                    fold_record::<P>(folds.entry(record.partition).or_default(), &mut rows, decoded);
                }
            }
            Ok(())
        })
        .await?;
    }
    let ids: Vec<Uuid> = rows.keys().copied().collect();
    let table = P::TABLES[0];
    let mut drift = Vec::new();
    for chunk in ids.chunks(CHUNK) {
        let stored = P::load(&mut *db, chunk).await?;
        for id in chunk {
            let (key, folded) = (id.to_string(), &rows[id]);
            match stored.get(id) {
                None => drift.push(Drift { table, key, field: "*".into(), expected: "a row".into(), found: "no row".into() }),
                Some(row) if !P::agrees(row, folded) => drift.push(Drift { table, key, field: "*".into(), expected: format!("{folded:?}"), found: format!("{row:?}") }),
                Some(_) => {}
            }
        }
    }
    drift.sort_by(|a, b| a.key.cmp(&b.key));
    Ok((rows.len(), drift))
}

/// Opportunities and the pipeline against the domain's fold of the opportunity topic.
async fn against_the_domain(replayer: &Replayer, db: &mut PgConnection, projection: &str) -> anyhow::Result<(usize, Vec<Drift>)> {
    let topic = replayer.topic("opportunity")?;
    let reflected = reflected(&mut *db, projection, &topic).await?;
    let mut fold = Fold::default();
    each_record(&replayer.brokers, &replayer.codec, &topic, None, |record| {
        fold.apply(&record, |r, _| r.offset < reflected.get(&r.partition).copied().unwrap_or(0));
        Ok(())
    })
    .await?;
    let opportunities: BTreeMap<Uuid, (String, Opportunity, i64)> = fold
        .states
        .into_iter()
        .filter_map(|(id, f)| match f.state {
            AnyAggregate::Opportunity(o) => Some((id, (f.tenant_id, o, f.version))),
            _ => None,
        })
        .collect();
    let drift = match projection {
        "opportunities" => compare_opportunities(db, &opportunities).await?,
        _ => compare_pipeline(db, &opportunities).await?,
    };
    Ok((opportunities.len(), drift))
}

fn field(drift: &mut Vec<Drift>, table: &'static str, key: &str, name: &str, expected: impl ToString, found: impl ToString) {
    let (expected, found) = (expected.to_string(), found.to_string());
    if expected != found {
        drift.push(Drift { table, key: key.to_string(), field: name.to_string(), expected, found });
    }
}

async fn compare_opportunities(db: &mut sqlx::PgConnection, expected: &BTreeMap<Uuid, (String, Opportunity, i64)>) -> anyhow::Result<Vec<Drift>> {
    let mut rows = sqlx::query!(
        "SELECT id, tenant_id, account_id, name, owner_id, team_id, shared_with, amount, currency, close_date, stage,
                probability, close_reason, quotes, synced_quote_id, version FROM opportunities",
    )
    .fetch(db);
    let mut drift = Vec::new();
    let mut seen = std::collections::HashSet::new();
    while let Some(row) = rows.try_next().await? {
        let id = row.id;
        let key = id.to_string();
        seen.insert(id);
        let Some((tenant, o, version)) = expected.get(&id) else {
            drift.push(Drift { table: "opportunities", key, field: "*".into(), expected: "no row".into(), found: "a row".into() });
            continue;
        };
        let f = &mut drift;
        let t = "opportunities";
        field(f, t, &key, "tenant_id", tenant, row.tenant_id);
        field(f, t, &key, "account_id", o.account_id, row.account_id);
        field(f, t, &key, "name", &o.name, row.name);
        field(f, t, &key, "owner_id", &o.owner_id, row.owner_id);
        field(f, t, &key, "team_id", format!("{:?}", o.team_id), format!("{:?}", row.team_id));
        field(f, t, &key, "shared_with", format!("{:?}", o.shared_with.iter().collect::<Vec<_>>()), format!("{:?}", row.shared_with));
        field(f, t, &key, "amount", o.amount.value, row.amount);
        field(f, t, &key, "currency", &o.amount.currency, row.currency);
        field(f, t, &key, "close_date", o.close_date, row.close_date);
        field(f, t, &key, "stage", o.stage.name(), row.stage);
        field(f, t, &key, "probability", o.probability, row.probability);
        field(f, t, &key, "close_reason", format!("{:?}", o.close_reason), format!("{:?}", row.close_reason));
        // As the read model stores quotes (its own type), not as the domain serializes them.
        let quotes: Vec<QuoteView> = o.quotes.iter().map(QuoteView::from).collect();
        field(f, t, &key, "quotes", serde_json::json!(quotes), row.quotes);
        field(f, t, &key, "synced_quote_id", format!("{:?}", o.synced_quote), format!("{:?}", row.synced_quote_id));
        field(f, t, &key, "version", version, row.version);
    }
    for id in expected.keys().filter(|id| !seen.contains(id)) {
        drift.push(Drift { table: "opportunities", key: id.to_string(), field: "*".into(), expected: "a row".into(), found: "no row".into() });
    }
    Ok(drift)
}

async fn compare_pipeline(db: &mut sqlx::PgConnection, expected: &BTreeMap<Uuid, (String, Opportunity, i64)>) -> anyhow::Result<Vec<Drift>> {
    let mut cells: BTreeMap<String, (i64, Decimal)> = BTreeMap::new();
    for (tenant, o, _) in expected.values() {
        let key = format!("{tenant}/{}/{}/{}/{}", o.team_id.as_deref().unwrap_or(""), o.owner_id, o.stage.name(), o.amount.currency);
        let cell = cells.entry(key).or_insert((0, Decimal::ZERO));
        cell.0 += 1;
        cell.1 += o.amount.value;
    }
    let rows = sqlx::query!("SELECT tenant_id, team_id, owner_id, stage, currency, count, amount FROM pipeline").fetch_all(db).await?;
    let mut drift = Vec::new();
    for row in rows {
        let key = format!("{}/{}/{}/{}/{}", row.tenant_id, row.team_id, row.owner_id, row.stage, row.currency);
        let (count, amount) = cells.remove(&key).unwrap_or((0, Decimal::ZERO));
        field(&mut drift, "pipeline", &key, "count", count, row.count);
        field(&mut drift, "pipeline", &key, "amount", amount.normalize(), row.amount.normalize());
    }
    for (key, (count, amount)) in cells {
        drift.push(Drift { table: "pipeline", key, field: "*".into(), expected: format!("count {count}, amount {amount}"), found: "no row".into() });
    }
    Ok(drift)
}
