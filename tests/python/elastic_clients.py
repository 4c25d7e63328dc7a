"""Ships logs to Strata with the official Elasticsearch Python client, as log shippers do.

Usage: elastic_clients.py <prefixed base URL> <own-port base URL>

- `info()` against both (the client refuses a server without `X-Elastic-Product`);
- `helpers.bulk` of 1,000 ECS documents to the `/elastic` prefix of the OTLP/HTTP port,
  gzip-compressed, to index `logs-shop`;
- `helpers.bulk(raise_on_error=False)` of 10 documents of which 3 are bad (a `@timestamp` that
  is not a date, a document that is not an object): 7 stored, 3 per-item errors;
- `helpers.streaming_bulk` of 500 documents to the Elasticsearch port of its own;
- `index()` of one document, and the index-template calls shippers make at start.

Prints one JSON object with what the client saw.
"""

import json
import sys

from elasticsearch import Elasticsearch, helpers

prefixed, own = sys.argv[1], sys.argv[2]
seen = {}

es = Elasticsearch(prefixed, http_compress=True, request_timeout=30)
info = es.info()
seen["version"] = info["version"]["number"]
seen["own_version"] = Elasticsearch(own).info()["version"]["number"]

TRACE = "4bf92f3577b34da6a3ce929d0e0e4736"


def doc(i, index):
    return {
        "_index": index,
        "_source": {
            "@timestamp": f"2026-12-06T10:{i // 60 % 60:02d}:{i % 60:02d}.{i % 1000:03d}Z",
            "message": f"order {i} placed",
            "log": {"level": ["info", "warn", "error"][i % 3]},
            "service": {"name": "shop"},
            "host": {"name": "node-1"},
            "trace": {"id": TRACE},
            "http": {"response": {"status_code": 200 + i % 3}},
            "order_id": i,
        },
    }


ok, errors = helpers.bulk(es, (doc(i, "logs-shop") for i in range(1000)), chunk_size=250)
seen["bulk_ok"] = ok
seen["bulk_errors"] = len(errors)

mixed = [doc(i, "logs-mixed") for i in range(10)]
mixed[2]["_source"]["@timestamp"] = "not a date"
mixed[5]["_source"]["@timestamp"] = {"nested": True}
mixed[8] = {"_index": "logs-mixed", "_source": "just a string"}
ok, errors = helpers.bulk(es, mixed, raise_on_error=False)
seen["mixed_ok"] = ok
seen["mixed_errors"] = sorted(
    (e["index"]["status"], e["index"]["error"]["type"]) for e in errors
)

own_es = Elasticsearch(own)
stored = 0
for good, item in helpers.streaming_bulk(
    own_es, (doc(i, "logs-own") for i in range(500)), chunk_size=100
):
    stored += 1 if good else 0
seen["streaming_ok"] = stored

r = es.index(index="logs-one", document={"message": "one document", "log.level": "debug"})
seen["index_result"] = r["result"]

seen["template"] = es.indices.put_index_template(
    name="logs-template", index_patterns=["logs-*"], template={}
)["acknowledged"]
seen["template_exists"] = bool(es.indices.exists_index_template(name="logs-template"))

print(json.dumps(seen))
