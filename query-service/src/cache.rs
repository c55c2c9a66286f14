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

use serde_json::Value;

use crate::freshness::Standing;

#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct CacheKey {
    tenant: String,
    query: String,
    position: Vec<(String, i32, i64, i64)>,
}

impl CacheKey {
    pub fn new(tenant: &str, query: String, standing: &[Standing]) -> CacheKey {
        let mut position: Vec<_> = standing.iter().map(|s| (s.topic.clone(), s.partition, s.next_offset, s.generation)).collect();
        position.sort();
        CacheKey { tenant: tenant.to_string(), query, position }
    }
}

/// The data of an answer and its extra top-level members (such as `next_cursor`).
#[derive(Debug, Clone)]
pub struct Cached {
    pub data: Value,
    pub extra: Value,
}

pub struct AnswerCache {
    entries: moka::future::Cache<CacheKey, Arc<Cached>>,
    hits: AtomicU64,
    misses: AtomicU64,
}

impl Default for AnswerCache {
    fn default() -> Self {
        AnswerCache {
            entries: moka::future::Cache::builder().max_capacity(10_000).time_to_idle(Duration::from_secs(60)).build(),
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
