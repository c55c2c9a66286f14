//! Wiring: configuration, set-up of database and topics, and starting the services alone or
//! together. The `tidemark` binary and the end-to-end tests both start the system from here.

pub mod demo;
pub mod quarantine;
pub mod replay;
pub mod users;

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use anyhow::Context;
use rdkafka::admin::{AdminClient, AdminOptions, NewTopic, TopicReplication};
use rdkafka::client::DefaultClientContext;
use rdkafka::types::RDKafkaErrorCode;
use sqlx::migrate::MigrateDatabase;
use sqlx::postgres::PgPoolOptions;
use sqlx::PgPool;
use tidemark_events::Topics;
use tidemark_http::auth::{now_secs, Authenticator, Claims};
use tidemark_http::{Gate, Rate};
use tokio::net::TcpListener;
use tokio::task::JoinSet;
use tokio_util::sync::CancellationToken;

/// Build of the writer, stamped into every event as `code_version`.
pub const CODE_VERSION: &str = concat!(env!("CARGO_PKG_VERSION"), "+", env!("TIDEMARK_COMMIT"));

#[derive(Debug, Clone, clap::Args)]
pub struct Config {
    /// PostgreSQL database of the read models, the registry and the writer epochs.
    #[arg(long, env = "DATABASE_URL", default_value = "postgres://postgres@127.0.0.1:5432/tidemark")]
    pub database_url: String,
    /// A read replica of that database, for the query API's reads of the read models
    /// [default: the database itself]
    #[arg(long, env = "TIDEMARK_READ_DATABASE_URL")]
    pub read_database_url: Option<String>,
    /// Kafka bootstrap servers.
    #[arg(long, env = "TIDEMARK_BROKERS", default_value = "127.0.0.1:9092")]
    pub brokers: String,
    /// A Confluent-API schema registry (Tidemark's own, or any other).
    #[arg(long, env = "TIDEMARK_REGISTRY_URL", default_value = "http://127.0.0.1:8081")]
    pub registry_url: String,
    /// Prefix of topic names and consumer groups, so deployments can share a cluster.
    #[arg(long, env = "TIDEMARK_TOPIC_PREFIX", default_value = "")]
    pub topic_prefix: String,
    #[arg(long, env = "TIDEMARK_COMMAND_ADDR", default_value = "127.0.0.1:8080")]
    pub command_addr: SocketAddr,
    /// This writer's lasting name among the writers that share the shards; a writer
    /// restarted under its name takes its shards back at once [default: the host's name]
    #[arg(long, env = "TIDEMARK_WRITER_NAME")]
    pub writer_name: Option<String>,
    /// Where the other writers reach this one's command API, to forward the commands for its
    /// shards [default: http://<command address>, the host's name for an unspecified address]
    #[arg(long, env = "TIDEMARK_COMMAND_URL")]
    pub command_url: Option<String>,
    #[arg(long, env = "TIDEMARK_REGISTRY_ADDR", default_value = "127.0.0.1:8081")]
    pub registry_addr: SocketAddr,
    #[arg(long, env = "TIDEMARK_QUERY_ADDR", default_value = "127.0.0.1:8082")]
    pub query_addr: SocketAddr,
    /// The sales console: its page and sign-in.
    #[arg(long, env = "TIDEMARK_CONSOLE_ADDR", default_value = "127.0.0.1:8083")]
    pub console_addr: SocketAddr,
    /// The projectors' health and metrics.
    #[arg(long, env = "TIDEMARK_PROJECTOR_ADDR", default_value = "127.0.0.1:8084")]
    pub projector_addr: SocketAddr,
    /// More origins whose pages may call the command and query APIs from a browser (besides
    /// the console's own), comma-separated: for example a console served elsewhere
    #[arg(long, env = "TIDEMARK_CONSOLE_ORIGINS", value_delimiter = ',')]
    pub console_origins: Vec<String>,
    /// The identity provider (OIDC issuer) the console signs users in with, when tokens come
    /// from one (`--jwks`); the console does not start without it then.
    #[arg(long, env = "TIDEMARK_OIDC_ISSUER")]
    pub oidc_issuer: Option<String>,
    /// The console's client id at the identity provider (a public client, with PKCE).
    #[arg(long, env = "TIDEMARK_OIDC_CLIENT_ID", default_value = "tidemark-console")]
    pub oidc_client_id: String,
    /// The scopes the console asks the identity provider for.
    #[arg(long, env = "TIDEMARK_OIDC_SCOPE", default_value = "openid")]
    pub oidc_scope: String,
    /// The built console page [default: console/web/dist of this build's sources]
    #[arg(long, env = "TIDEMARK_CONSOLE_ASSETS")]
    pub console_assets: Option<std::path::PathBuf>,
    /// Prefix of the projections' consumer groups [default: <topic prefix>tidemark.projection.]
    #[arg(long, env = "TIDEMARK_CONSUMER_GROUP_PREFIX")]
    pub consumer_group_prefix: Option<String>,
    /// Most records a projector applies in one transaction.
    #[arg(long, env = "TIDEMARK_PROJECTOR_BATCH", default_value_t = 500)]
    pub projector_batch: usize,
    /// Names this deployment; consistency tokens of another deployment are refused.
    #[arg(long, env = "TIDEMARK_DEPLOYMENT", default_value = "tidemark")]
    pub deployment: String,
    /// A projection that is behind and has made no progress for this long is reported stalled.
    #[arg(long, env = "TIDEMARK_STALL_AFTER_MS", default_value_t = 30_000)]
    pub stall_after_ms: u64,
    /// Shared secret of HS256 bearer tokens (the embedded default; ignored with --jwks).
    #[arg(long, env = "TIDEMARK_JWT_SECRET", default_value = "tidemark-local-development-secret", hide_default_value = true)]
    pub jwt_secret: String,
    /// Seals consistency tokens, so that no tenant reads the shared log's positions in them
    /// or makes one up; every instance of a deployment needs the same.
    #[arg(long, env = "TIDEMARK_TOKEN_SECRET", default_value = "tidemark-local-development-token-secret", hide_default_value = true)]
    pub token_secret: String,
    /// Published keys of an identity provider (a JWKS file or URL): RS256/ES256 tokens.
    #[arg(long, env = "TIDEMARK_JWKS")]
    pub jwks: Option<String>,
    /// The audience (`aud`) a bearer token must name [default: any, or none].
    #[arg(long, env = "TIDEMARK_JWT_AUDIENCE")]
    pub jwt_audience: Option<String>,
    /// The issuer (`iss`) a bearer token must name [default: any, or none].
    #[arg(long, env = "TIDEMARK_JWT_ISSUER")]
    pub jwt_issuer: Option<String>,
    /// The bearer token Tidemark's writer sends to the registry; minted here when omitted
    /// (possible with the shared secret only).
    #[arg(long, env = "TIDEMARK_SERVICE_TOKEN", hide_env_values = true)]
    pub service_token: Option<String>,
    /// Requests per second per principal (bursts of twice that) on each API.
    #[arg(long, env = "TIDEMARK_RATE_PER_PRINCIPAL", default_value_t = 50)]
    pub rate_per_principal: u32,
    /// Requests per second per tenant (bursts of twice that) on each API.
    #[arg(long, env = "TIDEMARK_RATE_PER_TENANT", default_value_t = 500)]
    pub rate_per_tenant: u32,
    /// The writer saves a partition's state again once this many records were added to it
    /// since its last snapshot; a starting writer reads the log only after the snapshots.
    #[arg(long, env = "TIDEMARK_SNAPSHOT_EVERY", default_value_t = 10_000)]
    pub snapshot_every: u64,
    /// Partitions of each event topic when `setup` creates it.
    #[arg(long, env = "TIDEMARK_PARTITIONS", default_value_t = 6)]
    pub partitions: i32,
    /// Replicas of each event topic's partitions when `setup` creates it; an append is
    /// acknowledged once all but one of them have it (`min.insync.replicas`).
    #[arg(long, env = "TIDEMARK_REPLICATION_FACTOR", default_value_t = 1)]
    pub replication_factor: i32,
    /// Lead assignment rules, a JSON file: `[{"territory": "east", "segment": null, "team": "east",
    /// "members": ["alice", "bob"]}, …]`; the first rule that matches a lead names its team, whose
    /// members take leads in turn [default: the demo company's rules]
    #[arg(long, env = "TIDEMARK_LEAD_RULES")]
    pub lead_rules: Option<std::path::PathBuf>,
    /// Each tenant's teams, a JSON file: `[{"tenant": "default", "team": "east", "members":
    /// ["alice", "bob", "mia"]}, …]`; a task may be given to a member of one of them
    /// [default: the demo company's teams]
    #[arg(long, env = "TIDEMARK_TEAMS")]
    pub teams: Option<std::path::PathBuf>,
    /// Sequence rules, a JSON file: `[{"name": "email-opened-then-meeting", "first": {"event":
    /// "EmailOpened"}, "then": {"event": "ActivityLogged", "kind": "meeting"}, "within_days": 7,
    /// "same": ["contact", "opportunity"]}, …]` [default: that one rule]
    #[arg(long, env = "TIDEMARK_SEQUENCE_RULES")]
    pub sequence_rules: Option<std::path::PathBuf>,
}

impl Config {
    pub fn topics(&self) -> Topics {
        Topics::with_prefix(&self.topic_prefix)
    }

    pub async fn authenticator(&self) -> anyhow::Result<Authenticator> {
        let keys = match &self.jwks {
            Some(source) => Authenticator::published_keys(source).await?,
            None => Authenticator::shared_secret(&self.jwt_secret),
        };
        Ok(keys.expecting(self.jwt_audience.clone(), self.jwt_issuer.clone()))
    }

    pub fn lead_rules(&self) -> anyhow::Result<Vec<tidemark_events::assignment::Rule>> {
        match &self.lead_rules {
            None => Ok(users::lead_rules()),
            Some(path) => read_json(path, "lead rules"),
        }
    }

    pub fn sequence_rules(&self) -> anyhow::Result<Vec<tidemark_events::sequence::Rule>> {
        let rules: Vec<tidemark_events::sequence::Rule> = match &self.sequence_rules {
            None => serde_json::from_str(tidemark_events::sequence::DEFAULT_RULES).context("the default sequence rules")?,
            Some(path) => read_json(path, "sequence rules")?,
        };
        tidemark_events::sequence::check_rules(&rules).map_err(anyhow::Error::msg)?;
        Ok(rules)
    }

    pub fn teams(&self) -> anyhow::Result<tidemark_events::teams::Teams> {
        match &self.teams {
            None => Ok(users::teams()),
            Some(path) => read_json(path, "teams").map(tidemark_events::teams::Teams),
        }
    }

    /// Origins allowed to call the APIs from a browser: the console's, and those configured.
    pub fn console_origins(&self, console: SocketAddr) -> anyhow::Result<Vec<axum::http::HeaderValue>> {
        let mut origins = vec![format!("http://{console}")];
        if console.ip().is_loopback() {
            origins.push(format!("http://localhost:{}", console.port()));
        }
        origins.extend(self.console_origins.iter().map(|o| o.trim().to_string()));
        origins.iter().map(|o| axum::http::HeaderValue::from_str(o).with_context(|| format!("{o} is not an origin"))).collect()
    }

    /// Tokens name topics by index, so the topic list (prefix included) is part of the tag.
    pub fn tokens(&self) -> tidemark_http::TokenCodec {
        tidemark_http::TokenCodec::new(&self.deployment, &self.topics().all(), &self.token_secret)
    }
}

fn read_json<T: serde::de::DeserializeOwned>(path: &std::path::Path, what: &str) -> anyhow::Result<T> {
    let text = std::fs::read_to_string(path).with_context(|| format!("cannot read the {what} {}", path.display()))?;
    serde_json::from_str(&text).with_context(|| format!("{} is not a list of {what}", path.display()))
}

/// Which services a process runs.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Services {
    pub registry: bool,
    pub commands: bool,
    pub projectors: bool,
    pub queries: bool,
    pub console: bool,
}

impl Services {
    pub const ALL: Services = Services { registry: true, commands: true, projectors: true, queries: true, console: true };
    pub const NONE: Services = Services { registry: false, commands: false, projectors: false, queries: false, console: false };
}

/// Creates the database when missing and brings its tables up to date.
pub async fn prepare_database(database_url: &str) -> anyhow::Result<PgPool> {
    if !sqlx::Postgres::database_exists(database_url).await.with_context(|| format!("cannot reach PostgreSQL at {database_url}"))? {
        tracing::info!(database_url, "creating the database");
        sqlx::Postgres::create_database(database_url).await.context("creating the database")?;
    }
    let pool = pool_options()
        .connect(database_url)
        .await
        .with_context(|| format!("cannot connect to {database_url}"))?;
    // Each crate owns its tables; the migrators share one history table.
    for migrator in [
        tidemark_schemas::registry::migrator(),
        tidemark_projectors::migrator(),
        tidemark_command_service::migrator(),
        tidemark_http::denials::migrator(),
        tidemark_privacy::PgKeyStore::migrator(),
        tidemark_documents::migrator(),
    ] {
        migrator.run(&pool).await.context("migrating the database")?;
    }
    Ok(pool)
}

/// Creates the event topics when missing: `partitions` each, `replication_factor` replicas
/// of which all but one must have an append before it is acknowledged, kept forever.
pub async fn create_topics(config: &Config) -> anyhow::Result<()> {
    let admin: AdminClient<DefaultClientContext> = tidemark_log::client(&config.brokers, "tidemark-setup")
        .create()
        .context("creating a Kafka admin client")?;
    let topics = config.topics();
    let min_insync = (config.replication_factor - 1).max(1).to_string();
    let mut new: Vec<NewTopic> = topics
        .all()
        .iter()
        .map(|t| {
            NewTopic::new(t, config.partitions, TopicReplication::Fixed(config.replication_factor))
                .set("retention.ms", "-1")
                .set("min.insync.replicas", &min_insync)
        })
        .collect();
    // One partition per shard: partition k of every event topic.
    new.push(NewTopic::new(&topics.writer_shards, config.partitions, TopicReplication::Fixed(config.replication_factor)));
    let options = AdminOptions::new().operation_timeout(Some(Duration::from_secs(10))).request_timeout(Some(Duration::from_secs(10)));
    let results = admin.create_topics(&new, &options).await.with_context(|| format!("cannot reach the broker at {}", config.brokers))?;
    for result in results {
        match result {
            Ok(topic) => tracing::info!(topic, partitions = config.partitions, replicas = config.replication_factor, "created topic"),
            Err((topic, RDKafkaErrorCode::TopicAlreadyExists)) => tracing::debug!(topic, "topic exists"),
            Err((topic, code)) => anyhow::bail!("creating topic {topic}: {code}"),
        }
    }
    Ok(())
}

/// A running set of services.
pub struct System {
    pub command_addr: Option<SocketAddr>,
    pub registry_addr: Option<SocketAddr>,
    pub query_addr: Option<SocketAddr>,
    pub console_addr: Option<SocketAddr>,
    pub projector_addr: Option<SocketAddr>,
    pub shutdown: CancellationToken,
    tasks: JoinSet<anyhow::Result<()>>,
}

impl System {
    /// Starts `services` in this process. Listeners bind before anything else starts, so a
    /// port in use fails at once; the registry serves before the writer registers schemas.
    pub async fn start(config: &Config, services: Services) -> anyhow::Result<System> {
        tidemark_documents::set_code_version(CODE_VERSION);
        let pool = prepare_database(&config.database_url).await?;
        let auth = config.authenticator().await?;
        let service_token = match &config.service_token {
            Some(token) => Some(token.clone()),
            None => auth.mint(&service_claims()),
        };
        let rate = |per_second: u32| Rate { per_second, burst: per_second.saturating_mul(2) };
        let gate = Arc::new(Gate::new(auth, rate(config.rate_per_principal), rate(config.rate_per_tenant)));
        let shutdown = CancellationToken::new();
        let mut tasks = JoinSet::new();
        let mut system =
            System { command_addr: None, registry_addr: None, query_addr: None, console_addr: None, projector_addr: None, shutdown: shutdown.clone(), tasks: JoinSet::new() };
        // Bound first: the APIs let the console's origin call them, and in tests its port is 0.
        let console_sign_in = if services.console { users::console_sign_in(config) } else { None };
        let console_listener = match console_sign_in {
            Some(_) => Some(bind(config.console_addr, "console").await?),
            None => None,
        };
        system.console_addr = console_listener.as_ref().map(TcpListener::local_addr).transpose()?;
        let cors = tidemark_http::cors(config.console_origins(system.console_addr.unwrap_or(config.console_addr))?);

        if services.registry {
            let listener = bind(config.registry_addr, "registry").await?;
            system.registry_addr = Some(listener.local_addr()?);
            let router = tidemark_schemas::registry::router(pool.clone(), gate.clone());
            tasks.spawn(serve(listener, router, shutdown.clone()));
        }
        // With the registry in this process, talk to it where it really listens (port 0 in tests).
        let registry_url = match system.registry_addr {
            Some(addr) => format!("http://{addr}"),
            None => config.registry_url.clone(),
        };
        if services.commands {
            let listener = bind(config.command_addr, "command API").await?;
            system.command_addr = Some(listener.local_addr()?);
            let name = config.writer_name.clone().unwrap_or_else(hostname);
            let bound = system.command_addr.expect("bound above");
            let advertised_url = config.command_url.clone().unwrap_or_else(|| match bound.ip().is_unspecified() {
                true => format!("http://{}:{}", hostname(), bound.port()),
                false => format!("http://{bound}"),
            });
            let writer_config = tidemark_command_service::WriterConfig {
                brokers: config.brokers.clone(),
                registry_url: registry_url.clone(),
                topics: config.topics(),
                // Unique to this start, even for a restart within one process.
                writer_id: format!("{}-{}-{}", hostname(), std::process::id(), &uuid::Uuid::new_v4().simple().to_string()[..6]),
                group_id: format!("{}tidemark.writers", config.topic_prefix),
                transactional_id: format!("{}tidemark-writer-{name}", config.topic_prefix),
                name,
                advertised_url,
                code_version: CODE_VERSION.to_string(),
                registry_token: service_token.clone(),
                snapshot_every: config.snapshot_every.max(1),
                metrics: tidemark_http::ServiceMetrics::default(),
            };
            let writer = tidemark_command_service::Writer::start(writer_config, &pool, shutdown.clone()).await?;
            let keys = Arc::new(tidemark_privacy::PgKeyStore::new(pool.clone()));
            tidemark_command_service::finish_erasures(&writer, keys, &pool).await.context("finishing recorded erasures")?;
            let rules = config.lead_rules()?;
            let versions = (registry_url.clone(), CODE_VERSION.to_string());
            let router = tidemark_command_service::router(writer.clone(), pool.clone(), versions, config.tokens(), gate.clone(), (rules.clone(), config.teams()?))
                .layer(cors.clone());
            tasks.spawn(serve(listener, router, shutdown.clone()));
            let (saver, s) = (writer.clone(), shutdown.clone());
            tasks.spawn(async move { Ok(saver.keep_snapshots(s).await) });
            let s = shutdown.clone();
            tasks.spawn(async move { Ok(tidemark_command_service::route_leads(writer, rules, s).await) });
        }
        if services.projectors {
            let listener = bind(config.projector_addr, "projectors' health and metrics").await?;
            system.projector_addr = Some(listener.local_addr()?);
            let metrics = tidemark_http::ServiceMetrics::default();
            let router = tidemark_projectors::service::router(pool.clone(), &config.brokers, metrics.clone(), gate.clone())
                .with_context(|| format!("cannot make a Kafka client for {}", config.brokers))?;
            tasks.spawn(serve(listener, router, shutdown.clone()));
            let runner = tidemark_projectors::RunnerConfig {
                brokers: config.brokers.clone(),
                registry_url: registry_url.clone(),
                topics: config.topics(),
                group_prefix: config.consumer_group_prefix.clone().unwrap_or_else(|| format!("{}tidemark.projection.", config.topic_prefix)),
                batch_size: config.projector_batch.max(1),
                metrics,
            };
            tidemark_projectors::sequences::load_rules(&pool, &config.sequence_rules()?).await.context("loading the sequence rules")?;
            tidemark_projectors::for_each(&mut SpawnProjection { tasks: &mut tasks, runner: &runner, pool: &pool, shutdown: &shutdown });
            // Detections go through the command API: this process's, or the configured one.
            let command_url = match (system.command_addr, &config.command_url) {
                (Some(addr), _) => Some(format!("http://{addr}")),
                (None, url) => url.clone(),
            };
            match command_url {
                Some(command_url) => {
                    let auth = config.authenticator().await?;
                    let token_for = Box::new(move |tenant: &str| auth.mint(&automation_claims("sequence-detector", tenant)).unwrap_or_default());
                    let sender = tidemark_projectors::sequences::Sender { command_url, token_for };
                    let (p, s) = (pool.clone(), shutdown.clone());
                    tasks.spawn(async move { Ok(tidemark_projectors::sequences::send_detections(p, sender, s).await) });
                }
                None => tracing::warn!("no TIDEMARK_COMMAND_URL: detected sequences wait in sequence_detections until a projector process has one"),
            }
        }
        if services.queries {
            let listener = bind(config.query_addr, "query API").await?;
            system.query_addr = Some(listener.local_addr()?);
            let freshness = tidemark_query_service::freshness::Freshness::new(&config.brokers)?;
            let reads = match &config.read_database_url {
                Some(url) => Some(read_pool(url).await?),
                None => None,
            };
            let query_config = tidemark_query_service::QueryConfig {
                reads,
                metrics: tidemark_http::ServiceMetrics::default(),
                topics: config.topics(),
                tokens: config.tokens(),
                stall_after: Duration::from_millis(config.stall_after_ms),
                log: tidemark_history::Replayer::new(
                    &config.brokers,
                    &registry_url,
                    service_token.as_deref(),
                    config.topics(),
                    Arc::new(tidemark_privacy::PgKeyStore::new(pool.clone())),
                )?,
            };
            let router = tidemark_query_service::router(pool.clone(), freshness, query_config, gate.clone()).layer(cors);
            tasks.spawn(serve(listener, router, shutdown.clone()));
        }
        if let (Some(listener), Some(sign_in)) = (console_listener, console_sign_in) {
            let api = |running: Option<SocketAddr>, configured: SocketAddr| format!("http://{}", running.unwrap_or(configured));
            let console = tidemark_console::ConsoleConfig {
                command_api: api(system.command_addr, config.command_addr),
                query_api: api(system.query_addr, config.query_addr),
                sign_in,
                assets: config.console_assets.clone().unwrap_or_else(|| tidemark_console::BUILT_ASSETS.into()),
            };
            tasks.spawn(serve(listener, tidemark_console::router(console), shutdown.clone()));
        }
        system.tasks = tasks;
        Ok(system)
    }

    /// Runs until a service fails or `shutdown` is cancelled; then stops the rest.
    pub async fn wait(mut self) -> anyhow::Result<()> {
        let mut result = Ok(());
        tokio::select! {
            _ = self.shutdown.cancelled() => {}
            Some(done) = self.tasks.join_next() => {
                result = done.context("a service panicked").and_then(|r| r);
                self.shutdown.cancel();
            }
        }
        while let Some(done) = self.tasks.join_next().await {
            if let Err(e) = done.context("a service panicked").and_then(|r| r) {
                result = result.and(Err(e));
            }
        }
        result
    }
}

/// Starts each projection's runner as a task of the service.
struct SpawnProjection<'a> {
    tasks: &'a mut JoinSet<anyhow::Result<()>>,
    runner: &'a tidemark_projectors::RunnerConfig,
    pool: &'a PgPool,
    shutdown: &'a CancellationToken,
}

impl tidemark_projectors::EachProjection for SpawnProjection<'_> {
    fn visit<P: tidemark_projectors::Projection>(&mut self) {
        let (r, p, s) = (self.runner.clone(), self.pool.clone(), self.shutdown.clone());
        self.tasks.spawn(async move { Ok(tidemark_projectors::run::<P>(r, p, s).await) });
    }
}

/// Who Tidemark's own processes are, to the registry.
/// Claims of an automation principal acting in `tenant` (its policy says what it may do).
pub fn automation_claims(principal: &str, tenant: &str) -> Claims {
    Claims { sub: principal.into(), tenant: tenant.into(), kind: Some("automation".into()), ..service_claims() }
}

pub fn service_claims() -> Claims {
    let now = now_secs();
    Claims {
        sub: "tidemark-writer".into(),
        tenant: "system".into(),
        roles: vec![],
        team: None,
        manager: None,
        kind: Some("system".into()),
        exp: now + 30 * 24 * 3600,
        iat: now,
        client_id: None,
        azp: None,
    }
}

fn pool_options() -> PgPoolOptions {
    PgPoolOptions::new()
        .max_connections(20)
        .acquire_timeout(Duration::from_secs(5))
        // A ping before every acquire was a round trip per read; a broken connection shows
        // as the query's error instead (a 503), and the pool replaces it.
        .test_before_acquire(false)
}

/// The read replica's pool: only reads, so no migrations; the primary's carry over to it.
async fn read_pool(url: &str) -> anyhow::Result<PgPool> {
    pool_options()
        .connect(url)
        .await
        .with_context(|| format!("cannot connect to the read replica {url}"))
}

async fn bind(addr: SocketAddr, what: &str) -> anyhow::Result<TcpListener> {
    TcpListener::bind(addr).await.with_context(|| format!("cannot listen on {addr} for the {what}: is another process using it?"))
}

async fn serve(listener: TcpListener, router: axum::Router, shutdown: CancellationToken) -> anyhow::Result<()> {
    axum::serve(listener, router).with_graceful_shutdown(async move { shutdown.cancelled().await }).await?;
    Ok(())
}

fn hostname() -> String {
    std::fs::read_to_string("/proc/sys/kernel/hostname").map(|h| h.trim().to_string()).unwrap_or_else(|_| "localhost".into())
}
