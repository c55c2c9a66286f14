//! Contact reads. Name, email and phone are personal data: whoever the policy does not let
//! see personal fields gets them as null, and `personal_fields: "withheld"`; an erased
//! person's read "[erased]" for everyone. an erased
//! person's read "[erased]" for everyone.

use chrono::{DateTime, Utc};
use serde::Serialize;
use sqlx::PgConnection;
use tidemark_http::Problem;
use utoipa::ToSchema;
use uuid::Uuid;

use crate::freshness::database;

#[derive(Serialize, ToSchema, sqlx::FromRow)]
pub struct ContactView {
    pub(crate) id: Uuid,
    account_id: Option<Uuid>,
    name: Option<String>,
    email: Option<String>,
    phone: Option<String>,
    title: Option<String>,
    version: i64,
    created_at: DateTime<Utc>,
    updated_at: DateTime<Utc>,
    /// When the person's data was erased: name, email and phone then read "[erased]".
    erased_at: Option<DateTime<Utc>>,
    /// Name, email and phone: "shown", "withheld" (for roles that may not see them) or "erased".
    #[sqlx(skip)]
    personal_fields: &'static str,
}

/// Contacts of the tenant: one (`id`), or those of an account, or all, a page at a time.
pub async fn contacts(
    db: &mut PgConnection,
    tenant: &str,
    (id, account_id): (Option<Uuid>, Option<Uuid>),
    (after, limit): (Option<Uuid>, i64),
    personal: bool,
) -> Result<Vec<ContactView>, Problem> {
    let rows: Vec<ContactView> = sqlx::query_as(
        "SELECT id, account_id, name, email, phone, title, version, created_at, updated_at, erased_at FROM contacts
         WHERE tenant_id = $1 AND ($2::uuid IS NULL OR id = $2) AND ($3::uuid IS NULL OR account_id = $3) AND ($4::uuid IS NULL OR id > $4)
         ORDER BY id LIMIT $5",
    )
    .bind(tenant)
    .bind(id)
    .bind(account_id)
    .bind(after)
    .bind(limit)
    .fetch_all(db)
    .await
    .map_err(database)?;
    Ok(rows
        .into_iter()
        .map(|c| match personal {
            _ if c.erased_at.is_some() => ContactView { personal_fields: "erased", ..c },
            true => ContactView { personal_fields: "shown", ..c },
            false => ContactView { name: None, email: None, phone: None, personal_fields: "withheld", ..c },
        })
        .collect())
}
