//! `tidemark-load bench`: seeds a believable tenant into each target, drives each with the
//! same mixed traffic at every scenario's number of users, one target at a time in the same
//! run, measures its commands' ceiling, and writes the report.

use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use clap::Parser;
use tidemark_loadgen::report::{Report, Run};
use tidemark_loadgen::tenant::{People, TenantSpec};
use tidemark_loadgen::traffic::{Load, Mode};
use tidemark_loadgen::{procs, tenant, traffic, Target};

#[derive(Parser)]
#[command(name = "tidemark-load", about = "Load generator: a rep's day against Tidemark and the monolithic baseline")]
enum Cli {
    /// Seed each target, run every scenario against each, and write the report.
    Bench(Bench),
}

#[derive(clap::Args)]
struct Bench {
    /// name=COMMANDS_URL[,QUERIES_URL], once per system; the last is the baseline of ratios.
    #[arg(long = "target", required = true)]
    targets: Vec<String>,
    /// Concurrent users of each scenario.
    #[arg(long, value_delimiter = ',', default_value = "100,1000,4000")]
    users: Vec<usize>,
    /// How long each scenario runs against each system.
    #[arg(long, default_value_t = 60)]
    seconds: u64,
    /// Closed loop: a user's pause between answer and next request (0.5 to 1.5 times this).
    #[arg(long, default_value_t = 1000)]
    think_ms: u64,
    /// Open loop instead: requests arrive at this many per second per 100 users, whatever the answers do.
    #[arg(long)]
    open_rate_per_100_users: Option<f64>,
    #[arg(long, default_value_t = 50)]
    reps: usize,
    #[arg(long, default_value_t = 10)]
    team_size: usize,
    #[arg(long, default_value_t = 10_000)]
    accounts: usize,
    #[arg(long, default_value_t = 50_000)]
    opportunities: usize,
    /// The share of acknowledged commands whose freshness is measured.
    #[arg(long, default_value_t = 0.1)]
    freshness_sample: f64,
    #[arg(long, default_value_t = 32)]
    seed_concurrency: usize,
    /// Users sending commands without pause, to find the command throughput ceiling (0: skip).
    #[arg(long, default_value_t = 200)]
    ceiling_users: usize,
    #[arg(long, default_value_t = 20)]
    ceiling_seconds: u64,
    /// Process names whose CPU and memory to report (e.g. tidemark, java for the broker, postgres).
    #[arg(long = "watch")]
    watch: Vec<String>,
    #[arg(long, env = "TIDEMARK_JWT_SECRET", default_value = "tidemark-local-development-secret", hide_default_value = true)]
    jwt_secret: String,
    #[arg(long, default_value = "bench")]
    tenant: String,
    /// Where the report goes: <out>/<stem>.md, .json and -latency.svg.
    #[arg(long, default_value = "bench/results")]
    out: PathBuf,
    #[arg(long, default_value = "load")]
    stem: String,
    /// key=value lines for the report's header (commit, machine, …).
    #[arg(long = "stamp")]
    stamps: Vec<String>,
}

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let Cli::Bench(args) = Cli::parse();
    let targets: Vec<Target> = args.targets.iter().map(|t| Target::parse(t).map_err(anyhow::Error::msg)).collect::<Result<_, _>>()?;
    let spec = TenantSpec { reps: args.reps, team_size: args.team_size, accounts: args.accounts, opportunities: args.opportunities };
    let people = Arc::new(People::new(&spec, &args.tenant, &args.jwt_secret));
    let client = tidemark_loadgen::client();

    let mut stamp: Vec<(String, String)> = args.stamps.iter().filter_map(|s| s.split_once('=')).map(|(k, v)| (k.to_string(), v.to_string())).collect();
    let mut seeded = Vec::new();
    for target in &targets {
        eprintln!("seeding {}: {} accounts and {} opportunities of {} reps", target.name, spec.accounts, spec.opportunities, spec.reps);
        let step = ((spec.accounts + spec.opportunities) / 20).max(1);
        let s = tenant::seed(&client, target, &people, &spec, args.seed_concurrency, |done, total| {
            if done % step == 0 {
                eprintln!("  {}: {done} of {total} commands", target.name);
            }
        })
        .await?;
        eprintln!("  {}: seeded in {:.0} s ({:.0} commands/s)", target.name, s.seconds, (spec.accounts + spec.opportunities) as f64 / s.seconds);
        stamp.push((format!("seeding {}", target.name), format!("{} commands in {:.0} s ({:.0}/s)", spec.accounts + spec.opportunities, s.seconds, (spec.accounts + spec.opportunities) as f64 / s.seconds)));
        seeded.push(s);
    }
    let mode = |users: usize| match args.open_rate_per_100_users {
        Some(rate) => Mode::Open { per_second: rate * users as f64 / 100.0 },
        None => Mode::Closed { think: Duration::from_millis(args.think_ms) },
    };
    stamp.push(("tenant".into(), format!("{} reps in teams of {} (each with a manager), one finance approver; {} accounts, {} opportunities", spec.reps, spec.team_size, spec.accounts, spec.opportunities)));
    stamp.push((
        "traffic".into(),
        match args.open_rate_per_100_users {
            Some(rate) => format!("open loop, {rate} requests/s per 100 users; 80% reads / 20% commands for reps; {} s per run", args.seconds),
            None => format!("closed loop, think time {} ms (0.5–1.5×); 80% reads / 20% commands for reps; {} s per run", args.think_ms, args.seconds),
        },
    ));

    let mut runs = Vec::new();
    let mut scenarios: Vec<(String, Load)> = args
        .users
        .iter()
        .enumerate()
        .map(|(seed, &users)| {
            let load = Load { users, mode: mode(users), duration: Duration::from_secs(args.seconds), freshness_sample: args.freshness_sample, commands_only: false, seed: seed as u64 };
            (format!("{users} users"), load)
        })
        .collect();
    if args.ceiling_users > 0 {
        let ceiling = Load { users: args.ceiling_users, mode: Mode::Closed { think: Duration::ZERO }, duration: Duration::from_secs(args.ceiling_seconds), freshness_sample: args.freshness_sample, commands_only: true, seed: args.users.len() as u64 };
        scenarios.push((format!("command ceiling ({} users, no pause)", args.ceiling_users), ceiling));
    }
    for (i, (scenario, load)) in scenarios.iter().enumerate() {
        // Alternate which system goes first, so neither always meets a warmer machine.
        let order: Vec<usize> = if i % 2 == 0 { (0..targets.len()).collect() } else { (0..targets.len()).rev().collect() };
        for t in order {
            let target = &targets[t];
            eprintln!("{scenario}: {} for {} s", target.name, load.duration.as_secs());
            let (done_tx, done_rx) = tokio::sync::oneshot::channel::<()>();
            let watcher = tokio::spawn(procs::watch(args.watch.clone(), async move {
                let _ = done_rx.await;
            }));
            let figures = traffic::run(&client, target, people.clone(), &seeded[t], load).await;
            let _ = done_tx.send(());
            let processes = watcher.await?;
            eprintln!(
                "  {:.0} requests/s, p95 {:.1} ms, p99 {:.1} ms, errors {:.2}%",
                figures.per_second,
                figures.latency.p95,
                figures.latency.p99,
                figures.error_rate * 100.0
            );
            runs.push(Run { scenario: scenario.clone(), users: if load.commands_only { 0 } else { load.users }, system: target.name.clone(), figures, processes });
        }
    }
    let report = Report { title: "Load: a rep's day against Tidemark and the monolithic baseline".into(), stamp, runs };
    report.write(&args.out, &args.stem)?;
    eprintln!("wrote {}", args.out.join(format!("{}.md", args.stem)).display());
    Ok(())
}
