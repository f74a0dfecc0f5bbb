"""Property test: a pipeline that grows a checkpoint, random edits, a checked build after each.

The pipeline: `split` (a checkpoint) writes one file per line of `in/data.txt` into
`parts/`, so the number of its outputs depends on its input; one `up` step per part (a
pattern rule, `parts/{i}.txt -> up/{i}.txt`); `agg` reads every `up` file through an
inputs function that globs `parts/`; `final` reads `agg`'s output. The per-part and
final ops may read only part of their input, so early cutoff happens.

Edits: add, remove, change (same size or not) or rewrite a line; touch the data; change
a command; delete a part, an `up` output or `.makeflow`; age every file.

Checked after every edit, for one `makeflow build` (never two): (1) every file on disk
holds exactly the bytes a pure-Python model predicts, outputs of parts that disappeared
included (they are left in place), and the outputs a clean build of the same rules and
data leaves in a fresh folder; (2) the steps that ran are exactly those the model says
must run: never ran, command changed, input bytes or output bytes differ from the step's
last run, so a checkpoint that writes the same parts cuts off everything below it, and a
new part runs only its own step and the aggregates.

`MAKEFLOW_PROPERTY_EXAMPLES` and `MAKEFLOW_PROPERTY_EDITS` set the size, as in
test_properties.py.
"""

from __future__ import annotations

import io
import os
import shutil
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from hypothesis import HealthCheck, settings
from hypothesis import strategies as st
from hypothesis.stateful import RuleBasedStateMachine, initialize, rule, run_state_machine_as_test

from makeflow import BuildOptions, build, load
from makeflow.ui.plain import PlainReporter

EXAMPLES = int(os.environ.get("MAKEFLOW_PROPERTY_EXAMPLES", "15"))
EDITS = int(os.environ.get("MAKEFLOW_PROPERTY_EDITS", "5"))

SPLIT = ("mkdir -p {outputs}; n=0; while IFS= read -r line; do"
         " printf '%s\\n' \"$line\" > {outputs}/p$(printf %02d $n).txt; n=$((n+1));"
         " done < {inputs}")
UP_OPS = {
    "upper": "(printf '%s\\n' TAG; tr a-z A-Z < {inputs}) > {outputs}",
    "head": "(printf '%s:' TAG; head -c 1 {inputs}; printf '\\n') > {outputs}",
}
FINAL_OPS = {
    "wc": "(printf '%s ' TAG; wc -c < {inputs} | tr -d ' ') > {outputs}",
    "copy": "(printf '%s\\n' TAG; cat {inputs}) > {outputs}",
}


@dataclass
class Spec:
    lines: list[str]
    up_op: str = "upper"
    final_op: str = "wc"
    revs: dict[str, int] = field(default_factory=lambda: {"split": 0, "up": 0, "agg": 0,
                                                          "final": 0})

    def tag(self, name: str) -> str:
        return f"{name}v{self.revs[name]}"


def render(spec: Spec) -> str:
    split = SPLIT + "; : " + spec.tag("split")  # a changed tag changes the command only
    up = UP_OPS[spec.up_op].replace("TAG", spec.tag("up") + "-{wildcards.i}")
    agg = f"(printf '%s\\n' {spec.tag('agg')}; cat /dev/null {{inputs}}) > {{outputs}}"
    final = FINAL_OPS[spec.final_op].replace("TAG", spec.tag("final"))
    return (
        "from makeflow import rule, expand, glob_wildcards\n"
        f"rule('split', inputs='in/data.txt', outputs='parts', checkpoint=True, shell={split!r})\n"
        f"rule('up', inputs='parts/{{i}}.txt', outputs='up/{{i}}.txt', shell={up!r})\n"
        "rule('agg', inputs=lambda: expand('up/{i}.txt', i=glob_wildcards('parts/{i}.txt').i),\n"
        f"     outputs='agg.txt', shell={agg!r})\n"
        f"rule('final', inputs='agg.txt', outputs='final.txt', shell={final!r}, default=True)\n"
    )


def data_bytes(spec: Spec) -> bytes:
    return "".join(line + "\n" for line in spec.lines).encode()


# ---------------------------------------------------------------------------------------------
# The model: each step's record, and a replay of one build.


@dataclass(frozen=True)
class Record:
    recipe: tuple
    inputs: tuple
    outputs: tuple


def up_bytes(spec: Spec, item: str, content: bytes) -> bytes:
    tag = f"{spec.tag('up')}-{item}".encode()
    if spec.up_op == "upper":
        return tag + b"\n" + content.upper()
    return tag + b":" + content[:1] + b"\n"


def final_bytes(spec: Spec, agg: bytes) -> bytes:
    tag = spec.tag("final").encode()
    if spec.final_op == "wc":
        return tag + b" " + str(len(agg)).encode() + b"\n"
    return tag + b"\n" + agg


def parts_of(files: dict[str, bytes]) -> tuple:
    return tuple(sorted((p, c) for p, c in files.items() if p.startswith("parts/")))


def replay(spec: Spec, records: dict[str, Record], disk: dict[str, bytes]
           ) -> tuple[set[str], dict[str, bytes], dict[str, Record]]:
    """The steps one build must run, the files it leaves, and the records after it."""
    files, records, ran = dict(disk), dict(records), set()

    def step(sid: str, recipe: tuple, inputs: list[str], outputs: list[str], make) -> None:
        now = Record(recipe, tuple((p, files.get(p)) for p in inputs),
                     tuple((p, files.get(p)) for p in outputs))
        if records.get(sid) == now:
            return
        written = make()
        files.update(written)
        records[sid] = Record(recipe, now.inputs, tuple((p, written[p]) for p in outputs))
        ran.add(sid)

    # the checkpoint: its output is the folder, compared as its files
    now = Record(("split", spec.tag("split")), (("in/data.txt", files.get("in/data.txt")),),
                 parts_of(files))
    if records.get("split") != now:
        for path in [p for p in files if p.startswith("parts/")]:
            del files[path]
        for n, line in enumerate(spec.lines):
            files[f"parts/p{n:02d}.txt"] = line.encode() + b"\n"
        records["split"] = Record(now.recipe, now.inputs, parts_of(files))
        ran.add("split")
    items = sorted(p[len("parts/"):-len(".txt")] for p in files if p.startswith("parts/"))
    for item in items:
        source, out = f"parts/{item}.txt", f"up/{item}.txt"
        step(f"up[i={item}]", ("up", spec.up_op, spec.tag("up")), [source], [out],
             lambda s=source, o=out, i=item: {o: up_bytes(spec, i, files[s])})
    ups = [f"up/{i}.txt" for i in items]
    step("agg", ("agg", spec.tag("agg"), tuple(ups)), ups, ["agg.txt"],
         lambda: {"agg.txt": spec.tag("agg").encode() + b"\n" + b"".join(files[u] for u in ups)})
    step("final", ("final", spec.final_op, spec.tag("final")), ["agg.txt"], ["final.txt"],
         lambda: {"final.txt": final_bytes(spec, files["agg.txt"])})
    return ran, files, records


# ---------------------------------------------------------------------------------------------
# Files and builds.


def snapshot(root: Path) -> dict[str, bytes]:
    return {p.relative_to(root).as_posix(): p.read_bytes() for p in root.rglob("*")
            if p.is_file() and ".makeflow" not in p.parts
            and p.name not in ("makeflow.lock", "Makeflow.py")}


def write(root: Path, spec: Spec) -> None:
    (root / "in").mkdir(exist_ok=True)
    (root / "in/data.txt").write_bytes(data_bytes(spec))
    (root / "Makeflow.py").write_text(render(spec))


def run_build(root: Path) -> tuple[set[str], str]:
    out = io.StringIO()
    result = build(load(root / "Makeflow.py"), [], BuildOptions(jobs=2, cache=False),
                   PlainReporter(out))
    assert result.ok, out.getvalue()
    assert len(result.ran) == len(set(result.ran)), out.getvalue()  # each step at most once
    return set(result.ran), out.getvalue()


_ages = [time.time_ns() - 86_400 * 10**9]


def age(path: Path) -> None:
    _ages[0] += 1_000_003
    os.utime(path, ns=(_ages[0], _ages[0]))


lines = st.lists(st.text(alphabet="abAB", max_size=3), max_size=5)


class CheckpointEdits(RuleBasedStateMachine):
    def __init__(self) -> None:
        super().__init__()
        self.root = Path(tempfile.mkdtemp(prefix="makeflow-checkpoint-"))
        self.records: dict[str, Record] = {}
        self.clean: dict[str, dict[str, bytes]] = {}

    def teardown(self) -> None:
        shutil.rmtree(self.root, ignore_errors=True)

    def check(self) -> None:
        want_ran, want_files, records = replay(self.spec, self.records, snapshot(self.root))
        ran, output = run_build(self.root)
        assert ran == want_ran, f"ran {sorted(ran)}, model {sorted(want_ran)}\n{output}"
        after = snapshot(self.root)
        assert after == want_files, sorted(p for p in after.keys() | want_files.keys()
                                           if after.get(p) != want_files.get(p))
        fresh = self.fresh_build()
        for path, content in fresh.items():
            assert after.get(path) == content, (path, output)
        self.records = records

    def fresh_build(self) -> dict[str, bytes]:
        """What a build in a new folder leaves, kept by the rules and data it was given."""
        key = render(self.spec) + repr(self.spec.lines)
        if key not in self.clean:
            with tempfile.TemporaryDirectory(prefix="makeflow-fresh-") as fresh:
                write(Path(fresh), self.spec)
                run_build(Path(fresh))
                self.clean[key] = snapshot(Path(fresh))
        return self.clean[key]

    @initialize(start=lines, up_op=st.sampled_from(sorted(UP_OPS)),
                final_op=st.sampled_from(sorted(FINAL_OPS)))
    def first_build(self, start: list[str], up_op: str, final_op: str) -> None:
        self.spec = Spec(start, up_op, final_op)
        write(self.root, self.spec)
        self.check()

    def rewrite_data(self) -> None:
        (self.root / "in/data.txt").write_bytes(data_bytes(self.spec))
        self.check()

    @rule(line=st.text(alphabet="abAB", max_size=3))
    def add_line(self, line: str) -> None:
        self.spec.lines.append(line)
        self.rewrite_data()

    @rule(data=st.data())
    def remove_line(self, data: Any) -> None:
        if self.spec.lines:
            self.spec.lines.pop(data.draw(st.integers(0, len(self.spec.lines) - 1)))
        self.rewrite_data()

    @rule(data=st.data(), line=st.text(alphabet="abAB", max_size=3))
    def change_line(self, data: Any, line: str) -> None:
        if self.spec.lines:
            at = data.draw(st.integers(0, len(self.spec.lines) - 1))
            if data.draw(st.booleans()):  # the same size, often the same first letter
                line = self.spec.lines[at].swapcase()
            self.spec.lines[at] = line
        self.rewrite_data()

    @rule()
    def touch_data(self) -> None:
        os.utime(self.root / "in/data.txt")
        self.check()

    @rule(name=st.sampled_from(["split", "up", "agg", "final"]))
    def change_command(self, name: str) -> None:
        self.spec.revs[name] += 1
        (self.root / "Makeflow.py").write_text(render(self.spec))
        self.check()

    @rule(data=st.data())
    def delete_an_output(self, data: Any) -> None:
        made = sorted(p for p in snapshot(self.root) if p.startswith(("parts/", "up/", "agg")))
        if made:
            (self.root / data.draw(st.sampled_from(made))).unlink()
        self.check()

    @rule()
    def forget_state(self) -> None:
        shutil.rmtree(self.root / ".makeflow", ignore_errors=True)
        (self.root / "makeflow.lock").unlink(missing_ok=True)
        self.records = {}
        self.check()

    @rule()
    def age_all_files(self) -> None:
        for path in self.root.rglob("*"):
            if path.is_file() and ".makeflow" not in path.parts:
                age(path)
        self.check()


def test_a_growing_graph_builds_as_a_clean_build_with_minimal_reruns() -> None:
    run_state_machine_as_test(CheckpointEdits, settings=settings(
        max_examples=EXAMPLES, stateful_step_count=EDITS, deadline=None,
        suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large]))
