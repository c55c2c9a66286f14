//! Offline sync: a client that worked without a connection sends the intents it recorded,
//! and each is decided in order against the opportunity as it is now (see
//! `tidemark_events::offline` for how changes meet). Each intent has its own key: sending a
//! batch again answers every intent as the first time and changes nothing.
//!
//! Also here: resolving a review (the conflicts that no rule merges), and setting a
//! preference field online.

use std::sync::{Arc, Mutex};

use axum::extract::State;
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::Json;
use chrono::{DateTime, NaiveDate, Utc};
use serde::{Deserialize, Serialize};
use serde_json::{json, Value};
use tidemark_events::offline::{self, Change, Choice, Intent, OfflineOrigin, Preference, Side, Verdict};
use tidemark_events::opportunity::{self, Opportunity, OpportunityCommand, Stage};
use tidemark_events::quote::LineItem;
use tidemark_events::{Aggregate, DomainEvent, Money, Rejection};
use tidemark_http::{Problem, ProblemJson, ProblemPath};
use utoipa::ToSchema;
use utoipa_axum::{router::OpenApiRouter, routes};
use uuid::Uuid;

use crate::api::{consistency_token, may_change, opportunity_decision, refused, run, AppState, CommandAnswer, CommandContext};
use crate::writer::{fingerprint, AppendedEvent, CommandError};

pub(crate) fn routes() -> OpenApiRouter<AppState> {
    OpenApiRouter::new().routes(routes!(sync)).routes(routes!(resolve_review)).routes(routes!(set_preference))
}

/// A batch holds at most this many intents; a client with more sends several, in order.
pub const MAX_INTENTS: usize = 100;

#[derive(Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
struct SyncBatch {
    /// In the order they were recorded; applied in this order.
    #[schema(min_items = 1, max_items = 100)]
    intents: Vec<IntentBody>,
}

#[derive(Deserialize, Serialize, ToSchema, Hash)]
#[serde(deny_unknown_fields)]
struct IntentBody {
    /// The intent's own idempotency key, unique per sender (a UUID, say).
    #[schema(schema_with = ids)]
    idempotency_key: String,
    opportunity_id: Uuid,
    /// The version of the opportunity the client saw when it recorded the intent.
    #[serde(deserialize_with = "whole")]
    #[schema(schema_with = versions)]
    base_version: i64,
    /// When the device recorded it (RFC 3339): last writer wins by this.
    device_time: DateTime<Utc>,
    command: IntentCommand,
}

/// A version or revision: 1, 2, 3 …
fn versions() -> utoipa::openapi::Object {
    tidemark_http::openapi::integer_in(1..=i32::MAX as i64)
}

/// A whole number, also when written as 3.0 (JSON does not tell the two apart).
fn whole<'de, D: serde::Deserializer<'de>, T: TryFrom<i64>>(d: D) -> Result<T, D::Error> {
    let number = serde_json::Number::deserialize(d)?;
    let whole = number.as_i64().or_else(|| number.as_f64().filter(|f| f.fract() == 0.0 && f.abs() < 9.0e15).map(|f| f as i64));
    whole.and_then(|n| T::try_from(n).ok()).ok_or_else(|| serde::de::Error::custom(format!("{number} is not a version such as 3")))
}

/// An id, as `tidemark_http::text::is_id` takes it.
fn ids() -> utoipa::openapi::Object {
    tidemark_http::openapi::matching(r"^[A-Za-z0-9_.:/-]{1,64}$")
}

fn preferences() -> utoipa::openapi::Object {
    tidemark_http::openapi::one_of(Preference::names())
}

fn stages() -> utoipa::openapi::Object {
    tidemark_http::openapi::one_of(opportunity::STAGES.iter().map(|(stage, _)| stage.name()))
}

/// A side of a review (`offline::Side`): one of a stage, an amount or a quote's lines.
fn sides() -> utoipa::openapi::Schema {
    use utoipa::openapi::schema::{AdditionalProperties, ObjectBuilder, OneOfBuilder};
    let quote = ObjectBuilder::new()
        .property("lines", crate::quotes::line_items())
        .property("valid_until", tidemark_http::openapi::date())
        .required("lines")
        .required("valid_until")
        .additional_properties(Some(AdditionalProperties::FreeForm(false)));
    let one = |name: &str, schema: utoipa::openapi::RefOr<utoipa::openapi::Schema>| {
        ObjectBuilder::new().property(name, schema).required(name).additional_properties(Some(AdditionalProperties::FreeForm(false))).build()
    };
    let sides = OneOfBuilder::new()
        .item(one("stage", stages().into()))
        .item(one("amount", tidemark_http::openapi::money().into()))
        .item(one("quote", quote.build().into()));
    utoipa::openapi::Schema::OneOf(sides.build())
}

fn choices() -> utoipa::openapi::Object {
    tidemark_http::openapi::one_of(Choice::names())
}

/// What the intent changes.
#[derive(Deserialize, Serialize, ToSchema, Hash)]
#[serde(tag = "type", rename_all = "snake_case", deny_unknown_fields)]
enum IntentCommand {
    /// A preference field: close_date, next_step or description (null clears the last two).
    SetPreference {
        #[schema(schema_with = preferences)]
        field: Preference,
        value: Option<String>,
    },
    MoveStage {
        #[schema(schema_with = stages)]
        stage: Stage,
    },
    ChangeAmount {
        #[schema(schema_with = tidemark_http::openapi::money)]
        amount: Money,
    },
    /// The quote's lines as the client wants them, based on `base_revision`.
    ReviseQuote {
        quote_id: Uuid,
        #[serde(deserialize_with = "whole")]
        #[schema(schema_with = versions)]
        base_revision: i32,
        #[schema(schema_with = crate::quotes::line_items)]
        lines: Vec<LineItem>,
        #[schema(schema_with = tidemark_http::openapi::date)]
        valid_until: NaiveDate,
    },
}

impl IntentCommand {
    fn change(&self) -> Change {
        match self {
            IntentCommand::SetPreference { field, value } => Change::SetPreference { field: *field, value: value.clone() },
            IntentCommand::MoveStage { stage } => Change::MoveStage { stage: *stage },
            IntentCommand::ChangeAmount { amount } => Change::ChangeAmount { amount: amount.clone() },
            IntentCommand::ReviseQuote { quote_id, base_revision, lines, valid_until } => {
                Change::ReviseQuote { quote_id: *quote_id, base_revision: *base_revision, lines: lines.clone(), valid_until: *valid_until }
            }
        }
    }
}

/// How one intent went.
#[derive(Serialize, Deserialize, ToSchema, Clone)]
struct IntentResult {
    idempotency_key: String,
    opportunity_id: Uuid,
    /// applied, merged, needs_review or refused.
    outcome: String,
    /// How it was merged (merged), or what happened (needs_review).
    #[serde(skip_serializing_if = "Option::is_none")]
    how: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    review_id: Option<Uuid>,
    /// The opportunity's version after it.
    #[serde(skip_serializing_if = "Option::is_none")]
    version: Option<i64>,
    /// The types of the events it appended.
    #[serde(default)]
    events: Vec<String>,
    /// Where they were appended, for the answer's consistency token.
    #[serde(skip)]
    written: Vec<AppendedEvent>,
    /// Why it was refused: the problem an online command would have got.
    #[serde(skip_serializing_if = "Option::is_none")]
    #[schema(value_type = Option<Object>)]
    problem: Option<Value>,
    /// This answer is the one given when the intent was first synced.
    #[serde(default)]
    replayed: bool,
}

#[derive(Serialize, ToSchema)]
struct SyncAnswer {
    results: Vec<IntentResult>,
    /// Read-your-writes for everything the batch appended.
    consistency_token: String,
}

/// Syncs intents recorded offline, in order. Each outcome is one of: `applied`; `merged`
/// (with how: last writer wins for preference fields, a three-way merge of quote lines);
/// `needs_review` (stage, amount or the same quote line changed on both sides: a review
/// opens, see `/v1/reviews`); `refused` (with the problem). A batch sent again gets the
/// same answers and changes nothing. A malformed batch is refused whole (400).
#[utoipa::path(post, path = "/v1/sync", request_body = SyncBatch, tag = "sync",
    responses((status = 200, body = SyncAnswer), (status = 400), (status = 401), (status = 503)))]
async fn sync(State(state): State<AppState>, headers: HeaderMap, ctx: CommandContext, ProblemJson(batch): ProblemJson<SyncBatch>) -> Result<Response, Problem> {
    if batch.intents.is_empty() || batch.intents.len() > MAX_INTENTS {
        return Err(Problem::invalid_field("intents", format!("a batch holds 1 to {MAX_INTENTS} intents")));
    }
    let mut keys = std::collections::HashSet::new();
    for intent in &batch.intents {
        tidemark_http::text::require_id("idempotency_key", &intent.idempotency_key)?;
        if !keys.insert(intent.idempotency_key.as_str()) {
            let detail = format!("the key '{}' names two intents of the batch", intent.idempotency_key);
            return Err(Problem::new(StatusCode::UNPROCESSABLE_ENTITY, "duplicate-intent-key", "Two intents of the batch share a key", detail).with("field", "intents"));
        }
    }
    let mut results = Vec::new();
    for intent in &batch.intents {
        match sync_one(&state, &headers, &ctx, intent).await {
            Ok(result) => results.push(result),
            // Stop at the first intent that could not be decided: the ones after it may
            // depend on it. The answer says how far the batch went; a retry of the whole
            // batch finds those done.
            Err(problem) => {
                let done = serde_json::to_value(&results).expect("results serialize");
                return Err(problem.with("results", done).with("stopped_at", intent.idempotency_key.clone()));
            }
        }
    }
    let token = consistency_token(&ctx.session(&state), results.iter().flat_map(|r| r.written.iter()));
    Ok(Json(SyncAnswer { results, consistency_token: token }).into_response())
}

/// Decides one intent, or answers it as the first time; `Err` only when it could not be
/// decided at all (the log or the database did not answer).
async fn sync_one(state: &AppState, headers: &HeaderMap, ctx: &CommandContext, body: &IntentBody) -> Result<IntentResult, Problem> {
    let who = &ctx.principal;
    let print = fingerprint(body).to_string();
    let stored = sqlx::query!(
        "SELECT fingerprint, outcome FROM sync_outcomes WHERE tenant_id = $1 AND actor_id = $2 AND intent_key = $3",
        who.tenant_id,
        who.actor_id,
        body.idempotency_key,
    )
    .fetch_optional(&state.pool)
    .await
    .map_err(|e| Problem::unavailable(format!("the database did not answer: {e}")))?;
    if let Some(stored) = stored {
        if stored.fingerprint != print {
            let problem = Problem::new(StatusCode::UNPROCESSABLE_ENTITY, "idempotency-key-reused", "The Idempotency-Key belongs to another request", "this key was synced with another intent");
            return Ok(refusal(body, problem));
        }
        let mut first: IntentResult = serde_json::from_value(stored.outcome).map_err(|e| Problem::unavailable(format!("a stored outcome is unreadable: {e}")))?;
        first.replayed = true;
        return Ok(first);
    }
    let id = body.opportunity_id;
    let (request, _) = ctx.request_keyed(state, opportunity::AGGREGATE_TYPE, id, Some(body.idempotency_key.clone()), (id, body));
    let review_id = Uuid::new_v5(&id, format!("{}\0{}\0{}", who.tenant_id, who.actor_id, body.idempotency_key).as_bytes());
    let origin = OfflineOrigin { intent_key: body.idempotency_key.clone(), device_time: body.device_time, base_version: body.base_version };
    let intent = Intent { origin, change: body.command.change(), review_id };
    let today = request.meta.received_at.date_naive();
    // The command, as the policy reads it (an amount is checked against the principal's limits).
    let command = OpportunityCommand::Offline { intent: intent.clone(), author: who.actor_id.clone(), today };
    // The verdict comes out of the decision beside its events.
    let verdict: Arc<Mutex<Option<Verdict>>> = Arc::default();
    let decide = {
        let (verdict, subject, author) = (verdict.clone(), who.subject(), who.actor_id.clone());
        move |any: Option<&tidemark_events::AnyAggregate>| {
            let opp = any.and_then(Opportunity::of).ok_or(Rejection::NotFound)?;
            may_change(opp, &command, &subject)?;
            let (events, v) = offline::decide(opp, &intent, &author, today)?;
            *verdict.lock().expect("not poisoned") = Some(v);
            if events.is_empty() {
                return Err(CommandError::Rejected(Rejection::NoChange("the intent changes nothing")));
            }
            Ok::<Vec<DomainEvent>, CommandError>(events.into_iter().map(DomainEvent::Opportunity).collect())
        }
    };
    let command_id = request.meta.command_id.clone();
    let result = match state.writer.execute(request, decide).await {
        Ok(outcome) => {
            let verdict = verdict.lock().expect("not poisoned").take().filter(|_| !outcome.replayed);
            let (outcome_name, how, review) = match verdict {
                Some(Verdict::Applied) => ("applied", None, None),
                Some(Verdict::Merged(how)) => ("merged", Some(how), None),
                Some(Verdict::NeedsReview(review)) => ("needs_review", Some("a concurrent change that no rule merges: a review is open".into()), Some(review)),
                // Decided by an earlier request whose answer was lost (a crash, or a race of
                // two sends): its events tell whether a review opened, not how it merged.
                None if outcome.events.iter().any(|e| e.event_type == "OfflineReviewOpened") => ("needs_review", None, Some(review_id)),
                None => ("applied", Some("decided by an earlier send of this intent".into()), None),
            };
            IntentResult {
                idempotency_key: body.idempotency_key.clone(),
                opportunity_id: id,
                outcome: outcome_name.into(),
                how,
                review_id: review,
                version: Some(outcome.version),
                events: outcome.events.iter().map(|e| e.event_type.clone()).collect(),
                written: outcome.events,
                problem: None,
                replayed: false,
            }
        }
        Err(CommandError::Rejected(Rejection::NoChange(_))) if verdict.lock().expect("not poisoned").is_some() => {
            let how = match verdict.lock().expect("not poisoned").take() {
                Some(Verdict::Merged(how)) => how,
                _ => "nothing changed".into(),
            };
            let version = state.writer.state::<Opportunity>(&who.tenant_id, id).await.map(|o| o.version);
            IntentResult { idempotency_key: body.idempotency_key.clone(), opportunity_id: id, outcome: "merged".into(), how: Some(how), review_id: None, version, events: vec![], written: vec![], problem: None, replayed: false }
        }
        // The intent goes, as a batch of one, to the writer that owns its shard.
        Err(CommandError::NotOwner { shard }) => return state.forwarding.intent_to_owner(headers, shard, json!({"intents": [body]})).await,
        Err(e @ (CommandError::Unavailable(_) | CommandError::Internal { .. } | CommandError::Unreadable { .. })) => return Err(e.into()),
        Err(e) => {
            let problem = refused(state, who, ("sync-intent", &format!("opportunity/{id}"), &command_id), e).await;
            refusal(body, problem)
        }
    };
    // Two sends racing each other: the first stored answer is the answer.
    let stored = sqlx::query_scalar!(
        "INSERT INTO sync_outcomes (tenant_id, actor_id, intent_key, fingerprint, outcome) VALUES ($1, $2, $3, $4, $5)
         ON CONFLICT (tenant_id, actor_id, intent_key) DO UPDATE SET intent_key = EXCLUDED.intent_key RETURNING outcome",
        who.tenant_id,
        who.actor_id,
        body.idempotency_key,
        print,
        serde_json::to_value(&result).expect("results serialize"),
    )
    .fetch_one(&state.pool)
    .await
    .map_err(|e| Problem::unavailable(format!("the database did not answer: {e}")))?;
    match serde_json::from_value::<IntentResult>(stored) {
        Ok(first) if first.outcome != result.outcome || first.version != result.version => Ok(IntentResult { replayed: true, ..first }),
        _ => Ok(result),
    }
}

fn refusal(body: &IntentBody, problem: Problem) -> IntentResult {
    IntentResult {
        idempotency_key: body.idempotency_key.clone(),
        opportunity_id: body.opportunity_id,
        outcome: "refused".into(),
        how: None,
        review_id: None,
        version: None,
        events: vec![],
        written: vec![],
        problem: Some(serde_json::to_value(problem).expect("a problem serializes")),
        replayed: false,
    }
}

#[derive(Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
struct Resolution {
    /// mine (the offline intent's value), theirs (the server's stands) or edit (give `value`).
    #[schema(schema_with = choices)]
    choose: Choice,
    /// For an edit: the value that should stand, shaped as the review's sides, e.g.
    /// {"stage": "Proposal"}, {"amount": {"value": "9000.00", "currency": "EUR"}} or
    /// {"quote": {"lines": [...], "valid_until": "2027-01-31"}}.
    #[schema(schema_with = sides)]
    value: Option<Value>,
}

/// Resolves a review by choosing a side or editing the value. The resolution is a command on
/// the opportunity: its events carry the value chosen, and name the offline intent and the
/// version of the concurrent change (lineage to both sides).
#[utoipa::path(post, path = "/v1/opportunities/{id}/reviews/{review_id}/resolve", request_body = Resolution, tag = "sync",
    responses((status = 200, body = CommandAnswer), (status = 400), (status = 403), (status = 404), (status = 422), (status = 503)))]
async fn resolve_review(
    State(state): State<AppState>,
    ctx: CommandContext,
    ProblemPath((id, review_id)): ProblemPath<(Uuid, Uuid)>,
    ProblemJson(body): ProblemJson<Resolution>,
) -> Result<Response, Problem> {
    let subject = ctx.principal.subject();
    let by = ctx.principal.actor_id.clone();
    // A value of the wrong shape is refused by the domain, which knows the review's subject.
    let edited = body
        .value
        .map(|v| {
            serde_json::from_value::<Side>(v).map_err(|e| {
                let detail = format!("value: not a stage, amount or quote as the review's sides show them ({e})");
                Problem::new(StatusCode::UNPROCESSABLE_ENTITY, "review-value-shape", "The value does not fit the review", detail).with("field", "value")
            })
        })
        .transpose()?;
    let call = ctx.request(&state, opportunity::AGGREGATE_TYPE, id, ("resolve-review", id, review_id, body.choose, &edited));
    let today = call.0.meta.received_at.date_naive();
    let command = OpportunityCommand::ResolveReview { review_id, choice: body.choose, edited, by, today };
    run(&state, call, "resolve-review", opportunity_decision(command, subject)).await
}

#[derive(Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
struct SetPreference {
    /// close_date, next_step or description.
    #[schema(schema_with = preferences)]
    field: Preference,
    /// The new value (a date such as 2027-03-31 for the close date); null clears the others.
    value: Option<String>,
}

/// Sets a preference field of the opportunity (close date, next step, description). Last
/// writer wins between this and offline intents, by the time each was written.
#[utoipa::path(post, path = "/v1/opportunities/{id}/preferences", request_body = SetPreference, tag = "opportunities",
    responses((status = 200, body = CommandAnswer), (status = 400), (status = 404), (status = 409), (status = 422), (status = 503)))]
async fn set_preference(State(state): State<AppState>, ctx: CommandContext, ProblemPath(id): ProblemPath<Uuid>, ProblemJson(body): ProblemJson<SetPreference>) -> Result<Response, Problem> {
    set_preference_now(&state, ctx, id, body.field, body.value).await
}

/// A preference set online, written at the request's arrival: the time last-writer-wins
/// weighs it by against offline intents.
pub(crate) async fn set_preference_now(state: &AppState, ctx: CommandContext, id: Uuid, field: Preference, value: Option<String>) -> Result<Response, Problem> {
    let subject = ctx.principal.subject();
    let call = ctx.request(state, opportunity::AGGREGATE_TYPE, id, ("set-preference", id, field, &value));
    let command = OpportunityCommand::SetPreference { field, value, at: call.0.meta.received_at };
    run(state, call, "change-opportunity", opportunity_decision(command, subject)).await
}
