//! Demo data: a believable sales company, loaded through the public command API, each
//! command sent by the person who would send it: reps open accounts with their contacts,
//! capture leads (which the rules assign), work their deals, quote, log calls and set
//! tasks; managers and finance approve discounts; a manager delegates for the week. Every command carries a fixed Idempotency-Key, so loading twice
//! within a day adds nothing. Each account draws from its own seeded dice, so the company
//! is the same however many accounts are loaded at once.

use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use anyhow::{bail, Context};
use chrono::{Days, NaiveDate, Utc};
use futures::{StreamExt, TryStreamExt};
use reqwest::StatusCode;
use rust_decimal::Decimal;
use serde_json::{json, Value};
use tidemark_events::approval::{self, Approver};
use tidemark_events::quote::{totals, LineItem};

use crate::users::USERS;

#[derive(Debug, clap::Args)]
pub struct DemoArgs {
    /// The command API.
    #[arg(long, env = "TIDEMARK_COMMAND_URL", default_value = "http://127.0.0.1:8080")]
    pub command_url: String,
    /// How many accounts to open (each gets one to three opportunities).
    #[arg(long, default_value_t = 2000)]
    pub accounts: u32,
    /// Accounts loaded at once.
    #[arg(long, default_value_t = 8)]
    pub concurrency: usize,
}

const COMPANIES: [&str; 12] = ["Acme", "Globex", "Initech", "Umbrella", "Hooli", "Stark", "Wayne", "Wonka", "Tyrell", "Soylent", "Cyberdyne", "Vandelay"];
const SUFFIXES: [&str; 4] = ["GmbH", "Ltd", "Inc", "SA"];
const DEALS: [&str; 6] = ["Fleet renewal", "Platform upgrade", "Support extension", "New region rollout", "Pilot", "Enterprise licence"];
const STAGES: [&str; 4] = ["Prospecting", "Qualification", "Proposal", "Negotiation"];
const PRODUCTS: [(&str, u32); 5] = [("Platform licence", 12000), ("Support plan", 3000), ("Onboarding", 4500), ("Extra seats (10)", 1800), ("Training day", 1500)];
/// Line discounts (percent) the reps offer: most need no approval, some the manager, a few
/// finance too.
const DISCOUNTS: [&str; 8] = ["0", "5", "10", "12", "15", "18", "22", "30"];
const CALLS: [&str; 4] = ["Discovery call", "Demo for the buying committee", "Pricing questions", "Check-in with the champion"];
const TASKS: [&str; 4] = ["Send the proposal", "Book the security review", "Chase the signed order form", "Prepare the business case"];
const FIRST_NAMES: [&str; 8] = ["Ada", "Grace", "Alan", "Edsger", "Barbara", "Donald", "Frances", "Ken"];
const LAST_NAMES: [&str; 8] = ["Lovelace", "Hopper", "Turing", "Dijkstra", "Liskov", "Knuth", "Allen", "Thompson"];
const TITLES: [&str; 4] = ["CFO", "Head of IT", "Procurement lead", "COO"];
const TERRITORIES: [&str; 2] = ["east", "west"];
const SEGMENTS: [&str; 3] = ["smb", "smb", "enterprise"];

/// A small deterministic generator.
struct Dice(u64);

impl Dice {
    fn for_account(i: u32) -> Dice {
        Dice(0x5eed_0000_0000 ^ u64::from(i).wrapping_mul(0x9e37_79b9_7f4a_7c15))
    }

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
    commands: AtomicU64,
}

impl Client {
    /// Sends one command as `actor`. A command already sent with this key (an earlier load)
    /// answers with its first outcome; one whose key was used on another day (a task's due
    /// date moves with the day) is left as it was, and answers `None`.
    async fn command(&self, path: &str, key: &str, actor: &str, body: Value) -> anyhow::Result<Option<Value>> {
        loop {
            let response = self
                .http
                .post(format!("{}{path}", self.base))
                .header("Idempotency-Key", key)
                .bearer_auth(&self.tokens[actor])
                .json(&body)
                .send()
                .await
                .with_context(|| format!("cannot reach the command API at {}", self.base))?;
            let status = response.status();
            let retry_after = response.headers().get("retry-after").and_then(|v| v.to_str().ok()?.parse().ok()).unwrap_or(1);
            let answer: Value = response.json().await.unwrap_or(Value::Null);
            match status {
                StatusCode::TOO_MANY_REQUESTS => tokio::time::sleep(Duration::from_secs(retry_after)).await,
                s if s.is_success() => {
                    self.commands.fetch_add(1, Ordering::Relaxed);
                    return Ok(Some(answer));
                }
                StatusCode::UNPROCESSABLE_ENTITY if answer["type"] == "/problems/idempotency-key-reused" => return Ok(None),
                _ => bail!("POST {path} as {actor} answered {status}: {answer}"),
            }
        }
    }
}

/// The reps, and the manager of each rep's team.
fn reps() -> Vec<(&'static str, &'static str)> {
    USERS.iter().filter(|u| u.roles == ["rep"]).map(|u| (u.name, u.manager.expect("every rep has a manager"))).collect()
}

pub async fn load(args: DemoArgs, config: &crate::Config) -> anyhow::Result<()> {
    let mut tokens = std::collections::HashMap::new();
    for u in USERS.iter().filter(|u| u.kind == "user") {
        let mut claims = crate::users::claims(u.name, None, None, None, None, 1)?;
        // Events say which client they came through: the one the token was issued to.
        claims.client_id = Some("tidemark-demo".into());
        tokens.insert(u.name, crate::users::mint(config, &claims)?);
    }
    let client = Client { http: reqwest::Client::new(), base: args.command_url.trim_end_matches('/').to_string(), tokens, commands: AtomicU64::new(0) };
    let today = Utc::now().date_naive();
    // Wes is away this week: mia decides his team's steps meanwhile.
    let week = json!({"delegate": "mia", "valid_from": today.to_string(), "valid_until": (today + Days::new(7)).to_string()});
    client.command("/v1/delegations", &format!("demo-delegation-wes-{today}"), "wes", week).await?;

    let started = std::time::Instant::now();
    let mut done = 0u32;
    let mut loading = futures::stream::iter(0..args.accounts).map(|i| account(&client, i, today)).buffer_unordered(args.concurrency.max(1));
    while loading.try_next().await?.is_some() {
        done += 1;
        if done % 100 == 0 || done == args.accounts {
            let commands = client.commands.load(Ordering::Relaxed);
            let rate = commands as f64 / started.elapsed().as_secs_f64().max(0.001);
            println!("demo: {done} of {} accounts, {commands} commands ({rate:.0}/s)", args.accounts);
        }
    }
    Ok(())
}

/// One account of one rep, with its deals, quotes, calls and tasks.
async fn account(client: &Client, i: u32, today: NaiveDate) -> anyhow::Result<()> {
    let mut dice = Dice::for_account(i);
    let reps = reps();
    let (owner, manager) = reps[dice.roll(reps.len())];
    let name = format!("{} {} {}", COMPANIES[dice.roll(COMPANIES.len())], i + 1, SUFFIXES[dice.roll(SUFFIXES.len())]);
    let Some(account) = client.command("/v1/accounts", &format!("demo-account-{i}"), owner, json!({"name": name})).await? else { return Ok(()) };
    let (first, last) = (FIRST_NAMES[dice.roll(FIRST_NAMES.len())], LAST_NAMES[dice.roll(LAST_NAMES.len())]);
    let company = name.split(' ').next().unwrap_or("company").to_lowercase();
    let person = json!({"name": format!("{first} {last}"), "email": format!("{}.{}@{company}.example", first.to_lowercase(), last.to_lowercase()),
                        "phone": format!("+44 20 7946 {:04}", dice.roll(10_000)), "title": TITLES[dice.roll(TITLES.len())], "account_id": account["id"]});
    client.command("/v1/contacts", &format!("demo-contact-{i}"), owner, person).await?;
    // Every tenth account brings a new lead along, which the rules assign.
    if i % 10 == 0 {
        let lead = json!({"name": format!("{} {}", FIRST_NAMES[dice.roll(FIRST_NAMES.len())], LAST_NAMES[dice.roll(LAST_NAMES.len())]),
                          "company": format!("{} Prospect {}", COMPANIES[dice.roll(COMPANIES.len())], i + 1), "territory": TERRITORIES[dice.roll(2)],
                          "segment": SEGMENTS[dice.roll(SEGMENTS.len())], "source": "web form"});
        client.command("/v1/leads", &format!("demo-lead-{i}"), owner, lead).await?;
    }
    for j in 0..1 + dice.roll(3) {
        let key = format!("demo-opportunity-{i}-{j}");
        let currency = if dice.roll(4) == 0 { "USD" } else { "EUR" };
        let body = json!({"account_id": account["id"], "name": DEALS[dice.roll(DEALS.len())], "owner_id": owner,
                          "amount": {"value": format!("{}.00", (1 + dice.roll(60)) * 2500), "currency": currency},
                          "close_date": format!("2027-{:02}-{:02}", 1 + dice.roll(12), 1 + dice.roll(28))});
        let Some(created) = client.command("/v1/opportunities", &key, owner, body).await? else { continue };
        let id = created["id"].as_str().context("an id in the answer")?.to_string();
        let progress = dice.roll(STAGES.len() + 2);
        for (step, stage) in STAGES.iter().enumerate().skip(1).take(progress.min(3)) {
            client.command(&format!("/v1/opportunities/{id}/stage"), &format!("{key}-stage-{step}"), owner, json!({"stage": stage})).await?;
        }
        activities(client, &mut dice, (&id, &key), owner, today).await?;
        if (2..STAGES.len()).contains(&progress) {
            quote(client, &mut dice, (&id, &key, currency), (owner, manager)).await?;
        }
        if progress >= STAGES.len() {
            let (outcome, reason) = if dice.roll(2) == 0 { ("won", "signed the order form") } else { ("lost", "chose a competitor") };
            client.command(&format!("/v1/opportunities/{id}/close"), &format!("{key}-close"), owner, json!({"outcome": outcome, "reason": reason})).await?;
        }
    }
    Ok(())
}

/// A call on most deals, and a task on many: some done, some overdue, some coming up.
async fn activities(client: &Client, dice: &mut Dice, (id, key): (&str, &str), owner: &str, today: NaiveDate) -> anyhow::Result<()> {
    if dice.roll(4) != 0 {
        let call = json!({"kind": "call", "about": "opportunity", "about_id": id, "subject": CALLS[dice.roll(CALLS.len())]});
        client.command("/v1/activities", &format!("{key}-call"), owner, call).await?;
    }
    if dice.roll(2) == 0 {
        // Due from ten days ago to twenty days ahead; the key names the day, as the dates move with it.
        let due = today + Days::new(dice.roll(30) as u64) - Days::new(10);
        let task = json!({"kind": "task", "about": "opportunity", "about_id": id, "subject": TASKS[dice.roll(TASKS.len())], "due_date": due.to_string()});
        let set = client.command("/v1/activities", &format!("{key}-task-{today}"), owner, task).await?;
        if let (Some(set), 0) = (set, dice.roll(3)) {
            let task = set["id"].as_str().context("a task id")?;
            client.command(&format!("/v1/activities/{task}/complete"), &format!("{key}-task-done-{today}"), owner, json!({})).await?;
        }
    }
    Ok(())
}

/// Drafts a quote on an open deal in Proposal or Negotiation and takes it some way through
/// its approvals, so that every quote state and every approver's queue has something in it.
async fn quote(client: &Client, dice: &mut Dice, (id, key, currency): (&str, &str, &str), (owner, manager): (&str, &str)) -> anyhow::Result<()> {
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
    let body = json!({"currency": currency, "valid_until": "2027-06-30", "lines": lines});
    let Some(drafted) = client.command(&format!("/v1/opportunities/{id}/quotes"), &format!("{key}-quote"), owner, body).await? else { return Ok(()) };
    let q = format!("/v1/opportunities/{id}/quotes/{}", drafted["quote_id"].as_str().context("a quote id")?);
    // A fifth stay drafts.
    if dice.roll(5) == 0 {
        return Ok(());
    }
    client.command(&format!("{q}/submit"), &format!("{key}-submit"), owner, json!({})).await?;
    // Each step is decided with some chance; a step left undecided waits in "my approvals".
    for (step, approval) in chain.iter().enumerate() {
        let who = if approval.approver == Approver::Finance { "fiona" } else { manager };
        match dice.roll(6) {
            0 | 1 => return Ok(()),
            2 => {
                let body = json!({"comment": "the discount is too deep for this account"});
                client.command(&format!("{q}/reject"), &format!("{key}-reject-{step}"), who, body).await?;
                return Ok(());
            }
            _ => {
                client.command(&format!("{q}/approve"), &format!("{key}-approve-{step}"), who, json!({"comment": "approved"})).await?;
            }
        }
    }
    // Approved: the customer accepts most, declines some, and some are still with them.
    match dice.roll(4) {
        0 => {}
        1 => {
            client.command(&format!("{q}/decline"), &format!("{key}-decline"), owner, json!({"reason": "budget frozen until next year"})).await?;
        }
        _ => {
            client.command(&format!("{q}/accept"), &format!("{key}-accept"), owner, json!({})).await?;
        }
    }
    Ok(())
}
