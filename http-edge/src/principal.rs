//! Who is asking: the one place where a request's principal is decided, from a verified
//! bearer token, and where each principal's and tenant's request rate is held in check.

use std::num::NonZeroU32;
use std::sync::Arc;

use axum::extract::FromRequestParts;
use axum::http::request::Parts;
use axum::http::{header, StatusCode};
use governor::clock::{Clock, DefaultClock};
use governor::{DefaultKeyedRateLimiter, Quota, RateLimiter};
use tidemark_events::policy::{Role, Subject};
use tidemark_events::ActorKind;

use crate::auth::{AuthError, Authenticator};
use crate::{Problem, CORRELATION_ID};

/// The client of a token that names none (no `client_id` or `azp` claim).
pub const UNNAMED_CLIENT: &str = "unnamed-client";

#[derive(Debug, Clone, PartialEq)]
pub struct Principal {
    pub tenant_id: String,
    pub actor_id: String,
    pub actor_kind: ActorKind,
    pub roles: Vec<Role>,
    pub team: Option<String>,
    pub manager: Option<String>,
    pub client_id: String,
    pub correlation_id: String,
}

impl Principal {
    pub fn subject(&self) -> Subject {
        Subject { user: self.actor_id.clone(), kind: self.actor_kind, roles: self.roles.clone(), team: self.team.clone() }
    }
}

/// Requests per second, and the burst allowed on top.
#[derive(Debug, Clone, Copy)]
pub struct Rate {
    pub per_second: u32,
    pub burst: u32,
}

/// What every service's edge needs to decide who asks: the keys, and the rate limits.
pub struct Gate {
    pub auth: Authenticator,
    per_principal: DefaultKeyedRateLimiter<String>,
    per_tenant: DefaultKeyedRateLimiter<String>,
}

fn limiter(rate: Rate) -> DefaultKeyedRateLimiter<String> {
    let per_second = NonZeroU32::new(rate.per_second.max(1)).expect("positive");
    let burst = NonZeroU32::new(rate.burst.max(rate.per_second).max(1)).expect("positive");
    RateLimiter::keyed(Quota::per_second(per_second).allow_burst(burst))
}

impl Gate {
    pub fn new(auth: Authenticator, per_principal: Rate, per_tenant: Rate) -> Gate {
        Gate { auth, per_principal: limiter(per_principal), per_tenant: limiter(per_tenant) }
    }

    fn admit(&self, tenant: &str, principal: &str) -> Result<(), Problem> {
        let checks = [(&self.per_tenant, tenant.to_string(), "tenant"), (&self.per_principal, format!("{tenant}/{principal}"), "principal")];
        for (limiter, key, what) in checks {
            if let Err(not_until) = limiter.check_key(&key) {
                let wait = not_until.wait_time_from(DefaultClock::default().now());
                return Err(Problem::new(StatusCode::TOO_MANY_REQUESTS, "rate-limited", "Too many requests", format!("the {what}'s request rate is exceeded; retry later"))
                    .retry_after(wait.as_secs().max(1)));
            }
        }
        Ok(())
    }
}

fn header<'a>(parts: &'a Parts, name: &str) -> Option<&'a str> {
    parts.headers.get(name).and_then(|v| v.to_str().ok()).map(str::trim).filter(|s| !s.is_empty())
}

fn unauthenticated(error: AuthError) -> Problem {
    Problem::new(StatusCode::UNAUTHORIZED, error.code(), "Not authenticated", error.to_string()).www_authenticate()
}

impl<S: Send + Sync> FromRequestParts<S> for Principal {
    type Rejection = Problem;

    async fn from_request_parts(parts: &mut Parts, _: &S) -> Result<Self, Problem> {
        // Another extractor of this request (a consistency token's) may have asked already:
        // the token is verified, and the request admitted, once.
        if let Some(known) = parts.extensions.get::<Principal>() {
            return Ok(known.clone());
        }
        let gate = parts.extensions.get::<Arc<Gate>>().expect("the edge layers add the gate").clone();
        let token = header(parts, header::AUTHORIZATION.as_str())
            .ok_or(AuthError::Missing)
            .and_then(|h| h.strip_prefix("Bearer ").or(h.strip_prefix("bearer ")).ok_or(AuthError::Malformed))
            .map_err(unauthenticated)?;
        let claims = gate.auth.verify(token.trim()).map_err(unauthenticated)?;
        // The edge made one where the client sent none.
        let correlation_id = header(parts, CORRELATION_ID.as_str()).unwrap_or_default().to_string();
        crate::text::require_id("X-Correlation-Id", &correlation_id)?;
        if claims.tenant.is_empty() || claims.sub.is_empty() {
            return Err(unauthenticated(AuthError::BadClaims));
        }
        let actor_kind = ActorKind::try_from(claims.kind.clone().unwrap_or_else(|| "user".into())).map_err(|_| unauthenticated(AuthError::BadClaims))?;
        // Limits hold clients in check; Tidemark's own calls (registering schemas) pass.
        if actor_kind != ActorKind::System {
            gate.admit(&claims.tenant, &claims.sub)?;
        }
        let principal = Principal {
            // Unknown role names grant nothing, so they are dropped rather than refused.
            roles: claims.roles.iter().filter_map(|r| Role::parse(r)).collect(),
            tenant_id: claims.tenant,
            actor_id: claims.sub,
            actor_kind,
            team: claims.team,
            manager: claims.manager,
            // The client a token was issued to, never one a header names.
            client_id: claims.client_id.or(claims.azp).unwrap_or_else(|| UNNAMED_CLIENT.to_string()),
            correlation_id,
        };
        parts.extensions.insert(principal.clone());
        Ok(principal)
    }
}
