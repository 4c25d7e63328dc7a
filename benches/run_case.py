#!/usr/bin/env python3
"""Runs one benchmark case against real Strata processes on loopback and records the figures.

Starts N collectors, one agent and the query service from a release build, runs
strata-loadgen with the case's arguments, waits until every acknowledged span is queryable,
then records each Strata process's CPU seconds (utime+stime from /proc) and peak RSS (VmHWM),
the bytes written to storage, throughput and lookup latency, as JSON (--out) and a markdown
table on stdout. Uses only the standard library.

    cargo build --release -p strata -p strata-bench
    python3 benches/run_case.py benches/cases/spans-quick.json --out target/bench/spans-quick.json
"""

import argparse
import json
import os
import platform
import shutil
import socket
import subprocess
import sys
import tempfile
import time
import urllib.request

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
BIN = os.path.join(ROOT, "target", "release")


def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def wait_ready(url, proc, seconds=60):
    deadline = time.time() + seconds
    while time.time() < deadline:
        if proc.poll() is not None:
            sys.exit(f"process exited early: {proc.args}")
        try:
            with urllib.request.urlopen(url, timeout=2) as r:
                if r.status == 200:
                    return
        except OSError:
            pass
        time.sleep(0.1)
    sys.exit(f"{url} not ready")


def proc_stats(pid):
    with open(f"/proc/{pid}/stat") as f:
        fields = f.read().rsplit(")", 1)[1].split()
    ticks = os.sysconf("SC_CLK_TCK")
    cpu = (int(fields[11]) + int(fields[12])) / ticks
    rss = 0
    with open(f"/proc/{pid}/status") as f:
        for line in f:
            if line.startswith("VmHWM:"):
                rss = int(line.split()[1]) * 1024
    return {"cpu_seconds": cpu, "peak_rss_bytes": rss}


def sql(url, query):
    req = urllib.request.Request(url + "/api/v1/sql", data=json.dumps({"query": query}).encode(),
                                 headers={"Content-Type": "application/json"})
    with urllib.request.urlopen(req, timeout=60) as r:
        return json.load(r)["rows"]


def du(path):
    total = 0
    for dirpath, _, files in os.walk(path):
        for f in files:
            if f.endswith(".parquet"):
                total += os.path.getsize(os.path.join(dirpath, f))
    return total


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("case")
    ap.add_argument("--out")
    args = ap.parse_args()
    case = json.load(open(args.case))
    work = tempfile.mkdtemp(prefix="strata-bench-")
    storage = os.path.join(work, "storage")
    env = dict(os.environ, RUST_LOG="warn", **case.get("env", {}))
    procs = {}
    try:
        flights = []
        for i in range(case.get("collectors", 1)):
            flight, http = free_port(), free_port()
            p = subprocess.Popen([os.path.join(BIN, "strata"), "collector", "--id", f"c{i}",
                                  "--data-dir", os.path.join(work, f"c{i}"), "--storage", storage,
                                  "--flight", f"127.0.0.1:{flight}", "--http", f"127.0.0.1:{http}"],
                                 env=env, stderr=open(os.path.join(work, f"c{i}.log"), "w"))
            wait_ready(f"http://127.0.0.1:{http}/ready", p)
            procs[f"collector-{i}"] = p
            flights.append(f"127.0.0.1:{flight}")
        grpc, http = free_port(), free_port()
        agent = subprocess.Popen([os.path.join(BIN, "strata"), "agent", "--data-dir", os.path.join(work, "agent"),
                                  "--otlp-grpc", f"127.0.0.1:{grpc}", "--otlp-http", f"127.0.0.1:{http}",
                                  "--collectors", ",".join(flights)],
                                 env=env, stderr=open(os.path.join(work, "agent.log"), "w"))
        wait_ready(f"http://127.0.0.1:{http}/ready", agent)
        procs["agent"] = agent
        qport = free_port()
        query = subprocess.Popen([os.path.join(BIN, "strata"), "query", "--storage", storage,
                                  "--http", f"127.0.0.1:{qport}"],
                                 env=env, stderr=open(os.path.join(work, "query.log"), "w"))
        qurl = f"http://127.0.0.1:{qport}"
        wait_ready(qurl + "/ready", query)
        procs["query"] = query
        idle = {name: proc_stats(p.pid) for name, p in procs.items()}

        # Ingest, then wait until everything acknowledged is queryable (freshness).
        ids_file = os.path.join(work, "trace-ids")
        out = subprocess.run([os.path.join(BIN, "strata-loadgen"), "--endpoint", f"http://127.0.0.1:{grpc}",
                              "--write-ids", ids_file] + case["loadgen"],
                             check=True, capture_output=True, text=True)
        load = json.loads(out.stdout)
        acked_at = time.time()
        deadline = acked_at + 120
        while time.time() < deadline:
            n = sql(qurl, "SELECT count(*) FROM spans")[0][0]
            if n >= load["acked_spans"]:
                break
            time.sleep(0.2)
        visible_after = time.time() - acked_at
        stats = {name: proc_stats(p.pid) for name, p in procs.items()}
        stored = du(storage)
        spans = load["acked_spans"]
        lookup = None
        if case.get("lookups"):
            out = subprocess.run([os.path.join(BIN, "strata-loadgen"), "--lookup-ids", ids_file, "--query", qurl,
                                  "--lookups", str(case["lookups"])], check=True, capture_output=True, text=True)
            lookup = json.loads(out.stdout)
        collector_cpu = sum(v["cpu_seconds"] - idle[k]["cpu_seconds"] for k, v in stats.items() if k.startswith("collector"))
        agent_cpu = stats["agent"]["cpu_seconds"] - idle["agent"]["cpu_seconds"]
        result = {
            "case": os.path.basename(args.case),
            "date": time.strftime("%Y-%m-%d"),
            "machine": f"{platform.machine()}, {os.cpu_count()} cores, {platform.system()} {platform.release()}",
            "command": "python3 benches/run_case.py " + os.path.relpath(args.case, ROOT),
            "load": load,
            "processes": stats,
            "agent_idle_rss_bytes": idle["agent"]["peak_rss_bytes"],
            "storage_bytes": stored,
            "bytes_per_span": stored / spans if spans else None,
            "agent_cpu_us_per_span": agent_cpu / spans * 1e6 if spans else None,
            "collector_cpu_us_per_span": collector_cpu / spans * 1e6 if spans else None,
            "agent_cpu_s_per_million_spans": agent_cpu / spans * 1e6 if spans else None,
            "collector_cpu_s_per_million_spans": collector_cpu / spans * 1e6 if spans else None,
            "seconds_until_queryable": visible_after,
            "lookup": lookup,
        }
        if args.out:
            os.makedirs(os.path.dirname(os.path.abspath(args.out)), exist_ok=True)
            json.dump(result, open(args.out, "w"), indent=2)
        print(f"| figure | value |\n|---|---|")
        print(f"| machine | {result['machine']} |")
        print(f"| spans acked / sent | {load['acked_spans']} / {load['sent_spans']} (refused {load['refused_spans']}) |")
        print(f"| spans/s end-to-end (load generator on the same 2 cores) | {load['spans_per_second']:.0f} |")
        print(f"| ack latency p50 / p99 | {load['ack_latency_ms_p50']:.2f} ms / {load['ack_latency_ms_p99']:.2f} ms |")
        print(f"| agent CPU s per million spans | {result['agent_cpu_s_per_million_spans']:.2f} |")
        print(f"| collector CPU s per million spans | {result['collector_cpu_s_per_million_spans']:.2f} |")
        print(f"| bytes per span on disk | {result['bytes_per_span']:.1f} |")
        print(f"| peak RSS agent / collector | {stats['agent']['peak_rss_bytes'] / 2**20:.0f} MiB / {stats['collector-0']['peak_rss_bytes'] / 2**20:.0f} MiB |")
        print(f"| seconds from last ack to all queryable | {visible_after:.1f} |")
        if lookup:
            print(f"| trace lookup p50 / p99 ({lookup['lookups']} lookups, {lookup['found']} found) | {lookup['p50_ms']:.1f} ms / {lookup['p99_ms']:.1f} ms |")
    finally:
        for p in procs.values():
            p.terminate()
        for p in procs.values():
            try:
                p.wait(timeout=30)
            except subprocess.TimeoutExpired:
                p.kill()
        shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    main()
