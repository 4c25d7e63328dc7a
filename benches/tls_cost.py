#!/usr/bin/env python3
"""What TLS and auth cost per span and per metric point: one `strata standalone` in plain text
and one with `--tls-cert --tls-key --auth-file`, fed the same load over OTLP/gRPC by
strata-loadgen (over TLS with a bearer token for the second), in alternating rounds of the
same run so that both see the same machine.

For each round and mode the process's CPU seconds (user + system, from /proc) are read before
the load and once every item is queryable, and divided by the items acknowledged. The TLS
standalone also runs its own agent-to-collector hop over TLS (a pinned certificate), so the
figure is the whole pipeline's cost: client handshake and decryption at the agent, encryption
and decryption on the Flight hop, the auth check per request.

Certificates come from the openssl command line (a CA and a server certificate it signs).

With `--system-alloc BIN`, a third mode runs BIN in plain text: a `strata` built without the
allocator that counts each query's memory (`--no-default-features`), so that the table also
says what that counting costs on ingest.

    cargo build --release -p strata -p strata-bench
    python3 benches/tls_cost.py --spans 400000 --points 1000000 --rounds 3

    cargo build --release -p strata -p strata-bench --no-default-features
    cp target/release/strata /tmp/strata-sysalloc
    cargo build --release -p strata -p strata-bench
    python3 benches/tls_cost.py --system-alloc /tmp/strata-sysalloc
"""

import argparse
import hashlib
import json
import os
import shutil
import ssl
import subprocess
import sys
import tempfile
import time
import urllib.request

sys.path.insert(0, os.path.dirname(__file__))
from run_case import free_port, proc_stats  # noqa: E402

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
BIN = os.path.join(ROOT, "target", "release")
TOKEN = "bench-token"


def make_pki(d):
    def run(*argv):
        subprocess.run(argv, check=True, capture_output=True, cwd=d)

    run("openssl", "req", "-x509", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:P-256", "-nodes",
        "-keyout", "ca-key.pem", "-out", "ca.pem", "-days", "2", "-subj", "/CN=bench-ca")
    run("openssl", "req", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:P-256", "-nodes",
        "-keyout", "key.pem", "-out", "server.csr", "-subj", "/CN=localhost")
    with open(os.path.join(d, "ext.cnf"), "w") as f:
        f.write("subjectAltName=IP:127.0.0.1,DNS:localhost\nextendedKeyUsage=serverAuth\n")
    run("openssl", "x509", "-req", "-in", "server.csr", "-CA", "ca.pem", "-CAkey", "ca-key.pem",
        "-CAcreateserial", "-out", "cert.pem", "-days", "2", "-extfile", "ext.cnf")
    digest = hashlib.sha256(TOKEN.encode()).hexdigest()
    with open(os.path.join(d, "auth.toml"), "w") as f:
        f.write(f'[[credential]]\ntoken = "sha256:{digest}"\ntenants = ["*"]\nscopes = ["write", "read"]\n')
    return {k: os.path.join(d, f) for k, f in
            [("ca", "ca.pem"), ("cert", "cert.pem"), ("key", "key.pem"), ("auth", "auth.toml")]}


class Standalone:
    def __init__(self, work, tls, pki, binary):
        self.tls = tls
        self.grpc, self.http, self.qport = free_port(), free_port(), free_port()
        scheme = "https" if tls else "http"
        self.query = f"{scheme}://127.0.0.1:{self.qport}"
        argv = [binary, "standalone", "--data-dir", work,
                "--otlp-grpc", f"127.0.0.1:{self.grpc}", "--otlp-http", f"127.0.0.1:{self.http}",
                "--http", f"127.0.0.1:{self.qport}", "--flight", f"127.0.0.1:{free_port()}",
                "--collector-http", f"127.0.0.1:{free_port()}"]
        if tls:
            argv += ["--tls-cert", pki["cert"], "--tls-key", pki["key"], "--auth-file", pki["auth"]]
        self.ctx = ssl.create_default_context(cafile=pki["ca"]) if tls else None
        self.log = open(os.path.join(work + ".log"), "w")
        env = dict(os.environ, RUST_LOG="warn", STRATA_COLLECTOR__FLUSH_MAX_AGE_MS="1000")
        self.proc = subprocess.Popen(argv, stdout=self.log, stderr=self.log, env=env)
        deadline = time.time() + 60
        while time.time() < deadline:
            try:
                with urllib.request.urlopen(self.query + "/ready", timeout=2, context=self.ctx) as r:
                    if r.status == 200:
                        return
            except OSError:
                if self.proc.poll() is not None:
                    sys.exit(f"standalone exited, see {self.log.name}")
            time.sleep(0.1)
        sys.exit("standalone not ready")

    def count(self, table):
        req = urllib.request.Request(self.query + "/api/v1/sql",
                                     data=json.dumps({"query": f"SELECT count(*) FROM {table}"}).encode(),
                                     headers={"Content-Type": "application/json",
                                              "Authorization": f"Bearer {TOKEN}"})
        with urllib.request.urlopen(req, timeout=60, context=self.ctx) as r:
            return json.load(r)["rows"][0][0]

    def load(self, signal, count, pki):
        """Sends `count` items; returns (acked, CPU seconds until all are queryable)."""
        table = {"traces": "spans", "metrics": "metrics"}[signal]
        base = self.count(table)
        cpu0 = proc_stats(self.proc.pid)["cpu_seconds"]
        cmd = [os.path.join(BIN, "strata-loadgen"), "--signal", signal, "--count", str(count),
               "--endpoint", f"http://127.0.0.1:{self.grpc}", "--concurrency", "4"]
        if signal == "metrics":
            cmd += ["--series", "2000", "--per-request", "1000"]
        if self.tls:
            cmd += ["--ca", pki["ca"], "--token", TOKEN]
        report = json.loads(subprocess.run(cmd, check=True, capture_output=True, text=True).stdout)
        acked = report["acked"]
        deadline = time.time() + 300
        while self.count(table) - base < acked:
            if time.time() > deadline:
                sys.exit(f"{signal}: not all {acked} items became queryable")
            time.sleep(0.5)
        return acked, proc_stats(self.proc.pid)["cpu_seconds"] - cpu0

    def stop(self):
        self.proc.terminate()
        try:
            self.proc.wait(timeout=60)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait()
        self.log.close()


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--spans", type=int, default=400_000)
    ap.add_argument("--points", type=int, default=1_000_000)
    ap.add_argument("--rounds", type=int, default=3)
    ap.add_argument("--system-alloc", metavar="BIN",
                    help="also run this strata binary (built --no-default-features) in plain text")
    ap.add_argument("--out", default=os.path.join(ROOT, "target", "bench", "tls_cost.json"))
    args = ap.parse_args()
    for tool in ("openssl",):
        if shutil.which(tool) is None:
            sys.exit(f"{tool} is needed")
    work = tempfile.mkdtemp(prefix="strata-tls-")
    pki = make_pki(work)
    rows = []
    try:
        strata = os.path.join(BIN, "strata")
        modes = [("plain", False, strata), ("tls+auth", True, strata)]
        if args.system_alloc:
            modes.append(("plain, system allocator", False, args.system_alloc))
        for r in range(args.rounds):
            for mode, tls, binary in modes:
                s = Standalone(os.path.join(work, f"r{r}-{len(rows)}"), tls, pki, binary)
                try:
                    spans, spans_cpu = s.load("traces", args.spans, pki)
                    points, points_cpu = s.load("metrics", args.points, pki)
                finally:
                    s.stop()
                row = {"round": r, "mode": mode,
                       "spans": spans, "us_per_span": spans_cpu / spans * 1e6,
                       "points": points, "us_per_point": points_cpu / points * 1e6}
                rows.append(row)
                print(json.dumps(row), flush=True)
    finally:
        shutil.rmtree(work, ignore_errors=True)

    def median(mode, key):
        v = sorted(x[key] for x in rows if x["mode"] == mode)
        return v[len(v) // 2]

    names = [m for m, _, _ in modes]
    summary = {k: {m: median(m, k) for m in names} for k in ("us_per_span", "us_per_point")}
    os.makedirs(os.path.dirname(args.out), exist_ok=True)
    with open(args.out, "w") as f:
        json.dump({"rows": rows, "median": summary}, f, indent=2)
    head = ["plain", "TLS + auth", "TLS + auth / plain"]
    if args.system_alloc:
        head += ["plain, system allocator", "plain / system allocator"]
    print("| figure (median of rounds) | " + " | ".join(head) + " |")
    print("|---" * (len(head) + 1) + "|")
    for k, label in (("us_per_span", "CPU µs per span"), ("us_per_point", "CPU µs per metric point")):
        m = summary[k]
        cells = [f"{m['plain']:.2f}", f"{m['tls+auth']:.2f}", f"{m['tls+auth'] / m['plain']:.2f}x"]
        if args.system_alloc:
            sa = m["plain, system allocator"]
            cells += [f"{sa:.2f}", f"{m['plain'] / sa:.2f}x"]
        print(f"| {label} | " + " | ".join(cells) + " |")


if __name__ == "__main__":
    main()
