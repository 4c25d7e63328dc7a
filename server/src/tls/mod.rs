//! TLS on rustls (ring provider) for every listener of a role ([`ServerTls`]) and for the
//! connections a role dials ([`client::ClientTls`]).
//!
//! Invariants:
//! - A listener's TLS settings are read from PEM files. They are read again when one of the
//!   files changes (polled every [`crate::reload::POLL`]) or on SIGHUP; a handshake takes the settings
//!   current when it starts, so a reload never touches an established connection.
//! - A reload that fails (a half-written file, a key that does not match its certificate)
//!   keeps the settings in use, logs why and counts it; a role never runs with no certificate.
//! - With a client CA, a client must present a certificate that chains to it (mTLS).

pub mod client;
mod pem;
#[cfg(any(test, feature = "testing"))]
pub mod testing;

use std::path::{Path, PathBuf};
use std::sync::{Arc, RwLock};

use rustls::ServerConfig;
use rustls::server::WebPkiClientVerifier;
use serde::{Deserialize, Serialize};
use tokio_util::sync::CancellationToken;
use tracing::{info, warn};

use crate::reload::Watched;
use crate::security::SecurityMetrics;

pub use pem::{read_certs, read_key, read_roots};

/// ALPN protocols every TLS listener offers: gRPC needs `h2`; HTTP listeners take both.
const ALPN: [&[u8]; 2] = [b"h2", b"http/1.1"];

/// A TLS settings error: a file that cannot be read or parsed, or a key that does not fit.
#[derive(Debug, thiserror::Error)]
#[error("TLS: {0}")]
pub struct TlsError(pub String);

/// The server side of TLS for a role's listeners (`[<role>.tls]`). Off unless `cert` is set.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct ServerTlsConfig {
    /// PEM certificate chain, the listener's own certificate first.
    pub cert: Option<PathBuf>,
    /// PEM private key (PKCS#8, PKCS#1 or SEC1) of `cert`.
    pub key: Option<PathBuf>,
    /// PEM CA certificates; when set, clients must present a certificate signed by one (mTLS).
    pub client_ca: Option<PathBuf>,
}

impl ServerTlsConfig {
    pub fn enabled(&self) -> bool {
        self.cert.is_some()
    }

    pub fn validate(&self) -> Result<(), String> {
        match (&self.cert, &self.key) {
            (Some(_), None) => Err("tls.cert is set but tls.key is not".into()),
            (None, Some(_)) => Err("tls.key is set but tls.cert is not".into()),
            (None, None) if self.client_ca.is_some() => {
                Err("tls.client_ca needs tls.cert and tls.key".into())
            }
            _ => Ok(()),
        }
    }

    fn files(&self) -> Vec<&Path> {
        [&self.cert, &self.key, &self.client_ca]
            .into_iter()
            .flatten()
            .map(PathBuf::as_path)
            .collect()
    }

    /// Builds the rustls settings from the files as they are now.
    fn build(&self) -> Result<ServerConfig, TlsError> {
        let (Some(cert), Some(key)) = (&self.cert, &self.key) else {
            return Err(TlsError("tls.cert and tls.key are both needed".into()));
        };
        let chain = read_certs(cert)?;
        let key = read_key(key)?;
        let builder = ServerConfig::builder_with_provider(provider())
            .with_safe_default_protocol_versions()
            .map_err(|e| TlsError(e.to_string()))?;
        let builder = match &self.client_ca {
            Some(ca) => {
                let verifier = WebPkiClientVerifier::builder_with_provider(
                    Arc::new(read_roots(ca)?),
                    provider(),
                )
                .build()
                .map_err(|e| TlsError(format!("client CA {}: {e}", ca.display())))?;
                builder.with_client_cert_verifier(verifier)
            }
            None => builder.with_no_client_auth(),
        };
        let mut config = builder
            .with_single_cert(chain, key)
            .map_err(|e| TlsError(format!("{}: {e}", cert.display())))?;
        config.alpn_protocols = ALPN.iter().map(|p| p.to_vec()).collect();
        Ok(config)
    }
}

/// The crypto provider of every TLS config Strata builds.
pub fn provider() -> Arc<rustls::crypto::CryptoProvider> {
    Arc::new(rustls::crypto::ring::default_provider())
}

/// The live TLS settings of a role's listeners.
pub struct ServerTls {
    config: ServerTlsConfig,
    current: RwLock<Arc<ServerConfig>>,
    files: Watched,
    metrics: Arc<SecurityMetrics>,
}

impl ServerTls {
    /// Reads the files; `None` when TLS is off.
    pub fn load(
        config: &ServerTlsConfig,
        metrics: Arc<SecurityMetrics>,
    ) -> Result<Option<Arc<Self>>, TlsError> {
        if !config.enabled() {
            return Ok(None);
        }
        let files = Watched::new(config.files().into_iter().map(Path::to_path_buf).collect());
        let built = config.build()?;
        Ok(Some(Arc::new(Self {
            config: config.clone(),
            current: RwLock::new(Arc::new(built)),
            files,
            metrics,
        })))
    }

    /// The settings a handshake starting now uses.
    pub fn current(&self) -> Arc<ServerConfig> {
        self.current
            .read()
            .unwrap_or_else(|p| p.into_inner())
            .clone()
    }

    /// Whether clients must present a certificate.
    pub fn requires_client_cert(&self) -> bool {
        self.config.client_ca.is_some()
    }

    /// Reads the files again if any changed since the last read (or if `force`); keeps the
    /// settings in use when the new ones do not load.
    pub fn reload(&self, force: bool) {
        if !self.files.changed() && !force {
            return;
        }
        match self.config.build() {
            Ok(built) => {
                *self.current.write().unwrap_or_else(|p| p.into_inner()) = Arc::new(built);
                self.metrics.tls_reload("ok");
                info!(cert = ?self.config.cert, "TLS certificate reloaded");
            }
            Err(e) => {
                self.metrics.tls_reload("failed");
                warn!("TLS reload failed, keeping the certificate in use: {e}");
            }
        }
    }

    /// Reloads on change and on SIGHUP until `shutdown`.
    pub fn watch(self: Arc<Self>, shutdown: CancellationToken) {
        crate::reload::spawn(shutdown, move |forced| self.reload(forced));
    }
}

#[cfg(test)]
pub(crate) mod tests;
