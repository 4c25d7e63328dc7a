//! `strata standalone --tls-cert --tls-key --auth-file` end to end: every listener speaks TLS,
//! every ingest and query route needs a credential, tenants come from credentials, and the
//! real clients users have get through with theirs (the OpenTelemetry Python SDK over
//! OTLP/gRPC and OTLP/HTTP with a bearer token, Prometheus remote-writing with basic auth).

mod common;

use std::io::{Read, Write};
use std::net::TcpStream;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::Arc;
use std::time::{Duration, Instant};

use base64::Engine;
use common::*;
use serde_json::{Value, json};
use strata_server::auth::hash_text;
use strata_server::tls::client::{ClientTls, ClientTlsConfig};
use strata_server::tls::testing::TestPki;

const TRACE_ACME: &str = "5b8efff798038103d269b633813fc60c";
const TRACE_BETA: &str = "6c9f0008a9149214e37ac744924fd71d";

/// Tokens and users of the test's auth file.
fn auth_file(dir: &Path) -> PathBuf {
    let text = format!(
        r#"
[[credential]]
name = "acme-app"
token = "{acme}"
tenants = ["acme"]
scopes = ["write", "read"]

[[credential]]
name = "beta-app"
token = "{beta}"
tenants = ["beta"]
scopes = ["write", "read"]

[[credential]]
username = "grafana"
password = "{grafana}"
tenants = ["acme"]
scopes = ["read"]

[[credential]]
username = "prometheus"
password = "{prometheus}"
tenants = ["acme"]
scopes = ["write"]

[[credential]]
name = "ops"
token = "{ops}"
tenants = ["*"]
scopes = ["admin"]
"#,
        acme = hash_text("token-acme"),
        beta = hash_text("token-beta"),
        grafana = hash_text("grafana-pw"),
        prometheus = hash_text("prom-pw"),
        ops = hash_text("token-ops"),
    );
    let path = dir.join("auth.toml");
    std::fs::write(&path, text).unwrap();
    path
}

fn basic(user: &str, password: &str) -> String {
    format!(
        "Basic {}",
        base64::engine::general_purpose::STANDARD.encode(format!("{user}:{password}"))
    )
}

/// A standalone with TLS and auth on every listener.
struct Secure {
    proc: Proc,
    pki: TestPki,
    agent: ureq::Agent,
    grpc: u16,
    otlp: String,
    query: String,
    collector: String,
}

impl Secure {
    /// Starts it with the configuration `config` (`{agent_http}` stands for the agent's
    /// OTLP/HTTP address, `{ca}` for the CA file).
    fn start(dir: &Path, config: &str) -> Self {
        let pki = TestPki::new(&dir.join("pki"));
        let cert = pki.server("strata");
        let auth = auth_file(dir);
        let [grpc, http, query, flight, chttp] = free_ports();
        let addr = |p: u16| format!("127.0.0.1:{p}");
        let data = dir.join("data");
        let config_path = dir.join("secure.toml");
        std::fs::write(
            &config_path,
            config
                .replace("{agent_http}", &addr(http))
                .replace("{ca}", &pki.ca.display().to_string()),
        )
        .unwrap();
        let args: Vec<String> = vec![
            "--config".into(),
            config_path.display().to_string(),
            "standalone".into(),
            "--data-dir".into(),
            data.display().to_string(),
            "--otlp-grpc".into(),
            addr(grpc),
            "--otlp-http".into(),
            addr(http),
            "--http".into(),
            addr(query),
            "--flight".into(),
            addr(flight),
            "--collector-http".into(),
            addr(chttp),
            "--tls-cert".into(),
            cert.cert.display().to_string(),
            "--tls-key".into(),
            cert.key.display().to_string(),
            "--auth-file".into(),
            auth.display().to_string(),
        ];
        let args: Vec<&str> = args.iter().map(String::as_str).collect();
        let mut proc = strata(
            "secure",
            dir,
            &args,
            &[
                ("STRATA_COLLECTOR__FLUSH_MAX_AGE_MS", "200"),
                ("STRATA_AGENT__BATCH_MAX_AGE_MS", "50"),
            ],
        );
        let agent = https_agent(&pki.ca);
        // Ready probes stay open with auth on.
        for url in [
            format!("https://127.0.0.1:{query}/ready"),
            format!("https://127.0.0.1:{http}/ready"),
        ] {
            let deadline = Instant::now() + Duration::from_secs(30);
            while !agent.get(&url).call().is_ok_and(|r| r.status() == 200) {
                assert!(proc.is_running(), "exited:\n{}", proc.log_text());
                assert!(
                    Instant::now() < deadline,
                    "{url} not ready:\n{}",
                    proc.log_text()
                );
                std::thread::sleep(Duration::from_millis(100));
            }
        }
        Self {
            proc,
            pki,
            agent,
            grpc,
            otlp: format!("https://127.0.0.1:{http}"),
            query: format!("https://127.0.0.1:{query}"),
            collector: format!("https://127.0.0.1:{chttp}"),
        }
    }

    /// (status, body, WWW-Authenticate values) of one request.
    fn call(
        &self,
        method: &str,
        url: &str,
        headers: &[(&str, &str)],
        body: Option<&[u8]>,
    ) -> (u16, String, Vec<String>) {
        let mut req = self.agent.request(method, url);
        for (k, v) in headers {
            req = req.set(k, v);
        }
        let result = match body {
            Some(b) => req.send_bytes(b),
            None => req.call(),
        };
        let r = match result {
            Ok(r) => r,
            Err(ureq::Error::Status(_, r)) => r,
            Err(e) => panic!("{method} {url}: {e}"),
        };
        let status = r.status();
        let challenges = r
            .all("www-authenticate")
            .iter()
            .map(|s| s.to_string())
            .collect();
        (status, r.into_string().unwrap_or_default(), challenges)
    }

    fn sql_count(&self, auth: &str, sql: &str) -> Value {
        let body = json!({ "query": sql }).to_string();
        let (s, body, _) = self.call(
            "POST",
            &format!("{}/api/v1/sql", self.query),
            &[
                ("authorization", auth),
                ("content-type", "application/json"),
            ],
            Some(body.as_bytes()),
        );
        assert_eq!(s, 200, "{sql}: {body}");
        serde_json::from_str::<Value>(&body).unwrap()["rows"][0][0].clone()
    }
}

fn https_agent(ca: &Path) -> ureq::Agent {
    let tls = ClientTls::load(&ClientTlsConfig {
        ca: Some(ca.to_path_buf()),
        ..Default::default()
    })
    .unwrap()
    .unwrap();
    ureq::AgentBuilder::new()
        .tls_config(Arc::new(tls.config(&[b"http/1.1"]).unwrap()))
        .timeout(Duration::from_secs(30))
        .build()
}

fn now_nanos() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_nanos() as u64
}

fn spans(trace: &str, service: &str, t0: u64) -> String {
    json!({"resourceSpans": [{
        "resource": {"attributes": [{"key": "service.name", "value": {"stringValue": service}}]},
        "scopeSpans": [{"spans": [{
            "traceId": trace, "spanId": "eee19b7ec3c1b174", "name": "GET /", "kind": 2,
            "startTimeUnixNano": t0.to_string(), "endTimeUnixNano": (t0 + 1_000_000).to_string()
        }]}]
    }]})
    .to_string()
}

fn logs(service: &str, line: &str, t0: u64) -> String {
    json!({"resourceLogs": [{
        "resource": {"attributes": [{"key": "service.name", "value": {"stringValue": service}}]},
        "scopeLogs": [{"logRecords": [{"timeUnixNano": t0.to_string(), "body": {"stringValue": line}}]}]
    }]})
    .to_string()
}

fn enc(s: &str) -> String {
    url::form_urlencoded::byte_serialize(s.as_bytes()).collect()
}

/// Opens a TLS connection (trusting `ca`) and sends `bytes`; what the server answers before
/// closing, and how long it took.
fn raw_tls(port: u16, ca: &Path, bytes: &[u8], within: Duration) -> (String, Duration) {
    let tls = ClientTls::load(&ClientTlsConfig {
        ca: Some(ca.to_path_buf()),
        ..Default::default()
    })
    .unwrap()
    .unwrap();
    let config = Arc::new(tls.config(&[b"http/1.1"]).unwrap());
    let conn = rustls::ClientConnection::new(config, "localhost".try_into().unwrap()).unwrap();
    let tcp = TcpStream::connect(("127.0.0.1", port)).unwrap();
    tcp.set_read_timeout(Some(within)).unwrap();
    let mut stream = rustls::StreamOwned::new(conn, tcp);
    let start = Instant::now();
    // A refused write means the server already closed: read what it said.
    let _ = stream.write_all(bytes);
    let mut out = Vec::new();
    let _ = stream.read_to_end(&mut out);
    (String::from_utf8_lossy(&out).into_owned(), start.elapsed())
}

#[test]
fn every_route_needs_a_credential_and_tenants_come_from_it() {
    let dir = tempfile::tempdir().unwrap();
    // The agent scrapes its own /metrics over TLS: with the admin token, and with a wrong one.
    let s = Secure::start(
        dir.path(),
        r#"
[[agent.scrape]]
job = "self"
targets = ["{agent_http}"]
interval_ms = 500
timeout_ms = 500
scheme = "https"
tenant = "acme"
bearer_token = "token-ops"
tls = { ca = "{ca}", server_name = "localhost" }

[[agent.scrape]]
job = "wrong-token"
targets = ["{agent_http}"]
interval_ms = 500
timeout_ms = 500
scheme = "https"
tenant = "acme"
bearer_token = "nope"
tls = { ca = "{ca}" }
"#,
    );
    let acme = "Bearer token-acme";
    let beta = "Bearer token-beta";
    let grafana = basic("grafana", "grafana-pw");
    let t0 = now_nanos();
    let json_ct = ("content-type", "application/json");
    let traces = format!("{}/v1/traces", s.otlp);

    // Writes: none, a wrong token, a spoofed tenant, a read-only credential.
    let body = spans(TRACE_ACME, "shop", t0);
    let (st, msg, challenges) = s.call("POST", &traces, &[json_ct], Some(body.as_bytes()));
    assert_eq!(st, 401, "{msg}");
    assert!(
        challenges.iter().any(|c| c.starts_with("Bearer")),
        "{challenges:?}"
    );
    assert!(
        challenges.iter().any(|c| c.starts_with("Basic")),
        "{challenges:?}"
    );
    let m: Value = serde_json::from_str(&msg).unwrap();
    assert_eq!(m["code"], json!(16), "{msg}");
    let (st, _, _) = s.call(
        "POST",
        &traces,
        &[json_ct, ("authorization", "Bearer wrong")],
        Some(body.as_bytes()),
    );
    assert_eq!(st, 401);
    let (st, msg, _) = s.call(
        "POST",
        &traces,
        &[json_ct, ("authorization", acme), ("x-scope-orgid", "beta")],
        Some(body.as_bytes()),
    );
    assert_eq!(st, 403, "{msg}");
    assert!(msg.contains("may not use tenant"), "{msg}");
    let (st, _, _) = s.call(
        "POST",
        &traces,
        &[json_ct, ("authorization", grafana.as_str())],
        Some(body.as_bytes()),
    );
    assert_eq!(st, 403);
    let (st, _, _) = s.call(
        "POST",
        &format!("{}/api/v1/write", s.otlp),
        &[("content-type", "application/x-protobuf")],
        Some(b"x"),
    );
    assert_eq!(st, 401);

    // Accepted writes, each into its credential's tenant.
    let (st, msg, _) = s.call(
        "POST",
        &traces,
        &[json_ct, ("authorization", acme)],
        Some(body.as_bytes()),
    );
    assert_eq!(st, 200, "{msg}");
    let other = spans(TRACE_BETA, "shop", t0);
    let (st, _, _) = s.call(
        "POST",
        &traces,
        &[json_ct, ("authorization", beta), ("x-scope-orgid", "beta")],
        Some(other.as_bytes()),
    );
    assert_eq!(st, 200);
    let line = logs("shop", "acme secret line", t0);
    let (st, _, _) = s.call(
        "POST",
        &format!("{}/v1/logs", s.otlp),
        &[json_ct, ("authorization", acme)],
        Some(line.as_bytes()),
    );
    assert_eq!(st, 200);
    eventually(Duration::from_secs(30), "acme's trace stored", || {
        s.sql_count(
            acme,
            &format!("SELECT count(*) FROM spans WHERE trace_id = '{TRACE_ACME}'"),
        ) == json!(1)
            && s.sql_count(acme, "SELECT count(*) FROM logs") == json!(1)
    });
    eventually(Duration::from_secs(30), "beta's trace stored", || {
        s.sql_count(
            beta,
            &format!("SELECT count(*) FROM spans WHERE trace_id = '{TRACE_BETA}'"),
        ) == json!(1)
    });
    // Each tenant sees its own rows only.
    assert_eq!(s.sql_count(beta, "SELECT count(*) FROM spans"), json!(1));
    assert_eq!(s.sql_count(beta, "SELECT count(*) FROM logs"), json!(0));
    assert_eq!(
        s.sql_count(&grafana, "SELECT count(*) FROM spans"),
        json!(1)
    );

    // Every read route: 401 without a credential, 403 for another tenant's, nothing of acme
    // for beta's own, the data for acme's reader.
    let secs = t0 / 1_000_000_000;
    let range = format!("start={}&end={}", secs - 600, secs + 600);
    let reads = [
        ("GET", format!("/api/traces/{TRACE_ACME}"), None),
        ("GET", format!("/api/v2/traces/{TRACE_ACME}"), None),
        ("GET", format!("/jaeger/api/traces/{TRACE_ACME}"), None),
        ("GET", format!("/api/search?tags=&{range}"), None),
        (
            "GET",
            format!("/api/v1/query?query={}", enc("count(up)")),
            None,
        ),
        (
            "GET",
            format!(
                "/loki/api/v1/query_range?query={}&{range}",
                enc(r#"{service_name="shop"}"#)
            ),
            None,
        ),
        (
            "POST",
            "/api/v1/sql".to_string(),
            Some(json!({"query": "SELECT count(*) FROM spans"}).to_string()),
        ),
        ("GET", "/".to_string(), None),
        ("GET", "/ui/app.js".to_string(), None),
    ];
    for (method, path, body) in &reads {
        let url = format!("{}{path}", s.query);
        let b = body.as_ref().map(|b| b.as_bytes());
        let (st, msg, challenges) = s.call(method, &url, &[json_ct], b);
        assert_eq!(st, 401, "{path}: {msg}");
        assert!(!challenges.is_empty(), "{path}");
        let (st, msg, _) = s.call(
            method,
            &url,
            &[json_ct, ("authorization", beta), ("x-scope-orgid", "acme")],
            b,
        );
        assert_eq!(st, 403, "{path}: {msg}");
        let (st, _, _) = s.call(
            method,
            &url,
            &[json_ct, ("authorization", grafana.as_str())],
            b,
        );
        assert_eq!(st, 200, "{path}");
    }
    // Trace lookups by id: found for acme's reader, not for beta.
    for path in [
        format!("/api/traces/{TRACE_ACME}"),
        format!("/jaeger/api/traces/{TRACE_ACME}"),
    ] {
        let url = format!("{}{path}", s.query);
        let (st, _, _) = s.call("GET", &url, &[("authorization", beta)], None);
        assert_eq!(st, 404, "{path}");
    }
    let loki = format!(
        "{}/loki/api/v1/query_range?query={}&{range}",
        s.query,
        enc(r#"{service_name="shop"}"#)
    );
    let (_, mine, _) = s.call("GET", &loki, &[("authorization", grafana.as_str())], None);
    assert!(mine.contains("acme secret line"), "{mine}");
    let (_, theirs, _) = s.call("GET", &loki, &[("authorization", beta)], None);
    assert!(!theirs.contains("acme secret line"), "{theirs}");

    // The scrape with the admin token over TLS got the agent's metrics; the wrong token got a
    // 401, so its target is down.
    let up = |job: &str| {
        let q = format!(
            "{}/api/v1/query?query={}",
            s.query,
            enc(&format!("up{{job=\"{job}\"}}"))
        );
        let (_, body, _) = s.call("GET", &q, &[("authorization", grafana.as_str())], None);
        serde_json::from_str::<Value>(&body).unwrap()["data"]["result"][0]["value"][1].clone()
    };
    eventually(Duration::from_secs(30), "both scrape jobs reported", || {
        up("self") == json!("1") && up("wrong-token") == json!("0")
    });
    let q = format!(
        "{}/api/v1/query?query={}",
        s.query,
        enc("strata_agent_otlp_requests_total{job=\"self\"}")
    );
    let (_, body, _) = s.call("GET", &q, &[("authorization", grafana.as_str())], None);
    assert!(body.contains("\"job\":\"self\""), "{body}");

    // Admin: /ready open, /metrics behind the admin scope.
    let (st, _, _) = s.call("GET", &format!("{}/metrics", s.otlp), &[], None);
    assert_eq!(st, 401);
    let (st, _, _) = s.call(
        "GET",
        &format!("{}/metrics", s.otlp),
        &[("authorization", acme)],
        None,
    );
    assert_eq!(st, 403);

    // Plain text on TLS ports: a clean refusal, the process keeps serving.
    for base in [&s.otlp, &s.query, &s.collector] {
        let plain = base.replace("https://", "http://");
        match ureq::get(&format!("{plain}/ready"))
            .timeout(Duration::from_secs(10))
            .call()
        {
            Err(ureq::Error::Status(400, r)) => {
                assert!(r.into_string().unwrap().contains("speaks TLS"))
            }
            other => panic!("plain text on {base}: {other:?}"),
        }
    }
    let plain_grpc = TcpStream::connect(("127.0.0.1", s.grpc)).and_then(|mut t| {
        t.write_all(b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n")?;
        let mut out = Vec::new();
        t.set_read_timeout(Some(Duration::from_secs(10)))?;
        t.read_to_end(&mut out)?;
        Ok(out)
    });
    // HTTP/2 in plain text: its preface reads as an HTTP/1 request line, and gets the same
    // one-line refusal; no HTTP/2 frame comes back.
    let out = String::from_utf8(plain_grpc.unwrap()).unwrap();
    assert!(out.is_empty() || out.starts_with("HTTP/1.1 400"), "{out}");

    // Slow and oversized request headers are bounded.
    let port: u16 = s.query.rsplit(':').next().unwrap().parse().unwrap();
    let (said, took) = raw_tls(
        port,
        &s.pki.ca,
        b"GET /ready HTTP/1.1\r\nhost: x\r\n",
        Duration::from_secs(30),
    );
    assert!(
        took < Duration::from_secs(25),
        "slow headers held {took:?}: {said}"
    );
    let huge = format!(
        "GET /ready HTTP/1.1\r\nhost: x\r\nx-big: {}\r\n\r\n",
        "a".repeat(200 * 1024)
    );
    let (said, _) = raw_tls(port, &s.pki.ca, huge.as_bytes(), Duration::from_secs(30));
    assert!(!said.starts_with("HTTP/1.1 200"), "{said}");

    // Everything above was counted.
    let (st, metrics, _) = s.call(
        "GET",
        &format!("{}/metrics", s.otlp),
        &[("authorization", "Bearer token-ops")],
        None,
    );
    assert_eq!(st, 200);
    for needle in [
        "strata_agent_tls_handshakes_total{listener=\"OTLP/HTTP\",outcome=\"not_tls\"} 1",
        "strata_agent_auth_refusals_total{reason=\"missing\"}",
        "strata_agent_auth_refusals_total{reason=\"invalid\"}",
        "strata_agent_auth_refusals_total{reason=\"tenant\"}",
        "strata_agent_auth_refusals_total{reason=\"scope\"}",
    ] {
        assert!(metrics.contains(needle), "{needle} not in\n{metrics}");
    }
    let (_, query_metrics, _) = s.call(
        "GET",
        &format!("{}/metrics", s.query),
        &[("authorization", "Bearer token-ops")],
        None,
    );
    assert!(
        query_metrics.contains("strata_query_auth_refusals_total{reason=\"tenant\"}"),
        "{query_metrics}"
    );
    assert!(s.proc.log_text().contains("auth on"));
}

/// A Prometheus server, killed on drop.
struct Prometheus(Child);

impl Drop for Prometheus {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

#[test]
fn real_clients_send_over_tls_with_their_credentials() {
    let python = python();
    let prometheus_bin = match std::env::var_os("STRATA_TEST_PROMETHEUS") {
        Some(p) => Some(PathBuf::from(p)),
        None => {
            assert!(
                std::env::var("STRATA_REQUIRE_PROMETHEUS").as_deref() != Ok("1"),
                "STRATA_REQUIRE_PROMETHEUS=1 but STRATA_TEST_PROMETHEUS is not set"
            );
            None
        }
    };
    let (Some(python), Some(prometheus_bin)) = (python, prometheus_bin) else {
        eprintln!("skipped: needs the interop venv and Prometheus (run scripts/test)");
        return;
    };
    let dir = tempfile::tempdir().unwrap();
    let s = Secure::start(dir.path(), "");
    let acme = "Bearer token-acme";

    // The OpenTelemetry Python SDK, configured the SDK's way: CA and headers from the
    // standard environment variables.
    let out = dir.path().join("sent.json");
    let status = Command::new(&python)
        .arg(Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/python/send_otlp.py"))
        .args([
            "--tls",
            "--grpc",
            &format!("127.0.0.1:{}", s.grpc),
            "--http",
            &s.otlp,
            "--traces",
            "5",
            "--logs",
            "10",
            "--out",
            out.to_str().unwrap(),
        ])
        .env("OTEL_EXPORTER_OTLP_CERTIFICATE", &s.pki.ca)
        .env(
            "OTEL_EXPORTER_OTLP_HEADERS",
            "authorization=Bearer%20token-acme",
        )
        // requests lets these override the exporter's own CA file.
        .env_remove("REQUESTS_CA_BUNDLE")
        .env_remove("CURL_CA_BUNDLE")
        .status()
        .unwrap();
    assert!(status.success());
    let sent: Value = serde_json::from_str(&std::fs::read_to_string(&out).unwrap()).unwrap();
    let spans_sent: usize = sent["traces"]
        .as_array()
        .unwrap()
        .iter()
        .map(|t| t["spans"].as_array().unwrap().len())
        .sum();
    eventually(
        Duration::from_secs(60),
        "the SDK's spans, logs and metrics",
        || {
            s.sql_count(acme, "SELECT count(*) FROM spans") == json!(spans_sent)
                && s.sql_count(acme, "SELECT count(*) FROM logs") == json!(10)
                && s.sql_count(
                    acme,
                    "SELECT count(*) FROM metrics WHERE metric_name = 'orders'",
                ) != json!(0)
        },
    );
    // Both protocols carried spans (frontend over gRPC, checkout over HTTP).
    assert_eq!(
        s.sql_count(
            acme,
            "SELECT count(DISTINCT service_name) FROM spans WHERE service_name IN ('frontend', 'checkout')"
        ),
        json!(2)
    );
    // Nothing of it in another tenant.
    assert_eq!(
        s.sql_count("Bearer token-beta", "SELECT count(*) FROM spans"),
        json!(0)
    );

    // Prometheus remote-writes its own metrics over TLS with basic auth.
    let config = dir.path().join("prometheus.yml");
    let prom_port = free_port();
    std::fs::write(
        &config,
        format!(
            "global:\n  scrape_interval: 1s\n\
             scrape_configs:\n  - job_name: self\n    static_configs:\n      - targets: ['127.0.0.1:{prom_port}']\n\
             remote_write:\n  - url: {otlp}/api/v1/write\n    basic_auth:\n      username: prometheus\n      password: prom-pw\n    \
             tls_config:\n      ca_file: {ca}\n    queue_config:\n      batch_send_deadline: 1s\n",
            otlp = s.otlp,
            ca = s.pki.ca.display()
        ),
    )
    .unwrap();
    let log = std::fs::File::create(dir.path().join("prometheus.log")).unwrap();
    let _prometheus = Prometheus(
        Command::new(&prometheus_bin)
            .arg(format!("--config.file={}", config.display()))
            .arg(format!(
                "--storage.tsdb.path={}",
                dir.path().join("tsdb").display()
            ))
            .arg(format!("--web.listen-address=127.0.0.1:{prom_port}"))
            .arg("--log.level=warn")
            .stdin(Stdio::null())
            .stdout(log.try_clone().unwrap())
            .stderr(log)
            .spawn()
            .expect("start prometheus"),
    );
    let grafana = basic("grafana", "grafana-pw");
    eventually(
        Duration::from_secs(90),
        "Prometheus's remote-written samples",
        || {
            let (st, body, _) = s.call(
                "GET",
                &format!("{}/api/v1/query?query={}", s.query, enc("up{job=\"self\"}")),
                &[("authorization", grafana.as_str())],
                None,
            );
            st == 200 && body.contains("\"job\":\"self\"")
        },
    );
    // The same samples are not in another tenant.
    let (_, theirs, _) = s.call(
        "GET",
        &format!("{}/api/v1/query?query={}", s.query, enc("up{job=\"self\"}")),
        &[("authorization", "Bearer token-beta")],
        None,
    );
    assert!(!theirs.contains("\"job\":\"self\""), "{theirs}");
}
