"""One of the demo's three HTTP services, instrumented with the OpenTelemetry Python SDK.

    frontend  GET /checkout?n=N   -> checkout
    checkout  POST /checkout      -> payment (after an internal "reserve inventory" span)
    payment   POST /charge        fails for every 10th order (n % 10 == 3) and is slow for
                                   another (n % 10 == 7), so the demo has errors and slow
                                   requests at known places.

Trace context crosses the hops in W3C `traceparent` headers (the SDK's default propagator).
Spans and log records go over OTLP/HTTP to this service's own agent, as a sidecar would
receive them; log records written inside a span carry its trace and span id.

Run: python service.py NAME --port P --agent http://127.0.0.1:A [--next http://127.0.0.1:Q]
Stops on SIGTERM or SIGINT, after flushing what it has not exported yet.
"""

import argparse
import json
import logging
import signal
import threading
import time
import urllib.error
import urllib.request
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from urllib.parse import parse_qs, urlparse

from opentelemetry import propagate, trace
from opentelemetry._logs import set_logger_provider
from opentelemetry.exporter.otlp.proto.http._log_exporter import OTLPLogExporter
from opentelemetry.exporter.otlp.proto.http.trace_exporter import OTLPSpanExporter
from opentelemetry.sdk._logs import LoggerProvider, LoggingHandler
from opentelemetry.sdk._logs.export import BatchLogRecordProcessor
from opentelemetry.sdk.resources import Resource
from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.sdk.trace.export import BatchSpanProcessor
from opentelemetry.trace import SpanKind, Status, StatusCode

ROUTES = {"frontend": ("GET", "/checkout"), "checkout": ("POST", "/checkout"), "payment": ("POST", "/charge")}
NEXT_ROUTE = {"frontend": "/checkout", "checkout": "/charge"}


def setup(name, agent):
    resource = Resource.create(
        {"service.name": name, "service.namespace": "shop", "service.version": "1.4.2",
         "deployment.environment.name": "demo", "host.name": f"{name}-pod"}
    )
    tracer_provider = TracerProvider(resource=resource)
    tracer_provider.add_span_processor(
        BatchSpanProcessor(OTLPSpanExporter(endpoint=f"{agent}/v1/traces"), schedule_delay_millis=200)
    )
    trace.set_tracer_provider(tracer_provider)
    logger_provider = LoggerProvider(resource=resource)
    logger_provider.add_log_record_processor(
        BatchLogRecordProcessor(OTLPLogExporter(endpoint=f"{agent}/v1/logs"), schedule_delay_millis=200)
    )
    set_logger_provider(logger_provider)
    log = logging.getLogger(name)
    log.setLevel(logging.INFO)
    log.addHandler(LoggingHandler(level=logging.INFO, logger_provider=logger_provider))
    return tracer_provider, logger_provider, log


def call(tracer, url, route, body):
    """POSTs `body` to the next service inside a client span; returns (status, reply)."""
    with tracer.start_as_current_span(f"POST {route}", kind=SpanKind.CLIENT) as span:
        span.set_attribute("http.request.method", "POST")
        span.set_attribute("url.full", url + route)
        headers = {"content-type": "application/json"}
        propagate.inject(headers)
        request = urllib.request.Request(url + route, data=json.dumps(body).encode(), headers=headers, method="POST")
        try:
            with urllib.request.urlopen(request, timeout=10) as reply:
                status, text = reply.status, reply.read()
        except urllib.error.HTTPError as e:
            status, text = e.code, e.read()
        span.set_attribute("http.response.status_code", status)
        if status >= 500:
            span.set_status(Status(StatusCode.ERROR, f"HTTP {status}"))
        return status, text


def handler(name, tracer, log, next_url):
    method, route = ROUTES[name]

    class Handler(BaseHTTPRequestHandler):
        def log_message(self, *args):
            pass

        def reply(self, status, body):
            data = json.dumps(body).encode()
            self.send_response(status)
            self.send_header("content-type", "application/json")
            self.send_header("content-length", str(len(data)))
            self.end_headers()
            self.wfile.write(data)

        def handle_request(self, verb):
            url = urlparse(self.path)
            if url.path == "/health":
                return self.reply(200, {"ok": True})
            if (verb, url.path) != (method, route):
                return self.reply(404, {"error": "no such route"})
            if verb == "POST":
                length = int(self.headers.get("content-length", "0"))
                order = json.loads(self.rfile.read(length) or b"{}")
            else:
                order = {"n": int(parse_qs(url.query).get("n", ["0"])[0])}
            # urllib sends `Traceparent`; header names are case-insensitive.
            context = propagate.extract({k.lower(): v for k, v in self.headers.items()})
            with tracer.start_as_current_span(f"{verb} {route}", context=context, kind=SpanKind.SERVER) as span:
                span.set_attribute("http.request.method", verb)
                span.set_attribute("http.route", route)
                span.set_attribute("url.path", url.path)
                span.set_attribute("order.id", order["n"])
                status, body = self.work(span, order)
                span.set_attribute("http.response.status_code", status)
                if status >= 500:
                    span.set_status(Status(StatusCode.ERROR, body.get("error", "")))
            self.reply(status, body)

        def work(self, span, order):
            n = order["n"]
            if name == "payment":
                if n % 10 == 7:
                    log.warning("card network slow for order %d", n)
                    time.sleep(0.6)
                if n % 10 == 3:
                    error = "card declined"
                    span.add_event("exception", {"exception.type": "CardDeclined", "exception.message": error})
                    log.error("payment failed for order %d: %s", n, error)
                    return 502, {"error": error}
                log.info("charged order %d", n)
                return 200, {"charged": n}
            if name == "checkout":
                with tracer.start_as_current_span("reserve inventory") as inner:
                    inner.set_attribute("db.system.name", "postgresql")
                    time.sleep(0.005)
            log.info("order %d: calling %s", n, NEXT_ROUTE[name])
            status, text = call(tracer, next_url, NEXT_ROUTE[name], order)
            body = json.loads(text or b"{}")
            if status >= 500:
                log.error("order %d failed downstream: %s", n, body.get("error"))
                return 502, {"error": body.get("error", f"HTTP {status}")}
            return 200, body

        def do_GET(self):
            self.handle_request("GET")

        def do_POST(self):
            self.handle_request("POST")

    return Handler


def main():
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("name", choices=sorted(ROUTES))
    p.add_argument("--port", type=int, required=True)
    p.add_argument("--agent", required=True, help="base URL of this service's agent (OTLP/HTTP)")
    p.add_argument("--next", help="base URL of the service this one calls")
    args = p.parse_args()
    if args.name != "payment" and not args.next:
        p.error(f"{args.name} needs --next")
    tracer_provider, logger_provider, log = setup(args.name, args.agent)
    tracer = trace.get_tracer("strata.demo", "1.0")
    server = ThreadingHTTPServer(("127.0.0.1", args.port), handler(args.name, tracer, log, args.next))
    stop = threading.Event()

    def shutdown(*_):
        stop.set()

    signal.signal(signal.SIGTERM, shutdown)
    signal.signal(signal.SIGINT, shutdown)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    stop.wait()
    server.shutdown()
    tracer_provider.shutdown()
    logger_provider.shutdown()


if __name__ == "__main__":
    main()
