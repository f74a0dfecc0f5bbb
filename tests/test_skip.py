"""Conditional steps: a step that decides at run time not to make its outputs (`Skip`, or
exit status 77 for a shell step) is skipped with its reason, as is everything that needs
it; the build succeeds, and the decision holds until the step's inputs, code or params
change."""

from __future__ import annotations

import json
import os
import time
from pathlib import Path

from makeflow.store import hashing, history

GATE = """\
    from makeflow import Skip, rule

    @rule(inputs="score.txt", outputs="deployed.txt", params={{"minimum": {minimum}}})
    def deploy(step):
        score = float(step.inputs[0].read_text())
        if score < step.params.minimum:
            raise Skip(f"score {{score}} is below {{step.params.minimum}}")
        step.outputs[0].write_text(f"deployed {{score}}\\n")

    rule("notify", inputs="deployed.txt", outputs="notified.txt", shell="cp {{inputs}} {{outputs}}")
    rule("announce", inputs="notified.txt", outputs="announced.txt", shell="cp {{inputs}} {{outputs}}")
    rule("report", inputs="score.txt", outputs="report.txt", shell="cp {{inputs}} {{outputs}}")
    rule("all", inputs=["announced.txt", "report.txt"], default=True)
"""  # noqa: E501


def gate(project, score: str, minimum: float = 0.4):
    project.rules(GATE.format(minimum=minimum))
    project.write("score.txt", score)
    return project


def test_a_skip_skips_the_step_and_what_needs_it_and_the_build_succeeds(project):
    gate(project, "0.3")

    done = project.run("build")

    assert done.code == 0, done.text
    assert "deploy skipped: score 0.3 is below 0.4" in done.out
    assert "notify skipped: deploy: score 0.3 is below 0.4" in done.out
    assert "announce skipped: deploy: score 0.3 is below 0.4" in done.out
    assert "ran 1," in done.out and "skipped 3" in done.out and "failed 0" in done.out
    assert project.read("report.txt") == "0.3"  # what does not need the gate still runs
    assert not project.exists("deployed.txt") and not project.exists("notified.txt")
    assert "Traceback" not in done.text


def test_a_second_build_with_nothing_changed_runs_nothing_and_still_reports_the_skip(project):
    gate(project, "0.3")
    assert project.run("build").code == 0

    again = project.run("build")

    assert again.code == 0, again.text
    assert "nothing to do: everything is up to date" in again.out
    assert "deploy skipped: score 0.3 is below 0.4" in again.out
    assert "announce skipped: deploy: score 0.3 is below 0.4" in again.out
    assert "ran 0," in again.out and "skipped 3" in again.out
    log = project.read(".makeflow/logs/deploy.log")
    assert log.count("step skipped") == 1  # the gate did not run again


def test_the_no_op_with_a_skip_stays_on_the_quick_path(project):
    gate(project, "0.3")
    project.build()
    old = time.time() - 3600  # as time passing does: stats are trusted once settled
    for path in project.root.rglob("*"):
        if ".makeflow" not in path.parts and path.is_file():
            os.utime(path, (old, old))
    project.build()
    before = hashing.bytes_hashed

    result = project.build()

    assert result.plan.quick, "a no-op with a skipped step is settled by stats alone"
    assert hashing.bytes_hashed == before
    assert result.ran == [] and result.skipped == {
        "deploy": "score 0.3 is below 0.4", "notify": "deploy: score 0.3 is below 0.4",
        "announce": "deploy: score 0.3 is below 0.4"}


def test_a_changed_input_reruns_the_gate_and_a_pass_runs_what_was_skipped(project):
    gate(project, "0.3")
    project.build()
    project.write("score.txt", "0.7")

    result = project.build()

    assert result.ran == ["report", "deploy", "notify", "announce"]
    assert result.skipped == {}
    assert project.read("announced.txt") == "deployed 0.7\n"


def test_a_changed_param_reruns_the_gate(project):
    gate(project, "0.3")
    project.build()
    gate(project, "0.3", minimum=0.2)

    result = project.build()

    assert set(result.ran) == {"deploy", "notify", "announce"} and result.skipped == {}


def test_a_skip_keeps_the_outputs_of_the_last_run_that_made_them(project):
    gate(project, "0.7")
    project.build()
    project.write("score.txt", "0.1")

    result = project.build()

    assert result.skipped["deploy"] == "score 0.1 is below 0.4"
    assert project.read("deployed.txt") == "deployed 0.7\n"  # the last deployment stays
    assert not project.exists(".makeflow/aside") or not any(
        Path(project.root, ".makeflow/aside").iterdir())
    assert project.build().ran == []  # and it stays skipped, with that file in place


def test_what_a_skipping_step_wrote_before_it_decided_is_removed(project):
    project.rules("""\
        from makeflow import Skip, rule

        @rule(outputs="half.txt")
        def half(step):
            step.outputs[0].write_text("partial")
            raise Skip("changed my mind")
    """)

    result = project.build()

    assert result.skipped == {"half": "changed my mind"} and result.ok
    assert not project.exists("half.txt")


def test_a_shell_step_skips_with_exit_status_77_and_its_last_line_is_the_reason(project):
    project.rules("""\
        from makeflow import rule

        rule("check", inputs="n.txt", outputs="ok.txt",
             shell='if [ "$(cat {inputs})" -lt 5 ]; then echo "n is below 5"; exit 77; fi\\n'
                   'cp {inputs} {outputs}')
        rule("use", inputs="ok.txt", outputs="used.txt", shell="cp {inputs} {outputs}")
    """)
    project.write("n.txt", "3")

    done = project.run("build", "used.txt")

    assert done.code == 0, done.text
    assert "check skipped: n is below 5" in done.out
    assert "use skipped: check: n is below 5" in done.out
    assert not project.exists("ok.txt")


def test_a_shell_step_that_prints_nothing_is_skipped_with_its_exit_status(project):
    project.rules("""\
        from makeflow import rule

        rule("quiet", outputs="q.txt", shell="exit 77")
    """)

    done = project.run("build")

    assert done.code == 0, done.text
    assert "quiet skipped: exit status 77" in done.out


def test_status_and_dry_run_show_what_stays_skipped(project):
    gate(project, "0.3")
    project.run("build")

    status = project.run("status")
    dry = project.run("build", "-n")
    document = json.loads(project.run("status", "--json").out)

    assert status.code == 0 and "skipped  deploy: score 0.3 is below 0.4" in status.out
    assert "1 of 4 steps up to date, 3 skipped" in status.out
    assert "deploy skipped: score 0.3 is below 0.4" in dry.out
    assert document["stale"] == []
    assert {"step": "deploy", "rule": "deploy",
            "reason": "score 0.3 is below 0.4"} in document["skipped"]


def test_build_json_reports_each_skip_with_its_reason(project):
    gate(project, "0.3")

    done = project.run("build", "--json")

    events = [json.loads(line) for line in done.out.splitlines()]
    skips = {e["step"]: e for e in events if e["event"] == "step_skipped"}
    assert skips["deploy"]["reason"] == "score 0.3 is below 0.4" and skips["deploy"]["decided"]
    assert skips["notify"]["reason"] == "deploy: score 0.3 is below 0.4"
    assert not skips["notify"]["decided"]
    finished = events[-1]
    assert finished["event"] == "build_finished" and finished["ok"]
    assert finished["skipped"]["announce"] == "deploy: score 0.3 is below 0.4"


def test_the_run_history_keeps_each_skip_with_its_reason(project):
    gate(project, "0.3")
    project.run("build")
    project.run("build")

    runs = json.loads(project.run("runs", "--json").out)["runs"]
    with history.reading(project.root) as db:
        first = history.run(db, runs[-1]["id"])

    assert [r["counts"].get("skipped") for r in runs] == [3, 3]
    steps = {s.step: s for s in first.steps}
    assert steps["deploy"].status == "skipped"
    assert steps["deploy"].reasons[-1] == "skipped: score 0.3 is below 0.4"
    assert steps["deploy"].started is not None  # it ran, and decided
    assert steps["notify"].reasons == ["skipped: deploy: score 0.3 is below 0.4"]


def test_skip_is_part_of_the_public_api():
    import makeflow

    assert "Skip" in makeflow.__all__
    assert str(makeflow.Skip("why")) == "why"


def test_the_report_shows_the_skipped_steps_with_their_reason(project):
    gate(project, "0.3")
    project.run("build")

    done = project.run("report", "-o", "report.html")

    assert done.code == 0, done.text
    page = project.read("report.html")
    assert "score 0.3 is below 0.4" in page and "skipped" in page


def test_force_runs_the_gate_again(project):
    gate(project, "0.3")
    project.build()

    result = project.build(force=True)

    assert "report" in result.ran and result.skipped["deploy"] == "score 0.3 is below 0.4"
    assert project.read(".makeflow/logs/deploy.log").count("step skipped") == 1  # a new log


def test_a_skip_is_never_saved_in_the_run_cache(project):
    """The outputs a skipped step keeps are an older run's: they must not be restored
    later as the result of the inputs it skipped on."""
    gate(project, "0.7")
    assert project.run("build").code == 0  # deployed, and cached under score 0.7
    project.write("score.txt", "0.1")
    assert "deploy skipped" in project.run("build").out
    assert project.run("clean", "deploy").code == 0

    done = project.run("build")

    assert "deploy skipped: score 0.1 is below 0.4" in done.out, done.text
    assert "restored" not in done.out and not project.exists("deployed.txt")


def test_forcerun_runs_a_skipped_gate_again_and_what_it_decides_holds(project):
    gate(project, "0.3")
    assert project.run("build").code == 0

    done = project.run("build", "--forcerun", "deploy")

    assert done.code == 0, done.text
    assert "[1/3] deploy skipped: score 0.3 is below 0.4" in done.out
    assert project.read(".makeflow/logs/deploy.log").count("step skipped") == 1


def test_why_says_a_file_is_skipped_and_why(project):
    gate(project, "0.3")
    project.run("build")

    assert "made by deploy" in project.run("why", "deployed.txt").out
    assert "it is skipped: score 0.3 is below 0.4" in project.run("why", "deployed.txt").out
    assert "it is skipped: deploy: score 0.3" in project.run("why", "notified.txt").out


def test_a_no_op_lists_at_most_ten_skipped_steps_and_writes_no_row_for_them(project):
    lines = ["from makeflow import Skip, rule", "",
             '@rule(inputs="in.txt", outputs="gate.txt")',
             "def gate(step):", '    raise Skip("gated off")', ""]
    lines += [f'rule("s{i}", inputs="gate.txt", outputs="out/{i}.txt", '
              'shell="cp {inputs} {outputs}")' for i in range(15)]
    lines.append('rule("all", inputs=[f"out/{i}.txt" for i in range(15)], default=True)')
    project.rules("\n".join(lines) + "\n")
    project.write("in.txt", "x")
    assert project.run("build").code == 0

    again = project.run("build")

    assert again.code == 0, again.text
    assert again.out.count(" skipped: ") == 10
    assert "... and 6 more skipped (makeflow status lists them)" in again.out
    with history.reading(project.root) as db:
        last = history.run(db)
    assert last.counts["skipped"] == 16 and last.steps == []


def test_the_live_view_on_a_terminal_shows_each_skip_and_the_summary(project):
    from terminal import Terminal

    gate(project, "0.3")

    first = Terminal(project.root, "build", env={"NO_COLOR": "1"})
    assert first.wait() == 0, first.text
    again = Terminal(project.root, "build", env={"NO_COLOR": "1"})
    assert again.wait() == 0, again.text

    assert "deploy  skipped: score 0.3 is below 0.4" in first.text
    assert "notify  skipped: deploy: score 0.3 is below 0.4" in first.text
    assert "skipped 3" in first.text
    assert "deploy skipped: score 0.3 is below 0.4" in again.text
    assert "nothing to do" in again.text and "skipped 3" in again.text
