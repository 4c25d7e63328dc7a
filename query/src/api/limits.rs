//! The limits layer in front of every query route: a slot among the tenant's concurrent
//! queries, then the query runs as one [`Accounted`] future under the tenant's bounds (time,
//! memory of everything it allocates, answer size), all at most the service's own.
//!
//! Invariants: a query over its memory is stopped at its next poll (dropping it cancels
//! DataFusion's tasks too); an answer over its size is replaced by a 413 before any of it is
//! sent; every refusal is counted by tenant and reason.

use axum::body::Body;
use axum::body::HttpBody as _;
use axum::extract::{Request, State};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};

use super::{AppState, TENANT_HEADER};
use crate::budget::{Account, Accounted};
use crate::error::{QueryError, RefusedBy};

pub async fn bound(State(state): State<AppState>, request: Request, next: Next) -> Response {
    let config = state.engine.config();
    let tenant = request
        .headers()
        .get(TENANT_HEADER)
        .and_then(|v| v.to_str().ok())
        .unwrap_or(&config.default_tenant)
        .to_string();
    let limits = &state.limits;
    let _slot = match limits.query_permit(&tenant) {
        Ok(slot) => slot,
        Err(r) => {
            limits.refused(&tenant, r.reason, 0);
            return QueryError::TooMany(r.message).into_response();
        }
    };
    let bounds = limits.limits(&tenant).query(config.bounds());
    let account = Account::new(bounds.memory_bytes);
    let run = within(Accounted::new(account, next.run(request)));
    let response = match tokio::time::timeout(bounds.time, run).await {
        Ok(Ok(response)) => response,
        Ok(Err(limit)) => QueryError::ResourcesExhausted(format!(
            "it allocated more than the {limit} bytes it may; narrow it down (a shorter time range, fewer series, a LIMIT)"
        ))
        .into_response(),
        Err(_) => QueryError::Timeout(bounds.time).into_response(),
    };
    if let Some(RefusedBy(reason)) = response.extensions().get::<RefusedBy>() {
        limits.refused(&tenant, reason, 0);
        return response;
    }
    let size = response.body().size_hint();
    if size.lower() as usize > bounds.answer_bytes {
        limits.refused(&tenant, "answer_size", 0);
        return QueryError::TooLarge(format!(
            "the answer is {} bytes, more than the {} an answer may have; narrow the query or add a LIMIT",
            size.lower(),
            bounds.answer_bytes
        ))
        .into_response();
    }
    if size
        .upper()
        .is_none_or(|u| u as usize > bounds.answer_bytes)
    {
        // A streamed answer of unknown size is cut off at the limit.
        let (parts, body) = response.into_parts();
        let limited = http_body_util::Limited::new(body, bounds.answer_bytes);
        return Response::from_parts(parts, Body::new(limited));
    }
    response
}

/// Resolves to the query's answer, or to its memory limit once it allocated past it.
async fn within<F: Future<Output = Response>>(mut run: Accounted<F>) -> Result<Response, usize> {
    std::future::poll_fn(|cx| {
        let polled = std::pin::Pin::new(&mut run).poll(cx);
        let account = run.account();
        match polled {
            _ if account.exceeded() => std::task::Poll::Ready(Err(account.limit())),
            std::task::Poll::Ready(r) => std::task::Poll::Ready(Ok(r)),
            std::task::Poll::Pending => std::task::Poll::Pending,
        }
    })
    .await
}
