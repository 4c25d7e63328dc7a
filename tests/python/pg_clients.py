"""Real PostgreSQL clients against Strata's PostgreSQL listener: psycopg 3 (text and binary
results, parameters, a cancel, the limits' SQLSTATEs), SQLAlchemy and pandas.

Usage: pg_clients.py HOST PORT EXPECTED_SPANS [USER PASSWORD]
Prints one JSON object of what it saw; exits non-zero on the first wrong answer.
"""

import json
import sys
import threading
import time

import pandas as pd
import psycopg
import sqlalchemy

host, port, expected_spans = sys.argv[1], int(sys.argv[2]), int(sys.argv[3])
user = sys.argv[4] if len(sys.argv) > 4 else "default"
password = sys.argv[5] if len(sys.argv) > 5 else None
seen = {}


def connect(**kw):
    args = dict(host=host, port=port, user=user, dbname="strata", connect_timeout=10)
    if password is not None:
        args["password"] = password
    args.update(kw)
    return psycopg.connect(**args)


def check(cond, what):
    if not cond:
        raise SystemExit(f"wrong: {what}")


with connect(autocommit=True) as conn:
    seen["server_version"] = conn.info.server_version
    check(conn.info.server_version >= 160000, f"server_version {conn.info.server_version}")
    (version,) = conn.execute("SELECT version()").fetchone()
    check(version.startswith("PostgreSQL 16"), version)
    (num,) = conn.execute("SELECT current_setting('server_version_num')").fetchone()
    check(num == "160006", num)

    # Text and binary results of the same rows agree.
    q = "SELECT count(*) AS n, min(start_time) AS first, max(duration_nanos) AS d FROM spans"
    text = conn.execute(q).fetchone()
    binary = conn.cursor(binary=True).execute(q).fetchone()
    check(text == binary, f"text {text} != binary {binary}")
    check(text[0] == expected_spans, f"count {text[0]} != {expected_spans}")
    check(text[1].tzinfo is not None, "start_time is a timestamp with a time zone")
    seen["spans"] = text[0]

    # Parameters, typed by the server from the query.
    rows = conn.execute(
        "SELECT span_id, name, attributes FROM spans WHERE service_name = %s AND start_time >= %s ORDER BY span_id LIMIT %s",
        ["checkout", "2023-11-14T00:00:00Z", 3],
    ).fetchall()
    check(len(rows) == 3, f"3 rows with parameters, got {len(rows)}")
    check(isinstance(rows[0][2], dict), f"attributes come back as JSON: {rows[0][2]!r}")
    none = conn.execute(
        "SELECT count(*) FROM spans WHERE service_name = %s", ["nobody"]
    ).fetchone()
    check(none[0] == 0, "no spans of an unknown service")
    (b,) = conn.cursor(binary=True).execute(
        "SELECT %s::bigint + 1", [41], binary=True
    ).fetchone()
    check(b == 42, f"binary parameter: {b}")

    # A refused statement is an SQLSTATE error and the session goes on.
    try:
        conn.execute("CREATE TABLE x (a int)")
        raise SystemExit("wrong: CREATE TABLE ran")
    except psycopg.errors.ReadOnlySqlTransaction as e:
        seen["create_table"] = e.sqlstate
    try:
        conn.execute("SELECT nope FROM spans")
        raise SystemExit("wrong: an unknown column ran")
    except psycopg.errors.UndefinedColumn as e:
        seen["unknown_column"] = e.sqlstate
    check(conn.execute("SELECT 1").fetchone() == (1,), "session goes on after errors")

    # Too many rows: the HTTP route's row limit, as program_limit_exceeded.
    try:
        conn.execute("SELECT * FROM generate_series(1, 100001)").fetchall()
        raise SystemExit("wrong: more rows than max_result_rows came back")
    except psycopg.errors.ProgramLimitExceeded as e:
        seen["too_many_rows"] = e.sqlstate

    # A cancel request stops a long query.
    def cancel_soon():
        time.sleep(1.0)
        conn.cancel_safe()

    t = threading.Thread(target=cancel_soon)
    t.start()
    start = time.monotonic()
    try:
        conn.execute("SELECT count(*) FROM generate_series(1, 20000000000)").fetchone()
        raise SystemExit("wrong: the long query was not cancelled")
    except psycopg.errors.QueryCanceled as e:
        seen["cancelled"] = e.sqlstate
        seen["cancel_seconds"] = round(time.monotonic() - start, 2)
    t.join()
    check(seen["cancel_seconds"] < 20, f"cancel took {seen['cancel_seconds']} s")
    check(conn.execute("SELECT 2").fetchone() == (2,), "session goes on after a cancel")

    # statement_timeout is honoured as PostgreSQL does it.
    conn.execute("SET statement_timeout = 300")
    try:
        conn.execute("SELECT count(*) FROM generate_series(1, 20000000000)").fetchone()
        raise SystemExit("wrong: statement_timeout did not stop the query")
    except psycopg.errors.QueryCanceled as e:
        seen["statement_timeout"] = e.sqlstate
    conn.execute("SET statement_timeout = 0")

# What Grafana's PostgreSQL datasource sends (grafana-postgresql-datasource's
# postgresMetaQuery.ts and its macros), expanded as Grafana expands them.
SCHEMA_CONSTRAINT = """
          quote_ident(table_schema) IN (
          SELECT
            CASE WHEN trim(s[i]) = '"$user"' THEN user ELSE trim(s[i]) END
          FROM
            generate_series(
              array_lower(string_to_array(current_setting('search_path'),','),1),
              array_upper(string_to_array(current_setting('search_path'),','),1)
            ) as i,
            string_to_array(current_setting('search_path'),',') s
          )"""
GRAFANA = {
    "version": "SELECT current_setting('server_version_num')::int/100 as version",
    "tables": """select quote_ident(table_name) as "table" from information_schema.tables
    where quote_ident(table_schema) not in ('information_schema',
                             'pg_catalog',
                             '_timescaledb_cache',
                             '_timescaledb_catalog',
                             '_timescaledb_internal',
                             '_timescaledb_config',
                             'timescaledb_information',
                             'timescaledb_experimental')
      and """ + SCHEMA_CONSTRAINT,
    "columns": """select quote_ident(column_name) as "column", data_type as "type"
    from information_schema.columns
    where quote_ident(table_name) = 'spans'""",
    # $__timeGroupAlias(start_time,'1m') and $__timeFilter(start_time)
    "time_series": """SELECT floor(extract(epoch from start_time)/60)*60 AS "time", count(*) AS "spans"
    FROM spans WHERE start_time BETWEEN '2023-11-14T00:00:00Z' AND '2023-11-15T00:00:00Z'
    GROUP BY 1 ORDER BY 1""",
    # $__unixEpochFilter-style bounds through to_timestamp
    "to_timestamp": "SELECT count(*) FROM spans WHERE start_time >= to_timestamp(1699920000) AND start_time < to_timestamp(1700006400)",
    "time_bucket": "SELECT date_trunc('minute', start_time) AS time, count(*) FROM spans GROUP BY 1 ORDER BY 1",
}
with connect(autocommit=True) as conn:
    got = {k: conn.execute(q).fetchall() for k, q in GRAFANA.items()}
    check(got["version"] == [(1600,)], f"version {got['version']}")
    tables = sorted(r[0] for r in got["tables"])
    check({"spans", "logs", "metrics"} <= set(tables), f"tables {tables}")
    columns = dict(got["columns"])
    check("start_time" in columns and "trace_id" in columns, f"columns {columns}")
    check(sum(r[1] for r in got["time_series"]) == expected_spans, f"time series {got['time_series']}")
    check(got["to_timestamp"][0][0] == expected_spans, f"to_timestamp {got['to_timestamp']}")
    check(sum(r[1] for r in got["time_bucket"]) == expected_spans, "date_trunc buckets")
    seen["grafana_tables"] = tables

# SQLAlchemy and pandas: 100k rows through the extended protocol.
url = sqlalchemy.engine.URL.create(
    "postgresql+psycopg", username=user, password=password, host=host, port=port, database="strata"
)
engine = sqlalchemy.create_engine(url)
with engine.connect() as c:
    n = c.execute(sqlalchemy.text("SELECT count(*) FROM spans WHERE service_name = :s"), {"s": "checkout"}).scalar()
    check(n == expected_spans, f"SQLAlchemy count {n}")
    names = sqlalchemy.inspect(c).get_table_names()
    seen["sqlalchemy_tables"] = sorted(names)
    df = pd.read_sql("SELECT value AS v, value * 2 AS w FROM generate_series(1, 100000)", c)
    check(len(df) == 100000, f"pandas rows {len(df)}")
    check(int(df["w"].sum()) == 100000 * 100001, "pandas values")
    seen["pandas_rows"] = len(df)
    # Unaliased expressions are named as PostgreSQL names them.
    df = pd.read_sql("SELECT service_name, count(*), 1 + 1 FROM spans GROUP BY 1", c)
    check(list(df.columns) == ["service_name", "count", "?column?"], f"columns {list(df.columns)}")
engine.dispose()

print(json.dumps(seen))
