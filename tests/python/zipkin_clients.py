"""Sends spans to Strata with real Zipkin clients, then reads them back through Strata's Zipkin
query API and compares them field by field with what each client sent.

Usage: zipkin_clients.py <OTLP/HTTP base URL> <Zipkin port base URL> <query base URL>

- The OpenTelemetry SDK with its Zipkin JSON exporter: a front service (to the OTLP/HTTP
  port's /api/v2/spans) calls a back service (to the Zipkin port), with attributes, an event
  with attributes, a remote service and an error status;
- py_zipkin with its v2 JSON and its protobuf encodings: a local root with a client child
  that has a remote endpoint, annotations and tags.

Prints one JSON object: per client the spans sent and the fields that differ after the round
trip (none expected), and what the query API's listings answered.
"""

import json
import sys
import time
import urllib.parse
import urllib.request

from opentelemetry.exporter.zipkin.json import ZipkinExporter
from opentelemetry.sdk.resources import Resource
from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.sdk.trace.export import SimpleSpanProcessor
from opentelemetry.trace import SpanKind, Status, StatusCode, set_span_in_context

otlp_http, zipkin_port, query = sys.argv[1], sys.argv[2], sys.argv[3]
out = {}


def get(path):
    with urllib.request.urlopen(query + path, timeout=30) as r:
        return json.load(r)


# ---- OpenTelemetry SDK, Zipkin JSON exporter ----

otel_sent = []


class Recording(ZipkinExporter):
    """The exporter, keeping the JSON it sent."""

    def export(self, spans):
        result = super().export(spans)
        otel_sent.extend(json.loads(self.encoder.serialize(spans, self.local_node)))
        return result


def provider(service, url):
    p = TracerProvider(resource=Resource.create({"service.name": service, "deployment.environment": "test"}))
    p.add_span_processor(SimpleSpanProcessor(Recording(endpoint=url + "/api/v2/spans")))
    return p


front = provider("zk-front", otlp_http).get_tracer("shop.front", "1.4.0")
back = provider("zk-back", zipkin_port).get_tracer("shop.back")

with front.start_as_current_span("GET /checkout", kind=SpanKind.SERVER) as root:
    root.set_attribute("http.method", "GET")
    root.set_attribute("http.status_code", 500)
    with front.start_as_current_span("call back", kind=SpanKind.CLIENT) as call:
        call.set_attribute("peer.service", "zk-back")
        call.add_event("retry", {"attempt": 2, "reason": "timeout"})
        with back.start_as_current_span(
            "checkout", kind=SpanKind.SERVER, context=set_span_in_context(call)
        ) as served:
            served.set_attribute("items", 3)
            served.set_attribute("express", True)
            served.set_attribute("skus", ["a-1", "b-2"])
            served.add_event("stock checked")
            served.set_status(Status(StatusCode.ERROR, "out of stock"))
    root.set_status(Status(StatusCode.OK))
    internal = front.start_span("render")
    internal.end()

# ---- py_zipkin, v2 JSON and protobuf ----

from py_zipkin import Encoding, Kind  # noqa: E402
from py_zipkin.transport import BaseTransportHandler  # noqa: E402
from py_zipkin.zipkin import zipkin_span  # noqa: E402

py_payloads = {"json": [], "proto": []}
# py_zipkin logs and swallows what its transport raises: failures are kept and printed.
py_failures = []


class Post(BaseTransportHandler):
    def __init__(self, url, content_type, kept):
        self.url, self.content_type, self.kept = url, content_type, kept

    def get_max_payload_bytes(self):
        return None

    def send(self, payload):
        # The JSON encoding hands over text, the protobuf one bytes.
        body = payload.encode() if isinstance(payload, str) else payload
        self.kept.append(body)
        req = urllib.request.Request(
            self.url + "/api/v2/spans",
            data=body,
            headers={"Content-Type": self.content_type},
            method="POST",
        )
        try:
            with urllib.request.urlopen(req, timeout=30) as r:
                if r.status != 202:
                    py_failures.append(f"{self.content_type}: status {r.status}")
        except Exception as e:  # noqa: BLE001 - reported in the output
            py_failures.append(f"{self.content_type}: {e}")


def py_trace(service, encoding, transport):
    with zipkin_span(
        service_name=service,
        span_name="batch job",
        transport_handler=transport,
        sample_rate=100.0,
        encoding=encoding,
        binary_annotations={"job.id": "42"},
    ) as job:
        job.add_annotation("started")
        with zipkin_span(service_name=service, span_name="select orders", kind=Kind.CLIENT) as q:
            q.update_binary_annotations({"db.statement": "SELECT 1", "rows": "7"})
            q.add_sa_binary_annotation(port=5432, service_name="postgres", host="10.1.2.3")
            time.sleep(0.002)


py_trace("zk-py-json", Encoding.V2_JSON, Post(zipkin_port, "application/json", py_payloads["json"]))
py_trace(
    "zk-py-proto",
    Encoding.V2_PROTO3,
    Post(otlp_http, "application/x-protobuf", py_payloads["proto"]),
)


def proto_spans(payloads):
    from py_zipkin.encoding.protobuf import zipkin_pb2

    kinds = {1: "CLIENT", 2: "SERVER", 3: "PRODUCER", 4: "CONSUMER"}

    def endpoint(e):
        d = {}
        if e.service_name:
            d["serviceName"] = e.service_name
        if e.ipv4:
            d["ipv4"] = ".".join(str(b) for b in e.ipv4)
        if e.port:
            d["port"] = e.port
        return d or None

    spans = []
    for p in payloads:
        for s in zipkin_pb2.ListOfSpans.FromString(p).spans:
            d = {
                "traceId": s.trace_id.hex(),
                "id": s.id.hex(),
                "name": s.name,
                "timestamp": s.timestamp,
                "duration": s.duration,
                "kind": kinds.get(s.kind),
                "localEndpoint": endpoint(s.local_endpoint) if s.HasField("local_endpoint") else None,
                "remoteEndpoint": endpoint(s.remote_endpoint) if s.HasField("remote_endpoint") else None,
                "annotations": [{"timestamp": a.timestamp, "value": a.value} for a in s.annotations],
                "tags": dict(s.tags),
                "shared": s.shared,
            }
            if s.parent_id:
                d["parentId"] = s.parent_id.hex()
            spans.append(d)
    return spans


# ---- the round trip ----


def annotation(value):
    """(name, attributes) of an annotation: `{"name": {...}}` is an event with attributes."""
    try:
        v = json.loads(value)
        if isinstance(v, dict) and len(v) == 1:
            (name, attrs), = v.items()
            if isinstance(attrs, dict):
                return [name, attrs]
    except ValueError:
        pass
    return [value, {}]


def normal(span):
    """The fields of a span that a round trip must keep, in one spelling."""
    def endpoint(e):
        if not e:
            return None
        e = {k: v for k, v in e.items() if v not in (None, "", 0)}
        return e or None

    tags = {k: str(v) for k, v in (span.get("tags") or {}).items() if v is not None}
    remote = endpoint(span.get("remoteEndpoint"))
    # The specification's mapping of OTLP to Zipkin: `peer.service` names the remote endpoint
    # (the Python exporter leaves it a tag; Strata's Zipkin API answers with the endpoint).
    if remote is None and "peer.service" in tags:
        remote = {"serviceName": tags.pop("peer.service")}
    return {
        "traceId": span["traceId"].lower(),
        "id": span["id"].lower(),
        "parentId": (span.get("parentId") or "").lower() or None,
        "name": span.get("name") or "",
        "kind": span.get("kind"),
        "timestamp": span.get("timestamp"),
        "duration": span.get("duration") or None,
        "localEndpoint": endpoint(span.get("localEndpoint")),
        "remoteEndpoint": remote,
        "annotations": sorted(
            ([a["timestamp"], *annotation(a["value"])] for a in span.get("annotations") or []),
            key=lambda a: (a[0], a[1]),
        ),
        "tags": tags,
        "shared": bool(span.get("shared")),
    }


def round_trip(sent):
    by_trace = {}
    for s in sent:
        by_trace.setdefault(s["traceId"], []).append(s)
    diffs, matched = [], 0
    for trace_id, spans in by_trace.items():
        got = []
        deadline = time.time() + 30
        while time.time() < deadline:
            try:
                got = get(f"/zipkin/api/v2/trace/{trace_id}")
            except urllib.error.HTTPError as e:
                if e.code != 404:
                    raise
                got = []
            if len(got) >= len(spans):
                break
            time.sleep(0.3)
        back = {(g["id"], g.get("kind")): normal(g) for g in got}
        for s in spans:
            want = normal(s)
            have = back.get((want["id"], want["kind"]))
            if have is None:
                diffs.append({"span": want["id"], "missing": True, "got": len(got)})
                continue
            fields = [k for k in want if want[k] != have[k]]
            if fields:
                diffs.append({"span": want["id"], "fields": {k: [want[k], have[k]] for k in fields}})
            else:
                matched += 1
    return {"sent": len(sent), "matched": matched, "diffs": diffs}


out["py_failures"] = py_failures
out["otel_json"] = round_trip(otel_sent)
out["py_zipkin_json"] = round_trip([s for p in py_payloads["json"] for s in json.loads(p)])
out["py_zipkin_proto"] = round_trip(proto_spans(py_payloads["proto"]))

# ---- the listings Grafana's Zipkin datasource uses ----

out["services"] = get("/zipkin/api/v2/services")
out["span_names"] = get("/zipkin/api/v2/spans?serviceName=zk-front")
q = urllib.parse.urlencode({"serviceName": "zk-back", "annotationQuery": "error", "limit": 5})
found = get(f"/zipkin/api/v2/traces?{q}")
out["error_search"] = [len(t) for t in found]
q = urllib.parse.urlencode({"serviceName": "zk-front", "spanName": "render", "minDuration": 0})
out["name_search"] = len(get(f"/zipkin/api/v2/traces?{q}"))
end = int(time.time() * 1000) + 1000
out["dependencies"] = get(f"/zipkin/api/v2/dependencies?endTs={end}&lookback=3600000")
print(json.dumps(out))
