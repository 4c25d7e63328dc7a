//! A role's security as one value: its listeners' TLS settings, its auth [`Gate`], its
//! per-tenant [`Overrides`], and the metrics they count into; [`Security::bind`] opens the
//! role's listeners with them.

use std::sync::Arc;

use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use tokio_util::sync::CancellationToken;
use tracing::warn;

use crate::auth::{AuthConfig, Gate};
use crate::limits::{LimitMetrics, LimitsConfig, Overrides};
use crate::listener::Listener;
use crate::tls::{ServerTls, ServerTlsConfig};
use crate::{Error, Labels, Result, SharedRegistry};

/// Handshakes, reloads and refusals, registered under `<prefix>_tls_*` and `<prefix>_auth_*`.
#[derive(Default)]
pub struct SecurityMetrics {
    handshakes: Family<Labels, Counter>,
    tls_reloads: Family<Labels, Counter>,
    auth_refusals: Family<Labels, Counter>,
    auth_reloads: Family<Labels, Counter>,
}

impl SecurityMetrics {
    pub fn register(registry: &SharedRegistry, prefix: &str) -> Arc<Self> {
        let m = Self::default();
        let mut registry = registry.lock_registry();
        let r = registry.sub_registry_with_prefix(prefix);
        r.register(
            "tls_handshakes",
            "TLS handshakes by listener and outcome (ok, not_tls, timeout, no_client_cert, bad_client_cert, expired_client_cert, refused_by_client, failed)",
            m.handshakes.clone(),
        );
        r.register(
            "tls_reloads",
            "Certificate reloads by outcome",
            m.tls_reloads.clone(),
        );
        r.register(
            "auth_refusals",
            "Requests refused by the auth gate, by reason (missing, invalid, scope, tenant)",
            m.auth_refusals.clone(),
        );
        r.register(
            "auth_reloads",
            "Auth file reloads by outcome",
            m.auth_reloads.clone(),
        );
        Arc::new(m)
    }

    pub fn tls_handshake(&self, listener: &str, outcome: &str) {
        self.handshakes
            .get_or_create(&vec![
                ("listener", listener.to_string()),
                ("outcome", outcome.to_string()),
            ])
            .inc();
    }

    pub fn tls_reload(&self, outcome: &str) {
        self.tls_reloads
            .get_or_create(&vec![("outcome", outcome.to_string())])
            .inc();
    }

    pub fn auth_refusal(&self, reason: &str) {
        self.auth_refusals
            .get_or_create(&vec![("reason", reason.to_string())])
            .inc();
    }

    pub fn auth_reload(&self, outcome: &str) {
        self.auth_reloads
            .get_or_create(&vec![("outcome", outcome.to_string())])
            .inc();
    }
}

/// What a role's listeners are secured with: TLS, auth, limits.
#[derive(Debug, Clone, Copy)]
pub struct Settings<'a> {
    pub tls: &'a ServerTlsConfig,
    pub auth: &'a AuthConfig,
    pub limits: &'a LimitsConfig,
    pub default_tenant: &'a str,
}

/// TLS, auth, limits and their metrics for the listeners of one role.
#[derive(Clone)]
pub struct Security {
    tls: Option<Arc<ServerTls>>,
    gate: Arc<Gate>,
    limits: Arc<Overrides>,
    metrics: Arc<SecurityMetrics>,
}

impl Security {
    /// Loads the role's certificate, auth file and overrides file and watches them for
    /// changes until `shutdown`. `prefix` names the role's metrics (`strata_agent`).
    pub fn start(
        prefix: &str,
        settings: Settings<'_>,
        registry: &SharedRegistry,
        shutdown: &CancellationToken,
    ) -> Result<Self> {
        let Settings {
            tls,
            auth,
            limits,
            default_tenant,
        } = settings;
        let metrics = SecurityMetrics::register(registry, prefix);
        let limits = Arc::new(
            Overrides::load(limits, LimitMetrics::register(registry, prefix))
                .map_err(|e| Error::Security(format!("limits file: {e}")))?,
        );
        limits.clone().watch(shutdown.clone());
        tls.validate().map_err(Error::Security)?;
        let tls = ServerTls::load(tls, metrics.clone()).map_err(|e| Error::Security(e.0))?;
        let gate = Arc::new(
            Gate::load(auth, default_tenant, metrics.clone())
                .map_err(|e| Error::Security(format!("auth file: {e}")))?,
        );
        if let Some(t) = &tls {
            t.clone().watch(shutdown.clone());
        }
        gate.clone().watch(shutdown.clone());
        // Once per process: `strata standalone` starts four roles.
        static OPEN_WARNED: std::sync::Once = std::sync::Once::new();
        if !gate.enabled() {
            OPEN_WARNED.call_once(|| {
                warn!(
                    role = prefix,
                    "no auth file: the listeners are open, anyone who reaches them may write and read any tenant"
                )
            });
        }
        Ok(Self {
            tls,
            gate,
            limits,
            metrics,
        })
    }

    /// No TLS, no auth, the built-in limits (tests and tools).
    pub fn open(default_tenant: &str) -> Self {
        Self {
            tls: None,
            gate: Arc::new(Gate::open(default_tenant)),
            limits: Arc::new(Overrides::defaults()),
            metrics: Arc::new(SecurityMetrics::default()),
        }
    }

    pub fn gate(&self) -> Arc<Gate> {
        self.gate.clone()
    }

    /// The role's certificate, for listeners that start TLS themselves (PostgreSQL's
    /// `SSLRequest`).
    pub fn tls(&self) -> Option<Arc<ServerTls>> {
        self.tls.clone()
    }

    pub fn limits(&self) -> Arc<Overrides> {
        self.limits.clone()
    }

    /// Binds `addr` as a listener of this role (TLS when the role has it).
    pub async fn bind(&self, what: &'static str, addr: &str) -> Result<Listener> {
        self.bind_with(what, addr, self.tls.clone()).await
    }

    /// Loads (and watches) TLS settings for listeners that differ from the role's own.
    pub fn other_tls(
        &self,
        config: &ServerTlsConfig,
        shutdown: &CancellationToken,
    ) -> Result<Option<Arc<ServerTls>>> {
        config.validate().map_err(Error::Security)?;
        let tls =
            ServerTls::load(config, self.metrics.clone()).map_err(|e| Error::Security(e.0))?;
        if let Some(t) = &tls {
            t.clone().watch(shutdown.clone());
        }
        Ok(tls)
    }

    /// A listener of this role on a socket bound elsewhere (TLS when the role has it).
    pub fn listener(&self, what: &'static str, tcp: tokio::net::TcpListener) -> Listener {
        Listener::new(what, tcp, self.tls.clone(), self.metrics.clone())
    }

    /// Binds `addr` as a listener with `tls` (`None`: plain text).
    pub async fn bind_with(
        &self,
        what: &'static str,
        addr: &str,
        tls: Option<Arc<ServerTls>>,
    ) -> Result<Listener> {
        let tcp = crate::bind(what, addr).await?;
        Ok(Listener::new(what, tcp, tls, self.metrics.clone()))
    }
}
