//! Engagement commands: a mail tracker records that a contact opened an email, and the
//! sequence detector records the sequences it found. Both are automation principals with
//! policies of their own; each record's id follows from what it records, so a retry (or a
//! replay of the detector) finds it recorded and appends nothing.

use axum::extract::State;
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use axum::Json;
use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use tidemark_events::engagement::{self, Engagement, EngagementCommand, SequenceStep};
use tidemark_events::policy::Action;
use tidemark_events::contact;
use tidemark_http::{Problem, ProblemJson};
use utoipa::ToSchema;
use utoipa_axum::{router::OpenApiRouter, routes};
use uuid::Uuid;

use crate::api::{authorize, decision, run, AppState, CommandAnswer, CommandContext};

pub(crate) fn routes() -> OpenApiRouter<AppState> {
    OpenApiRouter::new().routes(routes!(email_opened)).routes(routes!(detected))
}

#[derive(Deserialize, ToSchema, Hash)]
#[serde(deny_unknown_fields)]
struct EmailOpened {
    /// The contact who opened it.
    contact_id: Uuid,
    /// The opportunity the email was about, if any.
    opportunity_id: Option<Uuid>,
    /// The tracker's id of the message: an opening of one message is recorded once.
    #[schema(schema_with = tidemark_http::openapi::name)]
    message_id: String,
    /// When it was opened (RFC 3339), by the tracker's clock: late reports are welcome.
    opened_at: DateTime<Utc>,
}

/// The answer when the record exists already: nothing was appended.
#[derive(Serialize, ToSchema)]
struct AlreadyRecorded {
    id: Uuid,
    already: bool,
}

/// Records that a contact opened an email: for a mail tracker's webhook, as the automation
/// principal `mail-tracker`. A report of a message already recorded answers 200 with
/// `already: true` and appends nothing.
#[utoipa::path(post, path = "/v1/engagements/email-opened", request_body = EmailOpened, tag = "engagement",
    responses((status = 201, body = CommandAnswer), (status = 200, body = AlreadyRecorded), (status = 400), (status = 403), (status = 404), (status = 422), (status = 503)))]
async fn email_opened(State(state): State<AppState>, ctx: CommandContext, ProblemJson(body): ProblemJson<EmailOpened>) -> Result<Response, Problem> {
    let who = ctx.principal.clone();
    let id = engagement::email_opened_id(&who.tenant_id, &body.message_id);
    authorize(&state, &who, Action::RecordEmailOpened, &format!("{}/{id}", engagement::AGGREGATE_TYPE)).await?;
    if !state.writer.exists(&who.tenant_id, contact::AGGREGATE_TYPE, body.contact_id).await {
        return Err(Problem::not_found(format!("no contact {}", body.contact_id)));
    }
    if let Some(o) = body.opportunity_id {
        if state.writer.opportunity_card(&who.tenant_id, o).await.is_none() {
            return Err(Problem::not_found(format!("no opportunity {o}")));
        }
    }
    let call = ctx.request(&state, engagement::AGGREGATE_TYPE, id, ("email-opened", &body));
    let cmd = EngagementCommand::RecordEmailOpened {
        contact_id: body.contact_id,
        opportunity_id: body.opportunity_id,
        message_id: body.message_id,
        opened_at: body.opened_at,
        now: call.0.meta.received_at,
    };
    recorded_once(id, run(&state, call, "record-email-opened", decision::<Engagement>(cmd)).await)
}

#[derive(Deserialize, ToSchema, Hash)]
#[serde(deny_unknown_fields)]
struct Detected {
    /// The rule's name.
    #[schema(schema_with = tidemark_http::openapi::name)]
    rule: String,
    /// The sequence's first event and the one that followed.
    first: Step,
    then: Step,
    contact_id: Option<Uuid>,
    opportunity_id: Option<Uuid>,
}

/// One event of a sequence.
#[derive(Deserialize, ToSchema, Hash)]
#[serde(deny_unknown_fields)]
struct Step {
    event_id: Uuid,
    #[schema(schema_with = tidemark_http::openapi::name)]
    event_type: String,
    /// Its event time (RFC 3339).
    at: DateTime<Utc>,
}

impl From<Step> for SequenceStep {
    fn from(s: Step) -> SequenceStep {
        SequenceStep { event_id: s.event_id, event_type: s.event_type, at: s.at }
    }
}

/// Records a sequence the detector found (`EngagementDetected`), as the automation
/// principal `sequence-detector`, with an `X-Rationale` that names the two events. The
/// same rule and events again answer 200 with `already: true` and append nothing.
#[utoipa::path(post, path = "/v1/engagements/detections", request_body = Detected, tag = "engagement",
    params(("X-Rationale" = String, Header, description = "Why: the rule and the two events")),
    responses((status = 201, body = CommandAnswer), (status = 200, body = AlreadyRecorded), (status = 400), (status = 403), (status = 422), (status = 503)))]
async fn detected(State(state): State<AppState>, ctx: CommandContext, ProblemJson(body): ProblemJson<Detected>) -> Result<Response, Problem> {
    let who = ctx.principal.clone();
    let id = engagement::detection_id(&who.tenant_id, &body.rule, body.first.event_id, body.then.event_id);
    authorize(&state, &who, Action::RecordDetection, &format!("{}/{id}", engagement::AGGREGATE_TYPE)).await?;
    if ctx.rationale.is_none() {
        return Err(Problem::invalid_field("X-Rationale", "a detection says why: name the rule and the two events"));
    }
    let call = ctx.request(&state, engagement::AGGREGATE_TYPE, id, ("detected", &body));
    let cmd = EngagementCommand::RecordDetection {
        rule: body.rule,
        first: body.first.into(),
        then: body.then.into(),
        contact_id: body.contact_id,
        opportunity_id: body.opportunity_id,
    };
    recorded_once(id, run(&state, call, "record-detection", decision::<Engagement>(cmd)).await)
}

/// A record that exists already is no error for whoever reports it again.
fn recorded_once(id: Uuid, answer: Result<Response, Problem>) -> Result<Response, Problem> {
    match answer {
        Err(problem) if problem.extra.get("rule").and_then(|r| r.as_str()) == Some("no-change") => Ok((StatusCode::OK, Json(AlreadyRecorded { id, already: true })).into_response()),
        other => other,
    }
}
