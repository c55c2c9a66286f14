//! `delegations`: one row per delegation of approvals, for "my approvals" to show a
//! delegate the steps they may decide on someone's behalf.

use std::collections::HashMap;

use sqlx::PgConnection;
use tidemark_events::delegation::Delegation;
use tidemark_events::{Aggregate, DomainEvent, EventRecord, Topics};
use uuid::Uuid;

use crate::{column, Change, Projection};

pub struct Delegations;

#[derive(Debug, Clone, PartialEq)]
pub struct DelegationRow {
    tenant_id: String,
    state: Delegation,
}

impl Projection for Delegations {
    const NAME: &'static str = "delegations";
    const TABLES: &'static [&'static str] = &["delegations"];
    type Row = DelegationRow;

    fn topics(topics: &Topics) -> Vec<String> {
        vec![topics.delegation.clone()]
    }

    fn version(row: &DelegationRow) -> i64 {
        row.state.version
    }

    fn evolve(row: Option<&DelegationRow>, record: &EventRecord) -> Result<Option<DelegationRow>, String> {
        let DomainEvent::Delegation(event) = &record.event else { return Ok(None) };
        let state = Delegation::evolve(row.map(|r| r.state.clone()), event);
        Ok(Some(DelegationRow { tenant_id: record.envelope.tenant_id.clone(), state }))
    }

    async fn load(db: &mut PgConnection, ids: &[Uuid]) -> sqlx::Result<HashMap<Uuid, DelegationRow>> {
        let rows = sqlx::query!(
            "SELECT id, tenant_id, delegator, delegator_roles, delegator_team, delegate, valid_from, valid_until, revoked, version
             FROM delegations WHERE id = ANY($1)",
            ids,
        )
        .fetch_all(db)
        .await?;
        Ok(rows
            .into_iter()
            .map(|r| {
                let state = Delegation {
                    delegator: r.delegator,
                    delegator_roles: r.delegator_roles,
                    delegator_team: r.delegator_team,
                    delegate: r.delegate,
                    valid_from: r.valid_from,
                    valid_until: r.valid_until,
                    revoked: r.revoked,
                    version: r.version,
                };
                (r.id, DelegationRow { tenant_id: r.tenant_id, state })
            })
            .collect())
    }

    async fn store(db: &mut PgConnection, changes: &[Change<DelegationRow>]) -> sqlx::Result<()> {
        if changes.is_empty() {
            return Ok(());
        }
        sqlx::query!(
            "INSERT INTO delegations (id, tenant_id, delegator, delegator_roles, delegator_team, delegate, valid_from, valid_until, revoked, version)
             SELECT id, tenant_id, delegator, ARRAY(SELECT jsonb_array_elements_text(roles)), delegator_team, delegate, valid_from,
                    valid_until, revoked, version
             FROM UNNEST($1::uuid[], $2::text[], $3::text[], $4::jsonb[], $5::text[], $6::text[], $7::date[], $8::date[], $9::bool[], $10::bigint[])
                  AS u(id, tenant_id, delegator, roles, delegator_team, delegate, valid_from, valid_until, revoked, version)
             ON CONFLICT (id) DO UPDATE SET revoked = EXCLUDED.revoked, version = EXCLUDED.version",
            &changes.iter().map(|c| c.id).collect::<Vec<_>>(),
            &column(changes, |r| r.tenant_id.clone()),
            &column(changes, |r| r.state.delegator.clone()),
            // A list per row: arrays of arrays must be rectangular in PostgreSQL, JSON need not be.
            &column(changes, |r| serde_json::json!(r.state.delegator_roles)),
            // `as _`: the macro takes an array's elements to be not null, and these may be null.
            &column(changes, |r| r.state.delegator_team.clone()) as _,
            &column(changes, |r| r.state.delegate.clone()),
            &column(changes, |r| r.state.valid_from),
            &column(changes, |r| r.state.valid_until),
            &column(changes, |r| r.state.revoked),
            &column(changes, |r| r.state.version),
        )
        .execute(db)
        .await?;
        Ok(())
    }
}
