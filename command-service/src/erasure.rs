//! Erasure of a person's data by crypto-shredding: `POST /v1/erasures`.
//!
//! The erasure is a command on the subject's own stream (`ContactErased`, `LeadErased`), so it
//! is audited like any change: who, when, why, through which client. Once it is appended,
//! the subject's key is destroyed, and with it every personal value the log holds for the
//! subject: the log is never rewritten. A lead and the contact it was converted into are the
//! same person; erasing either erases both.
//!
//! The event comes first and the key second, so that no erasure goes unrecorded. A crash
//! between the two leaves a recorded erasure whose key still exists: a retry with the same
//! Idempotency-Key finishes it, and so does every start of the command service.

use std::sync::Arc;

use axum::extract::State;
use axum::Json;
use serde::{Deserialize, Serialize};
use tidemark_events::contact::{self, ContactCommand};
use tidemark_events::lead::{self, LeadCommand};
use tidemark_events::policy::Action;
use tidemark_events::{AnyAggregate, Rejection};
use tidemark_http::{Problem, ProblemJson};
use tidemark_privacy::KeyStore;
use utoipa::ToSchema;
use utoipa_axum::{router::OpenApiRouter, routes};
use uuid::Uuid;

use crate::api::{authorize, consistency_token, decision, AppState, CommandContext};
use crate::writer::{CommandError, Outcome, Writer};

pub(crate) fn routes() -> OpenApiRouter<AppState> {
    OpenApiRouter::new().routes(routes!(erase))
}

fn data_subjects() -> utoipa::openapi::Object {
    tidemark_http::openapi::matching(r"^(contact|lead)/[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$")
}

#[derive(Deserialize, ToSchema, Hash)]
struct Erasure {
    /// The data subject: `contact/<id>` or `lead/<id>`.
    #[schema(schema_with = data_subjects)]
    subject: String,
    /// Why, e.g. "the person asked to be forgotten (request 2026-118)".
    #[schema(schema_with = tidemark_http::openapi::name)]
    reason: String,
}

#[derive(Serialize, ToSchema)]
struct ErasureAnswer {
    /// Every subject erased: the one named, and the lead or contact that is the same person.
    erased: Vec<ErasedSubject>,
    consistency_token: String,
}

#[derive(Serialize, ToSchema)]
struct ErasedSubject {
    subject: String,
    /// The subject's version after the erasure.
    version: i64,
    /// The subject was erased before this request.
    already: bool,
}

/// Erases a person: their name, email and phone can never be read again, from the log, the
/// read models, replays or exports. Admins only; the erasure is recorded as an event.
#[utoipa::path(post, path = "/v1/erasures", request_body = Erasure, tag = "personal data",
    responses((status = 200, body = ErasureAnswer), (status = 400), (status = 403), (status = 404), (status = 422), (status = 503)))]
async fn erase(State(state): State<AppState>, ctx: CommandContext, ProblemJson(body): ProblemJson<Erasure>) -> Result<Json<ErasureAnswer>, Problem> {
    let who = ctx.principal.clone();
    authorize(&state, &who, Action::ErasePersonalData, &body.subject).await?;
    let (kind, id) = parse_subject(&body.subject)?;
    let Some(named) = state.writer.state_of(kind, &who.tenant_id, id).await else {
        return Err(Problem::not_found(format!("the tenant has no {}", body.subject)));
    };
    let mut subjects = vec![(kind, id)];
    subjects.extend(same_person(&state.writer, &who.tenant_id, id, &named).await);

    let (request, session) = ctx.request(&state, kind, id, ("erase", &body));
    let mut erased = Vec::new();
    let mut outcomes = Vec::new();
    for (kind, id) in subjects {
        let mut meta = request.meta.clone();
        if id != request.aggregate_id {
            meta.command_id = format!("{}/{kind}/{id}", meta.command_id);
        }
        let one = crate::writer::CommandRequest { meta, aggregate_type: kind, aggregate_id: id, expected_version: None, idempotent: request.idempotent, fingerprint: request.fingerprint };
        let at = one.meta.received_at;
        let result = match kind {
            contact::AGGREGATE_TYPE => state.writer.execute(one, decision::<contact::Contact>(ContactCommand::Erase { reason: body.reason.clone(), at })).await,
            _ => state.writer.execute(one, decision::<lead::Lead>(LeadCommand::Erase { reason: body.reason.clone(), at })).await,
        };
        let already = matches!(result, Err(CommandError::Rejected(Rejection::NoChange(_))));
        let version = match result {
            Ok(outcome) => {
                let version = outcome.version;
                outcomes.push(outcome);
                version
            }
            Err(_) if already => state.writer.state_of(kind, &who.tenant_id, id).await.map_or(0, |s| version_of(&s)),
            Err(e) => return Err(e.into()),
        };
        let subject = format!("{kind}/{id}");
        if let Err(e) = state.keys.destroy(&who.tenant_id, &subject).await {
            tracing::error!(subject, error = %e, "destroying a data subject's key failed");
            return Err(Problem::unavailable(format!("the erasure of {subject} is recorded, but its key could not be destroyed yet; retry with the same Idempotency-Key")));
        }
        if kind == contact::AGGREGATE_TYPE {
            forget_in_documents(&state.pool, &[(who.tenant_id.clone(), id)]).await.map_err(|e| {
                tracing::error!(subject, error = %e, "deleting the quote documents that name an erased person failed");
                Problem::unavailable(format!("the erasure of {subject} is recorded, but documents naming them could not be deleted yet; retry with the same Idempotency-Key"))
            })?;
        }
        tracing::info!(subject, already, "personal data erased");
        erased.push(ErasedSubject { subject, version, already });
    }
    let events = outcomes.iter().flat_map(|o: &Outcome| o.events.iter());
    Ok(Json(ErasureAnswer { erased, consistency_token: consistency_token(&session, events) }))
}

fn parse_subject(subject: &str) -> Result<(&'static str, Uuid), Problem> {
    let bad = || Problem::invalid_field("subject", format!("'{subject}' is not a data subject: give contact/<id> or lead/<id>"));
    let (kind, id) = subject.split_once('/').ok_or_else(bad)?;
    let kind = match kind {
        contact::AGGREGATE_TYPE => contact::AGGREGATE_TYPE,
        lead::AGGREGATE_TYPE => lead::AGGREGATE_TYPE,
        _ => return Err(bad()),
    };
    Ok((kind, id.parse().map_err(|_| bad())?))
}

/// The lead a contact was converted from, or the contact a lead was converted into.
async fn same_person(writer: &Writer, tenant: &str, id: Uuid, named: &AnyAggregate) -> Vec<(&'static str, Uuid)> {
    match named {
        AnyAggregate::Lead(l) => l.conversion.iter().map(|c| (contact::AGGREGATE_TYPE, c.contact_id)).collect(),
        _ => writer
            .all::<lead::Lead>()
            .await
            .into_iter()
            .filter(|(t, _, l)| t == tenant && l.conversion.as_ref().is_some_and(|c| c.contact_id == id))
            .map(|(_, lead_id, _)| (lead::AGGREGATE_TYPE, lead_id))
            .collect(),
    }
}

fn version_of(state: &AnyAggregate) -> i64 {
    match state {
        AnyAggregate::Contact(c) => c.version,
        AnyAggregate::Lead(l) => l.version,
        _ => 0,
    }
}

/// Deletes the kept quote documents that name these erased contacts (tenant, contact), after
/// their keys are destroyed, so that no document rendered meanwhile still names them (see
/// `tidemark_documents`).
async fn forget_in_documents(pool: &sqlx::PgPool, people: &[(String, Uuid)]) -> sqlx::Result<()> {
    let mut db = pool.acquire().await?;
    let deleted = tidemark_documents::forget_people(&mut db, people).await?;
    if deleted > 0 {
        tracing::info!(people = people.len(), deleted, "deleted the quote documents that named erased people");
    }
    Ok(())
}

/// Destroys the key of every subject whose erasure is recorded, then deletes the documents
/// that name an erased contact: finishes erasures that a crash interrupted. Run at start.
pub async fn finish_erasures(writer: &Writer, keys: Arc<dyn KeyStore>, pool: &sqlx::PgPool) -> Result<usize, tidemark_privacy::KeyError> {
    let mut finished = 0;
    let mut erased_contacts = Vec::new();
    for (tenant, id, state) in writer.all_of(contact::AGGREGATE_TYPE, false).await.into_iter().chain(writer.all_of(lead::AGGREGATE_TYPE, false).await) {
        let (kind, erased) = match &state {
            AnyAggregate::Contact(c) => (contact::AGGREGATE_TYPE, c.erased_at.is_some()),
            AnyAggregate::Lead(l) => (lead::AGGREGATE_TYPE, l.erased_at.is_some()),
            _ => continue,
        };
        let subject = format!("{kind}/{id}");
        if erased && keys.key_for_opening(&tenant, &subject).await?.is_some() {
            keys.destroy(&tenant, &subject).await?;
            tracing::warn!(subject, "finished an erasure that was recorded but whose key was not destroyed");
            finished += 1;
        }
        if erased && kind == contact::AGGREGATE_TYPE {
            erased_contacts.push((tenant, id));
        }
    }
    forget_in_documents(pool, &erased_contacts).await.map_err(|e| tidemark_privacy::KeyError::Store(e.to_string()))?;
    Ok(finished)
}
