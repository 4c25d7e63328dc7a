//! The object store DataFusion reads through: the storage's own store, except that listings
//! below a `tenant=/signal=` directory answer with that directory's live files
//! ([`strata_storage::live`]), from the shared snapshot cache.
//!
//! So SQL sessions see each row once while the compactor works (inputs of a commit vanish and
//! its outputs appear in one step), never see a crashed pass's outputs or commit records, and
//! do not list storage again while the snapshot is fresh. Reads and everything outside signal
//! directories go to the inner store unchanged; a read of a file that is gone (deleted by the
//! compactor after its `delete_delay`, while a snapshot still named it) drops the snapshot of
//! its directory, so the next query resolves afresh ([`is_not_found`] tells such errors).

use std::collections::BTreeSet;
use std::fmt;
use std::ops::Range;
use std::sync::Arc;

use async_trait::async_trait;
use bytes::Bytes;
use futures::stream::{self, BoxStream, StreamExt};
use object_store::path::Path;
use object_store::{
    CopyOptions, GetOptions, GetResult, ListResult, MultipartUpload, ObjectMeta, ObjectStore,
    PutMultipartOptions, PutOptions, PutPayload, PutResult, RenameOptions, Result,
};
use strata_storage::live::LiveFiles;

#[derive(Debug)]
pub struct LiveStore {
    inner: Arc<dyn ObjectStore>,
    live: Arc<LiveFiles>,
}

impl LiveStore {
    pub fn new(inner: Arc<dyn ObjectStore>, live: Arc<LiveFiles>) -> Self {
        Self { inner, live }
    }

    /// The live files below `prefix`, when `prefix` lies in a signal directory.
    async fn live_below(live: &LiveFiles, prefix: &Path) -> Option<Result<Vec<ObjectMeta>>> {
        let dir = signal_dir(prefix)?;
        let snapshot = match live.snapshot(&dir).await {
            Ok(s) => s,
            Err(e) => {
                return Some(Err(object_store::Error::Generic {
                    store: "strata-live",
                    source: Box::new(e),
                }));
            }
        };
        let below = format!("{prefix}/");
        Some(Ok(snapshot
            .live()
            .filter(|m| m.location == *prefix || m.location.as_ref().starts_with(&below))
            .cloned()
            .collect()))
    }
}

/// Whether `e` (a query's error) comes from a file that was not found.
pub fn is_not_found(e: &datafusion::error::DataFusionError) -> bool {
    let mut source: Option<&(dyn std::error::Error + 'static)> = Some(e);
    while let Some(err) = source {
        if let Some(object_store::Error::NotFound { .. }) =
            err.downcast_ref::<object_store::Error>()
        {
            return true;
        }
        if let Some(parquet::errors::ParquetError::External(inner)) =
            err.downcast_ref::<parquet::errors::ParquetError>()
            && let Some(object_store::Error::NotFound { .. }) =
                inner.downcast_ref::<object_store::Error>()
        {
            return true;
        }
        source = err.source();
    }
    false
}

impl LiveStore {
    /// Drops the snapshot of `location`'s signal directory when `r` says it is gone.
    fn forget_if_gone<T>(&self, location: &Path, r: Result<T>) -> Result<T> {
        if let Err(object_store::Error::NotFound { .. }) = &r
            && let Some(dir) = signal_dir(location)
        {
            self.live.invalidate(&dir);
        }
        r
    }
}

/// The `.../tenant=<t>/signal=<s>` directory `path` lies in.
fn signal_dir(path: &Path) -> Option<Path> {
    let parts: Vec<_> = path.parts().collect();
    let at = parts
        .iter()
        .position(|p| p.as_ref().starts_with("signal="))?;
    if at == 0 || !parts[at - 1].as_ref().starts_with("tenant=") {
        return None;
    }
    Some(Path::from_iter(parts.into_iter().take(at + 1)))
}

impl fmt::Display for LiveStore {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "LiveStore({})", self.inner)
    }
}

#[async_trait]
#[deny(clippy::missing_trait_methods)]
impl ObjectStore for LiveStore {
    async fn put_opts(
        &self,
        location: &Path,
        payload: PutPayload,
        opts: PutOptions,
    ) -> Result<PutResult> {
        self.inner.put_opts(location, payload, opts).await
    }

    async fn put_multipart_opts(
        &self,
        location: &Path,
        opts: PutMultipartOptions,
    ) -> Result<Box<dyn MultipartUpload>> {
        self.inner.put_multipart_opts(location, opts).await
    }

    async fn get_opts(&self, location: &Path, options: GetOptions) -> Result<GetResult> {
        let r = self.inner.get_opts(location, options).await;
        self.forget_if_gone(location, r)
    }

    async fn get_ranges(&self, location: &Path, ranges: &[Range<u64>]) -> Result<Vec<Bytes>> {
        let r = self.inner.get_ranges(location, ranges).await;
        self.forget_if_gone(location, r)
    }

    fn delete_stream(
        &self,
        locations: BoxStream<'static, Result<Path>>,
    ) -> BoxStream<'static, Result<Path>> {
        self.inner.delete_stream(locations)
    }

    fn list(&self, prefix: Option<&Path>) -> BoxStream<'static, Result<ObjectMeta>> {
        let Some(prefix) = prefix.filter(|p| signal_dir(p).is_some()).cloned() else {
            return self.inner.list(prefix);
        };
        let live = self.live.clone();
        stream::once(async move {
            match Self::live_below(&live, &prefix).await {
                Some(Ok(files)) => stream::iter(files.into_iter().map(Ok)).boxed(),
                Some(Err(e)) => stream::iter([Err(e)]).boxed(),
                None => stream::empty().boxed(),
            }
        })
        .flatten()
        .boxed()
    }

    fn list_with_offset(
        &self,
        prefix: Option<&Path>,
        offset: &Path,
    ) -> BoxStream<'static, Result<ObjectMeta>> {
        let offset = offset.clone();
        self.list(prefix)
            .filter(move |m| {
                let keep = m.as_ref().map_or(true, |m| m.location > offset);
                async move { keep }
            })
            .boxed()
    }

    async fn list_with_delimiter(&self, prefix: Option<&Path>) -> Result<ListResult> {
        let Some(prefix) = prefix.filter(|p| signal_dir(p).is_some()) else {
            return self.inner.list_with_delimiter(prefix).await;
        };
        let files = match Self::live_below(&self.live, prefix).await {
            Some(files) => files?,
            None => Vec::new(),
        };
        let depth = prefix.parts().count();
        let mut dirs = BTreeSet::new();
        let mut objects = Vec::new();
        for meta in files {
            let parts: Vec<_> = meta.location.parts().collect();
            if parts.len() == depth + 1 {
                objects.push(meta);
            } else if parts.len() > depth + 1 {
                dirs.insert(Path::from_iter(parts.into_iter().take(depth + 1)));
            }
        }
        Ok(ListResult {
            common_prefixes: dirs.into_iter().collect(),
            objects,
        })
    }

    async fn copy_opts(&self, from: &Path, to: &Path, options: CopyOptions) -> Result<()> {
        self.inner.copy_opts(from, to, options).await
    }

    async fn rename_opts(&self, from: &Path, to: &Path, options: RenameOptions) -> Result<()> {
        self.inner.rename_opts(from, to, options).await
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn signal_dirs_are_found_in_paths() {
        let p = Path::from("root/tenant=a/signal=traces/date=2025-01-01/hour=00");
        assert_eq!(
            signal_dir(&p).unwrap().as_ref(),
            "root/tenant=a/signal=traces"
        );
        assert!(signal_dir(&Path::from("root/signal=traces")).is_none());
        assert!(signal_dir(&Path::from("root/tenant=a")).is_none());
    }
}
