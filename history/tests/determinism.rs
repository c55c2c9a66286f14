//! The same log always yields the same state: a property over generated command sequences.
//! Each aggregate's events keep their order within its partition; everything else about
//! the log varies: how aggregates interleave, which partition replays a record, where a
//! zombie writer's records land after a fence.

use chrono::{NaiveDate, TimeZone, Utc};
use proptest::prelude::*;
use std::str::FromStr;
use tidemark_events::envelope::StreamPosition;
use tidemark_events::offline::Preference;
use tidemark_events::opportunity::{self, NewOpportunity, Opportunity, OpportunityCommand, Outcome, Stage};
use tidemark_events::{ActorKind, CommandMeta, Currency, DomainEvent, Envelope, EventRecord, Money};
use tidemark_events::{Aggregate, AnyAggregate};
use tidemark_history::fold::fold_log;
use tidemark_history::LogRecord;
use tidemark_schemas::{Decoded, FenceMarker};
use uuid::Uuid;

fn meta(i: usize) -> CommandMeta {
    CommandMeta {
        command_id: format!("c{i}"),
        tenant_id: "t".into(),
        actor_id: "alice".into(),
        actor_kind: ActorKind::User,
        client_id: "prop".into(),
        correlation_id: format!("k{i}"),
        causation_id: None,
        policy_version: "p".into(),
        code_version: "v".into(),
        rationale: None,
        received_at: Utc.timestamp_opt(1_800_000_000 + i as i64, 0).unwrap(),
    }
}

fn command(kind: u8, value: u32) -> OpportunityCommand {
    let eur = |v: u32| Money { value: rust_decimal::Decimal::from(v), currency: Currency::try_from("EUR".to_string()).unwrap() };
    match kind % 5 {
        0 => OpportunityCommand::ChangeAmount { amount: eur(value) },
        1 => OpportunityCommand::MoveStage { stage: [Stage::Qualification, Stage::Proposal, Stage::Negotiation][value as usize % 3] },
        2 => OpportunityCommand::SetPreference {
            field: Preference::CloseDate,
            value: Some(NaiveDate::from_ymd_opt(2027, 1 + value % 12, 1).unwrap().to_string()),
            at: Utc.with_ymd_and_hms(2026, 12, 1, 9, 0, 0).unwrap(),
        },
        3 => OpportunityCommand::Share { user_id: format!("u{}", value % 4) },
        _ => OpportunityCommand::Close { outcome: if value % 2 == 0 { Outcome::Won } else { Outcome::Lost }, reason: "r".into() },
    }
}

/// Every aggregate's accepted events, decided one command at a time like the writer does.
fn histories(aggregates: usize, commands: &[(usize, u8, u32)]) -> Vec<Vec<EventRecord>> {
    let ids: Vec<Uuid> = (0..aggregates).map(|i| Uuid::from_u128(i as u128 + 1)).collect();
    let mut states: Vec<Option<Opportunity>> = vec![None; aggregates];
    let mut logs: Vec<Vec<EventRecord>> = vec![Vec::new(); aggregates];
    let mut decide = |a: usize, cmd: OpportunityCommand, i: usize, states: &mut Vec<Option<Opportunity>>| {
        if let Ok(events) = Opportunity::decide(states[a].as_ref(), &cmd) {
            for event in events {
                let version = states[a].as_ref().map_or(0, |s| s.version) + 1;
                let at = StreamPosition { aggregate_type: "opportunity", aggregate_id: ids[a], version, writer_epoch: 1 };
                let mut envelope = Envelope::new(&meta(i), at, event.event_type(), meta(i).received_at);
                envelope.event_id = Uuid::from_u128(((a as u128) << 64) | version as u128);
                states[a] = Some(Opportunity::evolve(states[a].take(), &event));
                logs[a].push(EventRecord { envelope, event: DomainEvent::Opportunity(event) });
            }
        }
    };
    for a in 0..aggregates {
        let create = NewOpportunity {
            account_id: Uuid::nil(),
            account_exists: true,
            name: format!("deal {a}"),
            owner_id: "alice".into(),
            team_id: Some("east".into()),
            amount: Money { value: rust_decimal::Decimal::from_str("100.50").unwrap(), currency: Currency::try_from("EUR".to_string()).unwrap() },
            close_date: NaiveDate::from_ymd_opt(2027, 1, 1).unwrap(),
        };
        decide(a, OpportunityCommand::Create(create), a, &mut states);
    }
    for (i, (a, kind, value)) in commands.iter().enumerate() {
        decide(a % aggregates, command(*kind, *value), aggregates + i, &mut states);
    }
    logs
}

fn record(partition: i32, offset: i64, decoded: Decoded) -> LogRecord {
    LogRecord { partition, offset, decoded: Ok(decoded) }
}

/// Lays the histories out over `partitions`, interleaving aggregates as `order` says, with
/// a fence marker first, replays of earlier records and a fenced zombie's record mixed in.
fn lay_out(histories: &[Vec<EventRecord>], partitions: i32, order: &[usize], replays: &[usize]) -> Vec<LogRecord> {
    let mut cursors = vec![0usize; histories.len()];
    let mut logs: Vec<Vec<Decoded>> = (0..partitions)
        .map(|_| vec![Decoded::Fence(FenceMarker { writer_epoch: 1, writer_id: "w".into(), fenced_at: Utc::now() })])
        .collect();
    let partition_of = |a: usize| (a as i32) % partitions;
    let mut emitted: Vec<(i32, EventRecord)> = Vec::new();
    for (step, pick) in order.iter().cycle().take(order.len() * 4 + histories.iter().map(Vec::len).sum::<usize>()).enumerate() {
        let a = pick % histories.len();
        if let Some(event) = histories[a].get(cursors[a]) {
            cursors[a] += 1;
            logs[partition_of(a) as usize].push(Decoded::Event(event.clone()));
            emitted.push((partition_of(a), event.clone()));
        }
        if let Some(r) = replays.get(step).filter(|_| !emitted.is_empty()) {
            let (p, event) = emitted[r % emitted.len()].clone();
            logs[p as usize].push(Decoded::Event(event.clone()));
            // A zombie of epoch 0 appends its own next version after the fence: it must be
            // ignored, or the deal would be lost for a reason nobody decided.
            let mut zombie = event;
            zombie.envelope.writer_epoch = 0;
            zombie.envelope.aggregate_version += 1;
            zombie.event = DomainEvent::Opportunity(opportunity::OpportunityEvent::Closed(opportunity::Closed {
                outcome: Outcome::Lost,
                reason: "zombie".into(),
                stage: Stage::ClosedLost,
                probability: 0,
            }));
            logs[p as usize].push(Decoded::Event(zombie));
        }
    }
    for (a, history) in histories.iter().enumerate() {
        for event in &history[cursors[a]..] {
            logs[partition_of(a) as usize].push(Decoded::Event(event.clone()));
        }
    }
    logs.into_iter()
        .enumerate()
        .flat_map(|(p, log)| log.into_iter().enumerate().map(move |(o, d)| record(p as i32, o as i64, d)))
        .collect()
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(64))]
    #[test]
    fn the_same_log_folds_to_the_same_state_however_it_is_laid_out(
        aggregates in 1usize..6,
        partitions in 1i32..4,
        commands in prop::collection::vec((0usize..6, 0u8..5, 0u32..10_000), 0..60),
        order_a in prop::collection::vec(0usize..6, 1..20),
        order_b in prop::collection::vec(0usize..6, 1..20),
        replays in prop::collection::vec(0usize..100, 0..10),
    ) {
        let histories = histories(aggregates, &commands);
        let (a, _) = fold_log(&lay_out(&histories, partitions, &order_a, &[]), |_, _| true);
        let (b, _) = fold_log(&lay_out(&histories, partitions, &order_b, &replays), |_, _| true);
        prop_assert_eq!(a.len(), aggregates);
        for (id, folded) in &a {
            let other = &b[id];
            prop_assert_eq!(&folded.state, &other.state);
            prop_assert_eq!(folded.version, other.version);
        }
        // And the fold equals what the writer decided, command by command.
        for history in &histories {
            let expected = history.iter().fold(None, |s: Option<Opportunity>, r| match &r.event {
                DomainEvent::Opportunity(e) => Some(Opportunity::evolve(s, e)),
                _ => s,
            });
            let id = history[0].envelope.aggregate_id;
            prop_assert_eq!(&a[&id].state, &AnyAggregate::Opportunity(expected.unwrap()));
        }
    }
}
