#!/usr/bin/env python3
"""Runs one benchmark case against real Strata processes on loopback and records the figures.

Starts Strata from a release build, either as one `strata standalone` process or as N
collectors + one agent + the query service, then runs the case's phases one after the other.
A phase is one strata-loadgen run (traces, logs or metrics, over OTLP/gRPC or OTLP/HTTP), or a
`tail` phase: a log file of generated plain or JSON lines is written aside, then renamed into a
directory the agent's file source watches, and the phase lasts until the collector acknowledged
every line (the file source's `acked_records`). After each phase the runner waits until every acknowledged item is queryable (freshness) and records,
for each Strata process, its CPU seconds (utime + stime from /proc) and peak RSS (VmHWM, reset
per phase through /proc/PID/clear_refs), the Parquet bytes the phase added to storage, and the
load generator's throughput and ack latency. Optional extras:

  --profile DIR   perf-record the agent and the first collector during each phase and write
                  the top symbols next to the raw profiles (needs `perf`);
  --duckdb        answer the same SQL questions with DuckDB over the same Parquet files and
                  report Strata / DuckDB per question (installs DuckDB from PyPI into
                  target/bench-venv unless it can be imported);
  --keep          keep the working directory (storage, logs) and print its path.

The result is written as JSON (--out) and as a markdown table (stdout, and --markdown FILE),
with the machine, the date and the command. Everything is bounded: every wait has a deadline and
the load generator stops by itself.

    cargo build --release -p strata -p strata-bench
    python3 benches/run_case.py benches/cases/spans-quick.json --out target/bench/spans-quick.json
"""

import argparse
import glob
import json
import os
import platform
import shutil
import signal as signals
import socket
import subprocess
import sys
import tempfile
import time
import urllib.request

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
BIN = os.path.join(ROOT, "target", "release")
TABLES = {"traces": "spans", "logs": "logs", "metrics": "metrics"}
UNITS = {"traces": "span", "logs": "log record", "metrics": "metric point"}


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
    out = {"cpu_seconds": cpu, "peak_rss_bytes": 0, "rss_bytes": 0}
    with open(f"/proc/{pid}/status") as f:
        for line in f:
            if line.startswith("VmHWM:"):
                out["peak_rss_bytes"] = int(line.split()[1]) * 1024
            elif line.startswith("VmRSS:"):
                out["rss_bytes"] = int(line.split()[1]) * 1024
    return out


def reset_peak_rss(pid):
    try:
        with open(f"/proc/{pid}/clear_refs", "w") as f:
            f.write("5")
    except OSError:
        pass  # older kernels: the peak then covers the process's whole life


def sql(url, query, timeout=120):
    req = urllib.request.Request(url + "/api/v1/sql", data=json.dumps({"query": query}).encode(),
                                 headers={"Content-Type": "application/json"})
    with urllib.request.urlopen(req, timeout=timeout) as r:
        return json.load(r)["rows"]


def parquet_bytes(path):
    total = 0
    for dirpath, _, files in os.walk(path):
        for f in files:
            if f.endswith(".parquet"):
                total += os.path.getsize(os.path.join(dirpath, f))
    return total


def signal_dir(storage, signal):
    return os.path.join(storage, "tenant=default", f"signal={signal}")


class Cluster:
    """The Strata processes of one case."""

    def __init__(self, case, work, args_strata=None):
        self.work = work
        self.storage = os.path.join(work, "storage")
        self.env = dict(os.environ, RUST_LOG="warn", **case.get("env", {}))
        self.procs = {}
        self.mode = case.get("mode", "cluster")
        self.grpc, self.http = free_port(), free_port()
        qport = free_port()
        self.query = f"http://127.0.0.1:{qport}"
        strata = args_strata or os.path.join(BIN, "strata")
        config = self.tail_config(case)
        if self.mode == "standalone":
            p = self.start("strata", [strata, *config, "standalone", "--data-dir", os.path.join(work, "standalone"),
                                      "--storage", self.storage,
                                      "--otlp-grpc", f"127.0.0.1:{self.grpc}",
                                      "--otlp-http", f"127.0.0.1:{self.http}",
                                      "--http", f"127.0.0.1:{qport}",
                                      "--flight", f"127.0.0.1:{free_port()}",
                                      "--collector-http", f"127.0.0.1:{free_port()}"])
            wait_ready(self.query + "/ready", p)
            wait_ready(f"http://127.0.0.1:{self.http}/ready", p)
            return
        flights = []
        for i in range(case.get("collectors", 1)):
            flight, http = free_port(), free_port()
            p = self.start(f"collector-{i}", [strata, "collector", "--id", f"c{i}",
                                              "--data-dir", os.path.join(work, f"c{i}"), "--storage", self.storage,
                                              "--flight", f"127.0.0.1:{flight}", "--http", f"127.0.0.1:{http}"])
            wait_ready(f"http://127.0.0.1:{http}/ready", p)
            flights.append(f"127.0.0.1:{flight}")
        p = self.start("agent", [strata, *config, "agent", "--data-dir", os.path.join(work, "agent"),
                                 "--otlp-grpc", f"127.0.0.1:{self.grpc}", "--otlp-http", f"127.0.0.1:{self.http}",
                                 "--collectors", ",".join(flights)])
        wait_ready(f"http://127.0.0.1:{self.http}/ready", p)
        p = self.start("query", [strata, "query", "--storage", self.storage, "--http", f"127.0.0.1:{qport}"])
        wait_ready(self.query + "/ready", p)

    def tail_config(self, case):
        """`--config FILE` with one file source per tail phase (`tail/<phase>/*.log`), if any."""
        tails = [p for p in case.get("phases", []) if "tail" in p]
        if not tails:
            return []
        path = os.path.join(self.work, "agent.toml")
        with open(path, "w") as f:
            for p in tails:
                d = os.path.join(self.work, "tail", p["name"])
                os.makedirs(d)
                f.write(f'[[agent.files]]\nname = "{p["name"]}"\ninclude = ["{d}/*.log"]\n'
                        f'parser = "{p["tail"].get("parser", "none")}"\n')
        return ["--config", path]

    def start(self, name, argv):
        log = open(os.path.join(self.work, f"{name}.log"), "w")
        p = subprocess.Popen(argv, env=self.env, stderr=log, stdout=log)
        self.procs[name] = p
        return p

    def stats(self):
        return {name: proc_stats(p.pid) for name, p in self.procs.items()}

    def agent_side(self):
        """Process names whose CPU is the agent's (standalone: the one process)."""
        return ["strata"] if self.mode == "standalone" else ["agent"]

    def collector_side(self):
        return [] if self.mode == "standalone" else [n for n in self.procs if n.startswith("collector")]

    def profiled(self):
        """The processes a `--profile` run records: the agent side and the first collector."""
        return {n: self.procs[n] for n in self.agent_side() + self.collector_side()[:1]}

    def stop(self):
        for p in self.procs.values():
            p.terminate()
        for p in self.procs.values():
            try:
                p.wait(timeout=30)
            except subprocess.TimeoutExpired:
                p.kill()


def start_profiles(procs, out_dir, phase):
    """perf-records each of `procs` (name -> process) until `stop_profiles`."""
    if not shutil.which("perf"):
        print("perf not found: no profiles", file=sys.stderr)
        return []
    os.makedirs(out_dir, exist_ok=True)
    recorders = []
    for name, proc in procs.items():
        data = os.path.join(out_dir, f"{phase}-{name}.perf.data")
        # DWARF call graphs: the release build has no frame pointers, but has debug info.
        rec = subprocess.Popen(["perf", "record", "-F", "149", "--call-graph", "dwarf,16384", "-p",
                                str(proc.pid), "-o", data],
                               stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        recorders.append((name, data, rec))
    return recorders


def stop_profiles(recorders, out_dir, phase):
    tops = {}
    for name, data, rec in recorders:
        rec.send_signal(signals.SIGINT)
        try:
            rec.wait(timeout=60)
        except subprocess.TimeoutExpired:
            rec.kill()
            continue
        report = subprocess.run(["perf", "report", "-i", data, "--no-inline", "--no-children", "--sort", "symbol", "-g", "none",
                                 "--stdio"], capture_output=True, text=True, timeout=300).stdout
        lines = [" ".join(l.split()[:1] + l.split()[2:])[:160] for l in report.splitlines()
                 if l.strip() and not l.startswith("#")][:40]
        path = os.path.join(out_dir, f"{phase}-{name}.top.txt")
        with open(path, "w") as f:
            f.write("\n".join(lines) + "\n")
        # Inclusive shares (a function with everything it calls): what the stage table uses.
        children = subprocess.run(["perf", "report", "-i", data, "--no-inline", "--children", "--sort", "symbol", "-g", "none",
                                   "--percent-limit", "0.3", "--stdio"], capture_output=True, text=True,
                                  timeout=600).stdout
        with open(os.path.join(out_dir, f"{phase}-{name}.children.txt"), "w") as f:
            f.write(children)
        tops[name] = lines[:15]
    return tops


def expand_globs(argv):
    """Expands loadgen arguments holding `*` (paths relative to the project), repeating the
    option before them for every match; None when a pattern matches nothing."""
    out = []
    for i, a in enumerate(argv):
        if "*" not in a:
            out.append(a)
            continue
        matches = sorted(glob.glob(os.path.join(ROOT, a)))
        if not matches:
            return None
        out.pop()
        for m in matches:
            out += [argv[i - 1], m]
    return out


LEVELS = ["INFO"] * 6 + ["DEBUG"] * 2 + ["WARN", "ERROR"]
WORDS = ["request", "served", "cache", "miss", "user", "session", "order", "payment", "retry", "upstream",
         "timeout", "connection", "reset", "queue", "worker", "flushed", "segment", "checkpoint"]


def tail_lines(kind, n, seed=7):
    """`n` log lines, plain (log4j-like) or JSON, about 130 bytes each, as one bytes object."""
    import random
    rnd = random.Random(seed)
    t0 = 1_714_557_600
    out = []
    for i in range(n):
        ts = time.strftime("%Y-%m-%d %H:%M:%S", time.gmtime(t0 + i // 1000)) + f",{i % 1000:03d}"
        level = LEVELS[i % len(LEVELS)]
        msg = " ".join(rnd.choice(WORDS) for _ in range(6)) + f" id={rnd.randrange(1 << 30)} took={rnd.randrange(900)}ms"
        if kind == "json":
            out.append(json.dumps({"time": ts.replace(" ", "T").replace(",", ".") + "Z", "level": level.lower(),
                                   "logger": f"svc.component{i % 17}", "msg": msg, "user": rnd.randrange(10000)}))
        else:
            out.append(f"{ts} {level} [worker-{i % 8}] svc.component{i % 17}: {msg}")
    return ("\n".join(out) + "\n").encode()


def agent_metric(cluster, name):
    with urllib.request.urlopen(f"http://127.0.0.1:{cluster.http}/metrics", timeout=10) as r:
        text = r.read().decode()
    return sum(float(l.rsplit(" ", 1)[1]) for l in text.splitlines() if l.startswith(name))


def run_tail_phase(cluster, phase, args):
    """Writes the phase's file aside, renames it into the watched directory, and measures until
    the collector acknowledged every line."""
    spec = phase["tail"]
    n, kind = spec["lines"], spec.get("format", "plain")
    data = tail_lines(kind, n)
    d = os.path.join(cluster.work, "tail", phase["name"])
    staged = os.path.join(d, "input.staged")
    with open(staged, "wb") as f:
        f.write(data)
    rows_before = sql(cluster.query, "SELECT count(*) FROM logs")[0][0]
    bytes_before = parquet_bytes(signal_dir(cluster.storage, "logs"))
    for p in cluster.procs.values():
        reset_peak_rss(p.pid)
    before = cluster.stats()
    acked_name = f'strata_agent_file_acked_records_total{{source="{phase["name"]}"}}'
    recorders = start_profiles(cluster.profiled(), args.profile, phase["name"]) if args.profile else []
    start = time.time()
    os.rename(staged, os.path.join(d, "input.log"))
    deadline = start + 600
    while time.time() < deadline and agent_metric(cluster, acked_name) < n:
        time.sleep(0.05)
    acked_at = time.time()
    after = cluster.stats()
    tops = stop_profiles(recorders, args.profile, phase["name"]) if recorders else None
    rows = rows_before
    while time.time() < acked_at + 300:
        rows = sql(cluster.query, "SELECT count(*) FROM logs")[0][0]
        if rows - rows_before >= n:
            break
        time.sleep(0.2)
    visible_after = time.time() - acked_at
    stored = parquet_bytes(signal_dir(cluster.storage, "logs")) - bytes_before
    seconds = acked_at - start

    def cpu(names):
        return sum(after[k]["cpu_seconds"] - before[k]["cpu_seconds"] for k in names)

    agent_cpu, collector_cpu = cpu(cluster.agent_side()), cpu(cluster.collector_side())
    mb = len(data) / 1e6
    load = {"acked": int(agent_metric(cluster, acked_name)), "sent": n, "refused": 0, "failed": 0,
            "protocol": f"file ({kind} lines)", "per_second": n / seconds, "seconds": seconds,
            "mb_per_second": mb / seconds, "ack_latency_ms_p50": 0.0, "ack_latency_ms_p99": 0.0}
    return {
        "name": phase["name"], "signal": "logs", "unit": "log line", "load": load, "tail": True,
        "stored_rows": rows - rows_before, "all_visible": rows - rows_before >= n,
        "seconds_until_queryable": visible_after,
        "storage_bytes": stored, "bytes_per_item": stored / n,
        "raw_bytes": len(data), "compression_ratio": len(data) / stored if stored else None,
        "agent_cpu_us_per_item": agent_cpu / n * 1e6,
        "collector_cpu_us_per_item": collector_cpu / n * 1e6,
        "agent_mb_per_cpu_second": mb / agent_cpu if agent_cpu else None,
        "path_mb_per_cpu_second": mb / (agent_cpu + collector_cpu) if agent_cpu + collector_cpu else None,
        "peak_rss_bytes": {k: v["peak_rss_bytes"] for k, v in after.items()},
        "cpu_seconds": {k: after[k]["cpu_seconds"] - before[k]["cpu_seconds"] for k in after},
        **({"profile_top": tops} if tops else {}),
    }


def run_phase(cluster, phase, args, ids_file):
    if "tail" in phase:
        return run_tail_phase(cluster, phase, args)
    signal = phase.get("signal", "traces")
    loadgen = expand_globs(phase["loadgen"])
    if loadgen is None:
        print(f"phase {phase['name']} skipped: its input files are not there", file=sys.stderr)
        return None
    table = TABLES[signal]
    http = "--protocol" in phase["loadgen"] and phase["loadgen"][phase["loadgen"].index("--protocol") + 1] == "http"
    endpoint = f"http://127.0.0.1:{cluster.http if http else cluster.grpc}"
    rows_before = sql(cluster.query, f"SELECT count(*) FROM {table}")[0][0]
    bytes_before = parquet_bytes(signal_dir(cluster.storage, signal))
    for p in cluster.procs.values():
        reset_peak_rss(p.pid)
    before = cluster.stats()
    recorders = start_profiles(cluster.profiled(), args.profile, phase["name"]) if args.profile else []
    cmd = [os.path.join(BIN, "strata-loadgen"), "--signal", signal, "--endpoint", endpoint]
    if signal == "traces":
        cmd += ["--write-ids", ids_file]
    out = subprocess.run(cmd + loadgen, check=True, capture_output=True, text=True, timeout=3600)
    load = json.loads(out.stdout)
    acked_at = time.time()
    deadline = acked_at + 300
    rows = rows_before
    while time.time() < deadline:
        rows = sql(cluster.query, f"SELECT count(*) FROM {table}")[0][0]
        if rows - rows_before >= load["acked"]:
            break
        time.sleep(0.2)
    visible_after = time.time() - acked_at
    tops = stop_profiles(recorders, args.profile, phase["name"]) if recorders else None
    after = cluster.stats()
    stored = parquet_bytes(signal_dir(cluster.storage, signal)) - bytes_before
    n = load["acked"] or 1

    def cpu(names):
        return sum(after[k]["cpu_seconds"] - before[k]["cpu_seconds"] for k in names)

    result = {
        "name": phase["name"], "signal": signal, "unit": UNITS[signal], "load": load,
        "stored_rows": rows - rows_before, "all_visible": rows - rows_before >= load["acked"],
        "seconds_until_queryable": visible_after,
        "storage_bytes": stored, "bytes_per_item": stored / n,
        "agent_cpu_us_per_item": cpu(cluster.agent_side()) / n * 1e6,
        "collector_cpu_us_per_item": cpu(cluster.collector_side()) / n * 1e6,
        "peak_rss_bytes": {k: v["peak_rss_bytes"] for k, v in after.items()},
        "cpu_seconds": {k: after[k]["cpu_seconds"] - before[k]["cpu_seconds"] for k in after},
    }
    if load.get("acked_raw_bytes"):
        result["raw_bytes"] = load["acked_raw_bytes"]
        result["compression_ratio"] = load["acked_raw_bytes"] / stored if stored else None
    if tops:
        result["profile_top"] = tops
    if phase.get("lookups") and signal == "traces":
        out = subprocess.run([os.path.join(BIN, "strata-loadgen"), "--lookup-ids", ids_file, "--query", cluster.query,
                              "--lookups", str(phase["lookups"])], check=True, capture_output=True, text=True,
                             timeout=600)
        result["lookup"] = json.loads(out.stdout)
        result["lookup"]["stored_spans"] = rows
    return result


# The same questions for Strata's SQL endpoint (DataFusion) and DuckDB; only the spelling of
# the percentile function differs.
QUESTIONS = [
    ("count by service",
     "SELECT service_name, count(*) AS n FROM spans GROUP BY service_name ORDER BY n DESC",
     None),
    ("p99 duration by operation",
     "SELECT name, approx_percentile_cont(duration_nanos, 0.99) AS p99 FROM spans GROUP BY name ORDER BY name",
     "SELECT name, approx_quantile(duration_nanos, 0.99) AS p99 FROM spans GROUP BY name ORDER BY name"),
    ("error rate per minute",
     "SELECT date_trunc('minute', start_time) AS minute, "
     "avg(CASE WHEN status_code = 2 THEN 1.0 ELSE 0.0 END) AS error_rate, count(*) AS n "
     "FROM spans GROUP BY 1 ORDER BY 1",
     None),
    ("trace by id", "SELECT * FROM spans WHERE trace_id = '{trace_id}'", None),
    ("log text search", "SELECT count(*) AS n FROM logs WHERE body LIKE '%Connection reset by peer%'", None),
]

DUCKDB_SIDE = r"""
import json, statistics, sys, time
import duckdb
spec = json.load(sys.stdin)
con = duckdb.connect()
con.execute(f"SET threads TO {spec['threads']}")
for table, glob in spec["tables"].items():
    con.execute(f"CREATE VIEW {table} AS SELECT * FROM read_parquet('{glob}', union_by_name = true)")
out = []
for q in spec["questions"]:
    times, rows = [], 0
    for i in range(spec["repeat"] + 1):
        t = time.perf_counter()
        rows = len(con.execute(q).fetchall())
        if i:
            times.append((time.perf_counter() - t) * 1000)
    out.append({"median_ms": statistics.median(times), "rows": rows})
print(json.dumps(out))
"""


COLUMN_SIZES = r"""
import json, sys
import duckdb
spec = json.load(sys.stdin)
con = duckdb.connect()
out = {}
for signal, glob in spec.items():
    rows = con.execute(f"SELECT count(*) FROM read_parquet('{glob}')").fetchone()[0]
    sizes = con.execute(
        f"SELECT split_part(path_in_schema, ',', 1) AS col, sum(total_compressed_size) AS b "
        f"FROM parquet_metadata('{glob}') GROUP BY 1 ORDER BY 2 DESC").fetchall()
    out[signal] = {"rows": rows, "columns": [[c, b / rows] for c, b in sizes if rows]}
print(json.dumps(out))
"""


def column_sizes(cluster):
    """Compressed bytes per row of each top-level column, per signal (from Parquet metadata)."""
    spec = {s: os.path.join(signal_dir(cluster.storage, s), "**", "*.parquet")
            for s in TABLES if parquet_bytes(signal_dir(cluster.storage, s))}
    out = subprocess.run([duckdb_python(), "-c", COLUMN_SIZES], input=json.dumps(spec), capture_output=True,
                         text=True, timeout=600)
    if out.returncode != 0:
        print(f"column sizes failed: {out.stderr[-2000:]}", file=sys.stderr)
        return {}
    return json.loads(out.stdout)


def duckdb_python():
    """A Python that can import duckdb: this one, or a venv under target/ made for it."""
    try:
        import duckdb  # noqa: F401
        import pytz  # noqa: F401
        return sys.executable
    except ImportError:
        pass
    venv = os.path.join(ROOT, "target", "bench-venv")
    py = os.path.join(venv, "bin", "python")
    if not os.path.exists(py):
        subprocess.run([sys.executable, "-m", "venv", venv], check=True)
    check = subprocess.run([py, "-c", "import duckdb, pytz"], capture_output=True)
    if check.returncode != 0:
        # pytz: DuckDB needs it to hand timestamps with a time zone to Python.
        subprocess.run([py, "-m", "pip", "install", "-q", "duckdb==1.5.6", "pytz"], check=True, timeout=900)
    return py


def compare_duckdb(cluster, trace_id, repeat=5):
    questions = []
    for name, strata_sql, duck_sql in QUESTIONS:
        if "logs" in strata_sql and not parquet_bytes(signal_dir(cluster.storage, "logs")):
            continue
        if "spans" in strata_sql and not parquet_bytes(signal_dir(cluster.storage, "traces")):
            continue
        questions.append((name, strata_sql.format(trace_id=trace_id), (duck_sql or strata_sql).format(trace_id=trace_id)))
    strata = []
    for name, q, _ in questions:
        times, rows = [], 0
        for i in range(repeat + 1):
            t = time.perf_counter()
            rows = len(sql(cluster.query, q, timeout=300))
            if i:
                times.append((time.perf_counter() - t) * 1000)
        times.sort()
        strata.append({"median_ms": times[len(times) // 2], "rows": rows})
    spec = {
        "threads": os.cpu_count(),
        "repeat": repeat,
        "tables": {TABLES[s]: os.path.join(signal_dir(cluster.storage, s), "**", "*.parquet")
                   for s in ("traces", "logs") if parquet_bytes(signal_dir(cluster.storage, s))},
        "questions": [d for _, _, d in questions],
    }
    out = subprocess.run([duckdb_python(), "-c", DUCKDB_SIDE], input=json.dumps(spec), capture_output=True,
                         text=True, timeout=1800)
    if out.returncode != 0:
        print(f"DuckDB failed: {out.stderr[-2000:]}", file=sys.stderr)
        return []
    duck = json.loads(out.stdout)
    return [{"question": name, "strata_ms": s["median_ms"], "duckdb_ms": d["median_ms"],
             "ratio": s["median_ms"] / d["median_ms"] if d["median_ms"] else None,
             "strata_rows": s["rows"], "duckdb_rows": d["rows"]}
            for (name, _, _), s, d in zip(questions, strata, duck)]


def machine():
    """The machine a result was measured on, for its report."""
    return (f"{platform.machine()}, {os.cpu_count()} cores, "
            f"{os.sysconf('SC_PAGE_SIZE') * os.sysconf('SC_PHYS_PAGES') / 2**30:.0f} GiB, "
            f"{platform.system()} {platform.release()}")


def write_outputs(result, table, args):
    """Writes the result as JSON (`--out`), prints its table, and writes it to `--markdown`."""
    if args.out:
        os.makedirs(os.path.dirname(os.path.abspath(args.out)), exist_ok=True)
        json.dump(result, open(args.out, "w"), indent=2)
    print(table)
    if args.markdown:
        open(args.markdown, "w").write(table)


def markdown(result):
    lines = [f"Case `{result['case']}`: {result['description']}", "",
             f"Machine: {result['machine']}. Date: {result['date']}. Mode: {result['mode']}.", "",
             "```sh", result["command"], "```", "",
             "| phase | figure | value |", "|---|---|---|"]
    if result.get("agent_idle_rss_bytes") is not None:
        lines.append(f"| start | agent RSS when idle | {result['agent_idle_rss_bytes'] / 2**20:.1f} MiB |")
    for p in result["phases"]:
        load, unit, name = p["load"], p["unit"], p["name"]
        row = lambda k, v: lines.append(f"| {name} | {k} | {v} |")  # noqa: E731
        row(f"{unit}s acked / sent", f"{load['acked']:,} / {load['sent']:,} (refused {load['refused']:,}, "
                                     f"failed {load['failed']:,}) over {load['protocol']}")
        row(f"{unit}s/s end-to-end", f"{load['per_second']:,.0f}")
        if p.get("tail"):
            row("MB/s of lines, file to collector ack", f"{load['mb_per_second']:.1f}")
            row("MB of lines per agent CPU second", f"{p['agent_mb_per_cpu_second']:.1f}")
            if result["mode"] != "standalone":
                row("MB of lines per CPU second, agent + collector", f"{p['path_mb_per_cpu_second']:.1f}")
        else:
            row("ack latency p50 / p99", f"{load['ack_latency_ms_p50']:.1f} ms / {load['ack_latency_ms_p99']:.1f} ms")
        who = "agent + collector + query (one process)" if result["mode"] == "standalone" else "agent"
        row(f"{who} CPU µs per {unit}", f"{p['agent_cpu_us_per_item']:.2f}")
        if result["mode"] != "standalone":
            row(f"collector CPU µs per {unit}", f"{p['collector_cpu_us_per_item']:.2f}")
            row(f"whole path CPU µs per {unit}", f"{p['agent_cpu_us_per_item'] + p['collector_cpu_us_per_item']:.2f}")
        row(f"Parquet bytes per {unit}", f"{p['bytes_per_item']:.2f}")
        if p.get("compression_ratio"):
            row("raw text / Parquet bytes", f"{p['compression_ratio']:.1f}x ({p['raw_bytes']:,} raw bytes)")
        row("peak RSS", ", ".join(f"{k} {v / 2**20:.0f} MiB" for k, v in p["peak_rss_bytes"].items()))
        row("last ack to all queryable", f"{p['seconds_until_queryable']:.1f} s"
                                         + ("" if p["all_visible"] else " (NOT all visible)"))
        if p.get("lookup"):
            lk = p["lookup"]
            row(f"trace by id over {lk['stored_spans']:,} spans",
                f"p50 {lk['p50_ms']:.1f} ms, p99 {lk['p99_ms']:.1f} ms ({lk['found']}/{lk['lookups']} found)")
    if result.get("duckdb"):
        lines += ["", "| question | Strata ms | DuckDB ms | Strata / DuckDB | rows (Strata, DuckDB) |",
                  "|---|---|---|---|---|"]
        for q in result["duckdb"]:
            lines.append(f"| {q['question']} | {q['strata_ms']:.1f} | {q['duckdb_ms']:.1f} | {q['ratio']:.2f} "
                         f"| {q['strata_rows']}, {q['duckdb_rows']} |")
    for signal, sizes in (result.get("column_bytes_per_row") or {}).items():
        top = ", ".join(f"{c} {b:.2f}" for c, b in sizes["columns"][:8])
        lines += ["", f"Largest {signal} columns, Parquet bytes per row: {top}."]
    return "\n".join(lines) + "\n"


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("case")
    ap.add_argument("--out", help="write the result as JSON here")
    ap.add_argument("--markdown", help="also write the markdown table here")
    ap.add_argument("--profile", metavar="DIR", help="perf-record each phase into DIR")
    ap.add_argument("--duckdb", action="store_true", help="compare SQL answers with DuckDB")
    ap.add_argument("--keep", action="store_true", help="keep the working directory")
    ap.add_argument("--strata", help="the strata binary to run (default: target/release/strata)")
    args = ap.parse_args()
    case = json.load(open(args.case))
    phases = case.get("phases") or [{"name": "spans", "signal": "traces", "loadgen": case["loadgen"],
                                     "lookups": case.get("lookups")}]
    work = tempfile.mkdtemp(prefix="strata-bench-")
    cluster = None
    try:
        cluster = Cluster(case, work, args.strata)
        time.sleep(case.get("idle_seconds", 3))
        idle = cluster.stats()[cluster.agent_side()[0]]["rss_bytes"]
        ids_file = os.path.join(work, "trace-ids")
        results = [r for r in (run_phase(cluster, phase, args, ids_file) for phase in phases) if r]
        command = "python3 benches/run_case.py " + os.path.relpath(os.path.abspath(args.case), ROOT)
        command += "".join(f" --{f}" for f in ("duckdb",) if getattr(args, f))
        result = {
            "case": os.path.basename(args.case),
            "description": case.get("description", ""),
            "date": time.strftime("%Y-%m-%d"),
            "machine": machine(),
            "mode": cluster.mode,
            "command": command,
            "env": case.get("env", {}),
            "agent_idle_rss_bytes": idle,
            "phases": results,
        }
        if args.duckdb:
            ids = [l for l in open(ids_file).read().split() if l] if os.path.exists(ids_file) else []
            result["duckdb"] = compare_duckdb(cluster, ids[0] if ids else "0" * 32)
            result["column_bytes_per_row"] = column_sizes(cluster)
        write_outputs(result, markdown(result), args)
    finally:
        if cluster:
            cluster.stop()
        if args.keep:
            print(f"kept {work}", file=sys.stderr)
        else:
            shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    main()
