"""The loop that runs stale steps in parallel and records each success as it happens.

Submit every ready step (all its upstream steps done) while a job slot is free (Python
steps up to the executor's `depth` per slot, so it can send them in batches); when one
finishes, the thread that saw it end checks and hashes its outputs (written in place, the
previous ones set aside until then), and hands the step to this loop through a queue; the
loop records it and checks each step waiting on it again, so a rerun whose outputs came
out identical makes nothing after it run (early cutoff). A failed step with `retries` left
runs again after a backoff. The state store, the digests and the plan are used by this
loop's thread only."""

from __future__ import annotations

import heapq
import queue
import time
from collections.abc import Callable
from concurrent.futures import Future

from makeflow.define.loader import Pipeline
from makeflow.define.placeholders import substitute
from makeflow.plan.cachekey import cache_key, cacheable
from makeflow.plan.graph import Graph, Step
from makeflow.plan.staleness import (
    FORCED,
    Digests,
    Plan,
    below_skipped,
    params_of,
    reasons,
    recipe_of,
)
from makeflow.run import temp
from makeflow.run.cached import BuildCache, Restored
from makeflow.run.executors import Executor, ExecutorFactory, Job, JobResult, NotStarted
from makeflow.run.landing import Landed, Running, land, os_error, result_of
from makeflow.run.outcome import BuildOptions, BuildResult, log_path
from makeflow.run.recording import NoRecorder, RunRecorder
from makeflow.run.records import record_moved, record_ran, record_skipped
from makeflow.run.reporter import Reporter, say_where
from makeflow.run.slots import JobSlots, slots_for
from makeflow.run.stopping import escalating, interrupted, remove_all
from makeflow.store import aside, fs
from makeflow.store.opening import StoreError
from makeflow.store.state import StateStore, StepRecord

BACKOFF = 0.5  # seconds before the first retry; doubles each time
BACKOFF_CAP = 30.0


class Run:
    """The state of one build while it runs: what waits, what runs, what is done."""

    landing = staticmethod(land)  # how an ended step's files are settled (see unshared.py)

    def __init__(self, pipeline: Pipeline, graph: Graph, plan: Plan, state: StateStore,
                 digests: Digests, options: BuildOptions, reporter: Reporter,
                 result: BuildResult, recorder: RunRecorder | NoRecorder | None = None,
                 cache: BuildCache | None = None):
        self.pipeline, self.graph, self.plan = pipeline, graph, plan
        self.cache = cache
        self.keys: dict[str, str] = {}  # cache keys of the steps submitted
        self.looked_up: set[str] = set()  # steps the cache did not have: they run
        self.restoring: dict[Future[Restored], Step] = {}
        self.state, self.digests, self.options = state, digests, options
        self.reporter, self.result = reporter, result
        self.recorder = recorder or NoRecorder()  # the run history
        self._only_stale(graph, plan.stale)
        self.ready: list[tuple[int, str]] = []  # a heap: the graph's order decides ties
        self.retry_at: list[tuple[float, int, str]] = []  # a heap of (when, position, step)
        self.attempts: dict[str, int] = {}
        self.running: dict[Future[JobResult], Running] = {}
        self.landed: queue.SimpleQueue[tuple[Future, Landed | None]] = queue.SimpleQueue()
        self.slots_in_use = JobSlots(options.jobs, 1)
        self.hold: Callable[[], None] = lambda: None  # the executor's, if it queues jobs
        self.stopping = False
        self.folders = fs.Folders()
        self.aside = aside.Aside()
        self.asides: dict[str, list[aside.Pair]] = {}  # the previous outputs, by step

    def _only_stale(self, graph: Graph, stale: dict[str, list[str]]) -> None:
        """Schedule the stale steps only: the others are done before the build starts.

        Everything below a stale step is stale too (with "upstream: X"), so a fresh step
        never waits for anything, and one changed input among 100,000 steps costs the
        loop the few dozen it reaches, not a pass over every step.
        """
        skipped = self.plan.skipped
        self.result.fresh = [sid for sid, step in graph.steps.items()
                             if sid not in stale and not step.rule.is_alias
                             and sid not in skipped]
        self.result.skipped = {sid: why for sid, why in skipped.items()
                               if not graph.steps[sid].rule.is_alias}
        self.skipping: set[str] = set()  # skipped while this build runs, aliases too
        self.position = {sid: i for i, sid in enumerate(graph.steps) if sid in stale}
        self.temp = temp.TempFiles(graph, set(self.position), self.result.temp_held,
                                   self.plan.before_checkpoint)
        self.waiting = {sid: 0 for sid in self.position}
        self.downstream: dict[str, list[str]] = {sid: [] for sid in self.position}
        for sid in self.position:
            for up in graph.upstream[sid]:
                if up in self.position:
                    self.waiting[sid] += 1
                    self.downstream[up].append(sid)

    def run(self, make_executor: ExecutorFactory) -> None:
        executor = make_executor(self.pipeline, self.options)
        self.hold = getattr(executor, "hold", self.hold)
        try:  # a step no worker can hold is a mistake found before anything runs
            self.slots_in_use = slots_for(executor, self.options.jobs,
                                          (self.graph.steps[s] for s in self.position))
        except BaseException:
            executor.shutdown()
            raise
        self.reporter.started(self.plan)
        say_where(executor, self.reporter)
        self.ready = [(self.position[s], s) for s, n in self.waiting.items() if n == 0]
        self._temp_done(None)
        try:
            self._loop(executor)
        except KeyboardInterrupt as exc:
            stopped = [r.step for f, r in self.running.items() if f.running() or f.done()]
            with escalating(executor):
                executor.shutdown(kill=True)
                self._discard(stopped)
            raise interrupted(exc, [s.id for s in stopped], len(self.result.ran)) from None
        finally:
            with escalating(executor):
                executor.shutdown(kill=bool(self.running))
                self._flush()
        r = self.result
        settled = {*r.failed, *r.ran, *r.cut_off, *r.fresh, *r.restored, *r.skipped}
        self.result.not_run = [
            sid for sid in self.graph.steps
            if sid in self.plan.stale and sid not in settled
            and not self.graph.steps[sid].rule.is_alias
        ]

    def _discard(self, stopped: list[Step]) -> None:
        """Remove what interrupted steps wrote, and put back every previous output set
        aside: also those of a step the interrupt caught between its start and its entry
        in `running`, and of steps that never started."""
        for step in stopped:
            remove_all(step.outputs.paths)
        for pairs in self.asides.values():
            aside.put_back(pairs)
        self.asides.clear()

    def _put_back(self, step: Step) -> None:
        """The step did not succeed: its previous outputs, set aside, go back in place."""
        pairs = self.asides.pop(step.id, None)
        if pairs:
            aside.put_back(pairs)

    def _loop(self, executor: Executor) -> None:
        while self.ready or self.running or self.retry_at or self.restoring:
            self._due_retries(executor)
            self._fill(executor)
            if not self.running and not self.restoring:
                if self.stopping and not self.retry_at:
                    return
                if self.retry_at:
                    time.sleep(max(0.0, self.retry_at[0][0] - time.monotonic()))
                continue
            timeout = self.retry_at[0][0] - time.monotonic() if self.retry_at else None
            self._flush()  # before waiting: what finished is on disk
            finished = self._wait(timeout)
            if all(not landed.error for _, landed in finished):
                self._fill(executor)  # keep every slot busy while the results are recorded
            for running, landed in finished:
                self._finish(running, landed)

    def _wait(self, timeout: float | None) -> list[tuple[Running, Landed]]:
        """The steps that ended, waiting up to `timeout` for the first one.

        One queue that the threads put ended steps on costs less per wake-up than
        concurrent.futures.wait, which hooks into every running future each time.
        """
        try:
            ended = [self.landed.get(timeout=None if timeout is None else max(0.0, timeout))]
        except queue.Empty:
            return []
        while not self.landed.empty():
            ended.append(self.landed.get_nowait())
        finished = []
        for future, landed in ended:
            if future in self.restoring:
                self._restored(future)
                continue
            if future not in self.running:
                continue  # cancelled by this loop, already taken back
            running = self._taken_back(future)
            if landed is None:  # cancelled by the executor: the step did not run
                self._put_back(running.step)
            else:
                finished.append((running, landed))
        return finished

    def _taken_back(self, future: Future[JobResult]) -> Running:
        running = self.running.pop(future)
        self.slots_in_use.give_back(running.job.command is None, running.step.rule.resources)
        return running

    def _fill(self, executor: Executor) -> None:
        """Start ready steps, in the graph's order, while a job slot is free."""
        while self.ready and not self.stopping:
            sid = self.ready[0][1]
            rule = self.graph.steps[sid].rule
            if not self.slots_in_use.free(rule.shell is None, rule.resources):
                return
            heapq.heappop(self.ready)
            self._start(sid, executor)

    def _flush(self) -> None:
        """Write what finished, step records and history rows in one transaction."""
        try:
            self.state.flush(self.recorder.rider())
        except StoreError as exc:
            exc.hint = ((exc.hint + "\n") if exc.hint else "") + (
                "The steps that finished since the last write run again next time.")
            raise
        self.recorder.flush()  # rows the state store did not take: it warns, never fails

    def _due_retries(self, executor: Executor) -> None:
        while self.retry_at and self.retry_at[0][0] <= time.monotonic():
            _, _, sid = heapq.heappop(self.retry_at)
            self._submit(self.graph.steps[sid], executor)

    def _start(self, sid: str, executor: Executor) -> None:
        """Run the step if it is stale now; otherwise it is done at once."""
        step = self.graph.steps[sid]
        why = self._why(step)
        if not why or step.rule.is_alias:
            cut_off = sid in self.plan.stale
            if cut_off and not step.rule.is_alias:
                self.reporter.step_cut_off(step)
                self.recorder.cut_off(step)
            self._done(sid, "cut_off" if cut_off else "fresh")
            return
        self.plan.stale[sid] = why
        self.recorder.started(step, why)  # the reasons, for a restore or a run
        if self._restore(step):
            return
        if self.options.restore_only:  # `pull`: what the caches do not have waits to run
            return
        self.reporter.step_started(step, why)
        self._submit(step, executor)

    def _restore(self, step: Step) -> bool:
        """Look the stale step up in the run cache on the cache's threads; whether it was
        handed there. A hit is done without running; a miss comes back to run."""
        if self.cache is None or not cacheable(step):
            return False
        key = self.keys.get(step.id) or cache_key(step, self.digests)
        if key is None:
            return False
        self.keys[step.id] = key
        if (self.options.force or step.id in self.looked_up
                or self.plan.forced.get(step.id) == FORCED  # --forcerun: run it
                or self.cache.surely_missing(key)):
            return False
        future = self.cache.submit(self.cache.restore, step, key, log_path(step.id))
        self.restoring[future] = step
        future.add_done_callback(lambda done: self.landed.put((done, None)))
        return True

    def _restored(self, future: Future[Restored]) -> None:
        """Record a step restored from the cache, or send it back to run."""
        step = self.restoring.pop(future)
        self._cache_warnings()
        try:
            restored = future.result()
        except Exception as exc:  # a cache fault costs a rerun, never the build
            self.reporter.warning(f"the run cache failed for {step.id}: {exc!r}")
            restored = Restored()
        if restored.record is None:
            self.looked_up.add(step.id)
            if not self.stopping:
                heapq.heappush(self.ready, (self.position[step.id], step.id))
            return
        for path in step.outputs.paths:
            self.digests.forget(path)
        self.digests.learn(restored.outputs)
        inputs = {p: self.digests.get(p) or "" for p in step.inputs.paths}
        outputs = {p: r.digest for p, r in restored.outputs.items()}
        record = StepRecord(recipe_of(step), params_of(step), inputs, outputs,
                            time.time_ns(), restored.record.seconds)
        self.state.record_step(step.id, record,
                               {**self.digests.take_hashed(), **restored.outputs})
        self.reporter.step_restored(step)
        self.recorder.restored(step)
        self._done(step.id, "restored")

    def _cache_warnings(self) -> None:
        if self.cache is not None:
            for text in self.cache.take_warnings():
                self.reporter.warning(text)

    def _submit(self, step: Step, executor: Executor) -> None:
        attempt = self.attempts[step.id] = self.attempts.get(step.id, 0) + 1
        try:
            job = self._job(step, attempt)
        except OSError as exc:
            self._failed(step, None, f"cannot prepare its output folder: {os_error(exc)}")
            return
        try:
            pairs = self._set_aside(step)
        except OSError as exc:
            self._failed(step, None, f"cannot set its previous output aside: {os_error(exc)}")
            return
        running = Running(step, job, {p: self.digests.stat(p) for p in step.inputs.paths},
                          pairs)
        future = executor.submit(job)
        self.running[future] = running
        self.slots_in_use.take(job.command is None, step.rule.resources)
        future.add_done_callback(lambda done: self._land(done, running))

    def _land(self, future: Future[JobResult], running: Running) -> None:
        """Called in the thread that ended the step: move and hash its outputs there, so
        this work overlaps other steps, then queue it for the loop. Never raises: an
        exception here would be lost, and the loop would wait for the step forever."""
        if future.cancelled() or isinstance(future.exception(), NotStarted):
            self.landed.put((future, None))
            return
        try:
            landed = self.landing(running, result_of(future))
            self._save(running, landed)
        except Exception as exc:  # the step fails, the build goes on
            now = time.time()
            landed = Landed(JobResult(False, now, now), f"makeflow failed: {exc!r}")
        if landed.error and not self.options.keep_going and (
                self.attempts.get(running.step.id, 1) > running.step.rule.retries):
            self.hold()  # the build stops: this thread must not start a queued step
        self.landed.put((future, landed))

    def _save(self, running: Running, landed: Landed) -> None:
        """Hand a step's fresh outputs to the run cache (it copies them on its threads)."""
        key = self.keys.get(running.step.id)
        if self.cache is None or key is None or landed.error or landed.moved or landed.skipped:
            return  # a skipped step's outputs (put back) are not what its key would make
        result = landed.result
        self.cache.save_later(running.step, key,
                              {p: r.digest for p, r in landed.outputs.items()},
                              running.job.log, result.finished - result.started)

    def _why(self, step: Step) -> list[str]:
        forced = self.plan.forced.get(step.id)
        if (self.options.force or forced == FORCED) and not step.rule.is_alias:
            return list(FORCED)
        if step.id not in self.plan.stale:
            return []
        why = reasons(step, self.state, self.digests, now=self.options.clock())
        return why or list(forced or ())

    def _job(self, step: Step, attempt: int) -> Job:
        outputs = step.outputs
        for path in outputs.paths:
            self.folders.make_parent(path)
        command = None
        if step.rule.shell is not None:
            command = substitute(step.rule, step.rule.shell, step.inputs, outputs, step.wildcards)
        log = log_path(step.id)
        self.folders.make_parent(log)
        return Job(step.id, step.rule.name, log, command, step.inputs, outputs,
                   dict(step.rule.params), dict(step.wildcards), step.rule.timeout, attempt,
                   self.pipeline.shell, step.rule.resources.asked())

    def _set_aside(self, step: Step) -> list[aside.Pair]:
        """Move the step's existing outputs aside, so it starts with none (a folder output
        starts empty) and a failure can put them back. The stats of the plan say which
        exist: an output that does not costs no system call."""
        stats = self.digests.stats
        existing = [p for p in step.outputs.paths if stats.get(p) is not None]
        if not existing:
            return []
        for path in existing:
            self.digests.forget(path)
        pairs = self.asides[step.id] = self.aside.set_aside(existing)
        return pairs

    def _finish(self, running: Running, landed: Landed) -> None:
        step, job = running.step, running.job
        if landed.error:
            self._failed(step, job, landed.error, landed.result)
            return
        self.asides.pop(step.id, None)  # dropped by `land`
        for final in step.outputs.paths:
            self.digests.forget(final)
        if landed.skipped:
            self.digests.learn(landed.outputs)
            record_skipped(self.state, self.digests, step, landed)
            self.recorder.ran(step, landed.result, job, "skipped", landed.skipped)
            self._skip(step.id, landed.skipped)
            return
        self.digests.learn(landed.outputs)
        if landed.moved:
            record_moved(self.state, step, landed)
            self.reporter.warning(
                f"{landed.moved} changed while {step.id} ran; its result is not recorded as "
                "fresh and it will run again next time"
            )
        else:
            error = record_ran(self.state, self.digests, step, landed)
            if error:
                self._failed(step, job, error, landed.result)
                return
        self.reporter.step_finished(step, landed.result)
        self.recorder.ran(step, landed.result, job)
        self._done(step.id, "ran")

    def _skip(self, sid: str, reason: str, decided: bool = True) -> None:
        """The step made nothing (`decided`), or needs one that did: it does not run, nor
        anything below it, and that is no failure: the build goes on."""
        self.skipping.add(sid)
        self.plan.stale.pop(sid, None)
        self._temp_done(sid)
        step = self.graph.steps[sid]
        if not step.rule.is_alias:
            self.result.skipped[sid] = reason
            shown = getattr(self.reporter, "step_skipped", None)  # reporters before Skip
            if shown is not None:
                shown(step, reason, decided)
        for down in self.downstream[sid]:
            if down not in self.skipping:
                self._skip(down, below_skipped(sid, reason, self.state.skips), False)

    def _failed(self, step: Step, job: Job | None, error: str,
                result: JobResult | None = None) -> None:
        """Without a job the step never started: its outputs are the good ones."""
        if job is not None:
            error += remove_all(step.outputs.paths)
            for path in step.outputs.paths:
                self.digests.forget(path)
            self._put_back(step)
        attempt = self.attempts.get(step.id, 1)
        if attempt <= step.rule.retries and not self.stopping:
            delay = min(BACKOFF * 2 ** (attempt - 1), BACKOFF_CAP)
            self.result.retried[step.id] = attempt
            self.reporter.step_retrying(step, error, attempt, step.rule.retries, delay)
            self.recorder.retrying(step, result)
            heapq.heappush(self.retry_at,
                           (time.monotonic() + delay, self.position[step.id], step.id))
            return
        self.result.failed[step.id] = error
        self.reporter.step_failed(step, error, job.log if job else log_path(step.id))
        self.recorder.failed(step, error, result, job)
        if not self.options.keep_going:
            self.stopping = True
            self.ready.clear()
            self.hold()
            self._cancel_queued()

    def _cancel_queued(self) -> None:
        """Take back the submitted steps that have not started: the build is stopping."""
        for future, running in list(self.running.items()):
            if future.cancel():
                self._taken_back(future)
                self._put_back(running.step)

    def _temp_done(self, sid: str | None) -> None:
        """Delete the temp files whose last reader was this step (None: an earlier part)."""
        due = self.temp.finished(sid) if sid else self.temp.earlier_due()
        if due and self.cache is not None:
            self.cache.finish_saves()  # the cache copies them first
        for warning in temp.delete(due, self.digests):
            self.reporter.warning(warning)

    def _done(self, sid: str, how: str) -> None:
        if not self.graph.steps[sid].rule.is_alias:
            getattr(self.result, how).append(sid)
        if how != "ran":
            self.plan.stale.pop(sid, None)
        self._temp_done(sid)
        for down in self.downstream[sid]:
            self.waiting[down] -= 1
            if self.waiting[down] == 0 and not self.stopping and down not in self.skipping:
                heapq.heappush(self.ready, (self.position[down], down))
