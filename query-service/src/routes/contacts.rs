//! Contact reads. Name, email and phone are personal data: whoever the policy does not let
//! see personal fields gets them as null, and `personal_fields: "withheld"`; an erased
//! person's read "[erased]" for everyone.

use chrono::{DateTime, Utc};
use serde::Serialize;
use sqlx::PgConnection;
use tidemark_http::Problem;
use utoipa::ToSchema;
use uuid::Uuid;

use axum::extract::State;
use axum::response::Response;
use serde::Deserialize;
use tidemark_http::{Principal, ProblemPath, ProblemQuery};
use tidemark_projectors::Contacts;
use utoipa::IntoParams;
use utoipa_axum::{router::OpenApiRouter, routes};

use crate::access::{contact_reader, personal_fields};
use crate::cache::Cached;
use crate::freshness::database;
use crate::paging::{cursor, cursors, page, page_size, page_sizes};
use crate::read::{seen, AskedBound, BoundParams, Refusal};
use crate::AppState;

pub(crate) fn routes() -> OpenApiRouter<AppState> {
    OpenApiRouter::new().routes(routes!(list_contacts)).routes(routes!(get_contact))
}

/// A contact as the read model holds it.
#[derive(Serialize, ToSchema)]
pub struct ContactRow {
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
}

/// A contact as a caller sees it.
#[derive(Serialize, ToSchema)]
pub struct ContactView {
    #[serde(flatten)]
    pub(crate) row: ContactRow,
    /// Name, email and phone: "shown", "withheld" (for roles that may not see them) or "erased".
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
    let rows = sqlx::query_as!(
        ContactRow,
        r#"SELECT id, account_id, name AS "name?", email, phone, title, version, created_at, updated_at, erased_at FROM contacts
           WHERE tenant_id = $1 AND ($2::uuid IS NULL OR id = $2) AND ($3::uuid IS NULL OR account_id = $3) AND ($4::uuid IS NULL OR id > $4)
           ORDER BY id LIMIT $5"#,
        tenant,
        id,
        account_id,
        after,
        limit,
    )
    .fetch_all(db)
    .await
    .map_err(database)?;
    Ok(rows
        .into_iter()
        .map(|row| {
            let erased = row.erased_at.is_some();
            let (row, personal_fields) = personal_fields(row, erased, personal, |row| ContactRow { name: None, email: None, phone: None, ..row });
            ContactView { row, personal_fields }
        })
        .collect())
}

/// One contact. `personal`: whether name, email and phone are shown (the policy's rule for
/// the caller).
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub(crate) struct One {
    id: Uuid,
    personal: bool,
}

impl One {
    pub(crate) async fn run(&self, db: &mut PgConnection, tenant: &str) -> Result<Cached, Refusal> {
        let found = contacts(db, tenant, (Some(self.id), None), (None, 1), self.personal).await?;
        let one = found.into_iter().next().ok_or_else(|| Problem::not_found(format!("no contact {} in the read model", self.id)))?;
        Ok(Cached::data(one))
    }
}

/// A page of contacts, optionally of one account; `personal` as for one.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub(crate) struct Page {
    account_id: Option<Uuid>,
    after: Option<Uuid>,
    limit: i64,
    personal: bool,
}

impl Page {
    pub(crate) async fn run(&self, db: &mut PgConnection, tenant: &str) -> Result<Cached, Refusal> {
        let rows = contacts(db, tenant, (None, self.account_id), (self.after, self.limit + 1), self.personal).await?;
        Ok(page(rows, self.limit, |c| c.row.id))
    }
}

#[derive(Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
struct ContactParams {
    /// Only the contacts of this account.
    account_id: Option<Uuid>,
    /// Page size, 1 to 200 (default 50).
    #[param(schema_with = page_sizes)]
    limit: Option<i64>,
    /// `next_cursor` of the previous page.
    #[param(schema_with = cursors)]
    cursor: Option<String>,
}

/// Contacts, optionally of one account, a page at a time. Name, email and phone are
/// personal data, shown only to roles that work with customers (`personal_fields`).
#[utoipa::path(get, path = "/v1/contacts", params(ContactParams, BoundParams), tag = "contacts",
    responses((status = 200, description = "`data`: contacts; `next_cursor`; `staleness`"), (status = 400), (status = 403), (status = 503)))]
async fn list_contacts(
    State(state): State<AppState>,
    who: Principal,
    asked: AskedBound,
    ProblemQuery(params): ProblemQuery<ContactParams>,
) -> Result<Response, Problem> {
    let personal = contact_reader(&state, &who, "contacts").await?;
    let limit = page_size(params.limit)?;
    let after = cursor(params.cursor)?;
    let target = params.account_id.map_or("contacts".to_string(), |a| format!("contacts of account/{a}"));
    let query = Page { account_id: params.account_id, after, limit, personal };
    seen(&state, &who, target, state.read::<Contacts>(&who, asked.with_default(false), query).await).await
}

/// One contact; personal fields as for the list. A strong read unless asked otherwise.
#[utoipa::path(get, path = "/v1/contacts/{id}", params(BoundParams), tag = "contacts",
    responses((status = 200, description = "`data`: the contact; `staleness`"), (status = 403), (status = 404), (status = 503)))]
async fn get_contact(State(state): State<AppState>, who: Principal, asked: AskedBound, ProblemPath(id): ProblemPath<Uuid>) -> Result<Response, Problem> {
    let personal = contact_reader(&state, &who, &format!("contact/{id}")).await?;
    let query = One { id, personal };
    seen(&state, &who, format!("contact/{id}"), state.read::<Contacts>(&who, asked.with_default(true), query).await).await
}
