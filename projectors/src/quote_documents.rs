//! `quote_documents`: the consumer that renders a quote's document when a revision is
//! approved. It folds what documents are made from (`quote_sources`), keeps each approved
//! revision as it stood (`approved_quote_revisions`), and renders the document of each
//! revision newly approved in a batch, in the batch's transaction: a batch applied again
//! after a crash finds the document kept and renders nothing twice.

use std::collections::{BTreeMap, BTreeSet, HashMap};

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use sqlx::types::Json;
use sqlx::PgConnection;
use tidemark_documents::{Document, EventRef, RenderedFor};
use tidemark_events::opportunity::OpportunityEvent;
use tidemark_events::quote::{self, Quote, QuoteStatus};
use tidemark_events::{DomainEvent, EventRecord, Topics};
use uuid::Uuid;

use crate::quotes::QuoteView;
use crate::{column, Change, Projection};

pub struct QuoteDocuments;

/// An opportunity as its quotes' documents need it.
#[derive(Debug, Clone, PartialEq)]
pub struct QuoteSourcesRow {
    pub tenant_id: String,
    pub version: i64,
    pub account_id: Uuid,
    pub owner_id: String,
    pub team_id: Option<String>,
    pub shared_with: BTreeSet<String>,
    pub name: String,
    /// The opportunity's first event: the document names its opportunity by it.
    pub created: EventRef,
    /// Each quote now.
    pub quotes: Vec<Quote>,
    /// The events of each quote's current revision: the opportunity's creation, then the
    /// revision's own.
    pub revision_events: BTreeMap<Uuid, Vec<EventRef>>,
    /// Every revision approved so far, as it stood when approved.
    pub approved: Vec<ApprovedRevision>,
}

#[derive(Debug, Clone, PartialEq)]
pub struct ApprovedRevision {
    pub quote: Quote,
    pub approved_at: DateTime<Utc>,
    /// The events the revision was made from: the opportunity's creation, then the
    /// revision's own, up to the approval.
    pub events: Vec<EventRef>,
}

impl QuoteSourcesRow {
    /// The document of an approved revision, naming `customer`.
    pub fn document(&self, id: Uuid, revision: &ApprovedRevision, customer: tidemark_documents::Customer) -> Document {
        Document {
            opportunity_id: id,
            opportunity_name: self.name.clone(),
            owner_id: self.owner_id.clone(),
            quote: revision.quote.clone(),
            approved_at: revision.approved_at,
            customer,
            events: revision.events.clone(),
            code_version: tidemark_documents::code_version().to_string(),
        }
    }
}

/// How `quote_sources.source` holds the rest of a row.
#[derive(Debug, Serialize, Deserialize)]
struct StoredSource {
    name: String,
    created: EventRef,
    quotes: Vec<StoredQuote>,
}

#[derive(Debug, Serialize, Deserialize)]
struct StoredQuote {
    quote: QuoteView,
    events: Vec<EventRef>,
}

impl Projection for QuoteDocuments {
    const NAME: &'static str = "quote_documents";
    const TABLES: &'static [&'static str] = &["quote_sources", "approved_quote_revisions"];
    type Row = QuoteSourcesRow;

    fn topics(topics: &Topics) -> Vec<String> {
        vec![topics.opportunity.clone()]
    }

    fn version(row: &QuoteSourcesRow) -> i64 {
        row.version
    }

    fn evolve(row: Option<&QuoteSourcesRow>, record: &EventRecord) -> Result<Option<QuoteSourcesRow>, String> {
        let DomainEvent::Opportunity(event) = &record.event else { return Ok(None) };
        let this = EventRef::of(record);
        let mut row = match (row, event) {
            (None, OpportunityEvent::Created(e)) => QuoteSourcesRow {
                tenant_id: record.envelope.tenant_id.clone(),
                version: 0,
                account_id: e.account_id,
                owner_id: e.owner_id.clone(),
                team_id: e.team_id.clone(),
                shared_with: BTreeSet::new(),
                name: e.name.clone(),
                created: this.clone(),
                quotes: Vec::new(),
                revision_events: BTreeMap::new(),
                approved: Vec::new(),
            },
            (Some(row), _) => row.clone(),
            (None, e) => return Err(format!("{} before OpportunityCreated", e.event_type())),
        };
        row.version = record.envelope.aggregate_version;
        match event {
            OpportunityEvent::Shared(e) => {
                row.shared_with.insert(e.user_id.clone());
            }
            OpportunityEvent::Unshared(e) => {
                row.shared_with.remove(&e.user_id);
            }
            _ => {}
        }
        let Some(quote_id) = event.quote_id() else { return Ok(Some(row)) };
        let was_approved = row.quotes.iter().any(|q| q.id == quote_id && q.status == QuoteStatus::Approved);
        quote::evolve_quotes(&mut row.quotes, event);
        let quote = row.quotes.iter().find(|q| q.id == quote_id).ok_or_else(|| format!("{} of a quote it does not have", event.event_type()))?;
        let events = row.revision_events.entry(quote_id).or_default();
        if matches!(event, OpportunityEvent::QuoteDrafted(_) | OpportunityEvent::QuoteRevised(_)) {
            *events = vec![row.created.clone()];
        }
        events.push(this);
        if quote.status == QuoteStatus::Approved && !was_approved {
            let approved_at = crate::as_stored(record.envelope.recorded_at);
            row.approved.push(ApprovedRevision { quote: quote.clone(), approved_at, events: events.clone() });
        }
        Ok(Some(row))
    }

    async fn load(db: &mut PgConnection, ids: &[Uuid]) -> sqlx::Result<HashMap<Uuid, QuoteSourcesRow>> {
        let corrupt = |what: String| sqlx::Error::Decode(what.into());
        let mut approved: HashMap<Uuid, Vec<ApprovedRevision>> = HashMap::new();
        let revisions = sqlx::query!(
            r#"SELECT opportunity_id, approved_at, quote AS "quote: Json<QuoteView>", events AS "events: Json<Vec<EventRef>>"
               FROM approved_quote_revisions WHERE opportunity_id = ANY($1) ORDER BY approved_at, quote_id, revision"#,
            ids,
        )
        .fetch_all(&mut *db)
        .await?;
        for r in revisions {
            let quote = Quote::try_from(r.quote.0).map_err(|e| corrupt(format!("approved_quote_revisions.quote: {e}")))?;
            approved.entry(r.opportunity_id).or_default().push(ApprovedRevision { quote, approved_at: r.approved_at, events: r.events.0 });
        }
        let rows = sqlx::query!(
            r#"SELECT id, tenant_id, version, account_id, owner_id, team_id, shared_with AS "shared_with: Json<BTreeSet<String>>",
                      source AS "source: Json<StoredSource>"
               FROM quote_sources WHERE id = ANY($1)"#,
            ids,
        )
        .fetch_all(&mut *db)
        .await?;
        rows.into_iter()
            .map(|r| {
                let source = r.source.0;
                let revision_events = source.quotes.iter().map(|s| (s.quote.id, s.events.clone())).collect();
                let quotes = source
                    .quotes
                    .into_iter()
                    .map(|s| Quote::try_from(s.quote).map_err(|e| corrupt(format!("quote_sources.source: {e}"))))
                    .collect::<sqlx::Result<_>>()?;
                let row = QuoteSourcesRow {
                    tenant_id: r.tenant_id,
                    version: r.version,
                    account_id: r.account_id,
                    owner_id: r.owner_id,
                    team_id: r.team_id,
                    shared_with: r.shared_with.0,
                    name: source.name,
                    created: source.created,
                    quotes,
                    revision_events,
                    approved: approved.remove(&r.id).unwrap_or_default(),
                };
                Ok((r.id, row))
            })
            .collect()
    }

    async fn store(db: &mut PgConnection, changes: &[Change<QuoteSourcesRow>]) -> sqlx::Result<()> {
        if changes.is_empty() {
            return Ok(());
        }
        let source = |r: &QuoteSourcesRow| {
            let quotes = r
                .quotes
                .iter()
                .map(|q| StoredQuote { quote: QuoteView::from(q), events: r.revision_events.get(&q.id).cloned().unwrap_or_default() })
                .collect();
            serde_json::json!(StoredSource { name: r.name.clone(), created: r.created.clone(), quotes })
        };
        sqlx::query!(
            "INSERT INTO quote_sources (id, tenant_id, version, account_id, owner_id, team_id, shared_with, source)
             SELECT * FROM UNNEST($1::uuid[], $2::text[], $3::bigint[], $4::uuid[], $5::text[], $6::text[], $7::jsonb[], $8::jsonb[])
             ON CONFLICT (id) DO UPDATE SET version = EXCLUDED.version, owner_id = EXCLUDED.owner_id, team_id = EXCLUDED.team_id,
                 shared_with = EXCLUDED.shared_with, source = EXCLUDED.source",
            &changes.iter().map(|c| c.id).collect::<Vec<_>>(),
            &column(changes, |r| r.tenant_id.clone()),
            &column(changes, |r| r.version),
            &column(changes, |r| r.account_id),
            &column(changes, |r| r.owner_id.clone()),
            // `as _`: the macro takes an array's elements to be not null, and these may be null.
            &column(changes, |r| r.team_id.clone()) as _,
            &column(changes, |r| serde_json::json!(r.shared_with)),
            &column(changes, source),
        )
        .execute(&mut *db)
        .await?;

        let new: Vec<(&Change<QuoteSourcesRow>, &ApprovedRevision)> = changes
            .iter()
            .flat_map(|c| {
                let before = c.before.as_ref().map_or(0, |b| b.approved.len());
                c.after.approved.iter().skip(before).map(move |a| (c, a))
            })
            .collect();
        for (change, revision) in new {
            let row = &change.after;
            let q = &revision.quote;
            sqlx::query!(
                "INSERT INTO approved_quote_revisions (quote_id, revision, tenant_id, opportunity_id, approved_at, quote, events)
                 VALUES ($1, $2, $3, $4, $5, $6, $7) ON CONFLICT DO NOTHING",
                q.id,
                q.revision,
                row.tenant_id,
                change.id,
                revision.approved_at,
                serde_json::json!(QuoteView::from(q)),
                serde_json::json!(revision.events),
            )
            .execute(&mut *db)
            .await?;
            render_once(db, change.id, row, revision, RenderedFor::Approval).await?;
        }
        Ok(())
    }
}

/// The document of an approved revision: the one kept, or rendered now and kept.
pub async fn render_once(
    db: &mut PgConnection,
    opportunity_id: Uuid,
    row: &QuoteSourcesRow,
    revision: &ApprovedRevision,
    rendered_for: RenderedFor,
) -> sqlx::Result<tidemark_documents::Kept> {
    let tenant = row.tenant_id.as_str();
    if let Some(kept) = tidemark_documents::kept(db, tenant, revision.quote.id, revision.quote.revision).await? {
        return Ok(kept);
    }
    let customer = tidemark_documents::customer(db, tenant, row.account_id).await?;
    let doc = row.document(opportunity_id, revision, customer);
    let pdf = tidemark_documents::render(&doc);
    tracing::info!(quote = %doc.quote.id, revision = doc.quote.revision, bytes = pdf.len(), ?rendered_for, "rendered a quote document");
    tidemark_documents::keep(db, tenant, &doc, pdf, rendered_for).await
}
