//! The Tidemark domain core.
//!
//! Everything here is pure: commands are decided against state (`decide`), accepted
//! events are folded into state (`evolve`), and every reader of the log applies the
//! same [`fold`] rule. Services are thin shells that add I/O around these functions.

/// An enumeration that travels as text (Avro `string`, JSON string), so that symbols may be
/// added without breaking old readers: the enum, `ALL`, `name()`, and the conversions that
/// serde uses, from one list of variants and their names.
macro_rules! text_enum {
    ($(#[$meta:meta])* pub enum $name:ident { $($(#[$vmeta:meta])* $variant:ident => $text:literal),+ $(,)? }) => {
        $(#[$meta])*
        #[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, serde::Serialize, serde::Deserialize)]
        #[serde(try_from = "String", into = "&'static str")]
        pub enum $name {
            $($(#[$vmeta])* $variant),+
        }

        impl $name {
            pub const ALL: &'static [$name] = &[$($name::$variant),+];

            pub fn name(self) -> &'static str {
                match self {
                    $($name::$variant => $text),+
                }
            }

            /// Every name, in `ALL`'s order: for error messages and the OpenAPI enums.
            pub fn names() -> impl Iterator<Item = &'static str> {
                Self::ALL.iter().map(|v| v.name())
            }
        }

        impl TryFrom<String> for $name {
            type Error = String;
            fn try_from(name: String) -> Result<Self, String> {
                Self::ALL.iter().copied().find(|v| v.name() == name).ok_or_else(|| {
                    format!("'{name}' is not one of {}", Self::names().collect::<Vec<_>>().join(", "))
                })
            }
        }

        impl From<$name> for &'static str {
            fn from(v: $name) -> &'static str {
                v.name()
            }
        }
    };
}
pub(crate) use text_enum;

pub mod account;
pub mod aggregate;
pub mod activity;
pub mod approval;
pub mod assignment;
pub mod contact;
pub mod dates;
pub mod delegation;
pub mod engagement;
pub mod envelope;
pub mod fold;
pub mod lead;
pub mod money;
pub mod offline;
pub mod opportunity;
pub mod partition;
pub mod personal;
pub mod policy;
pub mod quote;
pub mod rejection;
pub mod sequence;
pub mod teams;

pub use aggregate::Aggregate;
pub use envelope::{ActorKind, CommandMeta, Envelope};
pub use money::{Currency, Money};
pub use personal::{personal_fields, personal_values_mut, ERASED};
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
    pub lead: String,
    pub engagement: String,
    /// Not an event topic: one empty partition per shard (see the writer's `ownership`), so
    /// that Kafka's group protocol can share the shards among the writers.
    pub writer_shards: String,
}

impl Topics {
    pub fn with_prefix(prefix: &str) -> Topics {
        Topics {
            account: format!("{prefix}crm.{}.events", account::AGGREGATE_TYPE),
            opportunity: format!("{prefix}crm.{}.events", opportunity::AGGREGATE_TYPE),
            delegation: format!("{prefix}crm.{}.events", delegation::AGGREGATE_TYPE),
            activity: format!("{prefix}crm.{}.events", activity::AGGREGATE_TYPE),
            contact: format!("{prefix}crm.{}.events", contact::AGGREGATE_TYPE),
            lead: format!("{prefix}crm.{}.events", lead::AGGREGATE_TYPE),
            engagement: format!("{prefix}crm.{}.events", engagement::AGGREGATE_TYPE),
            writer_shards: format!("{prefix}tidemark.writer.shards"),
        }
    }

    /// The kinds of aggregate, each with a topic of its own.
    pub const AGGREGATE_TYPES: [&'static str; 7] = [
        account::AGGREGATE_TYPE,
        opportunity::AGGREGATE_TYPE,
        delegation::AGGREGATE_TYPE,
        activity::AGGREGATE_TYPE,
        contact::AGGREGATE_TYPE,
        lead::AGGREGATE_TYPE,
        engagement::AGGREGATE_TYPE,
    ];

    pub fn all(&self) -> [&str; 7] {
        [&self.account, &self.opportunity, &self.delegation, &self.activity, &self.contact, &self.lead, &self.engagement]
    }

    pub fn for_aggregate(&self, aggregate_type: &str) -> Option<&str> {
        match aggregate_type {
            account::AGGREGATE_TYPE => Some(&self.account),
            opportunity::AGGREGATE_TYPE => Some(&self.opportunity),
            delegation::AGGREGATE_TYPE => Some(&self.delegation),
            activity::AGGREGATE_TYPE => Some(&self.activity),
            contact::AGGREGATE_TYPE => Some(&self.contact),
            lead::AGGREGATE_TYPE => Some(&self.lead),
            engagement::AGGREGATE_TYPE => Some(&self.engagement),
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
    Lead(lead::LeadEvent),
    Engagement(engagement::EngagementEvent),
}

impl DomainEvent {
    pub fn event_type(&self) -> &'static str {
        match self {
            DomainEvent::Account(e) => e.event_type(),
            DomainEvent::Opportunity(e) => e.event_type(),
            DomainEvent::Delegation(e) => e.event_type(),
            DomainEvent::Activity(e) => e.event_type(),
            DomainEvent::Contact(e) => e.event_type(),
            DomainEvent::Lead(e) => e.event_type(),
            DomainEvent::Engagement(e) => e.event_type(),
        }
    }
}

/// The state of any aggregate, as every reader of the log folds it.
#[derive(Debug, Clone, PartialEq, serde::Serialize)]
#[serde(untagged)]
pub enum AnyAggregate {
    Account(account::Account),
    Opportunity(opportunity::Opportunity),
    Delegation(delegation::Delegation),
    Activity(activity::Activity),
    Contact(contact::Contact),
    Lead(lead::Lead),
    Engagement(engagement::Engagement),
}

/// Folds one accepted event into an aggregate's state, whichever the aggregate.
pub fn evolve(state: Option<AnyAggregate>, event: &DomainEvent) -> AnyAggregate {
    use aggregate::step;
    match event {
        DomainEvent::Account(e) => step::<account::Account>(state, e),
        DomainEvent::Opportunity(e) => step::<opportunity::Opportunity>(state, e),
        DomainEvent::Delegation(e) => step::<delegation::Delegation>(state, e),
        DomainEvent::Activity(e) => step::<activity::Activity>(state, e),
        DomainEvent::Contact(e) => step::<contact::Contact>(state, e),
        DomainEvent::Lead(e) => step::<lead::Lead>(state, e),
        DomainEvent::Engagement(e) => step::<engagement::Engagement>(state, e),
    }
}

/// An event with its envelope: what one Kafka record carries.
#[derive(Debug, Clone, PartialEq)]
pub struct EventRecord {
    pub envelope: Envelope,
    pub event: DomainEvent,
}
