//! Bearer JWTs: HS256 with a shared secret for the embedded default; RS256 or ES256 with
//! published keys (a JWKS file or URL, as OIDC providers publish them) in production.

use jsonwebtoken::errors::ErrorKind;
use jsonwebtoken::jwk::JwkSet;
use jsonwebtoken::{Algorithm, DecodingKey, EncodingKey, Header, Validation};
use serde::{Deserialize, Serialize};

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Claims {
    pub sub: String,
    pub tenant: String,
    #[serde(default)]
    pub roles: Vec<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub team: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub manager: Option<String>,
    /// user (default), automation or system.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub kind: Option<String>,
    pub exp: u64,
    #[serde(default)]
    pub iat: u64,
    /// The client the token was issued to: OAuth's `client_id`, or OpenID Connect's
    /// authorized party (`azp`). Events record it as the client they came through.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub client_id: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub azp: Option<String>,
}

/// Why a token was not accepted. The client learns the kind, never the token's content.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum AuthError {
    #[error("send a bearer token: Authorization: Bearer <token>")]
    Missing,
    #[error("the bearer token is not a well-formed JWT")]
    Malformed,
    #[error("the bearer token has expired")]
    Expired,
    #[error("the bearer token's signature or algorithm is not accepted")]
    BadSignature,
    #[error("the bearer token lacks a required claim (sub, tenant, exp), names another audience or issuer, or a claim holds a control character")]
    BadClaims,
    #[error("the bearer token is not valid yet (nbf)")]
    NotYetValid,
}

impl AuthError {
    pub fn code(self) -> &'static str {
        match self {
            AuthError::Missing => "missing-token",
            AuthError::Malformed => "malformed-token",
            AuthError::Expired => "expired-token",
            AuthError::BadSignature => "invalid-signature",
            AuthError::BadClaims => "invalid-claims",
            AuthError::NotYetValid => "token-not-yet-valid",
        }
    }
}

#[derive(Debug, thiserror::Error)]
pub enum AuthSetupError {
    #[error("cannot read the JWKS at {0}: {1}")]
    Fetch(String, String),
    #[error("the JWKS at {0} is not a JSON Web Key Set: {1}")]
    Parse(String, String),
}

enum Keys {
    Shared { decoding: DecodingKey, encoding: EncodingKey },
    Published(JwkSet),
}

pub struct Authenticator {
    keys: Keys,
    /// The `aud` a token must name, when the deployment says; any (or none) otherwise.
    audience: Option<String>,
    /// The `iss` a token must name, when the deployment says; any (or none) otherwise.
    issuer: Option<String>,
}

impl Authenticator {
    pub fn shared_secret(secret: &str) -> Authenticator {
        let bytes = secret.as_bytes();
        Authenticator { keys: Keys::Shared { decoding: DecodingKey::from_secret(bytes), encoding: EncodingKey::from_secret(bytes) }, audience: None, issuer: None }
    }

    /// Accepts only tokens for `audience` and from `issuer`, each when given.
    pub fn expecting(self, audience: Option<String>, issuer: Option<String>) -> Authenticator {
        Authenticator { audience, issuer, ..self }
    }

    /// Keys from a JWKS document: a file path, or an http(s) URL fetched once at start.
    pub async fn published_keys(source: &str) -> Result<Authenticator, AuthSetupError> {
        let text = if source.starts_with("http://") || source.starts_with("https://") {
            let fetch = async { reqwest::get(source).await?.error_for_status()?.text().await };
            fetch.await.map_err(|e| AuthSetupError::Fetch(source.into(), e.to_string()))?
        } else {
            std::fs::read_to_string(source).map_err(|e| AuthSetupError::Fetch(source.into(), e.to_string()))?
        };
        let set: JwkSet = serde_json::from_str(&text).map_err(|e| AuthSetupError::Parse(source.into(), e.to_string()))?;
        Ok(Authenticator { keys: Keys::Published(set), audience: None, issuer: None })
    }

    pub fn verify(&self, token: &str) -> Result<Claims, AuthError> {
        let header = jsonwebtoken::decode_header(token).map_err(|_| AuthError::Malformed)?;
        // Extensions the token says must be understood: none is (RFC 7515, 4.1.11).
        if header.crit.as_ref().is_some_and(|crit| !crit.is_empty()) {
            return Err(AuthError::Malformed);
        }
        let (key, algorithm) = match &self.keys {
            Keys::Shared { decoding, .. } => (decoding.clone(), Algorithm::HS256),
            Keys::Published(set) => {
                if !matches!(header.alg, Algorithm::RS256 | Algorithm::ES256) {
                    return Err(AuthError::BadSignature);
                }
                let jwk = header.kid.as_deref().and_then(|kid| set.find(kid)).ok_or(AuthError::BadSignature)?;
                (DecodingKey::from_jwk(jwk).map_err(|_| AuthError::BadSignature)?, header.alg)
            }
        };
        let mut validation = Validation::new(algorithm);
        validation.set_required_spec_claims(&["exp", "sub"]);
        validation.leeway = 30;
        validation.validate_nbf = true;
        match &self.audience {
            Some(audience) => validation.set_audience(&[audience]),
            // Identity providers always name an audience; without one configured, any will do.
            None => validation.validate_aud = false,
        }
        if let Some(issuer) = &self.issuer {
            validation.set_issuer(&[issuer]);
        }
        let claims = jsonwebtoken::decode::<Claims>(token, &key, &validation).map(|data| data.claims).map_err(|e| match e.kind() {
            ErrorKind::ExpiredSignature => AuthError::Expired,
            ErrorKind::InvalidSignature | ErrorKind::InvalidAlgorithm | ErrorKind::InvalidAlgorithmName => AuthError::BadSignature,
            ErrorKind::MissingRequiredClaim(_) | ErrorKind::Json(_) | ErrorKind::InvalidClaimFormat(_) | ErrorKind::InvalidAudience | ErrorKind::InvalidIssuer => AuthError::BadClaims,
            ErrorKind::ImmatureSignature => AuthError::NotYetValid,
            _ => AuthError::Malformed,
        })?;
        // Claims name people and tenants, and end up in the log and the database.
        let names = [&claims.sub, &claims.tenant].into_iter().chain(&claims.roles).chain([&claims.team, &claims.manager, &claims.kind, &claims.client_id, &claims.azp].into_iter().flatten());
        if names.into_iter().any(|name| crate::text::forbidden_char(name, false).is_some()) {
            return Err(AuthError::BadClaims);
        }
        Ok(claims)
    }

    /// Signs `claims` with the shared secret; None when keys are published by someone else.
    pub fn mint(&self, claims: &Claims) -> Option<String> {
        match &self.keys {
            Keys::Shared { encoding, .. } => jsonwebtoken::encode(&Header::new(Algorithm::HS256), claims, encoding).ok(),
            Keys::Published(_) => None,
        }
    }
}

/// Seconds since the epoch, for `iat` and `exp`.
pub fn now_secs() -> u64 {
    std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).map(|d| d.as_secs()).unwrap_or_default()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn claims(exp: u64) -> Claims {
        Claims { sub: "alice".into(), tenant: "acme".into(), roles: vec!["rep".into()], team: None, manager: None, kind: None, exp, iat: 0, client_id: None, azp: None }
    }

    #[test]
    fn a_minted_token_verifies_and_a_tampered_one_does_not() {
        let auth = Authenticator::shared_secret("s3cret");
        let token = auth.mint(&claims(now_secs() + 60)).unwrap();
        assert_eq!(auth.verify(&token).unwrap().sub, "alice");
        assert_eq!(Authenticator::shared_secret("other").verify(&token), Err(AuthError::BadSignature));
        let mut parts: Vec<String> = token.split('.').map(String::from).collect();
        use base64::Engine;
        let engine = base64::engine::general_purpose::URL_SAFE_NO_PAD;
        let forged = String::from_utf8(engine.decode(&parts[1]).unwrap()).unwrap().replace("\"rep\"", "\"admin\"");
        parts[1] = engine.encode(forged);
        assert_eq!(auth.verify(&parts.join(".")), Err(AuthError::BadSignature));
        assert_eq!(auth.verify("not.a.jwt"), Err(AuthError::Malformed));
        assert_eq!(auth.verify(&auth.mint(&claims(now_secs() - 3600)).unwrap()), Err(AuthError::Expired));
    }

    /// Signs any JSON payload and header with the shared secret, as an identity provider would.
    fn signed(secret: &str, header: serde_json::Value, payload: serde_json::Value) -> String {
        use base64::Engine;
        let engine = base64::engine::general_purpose::URL_SAFE_NO_PAD;
        let input = format!("{}.{}", engine.encode(header.to_string()), engine.encode(payload.to_string()));
        let key = jsonwebtoken::EncodingKey::from_secret(secret.as_bytes());
        let signature = jsonwebtoken::crypto::sign(input.as_bytes(), &key, Algorithm::HS256).unwrap();
        format!("{input}.{signature}")
    }

    #[test]
    fn audience_issuer_not_before_and_critical_extensions_are_checked() {
        let now = now_secs();
        let payload = |extra: serde_json::Value| {
            let mut p = serde_json::json!({"sub": "alice", "tenant": "acme", "exp": now + 60, "aud": "tidemark", "iss": "https://idp.example", "azp": "crm-web"});
            p.as_object_mut().unwrap().extend(extra.as_object().unwrap().clone());
            p
        };
        let header = serde_json::json!({"alg": "HS256", "typ": "JWT"});
        let open = Authenticator::shared_secret("s");
        let claims = open.verify(&signed("s", header.clone(), payload(serde_json::json!({})))).expect("an aud is accepted when none is configured");
        assert_eq!(claims.azp.as_deref(), Some("crm-web"));
        let strict = Authenticator::shared_secret("s").expecting(Some("tidemark".into()), Some("https://idp.example".into()));
        assert!(strict.verify(&signed("s", header.clone(), payload(serde_json::json!({})))).is_ok());
        assert_eq!(strict.verify(&signed("s", header.clone(), payload(serde_json::json!({"aud": "other"})))), Err(AuthError::BadClaims));
        assert_eq!(strict.verify(&signed("s", header.clone(), payload(serde_json::json!({"iss": "https://evil.example"})))), Err(AuthError::BadClaims));
        assert_eq!(open.verify(&signed("s", header.clone(), payload(serde_json::json!({"nbf": now + 600})))), Err(AuthError::NotYetValid));
        let critical = serde_json::json!({"alg": "HS256", "typ": "JWT", "crit": ["exp-policy"], "exp-policy": 1});
        assert_eq!(open.verify(&signed("s", critical, payload(serde_json::json!({})))), Err(AuthError::Malformed));
    }

    #[test]
    fn an_unsigned_token_is_refused() {
        use base64::Engine;
        let engine = base64::engine::general_purpose::URL_SAFE_NO_PAD;
        let body = engine.encode(serde_json::to_string(&claims(now_secs() + 60)).unwrap());
        let none = format!("{}.{body}.", engine.encode(r#"{"alg":"none","typ":"JWT"}"#));
        assert!(Authenticator::shared_secret("s3cret").verify(&none).is_err());
    }
}
