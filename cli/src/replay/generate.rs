//! `tidemark replay generate`: a synthetic log of any length, for measuring rebuild and
//! export over millions of events. Every event comes out of the domain's own `decide` and
//! carries a full envelope, so the log is one the command service could have written; the
//! command service is bypassed only because a million round trips would measure it instead.
//!
//! It writes only into an empty deployment (its own topic prefix and database): a live
//! writer's streams must not gain events behind its back.

use std::time::Instant;

use anyhow::Context;
use chrono::{Duration as Days, TimeDelta, Utc};
use futures::stream::{FuturesUnordered, StreamExt};
use indicatif::{ProgressBar, ProgressStyle};
use rdkafka::producer::{FutureProducer, FutureRecord};
use rust_decimal::Decimal;
use tidemark_events::account::{self, AccountCommand};
use tidemark_events::envelope::StreamPosition;
use tidemark_events::offline::Preference;
use tidemark_events::opportunity::{self, NewOpportunity, Opportunity, OpportunityCommand, Outcome, Stage};
use tidemark_events::partition::partition_for;
use tidemark_events::{ActorKind, Aggregate, CommandMeta, Currency, DomainEvent, Envelope, EventRecord, Money, POLICY_VERSION};
use uuid::Uuid;

use tidemark_history::{partition_count, Replayer};

/// Sends in flight at once: enough to keep the producer's batches full.
const IN_FLIGHT: usize = 20_000;
const REPS: u64 = 50;
const TEAMS: u64 = 5;

/// SplitMix64: a seeded, dependency-free generator, so one seed always gives the same content.
struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9E37_79B9_7F4A_7C15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        z ^ (z >> 31)
    }

    fn below(&mut self, n: u64) -> u64 {
        self.next() % n
    }

    fn uuid(&mut self) -> Uuid {
        uuid::Builder::from_random_bytes(((self.next() as u128) << 64 | self.next() as u128).to_be_bytes()).into_uuid()
    }
}

pub struct Summary {
    pub events: u64,
    pub opportunities: u64,
    pub seconds: f64,
}

/// Writes `events` opportunity events (and the accounts they belong to) for `tenant`,
/// spread over the year before now.
pub async fn generate(replayer: &Replayer, events: u64, tenant: &str, seed: u64) -> anyhow::Result<Summary> {
    let topics = &replayer.topics;
    for topic in topics.all() {
        let count = partition_count(&replayer.brokers, topic)?;
        let records = tidemark_history::log_end_total(&replayer.brokers, topic, count)?;
        anyhow::ensure!(
            records == 0,
            "topic {topic} already holds {records} records; generate writes only into an empty deployment \
             (set TIDEMARK_TOPIC_PREFIX and DATABASE_URL to new ones and run `tidemark setup`)"
        );
    }
    let producer: FutureProducer = tidemark_log::client(&replayer.brokers, "tidemark-generate")
        .set("linger.ms", "20")
        .set("batch.num.messages", "10000")
        .set("queue.buffering.max.messages", "1000000")
        .set("message.timeout.ms", "120000")
        .create()?;
    let started = Instant::now();
    let bar = ProgressBar::new(events).with_style(ProgressStyle::with_template("{spinner} {wide_bar} {pos}/{len} events, {per_sec}, eta {eta}")?);
    let mut rng = Rng(seed);
    let accounts: Vec<Uuid> = (0..(events / 50).max(1)).map(|_| rng.uuid()).collect();
    let first_day = Utc::now() - Days::days(365);
    let step = TimeDelta::microseconds((365 * 24 * 3600 * 1_000_000 / (events + accounts.len() as u64).max(1)) as i64);
    let mut clock = first_day;
    let meta = |rng: &mut Rng, at| CommandMeta {
        command_id: format!("gen-{:016x}", rng.next()),
        tenant_id: tenant.to_string(),
        actor_id: format!("rep-{:02}", rng.below(REPS) + 1),
        actor_kind: ActorKind::User,
        client_id: "tidemark-generate".into(),
        correlation_id: format!("gen-{:016x}", rng.next()),
        causation_id: None,
        policy_version: POLICY_VERSION.into(),
        code_version: concat!(env!("CARGO_PKG_VERSION"), "+generated").into(),
        rationale: None,
        received_at: at,
    };
    let mut sends = FuturesUnordered::new();
    let partitions = (partition_count(&replayer.brokers, &topics.account)?, partition_count(&replayer.brokers, &topics.opportunity)?);
    let mut pending: Vec<(String, i32, Uuid, Vec<u8>)> = Vec::new();
    for (i, id) in accounts.iter().enumerate() {
        clock += step;
        let m = meta(&mut rng, clock);
        for e in account::Account::decide(None, &AccountCommand::Open { name: format!("Account {i}") }).map_err(|r| anyhow::anyhow!("{r}"))? {
            let at = StreamPosition { aggregate_type: account::AGGREGATE_TYPE, aggregate_id: *id, version: 1, writer_epoch: 1 };
            let record = EventRecord { envelope: Envelope::new(&m, at, e.event_type(), clock), event: DomainEvent::Account(e) };
            let bytes = replayer.codec.encode_event(&topics.account, &record).await?;
            pending.push((topics.account.clone(), partition_for(id.to_string().as_bytes(), partitions.0), *id, bytes));
        }
    }
    // Open deals, each with its state; a deal leaves this list when it closes.
    let mut open: Vec<(Uuid, Opportunity)> = Vec::new();
    let (mut written, mut opportunities) = (0u64, 0u64);
    while written < events {
        // The clock moves only for commands that produce events, so the last lands about now.
        let at = clock + step;
        let m = meta(&mut rng, at);
        // About one deal in five events is new, so a deal gets some four changes in its life.
        let (slot, id, state, command) = if open.is_empty() || rng.below(5) == 0 {
            opportunities += 1;
            let currency = ["EUR", "USD", "GBP"][rng.below(3) as usize];
            let command = OpportunityCommand::Create(NewOpportunity {
                account_id: accounts[rng.below(accounts.len() as u64) as usize],
                account_exists: true,
                name: format!("Deal {opportunities}"),
                owner_id: m.actor_id.clone(),
                team_id: Some(format!("team-{}", rng.below(TEAMS) + 1)),
                amount: money(rng.below(500_000_00) + 1_000_00, currency),
                close_date: at.date_naive() + Days::days(30 + rng.below(180) as i64),
            });
            (None, rng.uuid(), None, command)
        } else {
            let slot = rng.below(open.len() as u64) as usize;
            let (id, state) = &open[slot];
            let command = match rng.below(10) {
                0..=3 => OpportunityCommand::MoveStage { stage: next_stage(state.stage) },
                4 | 5 => OpportunityCommand::ChangeAmount { amount: money(rng.below(500_000_00) + 1_000_00, state.amount.currency.as_str()) },
                6 => OpportunityCommand::SetPreference {
                    field: Preference::CloseDate,
                    value: Some((state.close_date + Days::days(rng.below(60) as i64 + 1)).to_string()),
                    at,
                },
                7 => OpportunityCommand::Share { user_id: format!("rep-{:02}", rng.below(REPS) + 1) },
                _ => OpportunityCommand::Close {
                    outcome: if rng.below(3) == 0 { Outcome::Won } else { Outcome::Lost },
                    reason: "generated".into(),
                },
            };
            (Some(slot), *id, Some(state.clone()), command)
        };
        // Commands the domain refuses (a share with the owner, a move to the same stage) are
        // skipped, as the command service would refuse them.
        let Ok(decided) = Opportunity::decide(state.as_ref(), &command) else { continue };
        clock = at;
        let mut state = state;
        for event in decided {
            let version = state.as_ref().map_or(0, |s: &Opportunity| s.version) + 1;
            state = Some(Opportunity::evolve(state, &event));
            let at = StreamPosition { aggregate_type: opportunity::AGGREGATE_TYPE, aggregate_id: id, version, writer_epoch: 1 };
            let record = EventRecord { envelope: Envelope::new(&m, at, event.event_type(), clock), event: DomainEvent::Opportunity(event) };
            let bytes = replayer.codec.encode_event(&topics.opportunity, &record).await?;
            pending.push((topics.opportunity.clone(), partition_for(id.to_string().as_bytes(), partitions.1), id, bytes));
            written += 1;
        }
        let state = state.expect("decided on");
        match slot {
            Some(i) if state.stage.is_closed() => {
                open.swap_remove(i);
            }
            Some(i) => open[i].1 = state,
            None => open.push((id, state)),
        }
        // Queued now, in order: the producer keeps that order within a partition.
        for (topic, partition, key, bytes) in pending.drain(..) {
            let key = key.to_string();
            let delivery = producer
                .send_result(FutureRecord::to(&topic).partition(partition).key(&key).payload(&bytes))
                .map_err(|(e, _)| e)
                .context("queueing a generated event")?;
            sends.push(delivery);
            while sends.len() >= IN_FLIGHT {
                delivered(sends.next().await)?;
                bar.inc(1);
            }
        }
    }
    while !sends.is_empty() {
        delivered(sends.next().await)?;
        bar.inc(1);
    }
    bar.finish_and_clear();
    Ok(Summary { events: written, opportunities, seconds: started.elapsed().as_secs_f64() })
}

fn money(cents: u64, currency: &str) -> Money {
    Money { value: Decimal::new(cents as i64, 2), currency: Currency::try_from(currency.to_string()).expect("a known currency") }
}

/// The next open stage, or the same (which the domain refuses) at the end of the pipeline.
fn next_stage(stage: Stage) -> Stage {
    match stage {
        Stage::Prospecting => Stage::Qualification,
        Stage::Qualification => Stage::Proposal,
        Stage::Proposal => Stage::Negotiation,
        other => other,
    }
}

fn delivered(result: Option<Result<rdkafka::producer::future_producer::OwnedDeliveryResult, futures::channel::oneshot::Canceled>>) -> anyhow::Result<()> {
    match result {
        Some(Ok(Ok(_))) => Ok(()),
        Some(Ok(Err((e, _)))) => Err(e).context("appending a generated event"),
        _ => anyhow::bail!("the producer went away before confirming an append"),
    }
}
