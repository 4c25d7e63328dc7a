//! A role's listening socket, plain text or TLS, as a stream of ready connections that both
//! the HTTP server ([`crate::serve_http`]) and tonic's gRPC server take.
//!
//! Invariants:
//! - Accepting never waits on a handshake: each runs in a task of its own, bounded by
//!   [`HANDSHAKE_TIMEOUT`], and at most [`MAX_HANDSHAKES`] run at once (further connections
//!   wait in the accept queue).
//! - A plain-text client on a TLS port is told so and closed: an HTTP/1 request gets `400`
//!   with a one-line reason, anything else is closed at once. A failed handshake (expired or
//!   untrusted certificate, none under mTLS, a client that refuses ours) closes that
//!   connection only. Every outcome is counted by listener and reason.

use std::io;
use std::net::SocketAddr;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};
use std::time::Duration;

use tokio::io::{AsyncRead, AsyncWrite, AsyncWriteExt, ReadBuf};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::{Semaphore, mpsc};
use tokio_rustls::TlsAcceptor;
use tokio_util::sync::CancellationToken;
use tracing::{debug, warn};

use crate::security::SecurityMetrics;
use crate::tls::ServerTls;

/// How long a client has to complete the TLS handshake.
pub const HANDSHAKE_TIMEOUT: Duration = Duration::from_secs(10);
/// Handshakes in progress at once, per listener.
pub const MAX_HANDSHAKES: usize = 256;

/// A byte stream a server or client can run a protocol over.
pub trait Io: AsyncRead + AsyncWrite + Send + Unpin + 'static {}
impl<T: AsyncRead + AsyncWrite + Send + Unpin + 'static> Io for T {}

/// One accepted connection, past its TLS handshake when the listener has TLS.
pub struct Conn {
    io: Box<dyn Io>,
    remote: SocketAddr,
}

/// What a server knows of a connection's peer.
#[derive(Debug, Clone, Copy)]
pub struct ConnInfo {
    pub remote: SocketAddr,
}

impl Conn {
    pub fn remote(&self) -> SocketAddr {
        self.remote
    }
}

impl AsyncRead for Conn {
    fn poll_read(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        Pin::new(&mut *self.io).poll_read(cx, buf)
    }
}

impl AsyncWrite for Conn {
    fn poll_write(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        Pin::new(&mut *self.io).poll_write(cx, buf)
    }

    fn poll_flush(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut *self.io).poll_flush(cx)
    }

    fn poll_shutdown(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut *self.io).poll_shutdown(cx)
    }

    fn poll_write_vectored(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        bufs: &[io::IoSlice<'_>],
    ) -> Poll<io::Result<usize>> {
        Pin::new(&mut *self.io).poll_write_vectored(cx, bufs)
    }

    fn is_write_vectored(&self) -> bool {
        self.io.is_write_vectored()
    }
}

impl tonic::transport::server::Connected for Conn {
    type ConnectInfo = ConnInfo;

    fn connect_info(&self) -> ConnInfo {
        ConnInfo {
            remote: self.remote,
        }
    }
}

/// A bound socket of a role, with the TLS settings its connections get (if any).
pub struct Listener {
    what: &'static str,
    tcp: TcpListener,
    tls: Option<Arc<ServerTls>>,
    metrics: Arc<SecurityMetrics>,
}

impl Listener {
    pub fn new(
        what: &'static str,
        tcp: TcpListener,
        tls: Option<Arc<ServerTls>>,
        metrics: Arc<SecurityMetrics>,
    ) -> Self {
        Self {
            what,
            tcp,
            tls,
            metrics,
        }
    }

    /// A plain-text listener that counts nothing (tests, tools).
    pub fn plain(what: &'static str, tcp: TcpListener) -> Self {
        Self::new(what, tcp, None, Arc::new(SecurityMetrics::default()))
    }

    pub fn local_addr(&self) -> io::Result<SocketAddr> {
        self.tcp.local_addr()
    }

    pub fn is_tls(&self) -> bool {
        self.tls.is_some()
    }

    /// Accepts until `shutdown` (or until the stream is dropped), handing over connections
    /// once they are ready for the protocol.
    pub fn incoming(
        self,
        shutdown: CancellationToken,
    ) -> tokio_stream::wrappers::ReceiverStream<io::Result<Conn>> {
        let (tx, rx) = mpsc::channel(64);
        tokio::spawn(self.accept_loop(tx, shutdown));
        tokio_stream::wrappers::ReceiverStream::new(rx)
    }

    async fn accept_loop(self, tx: mpsc::Sender<io::Result<Conn>>, shutdown: CancellationToken) {
        let handshakes = Arc::new(Semaphore::new(MAX_HANDSHAKES));
        loop {
            let permit = match &self.tls {
                Some(_) => tokio::select! {
                    p = handshakes.clone().acquire_owned() => p.ok(),
                    _ = shutdown.cancelled() => return,
                    _ = tx.closed() => return,
                },
                None => None,
            };
            let (tcp, remote) = tokio::select! {
                accepted = self.tcp.accept() => match accepted {
                    Ok(a) => a,
                    Err(e) => {
                        // Out of descriptors and the like: wait, do not spin.
                        warn!(listener = self.what, "accept failed: {e}");
                        tokio::time::sleep(Duration::from_millis(100)).await;
                        continue;
                    }
                },
                _ = shutdown.cancelled() => return,
                _ = tx.closed() => return,
            };
            let _ = tcp.set_nodelay(true);
            let Some(tls) = &self.tls else {
                let conn = Conn {
                    io: Box::new(tcp),
                    remote,
                };
                if tx.send(Ok(conn)).await.is_err() {
                    return;
                }
                continue;
            };
            let (tls, tx, metrics, what) =
                (tls.clone(), tx.clone(), self.metrics.clone(), self.what);
            tokio::spawn(async move {
                let outcome =
                    match tokio::time::timeout(HANDSHAKE_TIMEOUT, handshake(&tls, tcp)).await {
                        Ok(Ok(io)) => {
                            let _ = tx.send(Ok(Conn { io, remote })).await;
                            "ok"
                        }
                        Ok(Err(reason)) => reason,
                        Err(_) => "timeout",
                    };
                if outcome != "ok" {
                    debug!(listener = what, %remote, outcome, "TLS handshake failed");
                }
                metrics.tls_handshake(what, outcome);
                drop(permit);
            });
        }
    }
}

/// The TLS handshake of one connection, or the reason it failed.
async fn handshake(tls: &ServerTls, mut tcp: TcpStream) -> Result<Box<dyn Io>, &'static str> {
    let mut first = [0u8; 8];
    let n = tcp.peek(&mut first).await.map_err(|_| "failed")?;
    // A TLS connection opens with a handshake record (content type 22).
    if n > 0 && first[0] != 0x16 {
        if looks_like_http(&first[..n]) {
            let _ = tcp
                .write_all(
                    b"HTTP/1.1 400 Bad Request\r\ncontent-type: text/plain\r\nconnection: close\r\n\r\nthis port speaks TLS: use https\n",
                )
                .await;
        }
        let _ = tcp.shutdown().await;
        return Err("not_tls");
    }
    if n == 0 {
        return Err("closed");
    }
    TlsAcceptor::from(tls.current())
        .accept(tcp)
        .await
        .map(|s| Box::new(s) as Box<dyn Io>)
        .map_err(|e| reason(&e))
}

/// Whether the first bytes of a connection are an HTTP/1 request line (`GET /...`).
fn looks_like_http(first: &[u8]) -> bool {
    let method = first.split(|b| *b == b' ').next().unwrap_or_default();
    !method.is_empty() && method.iter().all(u8::is_ascii_uppercase)
}

/// A short label for why a handshake failed.
fn reason(e: &io::Error) -> &'static str {
    let Some(tls) = e.get_ref().and_then(|i| i.downcast_ref::<rustls::Error>()) else {
        return "failed";
    };
    match tls {
        rustls::Error::NoCertificatesPresented => "no_client_cert",
        rustls::Error::InvalidCertificate(rustls::CertificateError::Expired)
        | rustls::Error::InvalidCertificate(rustls::CertificateError::ExpiredContext { .. }) => {
            "expired_client_cert"
        }
        rustls::Error::InvalidCertificate(_) => "bad_client_cert",
        rustls::Error::AlertReceived(_) => "refused_by_client",
        rustls::Error::NoApplicationProtocol => "no_alpn",
        _ => "failed",
    }
}
