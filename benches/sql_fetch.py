#!/usr/bin/env python3
"""What it costs to fetch many span rows out of Strata, by protocol: PostgreSQL (text and
binary results, psycopg 3), Arrow Flight SQL (ADBC) and the HTTP route's Arrow IPC stream,
in alternating rounds of the same run against one `strata standalone`.

strata-loadgen sends SPANS spans first. Each round fetches the same query
(`SELECT <scalar span columns> FROM spans LIMIT SPANS`) once per protocol. Per fetch it
reads the server's CPU seconds (user + system, from /proc) before and after, and the wall
time the client took to have every row in hand (psycopg's Python objects, ADBC's Arrow table,
pyarrow's table; connections are opened before the rounds; Flight SQL is fetched twice, by
ADBC's driver and by pyarrow's Flight client), and reports rows per second and server CPU microseconds per row. Medians
over the rounds, and each protocol's ratio to Flight SQL, are printed as JSON.

Needs the release build and the test venv (psycopg, adbc-driver-flightsql, pyarrow):

    cargo build --release -p strata -p strata-bench
    target/test-venv/bin/python benches/sql_fetch.py --spans 1000000 --rounds 5
"""

import argparse
import json
import os
import re
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
import urllib.request

import adbc_driver_flightsql.dbapi as flight_sql
import psycopg
import pyarrow.flight
import pyarrow.ipc

sys.path.insert(0, os.path.dirname(__file__))
from run_case import free_port, proc_stats  # noqa: E402

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
BIN = os.path.join(ROOT, "target", "release")
COLUMNS = "trace_id, span_id, parent_span_id, name, service_name, kind, start_time, duration_nanos, status_code"


def logged(log_path, key, proc, seconds=60):
    deadline = time.time() + seconds
    pattern = re.compile(key + r"=(\S+)")
    while time.time() < deadline:
        with open(log_path) as f:
            for line in f:
                if "listening" in line:
                    m = pattern.search(re.sub(r"\x1b\[[0-9;]*m", "", line))
                    if m:
                        return m.group(1)
        if proc.poll() is not None:
            sys.exit(f"standalone exited, see {log_path}")
        time.sleep(0.1)
    sys.exit(f"no {key}= in {log_path}")


def varint(n):
    out = bytearray()
    while True:
        b = n & 0x7F
        n >>= 7
        out.append(b | (0x80 if n else 0))
        if not n:
            return bytes(out)


def proto_bytes(field, data):
    """One length-delimited protobuf field."""
    return varint(field << 3 | 2) + varint(len(data)) + data


def statement_query(sql):
    """Flight SQL's `CommandStatementQuery { query }` packed in a `google.protobuf.Any`."""
    command = proto_bytes(1, sql.encode())
    url = b"type.googleapis.com/arrow.flight.protocol.sql.CommandStatementQuery"
    return proto_bytes(1, url) + proto_bytes(2, command)


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--spans", type=int, default=1_000_000)
    ap.add_argument("--rounds", type=int, default=5)
    args = ap.parse_args()

    work = tempfile.mkdtemp(prefix="strata-sql-fetch-")
    grpc, qport = free_port(), free_port()
    log_path = os.path.join(work, "standalone.log")
    log = open(log_path, "w")
    env = dict(
        os.environ,
        RUST_LOG="info",
        STRATA_COLLECTOR__FLUSH_MAX_AGE_MS="1000",
        STRATA_QUERY__MAX_RESULT_ROWS=str(args.spans),
        STRATA_QUERY__MAX_ANSWER_BYTES=str(4 << 30),
        STRATA_QUERY__MEMORY_LIMIT_BYTES=str(4 << 30),
        STRATA_QUERY__TIMEOUT_MS="600000",
    )
    proc = subprocess.Popen(
        [os.path.join(BIN, "strata"), "standalone", "--data-dir", os.path.join(work, "data"),
         "--otlp-grpc", f"127.0.0.1:{grpc}", "--otlp-http", f"127.0.0.1:{free_port()}",
         "--http", f"127.0.0.1:{qport}", "--flight", f"127.0.0.1:{free_port()}",
         "--collector-http", f"127.0.0.1:{free_port()}",
         "--pg", "127.0.0.1:0", "--flight-sql", "127.0.0.1:0"],
        stdout=log, stderr=log, env=env)
    try:
        pg = logged(log_path, "pg", proc)
        fsql = logged(log_path, "flight_sql", proc)
        pg_host, pg_port = pg.rsplit(":", 1)
        query = f"http://127.0.0.1:{qport}"

        def count():
            req = urllib.request.Request(
                query + "/api/v1/sql",
                data=json.dumps({"query": "SELECT count(*) FROM spans"}).encode(),
                headers={"Content-Type": "application/json"})
            with urllib.request.urlopen(req, timeout=60) as r:
                return json.load(r)["rows"][0][0]

        deadline = time.time() + 60
        while True:
            try:
                count()
                break
            except OSError:
                if time.time() > deadline:
                    sys.exit("query service not ready")
                time.sleep(0.2)
        report = json.loads(subprocess.run(
            [os.path.join(BIN, "strata-loadgen"), "--signal", "traces", "--count", str(args.spans),
             "--endpoint", f"http://127.0.0.1:{grpc}", "--concurrency", "4"],
            check=True, capture_output=True, text=True).stdout)
        deadline = time.time() + 600
        while count() < report["acked"]:
            if time.time() > deadline:
                sys.exit("spans did not all become queryable")
            time.sleep(0.5)
        rows = min(args.spans, report["acked"])
        sql = f"SELECT {COLUMNS} FROM spans LIMIT {rows}"

        # Connections are opened once, before the rounds: what is timed is the fetch.
        pg_conn = psycopg.connect(host=pg_host, port=int(pg_port), user="default",
                                  dbname="strata", autocommit=True)
        flight_conn = flight_sql.connect(f"grpc://{fsql}", autocommit=True)

        def pg_fetch(binary):
            return len(pg_conn.cursor(binary=binary).execute(sql).fetchall())

        def flight_fetch():
            with flight_conn.cursor() as cur:
                cur.execute(sql)
                return cur.fetch_arrow_table().num_rows

        # The same Flight SQL calls from Arrow C++'s Flight client (pyarrow), to tell the
        # server and transport from ADBC's Go driver.
        flight_client = pyarrow.flight.connect(f"grpc://{fsql}")
        descriptor = pyarrow.flight.FlightDescriptor.for_command(statement_query(sql))

        def flight_pyarrow_fetch():
            info = flight_client.get_flight_info(descriptor)
            return flight_client.do_get(info.endpoints[0].ticket).read_all().num_rows

        def http_fetch():
            req = urllib.request.Request(
                query + "/api/v1/sql", data=json.dumps({"query": sql}).encode(),
                headers={"Content-Type": "application/json",
                         "Accept": "application/vnd.apache.arrow.stream"})
            with urllib.request.urlopen(req, timeout=600) as r:
                return pyarrow.ipc.open_stream(r).read_all().num_rows

        modes = {
            "postgres_text": lambda: pg_fetch(False),
            "postgres_binary": lambda: pg_fetch(True),
            "flight_sql": flight_fetch,
            "flight_sql_pyarrow": flight_pyarrow_fetch,
            "http_arrow": http_fetch,
        }
        results = {m: [] for m in modes}
        for r in range(args.rounds):
            for mode, fetch in modes.items():
                cpu0 = proc_stats(proc.pid)["cpu_seconds"]
                t0 = time.perf_counter()
                got = fetch()
                wall = time.perf_counter() - t0
                cpu = proc_stats(proc.pid)["cpu_seconds"] - cpu0
                if got != rows:
                    sys.exit(f"{mode}: {got} rows, expected {rows}")
                results[mode].append({"rows_per_s": rows / wall, "cpu_us_per_row": cpu * 1e6 / rows})
                print(f"round {r + 1} {mode}: {rows / wall:,.0f} rows/s, "
                      f"{cpu * 1e6 / rows:.3f} server CPU us/row", file=sys.stderr)
        out = {"rows": rows, "rounds": args.rounds, "query": sql, "modes": {}}
        base = statistics.median(x["rows_per_s"] for x in results["flight_sql"])
        base_cpu = statistics.median(x["cpu_us_per_row"] for x in results["flight_sql"])
        for mode, xs in results.items():
            rps = statistics.median(x["rows_per_s"] for x in xs)
            cpu = statistics.median(x["cpu_us_per_row"] for x in xs)
            out["modes"][mode] = {
                "rows_per_s": round(rps),
                "server_cpu_us_per_row": round(cpu, 3),
                "rows_per_s_vs_flight_sql": round(rps / base, 3),
                "cpu_vs_flight_sql": round(cpu / base_cpu, 3) if base_cpu else None,
            }
        print(json.dumps(out, indent=2))
        pg_conn.close()
        flight_conn.close()
        flight_client.close()
    finally:
        proc.terminate()
        try:
            proc.wait(timeout=60)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()
        log.close()
        shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    main()
