//! The Delegation aggregate: an approver hands their approval authority to someone else
//! for a date range (a holiday, a leave). The delegation records the authority it hands
//! over, the delegator's roles and team when they delegated, so a delegate's approval can
//! be judged from the log alone.

use chrono::{DateTime, NaiveDate, Utc};
use serde::{Deserialize, Serialize};

use crate::opportunity::valid_name;
use crate::policy::Role;
use crate::approval::Delegated;
use crate::Rejection;

pub const AGGREGATE_TYPE: &str = "delegation";
/// Longer absences are a change of approver, not a delegation.
const MAX_DAYS: i64 = 180;

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Delegation {
    pub delegator: String,
    pub delegator_roles: Vec<String>,
    pub delegator_team: Option<String>,
    pub delegate: String,
    pub valid_from: NaiveDate,
    pub valid_until: NaiveDate,
    pub revoked: bool,
    pub version: i64,
}

impl Delegation {
    pub fn active_on(&self, day: NaiveDate) -> bool {
        !self.revoked && self.valid_from <= day && day <= self.valid_until
    }

    /// The authority it hands to the delegate.
    pub fn authority(&self) -> Delegated {
        Delegated {
            delegator: self.delegator.clone(),
            roles: self.delegator_roles.iter().filter_map(|r| Role::parse(r)).collect(),
            team: self.delegator_team.clone(),
        }
    }
}

#[derive(Debug, Clone, PartialEq, Hash)]
pub enum DelegationCommand {
    Grant { delegator: String, roles: Vec<Role>, team: Option<String>, delegate: String, valid_from: NaiveDate, valid_until: NaiveDate, today: NaiveDate },
    Revoke { by: String, at: DateTime<Utc> },
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct DelegationGranted {
    pub delegator: String,
    pub delegator_roles: Vec<String>,
    pub delegator_team: Option<String>,
    pub delegate: String,
    pub valid_from: NaiveDate,
    pub valid_until: NaiveDate,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct DelegationRevoked {
    pub revoked_by: String,
    pub revoked_at: DateTime<Utc>,
}

/// Serializes as its payload alone, like every event.
#[derive(Debug, Clone, PartialEq, Serialize)]
#[serde(untagged)]
pub enum DelegationEvent {
    Granted(DelegationGranted),
    Revoked(DelegationRevoked),
}

impl DelegationEvent {
    pub fn event_type(&self) -> &'static str {
        match self {
            DelegationEvent::Granted(_) => "DelegationGranted",
            DelegationEvent::Revoked(_) => "DelegationRevoked",
        }
    }
}

fn decide(state: Option<&Delegation>, command: &DelegationCommand) -> Result<Vec<DelegationEvent>, Rejection> {
    match (state, command) {
        (Some(_), DelegationCommand::Grant { .. }) => Err(Rejection::AlreadyExists),
        (None, DelegationCommand::Revoke { .. }) => Err(Rejection::NotFound),
        (None, DelegationCommand::Grant { delegator, roles, team, delegate, valid_from, valid_until, today }) => {
            if !roles.contains(&Role::Approver) {
                return Err(Rejection::NotYours { code: "only-approvers-delegate", message: "only an approver has approvals to delegate".into() });
            }
            let delegate = valid_name("delegate", delegate)?;
            if delegate == *delegator {
                return Err(Rejection::field_rule("delegate", "delegate-to-someone-else", "a delegation goes to someone else"));
            }
            if valid_until < valid_from {
                return Err(Rejection::field_rule("valid_until", "valid-until-after-valid-from", "must not be before valid_from"));
            }
            if valid_until < today {
                return Err(Rejection::field_rule("valid_until", "date-in-the-past", format!("{valid_until} is in the past")));
            }
            if (*valid_until - *valid_from).num_days() >= MAX_DAYS {
                return Err(Rejection::field_rule("valid_until", "delegation-too-long", format!("a delegation lasts at most {MAX_DAYS} days")));
            }
            Ok(vec![DelegationEvent::Granted(DelegationGranted {
                delegator: delegator.clone(),
                delegator_roles: roles.iter().map(|r| r.name().to_string()).collect(),
                delegator_team: team.clone(),
                delegate,
                valid_from: *valid_from,
                valid_until: *valid_until,
            })])
        }
        (Some(d), DelegationCommand::Revoke { by, at }) => {
            if *by != d.delegator {
                return Err(Rejection::NotYours { code: "only-the-delegator-revokes", message: format!("this delegation is {}'s to revoke", d.delegator) });
            }
            if d.revoked {
                return Err(Rejection::NoChange("the delegation is revoked already"));
            }
            Ok(vec![DelegationEvent::Revoked(DelegationRevoked { revoked_by: by.clone(), revoked_at: *at })])
        }
    }
}

fn evolve(state: Option<Delegation>, event: &DelegationEvent) -> Delegation {
    match (state, event) {
        (_, DelegationEvent::Granted(e)) => Delegation {
            delegator: e.delegator.clone(),
            delegator_roles: e.delegator_roles.clone(),
            delegator_team: e.delegator_team.clone(),
            delegate: e.delegate.clone(),
            valid_from: e.valid_from,
            valid_until: e.valid_until,
            revoked: false,
            version: 1,
        },
        (Some(d), DelegationEvent::Revoked(_)) => Delegation { revoked: true, version: d.version + 1, ..d },
        (None, e) => panic!("{} before DelegationGranted: the fold rule must refuse gaps", e.event_type()),
    }
}

impl crate::Aggregate for Delegation {
    const TYPE: &'static str = AGGREGATE_TYPE;
    type Command = DelegationCommand;
    type Event = DelegationEvent;

    fn decide(state: Option<&Delegation>, command: &DelegationCommand) -> Result<Vec<DelegationEvent>, Rejection> {
        decide(state, command)
    }

    fn evolve(state: Option<Delegation>, event: &DelegationEvent) -> Delegation {
        evolve(state, event)
    }

    fn of(any: &crate::AnyAggregate) -> Option<&Delegation> {
        match any {
            crate::AnyAggregate::Delegation(state) => Some(state),
            _ => None,
        }
    }

    fn from_any(any: crate::AnyAggregate) -> Option<Delegation> {
        match any {
            crate::AnyAggregate::Delegation(state) => Some(state),
            _ => None,
        }
    }

    fn into_any(self) -> crate::AnyAggregate {
        crate::AnyAggregate::Delegation(self)
    }

    fn event_into_any(event: DelegationEvent) -> crate::DomainEvent {
        crate::DomainEvent::Delegation(event)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::aggregate::testing::{given_nothing, given_state};

    fn day(d: u32) -> NaiveDate {
        NaiveDate::from_ymd_opt(2026, 12, d).unwrap()
    }

    fn grant(roles: &[Role], delegate: &str, from: u32, until: u32) -> DelegationCommand {
        DelegationCommand::Grant {
            delegator: "mia".into(),
            roles: roles.to_vec(),
            team: Some("east".into()),
            delegate: delegate.into(),
            valid_from: day(from),
            valid_until: day(until),
            today: day(1),
        }
    }

    #[test]
    fn an_approver_delegates_for_a_date_range() {
        let d = given_nothing::<Delegation>().when(grant(&[Role::Manager, Role::Approver], "bob", 10, 20)).then_state();
        assert!(!d.active_on(day(9)) && d.active_on(day(10)) && d.active_on(day(20)) && !d.active_on(day(21)));
        assert_eq!(d.authority(), Delegated { delegator: "mia".into(), roles: vec![Role::Manager, Role::Approver], team: Some("east".into()) });
        let revoke = DelegationCommand::Revoke { by: "bob".into(), at: day(12).and_hms_opt(0, 0, 0).unwrap().and_utc() };
        given_state(d.clone()).when(revoke.clone()).then_refused("only-the-delegator-revokes");
        let revoke = DelegationCommand::Revoke { by: "mia".into(), at: day(12).and_hms_opt(0, 0, 0).unwrap().and_utc() };
        let d = given_state(d).when(revoke.clone()).then_state();
        assert!(!d.active_on(day(15)));
        given_state(d).when(revoke).then_refused("no-change");
    }

    #[test]
    fn bad_delegations_are_refused_with_the_reason() {
        given_nothing::<Delegation>().when(grant(&[Role::Manager], "bob", 10, 20)).then_refused("only-approvers-delegate");
        let approver = [Role::Manager, Role::Approver];
        let field = |cmd| given_nothing::<Delegation>().when(cmd).decided().unwrap_err().field().expect("names a field");
        assert_eq!(field(grant(&approver, "mia", 10, 20)), "delegate", "not to oneself");
        assert_eq!(field(grant(&approver, "bob", 20, 10)), "valid_until", "an empty range");
        let mut too_long = grant(&approver, "bob", 1, 2);
        if let DelegationCommand::Grant { valid_until, .. } = &mut too_long {
            *valid_until = day(1) + chrono::Days::new(200);
        }
        assert_eq!(field(too_long), "valid_until");
    }
}
