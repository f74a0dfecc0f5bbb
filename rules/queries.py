"""Run SQL over CSV, Parquet and JSON lines files with DuckDB, writing the result to a file.

Each input file is a view named after its key in `inputs=`, so a query reads like one over
tables; nothing is loaded into a database first, and DuckDB reads only the columns and
row groups the query needs.
"""

from __future__ import annotations

import re
from typing import Any

from makeflow import StepError, UserError

from ._declare import declare, single_path, suffix

__makeflow_factory__ = True  # rule errors point at the line in Makeflow.py

READERS = {".csv": "read_csv_auto", ".tsv": "read_csv_auto", ".parquet": "read_parquet",
           ".pq": "read_parquet", ".jsonl": "read_json_auto", ".ndjson": "read_json_auto",
           ".json": "read_json_auto"}
WRITERS = {".parquet": "FORMAT PARQUET", ".pq": "FORMAT PARQUET", ".csv": "FORMAT CSV, HEADER",
           ".jsonl": "FORMAT JSON", ".ndjson": "FORMAT JSON", ".json": "FORMAT JSON, ARRAY true"}
IDENTIFIER = re.compile(r"[A-Za-z_][A-Za-z0-9_]*")


def sql(name: str, *, inputs: dict[str, str], output: str, query: str | None = None,
        script: str | None = None, **options: Any) -> Any:
    """Declare rule `name`: run `query` (or the SQL file `script`) and write the result.

    `inputs` maps a table name to a file (`.csv`, `.tsv`, `.parquet`, `.jsonl`/`.ndjson`,
    `.json`); the query reads them as tables. The output's suffix picks its format:
    `.parquet`, `.csv` (with a header), `.jsonl` (one object a line) or `.json` (an
    array). A `script` file is an input, so editing it reruns the step; a `query` text is
    a parameter, so editing it does too. Add `ORDER BY` when the row order matters: a
    query without one may return rows in any order. Paths may hold `{wildcards}`. Needs
    the extra `duckdb`.

    Example::

        from makeflow_rules import sql

        sql("yearly", inputs={"t": "data/{city}.parquet"}, output="results/{city}.csv",
            query="SELECT year, avg(temp) AS temp FROM t GROUP BY year ORDER BY year")
    """
    tables = _tables(name, inputs)
    target = single_path("sql", name, "output", output)
    if suffix(target) not in WRITERS:
        raise UserError(f"sql({name!r}): output={target!r} has no suffix I can write",
                        hint=f"Use one of {', '.join(WRITERS)}.")
    if (query is None) == (script is None):
        raise UserError(f"sql({name!r}) needs either query= (the SQL text) or script= "
                        "(a .sql file), not both or neither")
    if query is not None and (not isinstance(query, str) or not query.strip()):
        raise UserError(f"sql({name!r}): query= must be a non-empty string of SQL")
    files = list(tables.values())
    if script is not None:
        files.append(single_path("sql", name, "script", script))
    params = {"tables": list(tables), "query": query, "writer": WRITERS[suffix(target)]}
    return declare("sql", name, run_query, inputs=files, outputs=target, params=params,
                   options=options)


def _tables(name: str, inputs: Any) -> dict[str, str]:
    if not isinstance(inputs, dict) or not inputs:
        raise UserError(f"sql({name!r}): inputs= must be a dict of table name -> file, "
                        "e.g. inputs={\"sales\": \"data/sales.parquet\"}")
    for table, path in inputs.items():
        if not isinstance(table, str) or not IDENTIFIER.fullmatch(table):
            raise UserError(f"sql({name!r}): table name {table!r} must be a plain SQL "
                            "name (letters, digits, _)")
        if suffix(single_path("sql", name, f"inputs[{table!r}]", path)) not in READERS:
            raise UserError(f"sql({name!r}): input {path!r} has no suffix I can read",
                            hint=f"Use one of {', '.join(READERS)}.")
    return dict(inputs)


def run_query(step: Any) -> None:
    """The step: one view per input file, then COPY (query) TO the output."""
    try:
        import duckdb
    except ImportError:
        raise StepError("sql needs duckdb: pip install 'makeflow[duckdb]'") from None
    p = step.params
    tables = p["tables"]
    query = p["query"] if p["query"] is not None else _read(step.inputs[len(tables)])
    query = query.strip().rstrip(";")
    with duckdb.connect(":memory:") as con:
        try:
            for table, path in zip(tables, step.inputs, strict=False):
                reader = READERS[suffix(str(path))]
                con.execute(f'CREATE VIEW "{table}" AS SELECT * FROM {reader}({_literal(path)})')
            con.execute(f"COPY ({query}) TO {_literal(step.outputs[0])} ({p['writer']})")
        except duckdb.Error as exc:
            raise StepError(f"the query failed: {_first_line(exc)}") from None


def _read(path: Any) -> str:
    with open(path, encoding="utf-8") as f:
        return f.read()


def _literal(path: Any) -> str:
    """A file name as an SQL string literal."""
    return "'" + str(path).replace("'", "''") + "'"


def _first_line(exc: BaseException) -> str:
    text = str(exc).strip()
    return text.splitlines()[0] if text else type(exc).__name__
