"""notebook: executed on a real ipykernel, with parameters, HTML and clear failures."""

from __future__ import annotations

import json

import nbformat
import pytest

from makeflow import StepError
from makeflow_rules.notebooks import execute

from ruleshelp import fake_step


def write_notebook(path, *cells, tagged=0):
    nb = nbformat.v4.new_notebook()
    nb.metadata["kernelspec"] = {"name": "python3", "display_name": "Python 3",
                                 "language": "python"}
    for i, source in enumerate(cells):
        cell = nbformat.v4.new_code_cell(source)
        cell.id = f"cell-{i}"
        if i == tagged:
            cell.metadata["tags"] = ["parameters"]
        nb.cells.append(cell)
    nbformat.write(nb, path)
    return path


CELLS = ('n = 1\ndata = "default.csv"\nsummary = "default.txt"',
         "rows = open(data).read().split()\nprint(f'{len(rows)} rows, n={n}')",
         "open(summary, 'w').write(str(sum(map(int, rows)) * n))")


def run(tmp_path, nb_path, **params):
    (tmp_path / "data.csv").write_text("1\n2\n3\n")
    outs = [tmp_path / "run.ipynb", tmp_path / "run.html", tmp_path / "summary.txt"]
    step = fake_step([nb_path, tmp_path / "data.csv"], outs, inputs=["data"],
                     outputs=["summary"], parameters=params, kernel="python3",
                     cell_timeout=120)
    execute(step)
    return outs


def test_a_notebook_runs_with_injected_parameters_and_writes_html(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    nb_path = write_notebook(tmp_path / "analysis.ipynb", *CELLS)
    executed, html, summary = run(tmp_path, nb_path, n=10)
    assert summary.read_text() == "60"
    nb = nbformat.read(executed, as_version=4)
    assert nb.cells[1].id == "injected-parameters"
    assert "n = 10" in nb.cells[1].source
    assert nb.cells[2].outputs[0]["text"] == "3 rows, n=10\n"
    page = html.read_text()
    assert page.startswith("<!DOCTYPE html>") and "3 rows, n=10" in page
    assert "<title>analysis</title>" in page


def test_executing_twice_gives_the_same_bytes(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    nb_path = write_notebook(tmp_path / "analysis.ipynb", *CELLS)
    first = [p.read_bytes() for p in run(tmp_path, nb_path, n=2)]
    second = [p.read_bytes() for p in run(tmp_path, nb_path, n=2)]
    assert first == second


def test_a_failing_cell_fails_the_step_with_its_error(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    nb_path = write_notebook(tmp_path / "bad.ipynb", "x = 1", "raise ValueError('no lakes')")
    with pytest.raises(StepError, match=r"bad.ipynb: a cell raised ValueError: no lakes"):
        run(tmp_path, nb_path)


def test_a_notebook_rule_in_a_pipeline(project):
    write_notebook(project.root / "nb.ipynb", *CELLS)
    project.write("data.csv", "4\n5\n")
    project.rules("""
        from makeflow_rules import notebook
        notebook("explore", source="nb.ipynb", executed="out/nb.ipynb", html="out/nb.html",
                 inputs={"data": "data.csv"}, outputs={"summary": "out/summary.txt"},
                 parameters={"n": 3})
    """)
    done = project.run("build")
    assert done.code == 0, done.text
    assert project.read("out/summary.txt") == "27"
    assert json.loads(project.read("out/nb.ipynb"))["cells"][1]["id"] == "injected-parameters"
    assert project.run("status", "--check").code == 0
    project.rules(project.read("Makeflow.py").replace('"n": 3', '"n": 4'))
    assert "parameter parameters" in project.run("status").out


@pytest.mark.parametrize(("args", "message"), [
    ('parameters={"not valid": 1}', "'not valid' cannot be a Python variable name"),
    ('inputs={"a": "x"}, parameters={"a": 1}', "'a' is given twice"),
    ("cell_timeout=0", "cell_timeout= must be"),
])
def test_mistakes_in_a_notebook_rule_name_the_line(project, args, message):
    project.rules(f"""
        from makeflow_rules import notebook
        notebook("nb", source="n.ipynb", executed="e.ipynb", html="e.html", {args})
    """)
    done = project.run("list")
    assert done.code == 2 and "Makeflow.py:3" in done.err and message in done.err, done.err
