//! The sales console's own small service. The page itself (`web/`, built with Vite into
//! `web/dist`) talks only to the public command and query APIs, with the user's bearer
//! token; this service serves its files, tells it where those APIs are (`/config.json`),
//! and, on the local shared secret, stands in for an identity provider: it mints tokens
//! for the demo users (`/sign-in`). With a real identity provider the page signs in by
//! OIDC (authorization code with PKCE) and `/sign-in` does not exist.

use std::path::PathBuf;
use std::sync::Arc;

use axum::extract::{Request, State};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use axum::{Json, Router};
use serde::{Deserialize, Serialize};
use tidemark_http::{Problem, ProblemJson};
use tower::ServiceExt;
use tower_http::services::{ServeDir, ServeFile};

/// Where the built page is, unless `TIDEMARK_CONSOLE_ASSETS` says otherwise.
pub const BUILT_ASSETS: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/web/dist");

/// Also what the page reads first (`/config.json`): where the APIs are and how to sign in.
#[derive(Serialize)]
pub struct ConsoleConfig {
    /// The command API as the browser reaches it.
    pub command_api: String,
    /// The query API as the browser reaches it.
    pub query_api: String,
    pub sign_in: SignIn,
    /// The built page: `index.html` and its assets.
    #[serde(skip)]
    pub assets: PathBuf,
}

/// How the page gets a bearer token.
#[derive(Serialize)]
#[serde(tag = "kind", rename_all = "snake_case")]
pub enum SignIn {
    /// The local shared secret: the user picks a demo user, this service mints the token.
    Demo {
        users: Vec<DemoUser>,
        #[serde(skip)]
        mint: Arc<dyn Fn(&str) -> Option<String> + Send + Sync>,
    },
    /// An identity provider: the page runs the authorization-code flow with PKCE itself, as
    /// a public client, and calls the APIs with the access token it gets.
    Oidc { issuer: String, client_id: String, scope: String },
}

/// A demo user as the sign-in picker shows them.
#[derive(Clone, Serialize)]
pub struct DemoUser {
    pub name: String,
    pub roles: Vec<String>,
    pub team: Option<String>,
}

pub fn router(config: ConsoleConfig) -> Router {
    let assets = config.assets.clone();
    Router::new()
        .route("/config.json", get(page_config))
        .route("/sign-in", post(sign_in))
        .route("/healthz", get(|| async { "ok" }))
        .with_state(Arc::new(config))
        .fallback(move |request: Request| page(assets.clone(), request))
}

/// A file of the built page; any other path is the page itself, whose router reads it.
async fn page(assets: PathBuf, request: Request) -> Response {
    let index = assets.join("index.html");
    if !index.exists() {
        // A clear answer instead of a blank page: the page is built from sources, not committed.
        return Problem::unavailable(format!("the console is not built (no {}): run infra/up, or `npm ci && npm run build` in console/web", index.display()))
            .into_response();
    }
    match ServeDir::new(&assets).fallback(ServeFile::new(index)).oneshot(request).await {
        Ok(response) => response.into_response(),
        Err(never) => match never {},
    }
}

async fn page_config(State(config): State<Arc<ConsoleConfig>>) -> Response {
    Json(&*config).into_response()
}

#[derive(Deserialize)]
struct SignInRequest {
    user: String,
}

#[derive(Serialize)]
struct SignedIn {
    token: String,
}

async fn sign_in(State(config): State<Arc<ConsoleConfig>>, ProblemJson(request): ProblemJson<SignInRequest>) -> Result<Response, Problem> {
    let SignIn::Demo { users, mint } = &config.sign_in else {
        return Err(Problem::not_found("this deployment signs in with its identity provider (see /config.json)"));
    };
    if !users.iter().any(|u| u.name == request.user) {
        return Err(Problem::invalid_field("user", format!("{} is not a demo user", request.user)));
    }
    let token = mint(&request.user).ok_or_else(|| Problem::unavailable("no token could be minted"))?;
    Ok(Json(SignedIn { token }).into_response())
}
