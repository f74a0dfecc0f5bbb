"""build(): the one entry point of a build, from targets to recorded results.

It takes the project lock, resolves the graph, plans (what is stale and why), and hands
the stale steps to the scheduler; `status()` plans without running anything.
"""

from __future__ import annotations

import contextlib
import time
from collections.abc import Callable, Iterable

from makeflow import gcpause
from makeflow.define.loader import Pipeline
from makeflow.errors import UserError
from makeflow.plan import uptodate
from makeflow.plan.choosing import Chosen, choose
from makeflow.plan.claims import refuse_outputs_outside
from makeflow.plan.graph import Graph
from makeflow.plan.graph_cache import cache_key, resolve_cached
from makeflow.plan.staleness import Digests, Plan, make_plan, skipped_steps
from makeflow.run import growing
from makeflow.run.executors import ExecutorFactory
from makeflow.run.executors.choose import Choice
from makeflow.run.outcome import BuildOptions, BuildResult, log_path
from makeflow.run.recording import RunRecorder, current_metrics
from makeflow.run.reporter import Reporter
from makeflow.store import aside, fs
from makeflow.store.lock import ProjectLock, ReadOnlyFolder
from makeflow.store.lockfile import LockFile
from makeflow.store.state import StateStore

__all__ = ["BuildOptions", "BuildResult", "build", "log_path", "status"]


local_executor: ExecutorFactory = Choice("local")
NOTHING_CHOSEN = Chosen()


def build(pipeline: Pipeline, targets: Iterable[str], options: BuildOptions,
          reporter: Reporter, executor: ExecutorFactory = local_executor) -> BuildResult:
    """Bring `targets` up to date; see the module docstring for the loop."""
    started = time.monotonic()
    try:
        with contextlib.chdir(pipeline.root), ProjectLock(pipeline.root) as lock:
            try:
                lock.acquire(options.wait, reporter.warning)
            except ReadOnlyFolder:
                if not options.dry_run:
                    raise
                # a dry run writes nothing: in a read-only checkout it plans without the lock
            else:
                if not options.dry_run:
                    _recover(reporter)
            result = _build(pipeline, targets, options, reporter, executor)
    except BaseException:
        stopped = getattr(reporter, "stopped", None)  # reporters written before it have none
        if stopped is not None:
            with contextlib.suppress(OSError):  # the terminal hung up: say why it stopped
                stopped()
        raise
    result.seconds = time.monotonic() - started
    reporter.finished(result)
    return result


def _recover(reporter: Reporter) -> None:
    """Put back the outputs a killed build had set aside: before planning, so the plan
    sees the good files, and under the lock, so no step of another build is running."""
    restored = aside.recover()
    if restored:
        reporter.warning(
            f"put back {len(restored)} output(s) that a stopped build had set aside "
            f"while their step ran: {', '.join(restored[:5])}"
            + (" ..." if len(restored) > 5 else "")
        )


def _build(pipeline: Pipeline, targets: Iterable[str], options: BuildOptions,
           reporter: Reporter, executor: ExecutorFactory) -> BuildResult:
    shared = pipeline.settings.shared_fs if options.shared_fs is None else options.shared_fs
    if not shared:  # no shared disk, no remote: said before anything is planned
        from makeflow.run.cached import unshared_remote

        unshared_remote(options, pipeline.settings)
    with StateStore(pipeline.root) as state:
        for warning in (*pipeline.warnings, *state.warnings):
            reporter.warning(warning)
        state.on_warning = reporter.warning  # a store found damaged later
        with gcpause.paused():
            plan, digests, all_fresh = _plan(pipeline, targets, state, options.force,
                                             options.clock(),
                                             Chosen(options.forcerun, options.until),
                                             remote_ok=not shared)
        graph = plan.graph
        for warning in digests.lock.warnings if digests.lock is not None else ():
            reporter.warning(warning)
        result = BuildResult(plan=plan)
        if options.dry_run:
            reporter.planned(plan)
            return result
        recorder = RunRecorder(None if state.read_only else state.db, pipeline, targets)
        result.run_id = recorder.run_id
        outcome = "error"
        try:
            if options.touch:
                from makeflow.run.touch import touch

                touch(plan, state, digests, result)
                all_fresh(plan.skipped)
            else:
                plan, digests = _run_parts(pipeline, targets, plan, state, digests, options,
                                           reporter, result, executor, recorder, all_fresh)
                graph = plan.graph
            outcome = "ok" if result.ok else "failed"
        except KeyboardInterrupt:
            outcome = "interrupted"
            raise
        finally:
            values, unread = current_metrics(pipeline, graph)
            recorder.finish(result, graph, outcome, values)
            for warning in [*recorder.warnings, *([unread] if unread else [])]:
                reporter.warning(warning)
        if result.ok and not plan.quick and digests.lock is not None:
            from makeflow.run.locking import update_lock

            try:
                update_lock(digests.lock, graph, state, digests, result)
            except (OSError, ValueError) as exc:
                reporter.warning(f"could not write {digests.lock.path.name}: {exc}")
    return result


def _run_parts(pipeline: Pipeline, targets: Iterable[str], plan: Plan, state: StateStore,
               digests: Digests, options: BuildOptions, reporter: Reporter,
               result: BuildResult, executor: ExecutorFactory, recorder: RunRecorder,
               all_fresh: Callable[..., None]) -> tuple[Plan, Digests]:
    """Run the plan; when stale checkpoints decide part of the graph, run the part before
    them, plan again with what they wrote, and go on (run/growing.py). The last plan and
    its digests are returned: the graph as it grew. Every part runs on one executor."""
    earlier: dict[str, list[str]] = {}  # the reasons of the steps run in earlier parts
    one = growing.OneExecutor(executor)
    try:
        plan, digests, deferred = _parts(pipeline, list(targets), plan, state, digests,
                                         options, reporter, result, one, recorder,
                                         all_fresh, earlier)
    finally:
        one.close()
    if deferred is not None:  # one part counts each step once: a million ids not sifted
        growing.settle(result, deferred)
    plan.stale = {**{s: why for s, why in earlier.items() if s in plan.graph.steps},
                  **plan.stale}
    result.plan = plan
    return plan, digests


def _parts(pipeline: Pipeline, targets: list[str], plan: Plan, state: StateStore,
           digests: Digests, options: BuildOptions, reporter: Reporter, result: BuildResult,
           executor: growing.OneExecutor, recorder: RunRecorder,
           all_fresh: Callable[..., None], earlier: dict[str, list[str]]
           ) -> tuple[Plan, Digests, list[str] | None]:
    """The loop of `_run_parts`; the last plan, its digests, and the steps left waiting
    for a checkpoint that did not run (None when the build ran in one part)."""
    deferred: list[str] = []
    for part_number in range(growing.MOST_PARTS):
        if not plan.waiting:
            executor.last = True  # the end of this part stops the executor
            _run(pipeline, plan, state, digests, options, reporter, result, executor,
                 recorder, all_fresh)
            return plan, digests, [] if part_number else None
        part = growing.first_part(plan)
        deferred = [s for s, step in plan.graph.steps.items()
                    if s not in part.graph.steps and not step.rule.is_alias]
        earlier.update(part.stale)  # before the run settles them
        _run(pipeline, part, state, digests, options, reporter, result, executor,
             recorder, lambda *_: None)
        if not result.ok or not growing.ran_checkpoints(plan, part, result):
            break  # a step failed, or `pull` could not restore a checkpoint: no growing
        before, checkpoints = plan.graph, list(plan.waiting)
        with gcpause.paused():
            plan, digests, all_fresh = _plan(pipeline, targets, state, options.force,
                                             options.clock(),
                                             Chosen(options.forcerun, options.until))
        plan = growing.without_done(plan, growing.done(result))
        _cut_off([s for s in deferred if s in plan.graph.steps and s not in plan.stale],
                 plan, result, recorder)
        gone = growing.dropped(before, plan.graph)
        if gone:
            reporter.warning(growing.dropped_warning(gone, checkpoints))
    return plan, digests, deferred


def _cut_off(sids: list[str], plan: Plan, result: BuildResult, recorder: RunRecorder) -> None:
    """Steps that waited for a checkpoint and turned out fresh once it had run: its output
    came out the same for them (early cutoff, as below any step)."""
    for sid in sids:
        result.cut_off.append(sid)
        recorder.cut_off(plan.graph.steps[sid])


def _run(pipeline: Pipeline, plan: Plan, state: StateStore, digests: Digests,
         options: BuildOptions, reporter: Reporter, result: BuildResult,
         executor: ExecutorFactory, recorder: RunRecorder, all_fresh: Callable[..., None]) -> None:
    """Run the stale steps, if any, with the run cache unless it is turned off; save the
    no-op snapshot when everything is fresh."""
    graph = plan.graph
    if not plan.runnable:
        skipped = plan.skipped
        result.fresh = [s for s, step in graph.steps.items()
                        if not step.rule.is_alias and (not skipped or s not in skipped)]
        result.skipped = {s: why for s, why in plan.skipped.items()
                          if not graph.steps[s].rule.is_alias}
        if result.temp_held and not plan.before_checkpoint:
            from makeflow.run import temp  # only for rules with temp= outputs

            for warning in temp.release(result.temp_held, digests):
                reporter.warning(warning)
        if digests.remote_ok:  # workers share no disk: the targets may be on the remote
            from makeflow.run.unshared import download_fresh

            download_fresh(pipeline, graph, digests, state, options, reporter)
        if not plan.quick and not options.force:
            all_fresh(result.skipped)
        return
    from makeflow.run.cached import lock_hints, open_cache
    from makeflow.run.scheduler import Run  # threads and processes: only when a step runs

    settings = pipeline.settings
    cache = None
    if options.cache and (settings.cache or options.restore_only):
        from makeflow.run.transfers import Transfers

        show = options.progress or getattr(reporter, "transfer", None)
        cache = open_cache(pipeline.root, settings, options.remote, options.push,
                           Transfers(show))
        if options.restore_only:
            cache.hints = lock_hints(plan.graph, digests.lock)
    kind = Run
    if digests.remote_ok:  # workers share no disk: files go through the remote
        from makeflow.run.unshared import UnsharedRun as kind
    try:
        kind(pipeline, graph, plan, state, digests, options, reporter, result, recorder,
             cache).run(executor)
        if not digests.remote_ok:  # outputs kept on the remote are not hashed here
            from makeflow.run.settling import settle_outputs

            settle_outputs(state, state.updated_files, reporter.warning)
    finally:
        if cache is not None:
            cache.close(settings.cache_max_size)
            result.remote_error = cache.remote_error
            for warning in cache.take_warnings():
                reporter.warning(warning)
    _say_skew(digests, state)
    if result.ok and not result.not_run and not state.forgotten:
        all_fresh(result.skipped)


def _say_skew(digests: Digests, state: StateStore) -> None:
    """Warn, through the store's warnings, of files hashed with an mtime in the future."""
    warning = digests.skew()
    if warning:
        state.warn(warning)


def status(pipeline: Pipeline, targets: Iterable[str], now: float | None = None,
           remote: str | None = None, cache: bool = False) -> Plan:
    """The plan without running anything: which steps are stale, and why.

    With `cache`, stale steps whose cache key the run cache (or the remote) knows are
    listed in `plan.restorable`, and their warnings in `plan.warnings`.
    """
    with contextlib.chdir(pipeline.root), StateStore(pipeline.root) as state, gcpause.paused():
        plan, digests, _ = _plan(pipeline, targets, state, False, now)
        if cache and pipeline.settings.cache and plan.runnable:
            _restorable(pipeline, plan, digests, remote)
    plan.warnings = [*pipeline.warnings, *plan.warnings]
    return plan


def _refuse_unknown(graph: Graph, plan: Plan) -> None:
    """A function that could not open what a checkpoint writes is fine while that
    checkpoint runs first; when it is fresh (or has just run), the failure is the user's."""
    if not graph.unknown:
        return
    waiting = {sid for sids in plan.waiting.values() for sid in sids}
    for sid, error in graph.unknown.items():
        if sid not in waiting:
            raise UserError(error.message, where=error.where, hint=error.hint)
        plan.stale[sid] = ["inputs not known yet"]


def _restorable(pipeline: Pipeline, plan: Plan, digests: Digests, remote: str | None) -> None:
    """Mark the stale steps that a build (or, by makeflow.lock, `pull`) would restore
    rather than run.

    Only steps stale for their own reasons: one below a stale step gets its key when its
    upstream has run.
    """
    from makeflow.plan.cachekey import cache_key as step_key
    from makeflow.plan.cachekey import cacheable
    from makeflow.run.cached import lock_hints, open_cache

    cache = open_cache(pipeline.root, pipeline.settings, remote)
    if cache.remote_url is None and cache.local.empty():
        return  # nothing to find: no input is hashed for a key (a million, at a million steps)
    cache.hints = lock_hints(plan.graph, digests.lock)  # what `pull` could fetch by the lock
    for sid in plan.runnable:
        step = plan.graph.steps[sid]
        if not cacheable(step) or any(w.startswith("upstream") for w in plan.stale[sid]):
            continue
        key = step_key(step, digests)
        if key is not None and cache.known(key):
            plan.restorable.add(sid)
    plan.warnings = [*plan.warnings, *cache.take_warnings()]


def _recorded_outputs(state: StateStore) -> set[str]:
    """What the store says steps made: needed only when the graph is resolved anew."""
    from makeflow.plan.made import recorded_outputs

    return recorded_outputs(state)


def _plan(pipeline: Pipeline, targets: Iterable[str], state: StateStore, force: bool,
          now: float | None, chosen: Chosen = NOTHING_CHOSEN, remote_ok: bool = False
          ) -> tuple[Plan, Digests, Callable[..., None]]:
    """Resolve and plan; the files hashed on the way are remembered for next time.

    The snapshot in `uptodate` names the files that may have changed since every step was
    last fresh: none settles the build from stats alone, a few limit the plan to the steps
    they reach. The third value saves a new snapshot: only a build calls it (it holds the
    project lock, so no other build writes meanwhile), once every step is fresh.
    """
    stats = fs.StatCache()
    digests = Digests(state, stats)
    digests.remote_ok = remote_ok  # outputs kept on the remote only count as present
    rules = cache_key(pipeline, targets)
    recipes = uptodate.recipes_key(pipeline)
    snapshot = uptodate.Snapshot(state.dir)
    early: dict[str, list[str] | None] = {}

    def vouch(shape: str) -> set[str] | None:
        """Stat the snapshot's files as soon as the saved graph's digest is known, so the
        graph cache's check that its files still exist skips those found here."""
        if force or chosen.forcerun or chosen.until:
            return None  # no snapshot is asked for, or it is keyed by the chosen steps
        early[shape] = snapshot.suspects(((rules, shape, recipes, ()), state.version))
        return snapshot.present()

    graph, shape, keep_graph = resolve_cached(pipeline, rules, stats, state.dir,
                                              lambda: _recorded_outputs(state), state, vouch)
    graph, forced, until = choose(graph, chosen)
    # The rules' files, in order, as well as the graph: a step's inputs listed in another
    # order change its fingerprint, though not the shape of the graph.
    key = (rules, shape, recipes, until)
    if force or forced:
        suspects = None
    elif shape in early and not until:
        suspects = early[shape]
    else:
        suspects = snapshot.suspects((key, state.version))

    def all_fresh(skipped: Iterable[str] = ()) -> None:
        if remote_ok:  # the no-op shortcut goes by local files; outputs are elsewhere
            return
        state.flush()
        from makeflow.plan.temp import temp_paths  # here, as the other uses of temp=

        temp = (p for step in graph.steps.values() for p in temp_paths(step))
        snapshot.save((key, state.version), graph, state,
                      [*(p for s in skipped for p in graph.steps[s].outputs.paths), *temp])

    if suspects == [] and not graph.unknown:
        keep_graph()
        plan = Plan(graph, warnings=state.warnings, quick=True)
        skipped_steps(plan, state.skips)
        return plan, digests, all_fresh
    resets = state.resets
    digests.lock = LockFile(pipeline.root)
    if any(r.temp for r in pipeline.rules):  # plan/temp.py is imported only for these
        from makeflow.plan.temp import stand_ins

        digests.stand_ins = stand_ins(graph, state, digests)
    plan = make_plan(graph, state, digests, force, now,
                     None if suspects is None else set(suspects), forced)
    if state.resets != resets:  # the store was found damaged: plan with the empty one
        plan = make_plan(graph, state, digests, force, now, forced=forced)
    if digests.stand_ins:
        from makeflow.plan.temp import with_temp_needed

        plan = with_temp_needed(plan, digests.stand_ins,
                                lambda more: make_plan(graph, state, digests, force, now,
                                                       forced=more))
    if any(r.checkpoint for r in pipeline.rules):  # else a look at every stale step for none
        from makeflow.plan.dynamic import waiting_on

        plan.waiting = waiting_on(graph, plan.runnable)
    _refuse_unknown(graph, plan)
    refuse_outputs_outside((graph.steps[sid] for sid in plan.runnable), str(pipeline.root))
    _say_skew(digests, state)
    plan.warnings = [*state.warnings, *digests.lock.warnings]
    state.remember_files(digests.take_hashed())
    keep_graph()  # now that the records of what was hashed are in
    return plan, digests, all_fresh
