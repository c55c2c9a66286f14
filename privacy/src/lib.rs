//! Personal data in the log: sealed with a key per data subject, erased by destroying the key
//! (crypto-shredding).
//!
//! Before an event is encoded, each personal value (the fields that
//! `tidemark_events::personal_fields` names) is encrypted with AES-256-GCM under the key of
//! the event's subject (its contact or lead); after an event is decoded, the values are
//! decrypted again. Erasing a subject destroys its key: from then on every reader
//! (projections, replays, exports, lineage) sees `[erased]` in those fields, while the rest of
//! each event reads exactly as before. The log itself is never rewritten.

mod pg;

use aes_gcm::aead::{Aead, AeadCore, KeyInit, OsRng, Payload};
use aes_gcm::{Aes256Gcm, Nonce};
use base64::engine::general_purpose::STANDARD;
use base64::Engine;
use tidemark_events::{personal_values_mut, Envelope, EventRecord, ERASED};

pub use pg::PgKeyStore;

/// How a sealed value starts, so that a reader tells it from a value written in plain text
/// before sealing existed (those are left as they are).
pub const SEALED_PREFIX: &str = "tidemark-sealed:v1:";

const NONCE_LEN: usize = 12;

#[derive(Debug, thiserror::Error)]
pub enum KeyError {
    #[error("key store: {0}")]
    Store(String),
    #[error("the personal data of {0} is erased; nothing new is sealed for it")]
    Erased(String),
    #[error("a sealed value of {subject} cannot be opened: {why}")]
    Corrupt { subject: String, why: &'static str },
}

/// A data subject's key: 256 bits for AES-256-GCM.
#[derive(Clone)]
pub struct Key([u8; 32]);

impl Key {
    pub fn generate() -> Key {
        Key(Aes256Gcm::generate_key(OsRng).into())
    }

    pub fn from_bytes(bytes: &[u8]) -> Option<Key> {
        bytes.try_into().ok().map(Key)
    }

    pub fn as_bytes(&self) -> &[u8] {
        &self.0
    }
}

/// Where subjects' keys live: a PostgreSQL table in the embedded default ([`PgKeyStore`]); a
/// KMS in a deployment that has one.
#[async_trait::async_trait]
pub trait KeyStore: Send + Sync {
    /// The subject's key, made on first use. Refused once the subject is erased.
    async fn key_for_sealing(&self, tenant_id: &str, subject: &str) -> Result<Key, KeyError>;
    /// The subject's key; `None` once it is destroyed.
    async fn key_for_opening(&self, tenant_id: &str, subject: &str) -> Result<Option<Key>, KeyError>;
    /// Destroys the subject's key for ever. Destroying it again changes nothing.
    async fn destroy(&self, tenant_id: &str, subject: &str) -> Result<(), KeyError>;
}

/// The data subject an event's personal values belong to: its aggregate, as `contact/<id>`
/// or `lead/<id>`.
pub fn subject_of(envelope: &Envelope) -> String {
    format!("{}/{}", envelope.aggregate_type, envelope.aggregate_id)
}

/// A copy of `record` whose personal values are sealed; `None` when it has none.
pub async fn seal(keys: &dyn KeyStore, record: &EventRecord) -> Result<Option<EventRecord>, KeyError> {
    // Most events carry no personal data: no copy for them, on the writer's append path.
    if tidemark_events::personal_fields(record.event.event_type()).is_empty() {
        return Ok(None);
    }
    let mut sealed = record.clone();
    let subject = subject_of(&record.envelope);
    let values = personal_values_mut(&mut sealed.event);
    let key = keys.key_for_sealing(&record.envelope.tenant_id, &subject).await?;
    for value in values {
        *value = seal_value(&key, &subject, value);
    }
    Ok(Some(sealed))
}

/// Opens the sealed personal values of `record` in place; with the subject's key destroyed,
/// they read `[erased]`.
pub async fn open(keys: &dyn KeyStore, record: &mut EventRecord) -> Result<(), KeyError> {
    let subject = subject_of(&record.envelope);
    let values: Vec<&mut String> = personal_values_mut(&mut record.event).into_iter().filter(|v| v.starts_with(SEALED_PREFIX)).collect();
    if values.is_empty() {
        return Ok(());
    }
    let key = keys.key_for_opening(&record.envelope.tenant_id, &subject).await?;
    for value in values {
        *value = match &key {
            Some(key) => open_value(key, &subject, value)?,
            None => ERASED.to_string(),
        };
    }
    Ok(())
}

/// Nonce and ciphertext, base64, behind the prefix. The subject is authenticated with the
/// value, so a value copied into another subject's event does not open.
fn seal_value(key: &Key, subject: &str, plain: &str) -> String {
    let cipher = Aes256Gcm::new(&key.0.into());
    let nonce = Aes256Gcm::generate_nonce(&mut OsRng);
    let sealed = cipher.encrypt(&nonce, Payload { msg: plain.as_bytes(), aad: subject.as_bytes() }).expect("AES-GCM seals any value this size");
    format!("{SEALED_PREFIX}{}", STANDARD.encode([nonce.as_slice(), &sealed].concat()))
}

fn open_value(key: &Key, subject: &str, sealed: &str) -> Result<String, KeyError> {
    let corrupt = |why| KeyError::Corrupt { subject: subject.to_string(), why };
    let bytes = STANDARD.decode(&sealed[SEALED_PREFIX.len()..]).map_err(|_| corrupt("not base64"))?;
    if bytes.len() < NONCE_LEN {
        return Err(corrupt("too short"));
    }
    let (nonce, sealed) = bytes.split_at(NONCE_LEN);
    let cipher = Aes256Gcm::new(&key.0.into());
    let plain = cipher.decrypt(Nonce::from_slice(nonce), Payload { msg: sealed, aad: subject.as_bytes() }).map_err(|_| corrupt("it does not authenticate"))?;
    String::from_utf8(plain).map_err(|_| corrupt("not UTF-8"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_value_opens_with_its_key_and_subject_only() {
        let (key, other) = (Key::generate(), Key::generate());
        let sealed = seal_value(&key, "contact/1", "Jane Doe");
        assert!(sealed.starts_with(SEALED_PREFIX) && !sealed.contains("Jane"));
        assert_ne!(sealed, seal_value(&key, "contact/1", "Jane Doe"), "a fresh nonce each time");
        assert_eq!(open_value(&key, "contact/1", &sealed).unwrap(), "Jane Doe");
        assert!(open_value(&other, "contact/1", &sealed).is_err());
        assert!(open_value(&key, "contact/2", &sealed).is_err(), "bound to its subject");
    }
}
