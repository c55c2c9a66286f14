//! `activities`: one row per call, email, meeting or task, for timelines and "my open tasks".

use std::collections::HashMap;

use chrono::{DateTime, Utc};
use sqlx::PgConnection;
use tidemark_events::activity::{About, Activity, Kind};
use tidemark_events::{Aggregate, DomainEvent, EventRecord, Topics};
use uuid::Uuid;

use crate::{column, Change, Projection};

pub struct Activities;

#[derive(Debug, Clone, PartialEq)]
pub struct ActivityRow {
    tenant_id: String,
    logged_at: DateTime<Utc>,
    updated_at: DateTime<Utc>,
    state: Activity,
}

impl Projection for Activities {
    const NAME: &'static str = "activities";
    const TABLES: &'static [&'static str] = &["activities"];
    type Row = ActivityRow;

    fn topics(topics: &Topics) -> Vec<String> {
        vec![topics.activity.clone()]
    }

    fn version(row: &ActivityRow) -> i64 {
        row.state.version
    }

    fn evolve(row: Option<&ActivityRow>, record: &EventRecord) -> Result<Option<ActivityRow>, String> {
        let DomainEvent::Activity(event) = &record.event else { return Ok(None) };
        let env = &record.envelope;
        let mut state = Activity::evolve(row.map(|r| r.state.clone()), event);
        state.occurred_at = state.occurred_at.map(crate::as_stored);
        Ok(Some(ActivityRow {
            tenant_id: env.tenant_id.clone(),
            logged_at: row.map_or(crate::as_stored(env.recorded_at), |r| r.logged_at),
            updated_at: crate::as_stored(env.recorded_at),
            state,
        }))
    }

    async fn load(db: &mut PgConnection, ids: &[Uuid]) -> sqlx::Result<HashMap<Uuid, ActivityRow>> {
        let rows = sqlx::query!(
            "SELECT id, tenant_id, kind, about, about_id, subject, logged_by, occurred_at, due_date, assignee, done, version, logged_at, updated_at
             FROM activities WHERE id = ANY($1)",
            ids,
        )
        .fetch_all(db)
        .await?;
        let corrupt = |what: String| sqlx::Error::Decode(what.into());
        rows.into_iter()
            .map(|r| {
                let state = Activity {
                    kind: Kind::try_from(r.kind).map_err(corrupt)?,
                    about: About::try_from(r.about).map_err(corrupt)?,
                    about_id: r.about_id,
                    subject: r.subject,
                    logged_by: r.logged_by,
                    occurred_at: r.occurred_at,
                    due_date: r.due_date,
                    assignee: r.assignee,
                    done: r.done,
                    version: r.version,
                };
                Ok((r.id, ActivityRow { tenant_id: r.tenant_id, logged_at: r.logged_at, updated_at: r.updated_at, state }))
            })
            .collect()
    }

    async fn store(db: &mut PgConnection, changes: &[Change<ActivityRow>]) -> sqlx::Result<()> {
        if changes.is_empty() {
            return Ok(());
        }
        sqlx::query!(
            "INSERT INTO activities (id, tenant_id, kind, about, about_id, subject, logged_by, occurred_at, due_date, assignee, done, version,
                                     logged_at, updated_at)
             SELECT * FROM UNNEST($1::uuid[], $2::text[], $3::text[], $4::text[], $5::uuid[], $6::text[], $7::text[], $8::timestamptz[],
                                  $9::date[], $10::text[], $11::bool[], $12::bigint[], $13::timestamptz[], $14::timestamptz[])
             ON CONFLICT (id) DO UPDATE SET done = EXCLUDED.done, version = EXCLUDED.version, updated_at = EXCLUDED.updated_at",
            &changes.iter().map(|c| c.id).collect::<Vec<_>>(),
            &column(changes, |r| r.tenant_id.clone()),
            &column(changes, |r| r.state.kind.name().to_string()),
            &column(changes, |r| r.state.about.name().to_string()),
            &column(changes, |r| r.state.about_id),
            &column(changes, |r| r.state.subject.clone()),
            &column(changes, |r| r.state.logged_by.clone()),
            // `as _`: the macro takes an array's elements to be not null, and these may be null.
            &column(changes, |r| r.state.occurred_at) as _,
            &column(changes, |r| r.state.due_date) as _,
            &column(changes, |r| r.state.assignee.clone()) as _,
            &column(changes, |r| r.state.done),
            &column(changes, |r| r.state.version),
            &column(changes, |r| r.logged_at),
            &column(changes, |r| r.updated_at),
        )
        .execute(db)
        .await?;
        Ok(())
    }
}
