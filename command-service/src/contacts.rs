//! Contact commands: create a contact (on an account or on its own), change its details,
//! link it to an account.

use axum::extract::State;
use axum::response::Response;
use serde::Deserialize;
use tidemark_events::contact::{self, ContactCommand, Details};
use tidemark_events::policy::Action;
use tidemark_events::account;
use tidemark_http::{Problem, ProblemJson, ProblemPath};
use utoipa::ToSchema;
use utoipa_axum::{router::OpenApiRouter, routes};
use uuid::Uuid;

use crate::api::{decision, authorize, run, AppState, CommandAnswer, CommandContext};

pub(crate) fn routes() -> OpenApiRouter<AppState> {
    OpenApiRouter::new().routes(routes!(create_contact)).routes(routes!(update_contact)).routes(routes!(link_contact))
}

/// A contact's details. Name, email and phone are personal data.
#[derive(Deserialize, ToSchema, Hash)]
struct ContactDetails {
    #[schema(schema_with = tidemark_http::openapi::name)]
    name: String,
    /// name@domain.tld
    #[schema(schema_with = tidemark_http::openapi::email)]
    email: Option<String>,
    /// International format, e.g. "+49 30 1234567"; stored as E.164.
    #[schema(schema_with = tidemark_http::openapi::phone)]
    phone: Option<String>,
    #[schema(schema_with = tidemark_http::openapi::name)]
    title: Option<String>,
}

/// A new contact: its details, and the account it works for, if any (later links go
/// through POST /v1/contacts/{id}/account).
#[derive(Deserialize, ToSchema, Hash)]
struct NewContact {
    #[serde(flatten)]
    details: ContactDetails,
    account_id: Option<Uuid>,
}

impl ContactDetails {
    /// The details as the domain takes them.
    fn to_domain(&self) -> Details {
        Details { name: self.name.clone(), email: self.email.clone(), phone: self.phone.clone(), title: self.title.clone() }
    }
}

/// Creates a contact, on an account or on its own.
#[utoipa::path(post, path = "/v1/contacts", request_body = NewContact, tag = "contacts",
    responses((status = 201, body = CommandAnswer), (status = 400), (status = 403), (status = 422), (status = 503)))]
async fn create_contact(State(state): State<AppState>, ctx: CommandContext, ProblemJson(body): ProblemJson<NewContact>) -> Result<Response, Problem> {
    let who = ctx.principal.clone();
    authorize(&state, &who, Action::ChangeContact, "contact/new").await?;
    let account_exists = match body.account_id {
        Some(id) => state.writer.exists(&who.tenant_id, account::AGGREGATE_TYPE, id).await,
        None => false,
    };
    let call = ctx.request_new(&state, contact::AGGREGATE_TYPE, ("create-contact", &body));
    let cmd = ContactCommand::Create { account_id: body.account_id, account_exists, details: body.details.to_domain() };
    run(&state, call, "create-contact", decision::<contact::Contact>(cmd)).await
}

/// Replaces the contact's details (send every field; an absent email or phone is removed).
#[utoipa::path(put, path = "/v1/contacts/{id}", request_body = ContactDetails, tag = "contacts",
    responses((status = 200, body = CommandAnswer), (status = 400), (status = 403), (status = 404), (status = 409), (status = 422), (status = 503)))]
async fn update_contact(
    State(state): State<AppState>,
    ctx: CommandContext,
    ProblemPath(id): ProblemPath<Uuid>,
    ProblemJson(body): ProblemJson<ContactDetails>,
) -> Result<Response, Problem> {
    authorize(&state, &ctx.principal.clone(), Action::ChangeContact, &format!("contact/{id}")).await?;
    let call = ctx.request(&state, contact::AGGREGATE_TYPE, id, ("update-contact", id, &body));
    run(&state, call, "update-contact", decision::<contact::Contact>(ContactCommand::Update { details: body.to_domain() })).await
}

#[derive(Deserialize, ToSchema, Hash)]
struct LinkContact {
    account_id: Uuid,
}

/// Links the contact to an account (replacing the account it was linked to).
#[utoipa::path(post, path = "/v1/contacts/{id}/account", request_body = LinkContact, tag = "contacts",
    responses((status = 200, body = CommandAnswer), (status = 403), (status = 404), (status = 422), (status = 503)))]
async fn link_contact(
    State(state): State<AppState>,
    ctx: CommandContext,
    ProblemPath(id): ProblemPath<Uuid>,
    ProblemJson(body): ProblemJson<LinkContact>,
) -> Result<Response, Problem> {
    let who = ctx.principal.clone();
    authorize(&state, &who, Action::ChangeContact, &format!("contact/{id}")).await?;
    let account_exists = state.writer.exists(&who.tenant_id, account::AGGREGATE_TYPE, body.account_id).await;
    let call = ctx.request(&state, contact::AGGREGATE_TYPE, id, ("link-contact", id, &body));
    run(&state, call, "link-contact", decision::<contact::Contact>(ContactCommand::Link { account_id: body.account_id, account_exists })).await
}
