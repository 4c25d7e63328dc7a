#!/usr/bin/env python3
"""Strata next to Prometheus on the same remote-written metrics: ingest, bytes per sample and
query_range latency.

Starts `strata standalone` (release build) and a Prometheus server (`--prometheus`, default
`prometheus` on PATH), both on loopback in a temporary directory, and writes the same counters
into each with `strata-remote-write` (one after the other, so each has the machine to itself):
`m1k` with 1,000 series and `m10k` with 10,000, one sample a minute over `--hours` hours.

Measured, for each system:
- ingest: samples per CPU-second of the server process (its utime + stime from the start of
  the write until every sample is queryable and the process is idle again, so Strata's
  flushes and Prometheus's head compactions count) and samples per wall second of the write;
- bytes per sample: Strata's Parquet files as flushed, and again after one
  `strata compact --once` pass (closed hours merged, their inputs deleted); Prometheus's TSDB
  as a snapshot (`/api/v1/admin/tsdb/snapshot`, head included), and its whole data directory
  with WAL;
- query_range latency (median of `--repeat` runs after one warm-up) of each query over a 1-hour
  and a `--hours`-hour window ending at the last sample, for 1k and 10k series; the answers of
  both systems are compared (series count and values within 1e-6 relative) and a difference is
  reported.

    cargo build --release -p strata -p strata-bench
    python3 benches/prometheus_vs.py --out target/bench/prometheus-vs.json

Everything is bounded: every wait has a deadline, the writer stops by itself.
"""

import argparse
import json
import math
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import threading
import time
import urllib.parse
import urllib.request

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from compaction import compact  # noqa: E402
from run_case import (BIN, free_port, machine, parquet_bytes, proc_stats, sql,  # noqa: E402
                      start_profiles, stop_profiles, wait_ready, write_outputs)

METRICS = {"m1k": 1000, "m10k": 10000}
QUERIES = [
    ("sum by (job) (rate({m}[5m]))", "rate, summed by job (10 series out)"),
    ("max by (instance) ({m})", "max by instance (100 series out)"),
]


def dir_bytes(path):
    total = 0
    for dirpath, _, files in os.walk(path):
        for f in files:
            total += os.path.getsize(os.path.join(dirpath, f))
    return total


def wait_idle(pid, quiet=3, seconds=300):
    """Waits until the process used under 5% of a core for `quiet` seconds in a row (a
    Prometheus compacting its head, a collector flushing), at most `seconds`."""
    deadline = time.time() + seconds
    calm, last = 0, proc_stats(pid)["cpu_seconds"]
    while time.time() < deadline and calm < quiet:
        time.sleep(1)
        now = proc_stats(pid)["cpu_seconds"]
        calm = calm + 1 if now - last < 0.05 else 0
        last = now
    return calm >= quiet


class MemorySampler(threading.Thread):
    """Samples a process's RSS and the collector's buffered Arrow bytes every half second
    until stopped, keeping the peaks: what held the memory at the peak."""

    def __init__(self, pid, metrics_url):
        super().__init__(daemon=True)
        self.pid, self.metrics_url = pid, metrics_url
        self.stop_event = threading.Event()
        self.peak_rss, self.peak_buffered, self.buffered_at_peak_rss = 0, 0, 0
        self.timeline = []  # (seconds since start, RSS bytes, buffered bytes)

    def run(self):
        t0 = deadline = time.time()
        deadline += 3600
        while not self.stop_event.wait(0.5) and time.time() < deadline:
            buffered = 0
            try:
                with urllib.request.urlopen(self.metrics_url, timeout=5) as r:
                    for line in r.read().decode().splitlines():
                        if line.startswith("strata_collector_buffered_bytes "):
                            buffered = float(line.split()[1])
            except OSError:
                pass
            try:
                rss = int(open(f"/proc/{self.pid}/statm").read().split()[1]) * os.sysconf("SC_PAGE_SIZE")
            except OSError:
                return
            self.timeline.append((round(time.time() - t0, 1), rss, buffered))
            self.peak_buffered = max(self.peak_buffered, buffered)
            if rss > self.peak_rss:
                self.peak_rss, self.buffered_at_peak_rss = rss, buffered

    def stop(self):
        self.stop_event.set()
        self.join(timeout=10)


def start(name, argv, work, env=None):
    log = open(os.path.join(work, f"{name}.log"), "w")
    return subprocess.Popen(argv, stdout=log, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL,
                            env=dict(os.environ, RUST_LOG="warn", **(env or {})))


def write(url, end_ms, hours, work):
    argv = [os.path.join(BIN, "strata-remote-write"), "--url", url, "--hours", str(hours),
            "--end-ms", str(end_ms), "--max-seconds", "1800"]
    for m, n in METRICS.items():
        argv += ["--metric", f"{m}:{n}"]
    out = subprocess.run(argv, capture_output=True, text=True, timeout=1900,
                         env=dict(os.environ, RUST_BACKTRACE="0"))
    if out.returncode != 0:
        sys.exit(f"remote write to {url} failed: {out.stderr.strip()}")
    return json.loads(out.stdout)


def query_range(base, query, start_s, end_s, step_s, timeout=600):
    params = urllib.parse.urlencode({"query": query, "start": start_s, "end": end_s, "step": step_s})
    t = time.perf_counter()
    with urllib.request.urlopen(f"{base}/api/v1/query_range?{params}", timeout=timeout) as r:
        body = json.load(r)
    return time.perf_counter() - t, body


def time_query(base, q, start_s, end_s, step, repeat):
    """Milliseconds of `repeat` runs of a query_range after one warm-up."""
    times = []
    for i in range(repeat + 1):
        dt, body = query_range(base, q, start_s, end_s, step)
        if body.get("status") != "success":
            sys.exit(f"{q}: {body}")
        if i > 0:
            times.append(dt * 1000)
    return times


def same_answer(a, b):
    """None when the two query_range answers agree, else what differs."""
    def index(body):
        return {json.dumps(s["metric"], sort_keys=True): s["values"] for s in body["data"]["result"]}
    ia, ib = index(a), index(b)
    if ia.keys() != ib.keys():
        return f"series differ: {len(ia)} vs {len(ib)}"
    for k, va in ia.items():
        vb = ib[k]
        if [p[0] for p in va] != [p[0] for p in vb]:
            return f"{k}: timestamps differ"
        for (t, x), (_, y) in zip(va, vb):
            x, y = float(x), float(y)
            if not (x == y or (math.isnan(x) and math.isnan(y))
                    or abs(x - y) <= 1e-6 * max(abs(x), abs(y))):
                return f"{k} at {t}: {x} vs {y}"
    return None


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--prometheus", default=shutil.which("prometheus") or "/usr/bin/prometheus")
    ap.add_argument("--hours", type=float, default=24.0)
    ap.add_argument("--repeat", type=int, default=5)
    ap.add_argument("--out", help="write the result as JSON here")
    ap.add_argument("--markdown", help="also write the markdown table here")
    ap.add_argument("--keep", action="store_true", help="keep the working directory")
    ap.add_argument("--ingest-only", action="store_true",
                    help="measure ingest, bytes and memory only (no query_range, no compaction pass)")
    ap.add_argument("--profile", metavar="DIR", help="perf-record Strata during the write into DIR")
    ap.add_argument("--strata", default=os.path.join(BIN, "strata"),
                    help="the strata binary (default: the release build), to compare two builds")
    args = ap.parse_args()
    if not os.path.exists(args.prometheus):
        sys.exit(f"no prometheus binary at {args.prometheus} (apt-get install prometheus)")
    work = tempfile.mkdtemp(prefix="strata-promvs-")
    procs = {}
    try:
        now = int(time.time() * 1000)
        # Queries end on a whole minute; samples lie 7.5 s before whole minutes, so no step
        # of a query meets a sample and Prometheus 2's closed windows ask what Strata's
        # left-open ones (Prometheus 3) do.
        query_end_ms = now - now % 60_000
        end_ms = query_end_ms - 7_500
        samples_expected = sum(METRICS.values()) * int(args.hours * 60)

        # Strata.
        storage = os.path.join(work, "storage")
        http, qport, cport = free_port(), free_port(), free_port()
        strata_url = f"http://127.0.0.1:{qport}"
        procs["strata"] = start("strata", [
            args.strata, "standalone", "--data-dir", os.path.join(work, "standalone"),
            "--storage", storage, "--otlp-grpc", f"127.0.0.1:{free_port()}",
            "--otlp-http", f"127.0.0.1:{http}", "--http", f"127.0.0.1:{qport}",
            "--flight", f"127.0.0.1:{free_port()}", "--collector-http", f"127.0.0.1:{cport}"], work,
            # The compaction pass below is the only one.
            env={"STRATA_COMPACTOR__INTERVAL": "30d"})
        wait_ready(strata_url + "/ready", procs["strata"])
        result = {"samples": samples_expected, "hours": args.hours, "series": METRICS, "systems": {}}

        cpu0 = proc_stats(procs["strata"].pid)["cpu_seconds"]
        recorders = start_profiles({"strata": procs["strata"]}, args.profile, "ingest") if args.profile else []
        sampler = MemorySampler(procs["strata"].pid, f"http://127.0.0.1:{cport}/metrics")
        sampler.start()
        w = write(f"http://127.0.0.1:{http}/api/v1/write", end_ms, args.hours, work)
        deadline = time.time() + 600
        stored = 0
        while time.time() < deadline:
            stored = sql(strata_url, "SELECT count(*) AS n FROM metrics")[0][0]
            if stored >= w["samples"]:
                break
            time.sleep(0.5)
        if stored < w["samples"]:
            sys.exit(f"Strata stored {stored} of {w['samples']} samples within 600 s")
        # Background work the ingest caused (flushes) counts as ingest.
        wait_idle(procs["strata"].pid)
        sampler.stop()
        if recorders:
            stop_profiles(recorders, args.profile, "ingest")
        strata_cpu = proc_stats(procs["strata"].pid)["cpu_seconds"] - cpu0
        result["systems"]["strata"] = {
            "write_seconds": w["seconds"], "samples": w["samples"], "stored": stored,
            "retries": w["retries"],
            "cpu_seconds": strata_cpu, "samples_per_cpu_second": w["samples"] / strata_cpu,
            "samples_per_second": w["samples"] / w["seconds"],
            "bytes": parquet_bytes(storage), "peak_rss_bytes": proc_stats(procs["strata"].pid)["peak_rss_bytes"],
            "peak_collector_buffered_bytes": sampler.peak_buffered,
            "collector_buffered_bytes_at_peak_rss": sampler.buffered_at_peak_rss,
            "memory_timeline": sampler.timeline,
        }
        result["systems"]["strata"]["bytes_per_sample"] = result["systems"]["strata"]["bytes"] / w["samples"]
        # query_range on the files as flushed, then one compaction pass.
        end_s = query_end_ms // 1000
        windows = [("1h", 3600, 15), (f"{args.hours:g}h", int(args.hours * 3600), 120)]
        before = {}
        for m in ([] if args.ingest_only else METRICS):
            for template, _ in QUERIES:
                for wname, seconds, step in windows:
                    q = template.format(m=m)
                    before[(q, wname)] = statistics.median(
                        time_query(strata_url, q, end_s - seconds, end_s, step, args.repeat))
        if not args.ingest_only:
            result["systems"]["strata"]["compaction"] = compact(storage)
            time.sleep(2)  # the query service's snapshot of the live files renews
            result["systems"]["strata"]["bytes_compacted"] = parquet_bytes(storage)
            result["systems"]["strata"]["bytes_per_sample_compacted"] = parquet_bytes(storage) / w["samples"]

        # Prometheus.
        pdir = os.path.join(work, "prometheus")
        os.makedirs(pdir)
        config = os.path.join(pdir, "prometheus.yml")
        open(config, "w").write("global:\n  scrape_interval: 1h\nscrape_configs: []\n")
        pport = free_port()
        prom_url = f"http://127.0.0.1:{pport}"
        procs["prometheus"] = start("prometheus", [
            args.prometheus, f"--config.file={config}", f"--storage.tsdb.path={os.path.join(pdir, 'tsdb')}",
            f"--web.listen-address=127.0.0.1:{pport}", "--web.enable-remote-write-receiver",
            "--web.enable-admin-api", "--log.level=warn"], work)
        wait_ready(prom_url + "/-/ready", procs["prometheus"])
        cpu0 = proc_stats(procs["prometheus"].pid)["cpu_seconds"]
        w = write(f"{prom_url}/api/v1/write", end_ms, args.hours, work)
        # Head compaction into blocks, Prometheus's counterpart of writing Parquet, counts too.
        wait_idle(procs["prometheus"].pid)
        prom_cpu = proc_stats(procs["prometheus"].pid)["cpu_seconds"] - cpu0
        req = urllib.request.Request(prom_url + "/api/v1/admin/tsdb/snapshot", method="POST")
        with urllib.request.urlopen(req, timeout=600) as r:
            snap = json.load(r)["data"]["name"]
        snap_bytes = dir_bytes(os.path.join(pdir, "tsdb", "snapshots", snap))
        result["systems"]["prometheus"] = {
            "write_seconds": w["seconds"], "samples": w["samples"],
            "cpu_seconds": prom_cpu, "samples_per_cpu_second": w["samples"] / prom_cpu,
            "samples_per_second": w["samples"] / w["seconds"],
            "bytes": snap_bytes, "bytes_per_sample": snap_bytes / w["samples"],
            "data_dir_bytes_per_sample": (dir_bytes(os.path.join(pdir, "tsdb")) - snap_bytes) / w["samples"],
            "peak_rss_bytes": proc_stats(procs["prometheus"].pid)["peak_rss_bytes"],
        }

        # query_range.
        result["queries"] = []
        for m in ([] if args.ingest_only else METRICS):
            for template, what in QUERIES:
                q = template.format(m=m)
                for wname, seconds, step in windows:
                    row = {"query": q, "what": what, "series": METRICS[m], "window": wname, "step_s": step}
                    answers = {}
                    for system, base in (("strata", strata_url), ("prometheus", prom_url)):
                        times = []
                        for i in range(args.repeat + 1):
                            dt, body = query_range(base, q, end_s - seconds, end_s, step)
                            if body.get("status") != "success":
                                sys.exit(f"{system}: {q}: {body}")
                            if i > 0:
                                times.append(dt * 1000)
                        answers[system] = body
                        row[f"{system}_ms"] = statistics.median(times)
                    row["strata_before_compaction_ms"] = before[(q, wname)]
                    row["ratio"] = row["strata_ms"] / row["prometheus_ms"]
                    row["difference"] = same_answer(answers["prometheus"], answers["strata"])
                    result["queries"].append(row)
                    print(f"{q} {wname}: strata {row['strata_ms']:.1f} ms, prometheus "
                          f"{row['prometheus_ms']:.1f} ms" + (f" DIFF {row['difference']}" if row["difference"] else ""),
                          file=sys.stderr)
        result["date"] = time.strftime("%Y-%m-%d")
        result["machine"] = machine()
        result["prometheus_version"] = subprocess.run([args.prometheus, "--version"], capture_output=True,
                                                      text=True).stdout.split("\n")[0]
        result["command"] = ("python3 benches/prometheus_vs.py" + (f" --hours {args.hours:g}" if args.hours != 24 else "")
                             + (" --ingest-only" if args.ingest_only else ""))
        write_outputs(result, markdown(result), args)
    finally:
        for p in procs.values():
            p.terminate()
        for p in procs.values():
            try:
                p.wait(timeout=30)
            except subprocess.TimeoutExpired:
                p.kill()
        if args.keep:
            print(f"kept {work}", file=sys.stderr)
        else:
            shutil.rmtree(work, ignore_errors=True)


def markdown(r):
    s, p = r["systems"]["strata"], r["systems"]["prometheus"]
    c = s.get("compaction")
    lines = [f"Strata next to {r['prometheus_version']}, {r['date']}, {r['machine']}: `{r['command']}`",
             f"({r['samples']:,} samples: 11,000 counters, one sample a minute over {r['hours']:g} h).", "",
             "| | Strata | Prometheus | Strata / Prometheus |", "|---|---|---|---|"]

    def row(name, a, b, fmt):
        lines.append(f"| {name} | {fmt.format(a)} | {fmt.format(b)} | {a / b:.2f} |")
    row("ingest samples per CPU-second", s["samples_per_cpu_second"], p["samples_per_cpu_second"], "{:,.0f}")
    row("ingest samples per second (wall)", s["samples_per_second"], p["samples_per_second"], "{:,.0f}")
    row("bytes per sample on disk, as flushed", s["bytes_per_sample"], p["bytes_per_sample"], "{:.2f}")
    if c:
        row("bytes per sample on disk, after compaction", s["bytes_per_sample_compacted"], p["bytes_per_sample"],
            "{:.2f}")
    row("peak RSS MiB", s["peak_rss_bytes"] / 2**20, p["peak_rss_bytes"] / 2**20, "{:,.0f}")
    lines += ["", f"Strata's collector buffered at most {s['peak_collector_buffered_bytes'] / 2**20:,.0f} MiB of Arrow "
                  f"({s['collector_buffered_bytes_at_peak_rss'] / 2**20:,.0f} MiB at the highest RSS sampled)."]
    lines += ["", f"Prometheus's whole data directory (WAL, head chunks, blocks) held "
                  f"{p['data_dir_bytes_per_sample']:.2f} bytes per sample.", ""]
    if not c:
        return "\n".join(lines) + "\n"
    lines += [f"Compaction pass: {c['files_in']} files ({c['bytes_in'] / 1e6:.1f} MB) -> {c['files_out']} files "
              f"({c['bytes_out'] / 1e6:.1f} MB) in {c['wall_seconds']:.1f} s, {c['cpu_seconds']:.1f} CPU-s, "
              f"peak RSS {c['peak_rss_mib']:.0f} MiB; the open hour stays as flushed.", "",
              "| query_range | series | window (step) | Strata ms, as flushed | Strata ms, compacted "
              "| Prometheus ms | compacted / Prometheus | same answer |",
              "|---|---|---|---|---|---|---|---|"]
    for q in r["queries"]:
        lines.append(f"| `{q['query']}` | {q['series']:,} | {q['window']} ({q['step_s']} s) "
                     f"| {q['strata_before_compaction_ms']:.1f} | {q['strata_ms']:.1f} "
                     f"| {q['prometheus_ms']:.1f} | {q['ratio']:.2f} | {'yes' if not q['difference'] else q['difference']} |")
    return "\n".join(lines) + "\n"


if __name__ == "__main__":
    main()
