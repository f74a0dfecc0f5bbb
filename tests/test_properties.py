"""Property tests: random pipelines, random edits, and after each edit a checked build.

Generated: pipelines of 1 to 40 rules over a few `src/*.txt` files, mostly shell steps (cat,
tr, head, wc, printf) and about one in ten Python steps, with fan-in, fan-out, two-output rules,
pattern rules (`gen0/{k}.txt` from `src/{k}.txt`, possibly chained), parameters in `params=`
or in makeflow.toml, and steps that read only part of their input (its first bytes, its
length or its parity) so that early cutoff really happens. Edits: change, touch, rewrite or
replace a source; add a source; delete or hand-edit an output; change a parameter or a
command; restyle, rename, add, remove, reorder or rewire a rule; age every file (so cached
digests are trusted); `makeflow clean`; delete `.makeflow`. A Python step may also write a
value it reaches outside `params=`: a module-level constant, a closure variable of a rule
factory, or a constant in a helper module imported at the top of `Makeflow.py` or in the
step's body; that value (any mix of numbers, strings, lists, tuples, dicts and sets) and
the way the step reaches it are edited too.

Checked after every edit, for a build of everything, of one or two targets, through the
command line, or with `--set`: (1) every output holds exactly the bytes a clean build of the
same rules and sources leaves in a fresh folder, and the bytes a pure-Python model predicts;
(2) the steps that ran are exactly those the model says must run: never ran, recipe or
parameters changed, an output missing or altered, or an input whose bytes differ from those
at the step's last run, which is early cutoff (3) as well: a rerun that writes the same bytes
makes nothing after it rerun.

Every edit is one a stat-based tool can see: a file whose content changes always ends up with
a size, mtime or inode that differs from when makeflow last hashed it. Edits that change
content while restoring size, mtime_ns and inode are out of scope, since no tool that trusts
stat() can detect them.

The default run is short, for CI. `MAKEFLOW_PROPERTY_EXAMPLES=500` runs more examples and
`MAKEFLOW_PROPERTY_EDITS` sets the most edits per example; run with `-s` to see the counts.
"""

from __future__ import annotations

import collections
import copy
import io
import json
import os
import re
import shutil
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

from hypothesis import HealthCheck, settings
from hypothesis import strategies as st
from hypothesis.stateful import (
    RuleBasedStateMachine,
    initialize,
    precondition,
    rule,
    run_state_machine_as_test,
)

from makeflow import BuildOptions, build, load
from makeflow.run.clean import clean
from makeflow.ui.plain import PlainReporter

EXAMPLES = int(os.environ.get("MAKEFLOW_PROPERTY_EXAMPLES", "25"))
EDITS = int(os.environ.get("MAKEFLOW_PROPERTY_EDITS", "5"))
COUNTS: collections.Counter[str] = collections.Counter()

# ---------------------------------------------------------------------------------------------
# What the generated steps do. Each shell op is a command template; TAG is the rule's own text,
# so changing it changes the command. Each op has a pure-Python twin computing the same bytes.
# A reader that stops early drains the rest of its pipe: under pipefail, a writer killed by
# SIGPIPE fails the step.

SHELL_OPS = {
    "cat": r"(printf '%s %s\n' TAG {params.p}; cat {inputs}) > {outputs[0]}",
    "upper": r"(printf '%s\n' TAG; cat {inputs} | tr a-z A-Z; printf '%s\n' {params.p})"
             r" > {outputs[0]}",
    "head": r"(printf '%s:' TAG; cat {inputs} | (head -c 2; cat > /dev/null);"
            r" printf ':%s\n' {params.p})"
            r" > {outputs[0]}",
    "wc": r"(printf '%s ' TAG; cat {inputs} | wc -c | tr -d ' '; printf '%s\n' {params.p})"
          r" > {outputs[0]}",
    "const": r"printf '%s %s\n' TAG {params.p} > {outputs[0]}",
    "split": r"cat {inputs} | (head -c 1; cat > /dev/null) > {outputs[0]} &&"
             r" (printf '%s %s\n' TAG {params.p}; cat {inputs} | tail -c +2) > {outputs[1]}",
}

PYTHON_OPS = {
    "parity": [
        r'data = b"".join(path.read_bytes() for path in step.inputs)',
        r'step.outputs[0].write_bytes(f"TAG {len(data) % 2} {step.params.p}\n".encode())',
    ],
    "reverse": [
        r'data = b"".join(path.read_bytes() for path in step.inputs)',
        r'step.outputs[0].write_bytes(f"TAG {step.params.p}\n".encode() + data[::-1])',
    ],
    "halves": [
        r'data = b"".join(path.read_bytes() for path in step.inputs)',
        r"half = len(data) // 2",
        r"step.outputs[0].write_bytes(data[:half])",
        r'step.outputs[1].write_bytes(f"TAG {step.params.p}\n".encode() + data[half:])',
    ],
}

# How a Python step shows the value it reaches; the same function is the model's twin.
SHOW = '''
def show(value):
    if isinstance(value, (set, frozenset)):
        return type(value).__name__ + "{" + ",".join(sorted(show(v) for v in value)) + "}"
    if isinstance(value, dict):
        items = sorted(show(k) + ":" + show(v) for k, v in value.items())
        return "dict{" + ",".join(items) + "}"
    if isinstance(value, (list, tuple)):
        return type(value).__name__ + "(" + ",".join(show(v) for v in value) + ")"
    return repr(value)
'''
_shown: dict[str, Any] = {}
exec(SHOW, _shown)
show = _shown["show"]

# Where a Python step's value lives: nowhere, a constant of Makeflow.py, a closure of a rule
# factory, a constant of helpers.py used as `helpers.V_x`, or the same imported in the body.
CONTEXTS = ["none", "const", "closure", "helper", "body"]

TWO_OUTPUTS = {"split", "halves"}
PATTERN_OPS = ["upper", "cat", "head", "wc"]


def run_op(op: str, tag: str, p: Any, data: bytes) -> list[bytes]:
    """The bytes a step writes, computed without running it."""
    text = str(p)
    outputs = {
        "cat": lambda: [f"{tag} {text}\n".encode() + data],
        "upper": lambda: [f"{tag}\n".encode() + data.upper() + f"{text}\n".encode()],
        "head": lambda: [f"{tag}:".encode() + data[:2] + f":{text}\n".encode()],
        "wc": lambda: [f"{tag} {len(data)}\n{text}\n".encode()],
        "const": lambda: [f"{tag} {text}\n".encode()],
        "split": lambda: [data[:1], f"{tag} {text}\n".encode() + data[1:]],
        "parity": lambda: [f"{tag} {len(data) % 2} {text}\n".encode()],
        "reverse": lambda: [f"{tag} {text}\n".encode() + data[::-1]],
        "halves": lambda: [data[: len(data) // 2],
                           f"{tag} {text}\n".encode() + data[len(data) // 2:]],
    }
    return outputs[op]()


# ---------------------------------------------------------------------------------------------
# The pipeline as data, and the Makeflow.py and makeflow.toml it renders to.


@dataclass
class RuleSpec:
    """One generated rule. A pattern rule has `{k}` in its paths and runs once per key."""

    name: str
    op: str
    inputs: list[str]
    outputs: list[str]
    p: Any
    q: Any = None  # a parameter no command reads: changing it reruns, with the same output
    rev: int = 0
    from_config: bool = False
    label: str = ""  # the tag's stem: a renamed rule keeps its command
    context: str = "none"  # where a Python step's value lives: see CONTEXTS
    value: Any = None

    def __post_init__(self) -> None:
        self.label = self.label or self.name

    @property
    def python(self) -> bool:
        return self.op in PYTHON_OPS

    @property
    def pattern(self) -> bool:
        return "{k}" in self.outputs[0]

    @property
    def tag(self) -> str:
        return f"{self.label}v{self.rev}"

    @property
    def params(self) -> dict[str, Any]:
        return {"p": self.p} if self.q is None else {"p": self.p, "q": self.q}


@dataclass
class PipelineSpec:
    sources: dict[str, bytes]  # key -> content of src/{key}.txt
    patterns: list[RuleSpec]
    rules: list[RuleSpec]
    style: int = 0  # comments, docstrings and keyword order: never a reason to rerun
    added: int = 0

    def rule(self, name: str) -> RuleSpec:
        return next(r for r in self.patterns + self.rules if r.name == name)

    def files(self) -> list[str]:
        """Every file a new rule may read: sources, pattern outputs, outputs of rules."""
        found = [f"src/{k}.txt" for k in self.sources]
        found += [r.outputs[0].replace("{k}", k) for r in self.patterns for k in self.sources]
        return found + [out for r in self.rules for out in r.outputs]

    def users(self, path: str) -> list[RuleSpec]:
        return [r for r in self.rules if path in r.inputs]


def toml_value(value: Any) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, str):
        return json.dumps(value)
    return repr(value)


def render_params(r: RuleSpec) -> str:
    p = f'config["p"]["{r.name}"]' if r.from_config else repr(r.p)
    q = "" if r.q is None else f', "q": {r.q!r}'
    return f'{{"p": {p}{q}}}'


def render_shell(r: RuleSpec, style: int) -> str:
    tag = f"{r.tag}-{{wildcards.k}}" if r.pattern else r.tag
    command = SHELL_OPS[r.op].replace("TAG", tag)
    head = f"rule({r.name!r}, inputs={r.inputs!r}, outputs={r.outputs!r}"
    if style % 2:
        return f"{head},\n     shell={command!r},\n     params={render_params(r)})\n"
    return f"{head},\n     params={render_params(r)},\n     shell={command!r})\n"


VALUE_EXPR = {"const": "show(V_{name})", "closure": "show(value)",
              "helper": "show(helpers.V_{name})", "body": "show(helpers.V_{name})"}


def render_python(r: RuleSpec, style: int) -> str:
    decorator = f"@rule(inputs={r.inputs!r}, outputs={r.outputs!r}, params={render_params(r)})"
    lines = [decorator, f"def {r.name}(step):"]
    if style % 2:
        lines.append(f'    """Style {style}."""')
    if r.context == "body":
        lines.append("    import helpers")
    tag = r.tag
    if r.context != "none":
        tag += "{" + VALUE_EXPR[r.context].format(name=r.name) + "}"
    for i, line in enumerate(PYTHON_OPS[r.op]):
        if style % 4 >= 2 and i == 1:
            lines.append(f"    # style {style}")
        lines.append("    " + line.replace("TAG", tag))
    if r.context == "const":
        lines.insert(0, f"V_{r.name} = {r.value!r}\n")
    if r.context == "closure":
        lines = [f"def make_{r.name}(value):", *("    " + line for line in lines),
                 f"make_{r.name}({r.value!r})"]
    return "\n".join(lines) + "\n"


def render_helpers(spec: PipelineSpec) -> str:
    return "".join(f"V_{r.name} = {r.value!r}\n" for r in spec.rules
                   if r.context in ("helper", "body"))


def render_makeflow(spec: PipelineSpec) -> str:
    parts = [f"# style {spec.style}\n" * (spec.style % 3),
             "import helpers\nfrom makeflow import config, rule\n", SHOW]
    for r in spec.patterns + spec.rules:
        parts.append("\n" + (render_python(r, spec.style) if r.python else render_shell(
            r, spec.style)))
    every = [out for r in spec.rules for out in r.outputs]
    parts.append(f"\nrule('all', inputs={every!r}, default=True)\n")
    return "".join(parts)


def render_config(spec: PipelineSpec) -> str:
    lines = [f"{r.name} = {toml_value(r.p)}" for r in spec.patterns + spec.rules
             if r.from_config]
    return "[p]\n" + "".join(line + "\n" for line in lines)


# ---------------------------------------------------------------------------------------------
# The model: concrete steps, their records, and a replay of one build.


@dataclass(frozen=True)
class ModelStep:
    id: str
    rule: RuleSpec
    tag: str
    inputs: tuple[str, ...]
    outputs: tuple[str, ...]

    helpers: str = ""  # helpers.py, which a step importing it in its body reaches whole

    @property
    def shown(self) -> str:
        """What a Python step's fingerprint covers beyond its code: the value it reaches
        (all of helpers.py when it imports the module in its body)."""
        if self.rule.context == "none":
            return ""
        return self.helpers if self.rule.context == "body" else show(self.rule.value)

    @property
    def written_tag(self) -> str:
        return self.tag + ("" if self.rule.context == "none" else show(self.rule.value))

    @property
    def recipe(self) -> tuple:
        """What must rerun a step when it changes: the command after substitution (its paths
        and parameter value included), or the function's code."""
        if self.rule.python:
            return ("code", self.rule.op, self.tag, self.rule.context, self.shown)
        return ("shell", self.rule.op, self.tag, self.inputs, self.outputs, params_key(
            {"p": self.rule.p}))


@dataclass(frozen=True)
class Record:
    recipe: tuple
    params: str
    inputs: tuple[tuple[str, bytes | None], ...]
    outputs: tuple[tuple[str, bytes | None], ...]


def params_key(params: dict[str, Any]) -> str:
    """Parameters compared as stored: 1, 1.0, True and "1" are four different values."""
    return json.dumps(params, sort_keys=True)


def producers(spec: PipelineSpec) -> dict[str, ModelStep]:
    """The step that makes each file, pattern steps instantiated for every source key."""
    made: dict[str, ModelStep] = {}
    for r in spec.patterns:
        for k in spec.sources:
            step = ModelStep(f"{r.name}[k={k}]", r, f"{r.tag}-{k}",
                             tuple(p.replace("{k}", k) for p in r.inputs),
                             tuple(p.replace("{k}", k) for p in r.outputs))
            made.update(dict.fromkeys(step.outputs, step))
    helpers = render_helpers(spec)
    for r in spec.rules:
        step = ModelStep(r.name, r, r.tag, tuple(r.inputs), tuple(r.outputs), helpers)
        made.update(dict.fromkeys(step.outputs, step))
    return made


def needed(spec: PipelineSpec, targets: list[str]) -> list[ModelStep]:
    """The steps a build of `targets` involves, upstream first."""
    made = producers(spec)
    by_name = {s.id: s for s in made.values()}
    order: dict[str, ModelStep] = {}

    def visit(step: ModelStep) -> None:
        if step.id in order:
            return
        for path in step.inputs:
            if path in made:
                visit(made[path])
        order[step.id] = step

    for target in targets:
        visit(by_name[target] if target in by_name else made[target])
    return list(order.values())


def all_targets(spec: PipelineSpec) -> list[str]:
    return [r.name for r in spec.rules]


@dataclass
class Replay:
    """What one build must do: the steps that must run, and the files it must leave."""

    must_run: set[str]
    files: dict[str, bytes]
    records: dict[str, Record]
    cutoffs: int


def replay(steps: list[ModelStep], records: dict[str, Record],
           disk: dict[str, bytes]) -> Replay:
    """Run the model build: a step runs iff it never ran, or its recipe, parameters, input
    bytes or output bytes differ from its record; a rerun step's outputs are what the op
    writes, so a downstream step whose inputs came out the same does not run."""
    files, new_records = dict(disk), dict(records)
    must_run: set[str] = set()
    cutoffs = 0
    made_by = {out: s.id for s in steps for out in s.outputs}
    for step in steps:
        inputs = tuple((p, files.get(p)) for p in step.inputs)
        outputs = tuple((p, files.get(p)) for p in step.outputs)
        now = Record(step.recipe, params_key(step.rule.params), inputs, outputs)
        if records.get(step.id) == now:
            if any(made_by.get(p) in must_run for p in step.inputs):
                cutoffs += 1
            continue
        data = b"".join(content or b"" for _, content in inputs)
        written = run_op(step.rule.op, step.written_tag, step.rule.p, data)
        files.update(zip(step.outputs, written, strict=True))
        new_records[step.id] = replace(now, outputs=tuple(zip(step.outputs, written,
                                                              strict=True)))
        must_run.add(step.id)
    return Replay(must_run, files, new_records, cutoffs)


# ---------------------------------------------------------------------------------------------
# Strategies.

KEYS = "abcdef"
contents = st.text(alphabet="abAB\n", max_size=6).map(str.encode)
param_values = st.one_of(st.integers(0, 3), st.sampled_from(["x", "y", "1"]),
                         st.sampled_from([1.0, 2.5]), st.booleans())
ops = st.sampled_from([*SHELL_OPS, *PYTHON_OPS])  # about one rule in three is Python
scalars = st.one_of(st.integers(-2, 3), st.sampled_from(["a", "b", "ab", ""]),
                    st.sampled_from([0.5, 1.0]))
context_values = st.recursive(
    scalars | st.sets(scalars, max_size=3) | st.frozensets(scalars, max_size=3),
    lambda inner: st.one_of(
        st.lists(inner, max_size=3), st.tuples(inner, inner),
        st.dictionaries(st.sampled_from(["a", "b", 1]), inner, max_size=3)),
    max_leaves=6)


def values_like(value: Any) -> st.SearchStrategy[Any]:
    """Parameter values of the same type as `value`: --set may not change a value's type."""
    if isinstance(value, bool):
        return st.booleans()
    if isinstance(value, int):
        return st.integers(0, 3)
    if isinstance(value, float):
        return st.sampled_from([1.0, 2.5])
    return st.sampled_from(["x", "y", "1"])


def outputs_for(name: str, op: str) -> list[str]:
    if op in TWO_OUTPUTS:
        return [f"out/{name}.a.txt", f"out/{name}.b.txt"]
    return [f"out/{name}.txt"]


@st.composite
def rule_specs(draw: st.DrawFn, name: str, files: list[str]) -> RuleSpec:
    op = draw(ops)
    recent = files[-6:]  # prefer recent files, so the graph gets deep as well as wide
    pool = draw(st.sampled_from([recent, files]))
    inputs = draw(st.lists(st.sampled_from(pool), min_size=1, max_size=3, unique=True))
    spec = RuleSpec(name, op, inputs, outputs_for(name, op), draw(param_values),
                    draw(st.none() | param_values), from_config=draw(st.booleans()))
    if spec.python:
        spec.context, spec.value = draw(st.sampled_from(CONTEXTS)), draw(context_values)
    return spec


@st.composite
def pipelines(draw: st.DrawFn) -> PipelineSpec:
    keys = draw(st.lists(st.sampled_from(KEYS), min_size=1, max_size=4, unique=True))
    spec = PipelineSpec({k: draw(contents) for k in sorted(keys)}, [], [])
    for i in range(draw(st.integers(0, 2))):
        source = "src" if i == 0 else draw(st.sampled_from(["src", "gen0"]))
        spec.patterns.append(RuleSpec(
            f"gen{i}", draw(st.sampled_from(PATTERN_OPS)), [f"{source}/{{k}}.txt"],
            [f"gen{i}/{{k}}.txt"], draw(param_values), draw(st.none() | param_values),
            from_config=draw(st.booleans())))
    size = draw(st.integers(1, 12) | st.integers(1, 40))  # mostly small, so runs stay quick
    for i in range(size):
        spec.rules.append(draw(rule_specs(f"r{i}", spec.files())))
    return spec


# ---------------------------------------------------------------------------------------------
# Files on disk.


def snapshot(root: Path) -> dict[str, bytes]:
    """Every file of the project except makeflow's own state, by relative path."""
    found = {}
    for path in root.rglob("*"):
        rel = path.relative_to(root).as_posix()
        if path.is_file() and not rel.startswith(".makeflow/") and rel != "makeflow.lock":
            found[rel] = path.read_bytes()
    return found


def write_files(root: Path, spec: PipelineSpec) -> None:
    for k, content in spec.sources.items():
        write_bytes(root / "src" / f"{k}.txt", content)
    write_bytes(root / "makeflow.toml", render_config(spec).encode())
    write_bytes(root / "Makeflow.py", render_makeflow(spec).encode())
    write_bytes(root / "helpers.py", render_helpers(spec).encode())


def write_bytes(path: Path, content: bytes) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(content)


class Clock:
    """Unique old mtimes, and unique ones in the future (a skewed clock): an edit that sets
    one can never repeat a stat makeflow recorded."""

    def __init__(self) -> None:
        self.next = time.time_ns() - 86_400 * 10**9
        self.later = time.time_ns() + 86_400 * 10**9

    def old(self) -> int:
        self.next += 1_000_003
        return self.next

    def ahead(self) -> int:
        self.later += 1_000_003
        return self.later


CLOCK = Clock()


def age(path: Path, future: bool = False) -> None:
    t = CLOCK.ahead() if future else CLOCK.old()
    os.utime(path, ns=(t, t))


# ---------------------------------------------------------------------------------------------
# Building, in-process or with the real command line, and from scratch in a fresh folder.


@dataclass
class Built:
    ran: set[str]
    failed: dict[str, str] = field(default_factory=dict)
    output: str = ""


def build_in_process(root: Path, targets: list[str], jobs: int,
                     overrides: tuple[str, ...] = ()) -> Built:
    out = io.StringIO()
    result = build(load(root / "Makeflow.py", overrides), targets,
                   BuildOptions(jobs=jobs, cache=False), PlainReporter(out))
    if result.plan is not None and result.plan.quick:
        COUNTS["no-op builds settled by stats alone"] += 1
    if result.plan is not None and result.plan.partial:
        COUNTS["builds planned from moved stats only"] += 1
    return Built(set(result.ran), dict(result.failed), out.getvalue())


DONE_LINE = re.compile(r"^\[\d+/\d+\] (\S+) done in ", re.MULTILINE)


def build_with_cli(root: Path, targets: list[str], jobs: int,
                   overrides: tuple[str, ...] = ()) -> Built:
    sets = [arg for item in overrides for arg in ("--set", item)]
    proc = subprocess.run(
        [sys.executable, "-m", "makeflow", "build", "--no-cache", "-j", str(jobs), *sets,
         *targets],
        cwd=root, capture_output=True, text=True, timeout=300,
    )
    failed = {} if proc.returncode == 0 else {"exit": f"{proc.returncode}: {proc.stderr}"}
    return Built(set(DONE_LINE.findall(proc.stdout)), failed, proc.stdout + proc.stderr)


def clean_build(root: Path, spec: PipelineSpec, overrides: tuple[str, ...],
                cache: dict[str, dict[str, bytes]]) -> dict[str, bytes]:
    """Copy the sources and rules to a fresh folder, build everything there from scratch, and
    return the files it leaves, by path.

    Many edits leave the rules and sources as they were, so results are kept by content.
    """
    given = {path: content for path, content in snapshot(root).items()
             if path.startswith("src/") or path in ("Makeflow.py", "makeflow.toml", "helpers.py")}
    key = repr((sorted(given.items()), overrides))
    if key not in cache:
        with tempfile.TemporaryDirectory(prefix="makeflow-clean-") as fresh:
            for path, content in given.items():
                write_bytes(Path(fresh) / path, content)
            every = [r.outputs[0].replace("{k}", k) for r in spec.patterns for k in spec.sources]
            result = build_in_process(Path(fresh), ["all", *every], 2, overrides)
            assert not result.failed, result.output
            cache[key] = snapshot(Path(fresh))
            COUNTS["clean builds"] += 1
    return cache[key]


@dataclass(frozen=True)
class Request:
    """One build: what to build, how many jobs, through the command line or not, and
    `--set` overrides as (rule, value) pairs."""

    targets: tuple[str, ...] = ()
    jobs: int = 2
    cli: bool = False
    overrides: tuple[tuple[str, Any], ...] = ()

    @property
    def settings(self) -> tuple[str, ...]:
        return tuple(f"p.{name}={toml_value(value)}" for name, value in self.overrides)


def with_overrides(spec: PipelineSpec, overrides: tuple[tuple[str, Any], ...]) -> PipelineSpec:
    """The pipeline as a build with these `--set` overrides sees it."""
    if not overrides:
        return spec
    # The values the rules reach are shared, not copied: a copied set may iterate in
    # another order (string hashes vary per process), and so print as other text.
    shared = {id(r.value): r.value for r in spec.patterns + spec.rules}
    seen = copy.deepcopy(spec, shared)
    for name, value in overrides:
        seen.rule(name).p = value
    return seen


# ---------------------------------------------------------------------------------------------
# The state machine: rules are edits; each edit is followed by a checked build.


class PipelineEdits(RuleBasedStateMachine):
    """A project folder with a random pipeline, edited and rebuilt again and again."""

    def __init__(self) -> None:
        super().__init__()
        self.root = Path(tempfile.mkdtemp(prefix="makeflow-props-"))
        self.spec: PipelineSpec
        self.records: dict[str, Record] = {}
        self.clean_cache: dict[str, dict[str, bytes]] = {}
        self.healthy = False
        COUNTS["examples"] += 1

    def teardown(self) -> None:
        """A last full build, checked, then one that must find nothing to do."""
        if self.healthy:
            self.check_build(Request())
            assert build_in_process(self.root, [], 2).ran == set()
        shutil.rmtree(self.root, ignore_errors=True)

    # -- building and checking --------------------------------------------------------------

    def edited(self, data: Any) -> None:
        """After an edit, build and check: mostly everything in-process, now and then with
        the command line, one or two targets, or a parameter overridden with --set."""
        COUNTS["edits"] += 1
        how = data.draw(st.sampled_from(["library"] * 6 + ["cli", "targets", "set"]))
        targets: tuple[str, ...] = ()
        if how == "targets":
            names = st.sampled_from(self.target_names())
            targets = tuple(data.draw(st.lists(names, min_size=1, max_size=2, unique=True)))
        overrides: tuple[tuple[str, Any], ...] = ()
        configured = [r.name for r in self.spec.patterns + self.spec.rules if r.from_config]
        if how == "set" and configured:
            name = data.draw(st.sampled_from(configured))
            overrides = ((name, data.draw(values_like(self.spec.rule(name).p))),)
        cli = how == "cli" or (how == "set" and data.draw(st.booleans()))
        self.check_build(Request(targets, data.draw(st.integers(1, 3)), cli, overrides))

    def check_build(self, request: Request) -> None:
        """Build, then hold the build to the model and, for every step it built, to a clean
        build of the same rules and sources."""
        self.healthy = False
        spec = with_overrides(self.spec, request.overrides)
        steps = needed(spec, list(request.targets) or all_targets(spec))
        expected = replay(steps, self.records, snapshot(self.root))
        runner = build_with_cli if request.cli else build_in_process
        result = runner(self.root, list(request.targets), request.jobs, request.settings)
        assert not result.failed, result.output
        after = snapshot(self.root)
        assert result.ran == expected.must_run, self.explain(result, expected)
        assert after == expected.files, self.diff(after, expected.files)
        clean = clean_build(self.root, spec, request.settings, self.clean_cache)
        for step in steps:
            for path in step.outputs:
                assert after[path] == clean[path], (path, after[path], clean[path])
        self.records = expected.records
        self.healthy = True
        COUNTS["builds"] += 1
        COUNTS["steps checked"] += len(steps)
        COUNTS["reruns checked"] += len(expected.must_run)
        COUNTS["cutoffs checked"] += expected.cutoffs

    def explain(self, result: Built, expected: Replay) -> str:
        return (f"ran {sorted(result.ran)}\nmodel {sorted(expected.must_run)}\n"
                f"extra {sorted(result.ran - expected.must_run)} "
                f"missing {sorted(expected.must_run - result.ran)}\n{result.output}")

    def diff(self, after: dict[str, bytes], want: dict[str, bytes]) -> str:
        paths = sorted(p for p in after.keys() | want.keys() if after.get(p) != want.get(p))
        return "\n".join(f"{p}: on disk {after.get(p)!r}, model {want.get(p)!r}" for p in paths)

    def target_names(self) -> list[str]:
        names = [r.name for r in self.spec.rules] + [out for r in self.spec.rules
                                                     for out in r.outputs]
        return names + [r.outputs[0].replace("{k}", k) for r in self.spec.patterns
                        for k in self.spec.sources]

    def rewrite_rules(self, data: Any) -> None:
        """Write Makeflow.py and makeflow.toml again, in place or as a new file."""
        for path, text in ((self.root / "Makeflow.py", render_makeflow(self.spec)),
                           (self.root / "makeflow.toml", render_config(self.spec)),
                           (self.root / "helpers.py", render_helpers(self.spec))):
            if data.draw(st.booleans()):
                path.write_text(text)
            else:
                new = path.with_suffix(".new")
                new.write_text(text)
                os.replace(new, path)

    def source(self, data: Any) -> Path:
        return self.root / "src" / f"{data.draw(st.sampled_from(sorted(self.spec.sources)))}.txt"

    def built_outputs(self) -> list[str]:
        return sorted(p for s in needed(self.spec, all_targets(self.spec)) for p in s.outputs
                      if (self.root / p).exists())

    # -- the first build --------------------------------------------------------------------

    @initialize(spec=pipelines())
    def first_build(self, spec: PipelineSpec) -> None:
        self.spec = spec
        write_files(self.root, spec)
        self.check_build(Request())

    # -- edits to sources -------------------------------------------------------------------

    @rule(data=st.data(), content=contents)
    def change_source(self, data: Any, content: bytes) -> None:
        path = self.source(data)
        if data.draw(st.booleans()):  # flip the case of the letters: same size, often cut off
            old = path.read_bytes()
            content = old.swapcase() if old.strip() else content
        path.write_bytes(content)
        if data.draw(st.booleans()):
            age(path)
        self.edited(data)

    @rule(data=st.data())
    def touch_source(self, data: Any) -> None:
        path = self.source(data)
        if data.draw(st.booleans()):
            os.utime(path)
        else:
            age(path)
        self.edited(data)

    @rule(data=st.data())
    def rewrite_source_same_bytes(self, data: Any) -> None:
        path = self.source(data)
        path.write_bytes(path.read_bytes())
        self.edited(data)

    @rule(data=st.data(), content=st.none() | contents)
    def replace_source_with_copy(self, data: Any, content: bytes | None) -> None:
        """A new inode, as after `git checkout` or an editor's atomic save."""
        path = self.source(data)
        copy_path = path.with_suffix(".copy")
        shutil.copy2(path, copy_path)
        if content is not None:
            copy_path.write_bytes(content)
        os.replace(copy_path, path)
        self.edited(data)

    @precondition(lambda self: len(self.spec.sources) < len(KEYS))
    @rule(data=st.data(), content=contents)
    def add_source(self, data: Any, content: bytes) -> None:
        key = data.draw(st.sampled_from([k for k in KEYS if k not in self.spec.sources]))
        self.spec.sources[key] = content
        write_bytes(self.root / "src" / f"{key}.txt", content)
        self.edited(data)

    @rule(data=st.data())
    def age_all_files(self, data: Any) -> None:
        """Old mtimes let makeflow trust its cached digests, so later edits test that trust,
        and the build after next may be settled by file stats alone. Mtimes in the future
        (a skewed clock) are trusted the same way."""
        future = data.draw(st.booleans())
        for path in self.root.rglob("*"):
            if path.is_file() and ".makeflow" not in path.parts:
                age(path, future)
        self.edited(data)
        self.edited(data)

    # -- edits to outputs and to makeflow's state -------------------------------------------

    @rule(data=st.data())
    def delete_output(self, data: Any) -> None:
        outputs = self.built_outputs()
        if outputs:
            (self.root / data.draw(st.sampled_from(outputs))).unlink()
        self.edited(data)

    @rule(data=st.data(), content=contents)
    def edit_output(self, data: Any, content: bytes) -> None:
        outputs = self.built_outputs()
        if outputs:
            path = self.root / data.draw(st.sampled_from(outputs))
            old = path.read_bytes()
            if data.draw(st.booleans()) and old:  # same size, with an mtime never seen before
                path.write_bytes(bytes([old[0] ^ 1]) + old[1:])
                age(path)
            else:
                path.write_bytes(content)
        self.edited(data)

    @rule(data=st.data())
    def clean_outputs(self, data: Any) -> None:
        """`makeflow clean` removes exactly the recorded outputs still as makeflow wrote
        them, and forgets every step."""
        before = snapshot(self.root)
        wrote = {p for record in self.records.values() for p, content in record.outputs
                 if content is not None and before.get(p) == content}
        done = clean(load(self.root / "Makeflow.py"))
        assert set(done.removed) == wrote, (sorted(done.removed), sorted(wrote))
        assert snapshot(self.root) == {p: c for p, c in before.items() if p not in wrote}
        self.records = {}
        self.edited(data)

    @rule(data=st.data())
    def forget_state(self, data: Any) -> None:
        """Without .makeflow (and makeflow.lock, which would stand in for it), every step
        runs again."""
        shutil.rmtree(self.root / ".makeflow")
        (self.root / "makeflow.lock").unlink(missing_ok=True)
        self.records = {}
        self.edited(data)

    # -- edits to the rules -----------------------------------------------------------------

    def any_rule(self, data: Any) -> RuleSpec:
        return data.draw(st.sampled_from(self.spec.patterns + self.spec.rules))

    @rule(data=st.data(), value=param_values)
    def change_parameter(self, data: Any, value: Any) -> None:
        r = self.any_rule(data)
        if data.draw(st.booleans()):
            r.p = value
        else:
            r.q = value
        self.rewrite_rules(data)
        self.edited(data)

    @rule(data=st.data())
    def change_command(self, data: Any) -> None:
        self.any_rule(data).rev += 1
        self.rewrite_rules(data)
        self.edited(data)

    def python_rule(self, data: Any) -> RuleSpec | None:
        python = [r for r in self.spec.rules if r.python]
        return data.draw(st.sampled_from(python)) if python else None

    def change_python_value(self, data: Any, value: Any) -> None:
        """Edit the value a Python step reaches outside params= (a constant of Makeflow.py,
        a factory's argument, or a constant of helpers.py): only the steps that reach it
        rerun (with every step that imports helpers.py in its body, when that changes)."""
        r = self.python_rule(data)
        if r is not None:
            COUNTS[f"python value edits ({r.context})"] += 1
            r.value = value if show(value) != show(r.value) else [value]
            self.rewrite_rules(data)
        self.edited(data)

    def move_python_value(self, data: Any, context: str) -> None:
        """Reach the same value another way: from a constant to a closure, a helper module."""
        r = self.python_rule(data)
        if r is not None:
            COUNTS[f"python value moves ({r.context} to {context})"] += 1
            r.context = context
            self.rewrite_rules(data)
        self.edited(data)

    # Python steps are a third of the rules, but these edits would be two of many: each is
    # offered under two names, to come up as often as the edits to sources do.
    @rule(data=st.data(), value=context_values)
    def edit_python_value(self, data: Any, value: Any) -> None:
        self.change_python_value(data, value)

    @rule(data=st.data(), value=context_values)
    def edit_python_value_again(self, data: Any, value: Any) -> None:
        self.change_python_value(data, value)

    @rule(data=st.data(), context=st.sampled_from(CONTEXTS))
    def move_python_value_elsewhere(self, data: Any, context: str) -> None:
        self.move_python_value(data, context)

    @rule(data=st.data(), context=st.sampled_from(CONTEXTS))
    def move_python_value_again(self, data: Any, context: str) -> None:
        self.move_python_value(data, context)

    @rule(data=st.data())
    def rename_rule(self, data: Any) -> None:
        """A renamed rule is a new step writing the same bytes; renamed back, it finds its old
        record."""
        r = data.draw(st.sampled_from(self.spec.rules))
        r.name = r.name[:-1] if r.name.endswith("x") else r.name + "x"
        self.rewrite_rules(data)
        self.edited(data)

    @rule(data=st.data())
    def restyle_rules_file(self, data: Any) -> None:
        """Comments, docstrings, line numbers and keyword order: nothing may rerun."""
        self.spec.style += 1
        self.rewrite_rules(data)
        self.edited(data)

    @rule(data=st.data())
    def add_rule(self, data: Any) -> None:
        self.spec.added += 1
        name = f"n{self.spec.added}"
        self.spec.rules.append(data.draw(rule_specs(name, self.spec.files())))
        self.rewrite_rules(data)
        self.edited(data)

    def unused_rules(self) -> list[RuleSpec]:
        return [r for r in self.spec.rules
                if not any(self.spec.users(out) for out in r.outputs)]

    @precondition(lambda self: len(self.spec.rules) > 1)
    @rule(data=st.data())
    def remove_rule(self, data: Any) -> None:
        gone = data.draw(st.sampled_from(self.unused_rules()))
        self.spec.rules.remove(gone)
        for out in gone.outputs:
            (self.root / out).unlink(missing_ok=True)
        self.rewrite_rules(data)
        self.edited(data)

    @rule(data=st.data())
    def reorder_files(self, data: Any) -> None:
        """Reverse a rule's inputs or outputs: a command that reads them in order changes."""
        r = data.draw(st.sampled_from(self.spec.rules))
        if len(r.outputs) > 1 and data.draw(st.booleans()):
            r.outputs.reverse()
        else:
            r.inputs.reverse()
        self.rewrite_rules(data)
        self.edited(data)

    @rule(data=st.data())
    def rewire_input(self, data: Any) -> None:
        """Point one input of a rule at another file made before it, keeping the graph a DAG."""
        index = data.draw(st.integers(0, len(self.spec.rules) - 1))
        r = self.spec.rules[index]
        earlier = PipelineSpec(self.spec.sources, self.spec.patterns, self.spec.rules[:index])
        choices = [p for p in earlier.files() if p not in r.inputs]
        if choices:
            slot = data.draw(st.integers(0, len(r.inputs) - 1))
            r.inputs[slot] = data.draw(st.sampled_from(choices))
        self.rewrite_rules(data)
        self.edited(data)


PROPERTY_SETTINGS = settings(
    max_examples=EXAMPLES,
    stateful_step_count=EDITS,
    deadline=None,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large,
                           HealthCheck.filter_too_much],
)


def test_incremental_builds_equal_clean_builds_with_minimal_reruns() -> None:
    """Any pipeline, any edits: the same bytes as a clean build, and only the needed reruns."""
    COUNTS.clear()
    started = time.monotonic()
    try:
        run_state_machine_as_test(PipelineEdits, settings=PROPERTY_SETTINGS)
    finally:
        figures = ", ".join(f"{n} {what}" for what, n in COUNTS.items())
        print(f"\nproperty run: {figures} in {time.monotonic() - started:.1f}s")


# ---------------------------------------------------------------------------------------------
# Failures the property test found, reduced to their smallest form.

RENAMED = """
from makeflow import rule
rule({name!r}, inputs="in.txt", outputs="x.txt", shell="cp {{inputs}} {{outputs}}")
"""


def test_clean_after_a_rename_removes_the_output_both_records_name(tmp_path: Path) -> None:
    """A rule renamed keeps its old record beside the new one, both naming x.txt: clean must
    remove x.txt once, not fail reading it for the second record."""
    (tmp_path / "in.txt").write_text("a")
    for name in ("a", "b"):
        (tmp_path / "Makeflow.py").write_text(RENAMED.format(name=name))
        assert build_in_process(tmp_path, [], 1).ran == {name}
    done = clean(load(tmp_path / "Makeflow.py"))
    assert done.removed == ["x.txt"]
    assert not (tmp_path / "x.txt").exists()


def test_clean_after_a_rename_and_a_rerun_removes_what_the_new_rule_wrote(
        tmp_path: Path) -> None:
    """After the renamed rule reruns, the old record names x.txt with content it no longer
    has: whichever record clean reads first, x.txt is still what makeflow last wrote."""
    (tmp_path / "in.txt").write_text("a")
    for name in ("a", "b"):
        (tmp_path / "Makeflow.py").write_text(RENAMED.format(name=name))
        build_in_process(tmp_path, [], 1)
    (tmp_path / "in.txt").write_text("changed")
    assert build_in_process(tmp_path, [], 1).ran == {"b"}
    done = clean(load(tmp_path / "Makeflow.py"))
    assert done.removed == ["x.txt"] and done.kept == []
    assert not (tmp_path / "x.txt").exists()


JOINED = """
from makeflow import rule
@rule(inputs={inputs!r}, outputs="out.txt", params={{"p": {p!r}}})
def join(step):
    data = b"".join(path.read_bytes() for path in step.inputs)
    step.outputs[0].write_bytes(data + f" {{step.params.p}}".encode())
"""


def test_python_step_reruns_when_its_inputs_are_reordered_or_a_parameter_changes_type(
        tmp_path: Path) -> None:
    """The same input files in another order, or 1 becoming True or 1.0, change what a
    function writes, so the step must run again."""
    (tmp_path / "a.txt").write_text("a")
    (tmp_path / "b.txt").write_text("b")
    for inputs, p, want in ((["a.txt", "b.txt"], 1, "ab 1"), (["b.txt", "a.txt"], 1, "ba 1"),
                            (["b.txt", "a.txt"], True, "ba True"),
                            (["b.txt", "a.txt"], 1.0, "ba 1.0")):
        (tmp_path / "Makeflow.py").write_text(JOINED.format(inputs=inputs, p=p))
        assert build_in_process(tmp_path, [], 1).ran == {"join"}
        assert (tmp_path / "out.txt").read_text() == want
