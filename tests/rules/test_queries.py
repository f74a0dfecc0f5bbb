"""sql: DuckDB over real CSV, Parquet and JSON lines files, from a step and from the CLI."""

from __future__ import annotations

import csv
import json

import pytest

from makeflow import StepError
from makeflow_rules.queries import WRITERS, run_query

from ruleshelp import fake_step

TEMPS = "city,year,temp\nOslo,2020,6\nOslo,2021,8\nLima,2020,19\nLima,2021,21\n"
CITIES = '{"city": "Oslo", "country": "NO"}\n{"city": "Lima", "country": "PE"}\n'
JOIN = ("SELECT c.country, avg(t.temp) AS temp FROM t JOIN c USING (city) "
        "GROUP BY c.country ORDER BY c.country;")


def query(tmp_path, out, text=JOIN, script=None):
    (tmp_path / "t.csv").write_text(TEMPS)
    (tmp_path / "c.jsonl").write_text(CITIES)
    inputs = [tmp_path / "t.csv", tmp_path / "c.jsonl"] + ([script] if script else [])
    target = tmp_path / out
    run_query(fake_step(inputs, [target], tables=["t", "c"], query=text,
                        writer=WRITERS["." + out.split(".")[-1]]))
    return target


def test_a_join_over_csv_and_json_lines_writes_csv(tmp_path):
    out = query(tmp_path, "r.csv")
    with open(out, newline="") as f:
        assert list(csv.reader(f)) == [["country", "temp"], ["NO", "7.0"], ["PE", "20.0"]]


def test_json_lines_and_json_array_outputs(tmp_path):
    lines = query(tmp_path, "r.jsonl").read_text().splitlines()
    assert [json.loads(x) for x in lines] == [{"country": "NO", "temp": 7.0},
                                              {"country": "PE", "temp": 20.0}]
    assert json.loads(query(tmp_path, "r.json").read_text())[1]["country"] == "PE"


def test_parquet_output_is_byte_stable_and_readable_again(tmp_path):
    first = query(tmp_path, "1.parquet").read_bytes()
    second = query(tmp_path, "2.parquet").read_bytes()
    assert first == second and first[:4] == b"PAR1"
    again = fake_step([tmp_path / "1.parquet"], [tmp_path / "again.csv"], tables=["r"],
                      query="SELECT count(*) AS n FROM r", writer=WRITERS[".csv"])
    run_query(again)
    assert (tmp_path / "again.csv").read_text() == "n\n2\n"


def test_a_script_file_is_read_when_the_step_runs(tmp_path):
    script = tmp_path / "q.sql"
    script.write_text("SELECT max(temp) AS hottest FROM t")
    out = query(tmp_path, "r.csv", text=None, script=script)
    assert out.read_text() == "hottest\n21\n"


def test_a_bad_query_fails_with_duckdbs_first_line(tmp_path):
    with pytest.raises(StepError, match=r"the query failed: .*nope"):
        query(tmp_path, "r.csv", text="SELECT * FROM nope")


def test_a_pattern_rule_and_its_query_as_a_parameter(project):
    for city in ("oslo", "lima"):
        project.write(f"data/{city}.csv", TEMPS)
    project.rules("""
        from makeflow import rule
        from makeflow_rules import sql
        sql("hot", inputs={"t": "data/{city}.csv"}, output="hot/{city}.csv",
            query="SELECT year FROM t WHERE temp > 7 ORDER BY year")
        rule("all", inputs=["hot/oslo.csv", "hot/lima.csv"], default=True)
    """)
    done = project.run("build")
    assert done.code == 0, done.text
    assert project.read("hot/oslo.csv") == "year\n2020\n2021\n2021\n"
    project.rules(project.read("Makeflow.py").replace("temp > 7", "temp > 20"))
    status = project.run("status")
    assert "parameter query: SELECT year FROM t WHERE temp > 7" in status.out, status.out
    assert project.run("build").code == 0
    assert project.read("hot/lima.csv") == "year\n2021\n"


@pytest.mark.parametrize(("args", "message"), [
    ('inputs=["a.csv"], output="b.csv", query="SELECT 1"', "inputs= must be a dict"),
    ('inputs={"a b": "a.csv"}, output="b.csv", query="SELECT 1"', "must be a plain SQL name"),
    ('inputs={"a": "a.xls"}, output="b.csv", query="SELECT 1"', "has no suffix I can read"),
    ('inputs={"a": "a.csv"}, output="b.xls", query="SELECT 1"', "has no suffix I can write"),
    ('inputs={"a": "a.csv"}, output="b.csv"', "needs either query="),
    ('inputs={"a": "a.csv"}, output="b.csv", query=" "', "non-empty string of SQL"),
])
def test_mistakes_in_a_sql_rule_name_the_line(project, args, message):
    project.rules(f"""
        from makeflow_rules import sql
        sql("x", {args})
    """)
    done = project.run("list")
    assert done.code == 2 and "Makeflow.py:3" in done.err and message in done.err, done.err
