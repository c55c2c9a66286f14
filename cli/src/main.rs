//! `tidemark`: one binary for every Tidemark service, alone or all in one process.

use anyhow::Context;
use clap::{Parser, Subcommand};
use tidemark::{Config, Services, System};
use tracing_subscriber::layer::{Layer, SubscriberExt};
use tracing_subscriber::util::SubscriberInitExt;
use tracing_subscriber::EnvFilter;

#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

#[derive(Parser)]
#[command(name = "tidemark", version = tidemark::CODE_VERSION, about = "An event-sourced CRM on a Kafka log")]
struct Cli {
    #[command(flatten)]
    config: Config,
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Create the database and its tables, and the event topics, where missing.
    Setup,
    /// Run everything in one process: registry, command API, projectors, query API, console.
    Serve,
    /// Run the command API (a writer of the event topics, sharing the shards with the others).
    CommandService,
    /// Run the projector workers.
    Projector,
    /// Run the query API.
    QueryService,
    /// Run the sales console (its page and sign-in; the page calls the command and query APIs).
    Console,
    /// Run the schema registry.
    Registry,
    /// Tools that read the log itself.
    #[command(subcommand)]
    Replay(tidemark::replay::Replay),
    /// Records a projection could not decode or apply: list them, skip one (operators).
    #[command(subcommand)]
    Quarantine(tidemark::quarantine::QuarantineCommand),
    /// Load demo data through the command API (safe to repeat: every command has an Idempotency-Key).
    Demo(tidemark::demo::DemoArgs),
    /// Print a bearer token for a demo user (or anyone, given --roles), signed with the shared secret.
    Token(TokenArgs),
}

#[derive(clap::Args)]
struct TokenArgs {
    /// alice, bob, carol, dave, erin (reps), mia, wes (managers), fiona (finance), andy
    /// (analyst), audrey (auditor), root (admin), ops (operator), lead-router (automation), or
    /// anyone else.
    #[arg(long)]
    user: String,
    #[arg(long)]
    tenant: Option<String>,
    /// Comma-separated: rep, manager, approver, finance, analyst, auditor, admin, operator.
    #[arg(long, value_delimiter = ',')]
    roles: Option<Vec<String>>,
    #[arg(long)]
    team: Option<String>,
    /// user, automation or system.
    #[arg(long)]
    kind: Option<String>,
    /// How long the token is valid.
    #[arg(long, default_value_t = 12)]
    hours: u64,
}

#[tokio::main]
async fn main() -> std::process::ExitCode {
    let traces = match tidemark_http::traces::provider("tidemark") {
        Ok(traces) => traces,
        Err(e) => {
            eprintln!("tidemark: {e}");
            return std::process::ExitCode::FAILURE;
        }
    };
    let logs = EnvFilter::try_from_env("TIDEMARK_LOG").unwrap_or_else(|_| EnvFilter::new("info,librdkafka=warn,rdkafka=warn,sqlx=warn"));
    // Quieter logs keep every span of a trace. The exporter's own HTTP client is left out,
    // or sending spans would make more of them.
    let spans = EnvFilter::try_from_env("TIDEMARK_TRACES").unwrap_or_else(|_| EnvFilter::new("info,librdkafka=warn,rdkafka=warn,sqlx=warn,hyper=off,h2=off,reqwest=off,opentelemetry=off"));
    tracing_subscriber::registry()
        // Logs go to stderr: stdout is the command's answer (the replay tools print JSON there).
        .with(tracing_subscriber::fmt::layer().with_writer(std::io::stderr).with_filter(logs))
        .with(traces.as_ref().map(|provider| tidemark_http::traces::layer(provider, "tidemark").with_filter(spans)))
        .init();
    let cli = Cli::parse();
    tidemark_documents::set_code_version(tidemark::CODE_VERSION);
    let outcome = run(cli).await;
    // Spans still queued for OTLP leave before the process does.
    if let Some(provider) = traces {
        if let Err(e) = provider.shutdown() {
            eprintln!("tidemark: sending the last traces failed: {e}");
        }
    }
    match outcome {
        Ok(()) => std::process::ExitCode::SUCCESS,
        // The reader of stdout went away (`tidemark replay events … | head`): nothing is wrong.
        Err(e) if e.chain().any(|c| c.downcast_ref::<std::io::Error>().is_some_and(|io| io.kind() == std::io::ErrorKind::BrokenPipe)) => std::process::ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("tidemark: {e:#}");
            std::process::ExitCode::FAILURE
        }
    }
}

async fn run(cli: Cli) -> anyhow::Result<()> {
    let config = cli.config;
    let services = match cli.command {
        Command::Setup => {
            tidemark::prepare_database(&config.database_url).await?;
            tidemark::create_topics(&config).await?;
            println!("database {} and topics {:?} are ready", config.database_url, config.topics().all());
            return Ok(());
        }
        Command::Quarantine(command) => return tidemark::quarantine::run(command, &config.database_url).await,
        Command::Demo(args) => return tidemark::demo::load(args, &config).await,
        Command::Token(t) => {
            let claims = tidemark::users::claims(&t.user, t.tenant.as_deref(), t.roles, t.team, t.kind, t.hours)?;
            println!("{}", tidemark::users::mint(&config, &claims)?);
            return Ok(());
        }
        Command::Replay(replay) => {
            let token = config.service_token.clone().or_else(|| tidemark::users::mint(&config, &tidemark::service_claims()).ok());
            return tidemark::replay::run(replay, &config.brokers, &config.registry_url, token.as_deref(), &config.database_url, &config.topics()).await
        }
        Command::Serve => {
            tidemark::create_topics(&config).await?;
            Services::ALL
        }
        Command::CommandService => Services { commands: true, ..Services::NONE },
        Command::Projector => Services { projectors: true, ..Services::NONE },
        Command::QueryService => Services { queries: true, ..Services::NONE },
        Command::Registry => Services { registry: true, ..Services::NONE },
        Command::Console => Services { console: true, ..Services::NONE },
    };
    let system = System::start(&config, services).await?;
    for (name, addr) in [("registry", system.registry_addr), ("commands", system.command_addr), ("queries", system.query_addr), ("console", system.console_addr), ("projectors", system.projector_addr)] {
        if let Some(addr) = addr {
            tracing::info!("{name} listening on http://{addr}");
        }
    }
    let shutdown = system.shutdown.clone();
    tokio::spawn(async move {
        stop_signal().await;
        tracing::info!("stopping");
        shutdown.cancel();
    });
    system.wait().await.context("a service stopped")
}

async fn stop_signal() {
    let mut term = tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()).expect("SIGTERM handler");
    tokio::select! {
        _ = tokio::signal::ctrl_c() => {}
        _ = term.recv() => {}
    }
}
