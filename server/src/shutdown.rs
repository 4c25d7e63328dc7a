//! The servers of one role, stopped together: the first that fails, or that ends before the
//! role was asked to stop, cancels the role's shutdown token, so that the others finish their
//! in-flight requests and the role goes on to its ordered shutdown (drain, persist, return).
//!
//! Invariants:
//! - [`Servers::wait`] returns only once every server spawned on it has ended, and returns
//!   the first failure (a panicking server is a failure too).
//! - A role that starts its servers through [`Servers`] never runs half up.

use std::future::Future;

use tokio::task::JoinSet;
use tokio_util::sync::CancellationToken;
use tracing::error;

use crate::{Error, Result};

/// The running servers of a role and the token that stops them.
pub struct Servers {
    set: JoinSet<(&'static str, Result<()>)>,
    shutdown: CancellationToken,
}

impl Servers {
    /// Servers that stop when `shutdown` is cancelled, and cancel it when one of them fails.
    pub fn new(shutdown: CancellationToken) -> Self {
        Self {
            set: JoinSet::new(),
            shutdown,
        }
    }

    /// The token the servers stop on.
    pub fn shutdown(&self) -> &CancellationToken {
        &self.shutdown
    }

    /// Runs `server` (which ends once the token is cancelled) as one of the role's servers.
    pub fn spawn(
        &mut self,
        what: &'static str,
        server: impl Future<Output = Result<()>> + Send + 'static,
    ) {
        self.set.spawn(async move { (what, server.await) });
    }

    /// Waits for every server to end; the first to fail, or to end unasked, stops the others.
    pub async fn wait(mut self) -> Result<()> {
        let mut first_error = None;
        while let Some(joined) = self.set.join_next().await {
            let result: Result<()> = match joined {
                Ok((_, Ok(()))) if self.shutdown.is_cancelled() => continue,
                Ok((what, Ok(()))) => Err(Error::Serve {
                    what,
                    source: "stopped before the role was asked to stop".into(),
                }),
                Ok((_, Err(e))) => Err(e),
                Err(join) => Err(Error::Serve {
                    what: "server task",
                    source: Box::new(join),
                }),
            };
            if let Err(e) = result {
                error!(error = %e, "a server stopped; stopping the role");
                self.shutdown.cancel();
                first_error.get_or_insert(e);
            }
        }
        first_error.map_or(Ok(()), Err)
    }
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use super::*;

    #[tokio::test]
    async fn one_failing_server_stops_the_others_and_its_error_is_returned() {
        let shutdown = CancellationToken::new();
        let mut servers = Servers::new(shutdown.clone());
        let stop = shutdown.clone();
        servers.spawn("waits", async move {
            stop.cancelled().await;
            Ok(())
        });
        servers.spawn("fails", async {
            tokio::time::sleep(Duration::from_millis(10)).await;
            Err(Error::Serve {
                what: "fails",
                source: "boom".into(),
            })
        });
        let result = tokio::time::timeout(Duration::from_secs(5), servers.wait())
            .await
            .expect("the waiting server was stopped");
        assert!(matches!(result, Err(Error::Serve { what: "fails", .. })));
        assert!(shutdown.is_cancelled());
    }

    #[tokio::test]
    async fn servers_that_end_on_shutdown_are_a_clean_stop() {
        let shutdown = CancellationToken::new();
        let mut servers = Servers::new(shutdown.clone());
        for what in ["a", "b"] {
            let stop = shutdown.clone();
            servers.spawn(what, async move {
                stop.cancelled().await;
                Ok(())
            });
        }
        shutdown.cancel();
        servers.wait().await.expect("clean stop");
    }

    #[tokio::test]
    async fn a_server_ending_unasked_or_panicking_stops_the_role() {
        let shutdown = CancellationToken::new();
        let mut servers = Servers::new(shutdown.clone());
        servers.spawn("ends", async { Ok(()) });
        assert!(servers.wait().await.is_err());
        assert!(shutdown.is_cancelled());
        let mut servers = Servers::new(CancellationToken::new());
        servers.spawn("panics", async { panic!("server bug") });
        assert!(servers.wait().await.is_err());
    }
}
