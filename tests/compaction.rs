//! The compactor under crashes and races, on a local directory and on a real S3 server
//! (moto, from the interop venv): a crash is injected after every possible number of storage
//! writes of a pass (from none to all), and after each the storage is read as a query would
//! read it; then a clean pass must finish the work. Two compactors racing on one storage must
//! not both commit. Checked invariants: readers see every span, either exactly the inputs
//! (before the commit) or each span once (after it), never a row twice after a commit, never
//! a missing row; after the clean pass each partition is one file and nothing is left over.

mod common;

use std::collections::BTreeMap;
use std::fmt;
use std::ops::Range;
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;

use arrow::array::{AsArray, RecordBatch};
use async_trait::async_trait;
use bytes::Bytes;
use futures::TryStreamExt;
use futures::stream::BoxStream;
use object_store::path::Path;
use object_store::{
    CopyOptions, GetOptions, GetResult, ListResult, MultipartUpload, ObjectMeta, ObjectStore,
    ObjectStoreExt, PutMultipartOptions, PutOptions, PutPayload, PutResult, RenameOptions, Result,
    UploadPart,
};
use opentelemetry_proto::tonic::trace::v1::{ResourceSpans, ScopeSpans, Span};
use parquet::arrow::ParquetRecordBatchStreamBuilder;
use strata_compactor::config::RetentionConfig;
use strata_compactor::metrics::CompactorMetrics;
use strata_compactor::pass::{self, PassConfig, Skipped};
use strata_schema::{Signal, columns};
use strata_storage::format::{ParquetOptions, encode};
use strata_storage::layout::{self, HOUR_NANOS};
use strata_storage::live::LiveFiles;
use strata_storage::reader::FileReader;
use strata_storage::{S3Options, Storage};

/// The first partition's hour: three hours before the test started, so both partitions are
/// closed (file times, which decide orphans, are the real clock's).
static HOUR: std::sync::LazyLock<i64> = std::sync::LazyLock::new(|| {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_secs() as i64
        / 3600
        - 3
});

fn now_ms() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_millis() as i64
}

/// Fails every write after the first `budget` (a process that died there).
#[derive(Debug)]
struct Crashing {
    inner: Arc<dyn ObjectStore>,
    budget: usize,
    writes: Arc<AtomicUsize>,
}

impl Crashing {
    fn write(&self) -> Result<()> {
        if self.writes.fetch_add(1, Ordering::SeqCst) >= self.budget {
            return Err(object_store::Error::Generic {
                store: "crashing",
                source: "crashed".into(),
            });
        }
        Ok(())
    }
}

impl fmt::Display for Crashing {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "Crashing({})", self.inner)
    }
}

#[derive(Debug)]
struct CrashingUpload {
    inner: Box<dyn MultipartUpload>,
    budget: usize,
    writes: Arc<AtomicUsize>,
}

#[async_trait]
impl MultipartUpload for CrashingUpload {
    fn put_part(&mut self, data: PutPayload) -> UploadPart {
        self.inner.put_part(data)
    }
    async fn complete(&mut self) -> Result<PutResult> {
        if self.writes.fetch_add(1, Ordering::SeqCst) >= self.budget {
            return Err(object_store::Error::Generic {
                store: "crashing",
                source: "crashed".into(),
            });
        }
        self.inner.complete().await
    }
    async fn abort(&mut self) -> Result<()> {
        self.inner.abort().await
    }
}

#[async_trait]
impl ObjectStore for Crashing {
    async fn put_opts(&self, l: &Path, p: PutPayload, o: PutOptions) -> Result<PutResult> {
        self.write()?;
        self.inner.put_opts(l, p, o).await
    }
    async fn put_multipart_opts(
        &self,
        l: &Path,
        o: PutMultipartOptions,
    ) -> Result<Box<dyn MultipartUpload>> {
        Ok(Box::new(CrashingUpload {
            inner: self.inner.put_multipart_opts(l, o).await?,
            budget: self.budget,
            writes: self.writes.clone(),
        }))
    }
    async fn get_opts(&self, l: &Path, o: GetOptions) -> Result<GetResult> {
        self.inner.get_opts(l, o).await
    }
    async fn get_ranges(&self, l: &Path, r: &[Range<u64>]) -> Result<Vec<Bytes>> {
        self.inner.get_ranges(l, r).await
    }
    fn delete_stream(
        &self,
        locations: BoxStream<'static, Result<Path>>,
    ) -> BoxStream<'static, Result<Path>> {
        let budget = self.budget;
        let writes = self.writes.clone();
        let inner = self.inner.clone();
        Box::pin(async_stream(locations, inner, budget, writes))
    }
    fn list(&self, p: Option<&Path>) -> BoxStream<'static, Result<ObjectMeta>> {
        self.inner.list(p)
    }
    async fn list_with_delimiter(&self, p: Option<&Path>) -> Result<ListResult> {
        self.inner.list_with_delimiter(p).await
    }
    async fn copy_opts(&self, f: &Path, t: &Path, o: CopyOptions) -> Result<()> {
        self.write()?;
        self.inner.copy_opts(f, t, o).await
    }
    async fn rename_opts(&self, f: &Path, t: &Path, o: RenameOptions) -> Result<()> {
        self.write()?;
        self.inner.rename_opts(f, t, o).await
    }
}

/// Deletes one location at a time, each counted as a write.
fn async_stream(
    locations: BoxStream<'static, Result<Path>>,
    inner: Arc<dyn ObjectStore>,
    budget: usize,
    writes: Arc<AtomicUsize>,
) -> impl futures::Stream<Item = Result<Path>> + Send {
    use futures::StreamExt;
    locations.then(move |p| {
        let (inner, writes) = (inner.clone(), writes.clone());
        async move {
            let p = p?;
            if writes.fetch_add(1, Ordering::SeqCst) >= budget {
                return Err(object_store::Error::Generic {
                    store: "crashing",
                    source: "crashed".into(),
                });
            }
            inner.delete(&p).await?;
            Ok(p)
        }
    })
}

fn span_file(spans: &[(u8, u64)]) -> Vec<u8> {
    let spans: Vec<Span> = spans
        .iter()
        .map(|&(t, s)| Span {
            trace_id: [t; 16].to_vec(),
            span_id: s.to_be_bytes().to_vec(),
            name: format!("op{s}"),
            start_time_unix_nano: (*HOUR * HOUR_NANOS) as u64 + s * 1000,
            end_time_unix_nano: (*HOUR * HOUR_NANOS) as u64 + s * 1000 + 10,
            ..Default::default()
        })
        .collect();
    span_parquet(spans, 16, Vec::new())
}

/// `spans` as one collector file: row groups of `row_group_rows`, with `metadata`.
fn span_parquet(
    spans: Vec<Span>,
    row_group_rows: usize,
    metadata: Vec<parquet::file::metadata::KeyValue>,
) -> Vec<u8> {
    let batch = strata_schema::traces::to_batch(&[ResourceSpans {
        scope_spans: vec![ScopeSpans {
            spans,
            ..Default::default()
        }],
        ..Default::default()
    }])
    .unwrap();
    let options = ParquetOptions {
        row_group_rows,
        zstd_level: 1,
    };
    encode(Signal::Traces, &[batch], metadata, options)
        .unwrap()
        .0
}

/// Three collectors' files in one closed hour (one span stored twice) and two in the next.
async fn seed(storage: &Storage) -> usize {
    type File = (&'static str, i64, Vec<(u8, u64)>);
    let files: [File; 5] = [
        ("c1", *HOUR, (0..40).map(|i| ((i % 7) as u8, i)).collect()),
        ("c2", *HOUR, (40..90).map(|i| ((i % 5) as u8, i)).collect()),
        ("c3", *HOUR, vec![(5, 5), (9, 200), (9, 201)]),
        ("c1", *HOUR + 1, vec![(3, 300), (4, 301)]),
        ("c2", *HOUR + 1, vec![(3, 302)]),
    ];
    let mut rows = 0;
    for (collector, hour, spans) in files {
        let rel = layout::file_path("t", Signal::Traces, hour, collector);
        rows += spans.len();
        storage
            .store
            .put(&storage.path(&rel), PutPayload::from(span_file(&spans)))
            .await
            .unwrap();
    }
    rows
}

/// Every (trace, span) a reader sees, with how often.
async fn read(storage: &Storage) -> BTreeMap<(String, String), usize> {
    let live = LiveFiles::new(storage.store.clone(), Duration::ZERO);
    let dir = storage.path(&layout::signal_dir("t", Signal::Traces));
    let snap = live.resolve(&dir).await.unwrap();
    let mut out = BTreeMap::new();
    for meta in snap.live() {
        let reader = FileReader::new(storage.store.clone(), meta.location.clone(), meta.size);
        let batches: Vec<RecordBatch> = ParquetRecordBatchStreamBuilder::new(reader)
            .await
            .unwrap()
            .build()
            .unwrap()
            .try_collect()
            .await
            .unwrap();
        for b in batches {
            let t = b
                .column_by_name(columns::TRACE_ID)
                .unwrap()
                .as_string::<i32>();
            let s = b
                .column_by_name(columns::SPAN_ID)
                .unwrap()
                .as_string::<i32>();
            for i in 0..b.num_rows() {
                *out.entry((t.value(i).to_string(), s.value(i).to_string()))
                    .or_default() += 1;
            }
        }
    }
    out
}

fn config(id: &str) -> PassConfig {
    PassConfig {
        id: id.into(),
        grace: Duration::from_secs(60),
        delete_delay: Duration::ZERO,
        orphan_grace: Duration::ZERO,
        retention: RetentionConfig::default(),
        target_file_bytes: 1 << 30,
        // Every merge takes two inputs: a partition of more files is merged in rounds.
        memory_limit_bytes: 1,
        options: ParquetOptions {
            row_group_rows: 32,
            zstd_level: 1,
        },
    }
}

/// Where a test's storage is: a local directory, or a prefix in the S3 server's bucket.
#[derive(Clone)]
struct Place {
    location: String,
    s3: S3Options,
}

impl Place {
    fn local(dir: &std::path::Path) -> Self {
        Self {
            location: dir.display().to_string(),
            s3: S3Options::default(),
        }
    }

    fn s3(server: &common::S3Server, prefix: &str) -> Self {
        Self {
            location: format!("s3://{}/{prefix}", server.bucket),
            s3: server.options(),
        }
    }
}

/// The places to run on: a fresh local directory (kept alive by the returned guard) and,
/// with the venv, a fresh prefix on the S3 server.
fn places(tmp: &std::path::Path, s3: Option<&common::S3Server>, name: &str) -> Vec<Place> {
    let local = tmp.join(name);
    std::fs::create_dir_all(&local).unwrap();
    let mut out = vec![Place::local(&local)];
    out.extend(s3.map(|s| Place::s3(s, name)));
    out
}

fn storage_over(place: &Place, budget: Option<usize>) -> (Storage, Arc<AtomicUsize>) {
    let mut storage = Storage::open(&place.location, &place.s3).unwrap();
    let writes = Arc::new(AtomicUsize::new(0));
    if let Some(budget) = budget {
        storage.store = Arc::new(Crashing {
            inner: storage.store.clone(),
            budget,
            writes: writes.clone(),
        });
    }
    (storage, writes)
}

async fn files_in(storage: &Storage, hour: i64) -> Vec<String> {
    let dir = storage.path(&layout::partition_dir("t", Signal::Traces, hour));
    let mut names: Vec<String> = storage
        .store
        .list(Some(&dir))
        .map_ok(|m| m.location.filename().unwrap().to_string())
        .try_collect()
        .await
        .unwrap();
    names.sort();
    names
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_crash_after_any_write_leaves_storage_correct() {
    let tmp = tempfile::tempdir().unwrap();
    let s3 = common::S3Server::start(tmp.path());
    for place in places(tmp.path(), s3.as_ref(), "clean") {
        crash_at_every_write(&place, tmp.path(), s3.as_ref()).await;
    }
}

async fn crash_at_every_write(place: &Place, tmp: &std::path::Path, s3: Option<&common::S3Server>) {
    // A clean pass first, counting its writes.
    let (clean, writes) = storage_over(place, Some(usize::MAX));
    let rows = seed(&clean).await;
    let before = read(&clean).await;
    let unique = before.len();
    assert_eq!(unique, rows - 1, "one span is stored twice");
    let m = CompactorMetrics::default();
    let report = pass::run(&clean, &config("k1"), now_ms(), &m, &Skipped::default()).await;
    assert!(report.errors.is_empty(), "{report:?}");
    assert_eq!((report.partitions, report.duplicates), (2, 1), "{report:?}");
    let after = read(&clean).await;
    assert_eq!(
        after.keys().collect::<Vec<_>>(),
        before.keys().collect::<Vec<_>>()
    );
    assert!(after.values().all(|&n| n == 1));
    let total = writes.load(Ordering::SeqCst);
    eprintln!(
        "{}: a clean pass made {total} writes; crashing after each",
        place.location
    );
    // Outputs and commits of two partitions, then the deletions of their inputs.
    assert!(total >= 8, "{total} writes");

    for budget in 0..total {
        let name = format!("crash-{budget}");
        let place = if place.location.starts_with("s3://") {
            Place::s3(s3.unwrap(), &name)
        } else {
            places(tmp, None, &name).remove(0)
        };
        seed(&storage_over(&place, None).0).await;
        let (crashing, _) = storage_over(&place, Some(budget));
        let _ = pass::run(&crashing, &config("k1"), now_ms(), &m, &Skipped::default()).await;
        // A reader at the crash point: every span, and either the inputs as they were or
        // each span once.
        let seen = read(&crashing).await;
        assert_eq!(
            seen.keys().collect::<Vec<_>>(),
            before.keys().collect::<Vec<_>>(),
            "budget {budget}"
        );
        let total_seen: usize = seen.values().sum();
        assert!(
            total_seen == rows || total_seen == unique || total_seen == unique + 1,
            "budget {budget}: {total_seen} rows seen"
        );
        // The next pass, without crashes, finishes the work.
        let (healthy, _) = storage_over(&place, None);
        let report = pass::run(&healthy, &config("k2"), now_ms(), &m, &Skipped::default()).await;
        assert!(report.errors.is_empty(), "budget {budget}: {report:?}");
        let seen = read(&healthy).await;
        assert_eq!(seen, after, "budget {budget}");
        for hour in [*HOUR, *HOUR + 1] {
            let names = files_in(&healthy, hour).await;
            assert_eq!(names.len(), 1, "budget {budget}: {names:?}");
            assert!(layout::is_compacted(&names[0]), "{names:?}");
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn racing_compactors_commit_each_partition_once() {
    let tmp = tempfile::tempdir().unwrap();
    let s3 = common::S3Server::start(tmp.path());
    for round in 0..5 {
        for place in places(tmp.path(), s3.as_ref(), &format!("race-{round}")) {
            let (storage, _) = storage_over(&place, None);
            seed(&storage).await;
            let before = read(&storage).await;
            let m = CompactorMetrics::default();
            let mut slow = config("k1");
            slow.delete_delay = Duration::from_secs(3600);
            let mut other = config("k2");
            other.delete_delay = Duration::from_secs(3600);
            let (sa, sb) = (Skipped::default(), Skipped::default());
            let (a, b) = tokio::join!(
                pass::run(&storage, &slow, now_ms(), &m, &sa),
                pass::run(&storage, &other, now_ms(), &m, &sb),
            );
            assert!(a.errors.is_empty() && b.errors.is_empty(), "{a:?} {b:?}");
            // Each partition was committed by one of them (the other lost or found it done).
            assert_eq!(a.partitions + b.partitions, 2, "round {round}: {a:?} {b:?}");
            let seen = read(&storage).await;
            assert_eq!(
                seen.keys().collect::<Vec<_>>(),
                before.keys().collect::<Vec<_>>()
            );
            assert!(seen.values().all(|&n| n == 1), "round {round}");
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_s3_server_honours_create_only_puts() {
    let tmp = tempfile::tempdir().unwrap();
    let Some(s3) = common::S3Server::start(tmp.path()) else {
        return;
    };
    let (storage, _) = storage_over(&Place::s3(&s3, "conditional"), None);
    let commit = strata_storage::commit::Commit {
        seq: 1,
        kind: strata_storage::commit::CommitKind::Compaction,
        created_ms: 0,
        compactor: "k".into(),
        inputs: vec![],
        outputs: vec![],
        rows_in: 0,
        rows_out: 0,
    };
    strata_storage::commit::write(&storage, "t", Signal::Traces, *HOUR, &commit)
        .await
        .unwrap();
    let again = strata_storage::commit::write(&storage, "t", Signal::Traces, *HOUR, &commit).await;
    assert!(
        matches!(
            again,
            Err(strata_storage::commit::CommitError::Conflict { .. })
        ),
        "{again:?}"
    );
}

#[tokio::test]
async fn late_files_stay_visible_and_retention_removes_whole_hours() {
    let dir = tempfile::tempdir().unwrap();
    let (storage, _) = storage_over(&Place::local(dir.path()), None);
    seed(&storage).await;
    let m = CompactorMetrics::default();
    pass::run(&storage, &config("k"), now_ms(), &m, &Skipped::default()).await;
    // A late file for the compacted hour is visible at once and compacted by the next pass.
    let rel = layout::file_path("t", Signal::Traces, *HOUR, "c9");
    storage
        .store
        .put(
            &storage.path(&rel),
            PutPayload::from(span_file(&[(42, 1000)])),
        )
        .await
        .unwrap();
    let seen = read(&storage).await;
    assert!(seen.keys().any(|(t, _)| t.starts_with("2a2a")));
    let report = pass::run(&storage, &config("k"), now_ms(), &m, &Skipped::default()).await;
    assert_eq!(report.partitions, 1, "{report:?}");
    assert_eq!(read(&storage).await, seen);
    assert_eq!(files_in(&storage, *HOUR).await.len(), 1);

    // A corrupt file is skipped and reported; its partition still compacts.
    let bad = layout::file_path("t", Signal::Traces, *HOUR, "c8");
    storage
        .store
        .put(
            &storage.path(&bad),
            PutPayload::from_static(b"PAR1 not parquet"),
        )
        .await
        .unwrap();
    let rel = layout::file_path("t", Signal::Traces, *HOUR, "c7");
    storage
        .store
        .put(
            &storage.path(&rel),
            PutPayload::from(span_file(&[(43, 1001)])),
        )
        .await
        .unwrap();
    let report = pass::run(&storage, &config("k"), now_ms(), &m, &Skipped::default()).await;
    assert_eq!(
        (report.partitions, report.skipped_files),
        (1, 1),
        "{report:?}"
    );

    // A retention that ends half an hour after the first hour: it goes, the second stays.
    let mut keep = config("k");
    let first_end_ms = (*HOUR + 1) * 3_600_000;
    keep.retention = RetentionConfig::everything(Duration::from_millis(
        (now_ms() - first_end_ms - 30 * 60_000) as u64,
    ));
    let report = pass::run(&storage, &keep, now_ms(), &m, &Skipped::default()).await;
    assert_eq!(report.retention_partitions, 1, "{report:?}");
    let seen = read(&storage).await;
    assert_eq!(seen.len(), 3, "only the second hour's spans: {seen:?}");
    // Its files, the corrupt one too, are gone (delete_delay 0).
    assert_eq!(files_in(&storage, *HOUR).await, Vec::<String>::new());
}

/// Spans of `traces` traces with `per` spans each, trace ids `t * 3 + offset`, as one
/// collector file naming WAL entries `offset..=offset + 2`.
fn many_spans(traces: u64, per: u64, offset: u64) -> Vec<u8> {
    let spans: Vec<Span> = (0..traces * per)
        .map(|i| Span {
            trace_id: (((i / per) * 3 + offset) as u128).to_be_bytes().to_vec(),
            span_id: (i + 1 + offset * traces * per).to_be_bytes().to_vec(),
            name: format!("op{}", i % 7),
            start_time_unix_nano: (*HOUR * HOUR_NANOS) as u64 + i * 997 % 1_000_000,
            end_time_unix_nano: (*HOUR * HOUR_NANOS) as u64 + i * 997 % 1_000_000 + 50,
            ..Default::default()
        })
        .collect();
    let wal = parquet::file::metadata::KeyValue::new(
        strata_storage::format::wal_entries::KEY.to_string(),
        format!("{}-{}", offset, offset + 2),
    );
    span_parquet(spans, 4096, vec![wal])
}

/// One pass of compactor `k` with the test settings, now.
async fn one_pass(storage: &Storage) -> pass::Report {
    pass::run(
        storage,
        &config("k"),
        now_ms(),
        &CompactorMetrics::default(),
        &Skipped::default(),
    )
    .await
}

/// The bytes of span file `name` in the test's closed hour.
async fn span_file_bytes(storage: &Storage, name: &str) -> bytes::Bytes {
    let path = storage.path(&format!(
        "{}/{name}",
        layout::partition_dir("t", Signal::Traces, *HOUR)
    ));
    storage
        .store
        .get(&path)
        .await
        .unwrap()
        .bytes()
        .await
        .unwrap()
}

/// Puts `bytes` as a span file of `collector` in the test's closed hour.
async fn put_span_file(storage: &Storage, collector: &str, bytes: Vec<u8>) {
    let rel = layout::file_path("t", Signal::Traces, *HOUR, collector);
    storage
        .store
        .put(&storage.path(&rel), PutPayload::from(bytes))
        .await
        .unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn outputs_split_by_trace_and_keep_the_format() {
    let dir = tempfile::tempdir().unwrap();
    let (storage, _) = storage_over(&Place::local(dir.path()), None);
    // 3 files of 3,000 traces x 4 spans, interleaving trace ids.
    for (c, offset) in [("c1", 0), ("c2", 1), ("c3", 2)] {
        put_span_file(&storage, c, many_spans(3000, 4, offset)).await;
    }
    let before = read(&storage).await;
    let mut small = config("k");
    small.target_file_bytes = 1; // split at every trace boundary after a full output batch
    small.memory_limit_bytes = 256 << 20; // one merge
    let report = pass::run(
        &storage,
        &small,
        now_ms(),
        &CompactorMetrics::default(),
        &Skipped::default(),
    )
    .await;
    assert!(report.errors.is_empty(), "{report:?}");
    assert!(report.files_out >= 3, "{report:?}");
    assert_eq!(read(&storage).await, before);
    // Each output declares the format, is sorted, has a bloom filter and a page index, carries
    // the inputs' WAL entries per collector, and no trace id is in two outputs.
    let mut seen_traces: BTreeMap<String, String> = BTreeMap::new();
    let names = files_in(&storage, *HOUR).await;
    assert_eq!(names.len() as u64, report.files_out, "{names:?}");
    for name in names {
        let bytes = span_file_bytes(&storage, &name).await;
        let builder =
            parquet::arrow::arrow_reader::ParquetRecordBatchReaderBuilder::try_new_with_options(
                bytes,
                parquet::arrow::arrow_reader::ArrowReaderOptions::new()
                    .with_page_index_policy(parquet::file::metadata::PageIndexPolicy::Required),
            )
            .unwrap();
        let meta = builder.metadata().clone();
        strata_storage::format::check(&meta, Signal::Traces).unwrap();
        let tid = (0..meta.file_metadata().schema_descr().num_columns())
            .find(|&i| meta.file_metadata().schema_descr().column(i).name() == columns::TRACE_ID)
            .unwrap();
        for rg in meta.row_groups() {
            assert!(rg.column(tid).bloom_filter_offset().is_some());
        }
        for c in ["c1", "c2", "c3"] {
            let kv = meta.file_metadata().key_value_metadata().unwrap();
            assert!(
                strata_storage::format::wal_entries::of_collector(&name, kv, c).is_some(),
                "{name}: entries of {c}"
            );
        }
        let mut last = String::new();
        for b in builder.build().unwrap() {
            let b = b.unwrap();
            let t = b
                .column_by_name(columns::TRACE_ID)
                .unwrap()
                .as_string::<i32>();
            for i in 0..b.num_rows() {
                let id = t.value(i).to_string();
                assert!(last <= id, "sorted");
                if let Some(other) = seen_traces.insert(id.clone(), name.clone()) {
                    assert_eq!(other, name, "trace {id} in two outputs");
                }
                last = id;
            }
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_partition_over_the_memory_limit_is_merged_in_rounds() {
    let dir = tempfile::tempdir().unwrap();
    let (storage, _) = storage_over(&Place::local(dir.path()), None);
    for offset in 0..6u64 {
        put_span_file(&storage, &format!("c{offset}"), many_spans(300, 4, offset)).await;
    }
    let before = read(&storage).await;
    // Two inputs a merge: three merges of the collectors' files, then two of their outputs.
    let report = one_pass(&storage).await;
    assert!(report.errors.is_empty(), "{report:?}");
    assert_eq!(
        (
            report.partitions,
            report.merges,
            report.files_in,
            report.files_out
        ),
        (1, 5, 6, 1),
        "{report:?}"
    );
    assert_eq!((report.rows_in, report.rows_out), (6 * 1200, 6 * 1200));
    assert_eq!(read(&storage).await, before);
    // The one file left carries every collector's WAL entries through the rounds.
    let names = files_in(&storage, *HOUR).await;
    assert_eq!(names.len(), 1, "{names:?}");
    let bytes = span_file_bytes(&storage, &names[0]).await;
    let meta = parquet::file::metadata::ParquetMetaDataReader::new()
        .parse_and_finish(&bytes)
        .unwrap();
    let kv = meta.file_metadata().key_value_metadata().unwrap();
    for offset in 0..6u64 {
        let entries =
            strata_storage::format::wal_entries::of_collector(&names[0], kv, &format!("c{offset}"))
                .unwrap();
        assert_eq!(
            entries,
            [offset, offset + 1, offset + 2].into(),
            "c{offset}"
        );
    }
}

#[tokio::test]
async fn metric_points_stored_twice_are_kept_once() {
    use opentelemetry_proto::tonic::metrics::v1::{
        Gauge, Metric, NumberDataPoint, ResourceMetrics, ScopeMetrics, metric, number_data_point,
    };
    let dir = tempfile::tempdir().unwrap();
    let (storage, _) = storage_over(&Place::local(dir.path()), None);
    let points = |from: u64, to: u64, instance: &str| -> Vec<u8> {
        let data_points = (from..to)
            .map(|i| NumberDataPoint {
                time_unix_nano: (*HOUR * HOUR_NANOS) as u64 + i * 1_000_000_000,
                value: Some(number_data_point::Value::AsDouble(i as f64)),
                ..Default::default()
            })
            .collect();
        let rm = ResourceMetrics {
            resource: Some(opentelemetry_proto::tonic::resource::v1::Resource {
                attributes: vec![opentelemetry_proto::tonic::common::v1::KeyValue {
                    key: "service.instance.id".into(),
                    value: Some(opentelemetry_proto::tonic::common::v1::AnyValue {
                        value: Some(
                            opentelemetry_proto::tonic::common::v1::any_value::Value::StringValue(
                                instance.into(),
                            ),
                        ),
                    }),
                    ..Default::default()
                }],
                ..Default::default()
            }),
            scope_metrics: vec![ScopeMetrics {
                metrics: vec![Metric {
                    name: "queue_depth".into(),
                    data: Some(metric::Data::Gauge(Gauge { data_points })),
                    ..Default::default()
                }],
                ..Default::default()
            }],
            ..Default::default()
        };
        let batch = strata_schema::metrics::to_batch(&[rm]).unwrap();
        let options = ParquetOptions {
            row_group_rows: 1024,
            zstd_level: 1,
        };
        encode(Signal::Metrics, &[batch], Vec::new(), options)
            .unwrap()
            .0
    };
    // Points 0..100 and 50..150 of one instance: 50 are stored twice (a retried batch); the
    // same series and times of another instance are other points.
    for (c, from, to, instance) in [
        ("c1", 0, 100, "a"),
        ("c2", 50, 150, "a"),
        ("c3", 0, 40, "b"),
    ] {
        let rel = layout::file_path("t", Signal::Metrics, *HOUR, c);
        storage
            .store
            .put(
                &storage.path(&rel),
                PutPayload::from(points(from, to, instance)),
            )
            .await
            .unwrap();
    }
    let report = one_pass(&storage).await;
    assert_eq!(
        (report.rows_in, report.rows_out, report.duplicates),
        (240, 190, 50),
        "{report:?}"
    );
}
