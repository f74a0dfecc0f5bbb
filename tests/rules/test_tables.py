"""convert: CSV, Parquet and JSON lines round trips through pyarrow, with real files."""

from __future__ import annotations

import csv
import json

import pytest

from makeflow import StepError
from makeflow_rules.tables import convert_table

from ruleshelp import fake_step

CSV = "city,year,temp\nOslo,2020,6.5\nLima,2021,19.25\nÅre,2022,-1.0\n"
ROWS = [{"city": "Oslo", "year": 2020, "temp": 6.5}, {"city": "Lima", "year": 2021, "temp": 19.25},
        {"city": "Åre", "year": 2022, "temp": -1.0}]


def run(tmp_path, source, target, fmt_in, fmt_out, compression="zstd"):
    convert_table(fake_step([tmp_path / source], [tmp_path / target],
                            **{"from": fmt_in, "to": fmt_out, "compression": compression}))
    return tmp_path / target


def test_csv_to_parquet_to_jsonl_to_csv_keeps_every_value(tmp_path):
    (tmp_path / "a.csv").write_text(CSV, encoding="utf-8")
    run(tmp_path, "a.csv", "a.parquet", "csv", "parquet")
    jsonl = run(tmp_path, "a.parquet", "a.jsonl", "parquet", "jsonl")
    assert [json.loads(line) for line in jsonl.read_text("utf-8").splitlines()] == ROWS
    back = run(tmp_path, "a.jsonl", "b.csv", "jsonl", "csv")
    with open(back, encoding="utf-8", newline="") as f:
        rows = list(csv.DictReader(f))
    assert [{"city": r["city"], "year": int(r["year"]), "temp": float(r["temp"])}
            for r in rows] == ROWS


def test_parquet_output_is_byte_stable(tmp_path):
    (tmp_path / "a.csv").write_text(CSV, encoding="utf-8")
    first = run(tmp_path, "a.csv", "1.parquet", "csv", "parquet").read_bytes()
    second = run(tmp_path, "a.csv", "2.parquet", "csv", "parquet").read_bytes()
    assert first == second


def test_a_broken_input_fails_with_the_file_name(tmp_path):
    (tmp_path / "bad.parquet").write_text("not parquet")
    with pytest.raises(StepError, match=r"cannot read .*bad.parquet as parquet"):
        run(tmp_path, "bad.parquet", "x.csv", "parquet", "csv")


def test_a_pattern_rule_converts_each_file_and_reruns_on_a_new_compression(project):
    project.write("data/oslo.csv", CSV)
    project.write("data/lima.csv", CSV)
    project.rules("""
        from makeflow import rule
        from makeflow_rules import convert
        convert("to_parquet", input="data/{city}.csv", output="pq/{city}.parquet")
        rule("all", inputs=["pq/oslo.parquet", "pq/lima.parquet"], default=True)
    """)
    done = project.run("build")
    assert done.code == 0, done.text
    assert (project.root / "pq/lima.parquet").read_bytes()[:4] == b"PAR1"
    text = project.read("Makeflow.py").replace('.parquet")', '.parquet", compression="gzip")', 1)
    project.rules(text)
    status = project.run("status")
    assert "parameter compression: zstd → gzip" in status.out, status.out


@pytest.mark.parametrize(("args", "message"), [
    ('input="a.txt", output="a.csv"', "input='a.txt' has no table suffix"),
    ('input="a.csv", output="a.xlsx"', "output='a.xlsx' has no table suffix"),
    ('input="a.csv", output="a.parquet", compression="lz9"', "compression='lz9' is not"),
])
def test_mistakes_in_a_convert_rule_name_the_line(project, args, message):
    project.rules(f"""
        from makeflow_rules import convert
        convert("x", {args})
    """)
    done = project.run("list")
    assert done.code == 2 and "Makeflow.py:3" in done.err and message in done.err, done.err
