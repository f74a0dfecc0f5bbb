"""Who made a path that no step declares: the folder output around it, or, for a folder,
the outputs inside it. `why` asks, so that nothing makeflow made is called a source."""

from __future__ import annotations

import contextlib
import posixpath

from makeflow.define.loader import Pipeline
from makeflow.errors import UserError
from makeflow.plan.graph import Resolver
from makeflow.store.fs import StatCache
from makeflow.store.state import StateStore


def folder_output_around(pipeline: Pipeline, path: str) -> str | None:
    """The nearest folder above `path` that some current rule makes as an output."""
    with contextlib.chdir(pipeline.root):
        resolver = Resolver(pipeline, StatCache())
        folder = posixpath.dirname(path)
        while folder:
            try:
                if resolver.find(folder, None) is not None:
                    return folder
            except UserError:  # nothing makes it, and it does not exist
                pass
            folder = posixpath.dirname(folder)
    return None


def steps_with_outputs_below(pipeline: Pipeline, folder: str,
                             producer: dict[str, str]) -> list[str]:
    """The steps whose outputs lie inside `folder`: of the graph given, and of the records
    (a step outside the default graph may have written there too)."""
    prefix = folder.rstrip("/") + "/"
    found = dict.fromkeys(sid for p, sid in producer.items() if p.startswith(prefix))
    with StateStore(pipeline.root) as state:
        for sid in state.step_ids:
            record = state.record(sid)
            if record is not None and any(p.startswith(prefix) for p in record.outputs):
                found[sid] = None
    return sorted(found)


def recorded_outputs(state: StateStore) -> set[str]:
    """Every file a step's last successful run wrote, as the records say."""
    found: set[str] = set()
    for sid in state.step_ids:
        record = state.record(sid)
        if record is not None:
            found.update(record.outputs)
    return found
