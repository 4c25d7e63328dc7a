"""Sends bad input to a Strata OTLP endpoint with real clients and prints the answers as JSON:
malformed protobuf and oversized messages over gRPC (grpcio), and malformed, oversized,
gzip-bomb and wrong-content-type bodies over HTTP (urllib)."""

import gzip
import json
import sys
import urllib.error
import urllib.request

import grpc


def grpc_call(target, payload, compression=None):
    with grpc.insecure_channel(target, options=[("grpc.max_send_message_length", 64 << 20)]) as ch:
        call = ch.unary_unary(
            "/opentelemetry.proto.collector.trace.v1.TraceService/Export",
            request_serializer=None,
            response_deserializer=None,
        )
        try:
            call(payload, timeout=10, compression=compression)
            return "OK"
        except grpc.RpcError as e:
            return e.code().name


def http_post(url, body, headers):
    req = urllib.request.Request(url, data=body, headers=headers, method="POST")
    try:
        with urllib.request.urlopen(req, timeout=10) as r:
            return {"status": r.status, "body": r.read().decode("utf-8", "replace")}
    except urllib.error.HTTPError as e:
        return {"status": e.code, "body": e.read().decode("utf-8", "replace"),
                "retry_after": e.headers.get("Retry-After")}


def main():
    grpc_target, http_base, limit = sys.argv[1], sys.argv[2], int(sys.argv[3])
    garbage = b"\xff\xff\xff\xff\x0f\x12\x34"
    big = b"\x0a" + b"\x80" * 4 + b"x" * (limit + 1024)
    bomb = gzip.compress(b"\x00" * (limit * 4))
    out = {
        "grpc_malformed": grpc_call(grpc_target, garbage),
        "grpc_oversized": grpc_call(grpc_target, big),
        "grpc_gzip_bomb": grpc_call(grpc_target, b"\x00" * (limit * 4), grpc.Compression.Gzip),
        "grpc_empty": grpc_call(grpc_target, b""),
        "http_malformed": http_post(http_base + "/v1/traces", garbage, {"Content-Type": "application/x-protobuf"}),
        "http_bad_json": http_post(http_base + "/v1/traces", b"{not json", {"Content-Type": "application/json"}),
        "http_oversized": http_post(http_base + "/v1/traces", b"x" * (limit + 1024), {"Content-Type": "application/x-protobuf"}),
        "http_gzip_bomb": http_post(http_base + "/v1/traces", bomb,
                                    {"Content-Type": "application/x-protobuf", "Content-Encoding": "gzip"}),
        "http_bad_gzip": http_post(http_base + "/v1/traces", b"not gzip at all",
                                   {"Content-Type": "application/x-protobuf", "Content-Encoding": "gzip"}),
        "http_wrong_type": http_post(http_base + "/v1/traces", b"hello", {"Content-Type": "text/plain"}),
        "http_bad_tenant": http_post(http_base + "/v1/traces", b"", {"Content-Type": "application/x-protobuf",
                                                                      "X-Scope-OrgID": "../etc"}),
        "http_empty_ok": http_post(http_base + "/v1/logs", b"", {"Content-Type": "application/x-protobuf"}),
    }
    json.dump(out, sys.stdout)


if __name__ == "__main__":
    main()
