//! The figures of one run: per operation, how many, how fast (latency percentiles), how
//! many refused (4xx) and failed (5xx, timeouts, connection errors); and freshness, the time
//! from a command's acknowledgement until a query sees its write.

use std::collections::BTreeMap;
use std::time::Duration;

use hdrhistogram::Histogram;
use serde::Serialize;

/// How one request ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Ending {
    Ok,
    /// The target refused it (4xx): a rule, a conflict, a race between two users.
    Refused,
    /// 5xx, a timeout or no connection.
    Failed,
}

impl Ending {
    pub fn of(status: u16) -> Ending {
        match status {
            200..=299 => Ending::Ok,
            400..=499 => Ending::Refused,
            _ => Ending::Failed,
        }
    }
}

/// Latencies in microseconds, up to a minute.
fn histogram() -> Histogram<u64> {
    Histogram::new_with_bounds(1, 60_000_000, 3).expect("valid bounds")
}

/// Recorded by one virtual user (or merged from many).
pub struct Recorder {
    ops: BTreeMap<&'static str, (Histogram<u64>, [u64; 3])>,
    freshness: Histogram<u64>,
    freshness_timeouts: u64,
}

impl Default for Recorder {
    fn default() -> Recorder {
        Recorder { ops: BTreeMap::new(), freshness: histogram(), freshness_timeouts: 0 }
    }
}

impl Recorder {
    pub fn record(&mut self, op: &'static str, latency: Duration, ending: Ending) {
        let (h, endings) = self.ops.entry(op).or_insert_with(|| (histogram(), [0; 3]));
        h.saturating_record(latency.as_micros() as u64);
        endings[ending as usize] += 1;
    }

    /// `None`: the write was not seen within the probe's patience.
    pub fn fresh_after(&mut self, after: Option<Duration>) {
        match after {
            Some(d) => self.freshness.saturating_record(d.as_micros().max(1) as u64),
            None => self.freshness_timeouts += 1,
        }
    }

    pub fn merge(&mut self, other: Recorder) {
        for (op, (h, endings)) in other.ops {
            let (mine, counts) = self.ops.entry(op).or_insert_with(|| (histogram(), [0; 3]));
            mine.add(&h).expect("same bounds");
            for (c, e) in counts.iter_mut().zip(endings) {
                *c += e;
            }
        }
        self.freshness.add(&other.freshness).expect("same bounds");
        self.freshness_timeouts += other.freshness_timeouts;
    }

    pub fn figures(&self, elapsed: Duration) -> Figures {
        let secs = elapsed.as_secs_f64().max(0.001);
        let ops: BTreeMap<String, OpFigures> = self
            .ops
            .iter()
            .map(|(op, (h, [ok, refused, failed]))| {
                let total = ok + refused + failed;
                (op.to_string(), OpFigures { count: total, per_second: total as f64 / secs, refused: *refused, failed: *failed, latency: Percentiles::of(h) })
            })
            .collect();
        let mut all = histogram();
        for (h, _) in self.ops.values() {
            all.add(h).expect("same bounds");
        }
        let requests: u64 = ops.values().map(|o| o.count).sum();
        let failed: u64 = ops.values().map(|o| o.failed).sum();
        Figures {
            seconds: secs,
            requests,
            per_second: requests as f64 / secs,
            error_rate: if requests == 0 { 0.0 } else { failed as f64 / requests as f64 },
            latency: Percentiles::of(&all),
            ops,
            freshness: (!self.freshness.is_empty()).then(|| Percentiles::of(&self.freshness)),
            freshness_timeouts: self.freshness_timeouts,
        }
    }
}

/// Milliseconds.
#[derive(Debug, Clone, Serialize)]
pub struct Percentiles {
    pub count: u64,
    pub p50: f64,
    pub p95: f64,
    pub p99: f64,
    pub max: f64,
}

impl Percentiles {
    fn of(h: &Histogram<u64>) -> Percentiles {
        let ms = |us: u64| us as f64 / 1000.0;
        Percentiles { count: h.len(), p50: ms(h.value_at_quantile(0.50)), p95: ms(h.value_at_quantile(0.95)), p99: ms(h.value_at_quantile(0.99)), max: ms(h.max()) }
    }
}

#[derive(Debug, Clone, Serialize)]
pub struct OpFigures {
    pub count: u64,
    pub per_second: f64,
    pub refused: u64,
    pub failed: u64,
    pub latency: Percentiles,
}

#[derive(Debug, Clone, Serialize)]
pub struct Figures {
    pub seconds: f64,
    pub requests: u64,
    pub per_second: f64,
    /// Failed (5xx, timeouts, no connection) over all requests; refusals (4xx) are not errors.
    pub error_rate: f64,
    /// Of every request, whatever its operation.
    pub latency: Percentiles,
    pub ops: BTreeMap<String, OpFigures>,
    pub freshness: Option<Percentiles>,
    pub freshness_timeouts: u64,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn recorders_merge_and_name_percentiles_in_milliseconds() {
        let mut a = Recorder::default();
        for ms in 1..=100 {
            a.record("read", Duration::from_millis(ms), Ending::Ok);
        }
        let mut b = Recorder::default();
        b.record("read", Duration::from_millis(500), Ending::Failed);
        b.record("write", Duration::from_millis(5), Ending::Refused);
        b.fresh_after(Some(Duration::from_millis(40)));
        b.fresh_after(None);
        a.merge(b);
        let f = a.figures(Duration::from_secs(2));
        let read = &f.ops["read"];
        assert_eq!((read.count, read.failed, f.requests), (101, 1, 102));
        assert!((read.latency.p50 - 51.0).abs() < 1.0 && (read.latency.max - 500.0).abs() < 1.0, "{:?}", read.latency);
        assert_eq!((f.ops["write"].refused, f.freshness_timeouts), (1, 1));
        assert!((f.error_rate - 1.0 / 102.0).abs() < 1e-9 && (f.per_second - 51.0).abs() < 1e-9);
        assert!((f.freshness.unwrap().p50 - 40.0).abs() < 0.5);
    }
}
