//! Deterministic OTLP log generation with realistic bodies.
//!
//! Bodies come from templates in the style of the system logs of the loghub collection
//! (a distributed file system, a web server, sshd, a Spark-like job scheduler, a kernel), with
//! their variable parts (block ids, addresses, ports, durations, user names) drawn from the
//! seed; about one record in a hundred is a multi-line Java stack trace. Each body is the whole
//! line as it would stand in a log file (timestamp, level, component, message), so the bytes of
//! the bodies are the "raw text" a compression ratio is measured against. Lines can also be
//! replayed from files (`LogShape::lines`), e.g. real loghub samples.

use opentelemetry_proto::tonic::collector::logs::v1::ExportLogsServiceRequest;
use opentelemetry_proto::tonic::common::v1::{AnyValue, InstrumentationScope, any_value};
use opentelemetry_proto::tonic::logs::v1::{LogRecord, ResourceLogs, ScopeLogs};
use opentelemetry_proto::tonic::resource::v1::Resource;

use crate::rng::{Rng, now_nanos};
use crate::traces::{kv, s};

/// The shape of generated logs.
#[derive(Debug, Clone, Default)]
pub struct LogShape {
    pub seed: u64,
    pub records_per_request: usize,
    /// Lines to replay instead of templates (cycled through in order), if not empty.
    pub lines: Vec<String>,
}

/// One generated export request.
pub struct LogRequest {
    pub request: ExportLogsServiceRequest,
    pub records: u64,
    /// Bytes of the raw lines, one newline each.
    pub raw_bytes: u64,
}

/// (service, component, severity, template). `{...}` placeholders are filled by [`fill`].
const TEMPLATES: [(&str, &str, &str, &str); 16] = [
    (
        "datanode",
        "dfs.DataNode$DataXceiver",
        "INFO",
        "Receiving block blk_{blk} src: /{ip}:{port} dest: /{ip}:50010",
    ),
    (
        "datanode",
        "dfs.DataNode$PacketResponder",
        "INFO",
        "PacketResponder {small} for block blk_{blk} terminating",
    ),
    (
        "namenode",
        "dfs.FSNamesystem",
        "INFO",
        "BLOCK* NameSystem.addStoredBlock: blockMap updated: {ip}:50010 is added to blk_{blk} size {size}",
    ),
    (
        "namenode",
        "dfs.FSNamesystem",
        "WARN",
        "BLOCK* NameSystem.delete: blk_{blk} is added to invalidSet of {ip}:50010",
    ),
    (
        "httpd",
        "core",
        "NOTICE",
        "workerEnv.init() ok /etc/httpd/conf/workers2.properties",
    ),
    (
        "httpd",
        "mod_jk",
        "ERROR",
        "mod_jk child workerEnv in error state {small}",
    ),
    (
        "httpd",
        "access",
        "INFO",
        "{ip} - - \"GET /api/v1/items/{n}?page={small} HTTP/1.1\" 200 {size} {ms}ms",
    ),
    (
        "sshd",
        "sshd",
        "INFO",
        "Accepted publickey for {user} from {ip} port {port} ssh2",
    ),
    (
        "sshd",
        "sshd",
        "WARN",
        "Failed password for invalid user {user} from {ip} port {port} ssh2",
    ),
    (
        "sshd",
        "sshd",
        "INFO",
        "pam_unix(sshd:session): session closed for user {user}",
    ),
    (
        "scheduler",
        "scheduler.TaskSetManager",
        "INFO",
        "Finished task {small}.0 in stage {n}.0 (TID {tid}) in {ms} ms on node-{small} (executor {small}) ({small}/{small})",
    ),
    (
        "scheduler",
        "storage.BlockManager",
        "INFO",
        "Found block rdd_{n}_{small} locally",
    ),
    (
        "scheduler",
        "executor.Executor",
        "INFO",
        "Running task {small}.0 in stage {n}.0 (TID {tid})",
    ),
    (
        "kernel",
        "kernel",
        "WARN",
        "usb {small}-{small}: device descriptor read/64, error -{small}",
    ),
    (
        "kernel",
        "kernel",
        "INFO",
        "EXT4-fs (sda{small}): mounted filesystem with ordered data mode. Opts: (null)",
    ),
    (
        "api",
        "com.shop.api.OrderController",
        "DEBUG",
        "order {hex} for user {user} priced {ms} cents, {small} items",
    ),
];

const USERS: [&str; 8] = [
    "root", "admin", "deploy", "alice", "bob", "guest", "postgres", "jenkins",
];

/// A Java stack trace (multi-line body), as an exception log would print it.
const STACK: &str = "java.io.IOException: Connection reset by peer\n\
\tat sun.nio.ch.FileDispatcherImpl.read0(Native Method)\n\
\tat sun.nio.ch.SocketDispatcher.read(SocketDispatcher.java:39)\n\
\tat sun.nio.ch.IOUtil.readIntoNativeBuffer(IOUtil.java:223)\n\
\tat org.apache.hadoop.net.SocketInputStream.read(SocketInputStream.java:{n})\n\
\tat com.shop.api.OrderController.handle(OrderController.java:{small})\n\
\tat java.lang.Thread.run(Thread.java:750)";

fn fill(template: &str, rng: &mut Rng) -> String {
    let mut out = String::with_capacity(template.len() + 32);
    let mut rest = template;
    while let Some(open) = rest.find('{') {
        out.push_str(&rest[..open]);
        let Some(close) = rest[open..].find('}') else {
            break;
        };
        match &rest[open + 1..open + close] {
            "blk" => out.push_str(&format!("{}", rng.next_u64() as i64 >> 1)),
            "ip" => out.push_str(&format!(
                "10.{}.{}.{}",
                rng.below(4),
                rng.below(256),
                rng.below(256)
            )),
            "port" => out.push_str(&(1024 + rng.below(60_000)).to_string()),
            "small" => out.push_str(&rng.below(16).to_string()),
            "n" => out.push_str(&rng.below(2_000).to_string()),
            "size" => out.push_str(&(rng.below(64) << 20 | rng.below(1 << 20)).to_string()),
            "ms" => out.push_str(&rng.below(5_000).to_string()),
            "tid" => out.push_str(&rng.below(100_000).to_string()),
            "user" => out.push_str(USERS[rng.below(USERS.len() as u64) as usize]),
            "hex" => out.push_str(&format!("{:016x}", rng.next_u64())),
            other => {
                out.push('{');
                out.push_str(other);
                out.push('}');
            }
        }
        rest = &rest[open + close + 1..];
    }
    out.push_str(rest);
    out
}

fn severity_number(text: &str) -> i32 {
    match text {
        "DEBUG" => 5,
        "INFO" => 9,
        "NOTICE" => 10,
        "WARN" => 13,
        _ => 17,
    }
}

fn rfc3339(nanos: u64) -> String {
    chrono::DateTime::from_timestamp_nanos(nanos as i64)
        .format("%Y-%m-%dT%H:%M:%S%.3fZ")
        .to_string()
}

/// Request number `i`: `records_per_request` records, grouped by service.
pub fn request(shape: &LogShape, i: u64) -> LogRequest {
    let mut rng = Rng::for_request(shape.seed, i);
    let now = now_nanos();
    let services: Vec<&str> = {
        let mut v: Vec<&str> = TEMPLATES.iter().map(|t| t.0).collect();
        v.dedup();
        v
    };
    let mut by_service: Vec<Vec<LogRecord>> = vec![Vec::new(); services.len()];
    let mut raw_bytes = 0;
    for k in 0..shape.records_per_request {
        let time = now + k as u64 * 1_000;
        let (service, body, severity) = if shape.lines.is_empty() {
            let (service, component, severity, template) = *rng.pick(&TEMPLATES);
            let mut message = fill(template, &mut rng);
            let mut severity = severity;
            if rng.below(100) == 0 {
                severity = "ERROR";
                message = format!("request failed\n{}", fill(STACK, &mut rng));
            }
            let line = format!("{} {severity:<5} [{component}] {message}", rfc3339(time));
            (service, line, Some(severity))
        } else {
            let n = i as usize * shape.records_per_request + k;
            ("replay", shape.lines[n % shape.lines.len()].clone(), None)
        };
        raw_bytes += body.len() as u64 + 1;
        let svc = services.iter().position(|s| *s == service).unwrap_or(0);
        by_service[svc].push(LogRecord {
            time_unix_nano: time,
            observed_time_unix_nano: time + 1_000_000,
            severity_number: severity.map(severity_number).unwrap_or(0),
            severity_text: severity.unwrap_or_default().to_string(),
            body: Some(AnyValue {
                value: Some(any_value::Value::StringValue(body)),
            }),
            attributes: vec![
                kv(
                    "log.file.path",
                    s(format!("/var/log/{service}/{service}.log")),
                ),
                kv(
                    "thread.id",
                    any_value::Value::IntValue(rng.below(64) as i64),
                ),
            ],
            ..Default::default()
        });
    }
    let resource_logs = by_service
        .into_iter()
        .zip(&services)
        .filter(|(records, _)| !records.is_empty())
        .map(|(log_records, service)| ResourceLogs {
            resource: Some(Resource {
                attributes: vec![
                    kv("service.name", s(*service)),
                    kv("host.name", s(format!("node-{}", service.len() % 3))),
                    kv("k8s.namespace.name", s("platform")),
                    kv("k8s.pod.name", s(format!("{service}-5c7b9-x2k4q"))),
                ],
                ..Default::default()
            }),
            scope_logs: vec![ScopeLogs {
                scope: Some(InstrumentationScope {
                    name: "strata-loadgen".into(),
                    ..Default::default()
                }),
                log_records,
                ..Default::default()
            }],
            ..Default::default()
        })
        .collect();
    LogRequest {
        request: ExportLogsServiceRequest { resource_logs },
        records: shape.records_per_request as u64,
        raw_bytes,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn dates_and_placeholders() {
        assert_eq!(
            rfc3339(1_772_323_200_000_000_000),
            "2026-03-01T00:00:00.000Z"
        );
        assert_eq!(
            rfc3339(1_000_000_000 * 86_400 + 5_000_000),
            "1970-01-02T00:00:00.005Z"
        );
        let mut rng = Rng::new(1);
        for (_, _, _, t) in TEMPLATES {
            let line = fill(t, &mut rng);
            assert!(!line.contains('{'), "{line}");
        }
    }

    #[test]
    fn deterministic_and_counted() {
        let shape = LogShape {
            seed: 3,
            records_per_request: 500,
            lines: Vec::new(),
        };
        let a = request(&shape, 7);
        let b = request(&shape, 7);
        let bodies = |r: &LogRequest| -> Vec<String> {
            r.request
                .resource_logs
                .iter()
                .flat_map(|r| &r.scope_logs[0].log_records)
                .map(|l| match &l.body.as_ref().and_then(|b| b.value.clone()) {
                    Some(any_value::Value::StringValue(s)) => s[24..].to_string(),
                    _ => String::new(),
                })
                .collect()
        };
        assert_eq!(bodies(&a).len(), 500);
        assert_eq!(bodies(&a), bodies(&b));
        assert!(a.raw_bytes > 500 * 40);
    }
}
