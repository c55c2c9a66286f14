//! Starts Tidemark for a test against the real broker that `infra/test` runs and the
//! machine's PostgreSQL. Each test gets its own database and topic prefix, so tests run
//! in parallel on one broker without seeing each other.
#![allow(dead_code)]

use std::collections::BTreeMap;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use serde_json::Value;
use tidemark::{Config, Services, System};
use tidemark_schemas::{Decoded, EventCodec};

pub fn test_config() -> Config {
    let brokers = std::env::var("TIDEMARK_TEST_BROKERS")
        .expect("TIDEMARK_TEST_BROKERS is not set: run the tests with infra/test, which starts a Kafka broker for them");
    let postgres = std::env::var("TIDEMARK_TEST_DATABASE_URL").unwrap_or_else(|_| "postgres://postgres@127.0.0.1:5432".into());
    let id = &uuid::Uuid::new_v4().simple().to_string()[..12];
    let any_port = "127.0.0.1:0".parse().unwrap();
    Config {
        database_url: format!("{postgres}/tidemark_test_{id}"),
        read_database_url: None,
        brokers,
        registry_url: external_registry().unwrap_or_else(|| "http://127.0.0.1:9".into()), // else replaced by the in-process registry's address
        topic_prefix: format!("t{id}."),
        command_addr: any_port,
        writer_name: None,
        command_url: None,
        registry_addr: any_port,
        query_addr: any_port,
        console_addr: any_port,
        projector_addr: any_port,
        console_origins: vec![],
        console_assets: None,
        oidc_issuer: None,
        oidc_client_id: "tidemark-console".into(),
        oidc_scope: "openid".into(),
        consumer_group_prefix: None,
        projector_batch: 500,
        deployment: "tidemark-tests".into(),
        jwt_secret: "tidemark-tests-secret".into(),
        token_secret: "tidemark-tests-token-secret".into(),
        jwks: None,
        jwt_audience: None,
        jwt_issuer: None,
        service_token: None,
        rate_per_principal: 1000,
        rate_per_tenant: 10_000,
        stall_after_ms: 30_000,
        partitions: 3,
        replication_factor: 1,
        // Every test's writer snapshots as soon as a partition changes: restarts in any test
        // go through a snapshot.
        snapshot_every: 1,
        lead_rules: None,
        teams: None,
        sequence_rules: None,
    }
}

/// Another Confluent-API registry to run the tests against instead of Tidemark's own
/// (`TIDEMARK_TEST_REGISTRY_URL`, for example Apicurio's `.../apis/ccompat/v7`).
fn external_registry() -> Option<String> {
    std::env::var("TIDEMARK_TEST_REGISTRY_URL").ok().filter(|url| !url.is_empty())
}

pub struct TestSystem {
    pub config: Config,
    running: Option<System>,
    pub http: reqwest::Client,
}

impl TestSystem {
    pub async fn start() -> TestSystem {
        TestSystem::start_with(test_config(), Services::ALL).await
    }

    pub async fn start_with(config: Config, mut services: Services) -> TestSystem {
        if external_registry().is_some() {
            services.registry = false;
        }
        tidemark::prepare_database(&config.database_url).await.expect("database");
        tidemark::create_topics(&config).await.expect("topics");
        let system = System::start(&config, services).await.expect("tidemark starts");
        TestSystem { config, running: Some(system), http: reqwest::Client::new() }
    }

    /// Stops every service and waits until they have let go of their clients.
    pub async fn stop(mut self) {
        let system = self.running.take().expect("running");
        system.shutdown.cancel();
        let _ = system.wait().await;
    }

    pub fn system(&self) -> &System {
        self.running.as_ref().expect("running")
    }

    pub fn commands(&self) -> String {
        format!("http://{}", self.system().command_addr.expect("the command API runs"))
    }

    pub fn queries(&self) -> String {
        format!("http://{}", self.system().query_addr.expect("the query API runs"))
    }

    pub fn console(&self) -> String {
        format!("http://{}", self.system().console_addr.expect("the console runs"))
    }

    pub fn registry(&self) -> String {
        match self.system().registry_addr {
            Some(addr) => format!("http://{addr}"),
            None => self.config.registry_url.clone(),
        }
    }

    /// An operator of the deployment: the registry's writes and the metrics.
    pub fn operator(&self) -> String {
        self.token("ops", "default", &["operator"], None, None)
    }

    /// A bearer token for `user` with `roles` in `tenant`, signed with the test secret.
    pub fn token(&self, user: &str, tenant: &str, roles: &[&str], team: Option<&str>, kind: Option<&str>) -> String {
        self.token_via(user, tenant, roles, team, kind, None)
    }

    /// The same, issued to the client `client` (the `azp` claim, as identity providers name it).
    pub fn token_via(&self, user: &str, tenant: &str, roles: &[&str], team: Option<&str>, kind: Option<&str>, client: Option<&str>) -> String {
        let now = tidemark_http::auth::now_secs();
        let claims = tidemark_http::auth::Claims {
            sub: user.into(),
            tenant: tenant.into(),
            roles: roles.iter().map(|r| r.to_string()).collect(),
            team: team.map(String::from),
            manager: None,
            kind: kind.map(String::from),
            exp: now + 3600,
            iat: now,
            client_id: None,
            azp: client.map(String::from),
        };
        tidemark::users::mint(&self.config, &claims).expect("a test token")
    }

    /// Tests that are not about authorization act as alice, an admin of the default tenant.
    pub fn admin(&self) -> String {
        self.token("alice", "default", &["admin"], Some("east"), None)
    }

    /// The request is built at once, so the arguments need not outlive the future. An
    /// `Authorization` header among `headers` replaces the admin token (empty: none at all).
    pub fn command(&self, path: &str, body: Value, headers: &[(&str, &str)]) -> impl std::future::Future<Output = Answer> + use<> {
        let mut request = self.http.post(format!("{}{path}", self.commands())).json(&body);
        if !headers.iter().any(|(name, _)| name.eq_ignore_ascii_case("authorization")) {
            request = request.bearer_auth(self.admin());
        }
        for (name, value) in headers.iter().filter(|(_, v)| !v.is_empty()) {
            request = request.header(*name, *value);
        }
        async move { Answer::from(request.send().await.expect("the command API answers")).await }
    }

    pub fn get(&self, url: &str) -> impl std::future::Future<Output = Answer> + use<> {
        self.get_as(url, &self.admin())
    }

    pub fn get_as(&self, url: &str, token: &str) -> impl std::future::Future<Output = Answer> + use<> {
        let request = self.http.get(url).bearer_auth(token);
        async move { Answer::from(request.send().await.expect("the API answers")).await }
    }

    pub fn post_as(&self, url: &str, token: &str, body: Value) -> impl std::future::Future<Output = Answer> + use<> {
        let request = self.http.post(url).bearer_auth(token).json(&body);
        async move { Answer::from(request.send().await.expect("the API answers")).await }
    }

    pub async fn open_account(&self, name: &str) -> String {
        let answer = self.command("/v1/accounts", serde_json::json!({"name": name}), &[]).await;
        assert_eq!(answer.status, 201, "{}", answer.body);
        answer.body["id"].as_str().unwrap().to_string()
    }

    pub async fn create_opportunity(&self, account_id: &str, owner: &str, amount: &str) -> Answer {
        let body = serde_json::json!({"account_id": account_id, "name": "Fleet renewal", "owner_id": owner,
            "amount": {"value": amount, "currency": "EUR"}, "close_date": "2026-12-31"});
        let answer = self.command("/v1/opportunities", body, &[]).await;
        assert_eq!(answer.status, 201, "{}", answer.body);
        answer
    }

    pub fn pool(&self) -> impl std::future::Future<Output = sqlx::PgPool> + '_ {
        async { sqlx::PgPool::connect(&self.config.database_url).await.expect("test database") }
    }

    /// Every record of `topic`, decoded, by partition and offset.
    pub async fn read_log(&self, topic: &str) -> Vec<(i32, i64, Decoded)> {
        read_log(&self.config.brokers, &self.registry(), topic).await
    }

    /// Appends the next event of an aggregate by hand, as the writer would have just before
    /// a crash (the writer of this system must be stopped right after).
    pub async fn append_by_hand(&self, (aggregate_type, id): (&str, uuid::Uuid), event: tidemark_events::DomainEvent, (actor, command_id, correlation_id): (&str, &str, &str)) {
        use rdkafka::producer::{FutureProducer, FutureRecord};
        use tidemark_events::envelope::StreamPosition;
        use tidemark_events::{ActorKind, CommandMeta, Envelope, EventRecord};
        let topic = self.config.topics().for_aggregate(aggregate_type).expect("an aggregate type").to_string();
        let (partition, last) = self
            .read_log(&topic)
            .await
            .into_iter()
            .filter_map(|(p, _, d)| match d {
                Decoded::Event(e) if e.envelope.aggregate_id == id => Some((p, e)),
                _ => None,
            })
            .last()
            .expect("the aggregate exists");
        let meta = CommandMeta {
            command_id: command_id.into(),
            tenant_id: "default".into(),
            actor_id: actor.into(),
            actor_kind: ActorKind::User,
            client_id: "tests".into(),
            correlation_id: correlation_id.into(),
            causation_id: None,
            policy_version: tidemark_events::POLICY_VERSION.into(),
            code_version: "tests".into(),
            rationale: None,
            received_at: chrono::Utc::now(),
        };
        let at = StreamPosition { aggregate_type, aggregate_id: id, version: last.envelope.aggregate_version + 1, writer_epoch: last.envelope.writer_epoch };
        let record = EventRecord { envelope: Envelope::new(&meta, at, event.event_type(), chrono::Utc::now()), event };
        let service = tidemark::users::mint(&self.config, &tidemark::service_claims()).unwrap();
        let codec = EventCodec::with_token(&self.registry(), Some(&service)).unwrap();
        let payload = codec.encode_event(&topic, &record).await.unwrap();
        let producer: FutureProducer = tidemark_log::client(&self.config.brokers, "tidemark-test").create().unwrap();
        let key = id.to_string();
        producer.send(FutureRecord::to(&topic).partition(partition).key(&key).payload(&payload), Duration::from_secs(5)).await.unwrap();
    }

    pub async fn log_end_offsets(&self, topic: &str) -> BTreeMap<i32, i64> {
        log_end_offsets(&self.config.brokers, topic)
    }

    /// Runs `tidemark replay ARGS` against this system, as the binary would be run; returns
    /// the exit code, stdout and stderr.
    pub fn replay(&self, args: &[&str]) -> (i32, String, String) {
        let output = self.replay_command(args).output().expect("the tidemark binary runs");
        (output.status.code().unwrap_or(-1), String::from_utf8_lossy(&output.stdout).into(), String::from_utf8_lossy(&output.stderr).into())
    }

    /// `tidemark replay ARGS` against this system, to be run.
    pub fn replay_command(&self, args: &[&str]) -> std::process::Command {
        let mut command = self.cli(&["replay"]);
        command.args(args);
        command
    }

    /// `tidemark ARGS` against this system, as an operator would run it.
    pub fn cli(&self, args: &[&str]) -> std::process::Command {
        let mut command = std::process::Command::new(env!("CARGO_BIN_EXE_tidemark"));
        command
            .args(args)
            .env("DATABASE_URL", &self.config.database_url)
            .env("TIDEMARK_BROKERS", &self.config.brokers)
            .env("TIDEMARK_REGISTRY_URL", self.registry())
            .env("TIDEMARK_TOPIC_PREFIX", &self.config.topic_prefix)
            .env("TIDEMARK_JWT_SECRET", &self.config.jwt_secret)
            .env("TIDEMARK_SNAPSHOT_EVERY", self.config.snapshot_every.to_string())
            .env("TIDEMARK_LOG", "warn");
        command
    }
}

impl Drop for TestSystem {
    fn drop(&mut self) {
        if let Some(system) = &self.running {
            system.shutdown.cancel();
        }
    }
}

/// A child process that dies with the test, even when the test panics.
pub struct KillOnDrop(pub std::process::Child);

impl KillOnDrop {
    pub fn kill(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

impl Drop for KillOnDrop {
    fn drop(&mut self) {
        self.kill();
    }
}

pub struct Answer {
    pub status: u16,
    pub headers: reqwest::header::HeaderMap,
    pub body: Value,
}

impl Answer {
    async fn from(response: reqwest::Response) -> Answer {
        let status = response.status().as_u16();
        let headers = response.headers().clone();
        let text = response.text().await.unwrap_or_default();
        let body = serde_json::from_str(&text).unwrap_or(Value::String(text));
        Answer { status, headers, body }
    }

    /// The consistency token of a command's or a read's answer.
    pub fn token(&self) -> String {
        self.body["consistency_token"].as_str().expect("a consistency token").to_string()
    }

    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers.get(name).and_then(|v| v.to_str().ok())
    }
}

/// The committed end of each partition of `topic` (past the last transaction's marker).
pub fn log_end_offsets(brokers: &str, topic: &str) -> BTreeMap<i32, i64> {
    let ends = tidemark_history::log_ends(brokers, topic, 0..tidemark_history::partition_count(brokers, topic).unwrap()).unwrap();
    ends.into_iter().map(|((_, p), end)| (p, end)).collect()
}

/// The bytes of every committed record of `topic`, as the broker stores them.
pub async fn raw_log(brokers: &str, topic: &str) -> Vec<Vec<u8>> {
    use rdkafka::message::Message;
    let ends = tidemark_history::log_ends(brokers, topic, 0..tidemark_history::partition_count(brokers, topic).unwrap()).unwrap();
    let mut log = tidemark_log::ToEnd::new(tidemark_log::reader(brokers, "tidemark-tests"), &BTreeMap::new(), ends, Duration::from_secs(10)).unwrap();
    let mut payloads = Vec::new();
    while let Some(message) = log.next().await.expect("the log can be read") {
        payloads.push([message.key().unwrap_or_default(), message.payload().unwrap_or_default()].concat());
    }
    payloads
}

/// The versions of aggregate `id`'s events in a log as `read_log` returns it, in log order.
pub fn versions_of(log: &[(i32, i64, Decoded)], id: &str) -> Vec<i64> {
    log.iter()
        .filter_map(|(_, _, decoded)| match decoded {
            Decoded::Event(e) if e.envelope.aggregate_id.to_string() == id => Some(e.envelope.aggregate_version),
            _ => None,
        })
        .collect()
}

pub async fn read_log(brokers: &str, registry_url: &str, topic: &str) -> Vec<(i32, i64, Decoded)> {
    let codec = EventCodec::new(registry_url).unwrap();
    let records = tidemark_history::read_topic(brokers, &codec, topic).await.expect("the log can be read");
    records.into_iter().map(|r| (r.partition, r.offset, r.decoded.expect("every record decodes"))).collect()
}

/// A Kafka broker of a test's own, started as infra/lib.sh starts one (from the classpath
/// and the configuration that infra/test names), so that the test may kill it and start it
/// again on the same data and port.
pub struct OwnBroker {
    pub dir: std::path::PathBuf,
    pub port: u16,
    controller: u16,
    process: Option<KillOnDrop>,
}

fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port()
}

impl OwnBroker {
    pub fn start() -> OwnBroker {
        let dir = std::env::temp_dir().join(format!("tidemark-broker-{}", uuid::Uuid::new_v4()));
        std::fs::create_dir_all(&dir).unwrap();
        let mut broker = OwnBroker { dir, port: free_port(), controller: free_port(), process: None };
        let config = std::env::var("TIDEMARK_KAFKA_CONFIG").expect("TIDEMARK_KAFKA_CONFIG is set by infra/test");
        let template = std::fs::read_to_string(format!("{config}/server.properties.template")).unwrap();
        let properties = template
            .replace("@DATA@", broker.dir.to_str().unwrap())
            .replace("@CONTROLLER_PORT@", &broker.controller.to_string())
            .replace("@PORT@", &broker.port.to_string());
        std::fs::write(broker.dir.join("server.properties"), properties).unwrap();
        let id = broker.java(&["kafka.tools.StorageTool", "random-uuid"]).output().unwrap();
        let id = String::from_utf8(id.stdout).unwrap();
        let properties = broker.dir.join("server.properties");
        let formatted = broker.java(&["kafka.tools.StorageTool", "format", "--standalone", "-t", id.trim(), "-c", properties.to_str().unwrap()]).output().unwrap();
        assert!(formatted.status.success(), "formatting the broker's storage: {}", String::from_utf8_lossy(&formatted.stderr));
        broker.resume();
        broker
    }

    pub fn brokers(&self) -> String {
        format!("127.0.0.1:{}", self.port)
    }

    fn java(&self, args: &[&str]) -> std::process::Command {
        let libs = std::env::var("TIDEMARK_KAFKA_LIBS").expect("TIDEMARK_KAFKA_LIBS is set by infra/test");
        let config = std::env::var("TIDEMARK_KAFKA_CONFIG").expect("TIDEMARK_KAFKA_CONFIG is set by infra/test");
        let mut command = std::process::Command::new("java");
        command.args(["-Xms256m", "-Xmx512m", &format!("-Dlog4j2.configurationFile={config}/log4j2.yaml"), "-cp", &format!("{libs}/*")]).args(args);
        command
    }

    /// Starts the broker process on its data and waits until it serves.
    pub fn resume(&mut self) {
        let log = self.dir.join("broker.log");
        let _ = std::fs::remove_file(&log);
        let out = std::fs::File::create(&log).unwrap();
        let properties = self.dir.join("server.properties");
        let child = self.java(&["kafka.Kafka", properties.to_str().unwrap()]).stdout(out.try_clone().unwrap()).stderr(out).spawn().expect("java runs");
        self.process = Some(KillOnDrop(child));
        let deadline = std::time::Instant::now() + Duration::from_secs(60);
        while !std::fs::read_to_string(&log).unwrap_or_default().contains("Kafka Server started") {
            assert!(std::time::Instant::now() < deadline, "the broker did not start:\n{}", std::fs::read_to_string(&log).unwrap_or_default());
            std::thread::sleep(Duration::from_millis(100));
        }
    }

    /// SIGKILL: the broker gets no chance to flush or say goodbye.
    pub fn kill(&mut self) {
        if let Some(mut process) = self.process.take() {
            process.kill();
        }
    }
}

impl Drop for OwnBroker {
    fn drop(&mut self) {
        self.kill();
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}

/// Prints a test's figures, and adds them to the file `infra/test` shows at the end of the
/// run (a passing test's output is otherwise hidden).
pub fn report(line: &str) {
    println!("{line}");
    if let Ok(path) = std::env::var("TIDEMARK_TEST_REPORT") {
        use std::io::Write;
        if let Ok(mut file) = std::fs::OpenOptions::new().create(true).append(true).open(path) {
            let _ = writeln!(file, "{line}");
        }
    }
}

/// `tidemark serve` as a child process, on ports of its own, with an admin's token.
pub struct Serve {
    pub config: Config,
    pub registry: String,
    pub http: reqwest::Client,
    /// An admin's.
    pub token: String,
    /// A deployment operator's: `/metrics`.
    pub operator: String,
}

impl Serve {
    /// A database and topics of its own; nothing runs yet.
    pub async fn new(mut config: Config) -> Serve {
        (config.command_addr, config.registry_addr, config.query_addr, config.projector_addr) = (free_addr(), free_addr(), free_addr(), free_addr());
        tidemark::prepare_database(&config.database_url).await.unwrap();
        tidemark::create_topics(&config).await.unwrap();
        let claims = tidemark_http::auth::Claims {
            sub: "alice".into(),
            tenant: "default".into(),
            roles: vec!["admin".into()],
            team: Some("east".into()),
            manager: None,
            kind: None,
            exp: tidemark_http::auth::now_secs() + 3600,
            iat: tidemark_http::auth::now_secs(),
            client_id: None,
            azp: None,
        };
        let token = tidemark::users::mint(&config, &claims).unwrap();
        let operator = tidemark_http::auth::Claims { sub: "ops".into(), roles: vec!["operator".into()], team: None, ..claims.clone() };
        let operator = tidemark::users::mint(&config, &operator).unwrap();
        Serve { registry: format!("http://{}", config.registry_addr), config, http: reqwest::Client::new(), token, operator }
    }

    pub fn spawn(&self) -> KillOnDrop {
        self.spawn_with(&[])
    }

    /// Spawns it with `env` set besides the deployment's own settings.
    pub fn spawn_with(&self, env: &[(&str, &str)]) -> KillOnDrop {
        self.spawn_service("serve", env)
    }

    /// Spawns one service of the deployment (`command-service`, `projector` …) with `env`
    /// set besides the deployment's own settings.
    pub fn spawn_service(&self, service: &str, env: &[(&str, &str)]) -> KillOnDrop {
        Command::new(env!("CARGO_BIN_EXE_tidemark"))
            .arg(service)
            .env("DATABASE_URL", &self.config.database_url)
            .env("TIDEMARK_BROKERS", &self.config.brokers)
            .env("TIDEMARK_TOPIC_PREFIX", &self.config.topic_prefix)
            .env("TIDEMARK_COMMAND_ADDR", self.config.command_addr.to_string())
            .env("TIDEMARK_REGISTRY_ADDR", self.config.registry_addr.to_string())
            .env("TIDEMARK_QUERY_ADDR", self.config.query_addr.to_string())
            .env("TIDEMARK_PROJECTOR_ADDR", self.config.projector_addr.to_string())
            .env("TIDEMARK_REGISTRY_URL", &self.registry)
            .env("TIDEMARK_JWT_SECRET", &self.config.jwt_secret)
            .env("TIDEMARK_RATE_PER_PRINCIPAL", "10000")
            .env("TIDEMARK_RATE_PER_TENANT", "10000")
            .env("TIDEMARK_SNAPSHOT_EVERY", self.config.snapshot_every.to_string())
            .env("TIDEMARK_LOG", std::env::var("TIDEMARK_TEST_LOG").unwrap_or_else(|_| "warn".into()))
            .envs(env.iter().copied())
            .stdout(Stdio::null())
            .stderr(kept_log(service))
            .spawn()
            .map(KillOnDrop)
            .expect("the tidemark binary starts")
    }

    /// Waits until the command API serves; says how long that took, and the writer's start
    /// report (how many partitions came from snapshots).
    pub async fn ready(&self) -> (Duration, Value) {
        let started = Instant::now();
        let url = format!("http://{}/healthz", self.config.command_addr);
        loop {
            if let Ok(r) = self.http.get(&url).send().await {
                if r.status() == 200 {
                    let waited = started.elapsed();
                    return (waited, r.json::<Value>().await.unwrap_or_default()["start"].clone());
                }
            }
            assert!(started.elapsed() < Duration::from_secs(60), "the command API did not come back");
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }

    /// Sends a command until it is acknowledged: the same key after every failure, as a
    /// careful client does. A refused command (4xx) is an answer too.
    pub async fn send(&self, path: &str, body: Value, key: &str) -> (u16, Value) {
        let api = format!("http://{}", self.config.command_addr);
        self.send_via(|| api.clone(), path, &body, key, Duration::from_secs(120)).await
    }

    /// Like `send`, to the command API that `api` names at each attempt (a client behind a
    /// load balancer), for up to `patience`.
    pub async fn send_via(&self, api: impl Fn() -> String, path: &str, body: &Value, key: &str, patience: Duration) -> (u16, Value) {
        let deadline = Instant::now() + patience;
        loop {
            let sent = self.http.post(format!("{}{path}", api())).bearer_auth(&self.token).header("Idempotency-Key", key).json(body).send().await;
            if let Ok(response) = sent {
                let status = response.status().as_u16();
                let body: Value = response.json().await.unwrap_or(Value::Null);
                if status < 500 {
                    return (status, body);
                }
            }
            assert!(Instant::now() < deadline, "{key} was never answered");
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    }

    /// The tidemark command line, set up for this deployment.
    pub fn cli(&self, args: &[&str]) -> Command {
        let mut command = Command::new(env!("CARGO_BIN_EXE_tidemark"));
        command
            .args(args)
            .env("DATABASE_URL", &self.config.database_url)
            .env("TIDEMARK_BROKERS", &self.config.brokers)
            .env("TIDEMARK_REGISTRY_URL", &self.registry)
            .env("TIDEMARK_TOPIC_PREFIX", &self.config.topic_prefix)
            .env("TIDEMARK_JWT_SECRET", &self.config.jwt_secret)
            .env("TIDEMARK_LOG", "warn");
        command
    }

    pub async fn strong_read(&self, path: &str) -> bool {
        let url = format!("http://{}{path}", self.config.query_addr);
        matches!(self.http.get(&url).bearer_auth(&self.token).send().await, Ok(r) if r.status() == 200)
    }
}

/// Where a spawned service's log goes: a file in `TIDEMARK_TEST_LOGS` when that is set (to
/// look into a failure), else nowhere.
fn kept_log(service: &str) -> Stdio {
    let Ok(dir) = std::env::var("TIDEMARK_TEST_LOGS") else { return Stdio::null() };
    let path = std::path::Path::new(&dir).join(format!("{service}-{}.log", uuid::Uuid::new_v4().simple()));
    std::fs::File::create(&path).map(Stdio::from).unwrap_or_else(|_| Stdio::null())
}

pub fn free_addr() -> std::net::SocketAddr {
    std::net::TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap()
}
