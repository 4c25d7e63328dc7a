"""ADBC's Flight SQL driver against Strata's Flight SQL listener: connect, GetTables with
schemas, what Grafana's Flight SQL datasource sends (its health check, table list and a time
series panel), a query fetched as Arrow, a prepared statement with a parameter, a read-only
refusal, and a pandas DataFrame of ROWS rows.

Usage: flight_sql_clients.py HOST:PORT EXPECTED_SPANS ROWS [USER PASSWORD]
Prints one JSON object of what it saw; exits non-zero on the first wrong answer.
"""

import json
import sys

import adbc_driver_flightsql
import adbc_driver_flightsql.dbapi as flight_sql
import adbc_driver_manager

addr, expected_spans, rows = sys.argv[1], int(sys.argv[2]), int(sys.argv[3])
kwargs = {}
if len(sys.argv) > 5:
    kwargs = {
        adbc_driver_manager.DatabaseOptions.USERNAME.value: sys.argv[4],
        adbc_driver_manager.DatabaseOptions.PASSWORD.value: sys.argv[5],
    }
seen = {}

if kwargs:
    wrong = dict(kwargs)
    wrong[adbc_driver_manager.DatabaseOptions.PASSWORD.value] = sys.argv[5] + "-wrong"
    try:
        flight_sql.connect(f"grpc://{addr}", db_kwargs=wrong).close()
        raise SystemExit("wrong: a wrong password connected")
    except adbc_driver_manager.Error as e:
        if "UNAUTHENTICATED" not in str(e):
            raise SystemExit(f"wrong: a wrong password gave {e}")
        seen["wrong_password"] = "UNAUTHENTICATED"


def check(cond, what):
    if not cond:
        raise SystemExit(f"wrong: {what}")


with flight_sql.connect(f"grpc://{addr}", db_kwargs=kwargs) as conn:
    info = conn.adbc_get_info()
    seen["vendor"] = info.get("vendor_name")
    check(info.get("vendor_name") == "Strata", f"vendor {info}")

    objects = conn.adbc_get_objects(depth="all").read_all().to_pylist()
    tables = {
        t["table_name"]: [c["column_name"] for c in (t["table_columns"] or [])]
        for cat in objects
        for schema in cat["catalog_db_schemas"]
        for t in schema["db_schema_tables"]
    }
    for name in ("spans", "logs", "metrics"):
        check(name in tables, f"GetTables lists {name}: {sorted(tables)}")
    check("trace_id" in tables["spans"], f"spans columns {tables['spans']}")
    # What Grafana's Flight SQL datasource (influxdata/grafana-flightsql-datasource) sends:
    # "Save & test" runs `select 1`; its editor lists tables of type BASE TABLE and reads
    # a table's columns from GetTables with schemas.
    with conn.cursor() as cur:
        cur.execute("select 1")
        check(cur.fetchall() == [(1,)], "select 1")
    base = conn.adbc_get_objects(depth="tables", table_types_filter=["BASE TABLE"]).read_all().to_pylist()
    base_tables = sorted(t["table_name"] for cat in base for s in cat["catalog_db_schemas"]
                         for t in s["db_schema_tables"])
    check(base_tables == ["logs", "metrics", "spans"], f"BASE TABLE tables {base_tables}")
    schema = conn.adbc_get_table_schema("spans")
    check(schema.field("start_time").type.tz == "UTC", f"start_time {schema.field('start_time')}")
    seen["tables"] = sorted(tables)

    with conn.cursor() as cur:
        cur.execute("SELECT count(*) AS n FROM spans")
        table = cur.fetch_arrow_table()
        check(table.column("n")[0].as_py() == expected_spans, f"count {table}")
        seen["spans"] = table.column("n")[0].as_py()

        cur.execute("SELECT attributes, resource_attributes FROM spans LIMIT 1")
        t = cur.fetch_arrow_table()
        check(str(t.schema.field("attributes").type).startswith("map<"), f"maps stay maps: {t.schema}")

        # A prepared statement with a bound parameter.
        cur.execute(
            "SELECT count(*) AS n FROM spans WHERE service_name = $1",
            parameters=("checkout",),
        )
        n = cur.fetchone()[0]
        check(n == expected_spans, f"prepared count {n}")
        cur.execute(
            "SELECT count(*) AS n FROM spans WHERE service_name = $1",
            parameters=("nobody",),
        )
        check(cur.fetchone()[0] == 0, "prepared count of nobody")
        seen["prepared"] = n

        # A time series panel: its $__dateBin(start_time) and $__timeFilter(start_time) macros
        # expanded as the datasource expands them.
        cur.execute(
            "SELECT date_bin(interval '60 second', start_time, timestamp '1970-01-01T00:00:00Z') AS time, "
            "count(*) AS spans FROM spans "
            "WHERE start_time >= '2023-11-14T00:00:00Z' AND start_time <= '2023-11-15T00:00:00Z' "
            "GROUP BY 1 ORDER BY 1"
        )
        panel = cur.fetch_arrow_table()
        check(sum(panel.column("spans").to_pylist()) == expected_spans, f"panel {panel}")
        seen["panel_buckets"] = panel.num_rows

        try:
            cur.execute("CREATE TABLE x (a int)")
            cur.fetchall()
            raise SystemExit("wrong: CREATE TABLE ran")
        except adbc_driver_manager.Error as e:
            seen["create_table"] = type(e).__name__
            check("read-only" in str(e), f"refusal says why: {e}")

        cur.execute(f"SELECT value AS v, value % 7 AS m FROM generate_series(1, {rows})")
        df = cur.fetch_df()
        check(len(df) == rows, f"pandas rows {len(df)}")
        check(int(df["v"].sum()) == rows * (rows + 1) // 2, "pandas values")
        seen["pandas_rows"] = len(df)

print(json.dumps(seen))
