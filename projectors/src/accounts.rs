//! `accounts`: one row per account.

use std::collections::HashMap;

use chrono::{DateTime, Utc};
use sqlx::PgConnection;
use tidemark_events::account::Account;
use tidemark_events::{Aggregate, DomainEvent, EventRecord, Topics};
use uuid::Uuid;

use crate::{column, Change, Projection};

pub struct Accounts;

#[derive(Debug, Clone, PartialEq)]
pub struct AccountRow {
    tenant_id: String,
    created_at: DateTime<Utc>,
    state: Account,
}

impl Projection for Accounts {
    const NAME: &'static str = "accounts";
    const TABLES: &'static [&'static str] = &["accounts"];
    type Row = AccountRow;

    fn topics(topics: &Topics) -> Vec<String> {
        vec![topics.account.clone()]
    }

    fn version(row: &AccountRow) -> i64 {
        row.state.version
    }

    fn evolve(row: Option<&AccountRow>, record: &EventRecord) -> Result<Option<AccountRow>, String> {
        let DomainEvent::Account(event) = &record.event else { return Ok(None) };
        let env = &record.envelope;
        Ok(Some(AccountRow {
            tenant_id: env.tenant_id.clone(),
            created_at: row.map_or(crate::as_stored(env.recorded_at), |r| r.created_at),
            state: Account::evolve(row.map(|r| r.state.clone()), event),
        }))
    }

    async fn load(db: &mut PgConnection, ids: &[Uuid]) -> sqlx::Result<HashMap<Uuid, AccountRow>> {
        let rows = sqlx::query!("SELECT id, tenant_id, name, version, created_at FROM accounts WHERE id = ANY($1)", ids).fetch_all(db).await?;
        Ok(rows
            .into_iter()
            .map(|r| (r.id, AccountRow { tenant_id: r.tenant_id, created_at: r.created_at, state: Account { name: r.name, version: r.version } }))
            .collect())
    }

    async fn store(db: &mut PgConnection, changes: &[Change<AccountRow>]) -> sqlx::Result<()> {
        if changes.is_empty() {
            return Ok(());
        }
        sqlx::query!(
            "INSERT INTO accounts (id, tenant_id, name, version, created_at)
             SELECT * FROM UNNEST($1::uuid[], $2::text[], $3::text[], $4::bigint[], $5::timestamptz[])
             ON CONFLICT (id) DO UPDATE SET name = EXCLUDED.name, version = EXCLUDED.version",
            &changes.iter().map(|c| c.id).collect::<Vec<_>>(),
            &column(changes, |r| r.tenant_id.clone()),
            &column(changes, |r| r.state.name.clone()),
            &column(changes, |r| r.state.version),
            &column(changes, |r| r.created_at),
        )
        .execute(db)
        .await?;
        Ok(())
    }
}
