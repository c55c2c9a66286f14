//! `tidemark replay verify`: replays the log in memory, up to exactly the offsets the
//! projection says it reflects, and compares the result with the live read model row by
//! row. The comparison is exact even while the projection keeps running: both sides stand
//! at the same position, read in one snapshot.

use std::collections::{BTreeMap, HashMap};

use rust_decimal::Decimal;
use sqlx::{PgPool, Row};
use tidemark_events::opportunity::Opportunity;
use uuid::Uuid;

use crate::fold::fold_log;
use tidemark_events::Aggregate;
use crate::{read_partitions, Replayer};

/// One difference between the log and the read model.
#[derive(Debug, Clone, PartialEq, serde::Serialize)]
pub struct Drift {
    pub table: &'static str,
    pub key: String,
    pub field: String,
    pub expected: String,
    pub found: String,
}

pub async fn verify(replayer: &Replayer, pool: &PgPool, projection: &str) -> anyhow::Result<(usize, Vec<Drift>)> {
    anyhow::ensure!(
        tidemark_projectors::names().any(|name| name == projection),
        "no projection '{projection}'; there are {}",
        tidemark_projectors::names().collect::<Vec<_>>().join(", ")
    );
    anyhow::ensure!(
        ["opportunities", "pipeline"].contains(&projection),
        "verify compares opportunities and pipeline; it has no comparison for {projection} yet"
    );
    let topic = replayer.topic("opportunity")?;
    let mut tx = pool.begin().await?;
    sqlx::query("SET TRANSACTION ISOLATION LEVEL REPEATABLE READ READ ONLY").execute(&mut *tx).await?;
    let reflected: HashMap<i32, i64> =
        sqlx::query_as::<_, (i32, i64)>("SELECT partition, next_offset FROM projection_offsets WHERE projection = $1 AND topic = $2")
            .bind(projection)
            .bind(&topic)
            .fetch_all(&mut *tx)
            .await?
            .into_iter()
            .collect();
    let records = read_partitions(&replayer.brokers, &replayer.codec, &topic, None).await?;
    let (states, _) = fold_log(&records, |r, _| r.offset < reflected.get(&r.partition).copied().unwrap_or(0));
    let opportunities: BTreeMap<Uuid, (String, Opportunity, i64)> = states
        .into_iter()
        .filter_map(|(id, f)| match f.state {
            Aggregate::Opportunity(o) => Some((id, (f.tenant_id, o, f.version))),
            _ => None,
        })
        .collect();
    let drift = match projection {
        "opportunities" => compare_opportunities(&mut tx, &opportunities).await?,
        _ => compare_pipeline(&mut tx, &opportunities).await?,
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
    let rows = sqlx::query(
        "SELECT id, tenant_id, account_id, name, owner_id, team_id, shared_with, amount, currency, close_date, stage,
                probability, close_reason, quotes, synced_quote_id, version FROM opportunities",
    )
    .fetch_all(db)
    .await?;
    let mut drift = Vec::new();
    let mut seen = std::collections::HashSet::new();
    for row in rows {
        let id: Uuid = row.get("id");
        let key = id.to_string();
        seen.insert(id);
        let Some((tenant, o, version)) = expected.get(&id) else {
            drift.push(Drift { table: "opportunities", key, field: "*".into(), expected: "no row".into(), found: "a row".into() });
            continue;
        };
        let f = &mut drift;
        let t = "opportunities";
        field(f, t, &key, "tenant_id", tenant, row.get::<String, _>("tenant_id"));
        field(f, t, &key, "account_id", o.account_id, row.get::<Uuid, _>("account_id"));
        field(f, t, &key, "name", &o.name, row.get::<String, _>("name"));
        field(f, t, &key, "owner_id", &o.owner_id, row.get::<String, _>("owner_id"));
        field(f, t, &key, "team_id", format!("{:?}", o.team_id), format!("{:?}", row.get::<Option<String>, _>("team_id")));
        field(f, t, &key, "shared_with", format!("{:?}", o.shared_with.iter().collect::<Vec<_>>()), format!("{:?}", row.get::<Vec<String>, _>("shared_with")));
        field(f, t, &key, "amount", o.amount.value, row.get::<Decimal, _>("amount"));
        field(f, t, &key, "currency", &o.amount.currency, row.get::<String, _>("currency"));
        field(f, t, &key, "close_date", o.close_date, row.get::<chrono::NaiveDate, _>("close_date"));
        field(f, t, &key, "stage", o.stage.name(), row.get::<String, _>("stage"));
        field(f, t, &key, "probability", o.probability, row.get::<i32, _>("probability"));
        field(f, t, &key, "close_reason", format!("{:?}", o.close_reason), format!("{:?}", row.get::<Option<String>, _>("close_reason")));
        field(f, t, &key, "quotes", serde_json::json!(o.quotes), row.get::<serde_json::Value, _>("quotes"));
        field(f, t, &key, "synced_quote_id", format!("{:?}", o.synced_quote), format!("{:?}", row.get::<Option<Uuid>, _>("synced_quote_id")));
        field(f, t, &key, "version", version, row.get::<i64, _>("version"));
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
    let rows = sqlx::query("SELECT tenant_id, team_id, owner_id, stage, currency, count, amount FROM pipeline").fetch_all(db).await?;
    let mut drift = Vec::new();
    for row in rows {
        let key = format!(
            "{}/{}/{}/{}/{}",
            row.get::<String, _>("tenant_id"),
            row.get::<String, _>("team_id"),
            row.get::<String, _>("owner_id"),
            row.get::<String, _>("stage"),
            row.get::<String, _>("currency")
        );
        let (count, amount) = cells.remove(&key).unwrap_or((0, Decimal::ZERO));
        field(&mut drift, "pipeline", &key, "count", count, row.get::<i64, _>("count"));
        field(&mut drift, "pipeline", &key, "amount", amount.normalize(), row.get::<Decimal, _>("amount").normalize());
    }
    for (key, (count, amount)) in cells {
        drift.push(Drift { table: "pipeline", key, field: "*".into(), expected: format!("count {count}, amount {amount}"), found: "no row".into() });
    }
    Ok(drift)
}
