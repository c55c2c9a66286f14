//! The demo company's people, so `tidemark token --user alice` needs no more flags and
//! `tidemark demo` acts as each owner.

pub const DEMO_TENANT: &str = "default";

pub struct DemoUser {
    pub name: &'static str,
    pub roles: &'static [&'static str],
    pub team: Option<&'static str>,
    pub manager: Option<&'static str>,
    pub kind: &'static str,
}

const fn user(name: &'static str, roles: &'static [&'static str], team: Option<&'static str>, manager: Option<&'static str>) -> DemoUser {
    DemoUser { name, roles, team, manager, kind: "user" }
}

pub const USERS: &[DemoUser] = &[
    user("alice", &["rep"], Some("east"), Some("mia")),
    user("bob", &["rep"], Some("east"), Some("mia")),
    user("carol", &["rep"], Some("west"), Some("wes")),
    user("dave", &["rep"], Some("west"), Some("wes")),
    user("erin", &["rep"], Some("west"), Some("wes")),
    user("gina", &["rep"], Some("north"), Some("nora")),
    user("hank", &["rep"], Some("north"), Some("nora")),
    user("mia", &["manager", "approver"], Some("east"), None),
    user("wes", &["manager", "approver"], Some("west"), None),
    user("nora", &["manager", "approver"], Some("north"), None),
    user("fiona", &["finance", "approver"], Some("finance"), None),
    user("andy", &["analyst"], None, None),
    user("audrey", &["auditor"], None, None),
    user("root", &["admin"], None, None),
    user("ops", &["operator"], None, None),
    DemoUser { name: "lead-router", roles: &[], team: None, manager: None, kind: "automation" },
    DemoUser { name: "mail-tracker", roles: &[], team: None, manager: None, kind: "automation" },
    DemoUser { name: "sequence-detector", roles: &[], team: None, manager: None, kind: "automation" },
];

pub fn find(name: &str) -> Option<&'static DemoUser> {
    USERS.iter().find(|u| u.name == name)
}

/// Claims for a demo user (or anyone, with every part given), valid for `hours`.
pub fn claims(user: &str, tenant: Option<&str>, roles: Option<Vec<String>>, team: Option<String>, kind: Option<String>, hours: u64) -> anyhow::Result<tidemark_http::auth::Claims> {
    let known = find(user);
    let roles = match (roles, known) {
        (Some(roles), _) => roles,
        (None, Some(u)) => u.roles.iter().map(|r| r.to_string()).collect(),
        (None, None) => anyhow::bail!("{user} is not a demo user: say --roles (and --team) too"),
    };
    let now = tidemark_http::auth::now_secs();
    Ok(tidemark_http::auth::Claims {
        sub: user.to_string(),
        tenant: tenant.unwrap_or(DEMO_TENANT).to_string(),
        roles,
        team: team.or(known.and_then(|u| u.team.map(String::from))),
        manager: known.and_then(|u| u.manager.map(String::from)),
        kind: kind.or(known.map(|u| u.kind.to_string())).filter(|k| k != "user"),
        exp: now + hours * 3600,
        iat: now,
        client_id: None,
        azp: None,
    })
}

/// Mints a token with the shared secret: a local-development convenience.
pub fn mint(config: &crate::Config, claims: &tidemark_http::auth::Claims) -> anyhow::Result<String> {
    anyhow::ensure!(config.jwks.is_none(), "tokens are minted by your identity provider when TIDEMARK_JWKS is set");
    tidemark_http::auth::Authenticator::shared_secret(&config.jwt_secret).mint(claims).ok_or_else(|| anyhow::anyhow!("cannot sign the token"))
}

/// The console's sign-in: with the shared secret, a picker of the demo users whose tokens
/// the console mints; with an identity provider's keys, that provider's OIDC flow. None
/// (and no console) when tokens come from a provider the console was not told of.
pub fn console_sign_in(config: &crate::Config) -> Option<tidemark_console::SignIn> {
    if config.jwks.is_some() {
        let Some(issuer) = &config.oidc_issuer else {
            tracing::warn!("the console does not start: tokens come from an identity provider (TIDEMARK_JWKS); name it with TIDEMARK_OIDC_ISSUER");
            return None;
        };
        return Some(tidemark_console::SignIn::Oidc { issuer: issuer.clone(), client_id: config.oidc_client_id.clone(), scope: config.oidc_scope.clone() });
    }
    let users = USERS
        .iter()
        .filter(|u| u.kind == "user")
        .map(|u| tidemark_console::DemoUser { name: u.name.into(), roles: u.roles.iter().map(|r| r.to_string()).collect(), team: u.team.map(String::from) })
        .collect();
    let secret = config.jwt_secret.clone();
    let mint = move |user: &str| {
        let mut claims = claims(user, None, None, None, None, 8).ok()?;
        // Events say which client they came through: the one the token was issued to.
        claims.client_id = Some("tidemark-console".into());
        tidemark_http::auth::Authenticator::shared_secret(&secret).mint(&claims)
    };
    Some(tidemark_console::SignIn::Demo { users, mint: std::sync::Arc::new(mint) })
}

/// The demo company's teams, with their reps and managers.
pub fn teams() -> tidemark_events::teams::Teams {
    let mut names: Vec<&str> = USERS.iter().filter_map(|u| u.team).collect();
    names.dedup();
    tidemark_events::teams::Teams(
        names
            .into_iter()
            .map(|team| tidemark_events::teams::Team {
                tenant: DEMO_TENANT.to_string(),
                team: team.to_string(),
                members: USERS.iter().filter(|u| u.team == Some(team)).map(|u| u.name.to_string()).collect(),
            })
            .collect(),
    )
}

/// How the demo company assigns leads: enterprise deals to team north; the rest by
/// territory; anything else to west. Members of a team take leads in turn.
pub fn lead_rules() -> Vec<tidemark_events::assignment::Rule> {
    let rule = |territory: Option<&str>, segment: Option<&str>, team: &str| tidemark_events::assignment::Rule {
        territory: territory.map(String::from),
        segment: segment.map(String::from),
        team: team.to_string(),
        members: USERS.iter().filter(|u| u.team == Some(team) && u.roles == ["rep"]).map(|u| u.name.to_string()).collect(),
    };
    vec![rule(None, Some("enterprise"), "north"), rule(Some("east"), None, "east"), rule(Some("west"), None, "west"), rule(None, None, "west")]
}
