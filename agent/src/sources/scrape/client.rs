//! Fetching one exposition: a connection per scrape (plain or TLS, through the shared
//! [`Connector`]), one HTTP/1.1 `GET` with the job's credential, the body read up to its limit.
//!
//! Invariants: a bearer token file is read at every scrape, so a rotated token (a Kubernetes
//! service account's) is used from the next scrape on; the credential is never logged.

use std::sync::Arc;
use std::time::Duration;

use base64::Engine;
use bytes::Bytes;
use http_body_util::{BodyExt, Empty, Limited};
use hyper_util::rt::TokioIo;
use strata_server::tls::client::{ClientTls, Connector};

use super::ScrapeConfig;

impl ScrapeConfig {
    /// Checks the scheme, TLS and credential settings.
    pub(super) fn validate_access(&self) -> Result<(), String> {
        match self.scheme.as_deref() {
            None | Some("http") if self.tls.enabled() => {
                Err("tls is set but scheme is not \"https\"".into())
            }
            None | Some("http") => Ok(()),
            Some("https") if !self.tls.enabled() => {
                Err("scheme \"https\" needs tls.ca or tls.pinned_cert".into())
            }
            Some("https") => self.tls.validate(),
            Some(other) => Err(format!("scheme {other:?} is not http or https")),
        }?;
        let credentials = [
            self.bearer_token.is_some(),
            self.bearer_token_file.is_some(),
            self.username.is_some(),
        ];
        if credentials.iter().filter(|c| **c).count() > 1 {
            return Err("give one of bearer_token, bearer_token_file, username/password".into());
        }
        if self.username.is_some() != self.password.is_some() {
            return Err("basic auth needs username and password".into());
        }
        Ok(())
    }

    /// The `Authorization` value of the next scrape, if any.
    fn authorization(&self) -> Result<Option<String>, String> {
        if let Some(t) = &self.bearer_token {
            return Ok(Some(format!("Bearer {t}")));
        }
        if let Some(path) = &self.bearer_token_file {
            let t = std::fs::read_to_string(path)
                .map_err(|e| format!("bearer_token_file {}: {e}", path.display()))?;
            return Ok(Some(format!("Bearer {}", t.trim())));
        }
        if let (Some(u), Some(p)) = (&self.username, &self.password) {
            let pair = base64::engine::general_purpose::STANDARD.encode(format!("{u}:{p}"));
            return Ok(Some(format!("Basic {pair}")));
        }
        Ok(None)
    }
}

/// Fetches expositions of one target.
pub struct ScrapeClient {
    connector: Result<Connector, String>,
    config: ScrapeConfig,
}

impl ScrapeClient {
    /// A client for the job's targets; a TLS setting that does not load fails every scrape,
    /// saying why.
    pub fn new(config: &ScrapeConfig) -> Self {
        let timeout = Duration::from_millis(config.timeout_ms);
        let connector = match ClientTls::load(&config.tls) {
            Ok(tls) => Ok(Connector::new(tls.map(Arc::new), timeout).http1()),
            Err(e) => Err(e.to_string()),
        };
        Self {
            connector,
            config: config.clone(),
        }
    }

    /// `GET <scheme>://<target><metrics_path>`; the body as text, at most `max_body_bytes`.
    pub async fn fetch(&self, target: &str) -> Result<String, String> {
        let (path, max_body) = (&self.config.metrics_path, self.config.max_body_bytes);
        let connector = self.connector.as_ref().map_err(Clone::clone)?;
        let (host, port) = target
            .rsplit_once(':')
            .and_then(|(h, p)| Some((h, p.parse::<u16>().ok()?)))
            .ok_or_else(|| format!("bad target {target:?}"))?;
        let io = connector
            .dial(host, port)
            .await
            .map_err(|e| e.to_string())?;
        let (mut sender, connection) = hyper::client::conn::http1::handshake(TokioIo::new(io))
            .await
            .map_err(|e| e.to_string())?;
        tokio::spawn(connection);
        let mut request = http::Request::get(path.as_str())
            .header(http::header::HOST, target)
            .header(http::header::ACCEPT, "text/plain;version=0.0.4")
            .header(
                http::header::USER_AGENT,
                concat!("strata-agent/", env!("CARGO_PKG_VERSION")),
            );
        if let Some(a) = self.config.authorization()? {
            request = request.header(http::header::AUTHORIZATION, a);
        }
        let request = request
            .body(Empty::<Bytes>::new())
            .map_err(|e| e.to_string())?;
        let response = sender
            .send_request(request)
            .await
            .map_err(|e| e.to_string())?;
        if !response.status().is_success() {
            return Err(format!("HTTP {}", response.status()));
        }
        let body = Limited::new(response.into_body(), max_body)
            .collect()
            .await
            .map_err(|e| format!("reading body: {e}"))?
            .to_bytes();
        String::from_utf8(body.to_vec()).map_err(|_| "exposition is not UTF-8".into())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn job() -> ScrapeConfig {
        ScrapeConfig {
            job: "j".into(),
            targets: vec!["127.0.0.1:9100".into()],
            ..Default::default()
        }
    }

    #[test]
    fn access_settings_are_checked() {
        assert!(job().validate().is_ok());
        let mut https = job();
        https.scheme = Some("https".into());
        assert!(https.validate().unwrap_err().contains("tls.ca"));
        https.tls.ca = Some("ca.pem".into());
        assert!(https.validate().is_ok());
        let mut tls_on_http = job();
        tls_on_http.tls.ca = Some("ca.pem".into());
        assert!(tls_on_http.validate().is_err());
        let mut ftp = job();
        ftp.scheme = Some("ftp".into());
        assert!(ftp.validate().is_err());
        let mut two = job();
        two.bearer_token = Some("a".into());
        two.username = Some("u".into());
        two.password = Some("p".into());
        assert!(two.validate().is_err());
        let mut half = job();
        half.username = Some("u".into());
        assert!(half.validate().is_err());
    }

    #[test]
    fn the_token_file_is_read_at_every_scrape() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("token");
        std::fs::write(&path, "first\n").unwrap();
        let mut j = job();
        j.bearer_token_file = Some(path.clone());
        assert_eq!(j.authorization().unwrap().unwrap(), "Bearer first");
        std::fs::write(&path, "second").unwrap();
        assert_eq!(j.authorization().unwrap().unwrap(), "Bearer second");
        let mut b = job();
        b.username = Some("u".into());
        b.password = Some("p".into());
        assert_eq!(b.authorization().unwrap().unwrap(), "Basic dTpw");
    }
}
