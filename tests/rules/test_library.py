"""The library as a whole: light to import, every entry documented, arguments fingerprinted."""

from __future__ import annotations

import inspect
import re
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

import makeflow_rules
from makeflow import load

DOCS = Path(__file__).resolve().parents[2] / "docs" / "rules.md"
HEAVY = ("pyarrow", "duckdb", "matplotlib", "sklearn", "numpy", "nbclient", "nbconvert",
         "nbformat", "jinja2", "fsspec")


def test_importing_every_name_imports_no_heavy_library():
    code = textwrap.dedent(f"""
        import sys
        from makeflow_rules import *
        import makeflow_rules
        for name in makeflow_rules.__all__:
            getattr(makeflow_rules, name)
        print(sorted(set({HEAVY!r}) & {{m.split(".")[0] for m in sys.modules}}))
    """)
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                         check=True, timeout=60).stdout
    assert out.strip() == "[]"


@pytest.mark.parametrize("name", makeflow_rules.__all__)
def test_every_entry_is_documented_with_an_example(name):
    docs = DOCS.read_text()
    if name == "UNPINNED":
        assert "sha256=UNPINNED" in docs
        return
    assert re.search(rf"^### .*`{name}[`(]", docs, re.M), f"no section for {name}"
    entry = getattr(makeflow_rules, name)
    assert "Example::" in (inspect.getdoc(entry) or ""), f"{name} has no example"


def test_an_unknown_name_is_an_attribute_error():
    with pytest.raises(AttributeError, match="no attribute 'nope'"):
        makeflow_rules.nope  # noqa: B018


# Declarations, each with one argument that shapes the output and another value for it.
VARIANTS = [
    ('download("r", url=X, output="o", sha256="0" * 64)', '"http://h/a"', '"http://h/b"'),
    ('download("r", url="http://h/a", output="o", sha256=X)', '"0" * 64', '"1" * 64'),
    ('extract("r", archive="a.zip", members={X: "o"})', '"x/a"', '"x/b"'),
    ('convert("r", input="a.csv", output="o.parquet", compression=X)', '"zstd"', '"gzip"'),
    ('sql("r", inputs={"t": "a.csv"}, output="o.csv", query=X)', '"SELECT 1"', '"SELECT 2"'),
    ('notebook("r", source="n.ipynb", executed="e.ipynb", html="e.html", parameters=X)',
     '{"k": 1}', '{"k": 2}'),
    ('train_model("r", data="d.csv", model="m.pkl", target="y", hyperparameters=X)',
     '{"alpha": 1}', '{"alpha": 2}'),
    ('train_model("r", data="d.csv", model="m.pkl", target="y", estimator=X)',
     '"sklearn.linear_model.Ridge"', '"sklearn.linear_model.Lasso"'),
    ('evaluate_model("r", model="m", data="d.csv", metrics="o", target="y", scores=X)',
     '["r2"]', '["mae"]'),
    ('evaluate_model("r", model="m", data="d.csv", metrics="o", target=X)', '"y"', '"z"'),
    ('render("r", template="t", output="o", values=X)', '{"title": "A"}', '{"title": "B"}'),
]


def _params(tmp_path: Path, call: str) -> dict:
    (tmp_path / "Makeflow.py").write_text(f"from makeflow_rules import *\n{call}\n")
    return dict(load(tmp_path / "Makeflow.py").rules[0].params)


@pytest.mark.parametrize(("call", "old", "new"), VARIANTS)
def test_a_factory_argument_is_a_parameter_of_its_rule(tmp_path, call, old, new):
    """Parameters are part of a step's fingerprint, so the step becomes stale."""
    before = _params(tmp_path, call.replace("X", old))
    assert before == _params(tmp_path, call.replace("X", old))
    assert before != _params(tmp_path, call.replace("X", new))


def test_rule_options_pass_through_a_factory(tmp_path):
    (tmp_path / "Makeflow.py").write_text(
        "from makeflow_rules import convert\n"
        'convert("c", input="a.csv", output="a.parquet", timeout="5m", always=True,\n'
        '        resources={"cpus": 2})\n')
    made = load(tmp_path / "Makeflow.py").rules[0]
    assert made.timeout == 300 and made.always
    assert made.resources.cpus == 2


def test_evaluate_model_marks_its_file_as_metrics(tmp_path):
    (tmp_path / "Makeflow.py").write_text(
        "from makeflow_rules import evaluate_model\n"
        'evaluate_model("e", model="m.pkl", data="d.csv", metrics="out/m.json", target="y")\n')
    assert load(tmp_path / "Makeflow.py").rules[0].metrics == ("out/m.json",)
