//! CPU and memory of the processes under load, sampled from /proc once a second and summed
//! by process name (every `postgres` backend counts as PostgreSQL).

use std::collections::BTreeMap;
use std::time::{Duration, Instant};

use serde::Serialize;

/// Clock ticks per second of /proc's CPU times (USER_HZ), 100 on Linux.
const TICKS_PER_SECOND: f64 = 100.0;

#[derive(Debug, Clone, Default, Serialize)]
pub struct Usage {
    /// Average CPU over the run, in percent of one core.
    pub cpu_percent: f64,
    /// The largest resident memory seen, summed over the name's processes.
    pub peak_rss_mib: f64,
}

/// (CPU ticks, resident KiB) of every process whose name is one of `names` (as /proc
/// shortens it, to 15 characters).
fn sample(names: &[String]) -> BTreeMap<String, (u64, u64)> {
    let mut found: BTreeMap<String, (u64, u64)> = names.iter().map(|n| (n.clone(), (0, 0))).collect();
    let Ok(entries) = std::fs::read_dir("/proc") else { return found };
    for entry in entries.flatten() {
        let path = entry.path();
        let Ok(comm) = std::fs::read_to_string(path.join("comm")) else { continue };
        let Some(name) = names.iter().find(|n| n.chars().take(15).collect::<String>() == comm.trim()) else { continue };
        let ticks = std::fs::read_to_string(path.join("stat")).ok().and_then(|stat| {
            // The fields after the command name, which may hold spaces, in parentheses.
            let fields: Vec<&str> = stat.rsplit_once(')')?.1.split_whitespace().collect();
            Some(fields.get(11)?.parse::<u64>().ok()? + fields.get(12)?.parse::<u64>().ok()?)
        });
        let rss = std::fs::read_to_string(path.join("status"))
            .ok()
            .and_then(|s| s.lines().find(|l| l.starts_with("VmRSS:"))?.split_whitespace().nth(1)?.parse::<u64>().ok());
        let slot = found.get_mut(name).expect("added above");
        slot.0 += ticks.unwrap_or(0);
        slot.1 += rss.unwrap_or(0);
    }
    found
}

/// Samples until `stop` resolves, then tells each name's usage over the whole time.
pub async fn watch(names: Vec<String>, stop: impl std::future::Future<Output = ()>) -> BTreeMap<String, Usage> {
    let started = Instant::now();
    let first = sample(&names);
    let mut peak: BTreeMap<String, u64> = first.iter().map(|(n, (_, rss))| (n.clone(), *rss)).collect();
    let mut last = first.clone();
    tokio::pin!(stop);
    loop {
        tokio::select! {
            _ = &mut stop => break,
            _ = tokio::time::sleep(Duration::from_secs(1)) => {
                last = sample(&names);
                for (name, (_, rss)) in &last {
                    let p = peak.entry(name.clone()).or_default();
                    *p = (*p).max(*rss);
                }
            }
        }
    }
    let secs = started.elapsed().as_secs_f64().max(0.001);
    names
        .iter()
        .map(|n| {
            // Processes that ended during the run take their ticks with them: a lower bound.
            let ticks = last[n].0.saturating_sub(first[n].0) as f64;
            (n.clone(), Usage { cpu_percent: ticks / TICKS_PER_SECOND / secs * 100.0, peak_rss_mib: peak[n] as f64 / 1024.0 })
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn this_process_is_found_with_its_memory() {
        let me = std::fs::read_to_string("/proc/self/comm").unwrap().trim().to_string();
        let usage = watch(vec![me.clone()], tokio::time::sleep(Duration::from_millis(1200))).await;
        assert!(usage[&me].peak_rss_mib > 1.0, "{usage:?}");
    }
}
