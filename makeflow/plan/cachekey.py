"""A step's cache key: its fingerprint without the output side.

Built from the pieces the planner uses for staleness (`staleness.recipe_of`, the params'
JSON, each input's path and digest) plus the declared output paths and a version of the
key format, so a key names exactly what the outputs depend on. Paths are relative to the
project, so two clones in different folders, or two machines, get the same keys.
"""

from __future__ import annotations

from makeflow.plan.graph import Step
from makeflow.plan.staleness import Digests, facts
from makeflow.store.hashing import hash_text
from makeflow.store.state import StepRecord, dump

KEY_VERSION = "makeflow-cache-1"


def cacheable(step: Step) -> bool:
    """Whether the step's results may be cached: not an alias, not `cache=False`, and not
    a step whose staleness depends on time (`always`, `max_age`): rerunning those is
    their point."""
    rule = step.rule
    return (not rule.is_alias and rule.cache and not rule.always and rule.max_age is None)


def key_of(recipe: str, params_json: str, inputs: list[tuple[str, str]],
           outputs: list[str]) -> str:
    parts = [KEY_VERSION, recipe, params_json]
    for path, digest in inputs:
        parts += (path, digest)
    parts.append("->")
    parts += outputs
    return hash_text(*parts)


def cache_key(step: Step, digests: Digests) -> str | None:
    """The key of the step as its inputs are now; None when an input is missing."""
    known = facts(step.rule)
    inputs = []
    for path in step.inputs.paths:
        digest = digests.get(path)
        if digest is None:
            return None
        inputs.append((path, digest))
    return key_of(known.recipe, known.params_json, inputs, list(step.outputs.paths))


def record_key(step: Step, record: StepRecord) -> str | None:
    """The key of the step's last recorded run (for `push`); None if it does not match
    the step's current rule (its recipe, params or files changed since)."""
    known = facts(step.rule)
    if record.recipe != known.recipe or dump(record.params) != dump(known.params):
        return None
    if set(record.inputs) != set(step.inputs.paths):
        return None
    inputs = [(p, record.inputs[p]) for p in step.inputs.paths]
    return key_of(known.recipe, known.params_json, inputs, list(step.outputs.paths))
