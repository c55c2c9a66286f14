//! Demo data: a small sales team's accounts and opportunities, loaded through the public
//! command API, each command sent by the rep who owns the deal. Every command carries a
//! fixed Idempotency-Key, so loading twice adds nothing.

use anyhow::{bail, Context};
use serde_json::{json, Value};

#[derive(Debug, clap::Args)]
pub struct DemoArgs {
    /// The command API.
    #[arg(long, env = "TIDEMARK_COMMAND_URL", default_value = "http://127.0.0.1:8080")]
    pub command_url: String,
    /// How many accounts to open (each gets one to three opportunities).
    #[arg(long, default_value_t = 40)]
    pub accounts: u32,
}

const OWNERS: [&str; 5] = ["alice", "bob", "carol", "dave", "erin"];
const COMPANIES: [&str; 10] = ["Acme", "Globex", "Initech", "Umbrella", "Hooli", "Stark", "Wayne", "Wonka", "Tyrell", "Soylent"];
const SUFFIXES: [&str; 4] = ["GmbH", "Ltd", "Inc", "SA"];
const DEALS: [&str; 6] = ["Fleet renewal", "Platform upgrade", "Support extension", "New region rollout", "Pilot", "Enterprise licence"];
const STAGES: [&str; 4] = ["Prospecting", "Qualification", "Proposal", "Negotiation"];

/// A small deterministic generator, so every run loads the same company.
struct Dice(u64);

impl Dice {
    fn roll(&mut self, n: usize) -> usize {
        self.0 = self.0.wrapping_mul(6364136223846793005).wrapping_add(1442695040888963407);
        ((self.0 >> 33) % n as u64) as usize
    }
}

struct Client {
    http: reqwest::Client,
    base: String,
    /// A bearer token per demo user, minted once.
    tokens: std::collections::HashMap<&'static str, String>,
}

impl Client {
    async fn command(&self, path: &str, key: &str, actor: &str, body: Value) -> anyhow::Result<Value> {
        let response = self
            .http
            .post(format!("{}{path}", self.base))
            .header("Idempotency-Key", key)
            .bearer_auth(&self.tokens[actor])
            .header("X-Client-Id", "tidemark-demo")
            .json(&body)
            .send()
            .await
            .with_context(|| format!("cannot reach the command API at {}", self.base))?;
        let status = response.status();
        let body: Value = response.json().await.unwrap_or(Value::Null);
        if !status.is_success() {
            bail!("POST {path} answered {status}: {body}");
        }
        Ok(body)
    }
}

pub async fn load(args: DemoArgs, config: &crate::Config) -> anyhow::Result<()> {
    let mut tokens = std::collections::HashMap::new();
    for owner in OWNERS {
        let claims = crate::users::claims(owner, None, None, None, None, 1)?;
        tokens.insert(owner, crate::users::mint(config, &claims)?);
    }
    let client = Client { http: reqwest::Client::new(), base: args.command_url.trim_end_matches('/').to_string(), tokens };
    let mut dice = Dice(42);
    let (mut opportunities, mut commands) = (0, 0);
    for i in 0..args.accounts {
        let name = format!("{} {} {}", COMPANIES[dice.roll(10)], i + 1, SUFFIXES[dice.roll(4)]);
        let owner = OWNERS[dice.roll(OWNERS.len())];
        let account = client.command("/v1/accounts", &format!("demo-account-{i}"), owner, json!({"name": name})).await?;
        commands += 1;
        for j in 0..1 + dice.roll(3) {
            let key = format!("demo-opportunity-{i}-{j}");
            let amount = format!("{}.00", (1 + dice.roll(60)) * 2500);
            let close_date = format!("2027-{:02}-{:02}", 1 + dice.roll(12), 1 + dice.roll(28));
            let created = client
                .command(
                    "/v1/opportunities",
                    &key,
                    owner,
                    json!({"account_id": account["id"], "name": DEALS[dice.roll(DEALS.len())], "owner_id": owner,
                           "amount": {"value": amount, "currency": if dice.roll(4) == 0 { "USD" } else { "EUR" }},
                           "close_date": close_date}),
                )
                .await?;
            let id = created["id"].as_str().context("an id in the answer")?.to_string();
            opportunities += 1;
            commands += 1;
            let progress = dice.roll(STAGES.len() + 2);
            for (step, stage) in STAGES.iter().enumerate().skip(1).take(progress.min(3)) {
                client.command(&format!("/v1/opportunities/{id}/stage"), &format!("{key}-stage-{step}"), owner, json!({"stage": stage})).await?;
                commands += 1;
            }
            if progress >= STAGES.len() {
                let (outcome, reason) = if dice.roll(2) == 0 { ("won", "signed the order form") } else { ("lost", "chose a competitor") };
                client
                    .command(&format!("/v1/opportunities/{id}/close"), &format!("{key}-close"), owner, json!({"outcome": outcome, "reason": reason}))
                    .await?;
                commands += 1;
            }
        }
        if (i + 1) % 10 == 0 || i + 1 == args.accounts {
            println!("demo: {} of {} accounts, {opportunities} opportunities, {commands} commands", i + 1, args.accounts);
        }
    }
    Ok(())
}
