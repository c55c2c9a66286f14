//! A rep's day: virtual users, each acting as one person of the tenant, send a mix of reads
//! and commands. Reps read their deals, the pipeline and "my approvals", and change amounts,
//! move stages, create deals and submit quotes; managers and finance read "my approvals"
//! and approve. Closed loop: each user waits for an answer, thinks, and sends the next.
//! Open loop: requests arrive at a fixed rate whatever the answers do, and latency counts
//! from when a request was due, so a slow system cannot hide its queue.
//!
//! After a sample of the acknowledged commands, a probe reads the opportunity (eventual
//! consistency) until it shows the command's version: the command's freshness.

use std::sync::atomic::{AtomicU8, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use rand::rngs::SmallRng;
use rand::{Rng, SeedableRng};
use serde_json::{json, Value};
use uuid::Uuid;

use crate::figures::{Ending, Figures, Recorder};
use crate::tenant::{Deal, People, Role, Seeded, User};
use crate::Target;

#[derive(Debug, Clone, Copy)]
pub enum Mode {
    Closed { think: Duration },
    Open { per_second: f64 },
}

#[derive(Debug, Clone, Copy)]
pub struct Load {
    pub users: usize,
    pub mode: Mode,
    pub duration: Duration,
    /// The share of acknowledged commands whose freshness is probed (0 to 1).
    pub freshness_sample: f64,
    /// Reps send commands only (amount changes and stage moves), for the throughput ceiling.
    pub commands_only: bool,
    /// Seeds the users' choices. Give every system the same seed in a scenario, so that each
    /// gets the same traffic, and each scenario its own: a run that repeated an earlier one's
    /// choices would set amounts the deals already have, which Tidemark refuses as no change.
    pub seed: u64,
}

/// Stages a deal moves through (forward one at a time, then back to the start).
const STAGES: [&str; 4] = ["Prospecting", "Qualification", "Proposal", "Negotiation"];
/// How long a probe waits for a write to show before counting it as not seen.
const PROBE_PATIENCE: Duration = Duration::from_secs(30);
/// A probe reads again after this long, or a tenth of its wait so far if that is longer: a
/// tenth's resolution, without a slow system drowning in probes.
const PROBE_EVERY: Duration = Duration::from_millis(10);

/// A rep's mix, in per mille: 80% reads, 20% commands (a quote is two commands).
const REP_MIX: [(Op, u32); 8] = [
    (Op::ReadOpportunity, 300),
    (Op::ListOpportunities, 150),
    (Op::Pipeline, 200),
    (Op::MyApprovals, 150),
    (Op::ChangeAmount, 80),
    (Op::MoveStage, 50),
    (Op::CreateOpportunity, 30),
    (Op::Quote, 40),
];
const COMMAND_MIX: [(Op, u32); 2] = [(Op::ChangeAmount, 700), (Op::MoveStage, 300)];
const APPROVER_MIX: [(Op, u32); 4] = [(Op::MyApprovals, 450), (Op::Pipeline, 150), (Op::ReadOpportunity, 200), (Op::Approve, 200)];

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Op {
    ReadOpportunity,
    ListOpportunities,
    Pipeline,
    MyApprovals,
    ChangeAmount,
    MoveStage,
    CreateOpportunity,
    Quote,
    Approve,
}

/// What the users share: the tenant, and where each deal's stage stands.
struct World {
    client: reqwest::Client,
    target: Target,
    people: Arc<People>,
    accounts: Vec<Uuid>,
    deals: Vec<Deal>,
    by_rep: Vec<Vec<usize>>,
    owners: std::collections::HashMap<Uuid, usize>,
    stages: Arc<[AtomicU8]>,
    recorder: Mutex<Recorder>,
    probes: Mutex<tokio::task::JoinSet<()>>,
    freshness_sample: f64,
    commands_only: bool,
}

/// One virtual user: who they are, and what they saw last in "my approvals".
struct VirtualUser {
    user: User,
    /// The reps whose deals this user works on: a rep their own, a manager their team's;
    /// none for finance, who works on any.
    reps: Vec<usize>,
    rng: SmallRng,
    waiting: Vec<(String, String)>,
}

impl VirtualUser {
    /// Every tenth user is a manager, every twenty-fifth the finance approver; the rest are
    /// reps (several users may be one rep in several browser tabs). For the throughput
    /// ceiling, everyone is a rep.
    fn new(index: usize, people: &People, commands_only: bool, seed: u64) -> VirtualUser {
        let (user, reps) = if index % 25 == 24 && !commands_only {
            (people.finance.clone(), Vec::new())
        } else if index % 10 == 9 && !commands_only {
            let manager = people.managers[(index / 10) % people.managers.len()].clone();
            let team = (0..people.reps.len()).filter(|r| people.reps[*r].team == manager.team).collect();
            (manager, team)
        } else {
            let rep = index % people.reps.len();
            (people.reps[rep].clone(), vec![rep])
        };
        VirtualUser { user, reps, rng: SmallRng::seed_from_u64(seed.wrapping_mul(1 << 32).wrapping_add(index as u64)), waiting: Vec::new() }
    }

    fn next_op(&mut self, commands_only: bool) -> Op {
        let mix: &[(Op, u32)] = match self.user.role {
            Role::Rep if commands_only => &COMMAND_MIX,
            Role::Rep => &REP_MIX,
            _ => &APPROVER_MIX,
        };
        let mut roll = self.rng.random_range(0..mix.iter().map(|(_, w)| w).sum::<u32>());
        for (op, weight) in mix {
            if roll < *weight {
                return *op;
            }
            roll -= weight;
        }
        mix[0].0
    }
}

/// Runs `load` against the target and returns its figures.
pub async fn run(client: &reqwest::Client, target: &Target, people: Arc<People>, seeded: &Seeded, load: &Load) -> Figures {
    let mut by_rep = vec![Vec::new(); people.reps.len()];
    for (i, deal) in seeded.deals.iter().enumerate() {
        by_rep[deal.owner].push(i);
    }
    let world = Arc::new(World {
        client: client.clone(),
        target: target.clone(),
        people: people.clone(),
        accounts: seeded.accounts.clone(),
        deals: seeded.deals.clone(),
        by_rep,
        owners: seeded.deals.iter().map(|d| (d.id, d.owner)).collect(),
        stages: seeded.stages.clone(),
        recorder: Mutex::new(Recorder::default()),
        probes: Mutex::new(tokio::task::JoinSet::new()),
        freshness_sample: load.freshness_sample,
        commands_only: load.commands_only,
    });
    let seed = load.seed;
    let started = Instant::now();
    let until = started + load.duration;
    match load.mode {
        Mode::Closed { think } => {
            let mut users = tokio::task::JoinSet::new();
            for index in 0..load.users {
                let world = world.clone();
                // Users arrive over the first second rather than all at once.
                let arrive = Duration::from_secs_f64(index as f64 / load.users as f64);
                users.spawn(async move {
                    let mut vu = VirtualUser::new(index, &world.people, world.commands_only, seed);
                    tokio::time::sleep(arrive).await;
                    while Instant::now() < until {
                        act(&world, &mut vu, Instant::now()).await;
                        let pause = think.mul_f64(vu.rng.random_range(0.5..1.5));
                        tokio::time::sleep(pause.min(until.saturating_duration_since(Instant::now()))).await;
                    }
                });
            }
            users.join_all().await;
        }
        Mode::Open { per_second } => {
            let users: Vec<Arc<tokio::sync::Mutex<VirtualUser>>> =
                (0..load.users).map(|i| Arc::new(tokio::sync::Mutex::new(VirtualUser::new(i, &world.people, world.commands_only, seed)))).collect();
            let every = Duration::from_secs_f64(1.0 / per_second.max(0.001));
            let mut requests = tokio::task::JoinSet::new();
            let sent = AtomicUsize::new(0);
            let mut due = Instant::now();
            while due < until {
                tokio::time::sleep_until(due.into()).await;
                let n = sent.fetch_add(1, Ordering::Relaxed);
                let (world, user) = (world.clone(), users[n % users.len()].clone());
                requests.spawn(async move {
                    let mut vu = user.lock().await;
                    act(&world, &mut vu, due).await;
                });
                due += every;
            }
            requests.join_all().await;
        }
    }
    let elapsed = started.elapsed();
    let probes = std::mem::take(&mut *world.probes.lock().expect("not poisoned"));
    probes.join_all().await;
    let figures = world.recorder.lock().expect("not poisoned").figures(elapsed);
    figures
}

/// An HTTP answer: its status (0 when there was none) and its JSON body.
async fn send(request: reqwest::RequestBuilder) -> (u16, Value) {
    match request.send().await {
        Ok(r) => {
            let status = r.status().as_u16();
            (status, r.json().await.unwrap_or(Value::Null))
        }
        Err(_) => (0, Value::Null),
    }
}

/// One operation of `vu`, due at `due`; its latency counts from then.
async fn act(world: &Arc<World>, vu: &mut VirtualUser, due: Instant) {
    let (c, q, token) = (&world.target.commands, &world.target.queries, vu.user.token.clone());
    let get = |url: String| world.client.get(url).bearer_auth(&token);
    let post = |url: String, body: Value| world.client.post(url).bearer_auth(&token).json(&body);
    let op = vu.next_op(world.commands_only);
    let rep = (!vu.reps.is_empty()).then(|| vu.reps[vu.rng.random_range(0..vu.reps.len())]);
    let deal_index = match rep {
        Some(rep) if !world.by_rep[rep].is_empty() => Some(world.by_rep[rep][vu.rng.random_range(0..world.by_rep[rep].len())]),
        _ if !world.deals.is_empty() => Some(vu.rng.random_range(0..world.deals.len())),
        _ => None,
    };
    let deal = deal_index.map(|i| world.deals[i].id);
    let (name, (status, body)) = match (op, deal) {
        (Op::ReadOpportunity, Some(id)) => ("read opportunity", send(get(format!("{q}/v1/opportunities/{id}"))).await),
        (Op::ListOpportunities, _) => ("list opportunities", send(get(format!("{q}/v1/opportunities?owner={}&limit=50", vu.user.name))).await),
        (Op::Pipeline, _) => ("pipeline", send(get(format!("{q}/v1/pipeline"))).await),
        (Op::ChangeAmount, Some(id)) => {
            let amount = json!({"amount": {"value": format!("{}.00", vu.rng.random_range(10..2000) * 100), "currency": "EUR"}});
            ("change amount", send(post(format!("{c}/v1/opportunities/{id}/amount"), amount)).await)
        }
        (Op::MoveStage, Some(id)) => {
            let stage = &world.stages[deal_index.expect("a deal")];
            let next = (stage.load(Ordering::Relaxed) + 1) % STAGES.len() as u8;
            stage.store(next, Ordering::Relaxed);
            ("move stage", send(post(format!("{c}/v1/opportunities/{id}/stage"), json!({"stage": STAGES[next as usize]}))).await)
        }
        (Op::CreateOpportunity, _) if !world.accounts.is_empty() => {
            let account = world.accounts[vu.rng.random_range(0..world.accounts.len())];
            let close = chrono::Utc::now().date_naive() + chrono::Days::new(vu.rng.random_range(14..365));
            let body = json!({"account_id": account, "name": "New deal", "owner_id": vu.user.name,
                              "amount": {"value": "25000.00", "currency": "EUR"}, "close_date": close});
            ("create opportunity", send(post(format!("{c}/v1/opportunities"), body)).await)
        }
        (Op::Quote, Some(id)) => {
            let discount = ["5", "15", "25"][vu.rng.random_range(0..3)];
            let body = json!({"currency": "EUR", "valid_until": "2099-12-31",
                              "lines": [{"product": "Platform licence", "quantity": "2", "unit_price": "12000.00", "discount_percent": discount}]});
            let (status, drafted) = send(post(format!("{c}/v1/opportunities/{id}/quotes"), body)).await;
            record(world, "draft quote", due, status, &drafted, Some(id));
            match drafted["quote_id"].as_str() {
                Some(quote) => ("submit quote", send(post(format!("{c}/v1/opportunities/{id}/quotes/{quote}/submit"), json!({}))).await),
                None => return,
            }
        }
        (Op::Approve, _) if !vu.waiting.is_empty() => {
            let (opportunity, quote) = vu.waiting.swap_remove(vu.rng.random_range(0..vu.waiting.len()));
            ("approve", send(post(format!("{c}/v1/opportunities/{opportunity}/quotes/{quote}/approve"), json!({}))).await)
        }
        _ => {
            let answer = send(get(format!("{q}/v1/approvals/mine"))).await;
            vu.waiting = answer.1["data"]
                .as_array()
                .into_iter()
                .flatten()
                .filter_map(|i| Some((i["opportunity_id"].as_str()?.to_string(), i["quote_id"].as_str()?.to_string())))
                .collect();
            ("my approvals", answer)
        }
    };
    let command = matches!(op, Op::ChangeAmount | Op::MoveStage | Op::CreateOpportunity | Op::Quote | Op::Approve);
    record(world, name, due, status, &body, command.then_some(deal).flatten());
}

/// Records an answer, and probes a sample of acknowledged commands for freshness.
fn record(world: &Arc<World>, op: &'static str, due: Instant, status: u16, body: &Value, about: Option<Uuid>) {
    let acked = Instant::now();
    let ending = Ending::of(status);
    world.recorder.lock().expect("not poisoned").record(op, acked - due, ending);
    let written = body["version"].as_i64().zip(body["id"].as_str().and_then(|id| id.parse::<Uuid>().ok()).or(about));
    let Some((version, id)) = written.filter(|_| ending == Ending::Ok && rand::random_bool(world.freshness_sample.clamp(0.0, 1.0))) else { return };
    let world2 = world.clone();
    // The owner may read it, whoever wrote it; finance reads the deals created during the run.
    let owner = world.owners.get(&id).map(|o| world.people.reps[*o].token.clone());
    let token = owner.unwrap_or_else(|| world.people.finance.token.clone());
    world.probes.lock().expect("not poisoned").spawn(async move {
        let url = format!("{}/v1/opportunities/{id}?consistency=eventual", world2.target.queries);
        let seen = loop {
            let (status, read) = send(world2.client.get(&url).bearer_auth(&token)).await;
            if status == 200 && read["data"]["version"].as_i64().is_some_and(|v| v >= version) {
                break Some(acked.elapsed());
            }
            if acked.elapsed() > PROBE_PATIENCE {
                break None;
            }
            tokio::time::sleep(PROBE_EVERY.max(acked.elapsed() / 10)).await;
        };
        world2.recorder.lock().expect("not poisoned").fresh_after(seen);
    });
}
