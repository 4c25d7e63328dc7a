//! Which span files, row groups and pages can hold a trace id, decided from memory.
//!
//! A trace lookup must not open every file: with one file per collector flush there are
//! thousands. Span files are immutable once written, so each file's Parquet footer (with its
//! offset index), the `trace_id` range and bloom filter of each row group, and the `trace_id`
//! range of each page are loaded once and kept in an LRU cache bounded in bytes. A lookup then
//! takes the live span files from the shared [`LiveFiles`] snapshot (only the partitions of the
//! time hint, when there is one; files compacted away are forgotten), keeps the
//! row groups whose range and bloom filter admit an id, and reads from those only the pages
//! whose range admits it (files are sorted by trace id, so a trace sits in one or two pages),
//! keeping the rows whose `trace_id` matches while decoding.
//!
//! This bypasses DataFusion on purpose: a SQL plan re-reads every file's footer and bloom
//! filters per query, which at thousands of files costs more than the lookup itself.
//!
//! Invariants: never a false negative. A row group or page without statistics or bloom filter
//! is read, and so are all pages of a file that does not declare Strata's format and sort
//! order; a path without a readable partition is listed whatever the hint; a cached entry is
//! used only while the listed size and modification time still match; a file whose footer
//! cannot be read fails the lookup rather than silently dropping its spans.

use std::collections::{HashMap, HashSet};
use std::ops::Range;
use std::sync::{Arc, Mutex};

use arrow::array::{Array, BooleanArray, RecordBatch, StringArray};
use arrow::compute::cast;
use arrow::datatypes::DataType;
use datafusion::execution::cache::default_cache::DefaultCache;
use datafusion::execution::cache::{Cache, CacheValue};
use futures::{StreamExt, TryStreamExt, stream};
use object_store::path::Path;
use object_store::{ObjectMeta, ObjectStore, ObjectStoreExt};
use parquet::arrow::ParquetRecordBatchStreamBuilder;
use parquet::arrow::ProjectionMask;
use parquet::arrow::arrow_reader::{
    ArrowPredicateFn, ArrowReaderMetadata, ArrowReaderOptions, RowFilter, RowSelection,
};
use parquet::bloom_filter::Sbbf;
use parquet::file::metadata::PageIndexPolicy;
use parquet::file::page_index::column_index::ColumnIndexMetaData;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::registry::Registry;
use strata_schema::{Signal, columns};
use strata_storage::live::{LiveFiles, Snapshot};
use strata_storage::reader::FileReader;
use strata_storage::{format, layout};

use super::TimeRange;
use crate::error::QueryError;

/// Files opened or read at once by one lookup.
const CONCURRENCY: usize = 16;

/// The cache of span-file indexes, shared by every lookup of every tenant.
pub struct TraceIndex {
    store: Arc<dyn ObjectStore>,
    live: Arc<LiveFiles>,
    /// The last snapshot seen of each span directory, to forget files no longer live.
    seen: Mutex<HashMap<Path, Arc<Snapshot>>>,
    files: DefaultCache<Path, Entry>,
    metrics: IndexMetrics,
}

/// What lookups did, as `strata_query_trace_lookup_*` metrics.
#[derive(Clone, Default)]
pub struct IndexMetrics {
    /// Span files listed and skipped from memory (no row group admits the id).
    pub files_pruned: Counter,
    /// Span files read (some row group admits the id).
    pub files_read: Counter,
    /// Span files whose footer and bloom filters were loaded (a cache miss).
    pub files_loaded: Counter,
    /// Bytes of file indexes held.
    pub index_bytes: Gauge,
}

/// What a lookup needs of one span file.
struct SpanFile {
    meta: ObjectMeta,
    /// The footer with the offset index (to fetch single pages) but not the column index.
    reader: ArrowReaderMetadata,
    /// Leaf column index of `trace_id`.
    trace_id: usize,
    groups: Vec<Group>,
    bytes: usize,
}

struct Group {
    rows: usize,
    range: Option<(Vec<u8>, Vec<u8>)>,
    bloom: Option<Sbbf>,
    /// First row and `trace_id` range of each page; empty when the file has no page index.
    pages: Vec<Page>,
}

struct Page {
    first_row: usize,
    range: Option<(Vec<u8>, Vec<u8>)>,
}

#[derive(Clone)]
struct Entry(Arc<SpanFile>);

impl CacheValue for Entry {
    fn size(&self) -> usize {
        self.0.bytes
    }
}

/// Whether `id` may lie in `range` (inclusive); no range means it may.
fn admits(range: &Option<(Vec<u8>, Vec<u8>)>, id: &[u8]) -> bool {
    range
        .as_ref()
        .is_none_or(|(min, max)| min.as_slice() <= id && id <= max.as_slice())
}

impl Group {
    fn admits(&self, id: &str) -> bool {
        admits(&self.range, id.as_bytes()) && self.bloom.as_ref().is_none_or(|b| b.check(id))
    }

    /// Rows of this group (relative to its first row) in pages that may hold one of `ids`.
    fn rows_for(&self, ids: &[&str]) -> Vec<Range<usize>> {
        if self.pages.is_empty() {
            return std::iter::once(0..self.rows).collect();
        }
        let mut out: Vec<Range<usize>> = Vec::new();
        for (i, page) in self.pages.iter().enumerate() {
            if !ids.iter().any(|id| admits(&page.range, id.as_bytes())) {
                continue;
            }
            let end = self.pages.get(i + 1).map_or(self.rows, |p| p.first_row);
            match out.last_mut() {
                Some(last) if last.end == page.first_row => last.end = end,
                _ => out.push(page.first_row..end),
            }
        }
        out
    }
}

impl TraceIndex {
    /// An index over `store`'s live files (resolved by `live`), keeping at most `max_bytes`
    /// of file indexes in memory.
    pub fn new(store: Arc<dyn ObjectStore>, live: Arc<LiveFiles>, max_bytes: usize) -> Self {
        Self {
            store,
            live,
            seen: Mutex::new(HashMap::new()),
            files: DefaultCache::new(max_bytes).with_name("StrataTraceIndex"),
            metrics: IndexMetrics::default(),
        }
    }

    /// Registers the lookup metrics under `strata_query_trace_lookup`.
    pub fn register(&self, registry: &mut Registry) {
        let r = registry.sub_registry_with_prefix("strata_query_trace_lookup");
        let m = &self.metrics;
        r.register(
            "files_pruned",
            "Span files a trace lookup skipped by trace id range and bloom filter",
            m.files_pruned.clone(),
        );
        r.register(
            "files_read",
            "Span files a trace lookup read",
            m.files_read.clone(),
        );
        r.register(
            "files_loaded",
            "Span file indexes loaded into memory (cache misses)",
            m.files_loaded.clone(),
        );
        r.register(
            "index_bytes",
            "Memory held by the trace index",
            m.index_bytes.clone(),
        );
    }

    pub fn metrics(&self) -> &IndexMetrics {
        &self.metrics
    }

    /// Every stored row of the traces `ids` (normalized) under the span directory `dir`, in
    /// the files' own schema; with a hint, only from the partitions of its hours.
    pub async fn spans(
        &self,
        dir: &Path,
        ids: &[String],
        hint: Option<TimeRange>,
    ) -> Result<Vec<RecordBatch>, QueryError> {
        let ids: Vec<&str> = ids.iter().map(String::as_str).collect();
        let files = self.list(dir, hint).await?;
        let opened: Vec<Option<Arc<SpanFile>>> = stream::iter(files)
            .map(|meta| self.open(meta))
            .buffer_unordered(CONCURRENCY)
            .try_collect()
            .await?;
        let mut reads = Vec::new();
        for file in opened.into_iter().flatten() {
            let groups: Vec<usize> = (0..file.groups.len())
                .filter(|&g| ids.iter().any(|id| file.groups[g].admits(id)))
                .collect();
            if groups.is_empty() {
                self.metrics.files_pruned.inc();
            } else {
                self.metrics.files_read.inc();
                reads.push((file, groups));
            }
        }
        let ids = &ids;
        let batches: Vec<Vec<RecordBatch>> = stream::iter(reads)
            .map(|(file, groups)| self.read(file, groups, ids))
            .buffer_unordered(CONCURRENCY)
            .try_collect()
            .await?;
        Ok(batches.into_iter().flatten().collect())
    }

    /// The live span files under `dir`, narrowed to the hint's hours.
    async fn list(
        &self,
        dir: &Path,
        hint: Option<TimeRange>,
    ) -> Result<Vec<ObjectMeta>, QueryError> {
        let snapshot = self
            .live
            .snapshot(dir)
            .await
            .map_err(|e| QueryError::Internal(format!("listing span files: {e}")))?;
        self.forget_dead(dir, &snapshot);
        let files = match hint {
            Some(r) => snapshot
                .live_in(layout::hour_of(r.start_ns)..=layout::hour_of(r.end_ns))
                .cloned()
                .collect(),
            None => snapshot.live().cloned().collect(),
        };
        Ok(files)
    }

    /// Drops the cached indexes of files that were live in the previous snapshot of `dir` and
    /// are not in `snapshot` (compacted away or past retention).
    fn forget_dead(&self, dir: &Path, snapshot: &Arc<Snapshot>) {
        let previous = {
            let mut seen = self.seen.lock().unwrap_or_else(|e| e.into_inner());
            match seen.insert(dir.clone(), snapshot.clone()) {
                Some(p) if !Arc::ptr_eq(&p, snapshot) => p,
                _ => return,
            }
        };
        let now: HashSet<&Path> = snapshot.live().map(|m| &m.location).collect();
        for gone in previous.live().filter(|m| !now.contains(&m.location)) {
            self.files.remove(&gone.location);
        }
        self.metrics
            .index_bytes
            .set(i64::try_from(self.files.memory_used()).unwrap_or(i64::MAX));
    }

    /// The index of one file, from the cache while the file is unchanged; `None` when the
    /// file was deleted since it was listed (retention): its rows are gone anyway.
    async fn open(&self, meta: ObjectMeta) -> Result<Option<Arc<SpanFile>>, QueryError> {
        if let Some(Entry(file)) = self.files.get(&meta.location)
            && file.meta.size == meta.size
            && file.meta.last_modified == meta.last_modified
        {
            return Ok(Some(file));
        }
        let location = meta.location.clone();
        let file = match load(self.store.clone(), meta).await {
            Ok(file) => Arc::new(file),
            Err(e) if self.is_gone(&location).await => {
                tracing::debug!("span file {location} deleted since listed: {e}");
                return Ok(None);
            }
            Err(e) => return Err(QueryError::Internal(format!("span file {location}: {e}"))),
        };
        self.files.put(&location, Entry(file.clone()));
        self.metrics.files_loaded.inc();
        self.metrics
            .index_bytes
            .set(i64::try_from(self.files.memory_used()).unwrap_or(i64::MAX));
        Ok(Some(file))
    }

    /// Whether the file at `location` no longer exists.
    async fn is_gone(&self, location: &Path) -> bool {
        matches!(
            self.store.head(location).await,
            Err(object_store::Error::NotFound { .. })
        )
    }

    /// The rows of `ids` in row groups `groups` of `file`, reading only their candidate pages.
    async fn read(
        &self,
        file: Arc<SpanFile>,
        groups: Vec<usize>,
        ids: &[&str],
    ) -> Result<Vec<RecordBatch>, QueryError> {
        let mut ranges = Vec::new();
        let mut offset = 0;
        for &g in &groups {
            let group = &file.groups[g];
            ranges.extend(
                group
                    .rows_for(ids)
                    .into_iter()
                    .map(|r| r.start + offset..r.end + offset),
            );
            offset += group.rows;
        }
        if ranges.is_empty() {
            // The row groups' bloom filters admitted an id that no page's range holds.
            return Ok(Vec::new());
        }
        let selection = RowSelection::from_consecutive_ranges(ranges.into_iter(), offset);
        let wanted: HashSet<String> = ids.iter().map(|id| id.to_string()).collect();
        let mask = ProjectionMask::leaves(file.reader.parquet_schema(), [file.trace_id]);
        let predicate = ArrowPredicateFn::new(mask, move |batch: RecordBatch| {
            let ids = cast(batch.column(0), &DataType::Utf8)?;
            let ids = ids
                .as_any()
                .downcast_ref::<StringArray>()
                .ok_or_else(|| arrow::error::ArrowError::CastError("trace_id".into()))?;
            Ok(ids
                .iter()
                .map(|v| Some(v.is_some_and(|v| wanted.contains(v))))
                .collect::<BooleanArray>())
        });
        let reader = FileReader::new(
            self.store.clone(),
            file.meta.location.clone(),
            file.meta.size,
        );
        let stream =
            ParquetRecordBatchStreamBuilder::new_with_metadata(reader, file.reader.clone())
                .with_row_groups(groups)
                .with_row_selection(selection)
                .with_row_filter(RowFilter::new(vec![Box::new(predicate)]))
                .build()
                .map_err(|e| read_error(&file, e))?;
        let batches: Vec<RecordBatch> = match stream.try_collect().await {
            Ok(batches) => batches,
            Err(e) if self.is_gone(&file.meta.location).await => {
                tracing::debug!("span file {} deleted since listed: {e}", file.meta.location);
                return Ok(Vec::new());
            }
            Err(e) => return Err(read_error(&file, e)),
        };
        Ok(batches.into_iter().filter(|b| b.num_rows() > 0).collect())
    }
}

fn read_error(file: &SpanFile, e: impl std::fmt::Display) -> QueryError {
    QueryError::Internal(format!("span file {}: {e}", file.meta.location))
}

/// Reads a file's footer, page index and `trace_id` bloom filters.
async fn load(store: Arc<dyn ObjectStore>, meta: ObjectMeta) -> parquet::errors::Result<SpanFile> {
    let mut reader = FileReader::new(store, meta.location.clone(), meta.size);
    let options = ArrowReaderOptions::new().with_page_index_policy(PageIndexPolicy::Optional);
    let full = ArrowReaderMetadata::load_async(&mut reader, options.clone()).await?;
    let parquet_schema = full.parquet_schema();
    let trace_id = (0..parquet_schema.num_columns())
        .find(|&i| parquet_schema.column(i).path().string() == columns::TRACE_ID)
        .ok_or_else(|| parquet::errors::ParquetError::General("no trace_id column".into()))?;
    let metadata = full.metadata().clone();
    // Page ranges prune only in files that declare the trace-id order; others are read whole.
    let sorted = format::check(&metadata, Signal::Traces)
        .inspect_err(|e| {
            tracing::debug!("span file {}: {e}; its pages are not pruned", meta.location)
        })
        .is_ok();
    let column_index = metadata.column_index().filter(|_| sorted);
    let offset_index = metadata.offset_index();
    let mut builder = ParquetRecordBatchStreamBuilder::new_with_metadata(reader, full.clone());
    let mut groups = Vec::with_capacity(metadata.num_row_groups());
    let mut bytes = 0;
    for (g, rg) in metadata.row_groups().iter().enumerate() {
        let chunk = rg.column(trace_id);
        let range = chunk
            .statistics()
            .and_then(|s| Some((s.min_bytes_opt()?.to_vec(), s.max_bytes_opt()?.to_vec())));
        let bloom = builder
            .get_row_group_column_bloom_filter(g, trace_id)
            .await?;
        bytes += chunk.bloom_filter_length().unwrap_or(0).max(0) as usize;
        let pages = match (
            column_index.and_then(|c| c.get(g)?.get(trace_id)),
            offset_index.and_then(|o| o.get(g)?.get(trace_id)),
        ) {
            (Some(ColumnIndexMetaData::BYTE_ARRAY(index)), Some(offsets)) => offsets
                .page_locations()
                .iter()
                .enumerate()
                .map(|(p, location)| Page {
                    first_row: location.first_row_index.max(0) as usize,
                    range: index
                        .min_value(p)
                        .zip(index.max_value(p))
                        .map(|(min, max)| (min.to_vec(), max.to_vec())),
                })
                .collect(),
            _ => Vec::new(),
        };
        bytes += pages.len() * (std::mem::size_of::<Page>() + 64);
        groups.push(Group {
            rows: rg.num_rows().max(0) as usize,
            range,
            bloom,
            pages,
        });
    }
    // The column index of every column is the bulk of a page index; only `trace_id`'s page
    // ranges (copied above) are needed, so the footer is kept without it.
    let slim = Arc::new(
        metadata
            .as_ref()
            .clone()
            .into_builder()
            .set_column_index(None)
            .build(),
    );
    bytes += slim.memory_size();
    let reader = ArrowReaderMetadata::try_new(slim, options)?;
    Ok(SpanFile {
        meta,
        reader,
        trace_id,
        groups,
        bytes,
    })
}

#[cfg(test)]
mod tests {
    use std::path::PathBuf;

    use object_store::local::LocalFileSystem;
    use opentelemetry_proto::tonic::trace::v1::{ResourceSpans, ScopeSpans, Span};
    use strata_storage::format::{ParquetOptions, encode};

    use super::*;

    const HOUR: i64 = 490_000; // hours since the epoch, in 2025

    fn id(kind: u8, i: u32) -> String {
        format!("{kind:02x}{i:030x}")
    }

    /// One file in `hour`'s partition with `spans` spans of each trace in `traces`.
    fn write(root: &std::path::Path, hour: i64, traces: &[String], spans: u64) -> PathBuf {
        let path = root.join(layout::file_path("t", Signal::Traces, hour, "c1"));
        std::fs::create_dir_all(path.parent().unwrap()).unwrap();
        std::fs::write(&path, file(hour, traces, spans)).unwrap();
        path
    }

    fn file(hour: i64, traces: &[String], spans: u64) -> Vec<u8> {
        let spans: Vec<Span> = traces
            .iter()
            .flat_map(|t| {
                (1..=spans).map(move |s| Span {
                    trace_id: hex::decode(t).unwrap(),
                    span_id: s.to_be_bytes().to_vec(),
                    name: "op".into(),
                    start_time_unix_nano: (hour * layout::HOUR_NANOS) as u64,
                    end_time_unix_nano: (hour * layout::HOUR_NANOS + 1000) as u64,
                    ..Default::default()
                })
            })
            .collect();
        let rs = ResourceSpans {
            scope_spans: vec![ScopeSpans {
                spans,
                ..Default::default()
            }],
            ..Default::default()
        };
        let batch = strata_schema::traces::to_batch(&[rs]).unwrap();
        let options = ParquetOptions {
            row_group_rows: 100_000,
            zstd_level: 1,
        };
        encode(Signal::Traces, &[batch], Vec::new(), options)
            .unwrap()
            .0
    }

    fn trace_ids(batches: &[RecordBatch]) -> Vec<String> {
        let mut out = Vec::new();
        for b in batches {
            let a = cast(
                b.column_by_name(columns::TRACE_ID).unwrap(),
                &DataType::Utf8,
            )
            .unwrap();
            let a = a.as_any().downcast_ref::<StringArray>().unwrap();
            out.extend(a.iter().map(|v| v.unwrap().to_string()));
        }
        out.sort();
        out
    }

    #[tokio::test]
    async fn lookups_read_only_files_that_hold_the_trace() {
        let root = tempfile::tempdir().unwrap();
        // 3000 traces of 4 spans: one row group of two 8192-row pages.
        let big: Vec<String> = (0..3000).map(|i| id(1, i)).collect();
        write(root.path(), HOUR, &big, 4);
        // The first trace's late span, an hour later, among other traces.
        let mut late: Vec<String> = (0..100).map(|i| id(2, i)).collect();
        late.push(big[0].clone());
        write(root.path(), HOUR + 1, &late, 1);
        let other: Vec<String> = (0..100).map(|i| id(3, i)).collect();
        let third = write(root.path(), HOUR, &other, 2);

        let store: Arc<dyn ObjectStore> = Arc::new(LocalFileSystem::new());
        let live = Arc::new(LiveFiles::new(store.clone(), std::time::Duration::ZERO));
        let index = TraceIndex::new(store, live, 64 << 20);
        let dir = Path::from_filesystem_path(root.path())
            .unwrap()
            .join("tenant=t")
            .join("signal=traces");
        let m = index.metrics().clone();

        let got = index.spans(&dir, &[big[0].clone()], None).await.unwrap();
        assert_eq!(trace_ids(&got), vec![big[0].clone(); 5]);
        assert_eq!((m.files_read.get(), m.files_pruned.get()), (2, 1));
        assert_eq!(m.files_loaded.get(), 3);
        assert!(m.index_bytes.get() > 0);

        // Both pages' traces, and an id stored nowhere; the indexes come from memory now.
        let ids = [big[2999].clone(), big[1].clone(), id(9, 9)];
        let got = index.spans(&dir, &ids, None).await.unwrap();
        let mut want = vec![big[1].clone(); 4];
        want.extend(vec![big[2999].clone(); 4]);
        assert_eq!(trace_ids(&got), want);
        assert_eq!(m.files_loaded.get(), 3);

        // A time hint lists only its hours' partitions.
        let hour = TimeRange {
            start_ns: HOUR * layout::HOUR_NANOS,
            end_ns: HOUR * layout::HOUR_NANOS + 10,
        };
        let got = index
            .spans(&dir, &[big[0].clone()], Some(hour))
            .await
            .unwrap();
        assert_eq!(trace_ids(&got), vec![big[0].clone(); 4]);
        let far = TimeRange {
            start_ns: 0,
            end_ns: (HOUR + 1) * layout::HOUR_NANOS,
        };
        let got = index
            .spans(&dir, &[big[0].clone()], Some(far))
            .await
            .unwrap();
        assert_eq!(got.iter().map(RecordBatch::num_rows).sum::<usize>(), 5);
        let empty_hours = TimeRange {
            start_ns: (HOUR + 5) * layout::HOUR_NANOS,
            end_ns: (HOUR + 6) * layout::HOUR_NANOS,
        };
        let got = index
            .spans(&dir, &[big[0].clone()], Some(empty_hours))
            .await;
        assert!(got.unwrap().is_empty());

        // A file replaced in place is indexed again.
        let mut with_first = other.clone();
        with_first.push(big[0].clone());
        std::fs::write(&third, file(HOUR, &with_first, 3)).unwrap();
        let got = index.spans(&dir, &[big[0].clone()], None).await.unwrap();
        assert_eq!(got.iter().map(RecordBatch::num_rows).sum::<usize>(), 8);
        assert_eq!(m.files_loaded.get(), 4);

        // Files deleted after the listing (retention) are skipped, whether their index was
        // cached (the read finds them gone) or not (the load does).
        let listed = index.list(&dir, None).await.unwrap();
        let fresh = write(root.path(), HOUR, &[big[0].clone()], 1);
        let listed_again = index.list(&dir, None).await.unwrap();
        assert_eq!(listed_again.len(), listed.len() + 1);
        std::fs::remove_file(&third).unwrap();
        std::fs::remove_file(&fresh).unwrap();
        let opened: Vec<Option<Arc<SpanFile>>> = stream::iter(listed_again)
            .then(|meta| index.open(meta))
            .try_collect()
            .await
            .unwrap();
        assert_eq!(
            opened.iter().filter(|f| f.is_some()).count(),
            3,
            "cached ones"
        );
        let third_entry = opened
            .into_iter()
            .flatten()
            .find(|f| {
                f.meta
                    .location
                    .as_ref()
                    .ends_with(third.file_name().unwrap().to_str().unwrap())
            })
            .unwrap();
        let read = index.read(third_entry, vec![0], &[big[0].as_str()]).await;
        assert!(read.unwrap().is_empty());
    }

    #[test]
    #[allow(clippy::single_range_in_vec_init)] // a list of one row range is what is meant
    fn pages_are_chosen_by_their_trace_id_range() {
        let page = |first_row, min: &str, max: &str| Page {
            first_row,
            range: Some((min.as_bytes().to_vec(), max.as_bytes().to_vec())),
        };
        let group = Group {
            rows: 300,
            range: None,
            bloom: None,
            pages: vec![page(0, "a", "c"), page(100, "c", "e"), page(200, "f", "h")],
        };
        assert_eq!(group.rows_for(&["c"]), [0..200]);
        assert_eq!(group.rows_for(&["g"]), [200..300]);
        assert_eq!(group.rows_for(&["a", "g"]), vec![0..100, 200..300]);
        assert!(group.rows_for(&["z"]).is_empty());
        let unindexed = Group {
            pages: Vec::new(),
            ..group
        };
        assert_eq!(unindexed.rows_for(&["z"]), [0..300]);
    }
}
