// Strata's web UI: trace search, trace view (waterfall, details, logs), services with RED
// figures, and a SQL console. Plain DOM, no framework and no external assets; all data comes
// from the query service's own APIs (Tempo, Jaeger, Prometheus, SQL). Text from the data is
// only ever set with textContent, never parsed as HTML.
"use strict";

const $view = document.getElementById("view");
const $tenant = document.getElementById("tenant");
$tenant.value = localStorage.getItem("strata.tenant") || "";
$tenant.addEventListener("change", () => {
  localStorage.setItem("strata.tenant", $tenant.value.trim());
  route();
});

function el(tag, attrs, ...children) {
  const e = document.createElement(tag);
  for (const [k, v] of Object.entries(attrs || {})) {
    if (k === "class") e.className = v;
    else if (k.startsWith("on")) e.addEventListener(k.slice(2), v);
    // Through the CSSOM: the Content-Security-Policy refuses inline style attributes.
    else if (k === "style") e.style.cssText = v;
    else if (v !== undefined && v !== null && v !== false) e.setAttribute(k, v === true ? "" : v);
  }
  for (const c of children.flat()) {
    if (c === null || c === undefined || c === false) continue;
    e.append(c instanceof Node ? c : document.createTextNode(String(c)));
  }
  return e;
}

function headers(extra) {
  const h = Object.assign({}, extra || {});
  const t = $tenant.value.trim();
  if (t) h["X-Scope-OrgID"] = t;
  return h;
}

async function api(path, options) {
  const opts = Object.assign({}, options || {});
  opts.headers = headers(opts.headers);
  const r = await fetch(path, opts);
  const text = await r.text();
  let body;
  try { body = text ? JSON.parse(text) : null; } catch (_) { body = { error: text }; }
  if (!r.ok) {
    const msg = (body && (body.error || (body.errors && body.errors[0] && body.errors[0].msg))) || r.statusText;
    const err = new Error(msg);
    err.status = r.status;
    throw err;
  }
  return body;
}

const sql = (query) => api("/api/v1/sql", {
  method: "POST", headers: { "content-type": "application/json" }, body: JSON.stringify({ query }),
});
const promql = (query) => api("/api/v1/query?" + new URLSearchParams({ query }));

function fmtDuration(nanos) {
  const ms = nanos / 1e6;
  if (ms < 1) return (nanos / 1e3).toFixed(0) + " µs";
  if (ms < 1000) return ms.toFixed(ms < 10 ? 2 : 1) + " ms";
  if (ms < 60000) return (ms / 1000).toFixed(2) + " s";
  return (ms / 60000).toFixed(1) + " min";
}
const fmtTime = (nanos) => new Date(Number(BigInt(nanos) / 1000000n)).toISOString().replace("T", " ").replace("Z", "");
const sqlString = (s) => "'" + String(s).replace(/'/g, "''") + "'";
const traceqlString = (s) => JSON.stringify(String(s));

function errorBox(e) {
  return el("div", { class: "error", role: "alert" }, e.message || String(e));
}

function setNav(name) {
  for (const a of document.querySelectorAll("[data-nav]")) a.classList.toggle("active", a.dataset.nav === name);
}

// ---- search ----------------------------------------------------------------------------

const LOOKBACKS = [["15m", 900], ["1h", 3600], ["6h", 21600], ["24h", 86400], ["7d", 604800]];

function searchQuery(f) {
  const terms = [];
  if (f.service) terms.push(`resource.service.name = ${traceqlString(f.service)}`);
  if (f.operation) terms.push(`name = ${traceqlString(f.operation)}`);
  for (const part of (f.attributes || "").match(/(?:[^\s"]+|"[^"]*")+/g) || []) {
    const i = part.indexOf("=");
    if (i <= 0) throw new Error(`attribute filter ${part} needs key=value`);
    const key = part.slice(0, i);
    let value = part.slice(i + 1).replace(/^"(.*)"$/, "$1");
    const lhs = /^(span|resource)\./.test(key) || key.startsWith(".") ? key : "." + key;
    terms.push(/^-?\d+(\.\d+)?$/.test(value) || value === "true" || value === "false"
      ? `${lhs} = ${value}` : `${lhs} = ${traceqlString(value)}`);
  }
  if (f.status === "error") terms.push("status = error");
  if (f.minDuration) terms.push(`duration >= ${f.minDuration}`);
  if (f.maxDuration) terms.push(`duration <= ${f.maxDuration}`);
  return "{ " + terms.join(" && ") + " }";
}

async function viewSearch(params) {
  setNav("search");
  const f = {
    service: params.get("service") || "", operation: params.get("operation") || "",
    attributes: params.get("attributes") || "", status: params.get("status") || "",
    minDuration: params.get("minDuration") || "", maxDuration: params.get("maxDuration") || "",
    lookback: params.get("lookback") || "3600", limit: params.get("limit") || "20",
    q: params.get("q") || "",
  };
  const service = el("select", { id: "service", name: "service" }, el("option", { value: "" }, "any service"));
  const operation = el("select", { id: "operation", name: "operation" }, el("option", { value: "" }, "any operation"));
  const loadOperations = async () => {
    operation.replaceChildren(el("option", { value: "" }, "any operation"));
    if (!service.value) return;
    try {
      const ops = await api(`/jaeger/api/services/${encodeURIComponent(service.value)}/operations`);
      for (const o of ops.data || []) operation.append(el("option", { value: o, selected: o === f.operation }, o));
    } catch (_) { /* the list is a convenience */ }
  };
  service.addEventListener("change", loadOperations);
  const input = (name, placeholder, size) => el("input", { id: name, name, value: f[name], placeholder, size });
  const form = el("form", { class: "search", onsubmit: (ev) => {
    ev.preventDefault();
    const p = new URLSearchParams();
    for (const [k, v] of new FormData(form)) if (v) p.set(k, v);
    location.hash = "#/search?" + p.toString();
  } },
    el("label", {}, "Service ", service),
    el("label", {}, "Operation ", operation),
    el("label", {}, "Attributes ", input("attributes", 'http.route=/checkout', 24)),
    el("label", {}, "Status ", el("select", { name: "status", id: "status" },
      el("option", { value: "" }, "any"), el("option", { value: "error", selected: f.status === "error" }, "error"))),
    el("label", {}, "Min ", input("minDuration", "100ms", 6)),
    el("label", {}, "Max ", input("maxDuration", "5s", 6)),
    el("label", {}, "Last ", el("select", { name: "lookback", id: "lookback" },
      LOOKBACKS.map(([n, s]) => el("option", { value: s, selected: String(s) === f.lookback }, n)))),
    el("label", {}, "Limit ", input("limit", "20", 3)),
    el("label", { class: "wide" }, "TraceQL ", input("q", "{ span.http.response.status_code >= 500 }", 50)),
    el("button", { type: "submit", id: "search-button" }, "Search"));
  const results = el("section", { id: "results" });
  $view.replaceChildren(el("h1", {}, "Traces"), form, results);
  try {
    const services = await api("/jaeger/api/services");
    for (const s of services.data || []) service.append(el("option", { value: s, selected: s === f.service }, s));
    await loadOperations();
  } catch (e) { results.append(errorBox(e)); }
  if (!params.toString()) return;
  let q;
  try { q = f.q || searchQuery(f); } catch (e) { results.replaceChildren(errorBox(e)); return; }
  const end = Math.floor(Date.now() / 1000);
  const p = new URLSearchParams({ q, limit: f.limit, start: end - Number(f.lookback), end, spss: 3 });
  results.replaceChildren(el("p", { class: "muted" }, "Searching ", el("code", {}, q), " …"));
  try {
    const r = await api("/api/search?" + p);
    results.replaceChildren(resultsTable(q, r.traces || []));
  } catch (e) { results.replaceChildren(errorBox(e)); }
}

function resultsTable(q, traces) {
  if (!traces.length) return el("p", { class: "muted" }, "No traces match ", el("code", {}, q), ".");
  const maxMs = Math.max(1, ...traces.map((t) => t.durationMs || 0));
  return el("table", { class: "results" },
    el("thead", {}, el("tr", {}, ["Trace", "Root", "Started", "Duration", "Spans", "Errors", "Services"].map((h) => el("th", {}, h)))),
    el("tbody", {}, traces.map((t) => {
      const stats = t.serviceStats || {};
      const spans = Object.values(stats).reduce((a, s) => a + (s.spanCount || 0), 0);
      const errors = Object.values(stats).reduce((a, s) => a + (s.errorCount || 0), 0);
      return el("tr", { class: errors ? "has-error" : "" },
        el("td", {}, el("a", { href: `#/trace/${t.traceID}`, class: "trace-link", "data-trace-id": t.traceID }, t.traceID.slice(0, 16) + "…")),
        el("td", {}, el("b", {}, t.rootServiceName), " ", t.rootTraceName),
        el("td", {}, fmtTime(t.startTimeUnixNano)),
        el("td", {}, el("div", { class: "dur" }, el("span", { class: "dur-bar", style: `width:${(100 * (t.durationMs || 0) / maxMs).toFixed(1)}%` }), fmtDuration((t.durationMs || 0) * 1e6))),
        el("td", { class: "num" }, spans),
        el("td", { class: "num" }, errors),
        el("td", {}, Object.keys(stats).join(", ")));
    })));
}

// ---- trace view --------------------------------------------------------------------------

function anyValue(v) {
  if (!v) return "";
  if ("stringValue" in v) return v.stringValue;
  if ("intValue" in v) return String(v.intValue);
  if ("doubleValue" in v) return String(v.doubleValue);
  if ("boolValue" in v) return String(v.boolValue);
  if ("bytesValue" in v) return v.bytesValue;
  if ("arrayValue" in v) return "[" + (v.arrayValue.values || []).map(anyValue).join(", ") + "]";
  if ("kvlistValue" in v) return "{" + (v.kvlistValue.values || []).map((kv) => kv.key + ": " + anyValue(kv.value)).join(", ") + "}";
  return JSON.stringify(v);
}

const KINDS = ["unspecified", "internal", "server", "client", "producer", "consumer"];
const COLORS = ["#4e79a7", "#f28e2b", "#59a14f", "#b07aa1", "#76b7b2", "#edc948", "#ff9da7", "#9c755f", "#e15759", "#bab0ac"];

/// Flattens OTLP resource spans into spans with their service, ordered as a tree: each span
/// after its parent, siblings by start time. Spans whose parent is missing are roots.
function spanTree(resourceSpans) {
  const spans = [];
  for (const rs of resourceSpans || []) {
    const attrs = (rs.resource && rs.resource.attributes) || [];
    const svc = attrs.find((a) => a.key === "service.name");
    const service = svc ? anyValue(svc.value) : "unknown";
    for (const ss of rs.scopeSpans || []) {
      for (const s of ss.spans || []) {
        spans.push({ span: s, service, resource: attrs, scope: ss.scope || {},
          start: BigInt(s.startTimeUnixNano || 0), end: BigInt(s.endTimeUnixNano || 0), children: [] });
      }
    }
  }
  const byId = new Map(spans.map((n) => [n.span.spanId, n]));
  const roots = [];
  for (const n of spans) {
    const parent = n.span.parentSpanId && byId.get(n.span.parentSpanId);
    if (parent && parent !== n) parent.children.push(n); else roots.push(n);
  }
  const order = [];
  const byStart = (a, b) => (a.start < b.start ? -1 : a.start > b.start ? 1 : 0);
  const walk = (n, depth) => {
    n.depth = depth;
    order.push(n);
    n.children.sort(byStart).forEach((c) => walk(c, depth + 1));
  };
  roots.sort(byStart).forEach((r) => walk(r, 0));
  return order;
}

async function viewTrace(id) {
  setNav("search");
  $view.replaceChildren(el("p", { class: "muted" }, "Loading trace ", el("code", {}, id), " …"));
  let trace;
  try {
    trace = await api(`/api/v2/traces/${encodeURIComponent(id)}`);
  } catch (e) {
    $view.replaceChildren(el("h1", {}, "Trace ", el("code", {}, id)), errorBox(e));
    return;
  }
  const nodes = spanTree(trace.trace && trace.trace.resourceSpans);
  const t0 = nodes.reduce((m, n) => (n.start < m ? n.start : m), nodes[0].start);
  const t1 = nodes.reduce((m, n) => (n.end > m ? n.end : m), nodes[0].end);
  const total = Number(t1 - t0) || 1;
  const services = [...new Set(nodes.map((n) => n.service))];
  const color = (svc) => COLORS[services.indexOf(svc) % COLORS.length];
  const errors = nodes.filter((n) => n.span.status && n.span.status.code === 2).length;
  const details = el("aside", { id: "details", class: "details" }, el("p", { class: "muted" }, "Select a span to see its attributes and events."));
  const rows = nodes.map((n) => {
    const s = n.span;
    const offset = Number(n.start - t0), dur = Number(n.end - n.start);
    const failed = s.status && s.status.code === 2;
    const row = el("div", {
      class: "span-row" + (failed ? " error" : ""), tabindex: "0", role: "row",
      "data-span-id": s.spanId, "data-parent-id": s.parentSpanId || "", "data-depth": n.depth,
      "data-service": n.service, "data-name": s.name,
      onclick: () => { for (const r of document.querySelectorAll(".span-row.selected")) r.classList.remove("selected"); row.classList.add("selected"); showSpan(details, n); },
      onkeydown: (ev) => { if (ev.key === "Enter") row.click(); },
    },
      el("div", { class: "span-label", style: `padding-left:${n.depth * 16}px` },
        el("span", { class: "svc", style: `border-color:${color(n.service)}` }, n.service), " ", s.name,
        failed ? el("span", { class: "badge" }, "error") : null),
      el("div", { class: "span-timeline" },
        el("div", { class: "span-bar", title: fmtDuration(dur),
          style: `left:${(100 * offset / total).toFixed(3)}%;width:${Math.max(0.2, 100 * dur / total).toFixed(3)}%;background:${failed ? "#d62728" : color(n.service)}` }),
        el("span", { class: "span-dur", style: `left:${Math.min(92, 100 * (offset + dur) / total).toFixed(2)}%` }, fmtDuration(dur))));
    return row;
  });
  const ticks = [0, 0.25, 0.5, 0.75, 1].map((f) => el("span", { style: `left:${f * 100}%` }, fmtDuration(total * f)));
  const logs = el("section", { id: "logs" }, el("h2", {}, "Logs"), el("p", { class: "muted" }, "Loading …"));
  $view.replaceChildren(
    el("h1", {}, nodes[0].service, ": ", nodes[0].span.name),
    el("p", { class: "summary" }, el("code", { id: "trace-id" }, id), ` · ${nodes.length} spans · ${services.length} services · ${errors} errors · ${fmtDuration(total)} · started ${fmtTime(t0.toString())}`),
    el("div", { class: "trace" },
      el("div", { id: "waterfall", class: "waterfall", role: "table" },
        el("div", { class: "span-row head" }, el("div", { class: "span-label" }, "Service and operation"), el("div", { class: "span-timeline ticks" }, ticks)),
        rows),
      details),
    logs);
  try {
    const r = await sql(`SELECT time, service_name, severity_text, body, span_id FROM logs WHERE trace_id = ${sqlString(id.toLowerCase())} ORDER BY time LIMIT 1000`);
    logs.replaceChildren(el("h2", {}, `Logs (${r.rows.length})`), r.rows.length
      ? el("table", { class: "logs" }, el("tbody", {}, r.rows.map((row) => el("tr", { class: "sev-" + String(row[2] || "").toLowerCase() },
          el("td", {}, String(row[0]).replace("T", " ")), el("td", {}, row[1]), el("td", {}, row[2]), el("td", { class: "body" }, row[3]),
          el("td", {}, row[4] ? el("a", { href: "#", onclick: (ev) => { ev.preventDefault(); const target = document.querySelector(`.span-row[data-span-id="${CSS.escape(row[4])}"]`); if (target) target.click(); } }, "span") : "")))))
      : el("p", { class: "muted" }, "No log records carry this trace id."));
  } catch (e) { logs.replaceChildren(el("h2", {}, "Logs"), errorBox(e)); }
}

function kvTable(title, kvs) {
  if (!kvs || !kvs.length) return null;
  return el("div", {}, el("h3", {}, title), el("table", { class: "kv" }, el("tbody", {},
    kvs.map((kv) => el("tr", {}, el("th", {}, kv.key), el("td", {}, anyValue(kv.value)))))));
}

function showSpan(details, n) {
  const s = n.span;
  const status = s.status || {};
  details.replaceChildren(
    el("h2", {}, s.name),
    el("table", { class: "kv" }, el("tbody", {},
      [["service", n.service], ["kind", KINDS[s.kind || 0]], ["duration", fmtDuration(Number(n.end - n.start))],
       ["start", fmtTime(n.start.toString())], ["status", ["unset", "ok", "error"][status.code || 0] + (status.message ? ": " + status.message : "")],
       ["span id", s.spanId], ["parent", s.parentSpanId || "(root)"], ["scope", n.scope.name || ""]]
        .map(([k, v]) => el("tr", {}, el("th", {}, k), el("td", {}, v))))),
    kvTable("Attributes", s.attributes),
    (s.events || []).length ? el("div", {}, el("h3", {}, "Events"), (s.events || []).map((e) =>
      el("div", { class: "event" }, el("b", {}, e.name), " ", el("span", { class: "muted" }, fmtTime(e.timeUnixNano)), kvTable("", e.attributes)))) : null,
    kvTable("Resource", n.resource));
}

// ---- services ------------------------------------------------------------------------------

async function viewServices() {
  setNav("services");
  $view.replaceChildren(el("h1", {}, "Services"), el("p", { class: "muted" }, "Loading …"));
  const server = 'span_kind="SPAN_KIND_SERVER"';
  try {
    const [calls, errors, p95, edges] = await Promise.all([
      promql(`sum by (service) (rate(traces_spanmetrics_calls_total{${server}}[5m]))`),
      promql(`sum by (service) (rate(traces_spanmetrics_calls_total{${server}, status_code="STATUS_CODE_ERROR"}[5m]))`),
      promql(`histogram_quantile(0.95, sum by (service, le) (rate(traces_spanmetrics_latency_bucket{${server}}[5m])))`),
      promql("sum by (client, server) (increase(traces_service_graph_request_total[1h]))"),
    ]);
    const by = (r) => new Map((r.data.result || []).map((s) => [s.metric.service, Number(s.value[1])]));
    const c = by(calls), e = by(errors), l = by(p95);
    const names = [...c.keys()].sort();
    const fmt = (x, digits) => (Number.isFinite(x) ? x.toFixed(digits) : "–");
    $view.replaceChildren(el("h1", {}, "Services"),
      names.length ? el("table", { class: "results", id: "services-table" },
        el("thead", {}, el("tr", {}, ["Service", "Requests/s", "Errors/s", "Error %", "p95 latency", ""].map((h) => el("th", {}, h)))),
        el("tbody", {}, names.map((n) => {
          const rate = c.get(n) || 0, err = e.get(n) || 0;
          return el("tr", { "data-service": n, class: err > 0 ? "has-error" : "" }, el("td", {}, el("b", {}, n)),
            el("td", { class: "num" }, fmt(rate, 3)), el("td", { class: "num" }, fmt(err, 3)),
            el("td", { class: "num" }, rate > 0 ? fmt(100 * err / rate, 1) : "–"),
            el("td", { class: "num" }, Number.isFinite(l.get(n)) ? fmtDuration(l.get(n) * 1e9) : "–"),
            el("td", {}, el("a", { href: "#/search?" + new URLSearchParams({ service: n }) }, "traces"), " · ",
              el("a", { href: "#/search?" + new URLSearchParams({ service: n, status: "error" }) }, "errors")));
        })))
        : el("p", { class: "muted" }, "No span metrics in the last 5 minutes."),
      el("h2", {}, "Calls between services, last hour"),
      el("table", { class: "results" }, el("tbody", {}, (edges.data.result || []).map((s) =>
        el("tr", {}, el("td", {}, s.metric.client, " → ", s.metric.server), el("td", { class: "num" }, fmt(Number(s.value[1]), 0)))))));
  } catch (err) { $view.replaceChildren(el("h1", {}, "Services"), errorBox(err)); }
}

// ---- SQL console -----------------------------------------------------------------------------

function viewSql(params) {
  setNav("sql");
  const text = el("textarea", { id: "sql", rows: 6, spellcheck: "false" },
    params.get("q") || "SELECT service_name, count(*) AS spans, avg(duration_nanos) / 1e6 AS avg_ms\nFROM spans\nGROUP BY service_name\nORDER BY spans DESC\nLIMIT 20");
  const out = el("section", { id: "sql-result" });
  const run = async () => {
    out.replaceChildren(el("p", { class: "muted" }, "Running …"));
    const started = performance.now();
    try {
      const r = await sql(text.value);
      out.replaceChildren(el("p", { class: "muted" }, `${r.rows.length} rows in ${((performance.now() - started) / 1000).toFixed(2)} s`),
        el("table", { class: "results" },
          el("thead", {}, el("tr", {}, r.columns.map((c) => el("th", { title: c.type }, c.name)))),
          el("tbody", {}, r.rows.map((row) => el("tr", {}, row.map((v) => el("td", {}, v === null ? "NULL" : typeof v === "object" ? JSON.stringify(v) : String(v))))))));
    } catch (e) { out.replaceChildren(errorBox(e)); }
  };
  text.addEventListener("keydown", (ev) => { if (ev.key === "Enter" && (ev.ctrlKey || ev.metaKey)) run(); });
  $view.replaceChildren(el("h1", {}, "SQL"),
    el("p", { class: "muted" }, "Tables: spans, logs, metrics. Read-only; Ctrl+Enter runs."),
    text, el("div", {}, el("button", { id: "run-sql", onclick: run }, "Run")), out);
}

// ---- routing -----------------------------------------------------------------------------------

function route() {
  const hash = location.hash.replace(/^#/, "") || "/search";
  const [path, query] = hash.split("?");
  const params = new URLSearchParams(query || "");
  const m = path.match(/^\/trace\/([0-9a-fA-F]+)$/);
  if (m) return viewTrace(m[1]);
  if (path === "/services") return viewServices();
  if (path === "/sql") return viewSql(params);
  return viewSearch(params);
}

window.addEventListener("hashchange", route);
route();
