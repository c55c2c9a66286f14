//! Sequence rules: "this event, then that one within so many days, about the same contact
//! or opportunity", as data. The detector keeps the events that some rule names
//! (`Occurrence`) and pairs them with `Rule::pairs`; a new sequence is a new rule, not new
//! code. Pairing looks at event times only, never at the order events arrived in, so late
//! and out-of-order events find their pairs, and a replay of the log finds the same ones.

use chrono::{DateTime, Duration, Utc};
use serde::{Deserialize, Serialize};
use uuid::Uuid;

use crate::activity::{About, ActivityEvent};
use crate::engagement::{EngagementEvent, SequenceStep};
use crate::{DomainEvent, EventRecord};

/// One sequence to find.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Rule {
    /// Names the rule in every detection; detections of a renamed rule are new ones.
    pub name: String,
    pub first: Step,
    pub then: Step,
    /// The longest time from the first event to the second, in days.
    pub within_days: u32,
    /// What the two events must share (any one of these).
    pub same: Vec<Link>,
}

/// An event a rule names: its type and, for activities, its kind.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Step {
    pub event: String,
    #[serde(default)]
    pub kind: Option<String>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Link {
    Contact,
    Opportunity,
}

/// The rules Tidemark ships with: an email opened, then a meeting booked within 7 days.
pub const DEFAULT_RULES: &str = include_str!("sequence_rules.json");

/// Refuses rules that could never match, or that share a name.
pub fn check_rules(rules: &[Rule]) -> Result<(), String> {
    for (i, rule) in rules.iter().enumerate() {
        let known = |step: &Step| OCCURRING.iter().any(|(event, kinds)| *event == step.event && step.kind.as_deref().is_none_or(|k| kinds.contains(&k)));
        if !known(&rule.first) || !known(&rule.then) {
            return Err(format!("sequence rule '{}': its events must be among {OCCURRING:?}", rule.name));
        }
        if rule.same.is_empty() || rule.within_days == 0 || rule.name.trim().is_empty() {
            return Err(format!("sequence rule '{}': needs a name, a window of at least one day and something the events share", rule.name));
        }
        if rules[..i].iter().any(|r| r.name == rule.name) {
            return Err(format!("sequence rule '{}' is defined twice", rule.name));
        }
    }
    Ok(())
}

/// The events rules may name, with the kinds they have.
const OCCURRING: [(&str, &[&str]); 2] = [("EmailOpened", &[]), ("ActivityLogged", &["call", "email", "meeting"])];

/// An event as rules see it: what it is, when it happened, and whom it is about.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Occurrence {
    pub event_id: Uuid,
    pub event_type: String,
    pub kind: Option<String>,
    /// The event time: when the email was opened, when the meeting was booked (logged).
    pub at: DateTime<Utc>,
    pub contact_id: Option<Uuid>,
    pub opportunity_id: Option<Uuid>,
}

impl Occurrence {
    /// The occurrence an event is, if it is one that rules may name.
    pub fn of(record: &EventRecord) -> Option<Occurrence> {
        let env = &record.envelope;
        let (kind, at, contact_id, opportunity_id) = match &record.event {
            DomainEvent::Engagement(EngagementEvent::EmailOpened(e)) => (None, e.opened_at, Some(e.contact_id), e.opportunity_id),
            DomainEvent::Activity(ActivityEvent::Logged(e)) => {
                let about = |a: About| (e.about == a).then_some(e.about_id);
                (Some(e.kind.name().to_string()), env.occurred_at, about(About::Contact), about(About::Opportunity))
            }
            _ => return None,
        };
        Some(Occurrence { event_id: env.event_id, event_type: env.event_type.clone(), kind, at, contact_id, opportunity_id })
    }

    pub fn step(&self) -> SequenceStep {
        SequenceStep { event_id: self.event_id, event_type: self.event_type.clone(), at: self.at }
    }
}

impl Step {
    fn matches(&self, o: &Occurrence) -> bool {
        self.event == o.event_type && (self.kind.is_none() || self.kind == o.kind)
    }
}

impl Rule {
    /// Whether `first` then `then` is this rule's sequence; if so, the contact they share,
    /// and the opportunity it is about: the one they share, or else the one either names.
    pub fn pairs(&self, first: &Occurrence, then: &Occurrence) -> Option<(Option<Uuid>, Option<Uuid>)> {
        if first.event_id == then.event_id || !self.first.matches(first) || !self.then.matches(then) {
            return None;
        }
        let gap = then.at - first.at;
        if gap < Duration::zero() || gap > Duration::days(self.within_days.into()) {
            return None;
        }
        let shared = |a: Option<Uuid>, b: Option<Uuid>| a.filter(|a| Some(*a) == b);
        let contact = self.same.contains(&Link::Contact).then(|| shared(first.contact_id, then.contact_id)).flatten();
        let opportunity = self.same.contains(&Link::Opportunity).then(|| shared(first.opportunity_id, then.opportunity_id)).flatten();
        let about = opportunity.or(first.opportunity_id).or(then.opportunity_id);
        (contact.is_some() || opportunity.is_some()).then_some((contact, about))
    }

    /// Whether a rule could pair `o` with anything: the detector keeps only those.
    pub fn names(&self, o: &Occurrence) -> bool {
        self.first.matches(o) || self.then.matches(o)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse_rules(json: &str) -> Result<Vec<Rule>, String> {
        let rules: Vec<Rule> = serde_json::from_str(json).map_err(|e| e.to_string())?;
        check_rules(&rules)?;
        Ok(rules)
    }

    fn rule() -> Rule {
        parse_rules(DEFAULT_RULES).unwrap().remove(0)
    }

    fn at(day: u32, hour: u32) -> DateTime<Utc> {
        chrono::NaiveDate::from_ymd_opt(2026, 12, day).unwrap().and_hms_opt(hour, 0, 0).unwrap().and_utc()
    }

    fn opened(id: u128, contact: u128, at: DateTime<Utc>) -> Occurrence {
        Occurrence { event_id: Uuid::from_u128(id), event_type: "EmailOpened".into(), kind: None, at, contact_id: Some(Uuid::from_u128(contact)), opportunity_id: None }
    }

    fn meeting(id: u128, contact: Option<u128>, opportunity: Option<u128>, at: DateTime<Utc>) -> Occurrence {
        Occurrence {
            event_id: Uuid::from_u128(id),
            event_type: "ActivityLogged".into(),
            kind: Some("meeting".into()),
            at,
            contact_id: contact.map(Uuid::from_u128),
            opportunity_id: opportunity.map(Uuid::from_u128),
        }
    }

    #[test]
    fn an_opened_email_then_a_meeting_with_the_same_contact_within_seven_days_is_the_sequence() {
        let r = rule();
        assert_eq!((r.name.as_str(), r.within_days), ("email-opened-then-meeting", 7));
        let first = opened(1, 7, at(1, 9));
        assert_eq!(r.pairs(&first, &meeting(2, Some(7), None, at(8, 9))), Some((Some(Uuid::from_u128(7)), None)), "7 days to the hour");
        assert_eq!(r.pairs(&first, &meeting(2, Some(7), None, at(8, 10))), None, "7 days and an hour");
        assert_eq!(r.pairs(&first, &meeting(2, Some(7), None, at(1, 8))), None, "the meeting before the opening");
        assert_eq!(r.pairs(&first, &meeting(2, Some(8), None, at(2, 9))), None, "another contact");
        let call = Occurrence { kind: Some("call".into()), ..meeting(2, Some(7), None, at(2, 9)) };
        assert_eq!(r.pairs(&first, &call), None, "a call is not a meeting");
        assert_eq!(r.pairs(&meeting(2, Some(7), None, at(2, 9)), &first), None, "the steps in their order");
    }

    #[test]
    fn a_pair_by_contact_is_about_the_opportunity_the_email_was_about() {
        let first = Occurrence { opportunity_id: Some(Uuid::from_u128(5)), ..opened(1, 7, at(1, 9)) };
        assert_eq!(rule().pairs(&first, &meeting(2, Some(7), None, at(3, 9))), Some((Some(Uuid::from_u128(7)), Some(Uuid::from_u128(5)))));
    }

    #[test]
    fn the_same_opportunity_is_enough() {
        let first = Occurrence { opportunity_id: Some(Uuid::from_u128(5)), ..opened(1, 7, at(1, 9)) };
        assert_eq!(rule().pairs(&first, &meeting(2, None, Some(5), at(3, 9))), Some((None, Some(Uuid::from_u128(5)))));
        let only_contacts = Rule { same: vec![Link::Contact], ..rule() };
        assert_eq!(only_contacts.pairs(&first, &meeting(2, None, Some(5), at(3, 9))), None);
    }

    #[test]
    fn rules_are_data_and_bad_ones_are_refused_with_the_reason() {
        let call_then_meeting = r#"[{"name": "call-then-meeting", "first": {"event": "ActivityLogged", "kind": "call"},
                                     "then": {"event": "ActivityLogged", "kind": "meeting"}, "within_days": 2, "same": ["contact"]}]"#;
        let rule = parse_rules(call_then_meeting).unwrap().remove(0);
        let call = Occurrence { kind: Some("call".into()), ..meeting(1, Some(7), None, at(1, 9)) };
        assert!(rule.pairs(&call, &meeting(2, Some(7), None, at(2, 9))).is_some());
        for (bad, says) in [
            (r#"[{"name": "x", "first": {"event": "Nothing"}, "then": {"event": "EmailOpened"}, "within_days": 1, "same": ["contact"]}]"#, "its events"),
            (r#"[{"name": "x", "first": {"event": "EmailOpened"}, "then": {"event": "EmailOpened"}, "within_days": 0, "same": ["contact"]}]"#, "window"),
            (r#"[{"name": "x", "first": {"event": "EmailOpened"}, "then": {"event": "EmailOpened"}, "within": 1, "same": ["contact"]}]"#, "unknown field"),
        ] {
            let refused = parse_rules(bad).unwrap_err();
            assert!(refused.contains(says), "{refused}");
        }
    }
}
