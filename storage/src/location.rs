//! Where Parquet files live: a local directory (a path or `file://` URL) or an object store
//! bucket (`s3://bucket/prefix`). For S3 the endpoint, region, credentials and addressing
//! style come from [`S3Options`] (a role's `s3` table in the config file); what it leaves
//! unset comes from the usual `AWS_*` variables.
//!
//! [`Storage`] pairs an unprefixed store with the prefix of Strata's tree inside it, so that
//! the same object paths work for the collector (which writes through `object_store`) and for
//! DataFusion (which resolves table URLs against the store registered for the URL's scheme).

use std::sync::Arc;

use serde::{Deserialize, Serialize};

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

/// Settings of an S3-compatible object store. Unset fields fall back to the `AWS_*`
/// environment variables (`AWS_ENDPOINT`, `AWS_REGION`, `AWS_ACCESS_KEY_ID`, ...).
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct S3Options {
    /// Endpoint URL of an S3-compatible server (`http://127.0.0.1:9000`); AWS when unset.
    pub endpoint: Option<String>,
    /// Region of the bucket (`us-east-1` when unset and not in the environment).
    pub region: Option<String>,
    /// Access key id.
    pub access_key_id: Option<String>,
    /// Secret access key.
    pub secret_access_key: Option<String>,
    /// Session token of temporary credentials.
    pub session_token: Option<String>,
    /// `true`: address the bucket in the path (`endpoint/bucket/key`, what most self-hosted
    /// servers need); `false`: in the host name (`bucket.endpoint/key`). Unset: path style,
    /// unless `AWS_VIRTUAL_HOSTED_STYLE_REQUEST` says otherwise.
    pub path_style: Option<bool>,
    /// Allow plain `http://` endpoints (on by itself when `endpoint` starts with `http://`).
    pub allow_http: bool,
}

impl S3Options {
    fn builder(&self, bucket: &str) -> AmazonS3Builder {
        let mut b = AmazonS3Builder::from_env().with_bucket_name(bucket);
        if let Some(endpoint) = &self.endpoint {
            b = b.with_endpoint(endpoint);
            if endpoint.starts_with("http://") {
                b = b.with_allow_http(true);
            }
        }
        if let Some(region) = &self.region {
            b = b.with_region(region);
        }
        if let Some(key) = &self.access_key_id {
            b = b.with_access_key_id(key);
        }
        if let Some(secret) = &self.secret_access_key {
            b = b.with_secret_access_key(secret);
        }
        if let Some(token) = &self.session_token {
            b = b.with_token(token);
        }
        if self.allow_http {
            b = b.with_allow_http(true);
        }
        if let Some(path_style) = self.path_style {
            b = b.with_virtual_hosted_style_request(!path_style);
        }
        b
    }
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
    /// Opens `location`: a local path (created if missing), `file://` URL, or `s3://` URL
    /// (with `s3` settings).
    pub fn open(location: &str, s3: &S3Options) -> Result<Self, StorageError> {
        let invalid = |reason: String| StorageError::Invalid {
            url: location.to_string(),
            reason,
        };
        if let Some(rest) = location.strip_prefix("s3://") {
            let (bucket, prefix) = rest.split_once('/').unwrap_or((rest, ""));
            if bucket.is_empty() {
                return Err(invalid("no bucket".into()));
            }
            let store = s3
                .builder(bucket)
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
        let s = Storage::open(dir.path().to_str().unwrap(), &S3Options::default()).unwrap();
        let url = s.dir_url("tenant=a/signal=traces");
        assert!(url.starts_with("file:///"), "{url}");
        assert!(url.ends_with("/tenant=a/signal=traces/"), "{url}");
        let s2 = Storage::open(
            &format!("file://{}", dir.path().display()),
            &S3Options::default(),
        )
        .unwrap();
        assert_eq!(s2.prefix, s.prefix);
    }

    #[test]
    fn s3_urls_split_bucket_and_prefix() {
        let s = Storage::open("s3://bucket/some/prefix/", &S3Options::default()).unwrap();
        assert_eq!(s.store_url.as_str(), "s3://bucket/");
        assert_eq!(s.prefix.as_ref(), "some/prefix");
        assert!(Storage::open("gs://x", &S3Options::default()).is_err());
    }
}
