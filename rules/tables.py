"""Convert a table between CSV, Parquet and JSON lines, through pyarrow.

pyarrow rather than polars: it is the reference implementation of Parquet (the files
pandas, DuckDB and Spark read and write), it reads all three formats natively and in
batches, and its Parquet output is byte-identical for identical data, so a rerun that
brings the same rows stops the cascade (early cutoff).
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from makeflow import StepError, UserError

from ._declare import declare, single_path, suffix

__makeflow_factory__ = True  # rule errors point at the line in Makeflow.py

FORMATS = {".csv": "csv", ".parquet": "parquet", ".pq": "parquet", ".jsonl": "jsonl",
           ".ndjson": "jsonl"}
COMPRESSIONS = ("snappy", "zstd", "gzip", "none")


def convert(name: str, *, input: str, output: str, compression: str = "zstd",
            **options: Any) -> Any:
    """Declare rule `name`: rewrite the table `input` as `output`, formats from suffixes.

    Suffixes: `.csv`, `.parquet` (or `.pq`), `.jsonl` (or `.ndjson`, one JSON object a
    line). Column types are inferred when reading CSV or JSON lines. `compression` applies
    to Parquet output. Paths may hold `{wildcards}` (a pattern rule). Needs the extra
    `parquet` (pyarrow).

    Example::

        from makeflow_rules import convert

        convert("to_parquet", input="data/{city}.csv", output="data/{city}.parquet")
    """
    source = single_path("convert", name, "input", input)
    target = single_path("convert", name, "output", output)
    params = {"from": _format(name, "input", source), "to": _format(name, "output", target),
              "compression": _compression(name, compression)}
    return declare("convert", name, convert_table, inputs=source, outputs=target,
                   params=params, options=options)


def _format(name: str, what: str, path: str) -> str:
    found = FORMATS.get(suffix(path))
    if found is None:
        raise UserError(
            f"convert({name!r}): {what}={path!r} has no table suffix I know",
            hint=f"Use one of {', '.join(FORMATS)}.",
        )
    return found


def _compression(name: str, value: Any) -> str:
    if value not in COMPRESSIONS:
        raise UserError(f"convert({name!r}): compression={value!r} is not one of "
                        f"{', '.join(COMPRESSIONS)}")
    return value


def convert_table(step: Any) -> None:
    """The step: read `inputs[0]`, write `outputs[0]`."""
    p = step.params
    table = read_table(Path(step.inputs[0]), p["from"])
    write_table(table, Path(step.outputs[0]), p["to"], p["compression"])


def read_table(path: Path, fmt: str) -> Any:
    """A pyarrow Table from a CSV, Parquet or JSON lines file; a bad file fails the step."""
    pa = _pyarrow()
    try:
        if fmt == "csv":
            from pyarrow import csv
            return csv.read_csv(path)
        if fmt == "parquet":
            from pyarrow import parquet
            return parquet.read_table(path)
        from pyarrow import json as pa_json
        return pa_json.read_json(path)
    except (pa.ArrowInvalid, pa.ArrowTypeError, OSError) as exc:
        raise StepError(f"cannot read {path} as {fmt}: {exc}") from None


def write_table(table: Any, path: Path, fmt: str, compression: str = "zstd") -> None:
    """Write a pyarrow Table; JSON lines in batches, one object a line."""
    if fmt == "csv":
        from pyarrow import csv
        csv.write_csv(table, path)
    elif fmt == "parquet":
        from pyarrow import parquet
        parquet.write_table(table, path, compression=compression)
    else:
        with open(path, "w", encoding="utf-8") as out:
            for batch in table.to_batches(max_chunksize=10_000):
                for row in batch.to_pylist():
                    out.write(json.dumps(row, ensure_ascii=False, default=str) + "\n")


def _pyarrow() -> Any:
    try:
        import pyarrow
    except ImportError:
        raise StepError("convert needs pyarrow: pip install 'makeflow[parquet]'") from None
    return pyarrow
