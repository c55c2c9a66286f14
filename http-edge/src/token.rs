//! Consistency tokens: log positions a client has seen (its writes, or what its last read
//! reflected), handed back so a later read waits until it reflects them.
//!
//! Text form: `t1.<deployment tag>.<base64url of entries>`, an entry being
//! `<topic index>:<partition>:<offset>`, entries joined by `,`. An entry asks that the
//! answer reflect the record at that offset and every record before it in the partition.
//! Opaque to clients, compact, and bound to one deployment: the tag is a hash of the
//! deployment's name and topics, so a token from elsewhere is refused, not misread.

use std::collections::BTreeMap;

use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use base64::Engine;
use sha2::{Digest, Sha256};

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
#[derive(Debug, Clone)]
pub struct TokenCodec {
    tag: String,
    topics: Vec<String>,
}

impl TokenCodec {
    /// `topics` in a fixed order: an entry names its topic by index into this list.
    pub fn new(deployment: &str, topics: &[&str]) -> TokenCodec {
        let mut hash = Sha256::new();
        hash.update(deployment.as_bytes());
        for t in topics {
            hash.update([0]);
            hash.update(t.as_bytes());
        }
        let tag = URL_SAFE_NO_PAD.encode(&hash.finalize()[..6]);
        TokenCodec { tag, topics: topics.iter().map(|t| t.to_string()).collect() }
    }

    pub fn encode(&self, token: &ConsistencyToken) -> String {
        let entries: Vec<String> = token
            .0
            .iter()
            .filter_map(|((topic, p), o)| self.topics.iter().position(|t| t == topic).map(|i| format!("{i}:{p}:{o}")))
            .collect();
        format!("t1.{}.{}", self.tag, URL_SAFE_NO_PAD.encode(entries.join(",")))
    }

    pub fn decode(&self, text: &str) -> Result<ConsistencyToken, TokenError> {
        let malformed = TokenError::Malformed;
        let mut parts = text.trim().splitn(3, '.');
        let (Some("t1"), Some(tag), Some(body)) = (parts.next(), parts.next(), parts.next()) else {
            return Err(malformed("it is not of the form t1.<tag>.<entries>"));
        };
        if tag != self.tag {
            return Err(TokenError::OtherDeployment);
        }
        let bytes = URL_SAFE_NO_PAD.decode(body).map_err(|_| malformed("its entries are not base64url"))?;
        let text = String::from_utf8(bytes).map_err(|_| malformed("its entries are not text"))?;
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

    fn codec() -> TokenCodec {
        TokenCodec::new("prod", &["crm.account.events", "crm.opportunity.events"])
    }

    #[test]
    fn round_trips_and_keeps_the_highest_offset() {
        let mut token = ConsistencyToken::default();
        token.include("crm.opportunity.events", 1, 5);
        token.include("crm.opportunity.events", 1, 3);
        token.include("crm.account.events", 0, 9);
        let text = codec().encode(&token);
        assert!(text.len() < 40, "compact: {text}");
        let decoded = codec().decode(&text).unwrap();
        assert_eq!(decoded, token);
        assert_eq!(decoded.0[&("crm.opportunity.events".to_string(), 1)], 5);
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
        let mut token = ConsistencyToken::default();
        token.include("crm.account.events", 0, 1);
        let other = TokenCodec::new("staging", &["crm.account.events", "crm.opportunity.events"]).encode(&token);
        assert_eq!(codec().decode(&other), Err(TokenError::OtherDeployment));
    }

    #[test]
    fn malformed_tokens_are_refused() {
        let tag = codec().encode(&ConsistencyToken::default()).split('.').nth(1).unwrap().to_string();
        let body = |s: &str| format!("t1.{tag}.{}", URL_SAFE_NO_PAD.encode(s));
        for bad in ["", "v1.abc", "t1.x", &format!("t1.{tag}.!!!"), &body(""), &body("9:0:1"), &body("1:-1:1"), &body("1:0:-3"), &body("1:0"), &body("a:b:c")] {
            assert!(matches!(codec().decode(bad), Err(TokenError::Malformed(_))), "{bad}");
        }
    }
}
