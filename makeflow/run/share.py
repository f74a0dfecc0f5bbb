"""Commands around the run cache: its size and hit counts, trimming it, and moving
results to and from the shared remote (`makeflow push`, `makeflow pull`)."""

from __future__ import annotations

import contextlib
from collections.abc import Iterable
from dataclasses import dataclass, field

from makeflow.define.loader import Pipeline
from makeflow.errors import RemoteFailed, UserError
from makeflow.plan.cachekey import cacheable, record_key
from makeflow.plan.graph import Step
from makeflow.run.build import build, status
from makeflow.run.cached import remote_url
from makeflow.run.outcome import BuildOptions, BuildResult, log_path
from makeflow.run.reporter import Reporter
from makeflow.run.transfers import Show, Transfers
from makeflow.store.cas import BlobError
from makeflow.store.runcache import RunCache, RunRecord
from makeflow.store.state import StateStore


@dataclass
class CacheInfo:
    root: str
    blobs: int
    size: int
    records: int
    counts: dict[str, int] = field(default_factory=dict)
    max_size: int | None = None


def local_cache(pipeline: Pipeline) -> RunCache:
    settings = pipeline.settings
    return RunCache(settings.cache_root(pipeline.root), link=settings.cache_link)


def cache_info(pipeline: Pipeline) -> CacheInfo:
    """Where the local cache is, how big, and how often it was hit."""
    cache = local_cache(pipeline)
    blobs, size = cache.cas.usage()
    return CacheInfo(str(cache.root), blobs, size, cache.records(), cache.counts(),
                     pipeline.settings.cache_max_size)


def cache_gc(pipeline: Pipeline, max_size: int | None) -> tuple[int, int]:
    """Trim the local cache to `max_size` bytes (default: the `cache_max_size` setting;
    with neither, only what killed writers left behind goes). Blobs and bytes removed."""
    cache = local_cache(pipeline)
    limit = max_size if max_size is not None else pipeline.settings.cache_max_size
    with contextlib.suppress(FileNotFoundError):
        return cache.cas.gc(limit if limit is not None else 1 << 62)
    return 0, 0


class _NoExecutor:
    """`pull` runs no step; a submit would be a bug, so it says so."""

    depth = 1

    def submit(self, job: object) -> object:
        raise RuntimeError("pull does not run steps")

    def shutdown(self, kill: bool = False) -> None:
        pass


def _no_executor(pipeline: Pipeline, options: BuildOptions) -> _NoExecutor:
    return _NoExecutor()


def _need_remote(pipeline: Pipeline, option: str | None, command: str) -> str:
    url = remote_url(option, pipeline.settings)
    if url is None:
        raise UserError(
            f"makeflow {command} needs a remote cache, and none is set",
            hint="Give --remote URL (e.g. s3://bucket/prefix or file:///shared/cache), set "
            "MAKEFLOW_REMOTE, or add remote = \"URL\" to the [makeflow] table of "
            "makeflow.toml.")
    return url


def pull(pipeline: Pipeline, targets: Iterable[str], remote: str | None,
         reporter: Reporter, jobs: int = 8, progress: Show | None = None) -> BuildResult:
    """Restore the outputs of TARGETS' steps from the caches without running anything:
    steps whose results the local or remote run cache holds, or whose makeflow.lock entry
    matches their inputs. Each restored step is recorded, so a build after it runs nothing.
    RemoteFailed when the remote cannot be used."""
    url = _need_remote(pipeline, remote, "pull")
    options = BuildOptions(jobs=jobs, remote=url, restore_only=True, progress=progress)
    result = build(pipeline, targets, options, reporter, _no_executor)
    if result.remote_error:
        raise RemoteFailed(result.remote_error)
    return result


@dataclass
class Pushed:
    steps: int = 0  # fresh steps whose results were sent
    new: int = 0  # of which the remote did not have a record yet
    skipped: list[str] = field(default_factory=list)  # stale, or not cached


def push(pipeline: Pipeline, targets: Iterable[str], remote: str | None,
         progress: Show | None = None) -> Pushed:
    """Upload the current outputs and records of TARGETS' fresh steps to the remote
    (blobs first, then records; what it has already is not sent again). `progress` is
    told of each big file's transfer."""
    from makeflow.store.remote import Remote, RemoteError

    url = _need_remote(pipeline, remote, "push")
    plan = status(pipeline, targets)
    done = Pushed()
    cache = local_cache(pipeline)
    runs = []
    with contextlib.chdir(pipeline.root), StateStore(pipeline.root) as state:
        for sid, step in plan.graph.steps.items():
            if step.rule.is_alias:
                continue
            run = _saved_run(cache, step, state) if sid not in plan.stale else None
            if run is None:
                done.skipped.append(sid)
            else:
                runs.append(run)
    transfers = Transfers(progress)
    for _, record in runs:
        transfers.name(record.outputs, cache.cas)
    try:
        target = Remote(url, progress=transfers)
        target.check(create=True)
        done.new = target.push_runs(cache.cas, runs)
    except RemoteError as exc:
        raise RemoteFailed(str(exc)) from None
    done.steps = len(runs)
    return done


def _saved_run(cache: RunCache, step: Step, state: StateStore) -> tuple[str, RunRecord] | None:
    """A fresh step's (key, record) in the local cache, storing its outputs if needed."""
    record = state.record(step.id)
    key = record_key(step, record) if record is not None and cacheable(step) else None
    if key is None:
        return None
    saved = cache.get(key)
    if saved is None:
        try:
            saved = cache.save(key, step.id, record.outputs, log_path(step.id), record.seconds)
        except (BlobError, OSError):
            return None  # its outputs changed meanwhile: not what the record says
    return key, saved
