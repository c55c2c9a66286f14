//! A believable tenant: reps in teams, each team with a manager, one finance approver;
//! accounts, and opportunities owned by the reps, created through the target's command API
//! as the reps themselves would create them.

use std::sync::atomic::AtomicU8;
use std::sync::Arc;
use std::time::Duration;

use anyhow::Context;
use backon::{ExponentialBuilder, Retryable};
use futures::{stream, StreamExt, TryStreamExt};
use rand::{Rng, SeedableRng};
use serde_json::{json, Value};
use tidemark_http::auth::{Authenticator, Claims};
use uuid::Uuid;

use crate::Target;

#[derive(Debug, Clone, Copy)]
pub struct TenantSpec {
    pub reps: usize,
    pub team_size: usize,
    pub accounts: usize,
    pub opportunities: usize,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Role {
    Rep,
    Manager,
    Finance,
}

#[derive(Debug, Clone)]
pub struct User {
    pub name: String,
    pub role: Role,
    pub team: String,
    pub token: String,
}

/// Everyone who works in the tenant, with a token each.
pub struct People {
    pub reps: Vec<User>,
    pub managers: Vec<User>,
    pub finance: User,
}

impl People {
    /// Reps `rep-001`…, in teams of `team_size` (`team-1`…), a manager for each team
    /// (`manager-1`…), and `finance-1`; tokens signed with the shared secret, valid for a day.
    pub fn new(spec: &TenantSpec, tenant: &str, secret: &str) -> People {
        let auth = Authenticator::shared_secret(secret);
        let now = tidemark_http::auth::now_secs();
        let user = |name: String, role: Role, team: String| {
            let roles: &[&str] = match role {
                Role::Rep => &["rep"],
                Role::Manager => &["manager", "approver"],
                Role::Finance => &["finance", "approver"],
            };
            let claims = Claims {
                sub: name.clone(),
                tenant: tenant.to_string(),
                roles: roles.iter().map(|r| r.to_string()).collect(),
                team: Some(team.clone()),
                manager: None,
                kind: None,
                exp: now + 24 * 3600,
                iat: now,
                client_id: None,
                azp: None,
            };
            User { token: auth.mint(&claims).expect("a shared secret signs"), name, role, team }
        };
        let teams = spec.reps.div_ceil(spec.team_size.max(1)).max(1);
        People {
            reps: (0..spec.reps).map(|i| user(format!("rep-{:03}", i + 1), Role::Rep, format!("team-{}", i / spec.team_size.max(1) + 1))).collect(),
            managers: (0..teams).map(|t| user(format!("manager-{}", t + 1), Role::Manager, format!("team-{}", t + 1))).collect(),
            finance: user("finance-1".into(), Role::Finance, "finance".into()),
        }
    }
}

/// An opportunity of the tenant and the rep (index into `People::reps`) who owns it.
#[derive(Debug, Clone, Copy)]
pub struct Deal {
    pub id: Uuid,
    pub owner: usize,
}

/// What seeding made.
pub struct Seeded {
    pub accounts: Vec<Uuid>,
    pub deals: Vec<Deal>,
    /// The stage each deal is at (an index of the stages the traffic moves deals through),
    /// kept across runs, so that a later run does not ask for a move an earlier one made.
    pub stages: Arc<[AtomicU8]>,
    pub seconds: f64,
}

/// The target said it is busy (429, 503): worth another try.
#[derive(Debug)]
struct Busy(reqwest::StatusCode);

impl std::fmt::Display for Busy {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "still busy ({}) after 8 attempts", self.0)
    }
}

impl std::error::Error for Busy {}

/// Sends a command, retrying while the target says it is busy, with pauses from 0.1 s
/// growing to 3.2 s.
pub async fn command(client: &reqwest::Client, url: &str, token: &str, body: &Value) -> anyhow::Result<Value> {
    let send = || async {
        let response = client.post(url).bearer_auth(token).json(body).send().await?;
        let status = response.status();
        if status.is_success() {
            return Ok(response.json().await?);
        }
        if status.as_u16() == 429 || status.as_u16() == 503 {
            return Err(anyhow::Error::new(Busy(status)));
        }
        anyhow::bail!("{status}: {}", response.text().await.unwrap_or_default())
    };
    let pauses = ExponentialBuilder::default().with_min_delay(Duration::from_millis(100)).with_max_delay(Duration::from_millis(3200)).with_max_times(7);
    send.retry(pauses).when(|e| e.is::<Busy>()).await.with_context(|| format!("POST {url}"))
}

/// Opens the accounts and creates the opportunities, `concurrency` commands at a time;
/// `progress(done, total)` is called as they complete.
pub async fn seed(client: &reqwest::Client, target: &Target, people: &People, spec: &TenantSpec, concurrency: usize, progress: impl Fn(usize, usize)) -> anyhow::Result<Seeded> {
    let started = std::time::Instant::now();
    let total = spec.accounts + spec.opportunities;
    let done = std::sync::atomic::AtomicUsize::new(0);
    let tick = || progress(done.fetch_add(1, std::sync::atomic::Ordering::Relaxed) + 1, total);
    let accounts: Vec<Uuid> = stream::iter(0..spec.accounts)
        .map(|i| {
            let rep = &people.reps[i % people.reps.len()];
            let body = json!({ "name": format!("{} {}", ["Acme", "Globex", "Initech", "Umbrella", "Hooli", "Stark"][i % 6], i + 1) });
            let tick = &tick;
            async move {
                let answer = command(client, &format!("{}/v1/accounts", target.commands), &rep.token, &body).await?;
                tick();
                anyhow::Ok(answer["id"].as_str().context("the answer names the account")?.parse::<Uuid>()?)
            }
        })
        .buffered(concurrency)
        .try_collect()
        .await?;
    let deals: Vec<Deal> = stream::iter(0..spec.opportunities)
        .map(|i| {
            let owner = i % people.reps.len();
            let mut rng = rand::rngs::StdRng::seed_from_u64(i as u64);
            let close = chrono::Utc::now().date_naive() + chrono::Days::new(rng.random_range(14..365));
            let body = json!({
                "account_id": accounts[i % accounts.len()], "name": format!("Deal {}", i + 1), "owner_id": people.reps[owner].name,
                "amount": {"value": format!("{}.00", rng.random_range(10..2000) * 100), "currency": "EUR"}, "close_date": close,
            });
            let tick = &tick;
            async move {
                let answer = command(client, &format!("{}/v1/opportunities", target.commands), &people.reps[owner].token, &body).await?;
                tick();
                anyhow::Ok(Deal { id: answer["id"].as_str().context("the answer names the opportunity")?.parse()?, owner })
            }
        })
        .buffered(concurrency)
        .try_collect()
        .await?;
    // Deals are created at the first stage.
    let stages = deals.iter().map(|_| AtomicU8::new(0)).collect();
    Ok(Seeded { accounts, deals, stages, seconds: started.elapsed().as_secs_f64() })
}
