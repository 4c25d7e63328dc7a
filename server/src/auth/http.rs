//! The [`Gate`] in front of an axum router: every request is checked before a handler runs,
//! and reaches it with `X-Scope-OrgID` set to the tenant the gate decided, so a handler reads
//! its tenant from that header and from nowhere else.
//!
//! Refusals are answered in the protocol's own terms by the router's [`Render`]; a 401 also
//! carries `WWW-Authenticate` for both schemes, so that browsers ask for a password.

use std::sync::Arc;

use axum::Router;
use axum::extract::{Request, State};
use axum::http::{HeaderMap, HeaderValue, StatusCode, header};
use axum::middleware::{self, Next};
use axum::response::{IntoResponse, Response};

use super::{Denied, Gate, Scope, TENANT_HEADER};

/// Answers a refusal (status 400, 401 or 403, see [`status`]) in a router's protocol; gets the
/// request's headers (an OTLP error answers in the request's encoding).
pub type Render = fn(&Denied, &HeaderMap) -> Response;

/// The HTTP status of a refusal.
pub fn status(denied: &Denied) -> StatusCode {
    match denied {
        Denied::Unauthenticated(_) => StatusCode::UNAUTHORIZED,
        Denied::Forbidden(_) => StatusCode::FORBIDDEN,
        Denied::Invalid(_) => StatusCode::BAD_REQUEST,
    }
}

/// A refusal as `{"status":"error","errorType":"...","error":"..."}` (the Prometheus API's
/// error shape, which Grafana shows as it is).
pub fn render_json(denied: &Denied, _: &HeaderMap) -> Response {
    let kind = match denied {
        Denied::Unauthenticated(_) => "unauthorized",
        Denied::Forbidden(_) => "forbidden",
        Denied::Invalid(_) => "bad_data",
    };
    (
        status(denied),
        axum::Json(JsonError {
            status: "error",
            error_type: kind,
            error: denied.message(),
        }),
    )
        .into_response()
}

#[derive(serde::Serialize)]
struct JsonError<'a> {
    status: &'static str,
    #[serde(rename = "errorType")]
    error_type: &'static str,
    error: &'a str,
}

#[derive(Clone)]
struct Guard {
    gate: Arc<Gate>,
    scope: Scope,
    render: Render,
}

/// Puts every route of `router` behind `gate` with `scope`.
pub fn require(router: Router, gate: Arc<Gate>, scope: Scope, render: Render) -> Router {
    router.layer(middleware::from_fn_with_state(
        Guard {
            gate,
            scope,
            render,
        },
        guard,
    ))
}

async fn guard(State(g): State<Guard>, mut request: Request, next: Next) -> Response {
    let headers = request.headers();
    let authorization = headers
        .get(header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok());
    let tenant = match headers.get(TENANT_HEADER).map(HeaderValue::to_str) {
        None => None,
        Some(Ok(t)) => Some(t),
        Some(Err(_)) => {
            let denied = Denied::Invalid("X-Scope-OrgID is not text".into());
            return (g.render)(&denied, headers);
        }
    };
    match g.gate.check(authorization, tenant, g.scope) {
        Ok(tenant) => match HeaderValue::from_str(&tenant) {
            Ok(v) => {
                request.headers_mut().insert(TENANT_HEADER, v);
                next.run(request).await
            }
            Err(_) => (g.render)(
                &Denied::Invalid(format!("tenant {tenant:?} is not a header value")),
                request.headers(),
            ),
        },
        Err(denied) => {
            let mut response = (g.render)(&denied, request.headers());
            if matches!(denied, Denied::Unauthenticated(_)) {
                let h = response.headers_mut();
                h.append(
                    header::WWW_AUTHENTICATE,
                    HeaderValue::from_static("Bearer realm=\"strata\""),
                );
                h.append(
                    header::WWW_AUTHENTICATE,
                    HeaderValue::from_static("Basic realm=\"strata\", charset=\"UTF-8\""),
                );
            }
            response
        }
    }
}
