//! Helpers for end-to-end tests: spawning the real `strata` binary in its roles on loopback,
//! waiting for readiness, HTTP calls, and the Python interpreter of the interop venv.
//!
//! Every wait is bounded; every spawned process is stopped when its handle drops.

#![allow(dead_code)]

pub mod file_source;

use std::net::TcpListener;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

/// A running `strata` process; SIGKILLed on drop unless stopped first.
pub struct Proc {
    pub name: String,
    child: Option<Child>,
    pub log: PathBuf,
}

impl Proc {
    /// Sends SIGTERM and waits (bounded) for a clean exit; returns whether it exited with 0.
    pub fn terminate(&mut self, within: Duration) -> bool {
        let Some(mut child) = self.child.take() else {
            return false;
        };
        let _ = Command::new("kill")
            .args(["-TERM", &child.id().to_string()])
            .status();
        let deadline = Instant::now() + within;
        while Instant::now() < deadline {
            if let Ok(Some(status)) = child.try_wait() {
                return status.success();
            }
            std::thread::sleep(Duration::from_millis(50));
        }
        let _ = child.kill();
        let _ = child.wait();
        false
    }

    /// SIGKILL, as a crash: no shutdown code runs.
    pub fn kill9(&mut self) {
        if let Some(mut c) = self.child.take() {
            let _ = c.kill();
            let _ = c.wait();
        }
    }

    pub fn pid(&self) -> Option<u32> {
        self.child.as_ref().map(Child::id)
    }

    /// Sends a signal by name (`STOP`, `CONT`, ...).
    pub fn signal(&self, name: &str) {
        if let Some(pid) = self.pid() {
            let _ = Command::new("kill")
                .args([&format!("-{name}"), &pid.to_string()])
                .status();
        }
    }

    /// Resident set size in bytes, from `/proc` (0 where unavailable).
    pub fn rss_bytes(&self) -> u64 {
        let Some(pid) = self.pid() else { return 0 };
        std::fs::read_to_string(format!("/proc/{pid}/status"))
            .ok()
            .and_then(|s| {
                s.lines()
                    .find(|l| l.starts_with("VmRSS:"))
                    .and_then(|l| l.split_whitespace().nth(1)?.parse::<u64>().ok())
            })
            .map_or(0, |kib| kib * 1024)
    }

    pub fn is_running(&mut self) -> bool {
        self.child
            .as_mut()
            .is_some_and(|c| matches!(c.try_wait(), Ok(None)))
    }

    pub fn log_text(&self) -> String {
        std::fs::read_to_string(&self.log).unwrap_or_default()
    }
}

impl Drop for Proc {
    fn drop(&mut self) {
        if let Some(mut c) = self.child.take() {
            let _ = c.kill();
            let _ = c.wait();
        }
    }
}

/// Spawns `strata <args>` with `envs`, logging to `dir/<name>.log`.
/// Starts `program` with `args` in the background, its output in `dir/<name>.log`; killed
/// when the returned [`Proc`] is dropped.
pub fn spawn(name: &str, dir: &Path, program: &Path, args: &[&str]) -> Proc {
    let log = dir.join(format!("{name}.log"));
    let file = std::fs::File::create(&log).expect("log file");
    let child = Command::new(program)
        .args(args)
        .stdin(Stdio::null())
        .stdout(file.try_clone().expect("log file"))
        .stderr(file)
        .spawn()
        .unwrap_or_else(|e| panic!("spawn {}: {e}", program.display()));
    Proc {
        name: name.to_string(),
        child: Some(child),
        log,
    }
}

pub fn strata(name: &str, dir: &Path, args: &[&str], envs: &[(&str, &str)]) -> Proc {
    let log = dir.join(format!("{name}.log"));
    let file = std::fs::File::create(&log).expect("log file");
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_strata"));
    cmd.args(args)
        .env("RUST_LOG", "info,strata_agent=debug,strata_collector=debug")
        .stdin(Stdio::null())
        .stdout(file.try_clone().expect("log file"))
        .stderr(file);
    for (k, v) in envs {
        cmd.env(k, v);
    }
    let child = cmd.spawn().expect("spawn strata");
    Proc {
        name: name.to_string(),
        child: Some(child),
        log,
    }
}

/// A `strata standalone` on free loopback ports, ready to serve.
pub struct Standalone {
    pub proc: Proc,
    /// Base URL of the query API.
    pub query: String,
    /// Base URL of the agent's OTLP/HTTP listener (also Prometheus remote write).
    pub agent_http: String,
    /// Base URL of the collector's HTTP listener.
    pub collector_http: String,
    /// `host:port` of the PostgreSQL listener (bound on port 0, read from the log).
    pub pg: String,
    /// `host:port` of the Flight SQL listener (bound on port 0, read from the log).
    pub flight_sql: String,
}

/// Starts `strata standalone` in `dir`, with an optional configuration file text (where
/// `{agent_http}` stands for the agent's OTLP/HTTP address) and environment overrides (the
/// collector flushes after 200 ms unless `envs` says otherwise).
pub fn standalone(
    dir: &Path,
    name: &str,
    config: Option<&str>,
    envs: &[(&str, &str)],
) -> Standalone {
    standalone_with(dir, name, config, envs, &[])
}

/// [`standalone`] with more `standalone` flags (`--storage s3://...`).
pub fn standalone_with(
    dir: &Path,
    name: &str,
    config: Option<&str>,
    envs: &[(&str, &str)],
    flags: &[&str],
) -> Standalone {
    let config_path = dir.join(format!("{name}.toml"));
    let [grpc, http, query, flight, chttp] = free_ports();
    let mut args: Vec<String> = Vec::new();
    if let Some(text) = config {
        let text = text.replace("{agent_http}", &format!("127.0.0.1:{http}"));
        std::fs::write(&config_path, text).expect("config");
        args.extend(["--config".into(), config_path.display().to_string()]);
    }
    args.extend([
        "standalone".into(),
        "--data-dir".into(),
        dir.join("data").display().to_string(),
    ]);
    args.extend(flags.iter().map(|f| f.to_string()));
    for (flag, port) in [
        ("--otlp-grpc", grpc),
        ("--otlp-http", http),
        ("--http", query),
        ("--flight", flight),
        ("--collector-http", chttp),
    ] {
        args.extend([flag.to_string(), format!("127.0.0.1:{port}")]);
    }
    for flag in ["--pg", "--flight-sql"] {
        if !flags.contains(&flag) {
            args.extend([flag.into(), "127.0.0.1:0".into()]);
        }
    }
    let mut all_envs = vec![("STRATA_COLLECTOR__FLUSH_MAX_AGE_MS", "200")];
    all_envs.extend_from_slice(envs);
    let arg_refs: Vec<&str> = args.iter().map(String::as_str).collect();
    let mut proc = strata(name, dir, &arg_refs, &all_envs);
    let query = format!("http://127.0.0.1:{query}");
    let agent_http = format!("http://127.0.0.1:{http}");
    wait_ready(
        &format!("{query}/ready"),
        Duration::from_secs(30),
        &mut proc,
    );
    wait_ready(
        &format!("{agent_http}/ready"),
        Duration::from_secs(30),
        &mut proc,
    );
    let pg = logged_addr(&mut proc, "pg", Duration::from_secs(10)).unwrap_or_default();
    let flight_sql =
        logged_addr(&mut proc, "flight_sql", Duration::from_secs(10)).unwrap_or_default();
    Standalone {
        proc,
        query,
        agent_http,
        collector_http: format!("http://127.0.0.1:{chttp}"),
        pg,
        flight_sql,
    }
}

/// The address a process logged as `key=<addr>` on its "listening" line (a listener bound on
/// port 0 says there where it is); `None` if it says none within `within`.
pub fn logged_addr(proc: &mut Proc, key: &str, within: Duration) -> Option<String> {
    let deadline = std::time::Instant::now() + within;
    let needle = format!("{key}=");
    loop {
        let text = proc.log_text();
        for line in text.lines().filter(|l| l.contains("listening")) {
            // Drop ANSI colour codes.
            let mut plain = String::with_capacity(line.len());
            let mut chars = line.chars();
            while let Some(c) = chars.next() {
                if c == '\u{1b}' {
                    for c in chars.by_ref() {
                        if c == 'm' {
                            break;
                        }
                    }
                } else {
                    plain.push(c);
                }
            }
            if let Some(rest) = plain.split(&needle).nth(1) {
                let addr: String = rest.chars().take_while(|c| !c.is_whitespace()).collect();
                if !addr.is_empty() {
                    return Some(addr);
                }
            }
        }
        if std::time::Instant::now() > deadline || !proc.is_running() {
            return None;
        }
        std::thread::sleep(Duration::from_millis(100));
    }
}

/// Debian's rsyslogd with its Elasticsearch output (`rsyslog-elasticsearch`):
/// `STRATA_TEST_RSYSLOGD`, required when `STRATA_REQUIRE_INTEROP=1`.
pub fn rsyslogd() -> Option<PathBuf> {
    installed(
        "STRATA_TEST_RSYSLOGD",
        "STRATA_REQUIRE_INTEROP",
        "rsyslog-elasticsearch",
    )
}

/// Debian's psql: `STRATA_TEST_PSQL`, required when `STRATA_REQUIRE_INTEROP=1`.
pub fn psql() -> Option<PathBuf> {
    installed(
        "STRATA_TEST_PSQL",
        "STRATA_REQUIRE_INTEROP",
        "postgresql-client",
    )
}

/// The JDK's `java` and pgjdbc's jar (Debian's libpostgresql-jdbc-java): `STRATA_TEST_JAVA`
/// and `STRATA_TEST_PGJDBC`, required when `STRATA_REQUIRE_INTEROP=1`.
pub fn pgjdbc() -> Option<(PathBuf, PathBuf)> {
    let java = installed("STRATA_TEST_JAVA", "STRATA_REQUIRE_INTEROP", "a JDK")?;
    let jar = installed(
        "STRATA_TEST_PGJDBC",
        "STRATA_REQUIRE_INTEROP",
        "libpostgresql-jdbc-java",
    )?;
    Some((java, jar))
}

/// A port that was free a moment ago on 127.0.0.1.
pub fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .map(|a| a.port())
        .expect("free port")
}

/// `N` distinct free ports: every listener is held until all are bound, so one call never
/// hands out the same port twice (separate `free_port` calls can).
pub fn free_ports<const N: usize>() -> [u16; N] {
    let listeners: Vec<TcpListener> = (0..N)
        .map(|_| TcpListener::bind("127.0.0.1:0").expect("free port"))
        .collect();
    std::array::from_fn(|i| listeners[i].local_addr().expect("local addr").port())
}

/// Polls `GET url` until it answers 200, for at most `within`.
pub fn wait_ready(url: &str, within: Duration, proc: &mut Proc) {
    let deadline = Instant::now() + within;
    while Instant::now() < deadline {
        if let Ok(r) = ureq::get(url).timeout(Duration::from_secs(2)).call()
            && r.status() == 200
        {
            return;
        }
        assert!(
            proc.is_running(),
            "{} exited:\n{}",
            proc.name,
            proc.log_text()
        );
        std::thread::sleep(Duration::from_millis(100));
    }
    panic!("{url} not ready within {within:?}:\n{}", proc.log_text());
}

/// `POST` JSON; returns (status, body) whatever the status.
pub fn post_json(url: &str, body: &serde_json::Value, headers: &[(&str, &str)]) -> (u16, String) {
    let mut req = ureq::post(url).timeout(Duration::from_secs(30));
    for (k, v) in headers {
        req = req.set(k, v);
    }
    match req.send_json(body.clone()) {
        Ok(r) => (r.status(), r.into_string().unwrap_or_default()),
        Err(ureq::Error::Status(code, r)) => (code, r.into_string().unwrap_or_default()),
        Err(e) => panic!("POST {url}: {e}"),
    }
}

/// `POST` raw bytes with headers; returns (status, body) whatever the status.
pub fn post_bytes(url: &str, body: &[u8], headers: &[(&str, &str)]) -> (u16, String) {
    let mut req = ureq::post(url).timeout(Duration::from_secs(30));
    for (k, v) in headers {
        req = req.set(k, v);
    }
    match req.send_bytes(body) {
        Ok(r) => (r.status(), r.into_string().unwrap_or_default()),
        Err(ureq::Error::Status(code, r)) => (code, r.into_string().unwrap_or_default()),
        Err(e) => panic!("POST {url}: {e}"),
    }
}

/// `GET`; returns (status, body) whatever the status.
pub fn get(url: &str) -> (u16, String) {
    match ureq::get(url).timeout(Duration::from_secs(30)).call() {
        Ok(r) => (r.status(), r.into_string().unwrap_or_default()),
        Err(ureq::Error::Status(code, r)) => (code, r.into_string().unwrap_or_default()),
        Err(e) => panic!("GET {url}: {e}"),
    }
}

/// Runs SQL through the query API and returns the JSON answer (panics on non-200).
pub fn sql(base: &str, query: &str) -> serde_json::Value {
    let (status, body) = post_json(
        &format!("{base}/api/v1/sql"),
        &serde_json::json!({ "query": query }),
        &[],
    );
    assert_eq!(status, 200, "{query}: {body}");
    serde_json::from_str(&body).expect("SQL answer is JSON")
}

/// The single value of a one-row, one-column SQL answer.
pub fn sql_scalar(base: &str, query: &str) -> serde_json::Value {
    let v = sql(base, query);
    v["rows"][0][0].clone()
}

/// Polls `f` until it returns true, for at most `within`.
pub fn eventually(within: Duration, what: &str, mut f: impl FnMut() -> bool) {
    let deadline = Instant::now() + within;
    while Instant::now() < deadline {
        if f() {
            return;
        }
        std::thread::sleep(Duration::from_millis(200));
    }
    panic!("timed out after {within:?} waiting for {what}");
}

/// The venv Python with the OpenTelemetry SDK, pyarrow and DuckDB, set up by `scripts/test`.
/// `None` (the test is skipped, loudly) unless `STRATA_TEST_PYTHON` is set; when
/// `STRATA_REQUIRE_INTEROP=1` a missing interpreter fails the test instead.
pub fn python() -> Option<PathBuf> {
    installed(
        "STRATA_TEST_PYTHON",
        "STRATA_REQUIRE_INTEROP",
        "the interop venv",
    )
}

/// Debian's Chromium for the browser tests: `STRATA_TEST_CHROMIUM`, required when
/// `STRATA_REQUIRE_BROWSER=1`.
pub fn chromium() -> Option<PathBuf> {
    installed("STRATA_TEST_CHROMIUM", "STRATA_REQUIRE_BROWSER", "Chromium")
}

/// The program at `$var`, or `None` (the test is skipped, loudly); a missing program fails
/// the test when `$require` is `1`.
fn installed(var: &str, require: &str, what: &str) -> Option<PathBuf> {
    match std::env::var_os(var) {
        Some(p) if Path::new(&p).exists() => Some(PathBuf::from(p)),
        _ => {
            assert!(
                std::env::var(require).as_deref() != Ok("1"),
                "{require}=1 but {var} is not set to an existing program"
            );
            eprintln!("skipped: {var} is not set (run scripts/test to install {what})");
            None
        }
    }
}

/// Runs `tests/python/<script>` with `args`; returns stdout, panics with stderr on failure.
pub fn run_python(python: &Path, script: &str, args: &[&str]) -> String {
    let path = Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("tests/python")
        .join(script);
    succeeded(Command::new(python).arg(&path).args(args), script)
}

/// Runs `cmd`; returns its stdout, panics with its stderr when it fails.
pub fn succeeded(cmd: &mut Command, what: &str) -> String {
    let out = cmd.output().unwrap_or_else(|e| panic!("run {what}: {e}"));
    assert!(
        out.status.success(),
        "{what} failed:\n{}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8(out.stdout).expect("utf-8 output")
}

/// A collector process on loopback ports, restartable on the same addresses and data
/// directory (flush age 300 ms).
pub struct Collector {
    pub id: String,
    pub flight: String,
    pub http: String,
    pub data: PathBuf,
    pub proc: Option<Proc>,
    pub starts: usize,
}

impl Collector {
    pub fn new(dir: &Path, id: &str) -> Self {
        Collector {
            id: id.to_string(),
            flight: format!("127.0.0.1:{}", free_port()),
            http: format!("127.0.0.1:{}", free_port()),
            data: dir.join(id),
            proc: None,
            starts: 0,
        }
    }

    pub fn start(&mut self, dir: &Path, storage: &str) {
        self.starts += 1;
        let mut p = strata(
            &format!("{}-{}", self.id, self.starts),
            dir,
            &[
                "collector",
                "--id",
                &self.id,
                "--data-dir",
                self.data.to_str().unwrap(),
                "--storage",
                storage,
                "--flight",
                &self.flight,
                "--http",
                &self.http,
            ],
            &[("STRATA_COLLECTOR__FLUSH_MAX_AGE_MS", "300")],
        );
        wait_ready(
            &format!("http://{}/ready", self.http),
            Duration::from_secs(30),
            &mut p,
        );
        self.proc = Some(p);
    }

    pub fn metrics(&self) -> String {
        get(&format!("http://{}/metrics", self.http)).1
    }

    /// SIGKILL, as a crash.
    pub fn kill9(&mut self) {
        if let Some(mut p) = self.proc.take() {
            p.kill9();
        }
    }
}

/// Spans sent per request by [`spans_request`].
pub const SPANS_PER_REQUEST: u64 = 50;

/// An OTLP/JSON traces request of spans `first..first + SPANS_PER_REQUEST` of `service`: span
/// `i` has span id `i + 1` and trace id `i / 5 + 1`, so tests can count what arrived and what
/// arrived twice. `pad` adds 16-character attribute values per span that do not compress away,
/// to fill buffers quickly where wanted.
pub fn spans_request(first: u64, service: &str, pad: usize) -> serde_json::Value {
    let spans: Vec<serde_json::Value> = (first..first + SPANS_PER_REQUEST)
        .map(|i| {
            let mut span = serde_json::json!({
                "traceId": format!("{:032x}", i / 5 + 1),
                "spanId": format!("{:016x}", i + 1),
                "name": "op",
                "startTimeUnixNano": (1_700_000_000_000_000_000u64 + i).to_string(),
                "endTimeUnixNano": (1_700_000_000_000_000_000u64 + i + 10).to_string(),
            });
            if pad > 0 {
                let noise: String = (0..pad)
                    .map(|k| {
                        format!(
                            "{:016x}",
                            (i * 1_000_003 + k as u64).wrapping_mul(0x9e37_79b9_7f4a_7c15)
                        )
                    })
                    .collect();
                span["attributes"] =
                    serde_json::json!([{"key": "noise", "value": {"stringValue": noise}}]);
            }
            span
        })
        .collect();
    serde_json::json!({"resourceSpans": [{
        "resource": {"attributes": [{"key": "service.name", "value": {"stringValue": service}}]},
        "scopeSpans": [{"spans": spans}]}]})
}

/// A moto S3 server (from the interop venv) on a loopback port, with one bucket; killed on
/// drop. `None` (the test is skipped, loudly) without the venv; required when
/// `STRATA_REQUIRE_INTEROP=1`.
pub struct S3Server {
    child: Child,
    /// `http://127.0.0.1:<port>`.
    pub endpoint: String,
    pub bucket: String,
}

impl S3Server {
    pub fn start(dir: &Path) -> Option<Self> {
        let python = python()?;
        let server = python.with_file_name("moto_server");
        assert!(
            server.exists(),
            "{} is missing: run scripts/test",
            server.display()
        );
        let log = dir.join("moto.log");
        let file = std::fs::File::create(&log).expect("moto log");
        // Port 0: moto binds a free port and prints it.
        let child = Command::new(&server)
            .args(["-H", "127.0.0.1", "-p", "0"])
            .stdin(Stdio::null())
            .stdout(file.try_clone().expect("moto log"))
            .stderr(file)
            .spawn()
            .expect("spawn moto_server");
        let mut s3 = Self {
            child,
            endpoint: String::new(),
            bucket: "strata-test".into(),
        };
        let deadline = Instant::now() + Duration::from_secs(30);
        while s3.endpoint.is_empty() {
            assert!(
                Instant::now() < deadline,
                "moto_server did not start: {}",
                std::fs::read_to_string(&log).unwrap_or_default()
            );
            let text = std::fs::read_to_string(&log).unwrap_or_default();
            if let Some(at) = text.find("Running on http://127.0.0.1:") {
                let rest = &text[at + "Running on ".len()..];
                let end = rest
                    .find(|c: char| !(c.is_ascii_alphanumeric() || ":/.".contains(c)))
                    .unwrap_or(rest.len());
                s3.endpoint = rest[..end].to_string();
            } else {
                std::thread::sleep(Duration::from_millis(50));
            }
        }
        let script = format!(
            "import boto3\nboto3.client('s3', endpoint_url='{}', region_name='us-east-1', \
             aws_access_key_id='test', aws_secret_access_key='test').create_bucket(Bucket='{}')",
            s3.endpoint, s3.bucket
        );
        let out = Command::new(&python)
            .args(["-c", &script])
            .output()
            .expect("run python");
        assert!(
            out.status.success(),
            "create bucket: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        Some(s3)
    }

    /// `STRATA_<ROLE>__S3__*` settings for a role's configuration.
    pub fn envs(&self, role: &str) -> Vec<(String, String)> {
        let upper = role.to_ascii_uppercase();
        [
            ("ENDPOINT", self.endpoint.as_str()),
            ("REGION", "us-east-1"),
            ("ACCESS_KEY_ID", "test"),
            ("SECRET_ACCESS_KEY", "test"),
            ("PATH_STYLE", "true"),
        ]
        .iter()
        .map(|(k, v)| (format!("STRATA_{upper}__S3__{k}"), v.to_string()))
        .collect()
    }

    /// The same settings for [`strata_storage::Storage::open`].
    pub fn options(&self) -> strata_storage::S3Options {
        strata_storage::S3Options {
            endpoint: Some(self.endpoint.clone()),
            region: Some("us-east-1".into()),
            access_key_id: Some("test".into()),
            secret_access_key: Some("test".into()),
            path_style: Some(true),
            ..Default::default()
        }
    }
}

impl Drop for S3Server {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}
