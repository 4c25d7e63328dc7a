//! Sending one export request over OTLP/gRPC (tonic clients, optionally over TLS with a bearer
//! token) or OTLP/HTTP (binary protobuf POSTed with a plain hyper client), and classifying
//! the answer.

use bytes::Bytes;
use http_body_util::{BodyExt, Full};
use hyper_util::client::legacy::Client;
use hyper_util::client::legacy::connect::HttpConnector;
use hyper_util::rt::TokioExecutor;
use opentelemetry_proto::tonic::collector::logs::v1::ExportLogsServiceRequest;
use opentelemetry_proto::tonic::collector::logs::v1::logs_service_client::LogsServiceClient;
use opentelemetry_proto::tonic::collector::metrics::v1::ExportMetricsServiceRequest;
use opentelemetry_proto::tonic::collector::metrics::v1::metrics_service_client::MetricsServiceClient;
use opentelemetry_proto::tonic::collector::trace::v1::ExportTraceServiceRequest;
use opentelemetry_proto::tonic::collector::trace::v1::trace_service_client::TraceServiceClient;
use prost::Message;
use strata_server::tls::client::{ClientTls, ClientTlsConfig, Connector};
use tonic::transport::Channel;

pub enum Payload {
    Traces(ExportTraceServiceRequest),
    Logs(ExportLogsServiceRequest),
    Metrics(ExportMetricsServiceRequest),
}

pub enum Outcome {
    Acked,
    /// Overloaded (`RESOURCE_EXHAUSTED` / `UNAVAILABLE`, HTTP 429 / 503): worth a retry later.
    Refused,
    Failed(String),
}

pub enum Sender {
    Grpc {
        channel: Channel,
        /// `authorization` metadata of every request.
        authorization: Option<tonic::metadata::MetadataValue<tonic::metadata::Ascii>>,
    },
    Http {
        client: Box<Client<HttpConnector, Full<Bytes>>>,
        base: String,
    },
}

impl Sender {
    /// A sender to `endpoint`; gRPC goes over TLS verified against `ca` when given, and sends
    /// `token` as a bearer credential.
    pub async fn connect(
        endpoint: &str,
        http: bool,
        ca: Option<&std::path::Path>,
        token: Option<&str>,
    ) -> anyhow::Result<Self> {
        if http {
            anyhow::ensure!(
                ca.is_none() && token.is_none(),
                "--ca and --token are for gRPC"
            );
            let client = Box::new(Client::builder(TokioExecutor::new()).build_http());
            return Ok(Self::Http {
                client,
                base: endpoint.trim_end_matches('/').to_string(),
            });
        }
        let tls = match ca {
            Some(ca) => ClientTls::load(&ClientTlsConfig {
                ca: Some(ca.to_path_buf()),
                ..Default::default()
            })?
            .map(std::sync::Arc::new),
            None => None,
        };
        let connector = Connector::new(tls, std::time::Duration::from_secs(5));
        let channel = tonic::transport::Endpoint::from_shared(endpoint.to_string())?
            .connect_with_connector(connector)
            .await?;
        let authorization = token.map(|t| format!("Bearer {t}").parse()).transpose()?;
        Ok(Self::Grpc {
            channel,
            authorization,
        })
    }

    pub async fn send(&self, payload: Payload) -> Outcome {
        match self {
            Self::Grpc {
                channel,
                authorization,
            } => {
                const MAX: usize = 64 << 20;
                let c = channel.clone();
                let result = match payload {
                    Payload::Traces(r) => TraceServiceClient::new(c)
                        .max_decoding_message_size(MAX)
                        .export(with_auth(r, authorization))
                        .await
                        .map(drop),
                    Payload::Logs(r) => LogsServiceClient::new(c)
                        .max_decoding_message_size(MAX)
                        .export(with_auth(r, authorization))
                        .await
                        .map(drop),
                    Payload::Metrics(r) => MetricsServiceClient::new(c)
                        .max_decoding_message_size(MAX)
                        .export(with_auth(r, authorization))
                        .await
                        .map(drop),
                };
                match result {
                    Ok(()) => Outcome::Acked,
                    Err(s)
                        if matches!(
                            s.code(),
                            tonic::Code::ResourceExhausted | tonic::Code::Unavailable
                        ) =>
                    {
                        Outcome::Refused
                    }
                    Err(s) => Outcome::Failed(s.to_string()),
                }
            }
            Self::Http { client, base } => {
                let (path, body) = match payload {
                    Payload::Traces(r) => ("/v1/traces", r.encode_to_vec()),
                    Payload::Logs(r) => ("/v1/logs", r.encode_to_vec()),
                    Payload::Metrics(r) => ("/v1/metrics", r.encode_to_vec()),
                };
                let request = match http::Request::post(format!("{base}{path}"))
                    .header("content-type", "application/x-protobuf")
                    .body(Full::new(Bytes::from(body)))
                {
                    Ok(r) => r,
                    Err(e) => return Outcome::Failed(e.to_string()),
                };
                match client.request(request).await {
                    Ok(response) => {
                        let status = response.status();
                        let body = response.into_body().collect().await.map(|b| b.to_bytes());
                        match status.as_u16() {
                            200..=299 => Outcome::Acked,
                            429 | 503 => Outcome::Refused,
                            code => Outcome::Failed(format!(
                                "HTTP {code}: {}",
                                body.map(|b| String::from_utf8_lossy(&b).into_owned())
                                    .unwrap_or_default()
                            )),
                        }
                    }
                    Err(e) => Outcome::Failed(e.to_string()),
                }
            }
        }
    }
}

/// `message` as a request carrying `authorization`, if any.
fn with_auth<T>(
    message: T,
    authorization: &Option<tonic::metadata::MetadataValue<tonic::metadata::Ascii>>,
) -> tonic::Request<T> {
    let mut request = tonic::Request::new(message);
    if let Some(a) = authorization {
        request.metadata_mut().insert("authorization", a.clone());
    }
    request
}
