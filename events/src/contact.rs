//! The Contact aggregate: a person at a customer, optionally linked to an account. Name,
//! email and phone are personal data (marked so in the Avro schemas); they are validated
//! and normalized here, once, before they reach the log.

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use uuid::Uuid;

use crate::opportunity::valid_name;
use crate::personal::{self, PersonalDataErased};
use crate::Rejection;

pub const AGGREGATE_TYPE: &str = "contact";

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Contact {
    pub account_id: Option<Uuid>,
    pub name: String,
    pub email: Option<String>,
    pub phone: Option<String>,
    pub title: Option<String>,
    pub erased_at: Option<DateTime<Utc>>,
    pub version: i64,
}

/// A contact's fields as a command gives them.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct Details {
    pub name: String,
    pub email: Option<String>,
    pub phone: Option<String>,
    pub title: Option<String>,
}

#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub enum ContactCommand {
    /// `account_exists`: the shell looked the account up (none given: nothing to look up).
    Create { account_id: Option<Uuid>, account_exists: bool, details: Details },
    Update { details: Details },
    Link { account_id: Uuid, account_exists: bool },
    /// Forget the person: the shell destroys the contact's key once this is appended.
    Erase { reason: String, at: DateTime<Utc> },
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ContactCreated {
    pub account_id: Option<Uuid>,
    pub name: String,
    pub email: Option<String>,
    pub phone: Option<String>,
    pub title: Option<String>,
}

/// The contact's fields after the update, all of them.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ContactUpdated {
    pub name: String,
    pub email: Option<String>,
    pub phone: Option<String>,
    pub title: Option<String>,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ContactLinked {
    pub account_id: Uuid,
}

/// Serializes as its payload alone, like every event.
#[derive(Debug, Clone, PartialEq, Serialize)]
#[serde(untagged)]
pub enum ContactEvent {
    Created(ContactCreated),
    Updated(ContactUpdated),
    Linked(ContactLinked),
    Erased(PersonalDataErased),
}

impl ContactEvent {
    pub fn event_type(&self) -> &'static str {
        match self {
            ContactEvent::Created(_) => "ContactCreated",
            ContactEvent::Updated(_) => "ContactUpdated",
            ContactEvent::Linked(_) => "ContactLinked",
            ContactEvent::Erased(_) => "ContactErased",
        }
    }
}

/// An address of the shape name@domain.tld, without spaces; the domain is lower-cased.
pub fn valid_email(email: &str) -> Result<String, Rejection> {
    let email = email.trim();
    let bad = |why: &str| Rejection::invalid("email", format!("'{email}' is not an email address: {why}"));
    if email.len() > 254 || email.chars().any(char::is_whitespace) {
        return Err(bad("no spaces, at most 254 characters"));
    }
    let (local, domain) = email.split_once('@').ok_or_else(|| bad("it has no @"))?;
    if local.is_empty() || domain.contains('@') {
        return Err(bad("one @, with a name before it"));
    }
    let labels: Vec<&str> = domain.split('.').collect();
    if labels.len() < 2 || labels.iter().any(|l| l.is_empty() || l.starts_with('-') || l.ends_with('-')) {
        return Err(bad("the domain needs a dot, as in example.com"));
    }
    Ok(format!("{local}@{}", domain.to_lowercase()))
}

/// A phone number in the international format, normalized to E.164: "+49 30 1234-567" is
/// "+49301234567".
pub fn valid_phone(phone: &str) -> Result<String, Rejection> {
    let bad = || Rejection::invalid("phone", format!("'{}' is not a phone number in the international format, e.g. +49 30 1234567", phone.trim()));
    let rest = phone.trim().strip_prefix('+').ok_or_else(bad)?;
    if rest.chars().any(|c| !(c.is_ascii_digit() || " -().".contains(c))) {
        return Err(bad());
    }
    let digits: String = rest.chars().filter(char::is_ascii_digit).collect();
    if !(8..=15).contains(&digits.len()) || digits.starts_with('0') {
        return Err(bad());
    }
    Ok(format!("+{digits}"))
}

fn valid(details: &Details) -> Result<Details, Rejection> {
    let optional = |v: &Option<String>| v.as_deref().map(str::trim).filter(|v| !v.is_empty()).map(String::from);
    Ok(Details {
        name: valid_name("name", &details.name)?,
        email: optional(&details.email).map(|e| valid_email(&e)).transpose()?,
        phone: optional(&details.phone).map(|p| valid_phone(&p)).transpose()?,
        title: optional(&details.title).map(|t| valid_name("title", &t)).transpose()?,
    })
}

fn decide(state: Option<&Contact>, command: &ContactCommand) -> Result<Vec<ContactEvent>, Rejection> {
    match (state, command) {
        (Some(_), ContactCommand::Create { .. }) => Err(Rejection::AlreadyExists),
        (None, ContactCommand::Create { account_id, account_exists, details }) => {
            let d = valid(details)?;
            if let (Some(id), false) = (account_id, account_exists) {
                return Err(Rejection::AccountNotFound(*id));
            }
            Ok(vec![ContactEvent::Created(ContactCreated { account_id: *account_id, name: d.name, email: d.email, phone: d.phone, title: d.title })])
        }
        (None, _) => Err(Rejection::NotFound),
        (Some(c), ContactCommand::Erase { reason, at }) => Ok(vec![ContactEvent::Erased(personal::erase(c.erased_at, reason, *at)?)]),
        (Some(Contact { erased_at: Some(at), .. }), _) => Err(personal::refusal(*at, "contact")),
        (Some(c), ContactCommand::Update { details }) => {
            let d = valid(details)?;
            if (&d.name, &d.email, &d.phone, &d.title) == (&c.name, &c.email, &c.phone, &c.title) {
                return Err(Rejection::NoChange("the contact has these details already"));
            }
            Ok(vec![ContactEvent::Updated(ContactUpdated { name: d.name, email: d.email, phone: d.phone, title: d.title })])
        }
        (Some(c), ContactCommand::Link { account_id, account_exists }) => {
            if !account_exists {
                return Err(Rejection::AccountNotFound(*account_id));
            }
            if c.account_id == Some(*account_id) {
                return Err(Rejection::NoChange("the contact is linked to that account already"));
            }
            Ok(vec![ContactEvent::Linked(ContactLinked { account_id: *account_id })])
        }
    }
}

fn evolve(state: Option<Contact>, event: &ContactEvent) -> Contact {
    match (state, event) {
        (_, ContactEvent::Created(e)) => Contact {
            account_id: e.account_id,
            name: e.name.clone(),
            email: e.email.clone(),
            phone: e.phone.clone(),
            title: e.title.clone(),
            erased_at: None,
            version: 1,
        },
        (Some(c), ContactEvent::Updated(e)) => Contact {
            name: e.name.clone(),
            email: e.email.clone(),
            phone: e.phone.clone(),
            title: e.title.clone(),
            version: c.version + 1,
            ..c
        },
        (Some(c), ContactEvent::Linked(e)) => Contact { account_id: Some(e.account_id), version: c.version + 1, ..c },
        (Some(c), ContactEvent::Erased(e)) => Contact {
            name: personal::ERASED.to_string(),
            email: personal::erased(&c.email),
            phone: personal::erased(&c.phone),
            erased_at: Some(e.erased_at),
            version: c.version + 1,
            ..c
        },
        (None, e) => panic!("{} before ContactCreated: the fold rule must refuse gaps", e.event_type()),
    }
}

impl crate::Aggregate for Contact {
    const TYPE: &'static str = AGGREGATE_TYPE;
    type Command = ContactCommand;
    type Event = ContactEvent;

    fn decide(state: Option<&Contact>, command: &ContactCommand) -> Result<Vec<ContactEvent>, Rejection> {
        decide(state, command)
    }

    fn evolve(state: Option<Contact>, event: &ContactEvent) -> Contact {
        evolve(state, event)
    }

    fn of(any: &crate::AnyAggregate) -> Option<&Contact> {
        match any {
            crate::AnyAggregate::Contact(state) => Some(state),
            _ => None,
        }
    }

    fn from_any(any: crate::AnyAggregate) -> Option<Contact> {
        match any {
            crate::AnyAggregate::Contact(state) => Some(state),
            _ => None,
        }
    }

    fn into_any(self) -> crate::AnyAggregate {
        crate::AnyAggregate::Contact(self)
    }

    fn event_into_any(event: ContactEvent) -> crate::DomainEvent {
        crate::DomainEvent::Contact(event)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::aggregate::testing::{given_nothing, given_state};

    #[test]
    fn emails_and_phones_are_checked_and_normalized() {
        assert_eq!(valid_email(" Jane.Doe@Example.COM ").unwrap(), "Jane.Doe@example.com");
        for bad in ["jane", "jane@", "@example.com", "jane@example", "jane doe@example.com", "a@b@c.com", "jane@-x.com"] {
            assert!(valid_email(bad).is_err(), "{bad}");
        }
        assert_eq!(valid_phone("+49 (30) 1234-567").unwrap(), "+49301234567");
        for bad in ["030 1234567", "+49 30 12a4567", "+123", "+0049301234567", "+1234567890123456"] {
            assert!(valid_phone(bad).is_err(), "{bad}");
        }
    }

    fn details(email: &str) -> Details {
        Details { name: "Jane Doe".into(), email: Some(email.into()), phone: Some("+44 20 7946 0958".into()), title: None }
    }

    #[test]
    fn a_contact_is_created_updated_and_linked() {
        let account = Uuid::from_u128(9);
        let create = ContactCommand::Create { account_id: None, account_exists: false, details: details("jane@acme.com") };
        let c = given_nothing::<Contact>().when(create).then_state();
        assert_eq!((c.phone.as_deref(), c.account_id), (Some("+442079460958"), None));
        let same = ContactCommand::Update { details: details("jane@ACME.com") };
        given_state(c.clone()).when(same.clone()).then_refused("no-change");
        let bad = ContactCommand::Update { details: details("jane") };
        assert!(matches!(given_state(c.clone()).when(bad).decided(), Err(Rejection::InvalidField { field: "email", .. })));
        given_state(c.clone()).when(ContactCommand::Link { account_id: account, account_exists: false }).then_refused("account-must-exist");
        let linked = given_state(c).when(ContactCommand::Link { account_id: account, account_exists: true }).then_state();
        assert_eq!((linked.account_id, linked.version), (Some(account), 2));
        let erase = ContactCommand::Erase { reason: "the person asked".into(), at: chrono::Utc::now() };
        let erased = given_state(linked).when(erase.clone()).then_state();
        assert_eq!((erased.name.as_str(), erased.email.as_deref(), erased.title.as_deref()), ("[erased]", Some("[erased]"), None));
        given_state(erased.clone()).when(same.clone()).then_refused("personal-data-erased");
        given_state(erased).when(erase).then_refused("no-change");
    }
}
