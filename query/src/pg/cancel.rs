//! PostgreSQL cancel requests: a client opens a new connection carrying the process id and
//! secret key it got at login, and the query its first connection runs stops (SQLSTATE 57014).
//!
//! pgwire's own cancel registry only interrupts a handler while it plans; rows are sent after
//! the handler returns, so a cancel must reach the running stream instead. Each connection
//! registers here at login; each statement takes a fresh token ([`Current::start`]) that its
//! [`Limited`](crate::stream::Limited) stream watches.
//!
//! Invariants: a cancel stops only the statement running at that moment, only with the right
//! secret key; a connection's entry goes when the connection ends.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};

use async_trait::async_trait;
use bytes::Bytes;
use pgwire::api::cancel::CancelHandler;
use pgwire::messages::cancel::CancelRequest;
use pgwire::messages::startup::SecretKey;
use tokio_util::sync::CancellationToken;

use crate::stream::Wire;

type Key = (i32, Bytes);

/// Every logged-in connection's running statement, by cancel key.
#[derive(Default)]
pub struct Cancels {
    connections: Mutex<HashMap<Key, Arc<Current>>>,
}

/// The statement a connection runs now.
#[derive(Default)]
pub struct Current(Mutex<Option<CancellationToken>>);

impl Current {
    /// A token for the statement starting now (the previous one can no longer be cancelled).
    pub fn start(&self) -> CancellationToken {
        let token = CancellationToken::new();
        *self.0.lock().unwrap_or_else(|p| p.into_inner()) = Some(token.clone());
        token
    }
}

/// A connection's place in [`Cancels`], removed when dropped (with the connection).
pub struct Registered {
    cancels: Arc<Cancels>,
    key: Key,
    pub current: Arc<Current>,
}

impl Drop for Registered {
    fn drop(&mut self) {
        self.cancels
            .connections
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .remove(&self.key);
    }
}

impl Cancels {
    pub fn register(self: &Arc<Self>, pid: i32, secret: &SecretKey) -> Registered {
        let key = (pid, secret.to_bytes());
        let current = Arc::new(Current::default());
        self.connections
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .insert(key.clone(), current.clone());
        Registered {
            cancels: self.clone(),
            key,
            current,
        }
    }

    /// Cancels the running statement of the connection with this key; false if none.
    pub fn cancel(&self, pid: i32, secret: &SecretKey) -> bool {
        let current = self
            .connections
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .get(&(pid, secret.to_bytes()))
            .cloned();
        let token = current.and_then(|c| c.0.lock().unwrap_or_else(|p| p.into_inner()).take());
        match token {
            Some(t) => {
                t.cancel();
                true
            }
            None => false,
        }
    }
}

/// The listener's cancel handler.
pub struct OnCancel {
    pub cancels: Arc<Cancels>,
    pub wire: Wire,
}

#[async_trait]
impl CancelHandler for OnCancel {
    async fn on_cancel_request(&self, request: CancelRequest) {
        let found = self.cancels.cancel(request.pid, &request.secret_key);
        self.wire
            .count("cancel", if found { "ok" } else { "no_such_query" });
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_cancel_needs_the_key_and_stops_only_the_running_statement() {
        let cancels = Arc::new(Cancels::default());
        let key = SecretKey::I32(42);
        let registered = cancels.register(7, &key);
        assert!(!cancels.cancel(7, &key), "nothing runs yet");
        let first = registered.current.start();
        assert!(!cancels.cancel(7, &SecretKey::I32(41)), "wrong secret");
        assert!(!first.is_cancelled());
        let second = registered.current.start();
        assert!(cancels.cancel(7, &key));
        assert!(second.is_cancelled() && !first.is_cancelled());
        drop(registered);
        let _third = Arc::new(Current::default()).start();
        assert!(!cancels.cancel(7, &key), "gone with its connection");
    }
}
