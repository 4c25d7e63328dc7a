//! TLS listeners on real sockets: handshakes with trusted, untrusted, missing and expired
//! certificates, a plain-text client, reloads that leave open connections alone, pinning.

use std::sync::Arc;
use std::time::Duration;

use axum::Router;
use axum::routing::get;
use rustls::pki_types::ServerName;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;
use tokio_rustls::TlsConnector;
use tokio_util::sync::CancellationToken;

use super::client::{ClientTls, ClientTlsConfig, Connector};
use super::testing::{Pair, TestPki};
use super::{ServerTls, ServerTlsConfig};
use crate::listener::Listener;
use crate::security::SecurityMetrics;
use crate::{SharedRegistry, serve_http};

struct Server {
    addr: std::net::SocketAddr,
    tls: Arc<ServerTls>,
    registry: SharedRegistry,
    stop: CancellationToken,
}

impl Drop for Server {
    fn drop(&mut self) {
        self.stop.cancel();
    }
}

async fn server(pair: &Pair, client_ca: Option<&std::path::Path>) -> Server {
    let registry = SharedRegistry::default();
    let metrics = SecurityMetrics::register(&registry, "t");
    let config = ServerTlsConfig {
        cert: Some(pair.cert.clone()),
        key: Some(pair.key.clone()),
        client_ca: client_ca.map(|p| p.to_path_buf()),
    };
    let tls = ServerTls::load(&config, metrics.clone()).unwrap().unwrap();
    let tcp = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = tcp.local_addr().unwrap();
    let listener = Listener::new("test", tcp, Some(tls.clone()), metrics);
    let app = Router::new().route("/hello", get(|| async { "hello" }));
    let stop = CancellationToken::new();
    tokio::spawn(serve_http("test", listener, app, stop.clone()));
    Server {
        addr,
        tls,
        registry,
        stop,
    }
}

fn client(ca: &std::path::Path, cert: Option<&Pair>) -> rustls::ClientConfig {
    let tls = ClientTls::load(&ClientTlsConfig {
        ca: Some(ca.to_path_buf()),
        cert: cert.map(|p| p.cert.clone()),
        key: cert.map(|p| p.key.clone()),
        ..Default::default()
    })
    .unwrap()
    .unwrap();
    tls.config(&[b"http/1.1"]).unwrap()
}

/// `GET /hello` over a TLS connection; the response, or the error.
async fn get_hello(
    addr: std::net::SocketAddr,
    config: rustls::ClientConfig,
) -> std::io::Result<String> {
    let tcp = TcpStream::connect(addr).await?;
    let mut tls = TlsConnector::from(Arc::new(config))
        .connect(ServerName::try_from("localhost").unwrap(), tcp)
        .await?;
    tls.write_all(b"GET /hello HTTP/1.1\r\nhost: localhost\r\nconnection: close\r\n\r\n")
        .await?;
    let mut out = String::new();
    tls.read_to_string(&mut out).await?;
    Ok(out)
}

/// Waits until the `outcome` count of handshakes reaches `n`.
async fn handshakes(s: &Server, outcome: &str, n: u64) {
    let needle = format!("t_tls_handshakes_total{{listener=\"test\",outcome=\"{outcome}\"}} {n}");
    for _ in 0..100 {
        if s.registry.encode().contains(&needle) {
            return;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    panic!("no {needle:?} in\n{}", s.registry.encode());
}

#[tokio::test]
async fn trusted_clients_get_through_and_bad_ones_fail_alone() {
    let dir = tempfile::tempdir().unwrap();
    let pki = TestPki::new(dir.path());
    let s = server(&pki.server("server"), None).await;
    let ok = get_hello(s.addr, client(&pki.ca, None)).await.unwrap();
    assert!(
        ok.starts_with("HTTP/1.1 200") && ok.ends_with("hello"),
        "{ok}"
    );
    handshakes(&s, "ok", 1).await;

    // A client that trusts another CA refuses the server's certificate.
    let other = TestPki::new(&dir.path().join("other"));
    let err = get_hello(s.addr, client(&other.ca, None))
        .await
        .unwrap_err();
    assert!(
        err.to_string().contains("invalid peer certificate"),
        "{err}"
    );
    handshakes(&s, "refused_by_client", 1).await;

    // Plain text on the TLS port: told so, in HTTP.
    let mut plain = TcpStream::connect(s.addr).await.unwrap();
    plain
        .write_all(b"GET /hello HTTP/1.1\r\nhost: x\r\n\r\n")
        .await
        .unwrap();
    let mut answer = String::new();
    plain.read_to_string(&mut answer).await.unwrap();
    assert!(answer.starts_with("HTTP/1.1 400"), "{answer}");
    assert!(answer.contains("speaks TLS"), "{answer}");
    handshakes(&s, "not_tls", 1).await;

    // Garbage that is not HTTP either: closed.
    let mut junk = TcpStream::connect(s.addr).await.unwrap();
    junk.write_all(&[0x00, 0x01, 0x02]).await.unwrap();
    let mut rest = Vec::new();
    junk.read_to_end(&mut rest).await.unwrap();
    assert!(rest.is_empty());
    handshakes(&s, "not_tls", 2).await;

    // None of it touched the server.
    let again = get_hello(s.addr, client(&pki.ca, None)).await.unwrap();
    assert!(again.ends_with("hello"), "{again}");
}

#[tokio::test]
async fn mutual_tls_needs_a_valid_client_certificate() {
    let dir = tempfile::tempdir().unwrap();
    let pki = TestPki::new(dir.path());
    let s = server(&pki.server("server"), Some(&pki.ca)).await;
    assert!(s.tls.requires_client_cert());
    let ok = get_hello(s.addr, client(&pki.ca, Some(&pki.client("agent"))))
        .await
        .unwrap();
    assert!(ok.ends_with("hello"), "{ok}");

    // TLS 1.3: the client learns of the refusal at its first read.
    assert!(get_hello(s.addr, client(&pki.ca, None)).await.is_err());
    handshakes(&s, "no_client_cert", 1).await;
    let expired = pki.expired_client("old");
    assert!(
        get_hello(s.addr, client(&pki.ca, Some(&expired)))
            .await
            .is_err()
    );
    handshakes(&s, "expired_client_cert", 1).await;
    let stranger = pki.untrusted("stranger");
    assert!(
        get_hello(s.addr, client(&pki.ca, Some(&stranger)))
            .await
            .is_err()
    );
    handshakes(&s, "bad_client_cert", 1).await;
}

/// The DER of the certificate the server presents now.
async fn presented(addr: std::net::SocketAddr, ca: &std::path::Path) -> Vec<u8> {
    let tcp = TcpStream::connect(addr).await.unwrap();
    let tls = TlsConnector::from(Arc::new(client(ca, None)))
        .connect(ServerName::try_from("localhost").unwrap(), tcp)
        .await
        .unwrap();
    tls.get_ref().1.peer_certificates().unwrap()[0].to_vec()
}

#[tokio::test]
async fn a_reload_changes_new_handshakes_and_keeps_open_connections() {
    let dir = tempfile::tempdir().unwrap();
    let pki = TestPki::new(dir.path());
    let first = pki.server("server");
    let s = server(&first, None).await;
    let before = presented(s.addr, &pki.ca).await;

    // An open keep-alive connection, before the reload.
    let tcp = TcpStream::connect(s.addr).await.unwrap();
    let mut open = TlsConnector::from(Arc::new(client(&pki.ca, None)))
        .connect(ServerName::try_from("localhost").unwrap(), tcp)
        .await
        .unwrap();

    // A half-written file is not taken: the certificate in use stays.
    std::fs::write(&first.cert, "-----BEGIN CERTIFICATE-----\nAAAA").unwrap();
    s.tls.reload(true);
    assert_eq!(presented(s.addr, &pki.ca).await, before);
    assert!(
        s.registry
            .encode()
            .contains("t_tls_reloads_total{outcome=\"failed\"} 1")
    );

    // The new pair, written over the old files.
    let second = pki.server("second");
    std::fs::copy(&second.cert, &first.cert).unwrap();
    std::fs::copy(&second.key, &first.key).unwrap();
    s.tls.reload(false);
    let after = presented(s.addr, &pki.ca).await;
    assert_ne!(after, before);
    assert_eq!(after, super::read_certs(&second.cert).unwrap()[0].to_vec());

    open.write_all(b"GET /hello HTTP/1.1\r\nhost: localhost\r\nconnection: close\r\n\r\n")
        .await
        .unwrap();
    let mut out = String::new();
    open.read_to_string(&mut out).await.unwrap();
    assert!(out.ends_with("hello"), "{out}");
}

#[tokio::test]
async fn a_pinned_client_trusts_exactly_one_certificate() {
    let dir = tempfile::tempdir().unwrap();
    let pki = TestPki::new(dir.path());
    let own = pki.untrusted("own");
    let s = server(&own, None).await;
    let pinned = |path: &std::path::Path| {
        Connector::new(
            ClientTls::load(&ClientTlsConfig {
                pinned_cert: Some(path.to_path_buf()),
                ..Default::default()
            })
            .unwrap()
            .map(Arc::new),
            Duration::from_secs(5),
        )
    };
    let port = s.addr.port();
    pinned(&own.cert).dial("127.0.0.1", port).await.unwrap();
    let other = pki.server("other");
    let err = pinned(&other.cert)
        .dial("127.0.0.1", port)
        .await
        .err()
        .unwrap();
    assert!(
        err.to_string().contains("ApplicationVerificationFailure"),
        "{err}"
    );
    // A CA-verified client refuses the self-signed certificate.
    let ca = Connector::new(
        ClientTls::load(&ClientTlsConfig {
            ca: Some(pki.ca.clone()),
            ..Default::default()
        })
        .unwrap()
        .map(Arc::new),
        Duration::from_secs(5),
    );
    assert!(ca.dial("127.0.0.1", port).await.is_err());
}

#[test]
fn settings_are_checked() {
    let half = ServerTlsConfig {
        cert: Some("c.pem".into()),
        ..Default::default()
    };
    assert!(half.validate().unwrap_err().contains("tls.key"));
    let ca_only = ServerTlsConfig {
        client_ca: Some("ca.pem".into()),
        ..Default::default()
    };
    assert!(ca_only.validate().is_err());
    let both = ClientTlsConfig {
        ca: Some("a".into()),
        pinned_cert: Some("b".into()),
        ..Default::default()
    };
    assert!(both.validate().is_err());
    let dir = tempfile::tempdir().unwrap();
    let missing = ServerTlsConfig {
        cert: Some(dir.path().join("none.pem")),
        key: Some(dir.path().join("none-key.pem")),
        client_ca: None,
    };
    let err = ServerTls::load(&missing, Arc::new(SecurityMetrics::default()))
        .err()
        .unwrap();
    assert!(err.to_string().contains("none.pem"), "{err}");
}
