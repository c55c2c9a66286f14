//! Consistency tokens: log positions a client has seen (its writes, or what its last read
//! reflected), handed back so a later read waits until it reflects them.
//!
//! Text form: `t2.<deployment tag>.<base64url of nonce and sealed entries>`, an entry being
//! `<topic index>:<partition>:<offset>`, entries joined by `,`. An entry asks that the
//! answer reflect the record at that offset and every record before it in the partition.
//!
//! The topics are shared by every tenant, so their offsets tell how much all tenants
//! write. Entries are therefore sealed (AES-256-GCM under a key of the deployment's
//! secret) with the tenant as associated data: a tenant can neither read a token's
//! positions nor make one up, and a token works only for the tenant it was given to. The
//! tag, a hash of the deployment's name and topics, lets a token from elsewhere be named
//! as such rather than as altered.

use std::collections::BTreeMap;

use aes_gcm::aead::{Aead, AeadCore, KeyInit, OsRng, Payload};
use aes_gcm::{Aes256Gcm, Nonce};
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use base64::Engine;
use sha2::{Digest, Sha256};

/// The length of an AES-GCM nonce, which leads the sealed part.
const NONCE_BYTES: usize = 12;

#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct Position {
    pub topic: String,
    pub partition: i32,
    pub offset: i64,
}

/// The highest offset per topic-partition that a reader must reflect.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ConsistencyToken(pub BTreeMap<(String, i32), i64>);

#[derive(Debug, thiserror::Error, PartialEq)]
pub enum TokenError {
    #[error("malformed consistency token: {0}")]
    Malformed(&'static str),
    #[error("the consistency token belongs to another Tidemark deployment")]
    OtherDeployment,
    #[error("the consistency token was not given to this tenant, or was altered")]
    NotSealedForTenant,
}

impl ConsistencyToken {
    pub fn from_positions<'a>(positions: impl IntoIterator<Item = &'a Position>) -> ConsistencyToken {
        let mut token = ConsistencyToken::default();
        for p in positions {
            token.include(&p.topic, p.partition, p.offset);
        }
        token
    }

    pub fn include(&mut self, topic: &str, partition: i32, offset: i64) {
        let entry = self.0.entry((topic.to_string(), partition)).or_insert(offset);
        *entry = (*entry).max(offset);
    }

    /// Everything either token asks for.
    pub fn merge(mut self, other: &ConsistencyToken) -> ConsistencyToken {
        for ((topic, partition), offset) in &other.0 {
            self.include(topic, *partition, *offset);
        }
        self
    }
}

/// Writes and reads the tokens of one deployment.
#[derive(Clone)]
pub struct TokenCodec {
    tag: String,
    topics: Vec<String>,
    cipher: Aes256Gcm,
}

impl std::fmt::Debug for TokenCodec {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("TokenCodec").field("tag", &self.tag).field("topics", &self.topics).finish_non_exhaustive()
    }
}

impl TokenCodec {
    /// `topics` in a fixed order: an entry names its topic by index into this list. Every
    /// instance of a deployment must be given the same `secret`.
    pub fn new(deployment: &str, topics: &[&str], secret: &str) -> TokenCodec {
        let mut hash = Sha256::new();
        hash.update(deployment.as_bytes());
        for t in topics {
            hash.update([0]);
            hash.update(t.as_bytes());
        }
        let tag = URL_SAFE_NO_PAD.encode(&hash.finalize()[..6]);
        let key = Sha256::new().chain_update(b"tidemark consistency tokens\0").chain_update(secret.as_bytes()).finalize();
        let cipher = Aes256Gcm::new_from_slice(&key).expect("a 256-bit key");
        TokenCodec { tag, topics: topics.iter().map(|t| t.to_string()).collect(), cipher }
    }

    /// The associated data of a tenant's tokens: the format, the deployment and the tenant.
    fn bound_to(&self, tenant: &str) -> Vec<u8> {
        format!("t2.{}.{tenant}", self.tag).into_bytes()
    }

    pub fn encode(&self, tenant: &str, token: &ConsistencyToken) -> String {
        let entries: Vec<String> = token
            .0
            .iter()
            .filter_map(|((topic, p), o)| self.topics.iter().position(|t| t == topic).map(|i| format!("{i}:{p}:{o}")))
            .collect();
        let nonce = Aes256Gcm::generate_nonce(&mut OsRng);
        let aad = self.bound_to(tenant);
        let sealed = self.cipher.encrypt(&nonce, Payload { msg: entries.join(",").as_bytes(), aad: &aad }).expect("sealing in memory does not fail");
        let mut bytes = nonce.to_vec();
        bytes.extend(sealed);
        format!("t2.{}.{}", self.tag, URL_SAFE_NO_PAD.encode(bytes))
    }

    pub fn decode(&self, tenant: &str, text: &str) -> Result<ConsistencyToken, TokenError> {
        let malformed = TokenError::Malformed;
        let mut parts = text.trim().splitn(3, '.');
        let (Some("t2"), Some(tag), Some(body)) = (parts.next(), parts.next(), parts.next()) else {
            return Err(malformed("it is not of the form t2.<tag>.<sealed entries>"));
        };
        if tag != self.tag {
            return Err(TokenError::OtherDeployment);
        }
        let bytes = URL_SAFE_NO_PAD.decode(body).map_err(|_| malformed("it is not base64url"))?;
        if bytes.len() <= NONCE_BYTES {
            return Err(malformed("it is too short"));
        }
        let (nonce, sealed) = bytes.split_at(NONCE_BYTES);
        let aad = self.bound_to(tenant);
        let opened = self.cipher.decrypt(Nonce::from_slice(nonce), Payload { msg: sealed, aad: &aad }).map_err(|_| TokenError::NotSealedForTenant)?;
        let text = String::from_utf8(opened).map_err(|_| malformed("its entries are not text"))?;
        let mut token = ConsistencyToken::default();
        for entry in text.split(',').filter(|e| !e.is_empty()) {
            let numbers: Vec<i64> = entry.split(':').map(str::parse).collect::<Result<_, _>>().map_err(|_| malformed("an entry is not numbers"))?;
            let [topic, partition, offset] = numbers[..] else { return Err(malformed("an entry is not topic:partition:offset")) };
            let topic = usize::try_from(topic).ok().and_then(|i| self.topics.get(i)).ok_or(malformed("an entry names no known topic"))?;
            let partition = i32::try_from(partition).ok().filter(|p| *p >= 0).ok_or(malformed("a partition is out of range"))?;
            if offset < 0 {
                return Err(malformed("an offset is negative"));
            }
            token.include(topic, partition, offset);
        }
        if token.0.is_empty() {
            return Err(malformed("it names no position"));
        }
        Ok(token)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const TOPICS: [&str; 2] = ["crm.account.events", "crm.opportunity.events"];

    fn codec() -> TokenCodec {
        TokenCodec::new("prod", &TOPICS, "secret")
    }

    fn one(topic: &str, partition: i32, offset: i64) -> ConsistencyToken {
        let mut token = ConsistencyToken::default();
        token.include(topic, partition, offset);
        token
    }

    #[test]
    fn round_trips_and_keeps_the_highest_offset() {
        let mut token = one("crm.opportunity.events", 1, 5);
        token.include("crm.opportunity.events", 1, 3);
        token.include("crm.account.events", 0, 9);
        let text = codec().encode("acme", &token);
        assert!(text.len() < 80, "compact: {text}");
        let decoded = codec().decode("acme", &text).unwrap();
        assert_eq!(decoded, token);
        assert_eq!(decoded.0[&("crm.opportunity.events".to_string(), 1)], 5);
    }

    #[test]
    fn a_token_shows_no_position_and_differs_each_time() {
        let token = one("crm.opportunity.events", 1, 123456);
        let (a, b) = (codec().encode("acme", &token), codec().encode("acme", &token));
        assert_ne!(a, b, "a fresh nonce each time: equal positions do not show as equal tokens");
        for text in [&a, &b] {
            let body = URL_SAFE_NO_PAD.decode(text.split('.').nth(2).unwrap()).unwrap();
            assert!(!String::from_utf8_lossy(&body).contains("123456"), "{text}");
        }
    }

    #[test]
    fn a_token_works_only_for_its_tenant_and_unaltered() {
        let text = codec().encode("acme", &one("crm.account.events", 0, 1));
        assert_eq!(codec().decode("globex", &text), Err(TokenError::NotSealedForTenant));
        let mut altered = text.clone().into_bytes();
        let last = altered.len() - 1;
        altered[last] = if altered[last] == b'A' { b'B' } else { b'A' };
        assert_eq!(codec().decode("acme", &String::from_utf8(altered).unwrap()), Err(TokenError::NotSealedForTenant));
        let other_secret = TokenCodec::new("prod", &TOPICS, "another secret");
        assert_eq!(other_secret.decode("acme", &text), Err(TokenError::NotSealedForTenant));
    }

    #[test]
    fn merging_keeps_everything_either_asks_for() {
        let a = ConsistencyToken::from_positions(&[Position { topic: "x".into(), partition: 0, offset: 4 }]);
        let b = ConsistencyToken::from_positions(&[
            Position { topic: "x".into(), partition: 0, offset: 2 },
            Position { topic: "x".into(), partition: 1, offset: 7 },
        ]);
        let merged = a.merge(&b);
        assert_eq!(merged.0.len(), 2);
        assert_eq!(merged.0[&("x".to_string(), 0)], 4);
    }

    #[test]
    fn tokens_of_another_deployment_are_refused() {
        let other = TokenCodec::new("staging", &TOPICS, "secret").encode("acme", &one("crm.account.events", 0, 1));
        assert_eq!(codec().decode("acme", &other), Err(TokenError::OtherDeployment));
    }

    #[test]
    fn malformed_tokens_are_refused() {
        let tag = codec().encode("acme", &one("crm.account.events", 0, 1)).split('.').nth(1).unwrap().to_string();
        let sealed = |entries: &str| {
            let nonce = Aes256Gcm::generate_nonce(&mut OsRng);
            let aad = codec().bound_to("acme");
            let mut bytes = nonce.to_vec();
            bytes.extend(codec().cipher.encrypt(&nonce, Payload { msg: entries.as_bytes(), aad: &aad }).unwrap());
            format!("t2.{tag}.{}", URL_SAFE_NO_PAD.encode(bytes))
        };
        let short = format!("t2.{tag}.{}", URL_SAFE_NO_PAD.encode([0u8; 12]));
        for bad in ["", "t1.abc.def", "t2.x", &format!("t2.{tag}.!!!"), &short, &sealed(""), &sealed("9:0:1"), &sealed("1:-1:1"), &sealed("1:0:-3"), &sealed("1:0"), &sealed("a:b:c")] {
            assert!(matches!(codec().decode("acme", bad), Err(TokenError::Malformed(_))), "{bad}");
        }
    }
}
