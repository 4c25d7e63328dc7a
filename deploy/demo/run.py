"""Starts the Strata demo on loopback and drives traffic through it.

The stack: one collector, the query service, a compactor, and three services (frontend -> checkout ->
payment, see service.py), each with its own agent as a sidecar would have. Then it sends
`--requests` orders through the frontend (every 10th fails in payment, another 10th is slow),
waits until the spans, logs and span-derived metrics are queryable, and prints one JSON line:

    {"ready": true, "query": "http://127.0.0.1:3200", "services": [...], ...}

It keeps the stack up for `--hold` seconds, or until its standard input (when a pipe) closes,
or Ctrl-C;
then it stops every process it started. Everything listens on 127.0.0.1 only.

    cargo build --release && python3 deploy/demo/run.py --query-port 3200 --hold 3600

needs the OpenTelemetry SDK: pip install opentelemetry-sdk opentelemetry-exporter-otlp-proto-http
"""

import argparse
import json
import os
import shutil
import signal
import socket
import stat
import subprocess
import sys
import tempfile
import threading
import time
import urllib.error
import urllib.parse
import urllib.request

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.dirname(os.path.dirname(HERE))
SERVICES = ["frontend", "checkout", "payment"]


def free_ports(n):
    """`n` distinct free loopback ports (all held until all are bound)."""
    socks = []
    try:
        for _ in range(n):
            s = socket.socket()
            s.bind(("127.0.0.1", 0))
            socks.append(s)
        return [s.getsockname()[1] for s in socks]
    finally:
        for s in socks:
            s.close()


def find_strata(given):
    if given:
        return given
    for build in ("release", "debug"):
        path = os.path.join(ROOT, "target", build, "strata")
        if os.path.exists(path):
            return path
    found = shutil.which("strata")
    if not found:
        sys.exit("no strata binary: run `cargo build --release` or pass --strata")
    return found


def http_get(url, timeout=5):
    with urllib.request.urlopen(url, timeout=timeout) as r:
        return r.status, r.read()


def wait_until(what, check, within):
    deadline = time.monotonic() + within
    last = None
    while time.monotonic() < deadline:
        try:
            if check():
                return
        except Exception as e:  # noqa: BLE001 - still starting: keep waiting, remember why
            last = e
        time.sleep(0.2)
    raise SystemExit(f"timed out waiting for {what} ({last})")


class Stack:
    def __init__(self, data_dir):
        self.data_dir = data_dir
        self.procs = []

    def start(self, name, argv, env=None):
        log = open(os.path.join(self.data_dir, f"{name}.log"), "wb")
        full_env = dict(os.environ, **(env or {}))
        proc = subprocess.Popen(argv, stdout=log, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL, env=full_env)
        self.procs.append((name, proc))
        return proc

    def stop(self):
        for _, proc in reversed(self.procs):
            if proc.poll() is None:
                proc.send_signal(signal.SIGTERM)
        deadline = time.monotonic() + 20
        for name, proc in reversed(self.procs):
            try:
                proc.wait(timeout=max(0.1, deadline - time.monotonic()))
            except subprocess.TimeoutExpired:
                print(f"{name} did not stop in time; killing it", file=sys.stderr)
                proc.kill()
                proc.wait()


def sql(query_url, statement):
    req = urllib.request.Request(
        f"{query_url}/api/v1/sql", data=json.dumps({"query": statement}).encode(),
        headers={"content-type": "application/json"}, method="POST")
    with urllib.request.urlopen(req, timeout=30) as r:
        return json.loads(r.read())["rows"]


def promql(query_url, expr):
    url = f"{query_url}/api/v1/query?" + urllib.parse.urlencode({"query": expr})
    return json.loads(http_get(url, timeout=30)[1])["data"]["result"]


def main():
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--strata", help="strata binary (default: target/release, then target/debug, then PATH)")
    p.add_argument("--data-dir", help="where data and logs go (default: a new temporary directory)")
    p.add_argument("--requests", type=int, default=200, help="orders to send (default 200)")
    p.add_argument("--hold", type=float, default=600, help="seconds to keep the stack up afterwards (default 600)")
    p.add_argument("--query-port", type=int, default=0, help="port of the query service (default: a free one)")
    args = p.parse_args()
    if not 1 <= args.requests <= 100_000:
        p.error("--requests must be 1..100000")
    strata = find_strata(args.strata)
    data_dir = args.data_dir or tempfile.mkdtemp(prefix="strata-demo-")
    os.makedirs(data_dir, exist_ok=True)
    storage = os.path.join(data_dir, "storage")
    ports = free_ports(3 + 3 * 3 + 1)
    flight, collector_http, query_port = ports[0], ports[1], args.query_port or ports[2]
    agent_grpc = ports[3:6]
    agent_http = ports[6:9]
    service_ports = ports[9:12]
    compactor_http = ports[12]
    env = {
        "RUST_LOG": "info",
        "STRATA_COLLECTOR__FLUSH_MAX_AGE_MS": "1000",
        "STRATA_COLLECTOR__SPAN_METRICS__INTERVAL_MS": "2000",
        "STRATA_AGENT__BATCH_MAX_AGE_MS": "200",
    }
    stack = Stack(data_dir)
    stopping = threading.Event()
    signal.signal(signal.SIGTERM, lambda *_: stopping.set())
    signal.signal(signal.SIGINT, lambda *_: stopping.set())
    try:
        stack.start("collector", [strata, "collector", "--id", "demo-collector",
                                  "--data-dir", os.path.join(data_dir, "collector"), "--storage", storage,
                                  "--flight", f"127.0.0.1:{flight}", "--http", f"127.0.0.1:{collector_http}"], env)
        query = f"http://127.0.0.1:{query_port}"
        stack.start("query", [strata, "query", "--data-dir", os.path.join(data_dir, "query"),
                              "--storage", storage, "--http", f"127.0.0.1:{query_port}"], env)
        # The compactor, a pass every 2 s; the first agent scrapes its metrics into Strata.
        stack.start("compactor", [strata, "compactor", "--data-dir", os.path.join(data_dir, "compactor"),
                                  "--storage", storage, "--http", f"127.0.0.1:{compactor_http}"],
                    {**env, "STRATA_COMPACTOR__INTERVAL": "2s"})
        scrape_config = os.path.join(data_dir, "agent-scrape.toml")
        with open(scrape_config, "w") as f:
            f.write(f'[[agent.scrape]]\njob = "strata-compactor"\ntargets = ["127.0.0.1:{compactor_http}"]\n'
                    'interval_ms = 2000\ntimeout_ms = 1000\n')
        agents = []
        for i, name in enumerate(SERVICES):
            config = ["--config", scrape_config] if i == 0 else []
            stack.start(f"agent-{name}", [strata, *config, "agent", "--id", f"agent-{name}",
                                          "--data-dir", os.path.join(data_dir, f"agent-{name}"),
                                          "--otlp-grpc", f"127.0.0.1:{agent_grpc[i]}",
                                          "--otlp-http", f"127.0.0.1:{agent_http[i]}",
                                          "--collectors", f"127.0.0.1:{flight}"], env)
            agents.append(f"http://127.0.0.1:{agent_http[i]}")
        for url in [f"http://127.0.0.1:{collector_http}/ready", f"{query}/ready",
                    f"http://127.0.0.1:{compactor_http}/ready", *(a + "/ready" for a in agents)]:
            wait_until(url, lambda url=url: http_get(url)[0] == 200, 60)
        urls = [f"http://127.0.0.1:{port}" for port in service_ports]
        for i, name in enumerate(SERVICES):
            argv = [sys.executable, os.path.join(HERE, "service.py"), name,
                    "--port", str(service_ports[i]), "--agent", agents[i]]
            if i + 1 < len(SERVICES):
                argv += ["--next", urls[i + 1]]
            stack.start(name, argv)
        for url in urls:
            wait_until(url, lambda url=url: http_get(url + "/health")[0] == 200, 60)

        # Traffic: two clients, orders 0..N-1; payment fails n % 10 == 3, is slow n % 10 == 7.
        statuses = {}

        def client(orders):
            for n in orders:
                if stopping.is_set():
                    return
                try:
                    statuses[n] = http_get(f"{urls[0]}/checkout?n={n}", timeout=30)[0]
                except urllib.error.HTTPError as e:
                    statuses[n] = e.code
        threads = [threading.Thread(target=client, args=(range(k, args.requests, 2),)) for k in range(2)]
        for t in threads:
            t.start()
        for t in threads:
            t.join(timeout=600)
        failed = sum(1 for s in statuses.values() if s != 200)

        # Spans: 6 per order (frontend 2, checkout 3, payment 1).
        want = 6 * args.requests
        wait_until(f"{want} spans stored",
                   lambda: sql(query, "SELECT count(*) FROM spans")[0][0] >= want, 120)
        wait_until("logs stored", lambda: sql(query, "SELECT count(*) FROM logs")[0][0] > 0, 120)
        wait_until("span metrics for all services",
                   lambda: len(promql(query, "sum by (service) (traces_spanmetrics_calls_total)")) == 3, 120)
        # Rates need two written points of each series.
        wait_until("span-metric rates for all services",
                   lambda: len(promql(query, "sum by (service) (rate(traces_spanmetrics_calls_total"
                                             "{span_kind=\"SPAN_KIND_SERVER\"}[1m]))")) == 3, 120)
        wait_until("compactor metrics",
                   lambda: len(promql(query, "rate(strata_compactor_passes_total[1m])")) == 1, 120)
        wait_until("service graph rates",
                   lambda: len(promql(query, "sum by (client, server) "
                                             "(rate(traces_service_graph_request_total[1m]))")) == 2, 120)
        print(json.dumps({
            "ready": True, "query": query, "data_dir": data_dir, "requests": args.requests,
            "failed": failed, "services": dict(zip(SERVICES, urls)), "agents": dict(zip(SERVICES, agents)),
        }), flush=True)

        # Hold until stdin closes, a signal, or --hold seconds.
        def watch_stdin():
            try:
                while sys.stdin.readline():
                    pass
            finally:
                stopping.set()
        if stat.S_ISFIFO(os.fstat(sys.stdin.fileno()).st_mode):
            threading.Thread(target=watch_stdin, daemon=True).start()
        stopping.wait(timeout=args.hold)
    finally:
        stack.stop()


if __name__ == "__main__":
    main()
