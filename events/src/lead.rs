//! The Lead aggregate: someone who may buy, captured from a form or a list, assigned to a
//! rep by the assignment rules (an automation, with its rationale), qualified or
//! disqualified, and converted into an account, a contact and an opportunity.
//!
//! Conversion is one decision on the lead (`LeadConverted` names the ids of what it
//! creates); the shell then creates the account, contact and opportunity under the same
//! correlation id, and completes any conversion a crash interrupted.

use chrono::{DateTime, NaiveDate, Utc};
use serde::{Deserialize, Serialize};
use uuid::Uuid;

use crate::account::AccountCommand;
use crate::contact::{valid_email, valid_phone, ContactCommand, Details};
use crate::opportunity::{valid_name, NewOpportunity, OpportunityCommand};
use crate::personal::{self, PersonalDataErased};
use crate::{Money, Rejection};

pub const AGGREGATE_TYPE: &str = "lead";

crate::text_enum! {
    pub enum LeadStatus {
        New => "new",
        Qualified => "qualified",
        Disqualified => "disqualified",
        Converted => "converted",
    }
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Lead {
    pub name: String,
    pub company: String,
    pub email: Option<String>,
    pub phone: Option<String>,
    pub territory: String,
    pub segment: String,
    pub source: String,
    pub captured_at: DateTime<Utc>,
    pub owner_id: Option<String>,
    pub team_id: Option<String>,
    pub assigned_at: Option<DateTime<Utc>>,
    pub status: LeadStatus,
    pub disqualify_reason: Option<String>,
    pub conversion: Option<LeadConverted>,
    /// Defaulted: documents stored before erasure existed lack it.
    #[serde(default)]
    pub erased_at: Option<DateTime<Utc>>,
    pub version: i64,
}

/// What a lead is captured with.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct NewLead {
    pub name: String,
    pub company: String,
    pub email: Option<String>,
    pub phone: Option<String>,
    pub territory: String,
    pub segment: String,
    pub source: String,
    pub at: DateTime<Utc>,
}

/// What converting creates: a new account (or an existing one), a contact, an opportunity.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct Conversion {
    /// `Some((id, true))`: an account of the tenant that exists; `None`: open a new one.
    pub existing_account: Option<(Uuid, bool)>,
    pub new_ids: (Uuid, Uuid, Uuid),
    pub opportunity_name: String,
    pub amount: Money,
    pub close_date: NaiveDate,
    /// Who converts, and the correlation id that ties the created records to the lead.
    pub by: String,
    pub correlation_id: String,
}

#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub enum LeadCommand {
    Capture(NewLead),
    /// Given by the assignment rules (an automation); `rule` says which and why.
    Assign { owner_id: String, team_id: String, rule: String, at: DateTime<Utc> },
    Qualify { at: DateTime<Utc> },
    Disqualify { reason: String, at: DateTime<Utc> },
    Convert(Conversion),
    /// Forget the person: the shell destroys the lead's key once this is appended.
    Erase { reason: String, at: DateTime<Utc> },
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct LeadCaptured {
    pub name: String,
    pub company: String,
    pub email: Option<String>,
    pub phone: Option<String>,
    pub territory: String,
    pub segment: String,
    pub source: String,
    pub captured_at: DateTime<Utc>,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct LeadAssigned {
    pub owner_id: String,
    pub team_id: String,
    /// The rule that chose the owner, in words.
    pub rule: String,
    pub assigned_at: DateTime<Utc>,
    /// From capture to assignment: the lead assignment latency.
    pub latency_ms: i64,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct LeadQualified {
    pub qualified_at: DateTime<Utc>,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct LeadDisqualified {
    pub reason: String,
    pub disqualified_at: DateTime<Utc>,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct LeadConverted {
    pub account_id: Uuid,
    /// Whether the conversion opens the account (or uses one that exists).
    pub new_account: bool,
    pub contact_id: Uuid,
    pub opportunity_id: Uuid,
    pub opportunity_name: String,
    pub amount: Money,
    pub close_date: NaiveDate,
    /// The records are created on behalf of this user, under this correlation id, also when
    /// a conversion interrupted by a crash is completed later.
    pub converted_by: String,
    pub correlation_id: String,
}

/// Serializes as its payload alone, like every event.
#[derive(Debug, Clone, PartialEq, Serialize)]
#[serde(untagged)]
pub enum LeadEvent {
    Captured(LeadCaptured),
    Assigned(LeadAssigned),
    Qualified(LeadQualified),
    Disqualified(LeadDisqualified),
    Converted(LeadConverted),
    Erased(PersonalDataErased),
}

impl LeadEvent {
    pub fn event_type(&self) -> &'static str {
        match self {
            LeadEvent::Captured(_) => "LeadCaptured",
            LeadEvent::Assigned(_) => "LeadAssigned",
            LeadEvent::Qualified(_) => "LeadQualified",
            LeadEvent::Disqualified(_) => "LeadDisqualified",
            LeadEvent::Converted(_) => "LeadConverted",
            LeadEvent::Erased(_) => "LeadErased",
        }
    }
}

fn broken(rule: &'static str, message: impl Into<String>) -> Rejection {
    Rejection::Broken { rule, message: message.into() }
}

fn decide(state: Option<&Lead>, command: &LeadCommand) -> Result<Vec<LeadEvent>, Rejection> {
    let lead = match (state, command) {
        (None, LeadCommand::Capture(new)) => return capture(new),
        (Some(_), LeadCommand::Capture(_)) => return Err(Rejection::AlreadyExists),
        (None, _) => return Err(Rejection::NotFound),
        (Some(lead), LeadCommand::Erase { reason, at }) => return Ok(vec![LeadEvent::Erased(personal::erase(lead.erased_at, reason, *at)?)]),
        (Some(Lead { erased_at: Some(at), .. }), _) => return Err(personal::refusal(*at, "lead")),
        (Some(lead), _) => lead,
    };
    if matches!(lead.status, LeadStatus::Converted | LeadStatus::Disqualified) && !matches!(command, LeadCommand::Assign { .. }) {
        return Err(broken("lead-is-closed", format!("the lead is {}; it takes no more changes", lead.status.name())));
    }
    let event = match command {
        LeadCommand::Capture(_) | LeadCommand::Erase { .. } => unreachable!("handled above"),
        LeadCommand::Assign { owner_id, team_id, rule, at } => {
            if lead.owner_id.is_some() {
                return Err(Rejection::NoChange("the lead is assigned already"));
            }
            LeadEvent::Assigned(LeadAssigned {
                owner_id: valid_name("owner_id", owner_id)?,
                team_id: valid_name("team_id", team_id)?,
                rule: rule.clone(),
                assigned_at: *at,
                latency_ms: (*at - lead.captured_at).num_milliseconds().max(0),
            })
        }
        LeadCommand::Qualify { at } => {
            if lead.status == LeadStatus::Qualified {
                return Err(Rejection::NoChange("the lead is qualified already"));
            }
            LeadEvent::Qualified(LeadQualified { qualified_at: *at })
        }
        LeadCommand::Disqualify { reason, at } => LeadEvent::Disqualified(LeadDisqualified { reason: valid_name("reason", reason)?, disqualified_at: *at }),
        LeadCommand::Convert(c) => {
            if lead.status != LeadStatus::Qualified {
                return Err(broken("qualify-before-converting", "a lead is converted once it is qualified"));
            }
            if lead.owner_id.is_none() {
                return Err(broken("assign-before-converting", "the lead has no owner yet: the opportunity needs one"));
            }
            c.amount.validate("amount")?;
            crate::dates::within_window("close_date", c.close_date)?;
            let (account_id, new_account) = match c.existing_account {
                Some((id, true)) => (id, false),
                Some((id, false)) => return Err(Rejection::AccountNotFound(id)),
                None => (c.new_ids.0, true),
            };
            LeadEvent::Converted(LeadConverted {
                account_id,
                new_account,
                contact_id: c.new_ids.1,
                opportunity_id: c.new_ids.2,
                opportunity_name: valid_name("opportunity_name", &c.opportunity_name)?,
                amount: c.amount.clone(),
                close_date: c.close_date,
                converted_by: c.by.clone(),
                correlation_id: c.correlation_id.clone(),
            })
        }
    };
    Ok(vec![event])
}

fn capture(new: &NewLead) -> Result<Vec<LeadEvent>, Rejection> {
    let optional = |v: &Option<String>| v.as_deref().map(str::trim).filter(|v| !v.is_empty()).map(String::from);
    Ok(vec![LeadEvent::Captured(LeadCaptured {
        name: valid_name("name", &new.name)?,
        company: valid_name("company", &new.company)?,
        email: optional(&new.email).map(|e| valid_email(&e)).transpose()?,
        phone: optional(&new.phone).map(|p| valid_phone(&p)).transpose()?,
        territory: valid_name("territory", &new.territory)?.to_lowercase(),
        segment: valid_name("segment", &new.segment)?.to_lowercase(),
        source: valid_name("source", &new.source)?,
        captured_at: new.at,
    })])
}

fn evolve(state: Option<Lead>, event: &LeadEvent) -> Lead {
    let mut lead = match (state, event) {
        (_, LeadEvent::Captured(e)) => {
            return Lead {
                name: e.name.clone(),
                company: e.company.clone(),
                email: e.email.clone(),
                phone: e.phone.clone(),
                territory: e.territory.clone(),
                segment: e.segment.clone(),
                source: e.source.clone(),
                captured_at: e.captured_at,
                owner_id: None,
                team_id: None,
                assigned_at: None,
                status: LeadStatus::New,
                disqualify_reason: None,
                conversion: None,
                erased_at: None,
                version: 1,
            }
        }
        (Some(lead), _) => lead,
        (None, e) => panic!("{} before LeadCaptured: the fold rule must refuse gaps", e.event_type()),
    };
    match event {
        LeadEvent::Captured(_) => unreachable!("handled above"),
        LeadEvent::Assigned(e) => {
            lead.owner_id = Some(e.owner_id.clone());
            lead.team_id = Some(e.team_id.clone());
            lead.assigned_at = Some(e.assigned_at);
        }
        LeadEvent::Qualified(_) => lead.status = LeadStatus::Qualified,
        LeadEvent::Disqualified(e) => {
            lead.status = LeadStatus::Disqualified;
            lead.disqualify_reason = Some(e.reason.clone());
        }
        LeadEvent::Converted(e) => {
            lead.status = LeadStatus::Converted;
            lead.conversion = Some(e.clone());
        }
        LeadEvent::Erased(e) => {
            lead.name = personal::ERASED.to_string();
            lead.email = personal::erased(&lead.email);
            lead.phone = personal::erased(&lead.phone);
            lead.erased_at = Some(e.erased_at);
        }
    }
    lead.version += 1;
    lead
}

/// The commands that carry out a conversion on the other aggregates, each with its own id:
/// the account to open (unless it exists), the contact, and the opportunity, owned by the
/// lead's owner in the lead's team.
pub fn conversion_commands(lead: &Lead, c: &LeadConverted) -> (Option<(Uuid, AccountCommand)>, (Uuid, ContactCommand), (Uuid, OpportunityCommand)) {
    let account = c.new_account.then(|| (c.account_id, AccountCommand::Open { name: lead.company.clone() }));
    let details = Details { name: lead.name.clone(), email: lead.email.clone(), phone: lead.phone.clone(), title: None };
    let contact = (c.contact_id, ContactCommand::Create { account_id: Some(c.account_id), account_exists: true, details });
    let opportunity = OpportunityCommand::Create(NewOpportunity {
        account_id: c.account_id,
        account_exists: true,
        name: c.opportunity_name.clone(),
        owner_id: lead.owner_id.clone().unwrap_or_default(),
        team_id: lead.team_id.clone(),
        amount: c.amount.clone(),
        close_date: c.close_date,
    });
    (account, contact, (c.opportunity_id, opportunity))
}

impl crate::Aggregate for Lead {
    const TYPE: &'static str = AGGREGATE_TYPE;
    type Command = LeadCommand;
    type Event = LeadEvent;

    fn decide(state: Option<&Lead>, command: &LeadCommand) -> Result<Vec<LeadEvent>, Rejection> {
        decide(state, command)
    }

    fn evolve(state: Option<Lead>, event: &LeadEvent) -> Lead {
        evolve(state, event)
    }

    fn of(any: &crate::AnyAggregate) -> Option<&Lead> {
        match any {
            crate::AnyAggregate::Lead(state) => Some(state),
            _ => None,
        }
    }

    fn from_any(any: crate::AnyAggregate) -> Option<Lead> {
        match any {
            crate::AnyAggregate::Lead(state) => Some(state),
            _ => None,
        }
    }

    fn into_any(self) -> crate::AnyAggregate {
        crate::AnyAggregate::Lead(self)
    }

    fn event_into_any(event: LeadEvent) -> crate::DomainEvent {
        crate::DomainEvent::Lead(event)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::aggregate::testing::given_state;
    use crate::Currency;

    fn at(minute: u32) -> DateTime<Utc> {
        NaiveDate::from_ymd_opt(2026, 11, 21).unwrap().and_hms_opt(9, minute, 0).unwrap().and_utc()
    }

    fn run(state: Option<Lead>, cmd: &LeadCommand) -> Result<Lead, Rejection> {
        given_state(state).when(cmd.clone()).outcome()
    }

    fn captured() -> Lead {
        let new = NewLead {
            name: "Jane Doe".into(),
            company: "Initech".into(),
            email: Some("jane@initech.example".into()),
            phone: None,
            territory: "East".into(),
            segment: "SMB".into(),
            source: "web form".into(),
            at: at(0),
        };
        run(None, &LeadCommand::Capture(new)).unwrap()
    }

    fn conversion() -> LeadCommand {
        LeadCommand::Convert(Conversion {
            existing_account: None,
            new_ids: (Uuid::from_u128(1), Uuid::from_u128(2), Uuid::from_u128(3)),
            opportunity_name: "Initech pilot".into(),
            amount: Money { value: 5000.into(), currency: Currency::try_from("EUR".to_string()).unwrap() },
            close_date: NaiveDate::from_ymd_opt(2027, 3, 31).unwrap(),
            by: "bob".into(),
            correlation_id: "c-1".into(),
        })
    }

    #[test]
    fn a_lead_is_assigned_with_its_latency_then_qualified_and_converted() {
        let lead = captured();
        assert_eq!((lead.territory.as_str(), lead.segment.as_str()), ("east", "smb"));
        given_state(lead.clone()).when(conversion()).then_refused("qualify-before-converting");
        let assign = LeadCommand::Assign { owner_id: "bob".into(), team_id: "east".into(), rule: "territory east".into(), at: at(2) };
        let events = given_state(lead.clone()).when(assign.clone()).decided().unwrap();
        assert!(matches!(&events[0], LeadEvent::Assigned(a) if a.latency_ms == 120_000));
        let lead = run(Some(lead), &assign).unwrap();
        given_state(lead.clone()).when(assign.clone()).then_refused("no-change");
        let lead = run(Some(lead), &LeadCommand::Qualify { at: at(3) }).unwrap();
        let lead = run(Some(lead), &conversion()).unwrap();
        let converted = lead.conversion.clone().unwrap();
        let (account, contact, opportunity) = conversion_commands(&lead, &converted);
        assert_eq!(account, Some((Uuid::from_u128(1), AccountCommand::Open { name: "Initech".into() })));
        assert_eq!(contact.0, Uuid::from_u128(2));
        assert!(matches!(opportunity.1, OpportunityCommand::Create(ref o) if o.owner_id == "bob" && o.team_id.as_deref() == Some("east")));
        given_state(lead.clone()).when(LeadCommand::Qualify { at: at(4) }).then_refused("lead-is-closed");
    }

    #[test]
    fn a_disqualified_lead_says_why_and_is_done() {
        let lead = captured();
        let empty = LeadCommand::Disqualify { reason: " ".into(), at: at(1) };
        assert!(matches!(given_state(lead.clone()).when(empty.clone()).decided(), Err(Rejection::InvalidField { field: "reason", .. })));
        let lead = run(Some(lead), &LeadCommand::Disqualify { reason: "a student project".into(), at: at(1) }).unwrap();
        given_state(lead.clone()).when(conversion()).then_refused("lead-is-closed");
    }
}
