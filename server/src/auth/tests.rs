//! The gate's decisions: credentials, scopes, tenants, the header's part, reloads, and the
//! HTTP guard's answers.

use std::sync::Arc;

use axum::Router;
use axum::body::Body;
use axum::http::{Request, StatusCode};
use axum::routing::get;
use base64::Engine;
use tower::ServiceExt;

use super::*;

const FILE: &str = r#"
[[credential]]
token = "TOKEN_A"
tenants = ["acme"]
scopes = ["write", "read"]

[[credential]]
name = "grafana"
username = "grafana"
password = "PASSWORD"
tenants = ["acme", "shop"]
scopes = ["read"]

[[credential]]
token = "TOKEN_OPS"
tenants = ["*"]
scopes = ["admin", "read"]
"#;

fn file_text() -> String {
    FILE.replace("TOKEN_A", &hash_text("secret-a"))
        .replace("PASSWORD", &hash_text("pw"))
        .replace("TOKEN_OPS", &hash_text("ops"))
}

fn gate(dir: &std::path::Path) -> (Gate, std::path::PathBuf) {
    let path = dir.join("auth.toml");
    std::fs::write(&path, file_text()).unwrap();
    let config = AuthConfig {
        file: Some(path.clone()),
        ..Default::default()
    };
    let gate = Gate::load(&config, "default", Arc::new(SecurityMetrics::default())).unwrap();
    (gate, path)
}

fn basic(user: &str, password: &str) -> String {
    format!(
        "Basic {}",
        base64::engine::general_purpose::STANDARD.encode(format!("{user}:{password}"))
    )
}

#[test]
fn without_a_file_the_header_or_the_default_decides() {
    let g = Gate::open("default");
    assert!(!g.enabled());
    assert_eq!(g.check(None, None, Scope::Write).unwrap(), "default");
    assert_eq!(g.check(None, Some("acme"), Scope::Read).unwrap(), "acme");
    assert_eq!(g.check(None, Some(""), Scope::Read).unwrap(), "default");
    assert!(g.metrics_open());
}

#[test]
fn credentials_give_their_tenants_and_scopes() {
    let dir = tempfile::tempdir().unwrap();
    let (g, _) = gate(dir.path());
    let bearer = |t: &str| format!("Bearer {t}");
    // The credential's first tenant without a header; the header chooses among them.
    assert_eq!(
        g.check(Some(&bearer("secret-a")), None, Scope::Write)
            .unwrap(),
        "acme"
    );
    assert_eq!(
        g.check(Some("bearer secret-a"), Some("acme"), Scope::Read)
            .unwrap(),
        "acme"
    );
    assert_eq!(
        g.check(Some(&basic("grafana", "pw")), Some("shop"), Scope::Read)
            .unwrap(),
        "shop"
    );
    // Every tenant: the header's, else the default.
    assert_eq!(
        g.check(Some(&bearer("ops")), Some("zeta"), Scope::Read)
            .unwrap(),
        "zeta"
    );
    assert_eq!(
        g.check(Some(&bearer("ops")), None, Scope::Admin).unwrap(),
        "default"
    );
}

#[test]
fn refusals_say_why() {
    let dir = tempfile::tempdir().unwrap();
    let (g, _) = gate(dir.path());
    let unauthenticated =
        |r: Result<String, Denied>| assert!(matches!(r, Err(Denied::Unauthenticated(_))), "{r:?}");
    let forbidden =
        |r: Result<String, Denied>| assert!(matches!(r, Err(Denied::Forbidden(_))), "{r:?}");
    unauthenticated(g.check(None, None, Scope::Read));
    unauthenticated(g.check(Some(""), None, Scope::Read));
    unauthenticated(g.check(Some("Bearer nope"), None, Scope::Read));
    unauthenticated(g.check(Some("Bearer"), None, Scope::Read));
    unauthenticated(g.check(Some(&basic("grafana", "wrong")), None, Scope::Read));
    unauthenticated(g.check(Some(&basic("nobody", "pw")), None, Scope::Read));
    unauthenticated(g.check(Some("Basic !!!notbase64"), None, Scope::Read));
    unauthenticated(g.check(Some("Digest x"), None, Scope::Read));
    // Known, but not allowed: a scope it lacks, a tenant it lacks (header spoofing).
    forbidden(g.check(Some(&basic("grafana", "pw")), None, Scope::Write));
    forbidden(g.check(Some("Bearer secret-a"), Some("shop"), Scope::Read));
    forbidden(g.check(Some("Bearer secret-a"), None, Scope::Admin));
    assert!(
        g.check_tenant(Some("Bearer secret-a"), "shop", Scope::Write)
            .is_err()
    );
    assert!(
        g.check_tenant(Some("Bearer secret-a"), "acme", Scope::Write)
            .is_ok()
    );
}

#[test]
fn the_internal_token_writes_every_tenant_and_nothing_else() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("auth.toml");
    std::fs::write(&path, file_text()).unwrap();
    let config = AuthConfig {
        file: Some(path),
        internal_token: Some("inner".into()),
        ..Default::default()
    };
    let g = Gate::load(&config, "default", Arc::new(SecurityMetrics::default())).unwrap();
    assert!(
        g.check_tenant(Some("Bearer inner"), "any", Scope::Write)
            .is_ok()
    );
    assert!(g.check(Some("Bearer inner"), None, Scope::Read).is_err());
    assert!(!g.metrics_open());
}

#[test]
fn bad_files_are_refused_whole() {
    let h = hash_text("x");
    for (text, needle) in [
        (
            "[[credential]]\ntenants=[\"a\"]\nscopes=[\"read\"]\n",
            "either token",
        ),
        (
            &format!("[[credential]]\ntoken=\"{h}\"\ntenants=[\"a\"]\nscopes=[]\n"),
            "scopes is empty",
        ),
        (
            &format!("[[credential]]\ntoken=\"{h}\"\ntenants=[]\nscopes=[\"read\"]\n"),
            "tenants is empty",
        ),
        (
            &format!("[[credential]]\ntoken=\"{h}\"\ntenants=[\"a/b\"]\nscopes=[\"read\"]\n"),
            "tenant",
        ),
        (
            "[[credential]]\ntoken=\"plain\"\ntenants=[\"a\"]\nscopes=[\"read\"]\n",
            "unknown hash kind",
        ),
        (
            &format!(
                "[[credential]]\ntoken=\"{}\"\ntenants=[\"a\"]\nscopes=[\"read\"]\n",
                h.to_uppercase().replace("SHA256", "sha256")
            ),
            "lowercase",
        ),
        (
            &format!("[[credential]]\ntoken=\"{h}\"\ntenants=[\"a\"]\nscopes=[\"root\"]\n"),
            "unknown variant",
        ),
        (
            &format!(
                "[[credential]]\ntoken=\"{h}\"\ntenants=[\"a\"]\nscopes=[\"read\"]\n[[credential]]\ntoken=\"{h}\"\ntenants=[\"b\"]\nscopes=[\"read\"]\n"
            ),
            "twice",
        ),
        (
            &format!("[[credential]]\ntoken=\"{h}\"\ntenants=[\"*\",\"a\"]\nscopes=[\"read\"]\n"),
            "stands alone",
        ),
        ("[[credential]]\nnope = 1\n", "unknown field"),
    ] {
        let err = Credentials::parse(text).unwrap_err();
        assert!(err.contains(needle), "{text}: {err}");
    }
    assert!(Credentials::parse("").unwrap().is_empty());
}

#[test]
fn a_changed_file_is_read_again_and_a_broken_one_is_not_taken() {
    let dir = tempfile::tempdir().unwrap();
    let (g, path) = gate(dir.path());
    assert!(g.check(Some("Bearer new"), None, Scope::Read).is_err());
    let more = format!(
        "{}\n[[credential]]\ntoken = \"{}\"\ntenants = [\"beta\"]\nscopes = [\"read\"]\n",
        file_text(),
        hash_text("new")
    );
    std::fs::write(&path, more).unwrap();
    g.reload(false);
    assert_eq!(
        g.check(Some("Bearer new"), None, Scope::Read).unwrap(),
        "beta"
    );
    std::fs::write(&path, "[[credential]\n").unwrap();
    g.reload(false);
    assert_eq!(
        g.check(Some("Bearer new"), None, Scope::Read).unwrap(),
        "beta"
    );
}

async fn call(app: &Router, headers: &[(&str, &str)]) -> (StatusCode, Vec<String>, String) {
    let mut req = Request::get("/who");
    for (k, v) in headers {
        req = req.header(*k, *v);
    }
    let resp = app
        .clone()
        .oneshot(req.body(Body::empty()).unwrap())
        .await
        .unwrap();
    let status = resp.status();
    let challenges = resp
        .headers()
        .get_all("www-authenticate")
        .iter()
        .map(|v| v.to_str().unwrap().to_string())
        .collect();
    let body = http_body_util::BodyExt::collect(resp.into_body())
        .await
        .unwrap()
        .to_bytes();
    (
        status,
        challenges,
        String::from_utf8_lossy(&body).into_owned(),
    )
}

#[tokio::test]
async fn the_http_guard_hands_handlers_the_decided_tenant() {
    let dir = tempfile::tempdir().unwrap();
    let (g, _) = gate(dir.path());
    let app = http::require(
        Router::new().route(
            "/who",
            get(|h: axum::http::HeaderMap| async move {
                h.get(TENANT_HEADER)
                    .map(|v| v.to_str().unwrap().to_string())
                    .unwrap_or_default()
            }),
        ),
        Arc::new(g),
        Scope::Read,
        http::render_json,
    );
    let (s, challenges, body) = call(&app, &[]).await;
    assert_eq!(s, StatusCode::UNAUTHORIZED);
    assert_eq!(challenges.len(), 2, "{challenges:?}");
    assert!(challenges[1].starts_with("Basic"));
    assert!(body.contains("\"status\":\"error\""), "{body}");
    let (s, _, body) = call(&app, &[("authorization", "Bearer secret-a")]).await;
    assert_eq!((s, body.as_str()), (StatusCode::OK, "acme"));
    let (s, challenges, _) = call(
        &app,
        &[
            ("authorization", "Bearer secret-a"),
            ("x-scope-orgid", "shop"),
        ],
    )
    .await;
    assert_eq!(s, StatusCode::FORBIDDEN);
    assert!(challenges.is_empty());
    let grafana = basic("grafana", "pw");
    let (s, _, body) = call(
        &app,
        &[
            ("authorization", grafana.as_str()),
            ("x-scope-orgid", "shop"),
        ],
    )
    .await;
    assert_eq!((s, body.as_str()), (StatusCode::OK, "shop"));
}

#[test]
fn basic_credentials_may_come_without_padding() {
    let dir = tempfile::tempdir().unwrap();
    let (g, _) = gate(dir.path());
    // "grafana:pw" is 10 bytes: padded base64 ends in "=="; Go's Flight clients drop it.
    let unpadded = format!(
        "Basic {}",
        base64::engine::general_purpose::STANDARD_NO_PAD.encode("grafana:pw")
    );
    assert_eq!(
        g.check(Some(&unpadded), Some("shop"), Scope::Read).unwrap(),
        "shop"
    );
    assert_eq!(
        g.check(Some(&basic("grafana", "pw")), None, Scope::Read)
            .unwrap(),
        "acme"
    );
}

#[test]
fn a_database_login_is_a_user_and_password_or_a_token_as_the_password() {
    let dir = tempfile::tempdir().unwrap();
    let (g, _) = gate(dir.path());
    assert_eq!(
        g.check_password("grafana", "pw", None, Scope::Read)
            .unwrap(),
        "acme"
    );
    assert_eq!(
        g.check_password("grafana", "pw", Some("shop"), Scope::Read)
            .unwrap(),
        "shop"
    );
    assert!(matches!(
        g.check_password("grafana", "pw", Some("other"), Scope::Read),
        Err(Denied::Forbidden(_))
    ));
    assert!(matches!(
        g.check_password("grafana", "nope", None, Scope::Read),
        Err(Denied::Unauthenticated(_))
    ));
    // Any user name with a token as the password.
    assert_eq!(
        g.check_password("anyone", "ops", Some("x"), Scope::Read)
            .unwrap(),
        "x"
    );
    assert!(matches!(
        g.check_password("anyone", "secret-a", None, Scope::Admin),
        Err(Denied::Forbidden(_))
    ));
    let open = Gate::open("default");
    assert_eq!(
        open.check_password("u", "p", Some("t"), Scope::Read)
            .unwrap(),
        "t"
    );
}
