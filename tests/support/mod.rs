//! The test harness: a throwaway PostgreSQL cluster and a tansu broker per test, and helpers
//! to run the `citeflow` binary against them and read what it wrote.
#![allow(dead_code)]

use std::collections::BTreeSet;
use std::net::TcpListener;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Output, Stdio};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Mutex;
use std::time::{Duration, Instant};

pub mod workload;

use rdkafka::consumer::{BaseConsumer, Consumer};
use rdkafka::message::{Headers, Message};
use rdkafka::{ClientConfig, Offset, TopicPartitionList};

static COUNTER: AtomicUsize = AtomicUsize::new(0);

/// A fresh directory that is removed on drop.
pub struct TempDir(pub PathBuf);

impl TempDir {
    pub fn new(label: &str) -> Self {
        let n = COUNTER.fetch_add(1, Ordering::SeqCst);
        let path = std::env::temp_dir().join(format!("citeflow-{label}-{}-{n}", std::process::id()));
        let _ = std::fs::remove_dir_all(&path);
        std::fs::create_dir_all(&path).expect("temp dir");
        TempDir(path)
    }
}

impl Drop for TempDir {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

/// A port no process listens on now and that this test process has not handed out before.
/// The kernel may return a port again once its listener is closed, so two tests running at
/// once could otherwise both start a server on one port: the second server fails to bind, and
/// its test silently talks to the first test's server.
pub fn free_port() -> u16 {
    static HANDED_OUT: Mutex<BTreeSet<u16>> = Mutex::new(BTreeSet::new());
    loop {
        let port = TcpListener::bind("127.0.0.1:0").expect("bind").local_addr().expect("addr").port();
        if HANDED_OUT.lock().unwrap_or_else(|poisoned| poisoned.into_inner()).insert(port) {
            return port;
        }
    }
}

pub fn wait_for_port(port: u16, what: &str) {
    let deadline = Instant::now() + Duration::from_secs(30);
    while std::net::TcpStream::connect(("127.0.0.1", port)).is_err() {
        assert!(Instant::now() < deadline, "{what} did not open port {port}");
        std::thread::sleep(Duration::from_millis(50));
    }
}

fn is_root() -> bool {
    Command::new("id").arg("-u").output().map(|o| String::from_utf8_lossy(&o.stdout).trim() == "0").unwrap_or(false)
}

/// Runs a PostgreSQL tool, as the `postgres` OS user when we are root (root may not run it).
fn pg_command(tool: &str) -> Command {
    let bin = std::fs::read_dir("/usr/lib/postgresql")
        .expect("PostgreSQL is not installed: run scripts/services.sh install")
        .filter_map(|e| e.ok().map(|e| e.path().join("bin")))
        .max()
        .expect("no PostgreSQL version installed");
    if is_root() {
        let mut command = Command::new("runuser");
        command.args(["-u", "postgres", "--"]).arg(bin.join(tool));
        command
    } else {
        Command::new(bin.join(tool))
    }
}

fn run_checked(mut command: Command, what: &str) -> Output {
    let output = command.output().unwrap_or_else(|e| panic!("{what}: {e}"));
    assert!(output.status.success(), "{what} failed: {}", String::from_utf8_lossy(&output.stderr));
    output
}

/// A throwaway PostgreSQL cluster in a temporary directory on a free port.
pub struct Postgres {
    pub port: u16,
    dir: TempDir,
}

impl Postgres {
    pub fn start() -> Self {
        let postgres = Self::init();
        postgres.launch();
        postgres
    }

    /// A cluster that takes TCP connections only over TLS, with `cert` and `key` (PEM); its
    /// Unix socket (see [`Postgres::socket_url`]) takes plain connections, for the test's checks.
    pub fn start_tls(cert: &Path, key: &Path) -> Self {
        let postgres = Self::init();
        let data = postgres.dir.0.join("data");
        std::fs::copy(cert, data.join("server.crt")).expect("server certificate");
        std::fs::copy(key, data.join("server.key")).expect("server key");
        let settings = "\nssl = on\nssl_cert_file = 'server.crt'\nssl_key_file = 'server.key'\n";
        let conf = std::fs::read_to_string(data.join("postgresql.conf")).expect("postgresql.conf") + settings;
        std::fs::write(data.join("postgresql.conf"), conf).expect("postgresql.conf");
        std::fs::write(
            data.join("pg_hba.conf"),
            "local all all trust\nhostssl all all 127.0.0.1/32 trust\nhost all all 127.0.0.1/32 reject\n",
        )
        .expect("pg_hba.conf");
        if is_root() {
            let mut chown = Command::new("chown");
            chown.args(["-R", "postgres:postgres"]).arg(&data);
            run_checked(chown, "chown");
        }
        let mut chmod = Command::new("chmod");
        chmod.arg("600").arg(data.join("server.key"));
        run_checked(chmod, "chmod");
        postgres.launch();
        postgres
    }

    /// A plain connection string over the cluster's Unix socket.
    pub fn socket_url(&self, name: &str) -> String {
        format!("host={} port={} user=postgres dbname={name}", self.dir.0.display(), self.port)
    }

    fn init() -> Self {
        let dir = TempDir::new("pg");
        if is_root() {
            let mut chown = Command::new("chown");
            chown.args(["-R", "postgres:postgres"]).arg(&dir.0);
            run_checked(chown, "chown");
        }
        let mut initdb = pg_command("initdb");
        initdb.arg("-D").arg(dir.0.join("data")).args(["--auth=trust", "--username=postgres", "--no-sync"]);
        run_checked(initdb, "initdb");
        Postgres { port: free_port(), dir }
    }

    /// Starts the server (again) on its port.
    pub fn launch(&self) {
        let mut start = pg_command("pg_ctl");
        start
            .arg("-D")
            .arg(self.dir.0.join("data"))
            .arg("-l")
            .arg(self.log_path())
            .arg("-w")
            .arg("-o")
            .arg(format!("-p {} -k {} -c listen_addresses=127.0.0.1 -c fsync=off", self.port, self.dir.0.display()))
            .arg("start");
        run_checked(start, "pg_ctl start");
    }

    /// The server log.
    pub fn log_path(&self) -> PathBuf {
        self.dir.0.join("server.log")
    }

    /// Creates a database and returns its URL.
    pub fn database(&self, name: &str) -> String {
        let mut create = pg_command("createdb");
        create.args(["-h", "127.0.0.1", "-p", &self.port.to_string(), "-U", "postgres", name]);
        run_checked(create, "createdb");
        self.url(name)
    }

    pub fn url(&self, name: &str) -> String {
        format!("postgresql://postgres@127.0.0.1:{}/{name}", self.port)
    }

    /// Stops the server: `fast` disconnects clients and shuts down cleanly, as an operator's
    /// restart would.
    pub fn stop(&self) {
        let mut stop = pg_command("pg_ctl");
        stop.arg("-D").arg(self.dir.0.join("data")).args(["-m", "fast", "-w", "stop"]);
        let _ = stop.output();
    }
}

impl Drop for Postgres {
    fn drop(&mut self) {
        self.stop();
    }
}

/// The tansu binary: `TANSU_BIN`, else where scripts/services.sh caches it.
pub fn tansu_binary() -> PathBuf {
    if let Ok(path) = std::env::var("TANSU_BIN") {
        return PathBuf::from(path);
    }
    let home = std::env::var("HOME").expect("HOME");
    let cache = std::env::var("CITEFLOW_CACHE").unwrap_or_else(|_| format!("{home}/.cache/citeflow"));
    let path = PathBuf::from(cache).join("tansu-0.6.0/bin/tansu");
    assert!(path.exists(), "tansu is not installed at {}: run scripts/services.sh install", path.display());
    path
}

/// A tansu broker on a free port, with in-memory storage or, for tests that restart it,
/// durable SQLite storage (tansu's `libsql` feature).
pub struct Broker {
    pub port: u16,
    child: Child,
    storage: Option<TempDir>,
    /// Where clients are told to connect (`host:port`): the broker itself, or a TLS proxy in
    /// front of it.
    advertised: String,
    /// More arguments of `tansu broker` (authentication).
    extra: Vec<String>,
}

impl Broker {
    pub fn start() -> Self {
        Self::launch(None, None)
    }

    /// A broker whose topics survive a restart, in a SQLite file (tansu's `libsql` feature).
    pub fn start_durable() -> Self {
        Self::launch(Some(TempDir::new("tansu")), None)
    }

    /// A durable broker that tells clients to connect to `advertised` (a proxy's address).
    pub fn start_advertising(advertised: &str) -> Self {
        Self::launch(Some(TempDir::new("tansu")), Some(advertised.to_string()))
    }

    fn launch(storage: Option<TempDir>, advertised: Option<String>) -> Self {
        let port = free_port();
        let advertised = advertised.unwrap_or_else(|| format!("127.0.0.1:{port}"));
        let child = Self::spawn(port, storage.as_ref().map(|d| d.0.as_path()), &advertised, &[]);
        Broker { port, child, storage, advertised, extra: Vec::new() }
    }

    fn spawn(port: u16, storage: Option<&Path>, advertised: &str, extra: &[String]) -> Child {
        let listener = format!("tcp://127.0.0.1:{port}");
        let advertised = format!("tcp://{advertised}");
        let mut command = Command::new(tansu_binary());
        command.args(["broker", "--listener-url", &listener, "--advertised-listener-url", &advertised]).args(extra);
        match storage {
            Some(dir) => command.args(["--storage-engine", "sqlite://tansu.db"]).current_dir(dir),
            None => command.args(["--storage-engine", "memory://tansu/"]),
        };
        let child = command.stdout(Stdio::null()).stderr(Stdio::null()).spawn().expect("starting tansu");
        wait_for_port(port, "tansu");
        child
    }

    /// Creates a SASL/SCRAM user (`mechanism`: `scram256` or `scram512`) with tansu's own tool,
    /// which cannot authenticate: call it before [`Broker::require_authentication`].
    pub fn create_scram_user(&self, name: &str, password: &str, mechanism: &str) {
        let broker = format!("tcp://127.0.0.1:{}", self.port);
        let mut create = Command::new(tansu_binary());
        create.args(["user", "create", "--broker", &broker, "--mechanism", mechanism, name, password]);
        run_checked(create, "tansu user create");
    }

    /// Restarts the broker (durable) so that every client must authenticate with SASL.
    pub fn require_authentication(&mut self) {
        assert!(self.storage.is_some(), "users live in the broker's storage: start it durable");
        self.stop();
        self.extra.push("--authentication".to_string());
        self.restart();
    }

    /// Stops the broker (SIGKILL).
    pub fn stop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }

    /// Starts the broker again on its port with its storage.
    pub fn restart(&mut self) {
        self.child = Self::spawn(self.port, self.storage.as_ref().map(|d| d.0.as_path()), &self.advertised, &self.extra);
    }

    pub fn address(&self) -> String {
        self.advertised.clone()
    }

    /// The broker's process id (benchmarks sample its CPU).
    pub fn pid(&self) -> u32 {
        self.child.id()
    }
}

impl Drop for Broker {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// A configuration file for the job against these services.
pub struct JobConfig {
    pub path: PathBuf,
    _dir: TempDir,
}

impl JobConfig {
    pub fn new(broker: &Broker, database_url: &str, workers: usize, partitions: i32) -> Self {
        Self::with_extra(broker, database_url, workers, partitions, "")
    }

    /// A configuration with `extra` TOML appended (more sections).
    pub fn with_extra(broker: &Broker, database_url: &str, workers: usize, partitions: i32, extra: &str) -> Self {
        Self::cluster(broker, database_url, workers, partitions, &[], extra)
    }

    /// A configuration for one process of a cluster of `hosts` (none: one process), with
    /// `extra` TOML appended; the process is `CITEFLOW_PROCESS`.
    pub fn cluster(broker: &Broker, database_url: &str, workers: usize, partitions: i32, hosts: &[String], extra: &str) -> Self {
        let dir = TempDir::new("config");
        let path = dir.0.join("citeflow.toml");
        let text = format!(
            r#"
[engine]
workers = {workers}
epoch_ms = 100
metrics_addr = "127.0.0.1:0"
hosts = {hosts:?}

[kafka]
brokers = "{}"

[kafka.producer]
"batch.num.messages" = "1"

[postgres]
url = "{database_url}"

[topics]
partitions = {partitions}
{extra}
"#,
            broker.address()
        );
        std::fs::write(&path, text).expect("config");
        JobConfig { path, _dir: dir }
    }
}

/// The repository root (where `data/` lives).
pub fn repository() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
}

/// A `citeflow` command with `config`.
pub fn citeflow(config: &JobConfig, args: &[&str]) -> Command {
    let mut command = Command::new(env!("CARGO_BIN_EXE_citeflow"));
    command.arg("--config").arg(&config.path).args(args).current_dir(repository()).env("RUST_LOG", "warn");
    command
}

/// Runs `citeflow` to completion, failing the test if it fails.
pub fn citeflow_ok(config: &JobConfig, args: &[&str]) -> String {
    let output = citeflow(config, args).output().expect("running citeflow");
    assert!(
        output.status.success(),
        "citeflow {args:?} failed:\nstdout: {}\nstderr: {}",
        String::from_utf8_lossy(&output.stdout),
        String::from_utf8_lossy(&output.stderr)
    );
    String::from_utf8_lossy(&output.stdout).into_owned()
}

/// Starts the job in the background (it runs until killed).
pub fn spawn_job(config: &JobConfig) -> Child {
    citeflow(config, &["run"]).stdout(Stdio::null()).stderr(Stdio::null()).spawn().expect("spawning the job")
}

/// A blocking PostgreSQL client for assertions.
pub struct Db {
    runtime: tokio::runtime::Runtime,
    client: tokio_postgres::Client,
}

impl Db {
    pub fn connect(url: &str) -> Self {
        let runtime = tokio::runtime::Builder::new_current_thread().enable_all().build().expect("runtime");
        let client = runtime.block_on(async {
            let (client, connection) = tokio_postgres::connect(url, tokio_postgres::NoTls).await.expect("connect");
            tokio::spawn(connection);
            client
        });
        Db { runtime, client }
    }

    /// Runs `sql` (statements, no rows).
    pub fn execute(&self, sql: &str) {
        self.runtime.block_on(self.client.batch_execute(sql)).unwrap_or_else(|e| panic!("{sql}: {e:?}"));
    }

    /// Rows of `sql`, each column rendered as text (NULL as `None`).
    pub fn rows(&self, sql: &str) -> Vec<Vec<Option<String>>> {
        let wrapped = format!("SELECT to_jsonb(q)::text FROM ({sql}) q");
        let rows = self.runtime.block_on(self.client.query(&wrapped, &[])).unwrap_or_else(|e| panic!("{sql}: {e}"));
        let query = self.runtime.block_on(self.client.prepare(sql)).expect("prepare");
        let names: Vec<String> = query.columns().iter().map(|c| c.name().to_string()).collect();
        rows.iter()
            .map(|row| {
                let value: serde_json::Value = serde_json::from_str(row.get::<_, &str>(0)).expect("json");
                names
                    .iter()
                    .map(|name| match &value[name] {
                        serde_json::Value::Null => None,
                        serde_json::Value::String(s) => Some(s.clone()),
                        other => Some(other.to_string()),
                    })
                    .collect()
            })
            .collect()
    }

    pub fn count(&self, sql: &str) -> i64 {
        self.rows(sql)[0][0].as_deref().expect("count").parse().expect("number")
    }

    /// Waits up to 60 s for `condition` to hold.
    pub fn wait_until(&self, what: &str, mut condition: impl FnMut(&Db) -> bool) {
        let deadline = Instant::now() + Duration::from_secs(60);
        while !condition(self) {
            assert!(Instant::now() < deadline, "timed out waiting until {what}");
            std::thread::sleep(Duration::from_millis(100));
        }
    }
}

/// One message read back from a topic.
#[derive(Debug, Clone)]
pub struct ReadMessage {
    pub partition: i32,
    pub offset: i64,
    pub key: Option<Vec<u8>>,
    pub value: Option<Vec<u8>>,
    pub headers: Vec<(String, String)>,
}

/// Reads every message of `topic` up to the high watermarks.
pub fn read_topic(broker: &Broker, topic: &str) -> Vec<ReadMessage> {
    let consumer: BaseConsumer = ClientConfig::new()
        .set("bootstrap.servers", broker.address())
        .set("group.id", "citeflow-tests")
        .set("enable.auto.commit", "false")
        .create()
        .expect("consumer");
    let metadata = consumer.fetch_metadata(Some(topic), Duration::from_secs(10)).expect("metadata");
    let mut assignment = TopicPartitionList::new();
    let mut ends = std::collections::BTreeMap::new();
    for partition in metadata.topics()[0].partitions() {
        let (low, high) = consumer.fetch_watermarks(topic, partition.id(), Duration::from_secs(10)).expect("watermarks");
        assignment.add_partition_offset(topic, partition.id(), Offset::Offset(low)).expect("assign");
        ends.insert(partition.id(), (low, high));
    }
    consumer.assign(&assignment).expect("assign");
    // A compacted topic has gaps, so a partition is done once its position reaches the high
    // watermark (its last message always stays), not after high - low messages.
    let mut next: std::collections::BTreeMap<i32, i64> = ends.iter().map(|(partition, (low, _))| (*partition, *low)).collect();
    let expected: i64 = ends.values().map(|(low, high)| high - low).sum();
    let mut messages = Vec::new();
    let deadline = Instant::now() + Duration::from_secs(30) + Duration::from_millis(expected as u64 / 5);
    while ends.iter().any(|(partition, (_, high))| next[partition] < *high) && Instant::now() < deadline {
        if let Some(Ok(message)) = consumer.poll(Duration::from_millis(100)) {
            next.insert(message.partition(), message.offset() + 1);
            let headers = message
                .headers()
                .map(|h| {
                    h.iter()
                        .map(|header| (header.key.to_string(), String::from_utf8_lossy(header.value.unwrap_or_default()).into_owned()))
                        .collect()
                })
                .unwrap_or_default();
            messages.push(ReadMessage {
                partition: message.partition(),
                offset: message.offset(),
                key: message.key().map(<[u8]>::to_vec),
                value: message.payload().map(<[u8]>::to_vec),
                headers,
            });
        }
    }
    messages
}

/// A path inside the bundled sample.
pub fn sample(path: &str) -> PathBuf {
    repository().join("data/sample").join(path)
}

pub fn read_lines(path: &Path) -> Vec<String> {
    citeflow_connectors::files::lines(path).expect("open").map(|l| l.expect("line")).collect()
}

/// Client settings for producing to `broker` from a test (one record per batch for tansu).
pub fn test_kafka(broker: &Broker) -> citeflow_connectors::kafka::KafkaConfig {
    let mut config = citeflow_connectors::kafka::KafkaConfig { brokers: broker.address(), ..Default::default() };
    config.producer.insert("batch.num.messages".into(), "1".into());
    config
}

/// A producer to `broker` for tests.
pub fn test_producer(broker: &Broker) -> citeflow_connectors::kafka::producer::Producer {
    citeflow_connectors::kafka::producer::Producer::new(&test_kafka(broker), None).expect("producer")
}

/// Every view's rows, in primary-key order, without the generated search columns.
pub fn dump_views(db: &Db) -> std::collections::BTreeMap<&'static str, Vec<Vec<Option<String>>>> {
    [
        ("publications", "SELECT publication_id, pmid, pmcid, doi, title, authors, journal, journal_abbreviation, volume, issue, year, pages FROM publications ORDER BY 1"),
        ("policy_documents", "SELECT document_id, organisation, title, url, published_at::text, reference_count FROM policy_documents ORDER BY 1"),
        ("citations", "SELECT * FROM citations ORDER BY 1, 2, 3"),
        ("publication_citation_counts", "SELECT * FROM publication_citation_counts ORDER BY 1"),
        // `closed` and `revision` depend on when the watermark moved, so a from-scratch run
        // only reproduces the counts (a restart reproduces all of it: see tests/event_time.rs).
        (
            "citations_per_period",
            "SELECT organisation, period_start::text, period_end::text, documents, citing_documents, citations, publications
             FROM citations_per_period ORDER BY 1, 2",
        ),
        ("citeflow_dead_letters", "SELECT topic, partition, \"offset\", reason, detail, message_key, payload FROM citeflow_dead_letters ORDER BY 1, 2, 3"),
    ]
    .into_iter()
    .map(|(name, sql)| (name, db.rows(sql)))
    .collect()
}

/// The high watermark of every partition of `topics`.
pub fn high_watermarks(broker: &Broker, topics: &[&str]) -> std::collections::BTreeMap<(String, i32), i64> {
    let consumer: BaseConsumer = test_kafka(broker).consumer_config().create().expect("consumer");
    let mut ends = std::collections::BTreeMap::new();
    for topic in topics {
        let metadata = consumer.fetch_metadata(Some(topic), Duration::from_secs(10)).expect("metadata");
        for partition in metadata.topics()[0].partitions() {
            let (_, high) = consumer.fetch_watermarks(topic, partition.id(), Duration::from_secs(10)).expect("watermarks");
            ends.insert((topic.to_string(), partition.id()), high);
        }
    }
    ends
}

/// Waits until the job has committed every partition of the input topics up to its end.
pub fn wait_caught_up(db: &Db, broker: &Broker) {
    let topics = citeflow_jobs::config::TopicsConfig::default();
    let ends = high_watermarks(broker, &[&topics.publications, &topics.documents]);
    db.wait_until("the job has committed every input", |db| {
        let tables = db.count("SELECT count(*) FROM pg_tables WHERE tablename = 'citeflow_progress'");
        tables == 1
            && ends.iter().all(|((topic, partition), end)| {
                let sql = format!(
                    "SELECT count(*) FROM citeflow_progress WHERE topic = '{topic}' AND partition = {partition} AND next_offset >= {end}"
                );
                db.count(&sql) == 1
            })
    });
}

/// Checks that every period is closed exactly when the committed watermark has passed its end
/// (the default allowed lateness is zero), whatever restarts the job went through.
pub fn assert_periods_closed_by_the_watermark(db: &Db, context: &str) {
    let wrong = db.count(
        "SELECT count(*) FROM citations_per_period p, citeflow_watermarks w
         WHERE w.source = 'global' AND p.closed <> coalesce(p.period_end <= w.watermark, false)",
    );
    assert_eq!(wrong, 0, "{context}: periods whose closed flag disagrees with the watermark");
    assert!(db.count("SELECT count(*) FROM citations_per_period") > 0, "{context}: the period view is filled");
}

/// Runs the job from scratch into a fresh database `name` over the same topics, uninterrupted,
/// and asserts that every view of `db` equals what that run wrote, row for row.
/// The one allowance: a dead letter of a message that the broker has since compacted away (a
/// later message with the same key in the same partition) is history the job saw and a
/// from-scratch run cannot.
pub fn assert_equals_from_scratch(postgres: &Postgres, broker: &Broker, db: &Db, name: &str, context: &str) {
    let url = postgres.database(name);
    let config = JobConfig::new(broker, &url, 2, 4);
    citeflow_ok(&config, &["run", "--until-caught-up"]);
    assert_periods_closed_by_the_watermark(db, context);
    let expected = dump_views(&Db::connect(&url));
    let mut actual = dump_views(db);
    assert!(expected["citations"].len() > 10, "{context}: the comparison covers real citations");
    let dead_letters = actual.get_mut("citeflow_dead_letters").unwrap();
    dead_letters.retain(|row| expected["citeflow_dead_letters"].contains(row) || !compacted_away(broker, row));
    for (view, rows) in &expected {
        if rows != &actual[view] {
            let missing: Vec<_> = rows.iter().filter(|r| !actual[view].contains(r)).take(3).collect();
            let extra: Vec<_> = actual[view].iter().filter(|r| !rows.contains(r)).take(3).collect();
            panic!(
                "{context}: {view} differs from a from-scratch run ({} rows vs {}): missing {missing:?}, extra {extra:?}",
                actual[view].len(),
                rows.len()
            );
        }
    }
}

/// Whether the message a dead-letter row (topic, partition, offset, reason, detail, key, …) was
/// made of is gone from its topic and superseded there by a later message with its key.
fn compacted_away(broker: &Broker, row: &[Option<String>]) -> bool {
    let field = |i: usize| row[i].clone().unwrap_or_default();
    let (partition, offset): (i32, i64) = (field(1).parse().unwrap(), field(2).parse().unwrap());
    let key = row[5]
        .as_deref()
        .map(|hex| (0..hex.len() - 2).step_by(2).map(|i| u8::from_str_radix(&hex[2 + i..4 + i], 16).unwrap()).collect::<Vec<u8>>());
    let messages = read_topic(broker, &field(0));
    let here = messages.iter().filter(|m| m.partition == partition);
    let (mut present, mut superseded) = (false, false);
    for message in here {
        present |= message.offset == offset;
        superseded |= message.offset > offset && message.key == key;
    }
    !present && superseded
}

/// A fresh PostgreSQL cluster with database `name`, a broker with the topics created, and a
/// job configuration for them (2 workers, 4 partitions).
pub struct Setup {
    pub postgres: Postgres,
    pub broker: Broker,
    pub url: String,
    pub config: JobConfig,
}

impl Setup {
    pub fn new(name: &str) -> Self {
        Self::with_broker(name, Broker::start())
    }

    pub fn with_broker(name: &str, broker: Broker) -> Self {
        Self::configured(name, broker, "")
    }

    /// With `extra` TOML appended to the job's configuration.
    pub fn with_extra(name: &str, extra: &str) -> Self {
        Self::configured(name, Broker::start(), extra)
    }

    fn configured(name: &str, broker: Broker, extra: &str) -> Self {
        let postgres = Postgres::start();
        let url = postgres.database(name);
        let config = JobConfig::with_extra(&broker, &url, 2, 4, extra);
        citeflow_ok(&config, &["topics"]);
        Setup { postgres, broker, url, config }
    }
}
