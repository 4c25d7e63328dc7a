//! The query engine: a DataFusion session per request, scoped to one tenant.
//!
//! Tables `spans`, `logs` and `metrics` are listing tables over
//! `tenant=<t>/signal=<s>/` with the partition columns `date` and `hour`, using the schema
//! from `strata-schema` (no inference, so a tenant without files yet is simply empty).
//! DataFusion lists through [`LiveStore`]: it sees each signal's live files only (never a
//! compaction's inputs and outputs at once), from a snapshot at most
//! `live_files_max_staleness_ms` old, so new files show up within that bound.
//!
//! Sessions share one cache of Parquet footers, checked against each file's size and
//! modification time, and trace lookups go through the shared [`TraceIndex`].
//!
//! Invariants: sessions are read-only (no DDL, DML, `COPY` or statements; no URL tables);
//! each query runs under its own memory pool, three quarters of the memory its
//! [`budget`](crate::budget) allows (so sorts and aggregations spill before the budget stops
//! the query), and with [`bounded`](crate::bounded) versions of the functions that grow
//! their output.

use std::sync::Arc;

use arrow::datatypes::DataType;
use arrow::record_batch::RecordBatch;
use datafusion::datasource::file_format::parquet::ParquetFormat;
use datafusion::datasource::listing::{
    ListingOptions, ListingTable, ListingTableConfig, ListingTableUrl,
};
use datafusion::error::DataFusionError;
use datafusion::execution::cache::cache_manager::{CacheManagerConfig, FileMetadataCache};
use datafusion::execution::cache::default_cache::DefaultCache;
use datafusion::execution::object_store::{DefaultObjectStoreRegistry, ObjectStoreRegistry};
use datafusion::execution::runtime_env::{RuntimeEnv, RuntimeEnvBuilder};
use datafusion::prelude::{SQLOptions, SessionConfig, SessionContext};
use strata_schema::Signal;
use strata_storage::Storage;
use strata_storage::layout;
use strata_storage::live::LiveFiles;

use crate::config::QueryConfig;
use crate::error::QueryError;
use crate::live_store::LiveStore;
use crate::traces::index::TraceIndex;

pub struct Engine {
    config: QueryConfig,
    storage: Storage,
    stores: Arc<DefaultObjectStoreRegistry>,
    footers: Arc<FileMetadataCache>,
    trace_index: TraceIndex,
}

impl Engine {
    pub fn new(config: QueryConfig) -> Result<Self, QueryError> {
        crate::budget::install();
        let storage = Storage::open(&config.storage, &config.s3)
            .map_err(|e| QueryError::Internal(e.to_string()))?;
        let live = Arc::new(LiveFiles::new(
            storage.store.clone(),
            config.live_files_max_staleness(),
        ));
        let stores = Arc::new(DefaultObjectStoreRegistry::new());
        stores.register_store(
            &storage.store_url,
            Arc::new(LiveStore::new(storage.store.clone(), live.clone())),
        );
        let footers = Arc::new(
            DefaultCache::new(config.metadata_cache_bytes).with_name("StrataParquetFooters"),
        );
        let trace_index = TraceIndex::new(storage.store.clone(), live, config.trace_index_bytes);
        Ok(Self {
            config,
            storage,
            stores,
            footers,
            trace_index,
        })
    }

    pub fn config(&self) -> &QueryConfig {
        &self.config
    }

    pub fn trace_index(&self) -> &TraceIndex {
        &self.trace_index
    }

    /// Where `tenant`'s files of `signal` are, as an object store path.
    pub fn signal_path(
        &self,
        tenant: &str,
        signal: Signal,
    ) -> Result<object_store::path::Path, QueryError> {
        check_tenant(tenant)?;
        Ok(self.storage.path(&layout::signal_dir(tenant, signal)))
    }

    /// A query's runtime: its own memory pool (the budget of the query the thread works for,
    /// else the service's limit), the shared object stores and footer cache.
    pub fn runtime(&self) -> Result<Arc<RuntimeEnv>, QueryError> {
        let memory = crate::budget::current().map_or(self.config.memory_limit_bytes, |a| a.limit());
        RuntimeEnvBuilder::new()
            .with_memory_limit(memory, 0.75)
            .with_object_store_registry(self.stores.clone())
            .with_cache_manager(
                CacheManagerConfig::default()
                    .with_file_metadata_cache(Some(self.footers.clone()))
                    .with_metadata_cache_limit(self.config.metadata_cache_bytes),
            )
            .build_arc()
            .map_err(QueryError::from)
    }

    /// A fresh read-only session over `tenant`'s tables.
    pub fn session(&self, tenant: &str) -> Result<SessionContext, QueryError> {
        check_tenant(tenant)?;
        let runtime = self.runtime()?;
        let mut session_config = SessionConfig::new()
            .with_information_schema(true)
            .with_default_catalog_and_schema("strata", "public");
        let options = session_config.options_mut();
        options.execution.parquet.pushdown_filters = true;
        options.execution.parquet.reorder_filters = true;
        options.execution.parquet.bloom_filter_on_read = true;
        options.execution.parquet.enable_page_index = true;
        let ctx = SessionContext::new_with_config_rt(session_config, runtime);
        for signal in Signal::ALL {
            let dir = self.storage.dir_url(&layout::signal_dir(tenant, signal));
            let url = ListingTableUrl::parse(&dir).map_err(QueryError::from)?;
            let listing = ListingOptions::new(Arc::new(ParquetFormat::default()))
                .with_file_extension(".parquet")
                .with_table_partition_cols(
                    layout::TIME_PARTITION_COLUMNS
                        .iter()
                        .map(|c| (c.to_string(), DataType::Utf8))
                        .collect(),
                );
            let table_config = ListingTableConfig::new(url)
                .with_listing_options(listing)
                .with_schema(signal.schema());
            let table = ListingTable::try_new(table_config).map_err(QueryError::from)?;
            ctx.register_table(signal.table_name(), Arc::new(table))
                .map_err(QueryError::from)?;
        }
        crate::bounded::register(&ctx);
        Ok(ctx)
    }

    /// Runs one read-only SQL statement for `tenant` under the time limit.
    pub async fn sql(
        &self,
        tenant: &str,
        sql: &str,
    ) -> Result<(arrow::datatypes::SchemaRef, Vec<RecordBatch>), QueryError> {
        let options = read_only();
        let run = async {
            // A file of the snapshot deleted since (its compaction's `delete_delay` was shorter
            // than the snapshot's age): the store dropped the snapshot; run once more on a
            // fresh one.
            let mut retried = false;
            loop {
                let ctx = self.session(tenant)?;
                let attempt = async {
                    let df = ctx.sql_with_options(sql, options).await?;
                    let schema: arrow::datatypes::SchemaRef =
                        Arc::new(df.schema().as_arrow().clone());
                    let limit = self.config.max_result_rows;
                    // Ask for one row more than allowed, to tell "exactly the limit" from "too many".
                    let batches = df.limit(0, Some(limit + 1))?.collect().await?;
                    Ok::<_, DataFusionError>((schema, batches))
                };
                match attempt.await {
                    Err(e) if !retried && crate::live_store::is_not_found(&e) => retried = true,
                    r => return r.map_err(QueryError::from),
                }
            }
        };
        let (schema, batches) = tokio::time::timeout(self.config.timeout(), run)
            .await
            .map_err(|_| QueryError::Timeout(self.config.timeout()))??;
        let rows: usize = batches.iter().map(RecordBatch::num_rows).sum();
        if rows > self.config.max_result_rows {
            return Err(QueryError::TooLarge(format!(
                "the result has more than {} rows; add a LIMIT or aggregate",
                self.config.max_result_rows
            )));
        }
        Ok((schema, batches))
    }
}

/// What every SQL statement of every protocol may do: read (no DDL, DML, `COPY` or
/// statements such as `SET`).
pub fn read_only() -> SQLOptions {
    SQLOptions::new()
        .with_allow_ddl(false)
        .with_allow_dml(false)
        .with_allow_statements(false)
}

/// Most parameters a statement may have (PostgreSQL's protocol counts them in 16 bits).
pub const MAX_PARAMETERS: usize = u16::MAX as usize;

/// The types of `plan`'s parameters `$1` to `$n` in order, `n` the highest one used (`None`:
/// not inferred, or not used). Any other placeholder is refused.
pub fn parameter_types(
    plan: &datafusion::logical_expr::LogicalPlan,
) -> Result<Vec<Option<DataType>>, QueryError> {
    let mut out: Vec<Option<DataType>> = Vec::new();
    for (id, t) in plan.get_parameter_types().map_err(QueryError::from)? {
        let n = id
            .strip_prefix('$')
            .and_then(|n| n.parse::<usize>().ok())
            .filter(|n| (1..=MAX_PARAMETERS).contains(n))
            .ok_or_else(|| {
                QueryError::BadRequest(format!(
                    "parameter {id}: parameters are $1 to ${MAX_PARAMETERS}"
                ))
            })?;
        if out.len() < n {
            out.resize(n, None);
        }
        out[n - 1] = t;
    }
    Ok(out)
}

/// Refuses a tenant name that cannot be a storage path segment.
fn check_tenant(tenant: &str) -> Result<(), QueryError> {
    strata_schema::envelope::validate_tenant(tenant)
        .map_err(|e| QueryError::BadRequest(format!("tenant: {e}")))
}

#[cfg(test)]
mod tests {
    use super::*;

    async fn types(sql: &str) -> Result<Vec<Option<DataType>>, QueryError> {
        let ctx = SessionContext::new();
        // DataFusion refuses some placeholders itself (`$0`); either way it is an error.
        let plan = ctx.state().create_logical_plan(sql).await?;
        parameter_types(&plan)
    }

    #[tokio::test]
    async fn parameters_come_in_order_and_out_of_range_ones_are_refused() {
        let t = types("SELECT $2 + 1, $1 = 'a'").await.unwrap();
        assert_eq!(t, vec![Some(DataType::Utf8), Some(DataType::Int64)]);
        assert_eq!(types("SELECT $3 = 'x'").await.unwrap().len(), 3);
        assert!(matches!(
            types("SELECT $0").await,
            Err(QueryError::BadRequest(_))
        ));
        // Past the protocol's 65,535: refused here, not a 70,000-slot vector.
        assert!(matches!(
            types("SELECT $70000").await,
            Err(QueryError::BadRequest(_))
        ));
        assert!(matches!(
            types("SELECT $4000000000").await,
            Err(QueryError::BadRequest(_))
        ));
    }
}
