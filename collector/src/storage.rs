//! Where Parquet files live: a local directory (a path or `file://` URL) or an object store
//! bucket (`s3://bucket/prefix`, credentials and region from the usual `AWS_*` variables).
//!
//! [`Storage`] pairs an unprefixed store with the prefix of Strata's tree inside it, so that
//! the same object paths work for the collector (which writes through `object_store`) and for
//! DataFusion (which resolves table URLs against the store registered for the URL's scheme).

use std::sync::Arc;

use object_store::ObjectStore;
use object_store::aws::AmazonS3Builder;
use object_store::local::LocalFileSystem;
use object_store::path::Path;
use url::Url;

/// Errors opening a storage location.
#[derive(Debug, thiserror::Error)]
pub enum StorageError {
    #[error("storage {url:?}: {reason}")]
    Invalid { url: String, reason: String },
}

/// An opened storage location.
#[derive(Clone, Debug)]
pub struct Storage {
    /// The store, addressed by absolute object paths (no prefix applied).
    pub store: Arc<dyn ObjectStore>,
    /// Strata's root inside the store.
    pub prefix: Path,
    /// URL of the store itself (`file:///`, `s3://bucket/`), for DataFusion's registry.
    pub store_url: Url,
}

impl Storage {
    /// Opens `location`: a local path (created if missing), `file://` URL, or `s3://` URL.
    pub fn open(location: &str) -> Result<Self, StorageError> {
        let invalid = |reason: String| StorageError::Invalid {
            url: location.to_string(),
            reason,
        };
        if let Some(rest) = location.strip_prefix("s3://") {
            let (bucket, prefix) = rest.split_once('/').unwrap_or((rest, ""));
            if bucket.is_empty() {
                return Err(invalid("no bucket".into()));
            }
            let store = AmazonS3Builder::from_env()
                .with_bucket_name(bucket)
                .build()
                .map_err(|e| invalid(e.to_string()))?;
            let store_url =
                Url::parse(&format!("s3://{bucket}/")).map_err(|e| invalid(e.to_string()))?;
            return Ok(Self {
                store: Arc::new(store),
                prefix: Path::from(prefix.trim_matches('/')),
                store_url,
            });
        }
        let path = match location.strip_prefix("file://") {
            Some(p) => std::path::PathBuf::from(p),
            None if location.contains("://") => {
                return Err(invalid(
                    "only local paths, file:// and s3:// are supported".into(),
                ));
            }
            None => std::path::PathBuf::from(location),
        };
        std::fs::create_dir_all(&path).map_err(|e| invalid(e.to_string()))?;
        let abs = std::fs::canonicalize(&path).map_err(|e| invalid(e.to_string()))?;
        let prefix = Path::from_absolute_path(&abs).map_err(|e| invalid(e.to_string()))?;
        Ok(Self {
            store: Arc::new(LocalFileSystem::new()),
            prefix,
            store_url: Url::parse("file:///").map_err(|e| invalid(e.to_string()))?,
        })
    }

    /// Absolute object path of `relative` (a path below Strata's root).
    pub fn path(&self, relative: &str) -> Path {
        let mut p = self.prefix.clone();
        for part in relative.split('/').filter(|s| !s.is_empty()) {
            p = p.clone().join(part);
        }
        p
    }

    /// URL of a directory below the root, with a trailing slash (a DataFusion table path).
    pub fn dir_url(&self, relative: &str) -> String {
        let p = self.path(relative);
        format!("{}{}/", self.store_url, p)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn local_paths_become_file_urls() {
        let dir = tempfile::tempdir().unwrap();
        let s = Storage::open(dir.path().to_str().unwrap()).unwrap();
        let url = s.dir_url("tenant=a/signal=traces");
        assert!(url.starts_with("file:///"), "{url}");
        assert!(url.ends_with("/tenant=a/signal=traces/"), "{url}");
        let s2 = Storage::open(&format!("file://{}", dir.path().display())).unwrap();
        assert_eq!(s2.prefix, s.prefix);
    }

    #[test]
    fn s3_urls_split_bucket_and_prefix() {
        let s = Storage::open("s3://bucket/some/prefix/").unwrap();
        assert_eq!(s.store_url.as_str(), "s3://bucket/");
        assert_eq!(s.prefix.as_ref(), "some/prefix");
        assert!(Storage::open("gs://x").is_err());
    }
}
