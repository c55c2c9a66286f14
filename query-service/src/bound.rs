//! What a caller may demand of an answer, and whether an observation of the read model
//! meets it. Pure: the I/O that gathers an observation lives in `freshness`.

use std::collections::BTreeMap;
use std::time::Duration;

use chrono::{DateTime, Utc};
use serde::Serialize;
use tidemark_http::ConsistencyToken;
use utoipa::ToSchema;

/// Longest a read may wait for its bound, whatever the caller asks.
pub const MAX_WAIT: Duration = Duration::from_secs(30);
pub const DEFAULT_WAIT: Duration = Duration::from_secs(5);

#[derive(Debug, Clone, Default, PartialEq)]
pub struct Bound {
    /// Reflect every record appended before the request arrived.
    pub strong: bool,
    /// Reflect every record older than this, counted from the request's arrival.
    pub max_staleness: Option<Duration>,
    /// Reflect these positions (the caller's writes, or what its last read reflected).
    pub token: Option<ConsistencyToken>,
    pub wait: Duration,
    /// Past `wait`, answer anyway and say `fresh: false`, instead of failing with 503.
    pub serve_stale: bool,
}

/// The bound as the note reports it.
#[derive(Debug, Clone, Serialize, ToSchema)]
pub struct BoundView {
    /// strong, session, bounded or eventual (the strongest part of the bound asked for).
    pub consistency: &'static str,
    pub max_staleness_ms: Option<u64>,
    pub consistency_token: bool,
    pub wait_ms: u64,
    pub on_stale: &'static str,
}

impl Bound {
    /// Asks for nothing: any answer meets it.
    pub fn is_eventual(&self) -> bool {
        !self.strong && self.token.is_none() && self.max_staleness.is_none()
    }

    pub fn view(&self) -> BoundView {
        let consistency = if self.strong {
            "strong"
        } else if self.token.is_some() {
            "session"
        } else if self.max_staleness.is_some() {
            "bounded"
        } else {
            "eventual"
        };
        BoundView {
            consistency,
            max_staleness_ms: self.max_staleness.map(|d| d.as_millis() as u64),
            consistency_token: self.token.is_some(),
            wait_ms: self.wait.as_millis() as u64,
            on_stale: if self.serve_stale { "serve" } else { "fail" },
        }
    }
}

/// One partition of a projection's topics, as seen for one request.
#[derive(Debug, Clone, PartialEq)]
pub struct PartitionView {
    /// The log end offset when the request arrived.
    pub end: i64,
    /// Every record below this offset is reflected.
    pub reflected: i64,
    /// When the oldest record not reflected (the one at `reflected`) was appended, if known.
    pub oldest_unreflected_at: Option<DateTime<Utc>>,
}

impl PartitionView {
    /// Records that were in the log at arrival and are not reflected.
    pub fn lag(&self) -> i64 {
        (self.end - self.reflected).max(0)
    }

    /// Age of the oldest record not reflected: 0 when none is, None when its time is unknown.
    pub fn lag_ms(&self, now: DateTime<Utc>) -> Option<i64> {
        if self.lag() == 0 {
            return Some(0);
        }
        self.oldest_unreflected_at.map(|at| (now - at).num_milliseconds().max(0))
    }
}

pub type Observation = BTreeMap<(String, i32), PartitionView>;

/// Age of the oldest record in the log at arrival that the answer does not reflect: 0 when
/// it reflects them all, None when a lagging partition's oldest record has an unknown time.
pub fn lag_ms(observation: &Observation, now: DateTime<Utc>) -> Option<i64> {
    observation.values().try_fold(0, |worst, v| v.lag_ms(now).map(|ms| worst.max(ms)))
}

/// Why an observation does not meet the bound; empty when it does.
pub fn unmet(bound: &Bound, observation: &Observation, now: DateTime<Utc>) -> Vec<String> {
    let mut reasons = Vec::new();
    let name = |(topic, partition): &(String, i32)| format!("{topic}/{partition}");
    if bound.strong {
        for (key, v) in observation.iter().filter(|(_, v)| v.lag() > 0) {
            reasons.push(format!("{} lacks {} of the records appended before the request", name(key), v.lag()));
        }
    }
    if let Some(token) = &bound.token {
        for (key, offset) in &token.0 {
            match observation.get(key) {
                Some(v) if v.reflected > *offset => {}
                Some(_) => reasons.push(format!("{} has not reached the consistency token's position", name(key))),
                None => {} // a topic this read model does not read
            }
        }
    }
    if let Some(max) = bound.max_staleness {
        match lag_ms(observation, now) {
            // In i128: a bound may be any u64 of milliseconds, past what an i64 holds.
            Some(ms) if i128::from(ms) <= max.as_millis() as i128 => {}
            Some(ms) => reasons.push(format!("the oldest record not reflected is {ms} ms old; the bound is {} ms", max.as_millis())),
            None => reasons.push("the age of the oldest record not reflected is unknown".to_string()),
        }
    }
    reasons
}

/// A token entry that points past the end of the log did not come from this log.
pub fn beyond_the_log(token: &ConsistencyToken, observation: &Observation) -> Option<String> {
    token.0.iter().find_map(|(key, offset)| {
        let v = observation.get(key)?;
        (*offset >= v.end).then(|| format!("the token names a position past the end of the log in {}/{}", key.0, key.1))
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use chrono::TimeDelta;

    fn now() -> DateTime<Utc> {
        DateTime::parse_from_rfc3339("2026-11-21T12:00:00Z").unwrap().into()
    }

    fn observe(parts: &[(i32, i64, i64, Option<i64>)]) -> Observation {
        parts
            .iter()
            .map(|(p, end, reflected, age_ms)| {
                let at = age_ms.map(|ms| now() - TimeDelta::milliseconds(ms));
                (("t".to_string(), *p), PartitionView { end: *end, reflected: *reflected, oldest_unreflected_at: at })
            })
            .collect()
    }

    fn token(entries: &[(i32, i64)]) -> ConsistencyToken {
        let mut t = ConsistencyToken::default();
        for (p, o) in entries {
            t.include("t", *p, *o);
        }
        t
    }

    #[test]
    fn lag_is_the_age_of_the_oldest_unreflected_record() {
        assert_eq!(lag_ms(&observe(&[(0, 5, 5, None), (1, 9, 9, None)]), now()), Some(0));
        assert_eq!(lag_ms(&observe(&[(0, 5, 3, Some(700)), (1, 9, 8, Some(200))]), now()), Some(700));
        assert_eq!(lag_ms(&observe(&[(0, 5, 3, None)]), now()), None);
    }

    #[test]
    fn eventual_reads_are_always_met() {
        assert!(unmet(&Bound::default(), &observe(&[(0, 5, 0, None)]), now()).is_empty());
    }

    #[test]
    fn strong_reads_need_everything_appended_before_arrival() {
        let strong = Bound { strong: true, ..Bound::default() };
        assert!(unmet(&strong, &observe(&[(0, 5, 5, None), (1, 2, 2, None)]), now()).is_empty());
        assert_eq!(unmet(&strong, &observe(&[(0, 5, 5, None), (1, 2, 1, Some(5))]), now()).len(), 1);
    }

    #[test]
    fn a_token_needs_its_offsets_reflected() {
        let session = Bound { token: Some(token(&[(0, 4), (1, 1)])), ..Bound::default() };
        assert!(unmet(&session, &observe(&[(0, 9, 5, Some(1)), (1, 9, 2, Some(1))]), now()).is_empty());
        let reasons = unmet(&session, &observe(&[(0, 9, 4, Some(1)), (1, 9, 2, Some(1))]), now());
        assert_eq!(reasons, vec!["t/0 has not reached the consistency token's position".to_string()]);
    }

    #[test]
    fn a_staleness_bound_compares_the_oldest_unreflected_record() {
        let bounded = Bound { max_staleness: Some(Duration::from_millis(500)), ..Bound::default() };
        assert!(unmet(&bounded, &observe(&[(0, 9, 7, Some(400))]), now()).is_empty());
        assert_eq!(unmet(&bounded, &observe(&[(0, 9, 7, Some(600))]), now()).len(), 1);
        assert_eq!(unmet(&bounded, &observe(&[(0, 9, 7, None)]), now()).len(), 1, "unknown is not met");
        assert!(unmet(&bounded, &observe(&[(0, 9, 9, None)]), now()).is_empty(), "caught up is met");
        let lax = Bound { max_staleness: Some(Duration::from_millis(u64::MAX)), ..Bound::default() };
        assert!(unmet(&lax, &observe(&[(0, 9, 7, Some(600))]), now()).is_empty(), "a bound past i64 is met, not wrapped");
    }

    #[test]
    fn tokens_past_the_log_end_are_spotted() {
        assert!(beyond_the_log(&token(&[(0, 8)]), &observe(&[(0, 9, 0, None)])).is_none());
        assert!(beyond_the_log(&token(&[(0, 9)]), &observe(&[(0, 9, 0, None)])).is_some());
    }

    #[test]
    fn the_view_names_the_strongest_part() {
        assert_eq!(Bound::default().view().consistency, "eventual");
        let b = Bound { strong: true, token: Some(token(&[(0, 1)])), ..Bound::default() };
        assert_eq!(b.view().consistency, "strong");
    }
}
