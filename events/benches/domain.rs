//! The hot pure paths of the domain: deciding and folding commands, and the stream-fold
//! rule every reader of the log applies to every record.

use chrono::{NaiveDate, Utc};
use std::hint::black_box;

use criterion::{criterion_group, criterion_main, BatchSize, Criterion};
use serde_json::json;
use tidemark_events::fold::{PartitionFold, Verdict};
use tidemark_events::opportunity::{NewOpportunity, Opportunity, OpportunityCommand, Stage};
use tidemark_events::quote::{LineItem, QuoteCommand};
use tidemark_events::{Aggregate, Money};
use uuid::Uuid;

fn money(value: &str) -> Money {
    serde_json::from_value(json!({"value": value, "currency": "EUR"})).unwrap()
}

fn run(state: Option<Opportunity>, command: &OpportunityCommand) -> Opportunity {
    let events = Opportunity::decide(state.as_ref(), command).unwrap();
    events.iter().fold(state, |s, e| Some(Opportunity::evolve(s, e))).unwrap()
}

fn domain(c: &mut Criterion) {
    let new = NewOpportunity {
        account_id: Uuid::now_v7(),
        account_exists: true,
        name: "Fleet renewal".into(),
        owner_id: "alice".into(),
        team_id: Some("east".into()),
        amount: money("12000.00"),
        close_date: NaiveDate::from_ymd_opt(2027, 6, 30).unwrap(),
    };
    let create = OpportunityCommand::Create(new);
    c.bench_function("decide+evolve: create an opportunity", |b| b.iter(|| run(None, black_box(&create))));

    let created = run(None, &create);
    let change = OpportunityCommand::ChangeAmount { amount: money("15000.00") };
    c.bench_function("decide+evolve: change an amount", |b| b.iter(|| run(Some(created.clone()), black_box(&change))));
    let stage = OpportunityCommand::MoveStage { stage: Stage::parse("Qualification").unwrap() };
    c.bench_function("decide+evolve: move a stage", |b| b.iter(|| run(Some(created.clone()), black_box(&stage))));

    let lines: Vec<LineItem> = (0..10)
        .map(|i| serde_json::from_value(json!({"product": format!("Item {i}"), "quantity": "3", "unit_price": "1234.50", "discount_percent": "12.5"})).unwrap())
        .collect();
    let today = Utc::now().date_naive();
    let draft = OpportunityCommand::Quote(QuoteCommand::Draft {
        quote_id: Uuid::now_v7(),
        currency: money("1").currency,
        lines,
        valid_until: NaiveDate::from_ymd_opt(2099, 12, 31).unwrap(),
        today,
    });
    c.bench_function("decide+evolve: draft a quote of 10 lines", |b| b.iter(|| run(Some(created.clone()), black_box(&draft))));

    // An aggregate's state rebuilt from its stream, as the writer does at start.
    let mut events = Opportunity::decide(None, &create).unwrap();
    let mut state = Some(Opportunity::evolve(None, &events[0]));
    for i in 0..99 {
        let e = Opportunity::decide(state.as_ref(), &OpportunityCommand::ChangeAmount { amount: money(&format!("{}.00", 1000 + i)) }).unwrap();
        state = Some(Opportunity::evolve(state, &e[0]));
        events.extend(e);
    }
    c.bench_function("evolve: fold a stream of 100 events", |b| {
        b.iter_batched(|| events.clone(), |events| events.iter().fold(None, |s, e| Some(Opportunity::evolve(s, e))), BatchSize::SmallInput)
    });

    c.bench_function("fold rule: judge 10,000 records of a partition", |b| {
        b.iter(|| {
            let mut fold = PartitionFold::default();
            fold.observe_fence(1);
            let mut applied = 0;
            for version in 1..=10_000i64 {
                // Every hundredth record is a duplicate, as after a retried append.
                let v = if version % 100 == 0 { version - 1 } else { version };
                if fold.judge(black_box(1), applied, v) == Verdict::Apply {
                    applied = v;
                }
            }
            applied
        })
    });
}

criterion_group!(benches, domain);
criterion_main!(benches);
