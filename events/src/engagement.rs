//! Engagement: what a customer did with what they were sent (an email opened), and the
//! sequences of such signals that the sequence detector found (`EngagementDetected`).
//!
//! Each is an aggregate of one event, whose id is made from what it records: the opening
//! of one message, or one rule's pair of events. Recording it again (a tracker that
//! retries, a detector that replays the log) finds it recorded and appends nothing.

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use uuid::Uuid;

use crate::opportunity::valid_name;
use crate::Rejection;

pub const AGGREGATE_TYPE: &str = "engagement";

/// Ids of engagement aggregates: UUIDv5 in a namespace of their own, per tenant.
const NAMESPACE: Uuid = Uuid::from_u128(0x6a1f_0b9e_52c4_4d7a_9e3b_2f4c_8d1e_7a50);

/// The aggregate that records the first opening of `message_id`.
pub fn email_opened_id(tenant: &str, message_id: &str) -> Uuid {
    Uuid::new_v5(&NAMESPACE, format!("{tenant}/email-opened/{message_id}").as_bytes())
}

/// The aggregate that records `rule`'s detection of the pair (`first`, `then`).
pub fn detection_id(tenant: &str, rule: &str, first: Uuid, then: Uuid) -> Uuid {
    Uuid::new_v5(&NAMESPACE, format!("{tenant}/detected/{rule}/{first}/{then}").as_bytes())
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct EmailOpened {
    pub contact_id: Uuid,
    pub opportunity_id: Option<Uuid>,
    /// The tracker's id of the message.
    pub message_id: String,
    /// When the contact opened it, by the tracker's clock: the event time.
    pub opened_at: DateTime<Utc>,
}

/// One event of a detected sequence.
#[derive(Debug, Clone, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub struct SequenceStep {
    pub event_id: Uuid,
    pub event_type: String,
    pub at: DateTime<Utc>,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct EngagementDetected {
    /// The rule's name.
    pub rule: String,
    pub first: SequenceStep,
    pub then: SequenceStep,
    /// What the two events share, and what the detection is shown on.
    pub contact_id: Option<Uuid>,
    pub opportunity_id: Option<Uuid>,
}

/// An engagement: the one event it records.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub enum Engagement {
    EmailOpened(EmailOpened),
    Detected(EngagementDetected),
}

#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub enum EngagementCommand {
    RecordEmailOpened { contact_id: Uuid, opportunity_id: Option<Uuid>, message_id: String, opened_at: DateTime<Utc>, now: DateTime<Utc> },
    RecordDetection { rule: String, first: SequenceStep, then: SequenceStep, contact_id: Option<Uuid>, opportunity_id: Option<Uuid> },
}

/// Serializes as its payload alone, like every event.
#[derive(Debug, Clone, PartialEq, Serialize)]
#[serde(untagged)]
pub enum EngagementEvent {
    EmailOpened(EmailOpened),
    Detected(EngagementDetected),
}

impl EngagementEvent {
    pub fn event_type(&self) -> &'static str {
        match self {
            EngagementEvent::EmailOpened(_) => "EmailOpened",
            EngagementEvent::Detected(_) => "EngagementDetected",
        }
    }
}

/// A tracker's clock may run a little ahead of ours; an opening further in the future is
/// a wrong date, not an early one.
const CLOCK_SKEW: chrono::Duration = chrono::Duration::minutes(5);

fn decide(state: Option<&Engagement>, command: &EngagementCommand) -> Result<Vec<EngagementEvent>, Rejection> {
    if state.is_some() {
        return Err(Rejection::NoChange("recorded already"));
    }
    match command {
        EngagementCommand::RecordEmailOpened { contact_id, opportunity_id, message_id, opened_at, now } => {
            if *opened_at > *now + CLOCK_SKEW {
                return Err(Rejection::field_rule("opened_at", "date-in-the-future", format!("{opened_at} is in the future")));
            }
            Ok(vec![EngagementEvent::EmailOpened(EmailOpened {
                contact_id: *contact_id,
                opportunity_id: *opportunity_id,
                message_id: valid_name("message_id", message_id)?,
                opened_at: *opened_at,
            })])
        }
        EngagementCommand::RecordDetection { rule, first, then, contact_id, opportunity_id } => {
            if contact_id.is_none() && opportunity_id.is_none() {
                return Err(Rejection::invalid("contact_id", "a detection is about a contact or an opportunity"));
            }
            if then.at < first.at {
                return Err(Rejection::field_rule("then", "sequence-in-order", "the second event must not come before the first"));
            }
            Ok(vec![EngagementEvent::Detected(EngagementDetected {
                rule: valid_name("rule", rule)?,
                first: first.clone(),
                then: then.clone(),
                contact_id: *contact_id,
                opportunity_id: *opportunity_id,
            })])
        }
    }
}

fn evolve(state: Option<Engagement>, event: &EngagementEvent) -> Engagement {
    if let Some(state) = state {
        panic!("{} after {:?}: an engagement has one event, and the fold rule must refuse another", event.event_type(), state);
    }
    match event {
        EngagementEvent::EmailOpened(e) => Engagement::EmailOpened(e.clone()),
        EngagementEvent::Detected(e) => Engagement::Detected(e.clone()),
    }
}

impl crate::Aggregate for Engagement {
    const TYPE: &'static str = AGGREGATE_TYPE;
    type Command = EngagementCommand;
    type Event = EngagementEvent;

    fn decide(state: Option<&Engagement>, command: &EngagementCommand) -> Result<Vec<EngagementEvent>, Rejection> {
        decide(state, command)
    }

    fn evolve(state: Option<Engagement>, event: &EngagementEvent) -> Engagement {
        evolve(state, event)
    }

    fn of(any: &crate::AnyAggregate) -> Option<&Engagement> {
        match any {
            crate::AnyAggregate::Engagement(state) => Some(state),
            _ => None,
        }
    }

    fn from_any(any: crate::AnyAggregate) -> Option<Engagement> {
        match any {
            crate::AnyAggregate::Engagement(state) => Some(state),
            _ => None,
        }
    }

    fn into_any(self) -> crate::AnyAggregate {
        crate::AnyAggregate::Engagement(self)
    }

    fn event_into_any(event: EngagementEvent) -> crate::DomainEvent {
        crate::DomainEvent::Engagement(event)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::aggregate::testing::given_nothing;

    fn at(day: u32) -> DateTime<Utc> {
        chrono::NaiveDate::from_ymd_opt(2026, 12, day).unwrap().and_hms_opt(9, 0, 0).unwrap().and_utc()
    }

    fn opened(message: &str, day: u32) -> EngagementCommand {
        EngagementCommand::RecordEmailOpened { contact_id: Uuid::from_u128(1), opportunity_id: None, message_id: message.into(), opened_at: at(day), now: at(4) }
    }

    #[test]
    fn an_opening_is_recorded_once() {
        let events = given_nothing::<Engagement>().when(opened("m-1", 2)).decided().unwrap();
        let state = events.iter().fold(None, |s, e| Some(evolve(s, e)));
        crate::aggregate::testing::given_state::<Engagement>(state).when(opened("m-1", 3)).then_refused("no-change");
        given_nothing::<Engagement>().when(opened("m-1", 9)).then_refused("date-in-the-future");
        given_nothing::<Engagement>().when(opened(" ", 2)).decided().unwrap_err();
    }

    #[test]
    fn ids_are_made_from_what_is_recorded() {
        assert_eq!(email_opened_id("t", "m-1"), email_opened_id("t", "m-1"));
        assert_ne!(email_opened_id("t", "m-1"), email_opened_id("u", "m-1"), "tenants never share an id");
        let (a, b) = (Uuid::from_u128(1), Uuid::from_u128(2));
        assert_ne!(detection_id("t", "r", a, b), detection_id("t", "r", b, a));
    }
}
