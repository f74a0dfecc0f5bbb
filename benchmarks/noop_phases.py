"""Where a no-op build's time goes: each phase timed in one process, in a built project.

Run in the folder of a `Makeflow.py` that was built (twice, so the up-to-date snapshot
exists), e.g. one that `benchmarks/run.py` generated:

    cd /tmp/makeflow-bench/wide-100000/makeflow && python /path/to/benchmarks/noop_phases.py

It calls the library's parts in the order a build does: the imports of the command,
running `Makeflow.py`, the cached graph, the digest of every rule's recipe and the stat
check; then, for comparison, what a full plan would do instead (read the whole store,
fingerprint every step). One line of seconds per run; run it a few times, take medians.
"""

from __future__ import annotations

import time

started = time.perf_counter()
import makeflow.ui.cli  # noqa: E402, F401 - what the command imports
from makeflow import gcpause  # noqa: E402
from makeflow.define import loader  # noqa: E402
from makeflow.plan import uptodate  # noqa: E402
from makeflow.plan.graph_cache import cache_key, resolve_cached  # noqa: E402
from makeflow.plan.staleness import Digests, make_plan  # noqa: E402
from makeflow.store import fs  # noqa: E402
from makeflow.store.state import StateStore  # noqa: E402


def main() -> None:
    marks = [("imports", time.perf_counter())]
    pipeline = loader.load(loader.find_rules_file(None, None))
    marks.append(("load", time.perf_counter()))
    with gcpause.paused():
        state = StateStore(pipeline.root)
        stats = fs.StatCache()
        graph, shape = resolve_cached(pipeline, cache_key(pipeline, []), stats, state.dir)
        marks.append(("graph-cache", time.perf_counter()))
        recipes = uptodate.recipes_key(pipeline)
        marks.append(("recipes", time.perf_counter()))
        moved = uptodate.Snapshot(state.dir).suspects((shape, recipes, state.version))
        marks.append(("stat-check", time.perf_counter()))
        state.load_all()
        marks.append(("full-plan:load-store", time.perf_counter()))
        plan = make_plan(graph, state, Digests(state, stats))
        marks.append(("full-plan:plan", time.perf_counter()))
    before = started
    parts = []
    for name, at in marks:
        parts.append(f"{name} {at - before:.3f}")
        before = at
    found = "no snapshot" if moved is None else f"{len(moved)} files moved"
    print(" ".join(parts), f"({found}; {len(plan.stale)} stale)")
    state.close()


if __name__ == "__main__":
    main()
