//! Per-signal glue for the OTLP receivers: request/response types, validation and conversion.
//!
//! [`OtlpSignal::convert_protobuf`] is the path of every protobuf request (gRPC and HTTP): for
//! traces it decodes the bytes straight into Arrow ([`strata_schema::traces::decode`]); logs and
//! metrics decode with prost first. JSON bodies are decoded with serde and go through
//! [`OtlpSignal::convert`]; receivers of other protocols hand over rows they built themselves
//! ([`Payload::Converted`]).

use arrow::record_batch::RecordBatch;
use bytes::Bytes;
use opentelemetry_proto::tonic::collector::logs::v1::{
    ExportLogsPartialSuccess, ExportLogsServiceRequest, ExportLogsServiceResponse,
};
use opentelemetry_proto::tonic::collector::metrics::v1::{
    ExportMetricsPartialSuccess, ExportMetricsServiceRequest, ExportMetricsServiceResponse,
};
use opentelemetry_proto::tonic::collector::trace::v1::{
    ExportTracePartialSuccess, ExportTraceServiceRequest, ExportTraceServiceResponse,
};
use strata_schema::Signal;

use super::Rejected;
use crate::sink::IngestError;

/// A request as a receiver got it: protobuf or JSON bytes, or rows the receiver of another
/// protocol converted itself (remote write, scrapes).
pub enum Payload {
    Protobuf(Bytes),
    Json(Bytes),
    Converted(Converted),
}

impl Payload {
    /// The request's decoded size.
    pub fn bytes(&self) -> usize {
        match self {
            Payload::Protobuf(b) | Payload::Json(b) => b.len(),
            Payload::Converted(c) => c.bytes,
        }
    }
}

/// A request turned into one batch of its valid items.
pub struct Converted {
    /// The valid items; `None` when there are none.
    pub batch: Option<RecordBatch>,
    /// What was left out.
    pub rejected: Rejected,
    /// The request's decoded size, for rate limits in bytes (set by receivers of other
    /// protocols; OTLP's is its payload's).
    pub bytes: usize,
}

impl Converted {
    fn new(batch: RecordBatch, rejected: Rejected) -> Self {
        Self {
            batch: (batch.num_rows() > 0).then_some(batch),
            rejected,
            bytes: 0,
        }
    }

    /// Rows a receiver of another protocol built, with nothing rejected on the way (that
    /// receiver answers its rejections itself).
    pub fn of_rows(batch: Option<RecordBatch>) -> Self {
        Self {
            batch,
            rejected: Rejected::default(),
            bytes: 0,
        }
    }

    /// The same, of a request of `bytes` decoded bytes.
    pub fn with_bytes(self, bytes: usize) -> Self {
        Self { bytes, ..self }
    }

    /// Items in the batch.
    pub fn items(&self) -> usize {
        self.batch.as_ref().map_or(0, RecordBatch::num_rows)
    }
}

/// Why request bytes could not become a batch: malformed protobuf, or (for example) a batch
/// past Arrow's offset limits; the request is bad input either way.
fn decode_error(signal: Signal, e: strata_schema::Error) -> IngestError {
    match e {
        e @ strata_schema::Error::Wire(_) => undecodable(signal, e),
        other => IngestError::Invalid(other.to_string()),
    }
}

/// A request that is not protobuf of the signal's request type.
fn undecodable(signal: Signal, e: impl std::fmt::Display) -> IngestError {
    IngestError::Invalid(format!("cannot decode {signal} request: {e}"))
}

/// One OTLP signal as the receivers see it.
pub trait OtlpSignal: Send + 'static {
    const SIGNAL: Signal;
    /// Path of the OTLP/HTTP endpoint.
    const HTTP_PATH: &'static str;
    /// JSON name of the partial-success count field.
    const REJECTED_FIELD: &'static str;
    /// Full name of the OTLP gRPC service.
    const GRPC_SERVICE: &'static str;
    type Request: prost::Message + Default + serde::de::DeserializeOwned + Send + 'static;
    type Response: prost::Message + Default + Send + 'static;

    /// Removes the items a server must reject; says how many and why.
    fn retain_valid(request: &mut Self::Request) -> Rejected;
    /// Spans, log records or data points in the request.
    fn items(request: &Self::Request) -> usize;
    fn to_batch(request: &Self::Request) -> strata_schema::Result<RecordBatch>;
    fn response(rejected: i64, message: String) -> Self::Response;

    /// Drops what must be rejected and converts the rest.
    fn convert(request: &mut Self::Request) -> Result<Converted, IngestError> {
        let rejected = Self::retain_valid(request);
        if Self::items(request) == 0 {
            return Ok(Converted {
                batch: None,
                rejected,
                bytes: 0,
            });
        }
        let batch = Self::to_batch(request).map_err(|e| IngestError::Invalid(e.to_string()))?;
        Ok(Converted::new(batch, rejected))
    }

    /// Decodes protobuf request bytes, drops what must be rejected and converts the rest.
    fn convert_protobuf(body: &[u8]) -> Result<Converted, IngestError> {
        let mut request = <Self::Request as prost::Message>::decode(body)
            .map_err(|e| undecodable(Self::SIGNAL, e))?;
        Self::convert(&mut request)
    }

    /// Either payload, converted.
    fn convert_payload(payload: Payload) -> Result<Converted, IngestError> {
        match payload {
            Payload::Protobuf(body) => Self::convert_protobuf(&body),
            Payload::Json(body) => {
                let mut request = serde_json::from_slice::<Self::Request>(&body)
                    .map_err(|e| undecodable(Self::SIGNAL, e))?;
                Self::convert(&mut request)
            }
            Payload::Converted(converted) => Ok(converted),
        }
    }
}

pub struct Traces;
pub struct Logs;
pub struct Metrics;

fn rejected_spans(count: i64) -> Rejected {
    Rejected {
        count,
        message: if count > 0 {
            format!(
                "{count} spans rejected: trace_id must be 16 bytes and span_id 8 bytes, not all zero"
            )
        } else {
            String::new()
        },
        ..Default::default()
    }
}

impl OtlpSignal for Traces {
    const SIGNAL: Signal = Signal::Traces;
    const HTTP_PATH: &'static str = "/v1/traces";
    const REJECTED_FIELD: &'static str = "rejectedSpans";
    const GRPC_SERVICE: &'static str = "opentelemetry.proto.collector.trace.v1.TraceService";
    type Request = ExportTraceServiceRequest;
    type Response = ExportTraceServiceResponse;

    fn retain_valid(request: &mut Self::Request) -> Rejected {
        let mut count = 0;
        for rs in &mut request.resource_spans {
            for ss in &mut rs.scope_spans {
                ss.spans.retain(|s| {
                    let ok = strata_schema::traces::valid_ids(&s.trace_id, &s.span_id);
                    count += i64::from(!ok);
                    ok
                });
            }
        }
        rejected_spans(count)
    }

    fn items(request: &Self::Request) -> usize {
        strata_schema::traces::row_count(&request.resource_spans)
    }

    fn to_batch(request: &Self::Request) -> strata_schema::Result<RecordBatch> {
        strata_schema::traces::to_batch(&request.resource_spans)
    }

    /// Straight from the bytes into Arrow, spans with invalid ids left out on the way.
    fn convert_protobuf(body: &[u8]) -> Result<Converted, IngestError> {
        let decoded =
            strata_schema::traces::decode(body).map_err(|e| decode_error(Self::SIGNAL, e))?;
        Ok(Converted::new(
            decoded.batch,
            rejected_spans(decoded.rejected as i64),
        ))
    }

    fn response(rejected: i64, message: String) -> Self::Response {
        ExportTraceServiceResponse {
            partial_success: (rejected > 0).then_some(ExportTracePartialSuccess {
                rejected_spans: rejected,
                error_message: message,
            }),
        }
    }
}

impl OtlpSignal for Logs {
    const SIGNAL: Signal = Signal::Logs;
    const HTTP_PATH: &'static str = "/v1/logs";
    const REJECTED_FIELD: &'static str = "rejectedLogRecords";
    const GRPC_SERVICE: &'static str = "opentelemetry.proto.collector.logs.v1.LogsService";
    type Request = ExportLogsServiceRequest;
    type Response = ExportLogsServiceResponse;

    /// Every field of a log record is optional; nothing is rejected.
    fn retain_valid(_request: &mut Self::Request) -> Rejected {
        Rejected::default()
    }

    fn items(request: &Self::Request) -> usize {
        strata_schema::logs::row_count(&request.resource_logs)
    }

    fn to_batch(request: &Self::Request) -> strata_schema::Result<RecordBatch> {
        strata_schema::logs::to_batch(&request.resource_logs)
    }

    /// Straight from the bytes into Arrow.
    fn convert_protobuf(body: &[u8]) -> Result<Converted, IngestError> {
        let batch = strata_schema::logs::decode(body).map_err(|e| decode_error(Self::SIGNAL, e))?;
        Ok(Converted::new(batch, Rejected::default()))
    }

    fn response(rejected: i64, message: String) -> Self::Response {
        ExportLogsServiceResponse {
            partial_success: (rejected > 0).then_some(ExportLogsPartialSuccess {
                rejected_log_records: rejected,
                error_message: message,
            }),
        }
    }
}

/// Data points of one metric, whatever its type.
fn points(m: &opentelemetry_proto::tonic::metrics::v1::Metric) -> usize {
    use opentelemetry_proto::tonic::metrics::v1::metric::Data;
    match &m.data {
        Some(Data::Gauge(g)) => g.data_points.len(),
        Some(Data::Sum(s)) => s.data_points.len(),
        Some(Data::Histogram(h)) => h.data_points.len(),
        Some(Data::ExponentialHistogram(h)) => h.data_points.len(),
        Some(Data::Summary(s)) => s.data_points.len(),
        None => 0,
    }
}

impl OtlpSignal for Metrics {
    const SIGNAL: Signal = Signal::Metrics;
    const HTTP_PATH: &'static str = "/v1/metrics";
    const REJECTED_FIELD: &'static str = "rejectedDataPoints";
    const GRPC_SERVICE: &'static str = "opentelemetry.proto.collector.metrics.v1.MetricsService";
    type Request = ExportMetricsServiceRequest;
    type Response = ExportMetricsServiceResponse;

    /// A metric needs a name; its points are rejected otherwise.
    fn retain_valid(request: &mut Self::Request) -> Rejected {
        let mut count = 0i64;
        for rm in &mut request.resource_metrics {
            for sm in &mut rm.scope_metrics {
                sm.metrics.retain(|m| {
                    let ok = !m.name.is_empty();
                    if !ok {
                        count += points(m) as i64;
                    }
                    ok
                });
            }
        }
        Rejected {
            count,
            message: if count > 0 {
                format!("{count} data points rejected: metric name is empty")
            } else {
                String::new()
            },
            ..Default::default()
        }
    }

    fn items(request: &Self::Request) -> usize {
        strata_schema::metrics::row_count(&request.resource_metrics)
    }

    fn to_batch(request: &Self::Request) -> strata_schema::Result<RecordBatch> {
        strata_schema::metrics::to_batch(&request.resource_metrics)
    }

    fn response(rejected: i64, message: String) -> Self::Response {
        ExportMetricsServiceResponse {
            partial_success: (rejected > 0).then_some(ExportMetricsPartialSuccess {
                rejected_data_points: rejected,
                error_message: message,
            }),
        }
    }
}
