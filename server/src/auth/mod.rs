//! Authentication and tenants: the [`Gate`] every ingest and query route of a role asks
//! which tenant a request is for, and whether it may do what it asks.
//!
//! Invariants:
//! - With no auth file, nothing is checked: the tenant is the `X-Scope-OrgID` header or the
//!   role's default tenant, as before auth existed (the role logs once at start that its
//!   listeners are open).
//! - With an auth file, every request needs a credential (`Authorization: Bearer <token>` or
//!   `Basic`): none, or an unknown one, is [`Denied::Unauthenticated`] (HTTP 401 with
//!   `WWW-Authenticate`, gRPC `UNAUTHENTICATED`); a scope or tenant the credential lacks is
//!   [`Denied::Forbidden`] (403, `PERMISSION_DENIED`).
//! - The tenant comes from the credential: `X-Scope-OrgID` only chooses among its tenants
//!   (without the header, its first; a credential for every tenant gets the default).
//! - Every refusal is counted by reason.

pub mod file;
pub mod http;

use std::path::PathBuf;
use std::sync::{Arc, RwLock};

use base64::Engine;
use serde::{Deserialize, Serialize};
use tokio_util::sync::CancellationToken;
use tracing::{info, warn};

use crate::reload::Watched;
use crate::security::SecurityMetrics;
pub use file::{Credentials, hash_text, sha256};

/// Base64 of `Basic` credentials, padded or not.
const BASIC_BASE64: base64::engine::GeneralPurpose = base64::engine::GeneralPurpose::new(
    &base64::alphabet::STANDARD,
    base64::engine::GeneralPurposeConfig::new()
        .with_decode_padding_mode(base64::engine::DecodePaddingMode::Indifferent),
);

/// Header (gRPC metadata key) naming the tenant of a request, as in Tempo, Loki and Mimir.
pub const TENANT_HEADER: &str = "x-scope-orgid";

/// What a credential may do.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Scope {
    /// Send data: OTLP, remote write, agents shipping to collectors.
    Write,
    /// Query: SQL, the Tempo, Jaeger, Prometheus and Loki APIs, the web UI.
    Read,
    /// A role's own metrics (when not open).
    Admin,
}

impl Scope {
    pub fn as_str(self) -> &'static str {
        match self {
            Scope::Write => "write",
            Scope::Read => "read",
            Scope::Admin => "admin",
        }
    }
}

/// The tenants a credential may use.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Tenants {
    Any,
    List(Vec<String>),
}

/// What one credential is allowed.
#[derive(Debug, Clone)]
pub struct Grant {
    /// For logs and messages.
    pub name: String,
    pub tenants: Tenants,
    pub scopes: Vec<Scope>,
}

/// Authentication settings of a role (`[<role>.auth]`).
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct AuthConfig {
    /// The auth file (see [`file`]); auth is off without one.
    pub file: Option<PathBuf>,
    /// Serve `/metrics` to anyone even with auth on (otherwise it needs the `admin` scope).
    pub open_metrics: bool,
    /// A token the role accepts besides the file's, for every tenant with the `write` scope:
    /// how `strata standalone` lets its agent ship to its collector. Never read from a file.
    #[serde(skip)]
    pub internal_token: Option<String>,
}

/// Why a request was refused.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Denied {
    /// No credential, or one the gate does not know.
    Unauthenticated(String),
    /// A known credential without the scope or tenant asked for.
    Forbidden(String),
    /// A tenant header that cannot be read (HTTP 400, gRPC `INVALID_ARGUMENT`).
    Invalid(String),
}

impl Denied {
    pub fn message(&self) -> &str {
        match self {
            Denied::Unauthenticated(m) | Denied::Forbidden(m) | Denied::Invalid(m) => m,
        }
    }

    /// The gRPC status of the refusal.
    pub fn to_status(&self) -> tonic::Status {
        match self {
            Denied::Unauthenticated(m) => tonic::Status::unauthenticated(m.clone()),
            Denied::Forbidden(m) => tonic::Status::permission_denied(m.clone()),
            Denied::Invalid(m) => tonic::Status::invalid_argument(m.clone()),
        }
    }
}

/// Decides the tenant of every request of a role, and whether it may go on.
pub struct Gate {
    file: Option<AuthFile>,
    internal: Option<file::Digest>,
    open_metrics: bool,
    default_tenant: String,
    metrics: Arc<SecurityMetrics>,
}

struct AuthFile {
    path: PathBuf,
    watched: Watched,
    current: RwLock<Arc<Credentials>>,
}

impl Gate {
    /// A gate that checks nothing (no auth file).
    pub fn open(default_tenant: &str) -> Self {
        Self {
            file: None,
            internal: None,
            open_metrics: true,
            default_tenant: default_tenant.to_string(),
            metrics: Arc::new(SecurityMetrics::default()),
        }
    }

    /// Reads the auth file, if any.
    pub fn load(
        config: &AuthConfig,
        default_tenant: &str,
        metrics: Arc<SecurityMetrics>,
    ) -> Result<Self, String> {
        let file = match &config.file {
            Some(path) => {
                let watched = Watched::new(vec![path.clone()]);
                let credentials = Credentials::read(path)?;
                info!(file = %path.display(), credentials = credentials.len(), "auth on");
                Some(AuthFile {
                    path: path.clone(),
                    watched,
                    current: RwLock::new(Arc::new(credentials)),
                })
            }
            None => None,
        };
        Ok(Self {
            file,
            internal: config
                .internal_token
                .as_deref()
                .map(|t| sha256(t.as_bytes())),
            open_metrics: config.open_metrics || config.file.is_none(),
            default_tenant: default_tenant.to_string(),
            metrics,
        })
    }

    /// Whether requests need a credential.
    pub fn enabled(&self) -> bool {
        self.file.is_some()
    }

    /// Whether `/metrics` is served without a credential.
    pub fn metrics_open(&self) -> bool {
        self.open_metrics
    }

    pub fn default_tenant(&self) -> &str {
        &self.default_tenant
    }

    /// Reads the auth file again if it changed (or if `force`); keeps the credentials in use
    /// when the new file does not parse.
    pub fn reload(&self, force: bool) {
        let Some(f) = &self.file else { return };
        if !f.watched.changed() && !force {
            return;
        }
        match Credentials::read(&f.path) {
            Ok(c) => {
                info!(file = %f.path.display(), credentials = c.len(), "auth file reloaded");
                *f.current.write().unwrap_or_else(|p| p.into_inner()) = Arc::new(c);
                self.metrics.auth_reload("ok");
            }
            Err(e) => {
                warn!("auth file reload failed, keeping the credentials in use: {e}");
                self.metrics.auth_reload("failed");
            }
        }
    }

    /// Reloads on change and on SIGHUP until `shutdown`.
    pub fn watch(self: Arc<Self>, shutdown: CancellationToken) {
        if self.file.is_some() {
            crate::reload::spawn(shutdown, move |forced| self.reload(forced));
        }
    }

    /// The auth file's credentials in use; `None` without a file (auth off).
    fn credentials(&self) -> Option<Arc<Credentials>> {
        let file = self.file.as_ref()?;
        Some(
            file.current
                .read()
                .unwrap_or_else(|p| p.into_inner())
                .clone(),
        )
    }

    /// The tenant a request is for, given its `Authorization` value and its `X-Scope-OrgID`,
    /// if it may act with `scope`.
    pub fn check(
        &self,
        authorization: Option<&str>,
        tenant: Option<&str>,
        scope: Scope,
    ) -> Result<String, Denied> {
        let tenant = tenant.filter(|t| !t.is_empty());
        let Some(credentials) = self.credentials() else {
            return Ok(tenant.unwrap_or(&self.default_tenant).to_string());
        };
        let grant = self.identify(&credentials, authorization)?;
        self.authorize(grant, tenant, scope)
    }

    /// The tenant of a database login (the PostgreSQL wire protocol's password message):
    /// `user` and `password` as a user of the auth file, or, failing that, `password` as a
    /// bearer token (clients that only ask for a user and a password can carry a token).
    pub fn check_password(
        &self,
        user: &str,
        password: &str,
        tenant: Option<&str>,
        scope: Scope,
    ) -> Result<String, Denied> {
        let tenant = tenant.filter(|t| !t.is_empty());
        let Some(credentials) = self.credentials() else {
            return Ok(tenant.unwrap_or(&self.default_tenant).to_string());
        };
        let grant = match credentials.user(user, password) {
            Some(g) => Some(g),
            None => match &self.internal {
                Some(internal) if file::same(internal, &sha256(password.as_bytes())) => None,
                _ => Some(credentials.token(password).ok_or_else(|| {
                    self.metrics.auth_refusal("invalid");
                    Denied::Unauthenticated(format!(
                        "password authentication failed for user {user:?}"
                    ))
                })?),
            },
        };
        self.authorize(grant, tenant, scope)
    }

    /// Whether `grant` (`None`: the internal token) may act with `scope` for `tenant`, and
    /// the tenant it acts for.
    fn authorize(
        &self,
        grant: Option<&Grant>,
        tenant: Option<&str>,
        scope: Scope,
    ) -> Result<String, Denied> {
        let internal;
        let grant = match grant {
            Some(g) => g,
            None => {
                internal = Grant {
                    name: "internal".into(),
                    tenants: Tenants::Any,
                    scopes: vec![Scope::Write],
                };
                &internal
            }
        };
        if !grant.scopes.contains(&scope) {
            self.metrics.auth_refusal("scope");
            return Err(Denied::Forbidden(format!(
                "credential {:?} lacks the {} scope",
                grant.name,
                scope.as_str()
            )));
        }
        match (&grant.tenants, tenant) {
            (Tenants::Any, Some(t)) => Ok(t.to_string()),
            (Tenants::Any, None) => Ok(self.default_tenant.clone()),
            (Tenants::List(list), Some(t)) if list.iter().any(|l| l == t) => Ok(t.to_string()),
            (Tenants::List(list), None) if !list.is_empty() => Ok(list[0].clone()),
            (Tenants::List(_), t) => {
                self.metrics.auth_refusal("tenant");
                Err(Denied::Forbidden(format!(
                    "credential {:?} may not use tenant {:?}",
                    grant.name,
                    t.unwrap_or_default()
                )))
            }
        }
    }

    /// The file's grant for a credential; `Ok(None)` for the internal token.
    fn identify<'c>(
        &self,
        credentials: &'c Credentials,
        authorization: Option<&str>,
    ) -> Result<Option<&'c Grant>, Denied> {
        let refuse = |reason: &'static str, message: &str| {
            self.metrics.auth_refusal(reason);
            Denied::Unauthenticated(message.to_string())
        };
        let Some(value) = authorization.map(str::trim).filter(|v| !v.is_empty()) else {
            return Err(refuse(
                "missing",
                "credentials required: Authorization: Bearer <token> or Basic",
            ));
        };
        let (scheme, rest) = value.split_once(' ').unwrap_or((value, ""));
        let rest = rest.trim();
        if scheme.eq_ignore_ascii_case("bearer") {
            if let Some(internal) = &self.internal
                && file::same(internal, &sha256(rest.as_bytes()))
            {
                return Ok(None);
            }
            return credentials
                .token(rest)
                .map(Some)
                .ok_or_else(|| refuse("invalid", "invalid bearer token"));
        }
        if scheme.eq_ignore_ascii_case("basic") {
            // With or without padding: Go's Flight clients send it unpadded.
            let decoded = BASIC_BASE64
                .decode(rest)
                .ok()
                .and_then(|b| String::from_utf8(b).ok());
            let Some((user, password)) = decoded.as_deref().and_then(|d| d.split_once(':')) else {
                return Err(refuse("invalid", "malformed Basic credentials"));
            };
            return credentials
                .user(user, password)
                .map(Some)
                .ok_or_else(|| refuse("invalid", "invalid username or password"));
        }
        Err(refuse(
            "invalid",
            "unsupported Authorization scheme (use Bearer or Basic)",
        ))
    }

    /// Whether a credential may write `tenant` (a collector checking what an agent ships,
    /// whose tenant the agent already decided).
    pub fn check_tenant(
        &self,
        authorization: Option<&str>,
        tenant: &str,
        scope: Scope,
    ) -> Result<(), Denied> {
        if !self.enabled() {
            return Ok(());
        }
        self.check(authorization, Some(tenant), scope).map(|_| ())
    }
}

#[cfg(test)]
mod tests;
