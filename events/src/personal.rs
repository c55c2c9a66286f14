//! Personal data in events: which fields hold it, and its erasure.
//!
//! Personal values travel sealed, with a key per data subject (a contact or a lead); erasing
//! the subject destroys the key (crypto-shredding, in `tidemark-privacy`). The domain records
//! the erasure as an event of the subject's own stream, so that it is audited like any other
//! change, and refuses every later change to the subject.

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};

use crate::{contact::ContactEvent, lead::LeadEvent, DomainEvent, Rejection};

/// What every reader shows in place of an erased value.
pub const ERASED: &str = "[erased]";

/// The payload fields of an event type that hold personal data; the Avro schemas mark the
/// same fields `"tidemark.personal": true` (a test in `schemas` holds the two together).
pub fn personal_fields(event_type: &str) -> &'static [&'static str] {
    match event_type {
        "ContactCreated" | "ContactUpdated" | "LeadCaptured" => &["name", "email", "phone"],
        _ => &[],
    }
}

/// Whether `field` of a command on `target` (`contact/<id>`, `lead/<id>`) is personal data.
pub fn is_personal(target: &str, field: &str) -> bool {
    let event_type = match target.split('/').next() {
        Some(crate::contact::AGGREGATE_TYPE) => "ContactCreated",
        Some(crate::lead::AGGREGATE_TYPE) => "LeadCaptured",
        _ => return false,
    };
    personal_fields(event_type).contains(&field)
}

/// The personal values of an event, in place, to seal or open: the fields `personal_fields`
/// names, where the event has a value.
pub fn personal_values_mut(event: &mut DomainEvent) -> Vec<&mut String> {
    let (name, email, phone) = match event {
        DomainEvent::Contact(ContactEvent::Created(e)) => (&mut e.name, &mut e.email, &mut e.phone),
        DomainEvent::Contact(ContactEvent::Updated(e)) => (&mut e.name, &mut e.email, &mut e.phone),
        DomainEvent::Lead(LeadEvent::Captured(e)) => (&mut e.name, &mut e.email, &mut e.phone),
        _ => return vec![],
    };
    [Some(name), email.as_mut(), phone.as_mut()].into_iter().flatten().collect()
}

/// `ContactErased` and `LeadErased`: the subject's key was destroyed.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct PersonalDataErased {
    pub reason: String,
    pub erased_at: DateTime<Utc>,
}

/// The erasure of a subject erased `erased_at` (if ever); once is enough.
pub fn erase(erased_at: Option<DateTime<Utc>>, reason: &str, at: DateTime<Utc>) -> Result<PersonalDataErased, Rejection> {
    if erased_at.is_some() {
        return Err(Rejection::NoChange("the personal data is erased already"));
    }
    Ok(PersonalDataErased { reason: crate::opportunity::valid_name("reason", reason)?, erased_at: at })
}

/// Why an erased subject takes no more changes: new personal data would need a new key, and
/// whoever asked for the erasure asked for the subject to be forgotten.
pub fn refusal(erased_at: DateTime<Utc>, what: &str) -> Rejection {
    Rejection::Broken {
        rule: "personal-data-erased",
        message: format!("this {what}'s personal data was erased on {}; it takes no more changes", erased_at.format("%Y-%m-%d")),
    }
}

/// The value an erased field shows: `ERASED` where it held something.
pub fn erased(value: &Option<String>) -> Option<String> {
    value.as_ref().map(|_| ERASED.to_string())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::contact::ContactUpdated;
    use crate::lead::LeadCaptured;

    #[test]
    fn the_values_to_seal_are_the_personal_fields() {
        let full = |s: &str| Some(s.to_string());
        let mut events = [
            DomainEvent::Contact(ContactEvent::Updated(ContactUpdated { name: "n".into(), email: full("e"), phone: full("p"), title: full("t") })),
            DomainEvent::Lead(LeadEvent::Captured(LeadCaptured {
                name: "n".into(),
                company: "c".into(),
                email: full("e"),
                phone: full("p"),
                territory: "t".into(),
                segment: "s".into(),
                source: "s".into(),
                captured_at: Utc::now(),
            })),
        ];
        for event in &mut events {
            let fields = personal_fields(event.event_type()).len();
            let values: Vec<String> = personal_values_mut(event).into_iter().map(|v| v.clone()).collect();
            assert_eq!(values, ["n", "e", "p"], "{}", event.event_type());
            assert_eq!(values.len(), fields);
        }
        let at = Utc::now();
        assert!(erase(None, "the subject asked", at).is_ok());
        assert_eq!(erase(Some(at), "again", at).unwrap_err().rule(), "no-change");
        assert_eq!(refusal(at, "contact").rule(), "personal-data-erased");
    }
}
