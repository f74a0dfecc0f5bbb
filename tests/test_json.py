"""Machine-readable output: `status --json`, `list --json`, `build --json` (JSON lines as
the build goes) and `-p/--print-commands`, run through the real command line."""

from __future__ import annotations

import json

import pytest

from conftest import restore_by_changing_back

PIPELINE = """\
    from makeflow import config, rule

    rule("prepare", inputs="raw.csv", outputs="clean.csv", shell="cp {inputs} {outputs}")

    @rule(inputs="clean.csv", outputs="model.txt", params={"alpha": config["alpha"]})
    def train(step):
        step.outputs[0].write_text(f"alpha={step.params.alpha}")

    rule("flaky", inputs="model.txt", outputs="flaky.txt", retries=1,
         shell="echo trying; exit 5")
    rule("all", inputs=["model.txt", "flaky.txt"], default=True)
"""


@pytest.fixture
def pipeline(project):
    project.rules(PIPELINE)
    project.write("makeflow.toml", "alpha = 0.1\n")
    project.write("raw my data.csv", "")
    project.write("raw.csv", "x\n1\n")
    return project


def test_status_json_lists_stale_steps_with_reasons_and_commands(pipeline):
    done = pipeline.run("status", "--json", "-p")
    assert done.code == 0, done.text
    doc = json.loads(done.out)
    assert doc["version"] == 1 and doc["total"] == 3
    stale = {s["step"]: s for s in doc["stale"]}
    assert list(stale) == ["prepare", "train", "flaky"]
    assert stale["prepare"]["reasons"] == ["never ran"]
    assert stale["prepare"]["command"] == "cp raw.csv clean.csv"
    assert stale["train"]["command"].startswith("python: train(step)  # code:")
    assert stale["train"]["outputs"] == ["model.txt"]
    assert "command" not in json.loads(pipeline.run("status", "--json").out)["stale"][0]


def test_status_json_check_exits_1_when_stale(pipeline):
    assert pipeline.run("status", "--json", "--check").code == 1


def test_list_json_names_rules_and_files(pipeline):
    doc = json.loads(pipeline.run("list", "--json").out)
    rules = {r["name"]: r for r in doc["rules"]}
    assert rules["prepare"]["kind"] == "shell"
    assert rules["prepare"]["inputs"] == ["raw.csv"] and rules["prepare"]["outputs"] == [
        "clean.csv"]
    assert rules["train"]["kind"] == "python" and rules["all"]["kind"] == "alias"
    assert rules["all"]["default"] and not rules["train"]["default"]
    assert rules["train"]["where"].endswith("Makeflow.py:5")


def test_build_json_streams_one_object_per_line(pipeline):
    done = pipeline.run("build", "--json", "-p", "-k")
    assert done.code == 1
    events = [json.loads(line) for line in done.out.splitlines()]  # every line is JSON
    kinds = [e["event"] for e in events]
    assert kinds[0] == "build_started" and kinds[-1] == "build_finished"
    started = {e["step"]: e for e in events if e["event"] == "step_started"}
    assert started["prepare"]["command"] == "cp raw.csv clean.csv"
    assert started["prepare"]["reasons"] == ["never ran"]
    finished = {e["step"]: e for e in events if e["event"] == "step_finished"}
    assert set(finished) == {"prepare", "train"}
    assert finished["train"]["peak_rss"] > 0 and finished["train"]["cpu"] >= 0
    assert finished["prepare"]["peak_rss"] > 0 and finished["prepare"]["worker"] is None
    retry = next(e for e in events if e["event"] == "step_retrying")
    assert retry["step"] == "flaky" and retry["attempt"] == 1 and retry["retries"] == 1
    failed = next(e for e in events if e["event"] == "step_failed")
    assert failed["error"] == "exit status 5" and "trying" in failed["log_tail"]
    summary = events[-1]
    assert summary["ok"] is False and summary["failed"] == {"flaky": "exit status 5"}
    assert summary["run"] == 1 and sorted(summary["ran"]) == ["prepare", "train"]
    assert all(e["version"] == 1 and e["time"] > 0 for e in events)
    assert "ran 2" not in done.out  # no human lines on stdout


def test_build_json_names_the_steps_restored_from_the_run_cache(project):
    restore_by_changing_back(project)  # alpha 0.1, 0.3, 0.1: the cache holds both
    project.write("makeflow.toml", "alpha = 0.3\n")
    done = project.run("build", "--json")
    assert done.code == 0, done.text
    events = [json.loads(line) for line in done.out.splitlines()]
    restored = [e["step"] for e in events if e["event"] == "step_restored"]
    assert sorted(restored) == ["evaluate", "train"]
    assert not [e for e in events if e["event"] == "step_started"]
    summary = events[-1]
    assert summary["event"] == "build_finished" and summary["ran"] == []
    assert sorted(summary["restored"]) == ["evaluate", "train"] and summary["fresh"] == 1


def test_build_json_dry_run_and_warnings_stay_json(pipeline):
    done = pipeline.run("build", "--json", "-n", "-p")
    assert done.code == 0
    events = [json.loads(line) for line in done.out.splitlines()]
    would = [e for e in events if e["event"] == "would_run"]
    assert [e["step"] for e in would] == ["prepare", "train", "flaky"]
    assert would[0]["command"] == "cp raw.csv clean.csv"


def test_print_commands_on_build_status_and_dry_run(pipeline):
    dry = pipeline.run("build", "-n", "-p", "model.txt")
    assert "would run prepare: never ran" in dry.out
    assert "  $ cp raw.csv clean.csv" in dry.out
    assert not pipeline.exists("clean.csv")
    status = pipeline.run("status", "--print-commands")
    assert "  $ cp raw.csv clean.csv" in status.out
    assert "3 of 3 steps stale" in status.out
    built = pipeline.run("build", "-p", "model.txt")
    assert built.code == 0
    assert "prepare: $ cp raw.csv clean.csv" in built.out
    assert "train: $ python: train(step)" in built.out


def test_print_commands_quotes_file_names(project):
    project.rules('from makeflow import rule\n'
                  'rule("c", inputs="my data.csv", outputs="out.csv",\n'
                  '     shell="cp {inputs} {outputs}")\n')
    project.write("my data.csv", "x")
    done = project.run("status", "-p")
    assert "  $ cp 'my data.csv' out.csv" in done.out
