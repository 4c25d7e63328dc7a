//! Criterion micro-benchmarks of Strata's hot paths, per span / log record / metric point:
//!
//! - `otlp_to_arrow/*`: protobuf bytes of an export request -> Arrow batch (what the agent does
//!   with every OTLP request: spans and log records straight from the bytes, metrics through
//!   prost);
//! - `arrow_to_parquet/*`: sort + encode one collector flush as a Parquet file (the printed
//!   bytes per row are the storage cost of the generated data);
//! - `flight_ipc/*`: the agent -> collector Arrow IPC encode and decode, by compression;
//! - `routing/spans`: the routing key hash of every span and its owner on a 3-collector ring;
//! - `trace_lookup/one_file`: a trace by id through the query engine over one Parquet file of
//!   100k spans.
//!
//! `cargo bench -p strata-bench --bench hot_paths`; `-- --quick` for a short run.

use std::hint::black_box;
use std::sync::Arc;

use arrow::array::RecordBatch;
use arrow::ipc::CompressionType;
use arrow::ipc::writer::IpcWriteOptions;
use arrow_flight::decode::FlightRecordBatchStream;
use arrow_flight::encode::FlightDataEncoderBuilder;
use criterion::{BatchSize, Criterion, Throughput, criterion_group, criterion_main};
use futures::TryStreamExt;
use prost::Message;
use strata_bench::{logs, metrics, traces};
use strata_schema::Signal;
use strata_storage::format::{ParquetOptions, encode};

fn trace_shape() -> traces::TraceShape {
    traces::TraceShape {
        traces_per_request: 20,
        ..Default::default()
    }
}

fn log_shape() -> logs::LogShape {
    logs::LogShape {
        seed: 1,
        records_per_request: 1000,
        lines: Vec::new(),
    }
}

fn metric_shape() -> metrics::MetricShape {
    metrics::MetricShape {
        seed: 1,
        series: 10_000,
        points_per_request: 1000,
        start_nanos: strata_bench::rng::now_nanos(),
        interval_nanos: 15_000_000_000,
    }
}

fn span_batches(requests: u64) -> Vec<RecordBatch> {
    (0..requests)
        .map(|i| {
            let r = traces::request(&trace_shape(), i);
            strata_schema::traces::to_batch(&r.request.resource_spans).expect("to_batch")
        })
        .collect()
}

/// Benchmarks decoding `request`'s protobuf bytes and building its Arrow batch.
fn decode_and_convert<M: Message + Default>(
    g: &mut criterion::BenchmarkGroup<'_, criterion::measurement::WallTime>,
    name: &str,
    request: &M,
    items: u64,
    to_batch: impl Fn(&M) -> strata_schema::Result<RecordBatch>,
) {
    let bytes = request.encode_to_vec();
    g.throughput(Throughput::Elements(items));
    g.bench_function(name, |b| {
        b.iter(|| {
            let r = M::decode(black_box(bytes.as_slice())).expect("decode");
            to_batch(&r).expect("to_batch")
        })
    });
}

fn otlp_to_arrow(c: &mut Criterion) {
    let mut g = c.benchmark_group("otlp_to_arrow");
    let t = traces::request(&trace_shape(), 0);
    let bytes = t.request.encode_to_vec();
    g.throughput(Throughput::Elements(t.spans));
    g.bench_function("spans", |b| {
        b.iter(|| strata_schema::traces::decode(black_box(bytes.as_slice())).expect("decode"))
    });
    let l = logs::request(&log_shape(), 0);
    let bytes = l.request.encode_to_vec();
    g.throughput(Throughput::Elements(l.records));
    g.bench_function("log_records", |b| {
        b.iter(|| strata_schema::logs::decode(black_box(bytes.as_slice())).expect("decode"))
    });
    let m = metrics::request(&metric_shape(), 0);
    decode_and_convert(&mut g, "metric_points", &m.request, m.points, |r| {
        strata_schema::metrics::to_batch(&r.resource_metrics)
    });
    g.finish();
}

fn arrow_to_parquet(c: &mut Criterion) {
    let options = ParquetOptions {
        row_group_rows: 128 * 1024,
        zstd_level: 3,
    };
    let mut g = c.benchmark_group("arrow_to_parquet");
    g.sample_size(10);
    let cases: Vec<(&str, Signal, Vec<RecordBatch>)> = vec![
        ("spans", Signal::Traces, span_batches(100)),
        (
            "log_records",
            Signal::Logs,
            (0..20)
                .map(|i| {
                    let r = logs::request(&log_shape(), i);
                    strata_schema::logs::to_batch(&r.request.resource_logs).expect("to_batch")
                })
                .collect(),
        ),
        (
            "metric_points",
            Signal::Metrics,
            (0..20)
                .map(|i| {
                    let r = metrics::request(&metric_shape(), i);
                    strata_schema::metrics::to_batch(&r.request.resource_metrics).expect("to_batch")
                })
                .collect(),
        ),
    ];
    for (name, signal, batches) in cases {
        let rows: usize = batches.iter().map(RecordBatch::num_rows).sum();
        let (bytes, _) = encode(signal, &batches, Vec::new(), options).expect("encode");
        println!(
            "arrow_to_parquet/{name}: {rows} rows -> {} bytes, {:.1} bytes per row",
            bytes.len(),
            bytes.len() as f64 / rows as f64
        );
        g.throughput(Throughput::Elements(rows as u64));
        g.bench_function(name, |b| {
            b.iter(|| encode(signal, black_box(&batches), Vec::new(), options).expect("encode"))
        });
    }
    g.finish();
}

fn flight_ipc(c: &mut Criterion) {
    let rt = tokio::runtime::Builder::new_current_thread()
        .build()
        .expect("runtime");
    let batch = span_batches(1).remove(0);
    let mut g = c.benchmark_group("flight_ipc");
    g.throughput(Throughput::Elements(batch.num_rows() as u64));
    for (name, compression) in [
        ("none", None),
        ("lz4", Some(CompressionType::LZ4_FRAME)),
        ("zstd", Some(CompressionType::ZSTD)),
    ] {
        let options = IpcWriteOptions::default()
            .try_with_compression(compression)
            .expect("options");
        let encode = |batch: RecordBatch| {
            let options = options.clone();
            rt.block_on(async move {
                FlightDataEncoderBuilder::new()
                    .with_options(options)
                    .build(futures::stream::iter([Ok(batch)]))
                    .try_collect::<Vec<_>>()
                    .await
                    .expect("encode")
            })
        };
        let encoded = encode(batch.clone());
        let wire: usize = encoded
            .iter()
            .map(|d| d.data_body.len() + d.data_header.len())
            .sum();
        println!(
            "flight_ipc/{name}: {} spans -> {wire} bytes on the wire",
            batch.num_rows()
        );
        g.bench_function(format!("encode_{name}"), |b| {
            b.iter(|| encode(black_box(batch.clone())))
        });
        g.bench_function(format!("decode_{name}"), |b| {
            b.iter_batched(
                || encoded.clone(),
                |data| {
                    rt.block_on(async move {
                        FlightRecordBatchStream::new_from_flight_data(futures::stream::iter(
                            data.into_iter().map(Ok),
                        ))
                        .try_collect::<Vec<_>>()
                        .await
                        .expect("decode")
                    })
                },
                BatchSize::SmallInput,
            )
        });
    }
    g.finish();
}

fn routing(c: &mut Criterion) {
    let batch = span_batches(1).remove(0);
    let ring = strata_agent::ring::Ring::new(vec![
        "10.0.0.1:4319".into(),
        "10.0.0.2:4319".into(),
        "10.0.0.3:4319".into(),
    ]);
    let mut g = c.benchmark_group("routing");
    g.throughput(Throughput::Elements(batch.num_rows() as u64));
    g.bench_function("spans", |b| {
        b.iter(|| {
            let hashes =
                strata_agent::ring::row_hashes(Signal::Traces, black_box(&batch)).expect("hashes");
            let mut per_owner = [0usize; 3];
            for h in hashes {
                per_owner[ring.owner(h).unwrap_or(0)] += 1;
            }
            per_owner
        })
    });
    g.finish();
}

fn trace_lookup(c: &mut Criterion) {
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .expect("runtime");
    let dir = tempfile::tempdir().expect("tempdir");
    let batches = span_batches(450);
    let rows: usize = batches.iter().map(RecordBatch::num_rows).sum();
    let (bytes, _) = encode(
        Signal::Traces,
        &batches,
        Vec::new(),
        ParquetOptions {
            row_group_rows: 128 * 1024,
            zstd_level: 3,
        },
    )
    .expect("encode");
    let hour = strata_storage::layout::hour_of(strata_bench::rng::now_nanos() as i64);
    let path = dir.path().join(strata_storage::layout::file_path(
        strata_schema::DEFAULT_TENANT,
        Signal::Traces,
        hour,
        "bench",
    ));
    std::fs::create_dir_all(path.parent().expect("parent")).expect("mkdir");
    std::fs::write(&path, bytes).expect("write");
    let ids: Vec<String> = (0..450)
        .step_by(7)
        .map(|i| traces::request(&trace_shape(), i).first_trace_id)
        .collect();
    let config = strata_query::config::QueryConfig {
        storage: dir.path().display().to_string(),
        ..Default::default()
    };
    let engine = Arc::new(strata_query::engine::Engine::new(config).expect("engine"));
    println!("trace_lookup: one file of {rows} spans");
    let mut g = c.benchmark_group("trace_lookup");
    let mut i = 0;
    g.bench_function("one_file", |b| {
        b.iter(|| {
            i += 1;
            let id = ids[i % ids.len()].clone();
            let engine = engine.clone();
            let spans = rt.block_on(async move {
                let ctx = engine
                    .session(strata_schema::DEFAULT_TENANT)
                    .expect("session");
                let df = ctx
                    .table("spans")
                    .await
                    .expect("table")
                    .filter(datafusion::prelude::col("trace_id").eq(datafusion::prelude::lit(id)))
                    .expect("filter");
                let batches = df.collect().await.expect("collect");
                batches.iter().map(RecordBatch::num_rows).sum::<usize>()
            });
            assert!(spans >= 5, "trace not found");
            spans
        })
    });
    g.finish();
}

criterion_group!(
    benches,
    otlp_to_arrow,
    arrow_to_parquet,
    flight_ipc,
    routing,
    trace_lookup
);
criterion_main!(benches);
