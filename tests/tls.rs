//! Production connections: TLS to PostgreSQL (libpq's `sslmode`, against a local cluster that
//! takes TCP connections only over TLS, with certificates this test makes), and SASL/SCRAM
//! (SHA-256 and SHA-512) and TLS to Kafka: tansu's own SCRAM, and TLS through stunnel in front
//! of it.
//!
//! What the local broker cannot show, and so is untested here: TLS terminated by the broker
//! itself (tansu 0.6.0's `--cert` and `--key` options refuse to be given together); SASL PLAIN
//! (its handshake offers no PLAIN mechanism); mutual TLS (librdkafka's
//! `ssl.certificate.location`; neither tansu nor this stunnel set-up asks for client
//! certificates); OAUTHBEARER and GSSAPI (no such broker here; GSSAPI is also not built in).

mod support;

use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::sync::{Mutex, MutexGuard};

use support::{citeflow, citeflow_ok, wait_for_port, Broker, Db, JobConfig, Postgres, TempDir};

/// A certificate authority and a server certificate it signed for `localhost` and 127.0.0.1,
/// made with the `openssl` command; and a second authority that signed nothing here.
struct Certificates {
    dir: TempDir,
}

impl Certificates {
    fn new() -> Self {
        let dir = TempDir::new("certs");
        let openssl = |args: &[&str]| {
            let output = Command::new("openssl").args(args).current_dir(&dir.0).output().expect("the openssl command");
            assert!(output.status.success(), "openssl {args:?}: {}", String::from_utf8_lossy(&output.stderr));
        };
        let key = ["-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:prime256v1", "-nodes"];
        for ca in ["ca", "other-ca"] {
            let (key_file, cert_file, subject) = (format!("{ca}.key"), format!("{ca}.pem"), format!("/CN=citeflow test {ca}"));
            let mut args = vec!["req", "-x509"];
            args.extend(key);
            args.extend(["-keyout", &key_file, "-out", &cert_file, "-days", "2", "-subj", &subject]);
            openssl(&args);
        }
        let mut request = vec!["req"];
        request.extend(key);
        request.extend(["-keyout", "server.key", "-out", "server.csr", "-subj", "/CN=localhost"]);
        openssl(&request);
        std::fs::write(dir.0.join("san.cnf"), "subjectAltName = DNS:localhost, IP:127.0.0.1\n").unwrap();
        openssl(&[
            "x509",
            "-req",
            "-in",
            "server.csr",
            "-CA",
            "ca.pem",
            "-CAkey",
            "ca.key",
            "-CAcreateserial",
            "-out",
            "server.pem",
            "-days",
            "2",
            "-extfile",
            "san.cnf",
        ]);
        Certificates { dir }
    }

    fn path(&self, name: &str) -> PathBuf {
        self.dir.0.join(name)
    }
}

fn tls_url(postgres: &Postgres, host: &str, name: &str, parameters: &str) -> String {
    format!("postgresql://postgres@{host}:{}/{name}?{parameters}", postgres.port)
}

/// The job's view of the sample run through a TLS connection: caught up, with citations.
fn assert_job_runs(config: &JobConfig, check: &Db) {
    citeflow_ok(config, &["topics"]);
    citeflow_ok(config, &["load", "--data", "data/sample"]);
    citeflow_ok(config, &["run", "--until-caught-up"]);
    assert!(check.count("SELECT count(*) FROM citations") > 100, "the job wrote its views");
    assert!(check.count("SELECT count(*) FROM publications") > 40_000);
}

fn run_failing(config: &JobConfig, args: &[&str]) -> String {
    let output = citeflow(config, args).output().expect("running citeflow");
    assert!(!output.status.success(), "citeflow {args:?} should have failed");
    String::from_utf8_lossy(&output.stderr).into_owned()
}

#[test]
fn postgres_over_tls_verifies_what_sslmode_asks() {
    let _one = one_test_at_a_time();
    let certs = Certificates::new();
    let postgres = Postgres::start_tls(&certs.path("server.pem"), &certs.path("server.key"));
    let broker = Broker::start();
    let ca = certs.path("ca.pem").display().to_string();
    postgres.database("verified");
    let check = Db::connect(&postgres.socket_url("verified"));

    let verified =
        JobConfig::new(&broker, &tls_url(&postgres, "localhost", "verified", &format!("sslmode=verify-full&sslrootcert={ca}")), 2, 2);
    assert_job_runs(&verified, &check); // pg_hba.conf refuses TCP without TLS: this ran over TLS
    let status = citeflow_ok(&verified, &["status"]);
    assert!(status.contains("citations"), "status reads over TLS too: {status}");
    let wrong_authority = certs.path("other-ca.pem").display().to_string();
    // The certificate names localhost and 127.0.0.1; `hostaddr` connects to the server under a
    // name it does not carry.
    let elsewhere = format!("hostaddr=127.0.0.1&sslrootcert={ca}");
    let cases = [
        ("localhost", format!("sslmode=verify-ca&sslrootcert={wrong_authority}"), "certificate verify failed"),
        ("db.invalid", format!("sslmode=verify-full&{elsewhere}"), "certificate verify failed"),
        ("localhost", "sslmode=disable".to_string(), "no encryption"),
        ("localhost", "sslmode=verify-ca&sslrootcert=/nonexistent/ca.pem".to_string(), "sslrootcert /nonexistent/ca.pem"),
        ("localhost", "sslmode=sometimes".to_string(), "postgres.url"),
    ];
    for (host, parameters, expected) in &cases {
        let config = JobConfig::new(&broker, &tls_url(&postgres, host, "verified", parameters), 2, 2);
        let error = run_failing(&config, &["run", "--until-caught-up"]);
        assert!(error.contains(expected), "{parameters}: expected `{expected}` in\n{error}");
    }
    let chain_only =
        JobConfig::new(&broker, &tls_url(&postgres, "db.invalid", "verified", &format!("sslmode=verify-ca&{elsewhere}")), 2, 2);
    citeflow_ok(&chain_only, &["run", "--until-caught-up"]);

    postgres.database("unverified");
    let unverified = JobConfig::new(&broker, &tls_url(&postgres, "127.0.0.1", "unverified", "sslmode=require"), 2, 2);
    citeflow_ok(&unverified, &["run", "--until-caught-up"]);
    let check = Db::connect(&postgres.socket_url("unverified"));
    assert!(check.count("SELECT count(*) FROM citations") > 100, "sslmode=require encrypts without verifying, as libpq does");
}

/// A job configuration for a secured broker: librdkafka's properties in `[kafka.properties]`.
/// A job configuration for a secured broker: librdkafka's properties in `[kafka.properties]`.
fn kafka_config(broker: &Broker, url: &str, properties: &[(&str, &str)]) -> JobConfig {
    let lines: String = properties.iter().map(|(key, value)| format!("\"{key}\" = \"{value}\"\n")).collect();
    JobConfig::with_extra(broker, url, 2, 2, &format!("[kafka.properties]\n{lines}"))
}

/// stunnel terminating TLS in front of the broker, with the test's server certificate: the
/// broker advertises the proxy's address, so every connection a client makes goes over TLS.
/// (tansu 0.6.0 has `--cert` and `--key` options but refuses them together, so it cannot
/// terminate TLS itself; a TLS-terminating proxy or load balancer in front of Kafka is a
/// common deployment too.)
struct TlsProxy {
    child: Child,
    _dir: TempDir,
}

impl TlsProxy {
    fn start(certs: &Certificates, port: u16, target: u16) -> Self {
        let dir = TempDir::new("stunnel");
        let config = dir.0.join("stunnel.conf");
        let text = format!(
            "foreground = yes\npid =\n[kafka]\naccept = 127.0.0.1:{port}\nconnect = 127.0.0.1:{target}\ncert = {}\nkey = {}\n",
            certs.path("server.pem").display(),
            certs.path("server.key").display()
        );
        std::fs::write(&config, text).expect("stunnel configuration");
        let child = Command::new("stunnel")
            .arg(&config)
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("stunnel (Debian's stunnel4; scripts/services.sh install installs it)");
        wait_for_port(port, "stunnel");
        TlsProxy { child, _dir: dir }
    }
}

impl Drop for TlsProxy {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// Held by each test of this file for its whole run. A SCRAM handshake that waits too long
/// fails as an authentication failure, and the SCRAM job did so (mid-load, alone it passes)
/// with the other tests' brokers, clusters and jobs running beside it on two cores.
static ONE_AT_A_TIME: Mutex<()> = Mutex::new(());

fn one_test_at_a_time() -> MutexGuard<'static, ()> {
    ONE_AT_A_TIME.lock().unwrap_or_else(|poisoned| poisoned.into_inner())
}

fn with_password(config: &JobConfig, password: &str, args: &[&str]) -> std::process::Output {
    citeflow(config, args).env("KAFKA_SASL_PASSWORD", password).output().expect("running citeflow")
}

fn succeeds(config: &JobConfig, password: &str, args: &[&str]) {
    let output = with_password(config, password, args);
    assert!(output.status.success(), "citeflow {args:?}: {}", String::from_utf8_lossy(&output.stderr));
}

fn fails(config: &JobConfig, password: &str, args: &[&str]) -> String {
    let output = with_password(config, password, args);
    assert!(!output.status.success(), "citeflow {args:?} should have failed");
    String::from_utf8_lossy(&output.stderr).into_owned()
}

const WHOLE_RUN: [&[&str]; 3] = [&["topics"], &["load", "--data", "data/sample"], &["run", "--until-caught-up"]];

#[test]
fn kafka_with_sasl_scram() {
    let _one = one_test_at_a_time();
    let mut broker = Broker::start_durable();
    broker.create_scram_user("citeflow", "s3cret-512", "scram512");
    broker.create_scram_user("reader", "s3cret-256", "scram256");
    broker.require_authentication();
    let postgres = Postgres::start();
    let url = postgres.database("scram");
    let sasl = |mechanism: &str, user: &str| {
        kafka_config(&broker, &url, &[("security.protocol", "SASL_PLAINTEXT"), ("sasl.mechanisms", mechanism), ("sasl.username", user)])
    };
    let scram512 = sasl("SCRAM-SHA-512", "citeflow");
    for args in WHOLE_RUN {
        succeeds(&scram512, "s3cret-512", args);
    }
    assert!(Db::connect(&url).count("SELECT count(*) FROM citations") > 100);
    succeeds(&sasl("SCRAM-SHA-256", "reader"), "s3cret-256", &["run", "--until-caught-up"]);

    for (config, password) in [(&scram512, "wrong"), (&sasl("SCRAM-SHA-256", "nobody"), "s3cret-256")] {
        for args in [&["run", "--until-caught-up"][..], &["topics"], &["load", "--data", "data/sample"]] {
            let error = fails(config, password, args);
            assert!(error.contains("SASL authentication error"), "{args:?} stops at start, saying why:\n{error}");
        }
    }
    let error = fails(&kafka_config(&broker, &url, &[]), "", &["run", "--until-caught-up"]);
    assert!(error.contains("cannot be used"), "a client without credentials is refused at start:\n{error}");
}

#[test]
fn kafka_over_tls_with_scram() {
    let _one = one_test_at_a_time();
    let certs = Certificates::new();
    let proxy_port = support::free_port();
    let mut broker = Broker::start_advertising(&format!("localhost:{proxy_port}"));
    broker.create_scram_user("citeflow", "s3cret", "scram512");
    broker.require_authentication();
    let _proxy = TlsProxy::start(&certs, proxy_port, broker.port);
    let postgres = Postgres::start();
    let url = postgres.database("kafka_tls");
    let secured = |protocol: &str, ca: &str| {
        kafka_config(
            &broker,
            &url,
            &[
                ("security.protocol", protocol),
                ("ssl.ca.location", ca),
                ("sasl.mechanisms", "SCRAM-SHA-512"),
                ("sasl.username", "citeflow"),
            ],
        )
    };
    let (ca, other_ca) = (certs.path("ca.pem").display().to_string(), certs.path("other-ca.pem").display().to_string());
    let trusted = secured("SASL_SSL", &ca);
    for args in WHOLE_RUN {
        succeeds(&trusted, "s3cret", args);
    }
    assert!(Db::connect(&url).count("SELECT count(*) FROM citations") > 100, "the job read its inputs over TLS");

    let error = fails(&secured("SASL_SSL", &other_ca), "s3cret", &["run", "--until-caught-up"]);
    assert!(error.contains("certificate verify failed"), "a broker whose certificate does not verify stops the job at start:\n{error}");
    let error = fails(&secured("SASL_PLAINTEXT", &ca), "s3cret", &["topics"]);
    assert!(error.contains("cannot be used"), "plaintext to a TLS listener is refused at start:\n{error}");
}

#[test]
fn a_misspelt_security_setting_names_the_property() {
    let broker = Broker::start();
    let config = kafka_config(&broker, "postgresql://postgres@127.0.0.1:1/none", &[("security.protocol", "SASL_TLS")]);
    let error = run_failing(&config, &["run", "--until-caught-up"]);
    assert!(error.contains("security.protocol"), "{error}");
}
