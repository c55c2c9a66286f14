//! Answers cached by query, tenant and projection position.
//!
//! The key holds the projection's exact position (its offset in every partition), read in
//! the same snapshot as the answer would be. A read model is a function of the records it
//! applied, so a cached answer is exactly what a fresh query at that position returns: it
//! can never be older than the bound a read waited for. When the projection moves on, the
//! key changes, and old entries age out unused. A rebuild that swaps the tables bumps the
//! projection's generation, which is part of the position too. The tenant and the
//! caller's permission scope (inside the query) are part of the key, so no answer crosses
//! tenants or scopes.

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::Duration;

use serde_json::value::RawValue;
use serde_json::{Map, Value};

use crate::freshness::Standing;
use crate::query::Query;

#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct CacheKey {
    tenant: String,
    query: Query,
    position: Vec<(String, i32, i64, i64)>,
}

impl CacheKey {
    pub fn new(tenant: &str, query: Query, standing: &[Standing]) -> CacheKey {
        let mut position: Vec<_> = standing.iter().map(|s| (s.topic.clone(), s.partition, s.next_offset, s.generation)).collect();
        position.sort();
        CacheKey { tenant: tenant.to_string(), query, position }
    }

    pub fn query(&self) -> &Query {
        &self.query
    }
}

/// An answer's data, serialized once (a hit costs no serialization), and its extra
/// top-level members (such as `next_cursor`).
#[derive(Debug)]
pub struct Cached {
    pub data: Box<RawValue>,
    pub extra: Map<String, Value>,
    /// Whether some row shows personal fields (`"personal_fields": "shown"`), which the
    /// auditors' log of personal-data reads must hear of.
    pub shows_personal_data: bool,
}

impl Cached {
    /// An answer that is its data alone.
    pub fn data(data: impl serde::Serialize) -> Cached {
        Cached::with_extra(data, Map::new())
    }

    pub fn with_extra(data: impl serde::Serialize, extra: Map<String, Value>) -> Cached {
        let data = serde_json::value::to_raw_value(&data).expect("an answer serializes");
        // In compact JSON these quotes cannot come from inside a string, where they are escaped.
        let shows_personal_data = data.get().contains(r#""personal_fields":"shown""#);
        Cached { data, extra, shows_personal_data }
    }

    /// Roughly the bytes it holds.
    fn weight(&self) -> u32 {
        u32::try_from(self.data.get().len() + 64 * self.extra.len()).unwrap_or(u32::MAX)
    }
}

/// Bounds the answers kept by their size, not their number: one tenant-wide list can be a
/// thousand times larger than one deal, and positions move with every command, so the cache
/// fills with answers that are never asked again.
const CACHE_BYTES: u64 = 64 * 1024 * 1024;

pub struct AnswerCache {
    entries: moka::future::Cache<CacheKey, Arc<Cached>>,
    hits: AtomicU64,
    misses: AtomicU64,
}

impl Default for AnswerCache {
    fn default() -> Self {
        AnswerCache {
            entries: moka::future::Cache::builder()
                .max_capacity(CACHE_BYTES)
                .weigher(|_, answer: &Arc<Cached>| answer.weight())
                .time_to_idle(Duration::from_secs(60))
                .build(),
            hits: AtomicU64::new(0),
            misses: AtomicU64::new(0),
        }
    }
}

impl AnswerCache {
    pub async fn get(&self, key: &CacheKey) -> Option<Arc<Cached>> {
        let found = self.entries.get(key).await;
        let counter = if found.is_some() { &self.hits } else { &self.misses };
        counter.fetch_add(1, Ordering::Relaxed);
        found
    }

    pub async fn insert(&self, key: CacheKey, answer: Arc<Cached>) {
        self.entries.insert(key, answer).await;
    }

    pub fn hits(&self) -> u64 {
        self.hits.load(Ordering::Relaxed)
    }

    pub fn misses(&self) -> u64 {
        self.misses.load(Ordering::Relaxed)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use tidemark_events::policy::{Role, Scope, Subject};
    use tidemark_events::ActorKind;

    fn key(tenant: &str, query: Query) -> CacheKey {
        let at = chrono::DateTime::UNIX_EPOCH;
        let standing = Standing { topic: "t".into(), partition: 0, next_offset: 7, caught_up_at: None, last_progress: at, generation: 0, traceparent: None };
        CacheKey::new(tenant, query, &[standing])
    }

    #[test]
    fn an_answer_knows_whether_it_shows_personal_fields() {
        use serde_json::json;
        assert!(Cached::data(json!([{"id": 1, "personal_fields": "withheld"}, {"id": 2, "personal_fields": "shown"}])).shows_personal_data);
        assert!(!Cached::data(json!([{"personal_fields": "withheld"}, {"personal_fields": "erased"}])).shows_personal_data);
        assert!(!Cached::data(json!([{"note": r#""personal_fields":"shown""#}])).shows_personal_data, "not from inside a string");
    }

    #[test]
    fn callers_with_different_scopes_never_share_an_answer() {
        let pipeline = |scope: Scope| Query::from(crate::routes::pipeline::Cells { scope, owner: None });
        let scopes =
            [Scope::Own("alice".into()), Scope::Own("bob".into()), Scope::Team("east".into()), Scope::Team("west".into()), Scope::Tenant, Scope::Nothing];
        for (i, a) in scopes.iter().enumerate() {
            for (j, b) in scopes.iter().enumerate() {
                assert_eq!(key("default", pipeline(a.clone())) == key("default", pipeline(b.clone())), i == j, "{a:?} and {b:?}");
            }
        }
        assert_ne!(key("default", pipeline(Scope::Tenant)), key("acme", pipeline(Scope::Tenant)), "nor callers of different tenants");
        let mine = |user: &str, roles: &[Role]| {
            let subject = Subject { user: user.into(), kind: ActorKind::User, roles: roles.to_vec(), team: Some("east".into()) };
            Query::from(crate::routes::approvals::Mine { subject, at: chrono::DateTime::UNIX_EPOCH, delegations_at: crate::read::Standings(vec![]) })
        };
        assert_ne!(key("default", mine("mia", &[Role::Manager])), key("default", mine("max", &[Role::Manager])));
        assert_ne!(key("default", mine("mia", &[Role::Manager])), key("default", mine("mia", &[Role::Manager, Role::Approver])));
        assert_eq!(key("default", mine("mia", &[Role::Manager])), key("default", mine("mia", &[Role::Manager])), "the same caller shares with themselves");
    }
}
