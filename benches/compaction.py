#!/usr/bin/env python3
"""Storage before and after one compaction pass.

  cargo build --release -p strata -p strata-bench && python3 benches/compaction.py

Writes, with `strata-small-files`, the files a collector at the default flush would have
written over several hours (one span and one metric file per 10 s, a log file per 40 s), and
the same rows as one file per partition (the baseline). Then, before and after one
`strata compact --once` pass over the small files, and on the baseline:
  - files, bytes per span / log record / metric point;
  - the five SQL questions of run_case.py (median of 5 after a warm-up), through `strata query`;
  - trace by id p50 / p99 (strata-loadgen --lookup-ids) and the first lookup of a freshly
    started query service;
and of the pass itself: wall and CPU seconds, input MB/s and rows/s per CPU-second, peak RSS.
Every process is stopped at the end; all files live in a temporary directory.
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

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from run_case import BIN, QUESTIONS, machine, parquet_bytes, signal_dir, sql  # noqa: E402

UNITS = {"traces": "spans", "logs": "log_records", "metrics": "samples"}


def live_files(storage, signal):
    n = 0
    for _, dirs, files in os.walk(signal_dir(storage, signal)):
        dirs[:] = [d for d in dirs if d != "_commits"]
        n += sum(1 for f in files if f.endswith(".parquet"))
    return n


class Query:
    """`strata query` over a storage, on a port it picks itself."""

    def __init__(self, storage, work, name):
        self.log = open(os.path.join(work, f"{name}.log"), "w+")
        self.proc = subprocess.Popen(
            [os.path.join(BIN, "strata"), "query", "--storage", storage, "--http", "127.0.0.1:0",
             "--data-dir", os.path.join(work, f"{name}-state")],
            stdout=self.log, stderr=subprocess.STDOUT,
            env={**os.environ, "RUST_LOG": "info", "NO_COLOR": "1"})
        deadline = time.time() + 60
        self.url = None
        while self.url is None:
            if time.time() > deadline or self.proc.poll() is not None:
                self.stop()
                sys.exit(f"query service did not start: {open(self.log.name).read()[-2000:]}")
            m = re.search(r"http=(127\.0\.0\.1:\d+)", re.sub(r"\x1b\[[0-9;]*m", "", open(self.log.name).read()))
            if m:
                self.url = f"http://{m.group(1)}"
            else:
                time.sleep(0.05)
        while True:
            try:
                with urllib.request.urlopen(self.url + "/ready", timeout=2) as r:
                    if r.status == 200:
                        break
            except OSError:
                time.sleep(0.05)

    def stop(self):
        if self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(timeout=20)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()


def questions(url, trace_id, repeat=5):
    out = {}
    for name, query, _ in QUESTIONS:
        q = query.replace("{trace_id}", trace_id)
        sql(url, q)  # warm-up
        times = []
        for _ in range(repeat):
            t = time.perf_counter()
            sql(url, q)
            times.append((time.perf_counter() - t) * 1000)
        out[name] = statistics.median(times)
    return out


def lookups(url, ids_file, n):
    out = subprocess.run([os.path.join(BIN, "strata-loadgen"), "--lookup-ids", ids_file,
                          "--query", url, "--lookups", str(n)],
                         capture_output=True, text=True, timeout=600, check=True)
    return json.loads(out.stdout)


def first_lookup(storage, work, name, trace_id):
    q = Query(storage, work, name)
    try:
        t = time.perf_counter()
        with urllib.request.urlopen(f"{q.url}/api/traces/{trace_id}", timeout=60) as r:
            r.read()
        return (time.perf_counter() - t) * 1000
    finally:
        q.stop()


def measure(storage, work, name, written, ids_file, ids, n_lookups):
    result = {"files": {s: live_files(storage, s) for s in UNITS},
              "bytes_per_item": {}}
    for s, unit in UNITS.items():
        result["bytes_per_item"][s] = parquet_bytes(signal_dir(storage, s)) / max(written[unit], 1)
    result["first_lookup_ms"] = first_lookup(storage, work, f"{name}-first", ids[-1])
    q = Query(storage, work, name)
    try:
        result["sql_ms"] = questions(q.url, ids[0])
        result["lookup"] = lookups(q.url, ids_file, n_lookups)
    finally:
        q.stop()
    return result


def compact(storage):
    """One `strata compact --once` pass over `storage`: its report, wall and CPU seconds, peak RSS,
    input MB/s and rows/s per CPU-second."""
    out = subprocess.run(["/usr/bin/time", "-f", "%e %U %S %M", os.path.join(BIN, "strata"), "compact",
                          "--once", "--json", "--storage", storage, "--grace", "0s",
                          "--delete-delay", "0s"],
                         capture_output=True, text=True, timeout=3600)
    if out.returncode != 0:
        sys.exit(f"compact failed: {out.stderr[-3000:]}")
    report = json.loads(out.stdout.strip().splitlines()[-1])
    wall, user, sys_, rss_kib = out.stderr.strip().splitlines()[-1].split()
    cpu = float(user) + float(sys_)
    report.update({"wall_seconds": float(wall), "cpu_seconds": cpu, "peak_rss_mib": int(rss_kib) / 1024,
                   "input_mb_per_cpu_second": report["bytes_in"] / 1e6 / cpu,
                   "rows_per_cpu_second": report["rows_in"] / cpu})
    return report


def table(r):
    b, a, o = r["before"], r["after"], r["one_file"]
    lines = [f"Machine: {r['machine']}. Written: {r['written']['files']} files over {r['written']['hours']} h: "
             f"{r['written']['spans']:,} spans, {r['written']['samples']:,} samples, "
             f"{r['written']['log_records']:,} log records.", "",
             "| | small files | after compaction | one file per partition | after / one file |",
             "|---|---|---|---|---|"]
    for s in UNITS:
        lines.append(f"| {s} files | {b['files'][s]} | {a['files'][s]} | {o['files'][s]} | |")
    for s in UNITS:
        lines.append(f"| bytes per {UNITS[s][:-1].replace('_', ' ')} | {b['bytes_per_item'][s]:.2f} | "
                     f"{a['bytes_per_item'][s]:.2f} | {o['bytes_per_item'][s]:.2f} | "
                     f"{a['bytes_per_item'][s] / o['bytes_per_item'][s]:.2f} |")
    for q in b["sql_ms"]:
        lines.append(f"| SQL {q} ms | {b['sql_ms'][q]:.1f} | {a['sql_ms'][q]:.1f} | {o['sql_ms'][q]:.1f} | "
                     f"{a['sql_ms'][q] / o['sql_ms'][q]:.2f} |")
    for k in ["p50_ms", "p99_ms"]:
        lines.append(f"| trace by id {k[:3]} ms | {b['lookup'][k]:.1f} | {a['lookup'][k]:.1f} | "
                     f"{o['lookup'][k]:.1f} | {a['lookup'][k] / o['lookup'][k]:.2f} |")
    lines.append(f"| first lookup after start ms | {b['first_lookup_ms']:.1f} | {a['first_lookup_ms']:.1f} | "
                 f"{o['first_lookup_ms']:.1f} | {a['first_lookup_ms'] / o['first_lookup_ms']:.2f} |")
    c = r["compaction"]
    lines += ["", f"Compaction pass: {c['partitions']} partitions, {c['files_in']} files "
              f"({c['bytes_in'] / 1e6:.1f} MB) -> {c['files_out']} files ({c['bytes_out'] / 1e6:.1f} MB), "
              f"{c['rows_in']:,} rows, {c['duplicates']} duplicates; {c['wall_seconds']:.1f} s wall, "
              f"{c['cpu_seconds']:.1f} s CPU: {c['input_mb_per_cpu_second']:.1f} MB/s and "
              f"{c['rows_per_cpu_second']:,.0f} rows/s of input per CPU-second; peak RSS "
              f"{c['peak_rss_mib']:.0f} MiB."]
    return "\n".join(lines)


def main():
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--hours", type=int, default=6)
    p.add_argument("--files-per-hour", type=int, default=360)
    p.add_argument("--series", type=int, default=2000)
    p.add_argument("--lookups", type=int, default=200)
    p.add_argument("--out", help="write the result as JSON here")
    args = p.parse_args()
    work = tempfile.mkdtemp(prefix="strata-compaction-")
    try:
        small, one = os.path.join(work, "small"), os.path.join(work, "one")
        t = time.time()
        out = subprocess.run([os.path.join(BIN, "strata-small-files"), "--storage", small,
                              "--one-file-per-partition", one, "--hours", str(args.hours),
                              "--files-per-hour", str(args.files_per_hour), "--series", str(args.series)],
                             capture_output=True, text=True, timeout=3600, check=True)
        written = json.loads(out.stdout)
        print(f"wrote {written['files']} files in {time.time() - t:.0f} s", file=sys.stderr)
        ids = written.pop("trace_ids")
        ids_file = os.path.join(work, "ids.txt")
        open(ids_file, "w").write("\n".join(ids) + "\n")
        result = {"machine": machine(), "written": written}
        result["before"] = measure(small, work, "before", written, ids_file, ids, args.lookups)
        result["one_file"] = measure(one, work, "one", written, ids_file, ids, args.lookups)
        result["compaction"] = compact(small)
        result["after"] = measure(small, work, "after", written, ids_file, ids, args.lookups)
        if args.out:
            json.dump(result, open(args.out, "w"), indent=2)
        print(table(result))
    finally:
        shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    main()
