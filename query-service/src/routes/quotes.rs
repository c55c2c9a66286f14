//! Quotes: the document of an approved revision, and time to quote across the tenant (from
//! a deal's creation to its first submitted quote).

use axum::extract::State;
use axum::http::{header, HeaderValue};
use axum::response::{IntoResponse, Response};
use serde::{Deserialize, Serialize};
use sqlx::PgConnection;
use tidemark_documents::RenderedFor;
use tidemark_events::policy::{self, Action, Denial, Owned};
use tidemark_http::{audit, denials, Principal, Problem, ProblemPath, ProblemQuery};
use tidemark_projectors::quote_documents::{render_once, QuoteDocuments};
use tidemark_projectors::{Opportunities, Projection};
use utoipa::{IntoParams, ToSchema};
use utoipa_axum::{router::OpenApiRouter, routes};
use uuid::Uuid;

use super::approvals::to_the_millisecond;
use crate::access::tenant_wide;
use crate::cache::Cached;
use crate::freshness::{self, database};
use crate::read::{staleness_headers, AskedBound, BoundParams, Refusal};
use crate::AppState;

pub(crate) fn routes() -> OpenApiRouter<AppState> {
    OpenApiRouter::new().routes(routes!(time_to_quote)).routes(routes!(document))
}

#[derive(Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
struct DocumentParams {
    /// The approved revision (default: the latest approved one).
    revision: Option<i32>,
}

/// The PDF of an approved quote revision: its lines, totals, discount, validity, approval
/// history and provenance. Rendered when the revision was approved and kept; rendered now
/// if none is kept (after an erasure of a person it named). A strong read by default.
#[utoipa::path(get, path = "/v1/quotes/{id}/document", params(DocumentParams, BoundParams), tag = "quotes",
    responses((status = 200, content_type = "application/pdf", description = "The document; headers `Document-Revision`, `Document-Rendered-At`, `Document-Rendered-For` (approval or request), `Document-Code-Version`, and the staleness headers"),
        (status = 400), (status = 403), (status = 404), (status = 503)))]
async fn document(
    State(state): State<AppState>,
    who: Principal,
    asked: AskedBound,
    ProblemPath(id): ProblemPath<Uuid>,
    ProblemQuery(params): ProblemQuery<DocumentParams>,
) -> Result<Response, Problem> {
    let bound = asked.with_default(true);
    let target = format!("quote/{id}");
    let ends = state.freshness.log_end_offsets(&QuoteDocuments::topics(&state.topics)).await?;
    state.freshness.await_bound(&state.reads, QuoteDocuments::NAME, &ends, &bound).await?;

    let mut tx = state.pool.begin().await.map_err(database)?;
    let standing = freshness::standings(&mut tx, QuoteDocuments::NAME).await.map_err(database)?;
    let opportunity_id = sqlx::query_scalar!("SELECT opportunity_id FROM approved_quote_revisions WHERE quote_id = $1 AND tenant_id = $2 LIMIT 1", id, who.tenant_id)
        .fetch_optional(&mut *tx)
        .await
        .map_err(database)?;
    let Some(opportunity_id) = opportunity_id else {
        return Err(Problem::not_found(format!("no approved revision of quote {id}: a quote has a document once a revision is approved")));
    };
    let row = QuoteDocuments::load(&mut tx, &[opportunity_id]).await.map_err(database)?.remove(&opportunity_id);
    let row = row.ok_or_else(|| Problem::not_found(format!("no opportunity {opportunity_id} in the read model")))?;
    let subject = who.subject();
    let record = Owned { owner: &row.owner_id, team: row.team_id.as_deref(), shared_with: &row.shared_with.iter().cloned().collect::<Vec<_>>() };
    if let Err(denial) = policy::authorize(&subject, &Action::ReadOpportunity { record }) {
        return Err(denials::deny(&state.pool, &who, "read-quote-document", &target, denial).await);
    }
    if !policy::may_see_personal_fields(&subject) {
        let denial = Denial { code: "personal-data-withheld", reason: "a quote document names the customer's people, and these roles may not see personal data".into() };
        return Err(denials::deny(&state.pool, &who, "read-quote-document", &target, denial).await);
    }
    let revisions: Vec<_> = row.approved.iter().filter(|a| a.quote.id == id).collect();
    let revision = params.revision.unwrap_or_else(|| revisions.iter().map(|a| a.quote.revision).max().expect("found above"));
    let Some(approved) = revisions.iter().find(|a| a.quote.revision == revision) else {
        let known: Vec<String> = revisions.iter().map(|a| a.quote.revision.to_string()).collect();
        return Err(Problem::not_found(format!("revision {revision} of quote {id} was not approved; approved revisions: {}", known.join(", "))));
    };
    let kept = render_once(&mut tx, opportunity_id, &row, approved, RenderedFor::Request).await.map_err(database)?;
    tx.commit().await.map_err(database)?;
    audit::record_personal_read(&state.pool, &who, &target).await;

    let note = state.freshness.note(QuoteDocuments::NAME, &ends, &standing, &bound).await;
    let token = state.tokens.encode(&who.tenant_id, &freshness::answer_token(bound.token.as_ref(), &standing));
    let mut headers = staleness_headers(&note, &token);
    let text = |value: &str| HeaderValue::from_str(value).unwrap_or(HeaderValue::from_static("?"));
    headers.insert(header::CONTENT_TYPE, HeaderValue::from_static("application/pdf"));
    headers.insert(header::CONTENT_DISPOSITION, text(&format!("inline; filename=\"quote-{id}-r{revision}.pdf\"")));
    headers.insert("document-revision", HeaderValue::from(revision));
    headers.insert("document-rendered-at", text(&kept.rendered_at.to_rfc3339()));
    headers.insert("document-rendered-for", text(&kept.rendered_for));
    headers.insert("document-code-version", text(&kept.code_version));
    Ok((headers, kept.pdf).into_response())
}

/// Time to quote of one team's deals, in seconds.
#[derive(Serialize, ToSchema)]
struct TeamTimeToQuote {
    team_id: Option<String>,
    /// Deals with a submitted quote.
    quoted: i64,
    p50_seconds: Option<f64>,
    p95_seconds: Option<f64>,
    max_seconds: Option<f64>,
}

#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub(crate) struct TimeToQuote;

impl TimeToQuote {
    pub(crate) async fn run(&self, db: &mut PgConnection, tenant: &str) -> Result<Cached, Refusal> {
        let rows = sqlx::query!(
            r#"WITH quoted AS (
                   SELECT team_id, extract(epoch FROM first_quoted_at - created_at) AS took
                   FROM opportunities WHERE tenant_id = $1 AND first_quoted_at IS NOT NULL)
               SELECT team_id, count(*) AS "quoted!",
                      percentile_cont(0.5) WITHIN GROUP (ORDER BY took) AS p50, percentile_cont(0.95) WITHIN GROUP (ORDER BY took) AS p95,
                      max(took)::float8 AS max
               FROM quoted GROUP BY team_id ORDER BY team_id"#,
            tenant,
        )
        .fetch_all(db)
        .await
        .map_err(database)?;
        let secs = to_the_millisecond;
        let teams: Vec<TeamTimeToQuote> = rows
            .into_iter()
            .map(|r| TeamTimeToQuote { team_id: r.team_id, quoted: r.quoted, p50_seconds: secs(r.p50), p95_seconds: secs(r.p95), max_seconds: secs(r.max) })
            .collect();
        Ok(Cached::data(teams))
    }
}

/// Time to quote per team: how many deals have a submitted quote, and the median, 95th
/// percentile and longest time from a deal's creation to its first submitted quote. For
/// whoever sees more than their own deals (managers, finance, admins).
#[utoipa::path(get, path = "/v1/quotes/time-to-quote", params(BoundParams), tag = "quotes",
    responses((status = 200, description = "`data`: time to quote per team; `staleness`"), (status = 403), (status = 503)))]
async fn time_to_quote(State(state): State<AppState>, who: Principal, asked: AskedBound) -> Result<Response, Problem> {
    tenant_wide(&state, &who, "read-time-to-quote", "quotes/time-to-quote", "time to quote").await?;
    state.read::<Opportunities>(&who, asked.with_default(false), TimeToQuote).await
}
