"""What is stale, and why: compares each step with its last successful run.

A step is stale when it never ran, its command or code or parameters changed, its inputs
changed (by content), or one of its outputs is missing or was altered. Reasons are kept as
short sentences, so `status`, `why` and the build only format them.
"""

from __future__ import annotations

import json
import time
from dataclasses import dataclass, field
from typing import Any, NamedTuple

from makeflow.define.rules import Rule
from makeflow.plan.graph import Graph, Step
from makeflow.store import fs
from makeflow.store.hashing import hash_path, hash_text
from makeflow.store.lockfile import LockFile, record_of
from makeflow.store.records import REMOTE_ONLY
from makeflow.store.state import FileRecord, StateStore, StepRecord, dump, fingerprint_of


class Digests:
    """The current digest of each file, hashing only files whose stat moved since last time."""

    def __init__(self, state: StateStore, stats: fs.StatCache):
        self.state = state
        self.stats = stats
        self.hashed: dict[str, FileRecord] = {}
        self.own: dict[str, FileRecord] = {}  # hashed by this build: see `learn`
        self.lock: LockFile | None = None  # makeflow.lock, for steps the store never saw
        self.adopted: list[str] = []  # steps found fresh by their lock entry
        self.ahead: dict[str, int] = {}  # files hashed with an mtime in the future: `skew`
        self.stand_ins: dict[str, str] = {}  # missing temporary files: see plan/temp.py
        self.remote_ok = False  # a build whose workers share no disk: see `remote_only`

    def stat(self, path: str) -> fs.Stat | None:
        """The stat to compare with the cache: for a directory, its whole tree's."""
        st = self.stats.get(path)
        if st is not None and st.is_dir:
            return fs.tree_stat(path)
        return st

    def get(self, path: str) -> str | None:
        """The digest of `path` now, or None when it does not exist.

        The hot path of a no-op build: one dict lookup for the stat, one for the record.
        """
        st = self.stats.get(path)
        if st is None:
            found = self.stand_ins.get(path) if self.stand_ins else None
            if found is None and self.remote_ok:
                found = self.remote_only(path)
            return found
        if st.is_dir:
            st = fs.tree_stat(path)
        own = self.own.get(path)
        if own is not None and own.same_stat(st):
            return own.digest
        known = self.hashed.get(path) or self.state.file(path)
        if known is not None and known.matches(st):
            return known.digest
        return self.rehash(path, st)

    def remote_only(self, path: str) -> str | None:
        """The digest of an output that a worker without a shared disk made and pushed to
        the remote store, and that was not downloaded here; None for any other absent file.
        Only a build that also runs without a shared disk counts such a file as present."""
        known = self.own.get(path) or self.hashed.get(path) or self.state.file(path)
        return known.digest if known is not None and known.inode == REMOTE_ONLY else None

    def rehash(self, path: str, st: fs.Stat) -> str:
        checked = time.time_ns()
        digest = hash_path(path)
        record = FileRecord(st.size, st.mtime_ns, st.inode, digest, checked)
        self.hashed[path] = self.own[path] = record
        if record.ahead_ns:
            self.ahead[path] = record.ahead_ns
        return digest

    def learn(self, records: dict[str, FileRecord]) -> None:
        """Digests this build just made (of a step's outputs, as it landed).

        Within the build they are trusted while the stat is unchanged, even when made
        within a second of the file's last change: the step that wrote the file has
        ended, so a file just written is hashed once, not again for each step that reads
        it. The store's record still follows the one-second rule for later builds.
        """
        self.own.update(records)
        for path, record in records.items():
            if record.ahead_ns:
                self.ahead[path] = record.ahead_ns

    def skew(self) -> str | None:
        """One warning for the files hashed since the last call whose mtime is in the
        future, if any. Such a file is trusted by its stat afterwards (see
        `FileRecord.settled`), so it is hashed once and the warning comes once, not on
        every build until the clock catches up."""
        if not self.ahead:
            return None
        path, ahead = max(self.ahead.items(), key=lambda item: item[1])
        others = len(self.ahead) - 1
        self.ahead = {}
        more = f" (and {others} other file{'s' if others > 1 else ''})" if others else ""
        return (f"{path}{more} was last modified {_span(ahead / 1e9)} in the future: the clock of "
                "this machine or of the file system that wrote it looks skewed. makeflow "
                "goes by content, so builds stay correct; it reads such a file again only "
                "when its size, mtime or inode change")

    def removed_temp(self, path: str) -> None:
        """A temporary file was deleted: its last digest stands in for it from now on."""
        digest = self.get(path)
        self.forget(path)
        if digest is not None:
            self.stand_ins[path] = digest

    def forget(self, path: str) -> None:
        self.stats.forget(path)
        self.hashed.pop(path, None)
        self.own.pop(path, None)

    def take_hashed(self) -> dict[str, FileRecord]:
        """The entries hashed since the last call, for the state store's stat cache."""
        taken, self.hashed = self.hashed, {}
        return taken


class RuleFacts(NamedTuple):
    """What every step of a rule shares, worked out once per rule."""

    recipe: str
    params: dict[str, Any]
    params_json: str


_facts: dict[int, tuple[Rule, RuleFacts]] = {}


def facts(rule: Rule) -> RuleFacts:
    known = _facts.get(id(rule))
    if known is None or known[0] is not rule:
        text = rule.params_text or dump(rule.params)
        known = _facts[id(rule)] = (rule, RuleFacts(_recipe(rule), json.loads(text), text))
    return known[1]


def _recipe(rule: Rule) -> str:
    """What a rule runs, as a digest; its kind tells the reason apart when it changes.

    A shell step's command is its template filled with its files, parameters and
    wildcards, all of which the fingerprint covers, so the template stands for it.
    """
    if rule.shell is not None:
        return "shell:" + hash_text(rule.shell, repr(rule.inputs.names), repr(rule.outputs.names))
    if rule.func is not None:
        return "code:" + rule.code
    return "alias"


def recipe_of(step: Step) -> str:
    return facts(step.rule).recipe


def params_of(step: Step) -> dict[str, Any]:
    """Parameters as JSON would store them, so a tuple and a list compare equal."""
    return facts(step.rule).params


def current_fingerprint(step: Step, digests: Digests) -> str:
    """The step's fingerprint now. An input listed twice counts once, as in its record (a
    dict of path -> digest), so a record and the files it describes always agree."""
    known = facts(step.rule)
    digests.state.prefetch(step.inputs.paths)
    get = digests.get
    return fingerprint_of(
        known.recipe, known.params_json,
        [(p, get(p)) for p in dict.fromkeys(step.inputs.paths)],
        [(p, get(p)) for p in step.outputs.paths],
    )


def reasons(step: Step, state: StateStore, digests: Digests,
            produced_by_stale: set[str] = frozenset(), now: float | None = None) -> list[str]:
    """Why `step` must run; empty when it is fresh.

    Inputs in `produced_by_stale` belong to steps that will run first; they are not
    hashed now, and the step is checked again once they are done. When nothing is
    pending, equal fingerprints settle it without decoding the record.
    """
    if step.rule.is_alias:
        return []
    stored = state.fingerprint(step.id)
    if stored is None and not produced_by_stale:
        stored = _from_lock(step, state, digests)
    if stored is None:
        return ["never ran"]
    timed = []
    if step.rule.always or step.rule.max_age is not None:
        timed = _time_reasons(step, state, time.time() if now is None else now)
    if not produced_by_stale and stored == current_fingerprint(step, digests):
        return timed
    record = state.record(step.id)
    if record is None:  # the store was found damaged and set aside just now
        return ["never ran"]
    if record.moved:
        return [f"input {record.moved} changed while it last ran"]
    why = timed + _recipe_reasons(step, record) + _param_reasons(params_of(step), record.params)
    why += _input_reasons(step, record, digests, produced_by_stale)
    why += _output_reasons(step, record, digests)
    if not why and not produced_by_stale:
        why = ["order of its files changed"]  # the same files, listed otherwise
    return why


def _from_lock(step: Step, state: StateStore, digests: Digests) -> str | None:
    """A step the store never saw is fresh when its lock entry matches it exactly (a fresh
    clone with committed outputs): the entry becomes its record. Its fingerprint, or None."""
    entry = digests.lock.entry(step.id) if digests.lock is not None else None
    if entry is None:
        return None
    record = record_of(entry, step.inputs.paths, step.outputs.paths)
    if record is None:
        return None
    fingerprint = record.fingerprint
    if fingerprint != current_fingerprint(step, digests):
        return None
    state.record_step(step.id, record, digests.take_hashed())
    digests.adopted.append(step.id)
    return fingerprint


def _time_reasons(step: Step, state: StateStore, now: float) -> list[str]:
    """`always=True` steps are always stale; `max_age` ones once their last run is older."""
    if step.rule.always:
        return ["always runs"]
    if step.rule.max_age is None:
        return []
    record = state.record(step.id)
    age = now - record.finished_ns / 1e9 if record else float("inf")
    if age <= step.rule.max_age:
        return []
    return [f"older than {_span(step.rule.max_age)} (last run {_span(age)} ago)"]


def _span(seconds: float) -> str:
    for unit, size in (("d", 86400), ("h", 3600), ("m", 60)):
        if seconds >= size:
            return f"{seconds / size:.3g}{unit}"
    return f"{seconds:.3g}s"


def _recipe_reasons(step: Step, record: StepRecord) -> list[str]:
    now = recipe_of(step)
    if now == record.recipe:
        return []
    if now.startswith("code:") and record.recipe.startswith("code:"):
        return [f"code of {step.rule.name} changed"]
    return ["command changed"]


def _param_reasons(now: dict[str, Any], before: dict[str, Any]) -> list[str]:
    out = []
    for key in sorted(now.keys() | before.keys()):
        if key not in before:
            out.append(f"parameter {key} added: {_show(now[key])}")
        elif key not in now:
            out.append(f"parameter {key} removed (was {_show(before[key])})")
        elif json.dumps(now[key]) != json.dumps(before[key]):  # 1, 1.0 and true differ
            out.append(f"parameter {key}: {_show(before[key])} → {_show(now[key])}")
    return out


def _show(value: Any) -> str:
    text = json.dumps(value, ensure_ascii=False) if not isinstance(value, str) else value
    return text if len(text) <= 40 else text[:37] + "..."


def _input_reasons(step: Step, record: StepRecord, digests: Digests,
                   produced_by_stale: set[str]) -> list[str]:
    out = []
    paths = step.inputs.paths
    digests.state.prefetch(paths)
    for gone in record.inputs.keys() - set(paths):
        out.append(f"input removed: {gone}")
    for path in dict.fromkeys(paths):
        if path in produced_by_stale:
            continue
        before = record.inputs.get(path)
        if before is None:
            out.append(f"input added: {path}")
        elif digests.get(path) != before:
            out.append(f"input changed: {path}")
    return out


def _output_reasons(step: Step, record: StepRecord, digests: Digests) -> list[str]:
    out = []
    for path in step.outputs.paths:
        before = record.outputs.get(path)
        now = digests.get(path)
        if record.skipped and not before:  # skipped, with no output from before
            out += [f"output added: {path}"] if now is not None else []
        elif now is None:
            out.append(f"output missing: {path}")
        elif before is None:
            out.append(f"output added: {path}")
        elif now != before:
            out.append(f"output modified: {path}")
    return out


FORCED = ["forced"]  # the reason of a step forced by -B or --forcerun


@dataclass
class Plan:
    """Every step of a graph with the reasons it is stale; fresh steps have none."""

    graph: Graph
    stale: dict[str, list[str]] = field(default_factory=dict)
    warnings: list[str] = field(default_factory=list)
    quick: bool = False  # settled by file stats alone (see uptodate.py)
    partial: bool = False  # only steps that touch files whose stat moved were looked at
    restorable: set[str] = field(default_factory=set)  # stale, but the run cache has them
    # Steps that run even when fresh, with the reason they give then: `--forcerun`
    # (["forced"]), or a missing temporary output that a stale step needs (see temp.py).
    forced: dict[str, list[str]] = field(default_factory=dict)
    # Fresh steps whose last run chose to skip (`Skip`), and the steps that need what they
    # would have made, each with the reason: none of them runs.
    skipped: dict[str, str] = field(default_factory=dict)
    # a stale checkpoint -> the steps below it, not known until it has run (plan/dynamic.py)
    waiting: dict[str, list[str]] = field(default_factory=dict)
    # the part of a plan that runs before its checkpoints (run/growing.py): the steps they
    # call for, which may read this part's temporary files too, come later in the build
    before_checkpoint: bool = False

    def is_stale(self, step_id: str) -> bool:
        return step_id in self.stale

    @property
    def runnable(self) -> list[str]:
        """Stale steps that do something (aliases only group targets), upstream first."""
        if not self.stale:  # a no-op: the graph's aliases are not worth finding
            return []
        aliases = self.graph.aliases
        return [s for s in self.stale if s not in aliases] if aliases else list(self.stale)


NOTHING: frozenset[str] = frozenset()


def make_plan(graph: Graph, state: StateStore, digests: Digests, force: bool = False,
              now: float | None = None, suspects: set[str] | None = None,
              forced: dict[str, list[str]] | None = None) -> Plan:
    """Walk the graph upstream first; a step below a stale one is stale with 'upstream: X'.

    Such a step may still turn out fresh when its upstream rewrites identical outputs
    (early cutoff); the build checks it again before running it.

    `suspects`, when given, are the only files that may have changed since every step
    was last found fresh (see uptodate.py): a step that touches none of them, below no
    stale step, is fresh without a look at its fingerprint. `forced` steps are stale
    whatever they find (with their own reasons, or else the one given), and so is what
    they feed, until they ran (early cutoff).
    """
    forced = forced or {}
    plan = Plan(graph, partial=suspects is not None and not force, forced=dict(forced))
    stale = plan.stale
    if not plan.partial:
        state.load_all()  # every step is looked at: one bulk read beats one per step
        suspects = None
    skips = state.skips
    upstream, steps = graph.upstream, graph.steps
    for sid, step in steps.items():
        if (plan.skipped or skips) and _skipped(plan, sid, step, skips):
            continue
        ups = upstream[sid]
        stale_ups = [u for u in ups if u in stale] if stale and ups else NO_UPS
        untouched = suspects is not None and _untouched(step, suspects)
        if (untouched and not stale_ups) or (
                suspects is not None and not stale_ups
                and _suspects_unchanged(step, suspects, state, digests)):
            if sid in skips:  # fresh, and its last run chose to skip
                plan.skipped[sid] = skips[sid]
            continue
        if (force or (forced and forced.get(sid) == FORCED)) and not step.rule.is_alias:
            why = list(FORCED)
        elif untouched:  # none of its own files moved: only its upstream can make it stale
            why = []
        elif stale_ups and _never_ran_below(step, stale_ups, steps, state):
            why = ["never ran"]
        else:
            pending = ({p for u in stale_ups for p in steps[u].outputs.paths}
                       if stale_ups else NOTHING)
            why = reasons(step, state, digests, pending, now)
        if not why and forced and sid in forced and not step.rule.is_alias:
            why = list(forced[sid])
        if stale_ups and step.rule.is_alias:
            why = ["upstream"]
        elif stale_ups:
            why += ["upstream: " + u for u in stale_ups if not steps[u].rule.is_alias]
        if why:
            plan.stale[sid] = why
        elif sid in skips:
            plan.skipped[sid] = skips[sid]
    return plan


NO_UPS: list[str] = []  # no stale step upstream: shared, never changed


def _never_ran_below(step: Step, stale_ups: list[str], steps: dict[str, Step],
                     state: StateStore) -> bool:
    """Whether `reasons` would say only "never ran": the step has no record and a stale
    step above it writes files. Settled without the set of those files, which for the
    final step of a million-step pipeline is a million paths."""
    return (not step.rule.is_alias and state.fingerprint(step.id) is None
            and any(steps[u].outputs.paths for u in stale_ups))


def _skipped(plan: Plan, sid: str, step: Step, skips: dict[str, str]) -> bool:
    """Whether the step is skipped because a step it needs was: it cannot run without
    that step's outputs, so it is neither stale nor fresh, and says which step and why."""
    for up in plan.graph.upstream[sid]:
        reason = plan.skipped.get(up)
        if reason is not None:
            plan.skipped[sid] = below_skipped(up, reason, skips)
            return True
    return False


def below_skipped(up: str, reason: str, skips: dict[str, str]) -> str:
    """The reason a step below skipped step `up` gives: the deciding step, and its reason."""
    return f"{up}: {reason}" if skips.get(up) == reason else reason


def skipped_steps(plan: Plan, skips: dict[str, str]) -> None:
    """For a plan settled without looking at steps (nothing changed): the steps recorded
    as skipped, and those below them, from the skips table alone."""
    if not skips:
        return
    for sid, step in plan.graph.steps.items():
        if sid in skips and sid not in plan.stale:
            plan.skipped[sid] = skips[sid]
        else:
            _skipped(plan, sid, step, skips)


def _suspects_unchanged(step: Step, suspects: set[str], state: StateStore,
                        digests: Digests) -> bool:
    """Whether the step's suspect files still have the digests its record holds.

    Its other files did not move since it was last fresh, so their digests are the ones
    in the record too: the fingerprint is unchanged without computing it. An aggregate
    whose output was hashed too soon to be trusted reads its one record, not a digest for
    each of its 10,000 inputs.
    """
    if step.rule.is_alias or step.rule.always or step.rule.max_age is not None:
        return False
    record = state.record(step.id)
    if record is None or record.moved:
        return False
    for files, recorded in ((step.inputs.paths, record.inputs),
                            (step.outputs.paths, record.outputs)):
        for path in files:
            if path in suspects and digests.get(path) != recorded.get(path):
                return False
    return True


def _untouched(step: Step, suspects: set[str]) -> bool:
    """Whether none of the step's files is a suspect, and time cannot make it stale."""
    return (suspects.isdisjoint(step.inputs.paths) and suspects.isdisjoint(step.outputs.paths)
            and not step.rule.always and step.rule.max_age is None)
