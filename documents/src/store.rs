//! Where documents are kept, and what a document may say about the customer's people.

use sqlx::PgConnection;
use uuid::Uuid;

/// This crate's table. Crates share one migration history, so each ignores the others'.
pub fn migrator() -> sqlx::migrate::Migrator {
    let mut migrator = sqlx::migrate!("./migrations");
    migrator.set_ignore_missing(true);
    migrator
}

/// The customer as a document names it: the account, and its people whose personal data
/// is not erased.
#[derive(Debug, Clone, PartialEq, Default)]
pub struct Customer {
    /// `None` when the account is not (yet) in its read model.
    pub account: Option<String>,
    /// (contact, name and title)
    pub people: Vec<(Uuid, String)>,
}

/// The account's name and its people, for a document about to be rendered and kept in this
/// transaction. The people's keys stay locked (`FOR SHARE`) until the transaction ends, so an
/// erasure waits for the document to be kept and then deletes it; a key destroyed before
/// leaves the person out. (Tables are named with their schema: a rebuild's search path holds
/// only its own.)
pub async fn customer(db: &mut PgConnection, tenant: &str, account_id: Uuid) -> sqlx::Result<Customer> {
    let account = sqlx::query_scalar!("SELECT name FROM public.accounts WHERE id = $1 AND tenant_id = $2", account_id, tenant)
        .fetch_optional(&mut *db)
        .await?;
    let people = sqlx::query!(
        "SELECT c.id, c.name, c.title FROM public.contacts c
         JOIN public.personal_data_keys k ON k.tenant_id = c.tenant_id AND k.subject = 'contact/' || c.id
         WHERE c.tenant_id = $1 AND c.account_id = $2 AND c.erased_at IS NULL AND k.key IS NOT NULL
         ORDER BY c.name, c.id
         FOR SHARE OF k",
        tenant,
        account_id,
    )
    .fetch_all(&mut *db)
    .await?
    .into_iter()
    .map(|r| (r.id, r.title.map_or(r.name.clone(), |title| format!("{} ({title})", r.name))))
    .collect();
    Ok(Customer { account, people })
}

/// Why a document was rendered.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RenderedFor {
    /// The consumer folded the revision's approval.
    Approval,
    /// Someone asked for it and none was kept.
    Request,
}

impl RenderedFor {
    fn name(self) -> &'static str {
        match self {
            RenderedFor::Approval => "approval",
            RenderedFor::Request => "request",
        }
    }
}

/// A kept document.
#[derive(Debug, Clone)]
pub struct Kept {
    pub pdf: Vec<u8>,
    pub code_version: String,
    pub rendered_for: String,
    pub rendered_at: chrono::DateTime<chrono::Utc>,
}

/// The document kept for a revision, if any.
pub async fn kept(db: &mut PgConnection, tenant: &str, quote_id: Uuid, revision: i32) -> sqlx::Result<Option<Kept>> {
    sqlx::query_as!(
        Kept,
        "SELECT pdf, code_version, rendered_for, rendered_at FROM public.quote_documents WHERE tenant_id = $1 AND quote_id = $2 AND revision = $3",
        tenant,
        quote_id,
        revision,
    )
    .fetch_optional(db)
    .await
}

/// Keeps a rendered document, unless one is kept for the revision already; either way,
/// returns the one kept.
pub async fn keep(db: &mut PgConnection, tenant: &str, doc: &crate::Document, pdf: Vec<u8>, rendered_for: RenderedFor) -> sqlx::Result<Kept> {
    let contacts: Vec<Uuid> = doc.customer.people.iter().map(|(id, _)| *id).collect();
    sqlx::query!(
        "INSERT INTO public.quote_documents (tenant_id, quote_id, revision, opportunity_id, pdf, contact_ids, code_version, rendered_for)
         VALUES ($1, $2, $3, $4, $5, $6, $7, $8) ON CONFLICT DO NOTHING",
        tenant,
        doc.quote.id,
        doc.quote.revision,
        doc.opportunity_id,
        pdf,
        &contacts,
        doc.code_version,
        rendered_for.name(),
    )
    .execute(&mut *db)
    .await?;
    Ok(kept(db, tenant, doc.quote.id, doc.quote.revision).await?.expect("kept in this transaction or before"))
}

/// Deletes every kept document that names one of these people (tenant, contact); the next
/// request renders it again, without them. Returns how many.
pub async fn forget_people(db: &mut PgConnection, people: &[(String, Uuid)]) -> sqlx::Result<u64> {
    let (tenants, contacts): (Vec<String>, Vec<Uuid>) = people.iter().cloned().unzip();
    let deleted = sqlx::query!(
        "DELETE FROM quote_documents d USING UNNEST($1::text[], $2::uuid[]) AS e(tenant_id, contact_id)
         WHERE d.tenant_id = e.tenant_id AND e.contact_id = ANY(d.contact_ids)",
        &tenants,
        &contacts,
    )
    .execute(db)
    .await?;
    Ok(deleted.rows_affected())
}
