"""Sends multi-service traces, logs and metrics to Strata with the OpenTelemetry Python SDK.

Three services (frontend, checkout, payment) each have their own TracerProvider, so every trace
crosses services. frontend and payment export over OTLP/gRPC, checkout over OTLP/HTTP, so one
trace arrives through both protocols. Logs go over OTLP/HTTP, metrics over OTLP/gRPC.

With --tls, every exporter speaks TLS and sends the headers of the standard environment
variables (OTEL_EXPORTER_OTLP_CERTIFICATE, OTEL_EXPORTER_OTLP_HEADERS): the SDK's own way.

Writes what it sent as JSON (trace ids, spans with parents, log bodies, metric values) to --out,
for the Rust end-to-end test to compare with what Strata returns.
"""

import argparse
import json
import logging
import random

from opentelemetry import trace
from opentelemetry.exporter.otlp.proto.grpc.metric_exporter import OTLPMetricExporter
from opentelemetry.exporter.otlp.proto.grpc.trace_exporter import OTLPSpanExporter as GrpcSpanExporter
from opentelemetry.exporter.otlp.proto.http._log_exporter import OTLPLogExporter
from opentelemetry.exporter.otlp.proto.http.trace_exporter import OTLPSpanExporter as HttpSpanExporter
from opentelemetry.sdk._logs import LoggerProvider, LoggingHandler
from opentelemetry.sdk._logs.export import BatchLogRecordProcessor
from opentelemetry.sdk.metrics import MeterProvider
from opentelemetry.sdk.metrics.export import PeriodicExportingMetricReader
from opentelemetry.sdk.resources import Resource
from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.sdk.trace.export import BatchSpanProcessor


def provider(service, exporter):
    p = TracerProvider(resource=Resource.create({"service.name": service, "k8s.namespace.name": "shop"}))
    p.add_span_processor(BatchSpanProcessor(exporter, max_export_batch_size=64, schedule_delay_millis=100))
    return p


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--grpc", required=True, help="host:port of OTLP/gRPC")
    ap.add_argument("--http", required=True, help="http://host:port of OTLP/HTTP")
    ap.add_argument("--traces", type=int, default=20)
    ap.add_argument("--logs", type=int, default=50)
    ap.add_argument("--out", required=True)
    ap.add_argument("--seed", type=int, default=7)
    ap.add_argument("--tls", action="store_true",
                    help="gRPC over TLS (CA and headers from OTEL_EXPORTER_OTLP_CERTIFICATE / _HEADERS)")
    args = ap.parse_args()
    insecure = not args.tls
    rnd = random.Random(args.seed)

    providers = {
        "frontend": provider("frontend", GrpcSpanExporter(endpoint=args.grpc, insecure=insecure)),
        "checkout": provider("checkout", HttpSpanExporter(endpoint=args.http + "/v1/traces")),
        "payment": provider("payment", GrpcSpanExporter(endpoint=args.grpc, insecure=insecure)),
    }
    tracers = {name: p.get_tracer("strata.e2e", "1.0") for name, p in providers.items()}

    sent_traces = []
    for i in range(args.traces):
        spans = []

        def record(span, service):
            ctx = span.get_span_context()
            parent = span.parent.span_id if span.parent else None
            spans.append({
                "span_id": format(ctx.span_id, "016x"),
                "parent_span_id": format(parent, "016x") if parent else None,
                "name": span.name,
                "service": service,
            })

        with tracers["frontend"].start_as_current_span(
            "GET /checkout", kind=trace.SpanKind.SERVER,
            attributes={"http.request.method": "GET", "http.route": "/checkout", "order.index": i},
        ) as root:
            trace_id = format(root.get_span_context().trace_id, "032x")
            record(root, "frontend")
            with tracers["checkout"].start_as_current_span("checkout", kind=trace.SpanKind.SERVER) as c:
                record(c, "checkout")
                for j in range(rnd.randint(1, 4)):
                    with tracers["checkout"].start_as_current_span(f"db.query {j}", kind=trace.SpanKind.CLIENT,
                                                                   attributes={"db.system": "postgresql"}) as q:
                        q.add_event("rows", {"count": j})
                        record(q, "checkout")
                with tracers["payment"].start_as_current_span("charge", kind=trace.SpanKind.SERVER) as p:
                    record(p, "payment")
                    if i % 5 == 0:
                        p.set_status(trace.Status(trace.StatusCode.ERROR, "card declined"))
        sent_traces.append({"trace_id": trace_id, "spans": spans})

    for p in providers.values():
        p.force_flush()
        p.shutdown()

    # Logs through the standard logging module.
    log_provider = LoggerProvider(resource=Resource.create({"service.name": "checkout"}))
    log_provider.add_log_record_processor(BatchLogRecordProcessor(OTLPLogExporter(endpoint=args.http + "/v1/logs")))
    logger = logging.getLogger("strata.e2e")
    logger.setLevel(logging.INFO)
    logger.propagate = False
    logger.addHandler(LoggingHandler(level=logging.INFO, logger_provider=log_provider))
    sent_logs = []
    for i in range(args.logs):
        body = f"order {i} placed by user{rnd.randint(1, 99)}"
        if i % 10 == 0:
            logger.error(body, extra={"order.id": i})
            sent_logs.append({"body": body, "severity": "ERROR", "order_id": i})
        else:
            logger.info(body, extra={"order.id": i})
            sent_logs.append({"body": body, "severity": "INFO", "order_id": i})
    log_provider.force_flush()
    log_provider.shutdown()

    # Metrics: a counter and a histogram, exported once at shutdown.
    reader = PeriodicExportingMetricReader(OTLPMetricExporter(endpoint=args.grpc, insecure=insecure),
                                           export_interval_millis=60_000)
    meter_provider = MeterProvider(resource=Resource.create({"service.name": "payment"}), metric_readers=[reader])
    meter = meter_provider.get_meter("strata.e2e")
    counter = meter.create_counter("orders", unit="1", description="orders placed")
    hist = meter.create_histogram("order.amount", unit="USD")
    total = {"card": 0, "cash": 0}
    amounts = []
    for i in range(args.logs):
        method = "card" if i % 3 else "cash"
        counter.add(1, {"payment.method": method})
        total[method] += 1
        amount = float(rnd.randint(1, 500))
        hist.record(amount)
        amounts.append(amount)
    meter_provider.force_flush()
    meter_provider.shutdown()

    with open(args.out, "w") as f:
        json.dump({
            "traces": sent_traces,
            "logs": sent_logs,
            "metrics": {"orders": total, "order_amount_count": len(amounts), "order_amount_sum": sum(amounts)},
        }, f)


if __name__ == "__main__":
    main()
