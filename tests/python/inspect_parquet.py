"""Reads Strata's Parquet files with independent readers (pyarrow and DuckDB) and prints JSON:
per file its row count (from both readers), whether trace_id has a bloom filter, the row groups'
sorting columns, and the trace ids it holds."""

import glob
import json
import os
import sys

import duckdb
import pyarrow.parquet as pq


def main():
    root = sys.argv[1]
    files = sorted(glob.glob(os.path.join(root, "**", "*.parquet"), recursive=True))
    con = duckdb.connect()
    out = []
    for path in files:
        meta = pq.ParquetFile(path).metadata
        schema = meta.schema.to_arrow_schema()
        sorting = []
        for rg in range(meta.num_row_groups):
            cols = meta.row_group(rg).sorting_columns or ()
            sorting.append([meta.schema.column(c.column_index).path for c in cols])
        duck_rows = con.execute("SELECT count(*) FROM read_parquet(?)", [path]).fetchone()[0]
        bloom = con.execute(
            "SELECT count(*) FROM parquet_metadata(?) WHERE path_in_schema = 'trace_id' AND bloom_filter_offset IS NOT NULL",
            [path],
        ).fetchone()[0]
        entry = {
            "path": os.path.relpath(path, root),
            "rows_pyarrow": meta.num_rows,
            "rows_duckdb": duck_rows,
            "row_groups": meta.num_row_groups,
            "trace_id_bloom_row_groups": bloom,
            "sorting_columns": sorting,
            "kv": {k.decode(): v.decode() for k, v in (meta.metadata or {}).items() if k.startswith(b"strata.")},
        }
        if "signal=traces" in path:
            table = pq.ParquetFile(path).read(columns=["trace_id", "start_time"])
            ids = table.column("trace_id").to_pylist()
            entry["trace_ids"] = sorted(set(ids))
            entry["sorted"] = ids == sorted(ids)
        out.append(entry)
    json.dump(out, sys.stdout)


if __name__ == "__main__":
    main()
