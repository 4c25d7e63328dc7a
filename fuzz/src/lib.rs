//! Fuzz harnesses: one per decoder of bytes that come from outside the process (the network,
//! files another process or an earlier run wrote, configuration), each a `fn(&[u8])` that
//! must return for every input without panicking, hanging or allocating without bound.
//!
//! - [`TARGETS`] names them; [`seeds`] makes each one's seed inputs with the project's own
//!   encoders, beside the files kept in `fuzz/corpus/<target>/` (hand-written inputs and every
//!   input that once crashed a harness). `strata-fuzz-seeds DIR` writes both out for AFL++.
//! - The test suite runs every target over its corpus and a bounded number of deterministic
//!   mutations of it ([`mutate`]); `scripts/fuzz` runs them coverage-guided under AFL++
//!   (`cargo afl`, stable Rust) for a given time.
//!
//! Invariant: a harness drives the decoder as the process does with the same bytes (the same
//! size limits, the same follow-on steps: a decoded OTLP request is also converted to Arrow),
//! so a crash here is a crash there.

pub mod mutate;
pub mod seeds;

use std::path::Path;

use strata_ingest::otlp::{Logs, Metrics, OtlpSignal, Payload, Traces};

/// One harness.
pub struct Target {
    pub name: &'static str,
    pub about: &'static str,
    pub run: fn(&[u8]),
}

/// Every harness.
pub const TARGETS: &[Target] = &[
    Target {
        name: "otlp_protobuf",
        about: "OTLP export requests in protobuf (first byte: signal), converted to Arrow",
        run: otlp_protobuf,
    },
    Target {
        name: "otlp_json",
        about: "OTLP export requests in JSON (first byte: signal), converted to Arrow",
        run: otlp_json,
    },
    Target {
        name: "remote_write",
        about: "Prometheus remote write (snappy + protobuf, or bare protobuf), converted to Arrow",
        run: remote_write,
    },
    Target {
        name: "flight_put",
        about: "A Flight DoPut from an agent: envelope, then IPC messages with their sequence",
        run: flight_put,
    },
    Target {
        name: "wal_segment",
        about: "A collector WAL segment and each of its entries",
        run: wal_segment,
    },
    Target {
        name: "buffer_record",
        about: "An agent disk-buffer record and its data",
        run: buffer_record,
    },
    Target {
        name: "checkpoint",
        about: "A file source's checkpoint file",
        run: checkpoint,
    },
    Target {
        name: "commit_record",
        about: "A storage commit record",
        run: commit_record,
    },
    Target {
        name: "log_lines",
        about: "Tailed bytes split into lines, framed (plain, CRI, Docker, auto) and parsed (JSON, logfmt, regex)",
        run: log_lines,
    },
    Target {
        name: "scrape_text",
        about: "A Prometheus text exposition from a scrape target",
        run: scrape_text,
    },
    Target {
        name: "promql",
        about: "A PromQL query",
        run: promql,
    },
    Target {
        name: "logql",
        about: "A LogQL query",
        run: logql,
    },
    Target {
        name: "traceql",
        about: "A TraceQL query",
        run: traceql,
    },
    Target {
        name: "auth_file",
        about: "An auth file",
        run: auth_file,
    },
    Target {
        name: "limits_file",
        about: "A per-tenant limits file",
        run: limits_file,
    },
];

pub fn target(name: &str) -> Option<&'static Target> {
    TARGETS.iter().find(|t| t.name == name)
}

/// The commands the fuzz binaries share: `--list` prints the targets' names, `--seeds DIR`
/// writes every seed into `DIR/<target>/`. `None` when `args` (without the program name)
/// are neither.
pub fn tool(args: &[String]) -> Option<std::process::ExitCode> {
    use std::process::ExitCode;
    match args {
        [flag] if flag == "--list" => {
            for t in TARGETS {
                println!("{}", t.name);
            }
            Some(ExitCode::SUCCESS)
        }
        [flag, dir] if flag == "--seeds" => Some(match seeds::write_all(Path::new(dir)) {
            Ok(()) => ExitCode::SUCCESS,
            Err(e) => {
                eprintln!("writing seeds into {dir}: {e}");
                ExitCode::FAILURE
            }
        }),
        _ => None,
    }
}

/// The corpus directory of `target` in the repository.
pub fn corpus_dir(target: &str) -> std::path::PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("corpus")
        .join(target)
}

/// The receivers' request limit.
const MAX_REQUEST_BYTES: usize = 4 << 20;

fn text(data: &[u8]) -> std::borrow::Cow<'_, str> {
    String::from_utf8_lossy(data)
}

/// The first byte picks one of `n` variants; the rest is the input.
fn pick(data: &[u8], n: u8) -> (u8, &[u8]) {
    match data.split_first() {
        Some((b, rest)) => (b % n, rest),
        None => (0, data),
    }
}

fn otlp_protobuf(data: &[u8]) {
    let (signal, body) = pick(data, 3);
    let body = bytes::Bytes::copy_from_slice(body);
    let _ = match signal {
        0 => Traces::convert_payload(Payload::Protobuf(body)).map(|c| c.items()),
        1 => Logs::convert_payload(Payload::Protobuf(body)).map(|c| c.items()),
        _ => Metrics::convert_payload(Payload::Protobuf(body)).map(|c| c.items()),
    };
}

fn otlp_json(data: &[u8]) {
    let (signal, body) = pick(data, 3);
    let body = bytes::Bytes::copy_from_slice(body);
    let _ = match signal {
        0 => Traces::convert_payload(Payload::Json(body)).map(|c| c.items()),
        1 => Logs::convert_payload(Payload::Json(body)).map(|c| c.items()),
        _ => Metrics::convert_payload(Payload::Json(body)).map(|c| c.items()),
    };
}

fn remote_write(data: &[u8]) {
    use strata_schema::remote_write::{MetadataCache, WriteRequest, decode, to_batch};
    let (snappy, body) = pick(data, 2);
    let request = if snappy == 0 {
        decode(body, MAX_REQUEST_BYTES).ok()
    } else {
        <WriteRequest as prost::Message>::decode(body).ok()
    };
    if let Some(request) = request {
        let mut known = MetadataCache::default();
        known.remember(&request.metadata, 1000);
        let _ = to_batch(&request, &known);
    }
}

/// Splits `data` into length-prefixed (`u16` little-endian) parts.
pub fn parts(mut data: &[u8]) -> Vec<&[u8]> {
    let mut out = Vec::new();
    while data.len() >= 2 {
        let len = (u16::from_le_bytes([data[0], data[1]]) as usize).min(data.len() - 2);
        out.push(&data[2..2 + len]);
        data = &data[2 + len..];
    }
    out
}

/// Joins parts as [`parts`] splits them.
pub fn join(parts: &[&[u8]]) -> Vec<u8> {
    let mut out = Vec::new();
    for p in parts {
        let len = p.len().min(u16::MAX as usize);
        out.extend_from_slice(&(len as u16).to_le_bytes());
        out.extend_from_slice(&p[..len]);
    }
    out
}

fn flight_put(data: &[u8]) {
    use arrow_flight::FlightData;
    let parts = parts(data);
    let Some((envelope, messages)) = parts.split_first() else {
        return;
    };
    let Ok(envelope) = strata_schema::envelope::Envelope::decode_bytes(envelope) else {
        return;
    };
    let _ = envelope.signal();
    let frames: Vec<Result<FlightData, arrow_flight::error::FlightError>> = messages
        .chunks(3)
        .map(|m| {
            Ok(FlightData {
                data_header: bytes::Bytes::copy_from_slice(m[0]),
                data_body: bytes::Bytes::copy_from_slice(m.get(1).copied().unwrap_or(&[])),
                app_metadata: bytes::Bytes::copy_from_slice(m.get(2).copied().unwrap_or(&[])),
                ..Default::default()
            })
        })
        .collect();
    let stream = futures::stream::iter(frames);
    let _ = futures::executor::block_on(strata_ingest::flight::decode_groups(
        stream,
        envelope.sequence,
    ));
}

fn wal_segment(data: &[u8]) {
    if let Ok(decoded) = strata_wal::format::decode_segment(data) {
        for (_, record) in decoded.records {
            let _ = strata_wal::entry::decode(record);
        }
    }
}

fn buffer_record(data: &[u8]) {
    use strata_agent::buffer::record::{Record, decode, decode_data};
    if let Ok(Record::Data { rest, .. }) = decode(data) {
        let _ = decode_data(rest);
    }
}

fn checkpoint(data: &[u8]) {
    let _ = strata_agent::sources::file::checkpoint::Checkpoints::decode(data);
}

fn commit_record(data: &[u8]) {
    let path = object_path();
    let _ = strata_storage::commit::decode(&path, data);
}

fn object_path() -> object_store::path::Path {
    object_store::path::Path::from("tenant=t/signal=traces/commits/0")
}

fn log_lines(data: &[u8]) {
    use strata_agent::sources::file::config::{Format, LongLines, Parser};
    use strata_agent::sources::file::framing::{FrameIssues, Framer};
    use strata_agent::sources::file::lines::LineSplitter;
    use strata_agent::sources::file::parse::MessageParser;
    let (choice, data) = pick(data, 64);
    let format = [Format::Plain, Format::Cri, Format::Docker, Format::Auto][(choice & 3) as usize];
    let parser =
        [Parser::None, Parser::Json, Parser::Logfmt, Parser::Regex][(choice >> 2 & 3) as usize];
    let long = if choice & 16 == 0 {
        LongLines::Truncate
    } else {
        LongLines::Split
    };
    let chunk = if choice & 32 == 0 { 7 } else { 4096 };
    let parser = MessageParser::new(parser, Some(r"^(?P<time>\S+) (?P<level>\w+) (?P<msg>.*)$"));
    let mut lines = LineSplitter::new(256, long, 0);
    let mut framer = Framer::new(format, 1024);
    let mut issues = FrameIssues::default();
    let mut records = Vec::new();
    let mut frame = |line: strata_agent::sources::file::lines::Line<'_>| {
        framer.push(&line, &mut issues, &mut |f| records.push(f));
    };
    for c in data.chunks(chunk) {
        lines.feed(c, &mut frame);
    }
    lines.finish(&mut frame);
    records.extend(framer.flush());
    for r in records {
        let _ = parser.parse(r.text);
    }
}

fn scrape_text(data: &[u8]) {
    let _ = strata_agent::sources::scrape::parse(&text(data));
}

fn promql(data: &[u8]) {
    let _ = strata_query::promql::parse(&text(data));
}

fn logql(data: &[u8]) {
    let _ = strata_query::logs::logql::parse(&text(data));
}

fn traceql(data: &[u8]) {
    let _ = strata_query::traces::traceql::parse(&text(data));
}

fn auth_file(data: &[u8]) {
    let _ = strata_server::auth::Credentials::parse(&text(data));
}

fn limits_file(data: &[u8]) {
    let _ = strata_server::limits::Table::parse(&text(data));
}
