"""Checks Strata's Grafana provisioning against a running Strata with data in it.

- every datasource a dashboard names (panels, targets, variables) is provisioned, with the
  same type;
- every query of every dashboard runs against the query service and returns data: PromQL
  targets through /api/v1/query_range, TraceQL targets through /api/search, variables
  through the label values API; the datasources' trace-to-metrics queries too, and their
  trace-to-logs queries through the Loki API for a trace of the demo.

Usage: check_dashboards.py --query http://127.0.0.1:3200 --root <repository>
Prints one line per query and exits non-zero if anything failed.
"""

import argparse
import glob
import json
import math
import os
import re
import sys
import time
import urllib.parse
import urllib.request

import yaml


def get(url):
    with urllib.request.urlopen(url, timeout=60) as r:
        return json.loads(r.read())


def substitute(expr, variables):
    expr = expr.replace("$__rate_interval", "1m").replace("$__interval", "15s")
    for name, value in variables.items():
        expr = expr.replace("${" + name + "}", value).replace("$" + name, value)
    return expr


def datasource_refs(dashboard):
    """Yields (where, datasource) for every datasource reference in a dashboard."""
    for v in dashboard.get("templating", {}).get("list", []):
        if "datasource" in v:
            yield f"variable {v['name']}", v["datasource"]
    for panel in dashboard.get("panels", []):
        if "datasource" in panel:
            yield f"panel {panel['title']!r}", panel["datasource"]
        for t in panel.get("targets", []):
            if "datasource" in t:
                yield f"panel {panel['title']!r} target {t['refId']}", t["datasource"]


def main():
    p = argparse.ArgumentParser()
    p.add_argument("--query", required=True)
    p.add_argument("--root", required=True)
    args = p.parse_args()
    failures = []
    checked = 0

    provisioned = {}
    for path in glob.glob(os.path.join(args.root, "dashboards/provisioning/datasources/*.yaml")):
        for ds in yaml.safe_load(open(path))["datasources"]:
            provisioned[ds["uid"]] = ds
    if not provisioned:
        sys.exit("no provisioned datasources")
    for name, ds in provisioned.items():
        for link in ("serviceMap", "tracesToMetrics", "tracesToLogsV2"):
            target = ds.get("jsonData", {}).get(link, {}).get("datasourceUid")
            if target and target not in provisioned:
                failures.append(f"datasource {name}: {link} names unknown datasource {target}")
        for field in ds.get("jsonData", {}).get("derivedFields", []):
            if field.get("datasourceUid") not in provisioned:
                failures.append(f"datasource {name}: derived field {field['name']} names unknown datasource")

    # Rounded up: a whole-second end before this moment could leave out the newest point of
    # a series written just before the check, and rate() would then have one point too few.
    now = math.ceil(time.time())
    start = now - 15 * 60

    def promql_range(expr, where):
        nonlocal checked
        checked += 1
        url = f"{args.query}/api/v1/query_range?" + urllib.parse.urlencode(
            {"query": expr, "start": start, "end": now, "step": 15})
        try:
            result = get(url)["data"]["result"]
        except Exception as e:  # noqa: BLE001 - report and go on with the other queries
            failures.append(f"{where}: {expr}: {e}")
            return
        points = sum(1 for s in result for v in s["values"] if v[1] not in ("NaN", "+Inf", "-Inf"))
        print(f"{where}: {len(result)} series, {points} points: {expr}")
        if points == 0:
            failures.append(f"{where}: no data: {expr}")

    dashboards = sorted(glob.glob(os.path.join(args.root, "dashboards/json/*.json")))
    if not dashboards:
        sys.exit("no dashboards")
    for path in dashboards:
        dashboard = json.load(open(path))
        title = dashboard["title"]
        for where, ref in datasource_refs(dashboard):
            ds = provisioned.get(ref.get("uid"))
            if ds is None:
                failures.append(f"{title}: {where}: datasource {ref} is not provisioned")
            elif ds["type"] != ref.get("type"):
                failures.append(f"{title}: {where}: datasource {ref} has type {ds['type']}")
        variables = {}
        for v in dashboard.get("templating", {}).get("list", []):
            definition = v.get("definition") or v.get("query", {}).get("query", "")
            m = re.fullmatch(r"label_values\((\w+),\s*(\w+)\)", definition)
            if not m:
                failures.append(f"{title}: variable {v['name']}: unsupported definition {definition!r}")
                continue
            checked += 1
            url = f"{args.query}/api/v1/label/{m.group(2)}/values?" + urllib.parse.urlencode(
                {"match[]": m.group(1), "start": start, "end": now})
            values = get(url)["data"]
            print(f"{title}: variable {v['name']}: {values}")
            if not values:
                failures.append(f"{title}: variable {v['name']}: no values")
            variables[v["name"]] = v.get("allValue") or "|".join(values)
        for panel in dashboard.get("panels", []):
            for t in panel.get("targets", []):
                where = f"{title}: {panel['title']!r} {t['refId']}"
                kind = provisioned.get(t.get("datasource", {}).get("uid"), {}).get("type")
                if kind == "prometheus":
                    promql_range(substitute(t["expr"], variables), where)
                elif kind == "tempo":
                    checked += 1
                    q = substitute(t["query"], variables)
                    url = f"{args.query}/api/search?" + urllib.parse.urlencode(
                        {"q": q, "limit": t.get("limit", 20), "start": start, "end": now})
                    traces = get(url)["traces"]
                    print(f"{where}: {len(traces)} traces: {q}")
                    if not traces:
                        failures.append(f"{where}: no traces: {q}")
                else:
                    failures.append(f"{where}: no query runner for datasource type {kind}")

    # The trace-to-metrics links, for the demo's frontend service.
    for name, ds in provisioned.items():
        for q in ds.get("jsonData", {}).get("tracesToMetrics", {}).get("queries", []):
            expr = q["query"].replace("$$__tags", 'service="frontend"')
            promql_range(expr, f"datasource {name}: trace to metrics {q['name']!r}")

    # The trace-to-logs links, for a trace that went through checkout.
    q = '{ resource.service.name = "checkout" }'
    traces = get(f"{args.query}/api/search?" + urllib.parse.urlencode(
        {"q": q, "limit": 1, "start": start, "end": now}))["traces"]
    if not traces:
        failures.append(f"no trace to follow to its logs: {q}")
    for name, ds in provisioned.items():
        link = ds.get("jsonData", {}).get("tracesToLogsV2")
        if not link or not traces:
            continue
        checked += 1
        trace_id = traces[0]["traceID"]
        expr = link["query"].replace("$${__trace.traceId}", trace_id)
        url = f"{args.query}/loki/api/v1/query_range?" + urllib.parse.urlencode(
            {"query": expr, "start": start * 10**9, "end": now * 10**9, "limit": 1000})
        try:
            streams = get(url)["data"]["result"]
        except Exception as e:  # noqa: BLE001 - report and go on
            failures.append(f"datasource {name}: trace to logs: {expr}: {e}")
            continue
        services = sorted({s["stream"].get("service_name", "") for s in streams})
        lines = sum(len(s["values"]) for s in streams)
        print(f"datasource {name}: trace to logs: {lines} lines from {services}: {expr}")
        if lines == 0:
            failures.append(f"datasource {name}: trace to logs: no lines: {expr}")

    print(f"{checked} queries checked, {len(failures)} failures")
    for f in failures:
        print("FAIL:", f)
    sys.exit(1 if failures else 0)


if __name__ == "__main__":
    main()
