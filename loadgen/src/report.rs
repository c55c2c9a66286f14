//! The benchmark's report: markdown tables, SVG plots, and the raw figures as JSON, so that
//! every number in the tables can be traced to a run.

use std::collections::BTreeMap;
use std::fmt::Write;
use std::path::Path;

use plotters::prelude::*;
use serde::Serialize;

use crate::figures::{Figures, Percentiles};
use crate::procs::Usage;

/// One system under one load.
#[derive(Debug, Clone, Serialize)]
pub struct Run {
    pub scenario: String,
    pub users: usize,
    pub system: String,
    pub figures: Figures,
    pub processes: BTreeMap<String, Usage>,
}

/// Each value once, in the order it first appears.
fn distinct<'a>(values: impl Iterator<Item = &'a String>) -> Vec<&'a String> {
    let mut seen = Vec::new();
    for v in values {
        if !seen.contains(&v) {
            seen.push(v);
        }
    }
    seen
}

#[derive(Debug, Clone, Serialize)]
pub struct Report {
    pub title: String,
    /// Commit, machine, date, tenant and mix: what the figures were measured on.
    pub stamp: Vec<(String, String)>,
    pub runs: Vec<Run>,
}

fn ms(v: f64) -> String {
    if v >= 100.0 {
        format!("{v:.0}")
    } else {
        format!("{v:.1}")
    }
}

fn percentiles(p: &Option<Percentiles>) -> String {
    p.as_ref().map_or("–".into(), |p| format!("{} / {} / {} / {}", ms(p.p50), ms(p.p95), ms(p.p99), ms(p.max)))
}

impl Report {
    /// Writes `<stem>.md`, `<stem>.json` and `<stem>-latency.svg` into `dir`.
    pub fn write(&self, dir: &Path, stem: &str) -> anyhow::Result<()> {
        std::fs::create_dir_all(dir)?;
        std::fs::write(dir.join(format!("{stem}.json")), serde_json::to_string_pretty(self)?)?;
        let plot = format!("{stem}-latency.svg");
        self.plot(&dir.join(&plot))?;
        std::fs::write(dir.join(format!("{stem}.md")), self.markdown(&plot))?;
        Ok(())
    }

    fn systems(&self) -> Vec<&String> {
        distinct(self.runs.iter().map(|r| &r.system))
    }

    pub fn markdown(&self, plot: &str) -> String {
        let mut md = format!("# {}\n\n", self.title);
        for (k, v) in &self.stamp {
            let _ = writeln!(md, "- **{k}**: {v}");
        }
        let systems = self.systems();
        let baseline = systems.last().map_or("", |s| s.as_str());
        md += "\nLatencies in milliseconds, as p50 / p95 / p99 / max. Errors are failed requests (5xx, timeouts, no connection); refusals (4xx: a rule, a race between two users) are counted apart.\n";
        md += "\n## Summary\n\n| scenario | system | requests/s | latency | p95 vs baseline | errors | refused | freshness (ack → visible) |\n|---|---|---:|---|---:|---:|---:|---|\n";
        for r in &self.runs {
            let f = &r.figures;
            let base = self.runs.iter().find(|b| b.scenario == r.scenario && b.system == baseline).map(|b| b.figures.latency.p95);
            let ratio = base.filter(|b| *b > 0.0).map_or("–".into(), |b| format!("{:.2}×", f.latency.p95 / b));
            let refused: u64 = f.ops.values().map(|o| o.refused).sum();
            let _ = writeln!(
                md,
                "| {} | {} | {:.0} | {} | {} | {:.2}% | {} | {} |",
                r.scenario,
                r.system,
                f.per_second,
                percentiles(&Some(f.latency.clone())),
                ratio,
                f.error_rate * 100.0,
                refused,
                percentiles(&f.freshness)
            );
        }
        let _ = write!(md, "\n![p95 and p99 latency by concurrent users]({plot})\n");
        md += "\n## Per operation\n\n| scenario | operation | system | count | per s | latency | refused | failed |\n|---|---|---|---:|---:|---|---:|---:|\n";
        let scenarios = distinct(self.runs.iter().map(|r| &r.scenario));
        for scenario in &scenarios {
            let runs: Vec<&Run> = self.runs.iter().filter(|r| &r.scenario == *scenario).collect();
            let ops: std::collections::BTreeSet<&String> = runs.iter().flat_map(|r| r.figures.ops.keys()).collect();
            for op in ops {
                for r in &runs {
                    if let Some(o) = r.figures.ops.get(op) {
                        let _ = writeln!(md, "| {} | {} | {} | {} | {:.1} | {} | {} | {} |", scenario, op, r.system, o.count, o.per_second, percentiles(&Some(o.latency.clone())), o.refused, o.failed);
                    }
                }
            }
        }
        md += "\n## Freshness\n\nFrom a command's acknowledgement until a read (eventual consistency) shows its version, for a sample of the commands. The baseline reads what it wrote, so its figure is one read's round trip.\n\n| scenario | system | probes | p50 / p95 / p99 / max | not seen within 30 s |\n|---|---|---:|---|---:|\n";
        for r in &self.runs {
            let f = &r.figures;
            let _ = writeln!(md, "| {} | {} | {} | {} | {} |", r.scenario, r.system, f.freshness.as_ref().map_or(0, |p| p.count), percentiles(&f.freshness), f.freshness_timeouts);
        }
        md += "\n## Processes\n\nCPU in percent of one core (averaged over the run), and the largest resident memory, summed over each program's processes. PostgreSQL serves both systems; each row is measured while only that system was under load.\n\n| scenario | system | process | CPU % | peak RSS (MiB) |\n|---|---|---|---:|---:|\n";
        for r in &self.runs {
            for (name, u) in &r.processes {
                let _ = writeln!(md, "| {} | {} | {} | {:.0} | {:.0} |", r.scenario, r.system, name, u.cpu_percent, u.peak_rss_mib);
            }
        }
        md
    }

    /// p95 and p99 of all requests against concurrent users, a line per system and percentile.
    fn plot(&self, path: &Path) -> anyhow::Result<()> {
        let runs: Vec<&Run> = self.runs.iter().filter(|r| r.users > 0 && !r.scenario.contains("ceiling")).collect();
        let max_users = runs.iter().map(|r| r.users).max().unwrap_or(1) as f64;
        let max_ms = runs.iter().map(|r| r.figures.latency.p99).fold(1.0, f64::max) * 1.1;
        let root = SVGBackend::new(path, (800, 480)).into_drawing_area();
        root.fill(&WHITE)?;
        let mut chart = ChartBuilder::on(&root)
            .caption("Latency of all requests by concurrent users", ("sans-serif", 20))
            .margin(15)
            .x_label_area_size(40)
            .y_label_area_size(60)
            .build_cartesian_2d(0f64..max_users * 1.05, 0f64..max_ms)?;
        chart.configure_mesh().x_desc("concurrent users").y_desc("milliseconds").draw()?;
        let colours = [RED, BLUE, GREEN, MAGENTA];
        for (i, system) in self.systems().iter().enumerate() {
            let colour = colours[i % colours.len()];
            for (name, pick, dashed) in [("p95", (|p: &Percentiles| p.p95) as fn(&Percentiles) -> f64, false), ("p99", |p: &Percentiles| p.p99, true)] {
                let points: Vec<(f64, f64)> = runs.iter().filter(|r| &r.system == *system).map(|r| (r.users as f64, pick(&r.figures.latency))).collect();
                let style = if dashed { colour.mix(0.5).stroke_width(2) } else { colour.stroke_width(3) };
                chart
                    .draw_series(LineSeries::new(points.clone(), style))?
                    .label(format!("{system} {name}"))
                    .legend(move |(x, y)| PathElement::new(vec![(x, y), (x + 20, y)], colour));
                chart.draw_series(points.into_iter().map(|p| Circle::new(p, 4, colour.filled())))?;
            }
        }
        chart.configure_series_labels().background_style(WHITE.mix(0.8)).border_style(BLACK).draw()?;
        root.present()?;
        Ok(())
    }
}
