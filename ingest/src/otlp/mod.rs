//! OTLP receivers (gRPC in [`grpc`], HTTP in [`http`]) in front of an [`Ingest`] sink.
//!
//! Both protocols hand [`OtlpReceiver::export`] the request body as they got it (protobuf or
//! JSON bytes); it drops what the OTLP spec says a server must reject (spans with an
//! invalid trace or span id, metrics without a name), converts the rest to one Arrow batch
//! ([`OtlpSignal::convert_payload`]) and hands it to the sink. The
//! rejected part is reported as OTLP partial success. The tenant is decided by the role's
//! auth [`Gate`] (the credential's tenants, `X-Scope-OrgID` choosing among them; without auth
//! the header or the default tenant), before the body is read. Prometheus remote write
//! ([`crate::remote_write`]) is served beside OTLP/HTTP and ingested through the same receiver.

pub mod grpc;
pub mod http;
mod signal;

use std::sync::Arc;

use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::registry::Registry;
use strata_schema::envelope::validate_tenant;
use tracing::warn;

use strata_server::Labels;
use strata_server::auth::Gate;
use strata_server::limits::Overrides;

use crate::sink::{Ingest, IngestError};
pub use signal::{Converted, Logs, Metrics, OtlpSignal, Payload, Traces};

pub use strata_server::auth::TENANT_HEADER;

/// Receiver-side metrics, shared by both protocols.
pub struct OtlpMetrics {
    /// Requests by signal, protocol and outcome (`ok`, `partial`, or the refusal reason).
    pub requests: Family<Labels, Counter>,
    /// Items (spans, log records, data points) accepted, by signal and protocol.
    pub accepted: Family<Labels, Counter>,
    /// Items refused, by signal and reason (`invalid`, `overloaded`, `too_large`, ...).
    pub refused: Family<Labels, Counter>,
}

impl OtlpMetrics {
    /// Registers under `<prefix>_otlp_*`.
    pub fn register(registry: &mut Registry, prefix: &str) -> Self {
        let m = Self {
            requests: Family::default(),
            accepted: Family::default(),
            refused: Family::default(),
        };
        let r = registry.sub_registry_with_prefix(format!("{prefix}_otlp"));
        r.register("requests", "OTLP export requests", m.requests.clone());
        r.register(
            "accepted_items",
            "Spans, log records and data points accepted",
            m.accepted.clone(),
        );
        r.register(
            "refused_items",
            "Spans, log records and data points refused",
            m.refused.clone(),
        );
        m
    }

    /// Counts a request refused before it could be decoded (no item count known).
    pub fn refused_request(&self, signal: &str, protocol: &'static str, reason: &'static str) {
        self.requests
            .get_or_create(&vec![
                ("signal", signal.to_string()),
                ("protocol", protocol.to_string()),
                ("outcome", reason.to_string()),
            ])
            .inc();
    }
}

/// The protocol-independent half of every OTLP receiver.
pub struct OtlpReceiver {
    ingest: Arc<dyn Ingest>,
    metrics: Arc<OtlpMetrics>,
    max_request_bytes: usize,
    gate: Arc<Gate>,
    limits: Arc<Overrides>,
}

impl OtlpReceiver {
    pub fn new(
        ingest: Arc<dyn Ingest>,
        metrics: Arc<OtlpMetrics>,
        max_request_bytes: usize,
        gate: Arc<Gate>,
    ) -> Self {
        Self {
            ingest,
            metrics,
            max_request_bytes,
            gate,
            limits: Arc::new(Overrides::defaults()),
        }
    }

    /// The same, under the per-tenant `limits` (the built-in defaults otherwise).
    pub fn with_limits(self, limits: Arc<Overrides>) -> Self {
        Self { limits, ..self }
    }

    /// The gate every request of this receiver passes.
    pub fn gate(&self) -> &Arc<Gate> {
        &self.gate
    }

    pub fn max_request_bytes(&self) -> usize {
        self.max_request_bytes
    }

    pub fn metrics(&self) -> &OtlpMetrics {
        &self.metrics
    }

    /// The tenant the gate decided, or the gate's default one; refused unless it is a valid
    /// tenant name.
    pub fn tenant<'a>(&'a self, decided: Option<&'a str>) -> Result<&'a str, IngestError> {
        match decided {
            None | Some("") => Ok(self.gate.default_tenant()),
            Some(t) => validate_tenant(t)
                .map(|()| t)
                .map_err(|e| IngestError::Invalid(format!("{TENANT_HEADER}: {e}"))),
        }
    }

    /// Validates, converts and ingests one export request; answers with what was rejected
    /// (nothing, or a partial success).
    pub async fn export<S: OtlpSignal>(
        &self,
        protocol: &'static str,
        tenant: Option<&str>,
        payload: Payload,
    ) -> Result<Rejected, IngestError> {
        let signal = S::SIGNAL.as_str();
        let outcome = |o: &str| {
            vec![
                ("signal", signal.to_string()),
                ("protocol", protocol.to_string()),
                ("outcome", o.to_string()),
            ]
        };
        let tenant = match self.tenant(tenant) {
            Ok(t) => t,
            Err(e) => {
                self.metrics
                    .requests
                    .get_or_create(&outcome(e.reason()))
                    .inc();
                return Err(e);
            }
        };
        let bytes = payload.bytes();
        let mut converted = match S::convert_payload(payload) {
            Ok(c) => c,
            Err(e) => return Err(self.fail(signal, &outcome, e, 0)),
        };
        let invalid = std::mem::take(&mut converted.rejected);
        let before = converted.items() + invalid.count as usize;
        let (converted, left_out) =
            match crate::limits::apply(&self.limits, tenant, S::SIGNAL, bytes, converted) {
                Ok(r) => r,
                Err(e) => return Err(self.fail(signal, &outcome, e, before)),
            };
        let items = converted.items();
        let result = match converted.batch {
            Some(batch) => self.ingest.ingest(tenant, S::SIGNAL, batch).await,
            None => Ok(()),
        };
        match result {
            Ok(()) => {
                self.metrics
                    .accepted
                    .get_or_create(&vec![
                        ("signal", signal.to_string()),
                        ("protocol", protocol.to_string()),
                    ])
                    .inc_by(items as u64);
                let partial = invalid.count + left_out.count > 0;
                let o = if partial { "partial" } else { "ok" };
                self.metrics.requests.get_or_create(&outcome(o)).inc();
                if invalid.count > 0 {
                    self.refuse(signal, "invalid", invalid.count as u64);
                }
                if left_out.count > 0 {
                    self.refuse(signal, "limited", left_out.count as u64);
                }
                let mut rejected = invalid;
                rejected.add(left_out.count as u64, left_out.message);
                rejected.kept = left_out.kept;
                Ok(rejected)
            }
            Err(e) => {
                let n = items + (invalid.count + left_out.count) as usize;
                Err(self.fail(signal, &outcome, e, n))
            }
        }
    }

    /// Counts a request refused with `e` and its `items` items.
    fn fail(
        &self,
        signal: &str,
        outcome: &dyn Fn(&str) -> Labels,
        e: IngestError,
        items: usize,
    ) -> IngestError {
        if let IngestError::Internal(detail) = &e {
            warn!(signal, error = %detail, "ingest failed");
        }
        self.metrics
            .requests
            .get_or_create(&outcome(e.reason()))
            .inc();
        self.refuse(signal, e.reason(), items as u64);
        e
    }

    /// Counts `n` items of `signal` refused for `reason`.
    pub fn refuse(&self, signal: &str, reason: &'static str, n: u64) {
        self.metrics
            .refused
            .get_or_create(&vec![
                ("signal", signal.to_string()),
                ("reason", reason.to_string()),
            ])
            .inc_by(n);
    }
}

/// What [`OtlpSignal::retain_valid`] or a tenant's limits removed from a request.
#[derive(Debug, Default)]
pub struct Rejected {
    pub count: i64,
    pub message: String,
    /// Which rows of the converted batch the tenant's limits kept (`None`: every row), for
    /// receivers that answer item by item.
    pub kept: Option<Vec<bool>>,
}

impl Rejected {
    /// Adds `n` items left out for the reason `message`.
    pub fn add(&mut self, n: u64, message: String) {
        if n == 0 {
            return;
        }
        self.count += n as i64;
        if !self.message.is_empty() {
            self.message.push_str("; ");
        }
        self.message.push_str(&message);
    }

    /// The export response in protobuf.
    pub fn into_response<S: OtlpSignal>(self) -> S::Response {
        S::response(self.count, self.message)
    }

    /// The export response in OTLP JSON: `{}` on full success, else `partialSuccess` with the
    /// count as a string (proto3 JSON maps int64 to strings).
    pub fn to_json<S: OtlpSignal>(&self) -> serde_json::Value {
        if self.count == 0 {
            return serde_json::json!({});
        }
        let mut partial = serde_json::Map::new();
        partial.insert(S::REJECTED_FIELD.into(), self.count.to_string().into());
        partial.insert("errorMessage".into(), self.message.clone().into());
        serde_json::json!({ "partialSuccess": partial })
    }
}
