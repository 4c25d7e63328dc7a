//! The SQL protocols of `strata standalone` besides HTTP, driven by real clients:
//! - PostgreSQL: Debian's psql (`\dt`, `\d spans`, queries over spans, logs and metrics with
//!   the HTTP route's answers, a refused statement and the session going on), psycopg 3,
//!   SQLAlchemy and pandas (`tests/python/pg_clients.py`), pgjdbc (`tests/java/PgJdbc.java`,
//!   what JDBC tools send), `SHOW` of the usual settings, and password logins against an
//!   auth file;
//! - Flight SQL: ADBC's driver (`tests/python/flight_sql_clients.py`), with and without auth.

mod common;

use std::path::Path;
use std::process::Command;
use std::time::Duration;

use common::*;
use serde_json::{Value, json};

/// Runs psql with `args` against `pg` (`host:port`); returns (exit ok, stdout, stderr).
fn run_psql(
    psql: &Path,
    pg: &str,
    user: &str,
    password: Option<&str>,
    args: &[&str],
) -> (bool, String, String) {
    let (host, port) = pg.rsplit_once(':').expect("host:port");
    let mut cmd = Command::new(psql);
    cmd.args(["-X", "-h", host, "-p", port, "-U", user, "-d", "strata"])
        .args(args)
        .env("PGCONNECT_TIMEOUT", "10")
        .env_remove("PGPASSWORD");
    match password {
        Some(p) => cmd.env("PGPASSWORD", p),
        None => cmd.arg("-w"),
    };
    let out = cmd.output().expect("run psql");
    (
        out.status.success(),
        String::from_utf8_lossy(&out.stdout).into_owned(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

/// One value per line of psql's unaligned, tuples-only output of `sql`.
fn psql_rows(psql: &Path, pg: &str, sql: &str) -> Vec<String> {
    let (ok, out, err) = run_psql(
        psql,
        pg,
        "default",
        None,
        &["-A", "-t", "-F", "|", "-c", sql],
    );
    assert!(ok, "psql -c {sql:?} failed: {err}");
    out.lines().map(str::to_string).collect()
}

/// The same rows from the HTTP route, as psql prints them (`a|b`).
fn http_rows(base: &str, sql: &str) -> Vec<String> {
    let v = common::sql(base, sql);
    v["rows"]
        .as_array()
        .expect("rows")
        .iter()
        .map(|r| {
            r.as_array()
                .unwrap()
                .iter()
                .map(|c| match c {
                    Value::String(s) => s.clone(),
                    Value::Null => String::new(),
                    other => other.to_string(),
                })
                .collect::<Vec<_>>()
                .join("|")
        })
        .collect()
}

fn logs_request(service: &str, n: usize) -> Value {
    let records: Vec<Value> = (0..n)
        .map(|i| {
            json!({
                "timeUnixNano": (1_700_000_000_000_000_000u64 + i as u64).to_string(),
                "severityText": if i % 3 == 0 { "ERROR" } else { "INFO" },
                "severityNumber": if i % 3 == 0 { 17 } else { 9 },
                "body": {"stringValue": format!("line {i}")},
            })
        })
        .collect();
    json!({"resourceLogs": [{
        "resource": {"attributes": [{"key": "service.name", "value": {"stringValue": service}}]},
        "scopeLogs": [{"logRecords": records}]}]})
}

fn metrics_request(service: &str, n: usize) -> Value {
    let points: Vec<Value> = (0..n)
        .map(|i| {
            json!({
                "timeUnixNano": (1_700_000_000_000_000_000u64 + i as u64 * 1_000_000_000).to_string(),
                "asDouble": i as f64 * 1.5,
            })
        })
        .collect();
    json!({"resourceMetrics": [{
        "resource": {"attributes": [{"key": "service.name", "value": {"stringValue": service}}]},
        "scopeMetrics": [{"metrics": [{"name": "queue_depth", "gauge": {"dataPoints": points}}]}]}]})
}

/// Sends spans, logs and metrics of service `checkout`; returns the span count.
fn ingest(s: &Standalone) -> u64 {
    let mut spans = 0;
    for first in [0, 1000] {
        let body = spans_request(first, "checkout", 0);
        spans += body["resourceSpans"][0]["scopeSpans"][0]["spans"]
            .as_array()
            .unwrap()
            .len() as u64;
        let (status, text) = post_json(&format!("{}/v1/traces", s.agent_http), &body, &[]);
        assert_eq!(status, 200, "{text}");
    }
    let (status, text) = post_json(
        &format!("{}/v1/logs", s.agent_http),
        &logs_request("checkout", 30),
        &[],
    );
    assert_eq!(status, 200, "{text}");
    let (status, text) = post_json(
        &format!("{}/v1/metrics", s.agent_http),
        &metrics_request("checkout", 20),
        &[],
    );
    assert_eq!(status, 200, "{text}");
    eventually(
        Duration::from_secs(30),
        "spans, logs and metrics stored",
        || {
            sql_scalar(&s.query, "SELECT count(*) FROM spans") == json!(spans)
                && sql_scalar(&s.query, "SELECT count(*) FROM logs") == json!(30)
                && sql_scalar(&s.query, "SELECT count(*) FROM metrics") == json!(20)
        },
    );
    spans
}

#[test]
fn psql_and_python_clients_query_what_http_answers() {
    let Some(psql) = psql() else { return };
    let dir = tempfile::tempdir().unwrap();
    let s = standalone(dir.path(), "pg", None, &[]);
    assert!(
        !s.pg.is_empty(),
        "the PostgreSQL listener's address is logged"
    );
    let spans = ingest(&s);

    // psql's catalog commands.
    let (ok, out, err) = run_psql(&psql, &s.pg, "default", None, &["-c", "\\dt"]);
    assert!(ok, "\\dt failed: {err}");
    for table in ["spans", "logs", "metrics"] {
        assert!(out.contains(table), "\\dt lists {table}:\n{out}");
    }
    let (ok, out, err) = run_psql(&psql, &s.pg, "default", None, &["-c", "\\d spans"]);
    assert!(ok, "\\d spans failed: {err}");
    for column in [
        "trace_id",
        "start_time",
        "timestamp with time zone",
        "service_name",
    ] {
        assert!(out.contains(column), "\\d spans shows {column}:\n{out}");
    }

    // The settings clients ask for, as PostgreSQL answers them; an unknown one is 42704.
    for (show, value) in [
        ("SHOW server_version", "16.6"),
        ("SHOW server_encoding", "UTF8"),
        ("SHOW client_encoding", "UTF8"),
        ("SHOW standard_conforming_strings", "on"),
        ("SHOW integer_datetimes", "on"),
        ("SHOW DateStyle", "ISO, MDY"),
        ("SHOW TIME ZONE", "UTC"),
        ("SHOW search_path", "public"),
        ("SHOW transaction_isolation", "read committed"),
        ("SHOW TRANSACTION ISOLATION LEVEL", "read committed"),
        ("SHOW max_identifier_length", "63"),
        ("SHOW statement_timeout", "0"),
    ] {
        assert_eq!(psql_rows(&psql, &s.pg, show), [value], "{show}");
    }
    let (ok, out, err) = run_psql(
        &psql,
        &s.pg,
        "default",
        None,
        &[
            "-q",
            "-A",
            "-t",
            "-v",
            "ON_ERROR_STOP=1",
            "-c",
            "SET TimeZone = 'Europe/Paris'",
            "-c",
            "SHOW TIME ZONE",
            "-c",
            "SELECT current_setting('timezone')",
            "-c",
            "SET TimeZone = 'Mars/Olympus'",
        ],
    );
    assert_eq!(
        out.lines().collect::<Vec<_>>(),
        ["Europe/Paris", "Europe/Paris"],
        "{err}"
    );
    assert!(!ok && err.contains("invalid value for parameter"), "{err}");
    let (ok, _, err) = run_psql(&psql, &s.pg, "default", None, &["-c", "SHOW no_such_thing"]);
    assert!(
        !ok && err.contains("unrecognized configuration parameter"),
        "{err}"
    );
    let (ok, out, err) = run_psql(&psql, &s.pg, "default", None, &["-A", "-c", "SHOW ALL"]);
    assert!(
        ok && out.contains("server_version|16.6|"),
        "SHOW ALL: {out}{err}"
    );
    // Headers: unaliased expressions are named as PostgreSQL names them.
    let (ok, out, err) = run_psql(
        &psql,
        &s.pg,
        "default",
        None,
        &[
            "-A",
            "-c",
            "SELECT service_name, count(*), 1 + 1, max(duration_nanos) AS longest FROM spans GROUP BY 1",
        ],
    );
    assert!(ok, "{err}");
    assert_eq!(
        out.lines().next(),
        Some("service_name|count|?column?|longest"),
        "{out}"
    );

    // The same questions over each table, the same answers as HTTP.
    for q in [
        "SELECT service_name, count(*), min(start_time) FROM spans GROUP BY service_name ORDER BY 1",
        "SELECT trace_id, span_id, name, duration_nanos FROM spans ORDER BY span_id LIMIT 5",
        "SELECT severity_text, count(*) FROM logs GROUP BY severity_text ORDER BY 1",
        "SELECT metric_name, count(*), sum(value_double) FROM metrics GROUP BY metric_name ORDER BY 1",
        "SELECT date_bin(INTERVAL '1 minute', start_time) AS t, count(*) FROM spans GROUP BY 1 ORDER BY 1",
    ] {
        let wire = psql_rows(&psql, &s.pg, q);
        let http = http_rows(&s.query, q);
        assert!(!http.is_empty(), "{q} has rows");
        assert_eq!(wire.len(), http.len(), "{q}: {wire:?} vs {http:?}");
        // Timestamps print differently (psql: `2023-11-14 22:13:20+00`); compare the rest.
        if !q.contains("start_time") {
            assert_eq!(wire, http, "{q}");
        }
    }

    // A refused statement is an SQLSTATE error and the session goes on.
    let script = dir.path().join("script.sql");
    std::fs::write(
        &script,
        "\\set VERBOSITY verbose\nCREATE TABLE x (a int);\nSELECT count(*) AS after FROM spans;\n",
    )
    .unwrap();
    let (_, out, err) = run_psql(
        &psql,
        &s.pg,
        "default",
        None,
        &["-A", "-t", "-f", script.to_str().unwrap()],
    );
    assert!(
        err.contains("25006"),
        "CREATE TABLE refused with 25006: {err}"
    );
    assert_eq!(out.trim(), spans.to_string(), "the session went on: {out}");

    // pgjdbc, as DBeaver, Metabase and other JDBC tools use it.
    if let Some((java, jar)) = pgjdbc() {
        let source = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/java/PgJdbc.java");
        let (host, port) = s.pg.rsplit_once(':').unwrap();
        let out = succeeded(
            Command::new(&java).arg("-cp").arg(&jar).arg(&source).args([
                host,
                port,
                &spans.to_string(),
            ]),
            "PgJdbc.java",
        );
        let seen: Value = serde_json::from_str(out.trim()).expect("PgJdbc.java prints JSON");
        eprintln!("pgjdbc saw {seen}");
        assert_eq!(seen["prepared"], spans, "{seen}");
        assert_eq!(seen["paged_rows"], spans, "{seen}");
        assert_eq!(seen["create_table"], "25006", "{seen}");
        assert_eq!(seen["isolation"], 2, "READ COMMITTED: {seen}");
    }

    // psycopg 3, SQLAlchemy, pandas.
    let Some(python) = python() else { return };
    let (host, port) = s.pg.rsplit_once(':').unwrap();
    let out = run_python(&python, "pg_clients.py", &[host, port, &spans.to_string()]);
    let seen: Value = serde_json::from_str(out.trim()).expect("pg_clients.py prints JSON");
    assert_eq!(seen["create_table"], "25006", "{seen}");
    assert_eq!(seen["unknown_column"], "42703", "{seen}");
    assert_eq!(seen["too_many_rows"], "54000", "{seen}");
    assert_eq!(seen["cancelled"], "57014", "{seen}");
    assert_eq!(seen["pandas_rows"], 100000, "{seen}");
    let metrics = get(&format!("{}/metrics", s.query)).1;
    assert!(
        metrics.contains("strata_query_wire_requests_total{protocol=\"postgres\",request=\"query\",outcome=\"ok\"}"),
        "wire queries are counted"
    );
}

#[test]
fn logins_are_checked_against_the_auth_file() {
    let Some(psql) = psql() else { return };
    let dir = tempfile::tempdir().unwrap();
    let auth = dir.path().join("auth.toml");
    std::fs::write(
        &auth,
        format!(
            "[[credential]]\nusername = \"grafana\"\npassword = \"{}\"\ntenants = [\"acme\"]\nscopes = [\"read\"]\n\n[[credential]]\nname = \"reader\"\ntoken = \"{}\"\ntenants = [\"*\"]\nscopes = [\"read\"]\n",
            strata_server::auth::hash_text("s3cret"),
            strata_server::auth::hash_text("tok-123")
        ),
    )
    .unwrap();
    let auth_flag = auth.display().to_string();
    let s = standalone_with(
        dir.path(),
        "pg-auth",
        None,
        &[],
        &["--auth-file", &auth_flag],
    );
    let q = ["-A", "-t", "-c", "SELECT current_user IS NOT NULL"];
    let (ok, _, err) = run_psql(&psql, &s.pg, "grafana", Some("wrong"), &q);
    assert!(
        !ok && err.contains("password authentication failed"),
        "{err}"
    );
    let (ok, _, err) = run_psql(&psql, &s.pg, "grafana", None, &q);
    assert!(!ok, "no password, no login: {err}");
    let (ok, out, err) = run_psql(&psql, &s.pg, "grafana", Some("s3cret"), &q);
    assert!(ok, "user and password log in: {err}");
    assert_eq!(out.trim(), "t");
    // A token as the password, any user name; the tenant from libpq's options.
    let (host, port) = s.pg.rsplit_once(':').unwrap();
    let out = Command::new(&psql)
        .args(["-X", "-A", "-t", "-c", "SELECT 7"])
        .arg(format!(
            "host={host} port={port} user=anyone dbname=strata password=tok-123 options='-c strata.tenant=other'"
        ))
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert_eq!(String::from_utf8_lossy(&out.stdout).trim(), "7");
    // A tenant the credential may not use.
    let out = Command::new(&psql)
        .args(["-X", "-A", "-t", "-c", "SELECT 7"])
        .arg(format!(
            "host={host} port={port} user=grafana dbname=strata password=s3cret options='-c strata.tenant=other'"
        ))
        .output()
        .unwrap();
    assert!(!out.status.success());
    assert!(
        String::from_utf8_lossy(&out.stderr).contains("may not use tenant"),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );

    // Flight SQL: ADBC's username and password go through a handshake.
    let Some(python) = python() else { return };
    let out = run_python(
        &python,
        "flight_sql_clients.py",
        &[&s.flight_sql, "0", "10", "grafana", "s3cret"],
    );
    assert!(out.contains("\"pandas_rows\": 10"), "{out}");
    assert!(
        out.contains("\"wrong_password\": \"UNAUTHENTICATED\""),
        "{out}"
    );
}

#[test]
fn adbc_fetches_arrow_over_flight_sql() {
    let Some(python) = python() else { return };
    let dir = tempfile::tempdir().unwrap();
    let s = standalone(
        dir.path(),
        "flight-sql",
        None,
        &[("STRATA_QUERY__MAX_RESULT_ROWS", "1000000")],
    );
    assert!(
        !s.flight_sql.is_empty(),
        "the Flight SQL listener's address is logged"
    );
    let spans = ingest(&s);
    let out = run_python(
        &python,
        "flight_sql_clients.py",
        &[&s.flight_sql, &spans.to_string(), "1000000"],
    );
    let seen: Value = serde_json::from_str(out.trim()).expect("flight_sql_clients.py prints JSON");
    assert_eq!(seen["spans"], spans, "{seen}");
    assert_eq!(seen["prepared"], spans, "{seen}");
    assert_eq!(seen["pandas_rows"], 1_000_000, "{seen}");
    let metrics = get(&format!("{}/metrics", s.query)).1;
    assert!(
        metrics.contains("strata_query_wire_requests_total{protocol=\"flight_sql\",request=\"query\",outcome=\"ok\"}"),
        "Flight SQL queries are counted"
    );
}

#[test]
fn postgres_takes_tls_through_sslrequest_and_refuses_plain_text() {
    let Some(psql) = psql() else { return };
    let dir = tempfile::tempdir().unwrap();
    let pki = strata_server::tls::testing::TestPki::new(&dir.path().join("pki"));
    let cert = pki.server("strata");
    let [grpc, http, query, flight, chttp] = free_ports();
    let addr = |p: u16| format!("127.0.0.1:{p}");
    let data = dir.path().join("data").display().to_string();
    let (cert_path, key_path) = (
        cert.cert.display().to_string(),
        cert.key.display().to_string(),
    );
    let mut proc = strata(
        "pg-tls",
        dir.path(),
        &[
            "standalone",
            "--data-dir",
            &data,
            "--otlp-grpc",
            &addr(grpc),
            "--otlp-http",
            &addr(http),
            "--http",
            &addr(query),
            "--flight",
            &addr(flight),
            "--collector-http",
            &addr(chttp),
            "--pg",
            "127.0.0.1:0",
            "--flight-sql",
            "",
            "--tls-cert",
            &cert_path,
            "--tls-key",
            &key_path,
        ],
        &[],
    );
    let pg = logged_addr(&mut proc, "pg", Duration::from_secs(30)).expect("pg address logged");
    let (_, port) = pg.rsplit_once(':').unwrap();
    let conn = |mode: &str| {
        format!(
            "host=localhost port={port} user=default dbname=strata sslmode={mode} sslrootcert={}",
            pki.ca.display()
        )
    };
    let run = |mode: &str| {
        Command::new(&psql)
            .args(["-X", "-A", "-t", "-c", "SELECT 40 + 2"])
            .arg(conn(mode))
            .env("PGCONNECT_TIMEOUT", "10")
            .output()
            .unwrap()
    };
    let mut verified = None;
    eventually(Duration::from_secs(20), "psql over TLS", || {
        let out = run("verify-full");
        let ok = out.status.success();
        verified = Some(out);
        ok
    });
    let out = verified.unwrap();
    assert_eq!(String::from_utf8_lossy(&out.stdout).trim(), "42");
    let plain = run("disable");
    assert!(!plain.status.success(), "a plain-text login is refused");
    assert!(
        String::from_utf8_lossy(&plain.stderr).contains("TLS connections only"),
        "{}",
        String::from_utf8_lossy(&plain.stderr)
    );
}
