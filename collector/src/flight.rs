//! Arrow Flight receiver for agents.
//!
//! `DoPut` carries one or more shipped batches of one (agent, signal, tenant): the first
//! message's descriptor `cmd` is the [`Envelope`] (agent id, sequence, signal, tenant); the data
//! is Arrow IPC (zstd buffers allowed). A record-batch message whose `app_metadata` is 8 bytes
//! belongs to the batch with that sequence (little-endian u64); without it, to the
//! descriptor's. This lets an agent ship many buffered batches, each with its own idempotency
//! key, in one round trip. Every batch is stored through [`crate::store`] (concurrently, so
//! they share WAL group commits), then the stream is acknowledged with one `PutResult` whose
//! `app_metadata` is the descriptor's sequence. A batch stored before (same agent id and
//! sequence) is acknowledged again without storing it twice; if any batch fails, the stream
//! fails and the agent retries it whole (what was stored is then a duplicate). A stream that cannot be decoded
//! or does not match its signal's schema is `INVALID_ARGUMENT`; a full buffer or disk is
//! `RESOURCE_EXHAUSTED` so the agent backs off and retries. The other Flight methods
//! are not offered by a collector and answer `UNIMPLEMENTED`. With auth on, the stream's
//! credential must hold the `write` scope for the envelope's tenant (`UNAUTHENTICATED` /
//! `PERMISSION_DENIED` otherwise, before any data is read).

use std::sync::Arc;

use arrow_flight::error::FlightError;
use arrow_flight::flight_service_server::FlightService;
use arrow_flight::{
    Action, ActionType, Criteria, Empty, FlightData, FlightDescriptor, FlightInfo,
    HandshakeRequest, HandshakeResponse, PollInfo, PutResult, SchemaResult, Ticket,
};
use futures::stream::BoxStream;
use futures::{StreamExt, TryStreamExt};
use strata_ingest::flight::decode_groups;
use strata_schema::envelope::Envelope;
use strata_server::auth::{Gate, Scope};
use tonic::{Request, Response, Status, Streaming};
use tracing::debug;

use crate::metrics::CollectorMetrics;
use crate::store::{AcceptError, Accepted, Store};

pub struct CollectorFlight {
    pub store: Arc<Store>,
    pub metrics: Arc<CollectorMetrics>,
    /// Checks that the shipping credential may write the envelope's tenant.
    pub gate: Arc<Gate>,
}

impl CollectorFlight {
    fn count(&self, outcome: &str) {
        self.metrics
            .received_batches
            .get_or_create(&vec![("outcome", outcome.to_string())])
            .inc();
    }
}

fn unimplemented<T>(method: &str) -> Result<T, Status> {
    Err(Status::unimplemented(format!(
        "{method} is not offered by a Strata collector; agents use DoPut"
    )))
}

#[tonic::async_trait]
impl FlightService for CollectorFlight {
    type HandshakeStream = BoxStream<'static, Result<HandshakeResponse, Status>>;
    type ListFlightsStream = BoxStream<'static, Result<FlightInfo, Status>>;
    type DoGetStream = BoxStream<'static, Result<FlightData, Status>>;
    type DoPutStream = BoxStream<'static, Result<PutResult, Status>>;
    type DoExchangeStream = BoxStream<'static, Result<FlightData, Status>>;
    type DoActionStream = BoxStream<'static, Result<arrow_flight::Result, Status>>;
    type ListActionsStream = BoxStream<'static, Result<ActionType, Status>>;

    async fn do_put(
        &self,
        request: Request<Streaming<FlightData>>,
    ) -> Result<Response<Self::DoPutStream>, Status> {
        let authorization = request
            .metadata()
            .get("authorization")
            .and_then(|v| v.to_str().ok())
            .map(str::to_string);
        let mut stream = request.into_inner();
        let first = stream
            .message()
            .await?
            .ok_or_else(|| Status::invalid_argument("empty DoPut stream"))?;
        let envelope = match first
            .flight_descriptor
            .as_ref()
            .ok_or_else(|| "first message has no descriptor".to_string())
            .and_then(|d| Envelope::decode_bytes(&d.cmd).map_err(|e| e.to_string()))
        {
            Ok(e) => e,
            Err(e) => {
                self.count("invalid");
                return Err(Status::invalid_argument(format!("batch envelope: {e}")));
            }
        };
        if let Err(denied) =
            self.gate
                .check_tenant(authorization.as_deref(), &envelope.tenant, Scope::Write)
        {
            self.count("unauthorized");
            return Err(denied.to_status());
        }
        let data = futures::stream::once(async move { Ok(first) })
            .chain(stream.map_err(|s| FlightError::Tonic(Box::new(s))));
        let groups = match decode_groups(data, envelope.sequence).await {
            Ok(g) => g,
            Err(e) => {
                self.count("invalid");
                return Err(Status::invalid_argument(format!(
                    "cannot decode Arrow IPC: {e}"
                )));
            }
        };
        let envelopes: Vec<Envelope> = groups
            .iter()
            .map(|g| Envelope {
                sequence: g.seq,
                ..envelope.clone()
            })
            .collect();
        // The WAL keeps each batch as the IPC stream it came in: no second encode.
        let results = futures::future::join_all(envelopes.iter().zip(&groups).map(|(env, g)| {
            self.store
                .accept("flight", env, &g.batches, g.stream.as_deref())
        }))
        .await;
        let mut failed = None;
        for (env, result) in envelopes.iter().zip(results) {
            match result {
                Ok(Accepted::Stored { rows }) => {
                    self.count("ok");
                    debug!(agent = %env.agent_id, seq = env.sequence, rows, "accepted batch");
                }
                Ok(Accepted::Duplicate) => {
                    self.count("duplicate");
                    debug!(agent = %env.agent_id, seq = env.sequence, "duplicate batch acknowledged again");
                }
                Err(e) => {
                    self.count(e.reason());
                    if let AcceptError::Internal(m) = &e {
                        tracing::error!(error = %m, "cannot store batch");
                    }
                    failed.get_or_insert(e);
                }
            }
        }
        if let Some(e) = failed {
            return Err(e.to_status());
        }
        let ack = PutResult {
            app_metadata: envelope.sequence.to_le_bytes().to_vec().into(),
        };
        Ok(Response::new(
            futures::stream::once(async move { Ok(ack) }).boxed(),
        ))
    }

    async fn handshake(
        &self,
        _request: Request<Streaming<HandshakeRequest>>,
    ) -> Result<Response<Self::HandshakeStream>, Status> {
        unimplemented("Handshake")
    }

    async fn list_flights(
        &self,
        _request: Request<Criteria>,
    ) -> Result<Response<Self::ListFlightsStream>, Status> {
        unimplemented("ListFlights")
    }

    async fn get_flight_info(
        &self,
        _request: Request<FlightDescriptor>,
    ) -> Result<Response<FlightInfo>, Status> {
        unimplemented("GetFlightInfo")
    }

    async fn poll_flight_info(
        &self,
        _request: Request<FlightDescriptor>,
    ) -> Result<Response<PollInfo>, Status> {
        unimplemented("PollFlightInfo")
    }

    async fn get_schema(
        &self,
        _request: Request<FlightDescriptor>,
    ) -> Result<Response<SchemaResult>, Status> {
        unimplemented("GetSchema")
    }

    async fn do_get(
        &self,
        _request: Request<Ticket>,
    ) -> Result<Response<Self::DoGetStream>, Status> {
        unimplemented("DoGet")
    }

    async fn do_exchange(
        &self,
        _request: Request<Streaming<FlightData>>,
    ) -> Result<Response<Self::DoExchangeStream>, Status> {
        unimplemented("DoExchange")
    }

    async fn do_action(
        &self,
        _request: Request<Action>,
    ) -> Result<Response<Self::DoActionStream>, Status> {
        unimplemented("DoAction")
    }

    async fn list_actions(
        &self,
        _request: Request<Empty>,
    ) -> Result<Response<Self::ListActionsStream>, Status> {
        unimplemented("ListActions")
    }
}
