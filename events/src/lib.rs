//! The Tidemark domain core.
//!
//! Everything here is pure: commands are decided against state (`decide`), accepted
//! events are folded into state (`evolve`), and every reader of the log applies the
//! same [`fold`] rule. Services are thin shells that add I/O around these functions.

pub mod account;
pub mod activity;
pub mod approval;
pub mod contact;
pub mod delegation;
pub mod envelope;
pub mod fold;
pub mod money;
pub mod opportunity;
pub mod partition;
pub mod policy;
pub mod quote;
pub mod rejection;

pub use envelope::{ActorKind, CommandMeta, Envelope};
pub use money::{Currency, Money};
pub use rejection::Rejection;

/// Topic names: one topic per aggregate type, `crm.<aggregate>.events`. A prefix lets
/// several deployments (or test runs) share one cluster.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Topics {
    pub account: String,
    pub opportunity: String,
    pub delegation: String,
    pub activity: String,
    pub contact: String,
}

impl Topics {
    pub fn with_prefix(prefix: &str) -> Topics {
        Topics {
            account: format!("{prefix}crm.{}.events", account::AGGREGATE_TYPE),
            opportunity: format!("{prefix}crm.{}.events", opportunity::AGGREGATE_TYPE),
            delegation: format!("{prefix}crm.{}.events", delegation::AGGREGATE_TYPE),
            activity: format!("{prefix}crm.{}.events", activity::AGGREGATE_TYPE),
            contact: format!("{prefix}crm.{}.events", contact::AGGREGATE_TYPE),
        }
    }

    pub fn all(&self) -> [&str; 5] {
        [&self.account, &self.opportunity, &self.delegation, &self.activity, &self.contact]
    }

    pub fn for_aggregate(&self, aggregate_type: &str) -> Option<&str> {
        match aggregate_type {
            account::AGGREGATE_TYPE => Some(&self.account),
            opportunity::AGGREGATE_TYPE => Some(&self.opportunity),
            delegation::AGGREGATE_TYPE => Some(&self.delegation),
            activity::AGGREGATE_TYPE => Some(&self.activity),
            contact::AGGREGATE_TYPE => Some(&self.contact),
            _ => None,
        }
    }
}

pub use policy::POLICY_VERSION;

/// Every event of either aggregate, as it travels between the domain and the shells.
#[derive(Debug, Clone, PartialEq)]
pub enum DomainEvent {
    Account(account::AccountEvent),
    Opportunity(opportunity::OpportunityEvent),
    Delegation(delegation::DelegationEvent),
    Activity(activity::ActivityEvent),
    Contact(contact::ContactEvent),
}

impl DomainEvent {
    pub fn event_type(&self) -> &'static str {
        match self {
            DomainEvent::Account(e) => e.event_type(),
            DomainEvent::Opportunity(e) => e.event_type(),
            DomainEvent::Delegation(e) => e.event_type(),
            DomainEvent::Activity(e) => e.event_type(),
            DomainEvent::Contact(e) => e.event_type(),
        }
    }
}

/// The state of any aggregate, as every reader of the log folds it.
#[derive(Debug, Clone, PartialEq, serde::Serialize)]
#[serde(untagged)]
pub enum Aggregate {
    Account(account::Account),
    Opportunity(opportunity::Opportunity),
    Delegation(delegation::Delegation),
    Activity(activity::Activity),
    Contact(contact::Contact),
}

/// Folds one accepted event into an aggregate's state, whichever the aggregate.
pub fn evolve(state: Option<Aggregate>, event: &DomainEvent) -> Aggregate {
    match event {
        DomainEvent::Account(e) => Aggregate::Account(account::evolve(
            match state {
                Some(Aggregate::Account(a)) => Some(a),
                _ => None,
            },
            e,
        )),
        DomainEvent::Opportunity(e) => Aggregate::Opportunity(opportunity::evolve(
            match state {
                Some(Aggregate::Opportunity(o)) => Some(o),
                _ => None,
            },
            e,
        )),
        DomainEvent::Delegation(e) => Aggregate::Delegation(delegation::evolve(
            match state {
                Some(Aggregate::Delegation(d)) => Some(d),
                _ => None,
            },
            e,
        )),
        DomainEvent::Activity(e) => Aggregate::Activity(activity::evolve(
            match state {
                Some(Aggregate::Activity(a)) => Some(a),
                _ => None,
            },
            e,
        )),
        DomainEvent::Contact(e) => Aggregate::Contact(contact::evolve(
            match state {
                Some(Aggregate::Contact(c)) => Some(c),
                _ => None,
            },
            e,
        )),
    }
}

/// The payload fields of an event type that hold personal data; the Avro schemas mark the
/// same fields `"tidemark.personal": true` (a test in `schemas` holds the two together).
pub fn personal_fields(event_type: &str) -> &'static [&'static str] {
    match event_type {
        "ContactCreated" | "ContactUpdated" => &["name", "email", "phone"],
        _ => &[],
    }
}

/// An event with its envelope: what one Kafka record carries.
#[derive(Debug, Clone, PartialEq)]
pub struct EventRecord {
    pub envelope: Envelope,
    pub event: DomainEvent,
}
