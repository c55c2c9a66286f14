//! Demo data: a small sales team's accounts and opportunities, loaded through the public
//! command API, each command sent by the rep who owns the deal. Every command carries a
//! fixed Idempotency-Key, so loading twice adds nothing.

use anyhow::{bail, Context};
use rust_decimal::Decimal;
use serde_json::{json, Value};
use tidemark_events::approval::{self, Approver};
use tidemark_events::quote::{totals, LineItem};

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
/// Who approves: each team's manager, and finance.
const APPROVERS: [&str; 3] = ["mia", "wes", "fiona"];
const PRODUCTS: [(&str, u32); 5] = [("Platform licence", 12000), ("Support plan", 3000), ("Onboarding", 4500), ("Extra seats (10)", 1800), ("Training day", 1500)];
/// Line discounts (percent) that the demo's reps offer: most need no approval, some need
/// the manager, a few need finance too.
const DISCOUNTS: [&str; 8] = ["0", "5", "10", "12", "15", "18", "22", "30"];
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
    for owner in OWNERS.into_iter().chain(APPROVERS) {
        let claims = crate::users::claims(owner, None, None, None, None, 1)?;
        tokens.insert(owner, crate::users::mint(config, &claims)?);
    }
    let client = Client { http: reqwest::Client::new(), base: args.command_url.trim_end_matches('/').to_string(), tokens };
    let mut dice = Dice(42);
    let (mut opportunities, mut commands, mut quotes) = (0, 0, 0);
    for i in 0..args.accounts {
        let name = format!("{} {} {}", COMPANIES[dice.roll(10)], i + 1, SUFFIXES[dice.roll(4)]);
        let owner = OWNERS[dice.roll(OWNERS.len())];
        let account = client.command("/v1/accounts", &format!("demo-account-{i}"), owner, json!({"name": name})).await?;
        commands += 1;
        for j in 0..1 + dice.roll(3) {
            let key = format!("demo-opportunity-{i}-{j}");
            let amount = format!("{}.00", (1 + dice.roll(60)) * 2500);
            let close_date = format!("2027-{:02}-{:02}", 1 + dice.roll(12), 1 + dice.roll(28));
            let currency = if dice.roll(4) == 0 { "USD" } else { "EUR" };
            let created = client
                .command(
                    "/v1/opportunities",
                    &key,
                    owner,
                    json!({"account_id": account["id"], "name": DEALS[dice.roll(DEALS.len())], "owner_id": owner,
                           "amount": {"value": amount, "currency": currency},
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
            if (2..STAGES.len()).contains(&progress) {
                commands += quote(&client, &mut dice, (&id, &key, currency), owner).await?;
                quotes += 1;
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
            println!("demo: {} of {} accounts, {opportunities} opportunities, {quotes} quotes, {commands} commands", i + 1, args.accounts);
        }
    }
    Ok(())
}

/// Drafts a quote on an open deal in Proposal or Negotiation and takes it some way through
/// its approvals, so that every quote state and every approver's queue has something in
/// it. Returns the number of commands sent.
async fn quote(client: &Client, dice: &mut Dice, (id, key, currency): (&str, &str, &str), owner: &'static str) -> anyhow::Result<u32> {
    let lines: Vec<LineItem> = (0..1 + dice.roll(3))
        .map(|_| {
            let (product, price) = PRODUCTS[dice.roll(PRODUCTS.len())];
            LineItem {
                product: product.to_string(),
                quantity: Decimal::from(1 + dice.roll(5)),
                unit_price: Decimal::new(i64::from(price) * 100, 2),
                discount_percent: DISCOUNTS[dice.roll(DISCOUNTS.len())].parse().expect("a decimal"),
            }
        })
        .collect();
    // The approvals the quote will need, as the domain's policy decides them.
    let chain = approval::chain(&totals(&lines), None);
    let drafted = client
        .command(&format!("/v1/opportunities/{id}/quotes"), &format!("{key}-quote"), owner, json!({"currency": currency, "valid_until": "2027-06-30", "lines": lines}))
        .await?;
    let q = format!("/v1/opportunities/{id}/quotes/{}", drafted["quote_id"].as_str().context("a quote id")?);
    // A fifth stay drafts; the rest are submitted.
    if dice.roll(5) == 0 {
        return Ok(1);
    }
    let mut commands = 2;
    client.command(&format!("{q}/submit"), &format!("{key}-submit"), owner, json!({})).await?;
    let manager = if ["alice", "bob"].contains(&owner) { "mia" } else { "wes" };
    // Each step is decided with some chance; a step left undecided waits in "my approvals".
    for (step, approval) in chain.iter().enumerate() {
        let who = if approval.approver == Approver::Finance { "fiona" } else { manager };
        match dice.roll(6) {
            0 | 1 => return Ok(commands),
            2 => {
                let body = json!({"comment": "the discount is too deep for this account"});
                client.command(&format!("{q}/reject"), &format!("{key}-reject-{step}"), who, body).await?;
                return Ok(commands + 1);
            }
            _ => {
                client.command(&format!("{q}/approve"), &format!("{key}-approve-{step}"), who, json!({"comment": "approved"})).await?;
                commands += 1;
            }
        }
    }
    // Approved: the customer accepts most, declines some, and some are still with them.
    match dice.roll(4) {
        0 => Ok(commands),
        1 => {
            client.command(&format!("{q}/decline"), &format!("{key}-decline"), owner, json!({"reason": "budget frozen until next year"})).await?;
            Ok(commands + 1)
        }
        _ => {
            client.command(&format!("{q}/accept"), &format!("{key}-accept"), owner, json!({})).await?;
            Ok(commands + 1)
        }
    }
}
