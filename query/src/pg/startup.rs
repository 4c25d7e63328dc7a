//! A PostgreSQL connection's start: TLS rule, password check, tenant, cancel key.
//!
//! - With TLS configured, a connection that did not upgrade through `SSLRequest` is refused
//!   (SQLSTATE 28000), as the role's HTTP listeners refuse plain text.
//! - With an auth file, the server asks for a password (`AuthenticationCleartextPassword`;
//!   the hashes in the file cannot answer SCRAM or MD5, so use TLS): a user of the file with
//!   its password, or any user name with a bearer token as the password. Without one, any
//!   login is taken.
//! - The tenant is the startup parameter `strata.tenant` (or `tenant`, or `-c strata.tenant=X`
//!   in `options`, which is how libpq clients pass it); else, with auth, the credential's first
//!   tenant, and without auth the user name. Credentials are checked against it as the HTTP
//!   gate checks `X-Scope-OrgID`. The tenant is fixed for the connection: it is kept in the
//!   session's extensions, where no `SET` reaches.

use std::collections::HashMap;
use std::fmt::Debug;
use std::sync::Arc;

use async_trait::async_trait;
use futures::{Sink, SinkExt};
use pgwire::api::auth::{
    DefaultServerParameterProvider, ServerParameterProvider, StartupHandler, finish_authentication,
    protocol_negotiation, save_startup_parameters_to_metadata,
};
use pgwire::api::{
    ClientInfo, METADATA_USER, PgWireConnectionState, PidSecretKeyGenerator,
    RandomPidSecretKeyGenerator,
};
use pgwire::error::{ErrorInfo, PgWireError, PgWireResult};
use pgwire::messages::startup::Authentication;
use pgwire::messages::{PgWireBackendMessage, PgWireFrontendMessage};
use strata_server::auth::{Denied, Scope};

use super::Shared;

/// What a connection logged in as; set once at startup.
#[derive(Debug, Clone)]
pub struct Login {
    pub tenant: String,
}

/// The connection's login (set at startup).
pub fn login<C: ClientInfo + ?Sized>(client: &C) -> PgWireResult<Arc<Login>> {
    client
        .session_extensions()
        .get::<Login>()
        .ok_or_else(|| super::encode::error("08P01", "the connection has not logged in"))
}

/// The `server_version` the server reports: a PostgreSQL version clients accept, as
/// drivers choose their SQL by it.
pub const SERVER_VERSION: &str = "16.6";

pub struct Startup {
    pub(super) shared: Arc<Shared>,
    keys: RandomPidSecretKeyGenerator,
}

impl Startup {
    pub(super) fn new(shared: Arc<Shared>) -> Self {
        Self {
            shared,
            keys: RandomPidSecretKeyGenerator::default(),
        }
    }
}

/// The tenant a client asked for in its startup parameters, if any.
fn requested_tenant(metadata: &HashMap<String, String>) -> Option<String> {
    if let Some(t) = metadata
        .get("strata.tenant")
        .or_else(|| metadata.get("tenant"))
    {
        return Some(t.clone());
    }
    // libpq's `options`: command-line style `-c name=value` or `--name=value` settings.
    let options = metadata.get("options")?;
    let mut words = options.split_whitespace();
    while let Some(w) = words.next() {
        let setting = match w {
            "-c" => words.next().unwrap_or(""),
            w => w
                .strip_prefix("--")
                .or_else(|| w.strip_prefix("-c"))
                .unwrap_or(""),
        };
        if let Some((name, value)) = setting.split_once('=')
            && (name == "strata.tenant" || name == "tenant")
        {
            return Some(value.to_string());
        }
    }
    None
}

fn fatal(code: &str, message: String) -> PgWireError {
    PgWireError::UserError(Box::new(ErrorInfo::new(
        "FATAL".to_string(),
        code.to_string(),
        message,
    )))
}

impl Startup {
    /// Decides the connection's tenant, registers its cancel key and says it is ready.
    async fn finish<C>(&self, client: &mut C, tenant: String) -> PgWireResult<()>
    where
        C: ClientInfo + Sink<PgWireBackendMessage> + Unpin + Send,
        C::Error: Debug,
        PgWireError: From<<C as Sink<PgWireBackendMessage>>::Error>,
    {
        strata_schema::envelope::validate_tenant(&tenant)
            .map_err(|e| fatal("3D000", format!("tenant {tenant:?}: {e}")))?;
        let (pid, secret) = self.keys.generate(&*client);
        client.set_pid_and_secret_key(pid, secret.clone());
        let registered = self.shared.cancels.register(pid, &secret);
        client.session_extensions().insert(registered);
        client.session_extensions().insert(Login { tenant });
        self.shared.wire.count("login", "ok");
        finish_authentication(client, &Parameters).await
    }

    fn denied(&self, denied: Denied) -> PgWireError {
        self.shared.wire.count("login", "denied");
        match denied {
            Denied::Unauthenticated(m) => fatal("28P01", m),
            Denied::Forbidden(m) => fatal("42501", m),
            Denied::Invalid(m) => fatal("28000", m),
        }
    }
}

#[async_trait]
impl StartupHandler for Startup {
    async fn on_startup<C>(
        &self,
        client: &mut C,
        message: PgWireFrontendMessage,
    ) -> PgWireResult<()>
    where
        C: ClientInfo + Sink<PgWireBackendMessage> + Unpin + Send,
        C::Error: Debug,
        PgWireError: From<<C as Sink<PgWireBackendMessage>>::Error>,
    {
        match message {
            PgWireFrontendMessage::Startup(ref startup) => {
                protocol_negotiation(client, startup).await?;
                save_startup_parameters_to_metadata(client, startup);
                if self.shared.tls_required && !client.is_secure() {
                    self.shared.wire.count("login", "plain_text");
                    return Err(fatal(
                        "28000",
                        "this server takes TLS connections only (use sslmode=require)".into(),
                    ));
                }
                if self.shared.wire.gate.enabled() {
                    client.set_state(PgWireConnectionState::AuthenticationInProgress);
                    client
                        .send(PgWireBackendMessage::Authentication(
                            Authentication::CleartextPassword,
                        ))
                        .await?;
                } else {
                    let tenant = requested_tenant(client.metadata())
                        .or_else(|| client.metadata().get(METADATA_USER).cloned())
                        .unwrap_or_else(|| self.shared.wire.gate.default_tenant().to_string());
                    self.finish(client, tenant).await?;
                }
            }
            PgWireFrontendMessage::PasswordMessageFamily(pwd) => {
                let password = pwd.into_password()?.password;
                let user = client
                    .metadata()
                    .get(METADATA_USER)
                    .cloned()
                    .unwrap_or_default();
                let requested = requested_tenant(client.metadata());
                let tenant = self
                    .shared
                    .wire
                    .gate
                    .check_password(&user, &password, requested.as_deref(), Scope::Read)
                    .map_err(|d| self.denied(d))?;
                self.finish(client, tenant).await?;
            }
            _ => {}
        }
        Ok(())
    }
}

/// The parameters reported at login (`ParameterStatus`).
struct Parameters;

impl ServerParameterProvider for Parameters {
    fn server_parameters<C>(&self, client: &C) -> Option<HashMap<String, String>>
    where
        C: ClientInfo,
    {
        let mut defaults = DefaultServerParameterProvider::default();
        defaults.server_version = SERVER_VERSION.to_string();
        defaults.is_superuser = false;
        defaults.default_transaction_read_only = true;
        defaults.server_parameters(client)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn meta(pairs: &[(&str, &str)]) -> HashMap<String, String> {
        pairs
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect()
    }

    #[test]
    fn tenant_comes_from_a_parameter_or_libpq_options() {
        assert_eq!(requested_tenant(&meta(&[("user", "x")])), None);
        assert_eq!(
            requested_tenant(&meta(&[("strata.tenant", "acme")])).as_deref(),
            Some("acme")
        );
        assert_eq!(
            requested_tenant(&meta(&[("options", "-c strata.tenant=acme")])).as_deref(),
            Some("acme")
        );
        assert_eq!(
            requested_tenant(&meta(&[("options", "-c datestyle=ISO --tenant=b")])).as_deref(),
            Some("b")
        );
        assert_eq!(
            requested_tenant(&meta(&[("options", "-cstrata.tenant=c")])).as_deref(),
            Some("c")
        );
    }
}
