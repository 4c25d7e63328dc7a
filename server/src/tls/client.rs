//! The dialing side: TLS settings for the connections a role opens (the agent to its
//! collectors), and a connector that tonic channels use.
//!
//! Invariants:
//! - The server's certificate is verified against the configured CA and the server name
//!   (`server_name`, else the host dialed); there is no switch that turns verification off.
//! - Settings are read from their files at every connect, so a rotated CA or client
//!   certificate takes effect on the next connection, with no restart.
//! - `pinned_cert` (the standalone role's own loopback hop) trusts exactly the certificate
//!   in one file, whoever signed it.

use std::future::Future;
use std::path::PathBuf;
use std::pin::Pin;
use std::sync::Arc;
use std::time::Duration;

use http::Uri;
use hyper_util::rt::TokioIo;
use rustls::client::danger::{HandshakeSignatureValid, ServerCertVerified, ServerCertVerifier};
use rustls::pki_types::{CertificateDer, ServerName, UnixTime};
use rustls::{ClientConfig, DigitallySignedStruct, SignatureScheme};
use serde::{Deserialize, Serialize};
use tokio::net::TcpStream;
use tokio_rustls::TlsConnector;

use super::{TlsError, provider, read_certs, read_key, read_roots};
use crate::listener::Io;

/// TLS for connections a role dials (`[agent.ship_tls]`). On when `ca` or `pinned_cert` is
/// set.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct ClientTlsConfig {
    /// PEM CA certificates the server's certificate must chain to; setting it turns TLS on.
    pub ca: Option<PathBuf>,
    /// Instead of a CA: trust exactly the (first) certificate of this PEM file, whoever
    /// signed it (certificate pinning; how `strata standalone` dials its own collector).
    pub pinned_cert: Option<PathBuf>,
    /// PEM client certificate chain, for servers that require one (mTLS).
    pub cert: Option<PathBuf>,
    /// PEM private key of `cert`.
    pub key: Option<PathBuf>,
    /// The name the server's certificate must carry (default: the host dialed).
    pub server_name: Option<String>,
}

impl ClientTlsConfig {
    pub fn enabled(&self) -> bool {
        self.ca.is_some() || self.pinned_cert.is_some()
    }

    pub fn validate(&self) -> Result<(), String> {
        if self.cert.is_some() != self.key.is_some() {
            return Err("a client certificate needs both cert and key".into());
        }
        if self.cert.is_some() && !self.enabled() {
            return Err(
                "a client certificate needs ca or pinned_cert to verify the server with".into(),
            );
        }
        if self.ca.is_some() && self.pinned_cert.is_some() {
            return Err("give ca or pinned_cert, not both".into());
        }
        if let Some(name) = &self.server_name {
            ServerName::try_from(name.as_str())
                .map_err(|e| format!("server_name {name:?}: {e}"))?;
        }
        Ok(())
    }
}

/// Live client TLS settings.
#[derive(Debug, Clone)]
pub struct ClientTls {
    trust: Trust,
    cert: Option<(PathBuf, PathBuf)>,
    server_name: Option<String>,
}

#[derive(Debug, Clone)]
enum Trust {
    /// Chains to the CAs of a file.
    Ca(PathBuf),
    /// Exactly the (first) certificate of a file.
    Pinned(PathBuf),
}

impl ClientTls {
    /// Checks that the files load; `None` when TLS is off.
    pub fn load(config: &ClientTlsConfig) -> Result<Option<Self>, TlsError> {
        if !config.enabled() {
            return Ok(None);
        }
        config.validate().map_err(TlsError)?;
        let trust = match (&config.ca, &config.pinned_cert) {
            (Some(ca), _) => Trust::Ca(ca.clone()),
            (None, Some(pinned)) => Trust::Pinned(pinned.clone()),
            (None, None) => return Err(TlsError("client TLS needs ca or pinned_cert".into())),
        };
        let tls = Self {
            trust,
            cert: config.cert.clone().zip(config.key.clone()),
            server_name: config.server_name.clone(),
        };
        tls.config(&[])?;
        Ok(Some(tls))
    }

    /// rustls settings as the files are now, offering `alpn`.
    pub fn config(&self, alpn: &[&[u8]]) -> Result<ClientConfig, TlsError> {
        let builder = ClientConfig::builder_with_provider(provider())
            .with_safe_default_protocol_versions()
            .map_err(|e| TlsError(e.to_string()))?;
        let builder = match &self.trust {
            Trust::Ca(ca) => builder.with_root_certificates(read_roots(ca)?),
            Trust::Pinned(path) => {
                read_certs(path)?;
                builder
                    .dangerous()
                    .with_custom_certificate_verifier(Arc::new(Pinned { path: path.clone() }))
            }
        };
        let mut config = match &self.cert {
            Some((cert, key)) => builder
                .with_client_auth_cert(read_certs(cert)?, read_key(key)?)
                .map_err(|e| TlsError(format!("{}: {e}", cert.display())))?,
            None => builder.with_no_client_auth(),
        };
        config.alpn_protocols = alpn.iter().map(|p| p.to_vec()).collect();
        Ok(config)
    }

    /// The name to verify when dialing `host`.
    fn name_for(&self, host: &str) -> Result<ServerName<'static>, TlsError> {
        let name = self.server_name.as_deref().unwrap_or(host);
        let name = name.trim_start_matches('[').trim_end_matches(']');
        ServerName::try_from(name.to_string())
            .map_err(|e| TlsError(format!("server name {name:?}: {e}")))
    }
}

/// Verifies a server by the exact certificate it must present.
#[derive(Debug)]
struct Pinned {
    path: PathBuf,
}

impl ServerCertVerifier for Pinned {
    fn verify_server_cert(
        &self,
        end_entity: &CertificateDer<'_>,
        _intermediates: &[CertificateDer<'_>],
        _server_name: &ServerName<'_>,
        _ocsp: &[u8],
        _now: UnixTime,
    ) -> Result<ServerCertVerified, rustls::Error> {
        // Read at every handshake: the listener may have reloaded a new certificate.
        let expected = read_certs(&self.path).map_err(|e| rustls::Error::General(e.0))?;
        if expected[0].as_ref() == end_entity.as_ref() {
            Ok(ServerCertVerified::assertion())
        } else {
            Err(rustls::Error::InvalidCertificate(
                rustls::CertificateError::ApplicationVerificationFailure,
            ))
        }
    }

    fn verify_tls12_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        rustls::crypto::verify_tls12_signature(
            message,
            cert,
            dss,
            &provider().signature_verification_algorithms,
        )
    }

    fn verify_tls13_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        rustls::crypto::verify_tls13_signature(
            message,
            cert,
            dss,
            &provider().signature_verification_algorithms,
        )
    }

    fn supported_verify_schemes(&self) -> Vec<SignatureScheme> {
        provider()
            .signature_verification_algorithms
            .supported_schemes()
    }
}

type BoxError = Box<dyn std::error::Error + Send + Sync>;

/// Dials `http://HOST:PORT` URIs over TCP, then TLS when configured (offering `h2`, or
/// `http/1.1` after [`Connector::http1`]): the connector of the agent's Flight channels and
/// of its scrapes.
#[derive(Debug, Clone)]
pub struct Connector {
    tls: Option<Arc<ClientTls>>,
    connect_timeout: Duration,
    alpn: &'static [&'static [u8]],
}

impl Connector {
    pub fn new(tls: Option<Arc<ClientTls>>, connect_timeout: Duration) -> Self {
        Self {
            tls,
            connect_timeout,
            alpn: &[b"h2"],
        }
    }

    /// Offers HTTP/1.1 in the TLS handshake instead of HTTP/2.
    pub fn http1(self) -> Self {
        Self {
            alpn: &[b"http/1.1"],
            ..self
        }
    }

    /// Opens one connection to `host:port`.
    pub async fn dial(&self, host: &str, port: u16) -> Result<Box<dyn Io>, BoxError> {
        let host = host.trim_start_matches('[').trim_end_matches(']');
        let tcp = tokio::time::timeout(self.connect_timeout, TcpStream::connect((host, port)))
            .await
            .map_err(|_| format!("connecting to {host}:{port} timed out"))??;
        tcp.set_nodelay(true)?;
        let Some(tls) = &self.tls else {
            return Ok(Box::new(tcp));
        };
        let config = tls.config(self.alpn)?;
        let name = tls.name_for(host)?;
        let stream = tokio::time::timeout(
            self.connect_timeout,
            TlsConnector::from(Arc::new(config)).connect(name, tcp),
        )
        .await
        .map_err(|_| format!("TLS handshake with {host}:{port} timed out"))??;
        Ok(Box::new(stream))
    }
}

impl tower::Service<Uri> for Connector {
    type Response = TokioIo<Box<dyn Io>>;
    type Error = BoxError;
    type Future = Pin<Box<dyn Future<Output = Result<Self::Response, BoxError>> + Send>>;

    fn poll_ready(
        &mut self,
        _cx: &mut std::task::Context<'_>,
    ) -> std::task::Poll<Result<(), BoxError>> {
        std::task::Poll::Ready(Ok(()))
    }

    fn call(&mut self, uri: Uri) -> Self::Future {
        let this = self.clone();
        Box::pin(async move {
            let host = uri.host().ok_or("URI without a host")?.to_string();
            let port = uri.port_u16().unwrap_or(80);
            Ok(TokioIo::new(this.dial(&host, port).await?))
        })
    }
}
