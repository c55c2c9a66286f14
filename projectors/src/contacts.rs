//! `contacts`: one row per contact, with its (personal) details.

use std::collections::HashMap;

use chrono::{DateTime, Utc};
use sqlx::PgConnection;
use tidemark_events::contact::Contact;
use tidemark_events::{Aggregate, DomainEvent, EventRecord, Topics};
use uuid::Uuid;

use crate::{column, Change, Projection};

pub struct Contacts;

#[derive(Debug, Clone, PartialEq)]
pub struct ContactRow {
    tenant_id: String,
    created_at: DateTime<Utc>,
    updated_at: DateTime<Utc>,
    state: Contact,
}

impl Projection for Contacts {
    const NAME: &'static str = "contacts";
    const TABLES: &'static [&'static str] = &["contacts"];
    type Row = ContactRow;

    fn topics(topics: &Topics) -> Vec<String> {
        vec![topics.contact.clone()]
    }

    fn version(row: &ContactRow) -> i64 {
        row.state.version
    }

    fn evolve(row: Option<&ContactRow>, record: &EventRecord) -> Result<Option<ContactRow>, String> {
        let DomainEvent::Contact(event) = &record.event else { return Ok(None) };
        let env = &record.envelope;
        Ok(Some(ContactRow {
            tenant_id: env.tenant_id.clone(),
            created_at: row.map_or(crate::as_stored(env.recorded_at), |r| r.created_at),
            updated_at: crate::as_stored(env.recorded_at),
            state: Contact::evolve(row.map(|r| r.state.clone()), event),
        }))
    }

    async fn load(db: &mut PgConnection, ids: &[Uuid]) -> sqlx::Result<HashMap<Uuid, ContactRow>> {
        let rows = sqlx::query!(
            "SELECT id, tenant_id, account_id, name, email, phone, title, erased_at, version, created_at, updated_at FROM contacts WHERE id = ANY($1)",
            ids,
        )
        .fetch_all(db)
        .await?;
        Ok(rows
            .into_iter()
            .map(|r| {
                let state = Contact {
                    account_id: r.account_id,
                    name: r.name,
                    email: r.email,
                    phone: r.phone,
                    title: r.title,
                    erased_at: r.erased_at,
                    version: r.version,
                };
                (r.id, ContactRow { tenant_id: r.tenant_id, created_at: r.created_at, updated_at: r.updated_at, state })
            })
            .collect())
    }

    async fn store(db: &mut PgConnection, changes: &[Change<ContactRow>]) -> sqlx::Result<()> {
        if changes.is_empty() {
            return Ok(());
        }
        sqlx::query!(
            "INSERT INTO contacts (id, tenant_id, account_id, name, email, phone, title, version, created_at, updated_at, erased_at)
             SELECT * FROM UNNEST($1::uuid[], $2::text[], $3::uuid[], $4::text[], $5::text[], $6::text[], $7::text[], $8::bigint[],
                                  $9::timestamptz[], $10::timestamptz[], $11::timestamptz[])
             ON CONFLICT (id) DO UPDATE SET account_id = EXCLUDED.account_id, name = EXCLUDED.name, email = EXCLUDED.email,
                 phone = EXCLUDED.phone, title = EXCLUDED.title, version = EXCLUDED.version, updated_at = EXCLUDED.updated_at,
                 erased_at = EXCLUDED.erased_at",
            &changes.iter().map(|c| c.id).collect::<Vec<_>>(),
            &column(changes, |r| r.tenant_id.clone()),
            // `as _`: the macro takes an array's elements to be not null, and these may be null.
            &column(changes, |r| r.state.account_id) as _,
            &column(changes, |r| r.state.name.clone()),
            &column(changes, |r| r.state.email.clone()) as _,
            &column(changes, |r| r.state.phone.clone()) as _,
            &column(changes, |r| r.state.title.clone()) as _,
            &column(changes, |r| r.state.version),
            &column(changes, |r| r.created_at),
            &column(changes, |r| r.updated_at),
            &column(changes, |r| r.state.erased_at) as _,
        )
        .execute(db)
        .await?;
        Ok(())
    }
}
