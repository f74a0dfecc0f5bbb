"""The Dask executor: steps run on the workers of a Dask cluster (the only dask importer).

`makeflow build --executor dask` starts a LocalCluster of `-j` single-threaded worker
processes on 127.0.0.1 (no dashboard) and stops it at the end; `--scheduler ADDRESS` uses
a running cluster instead (Slurm through dask-jobqueue, Kubernetes through the operator).
The coordinator plans and records; workers only run steps, through `on_worker`, which
checks each worker's copy of the rules, runs shell steps as process groups and Python
steps in child processes, and stops them when asked. Dask's own retry of tasks whose
worker died is turned off: makeflow counts such a rerun against the rule's `retries`.
"""

from __future__ import annotations

import contextlib
import dataclasses
import itertools
import logging
import signal
import threading
import time
import uuid
import warnings
from concurrent.futures import Future, ThreadPoolExecutor
from typing import Any

import dask
import distributed
from distributed.diagnostics.plugin import WorkerPlugin
from distributed.scheduler import KilledWorker

from makeflow.define.loader import Pipeline
from makeflow.errors import BuildFailed, UserError
from makeflow.run.capacity import Capacity, gpu_count, machine, memory_mb
from makeflow.run.executors import Job, JobResult, on_worker, rules_digest
from makeflow.run.executors.on_worker import BuildSpec
from makeflow.run.executors.sent import (
    Pace,
    StepFuture,
    bounded,
    cannot_check,
    note,
    split,
    stamp,
    started_since,
)

CONNECT_SECONDS = 3.0  # an address that does not answer by then is a mistake
FIRST_WORKER_SECONDS = 60.0  # a running cluster may still be starting its workers
FREE_RESENDS = 3  # a step whose worker died before it started is sent again, uncounted
CLOSE_SECONDS = 2 * CONNECT_SECONDS  # the longest a clean-up step may hold the build
GATHER_SECONDS = 0.01  # the longest a short step waits to be sent with others


def quiet() -> None:
    """Keep Dask's loggers and warnings off the user's terminal: makeflow reports itself."""
    noisy = ("distributed", "tornado", "asyncio", "bokeh")
    names = [n for n in logging.root.manager.loggerDict if n.split(".")[0] in noisy]
    for name in {*noisy, *names}:  # Dask gives some of its loggers levels of their own
        logger = logging.getLogger(name)
        logger.setLevel(logging.CRITICAL + 1)
        logger.propagate = False
        for handler in list(logger.handlers):
            logger.removeHandler(handler)
    warnings.filterwarnings("ignore", module=r"(distributed|dask|tornado)(\.|$)")
    dask.config.set({
        "distributed.scheduler.allowed-failures": 0,
        "distributed.comm.timeouts.connect": f"{CONNECT_SECONDS:g}s",
        "distributed.logging.distributed": "critical",
        "distributed.admin.system-monitor.gil.enabled": False,
    })


def run_on_worker(spec: BuildSpec, batch: list[tuple[str, Job]]) -> list[JobResult]:
    """The task a worker runs for one or more steps, one after the other. Each step's
    result goes to the build as an event as soon as the step ends (through the scheduler,
    on the way messages take anyway), which saves fetching it from the worker afterwards;
    the list returned is fetched only when an event went missing."""
    worker = distributed.get_worker()
    topic, results = _topic(spec.build_id), []
    for key, job in batch:
        result = on_worker.run_step(spec, job, worker.address, worker.local_directory)
        worker.log_event(topic, {"key": key, "result": list(dataclasses.astuple(result))})
        results.append(result)
    return results


def _topic(build_id: str) -> str:
    return f"makeflow-{build_id}"


class RulesPlugin(WorkerPlugin):
    """Hands every worker, and each one that joins later, the rules image the build loaded,
    once: the worker compares its own copies of those files with it, and its Python steps
    run exactly those bytes. The image goes once per worker, not with every step."""

    def __init__(self, spec: BuildSpec, image: Any):
        self.spec, self.image = spec, image

    def setup(self, worker: Any) -> None:
        on_worker.open_build(self.spec, self.image, worker.address, worker.local_directory)

    def teardown(self, worker: Any) -> None:
        on_worker.end_build(self.spec.build_id)


def _no_dask_retries(dask_scheduler: Any = None) -> None:
    dask_scheduler.allowed_failures = 0


class DaskExecutor:
    """Runs steps as tasks of a Dask cluster: its own LocalCluster, or a running one."""

    # Steps in flight per job slot: a step waits on its worker while the one before it
    # ends, and short steps go several per task (see `sent.Pace`).
    depth = shell_depth = 16

    def __init__(self, pipeline: Pipeline, jobs: int, scheduler: str | None,
                 jobs_given: bool = True, digest: str | None = None,
                 remote: str | None = None):
        quiet()
        self.cluster: Any = None
        self.local = scheduler is None
        if self.local:
            self.cluster = start_local_cluster(jobs)
            scheduler = self.cluster.scheduler_address
        self.address: str = scheduler  # type: ignore[assignment]
        self.client = connect(self.address)
        self.lock = threading.Lock()
        self.tasks: dict[StepFuture, distributed.Future] = {}
        self.by_key: dict[str, StepFuture] = {}
        self.settling = ThreadPoolExecutor(1, thread_name_prefix="makeflow-dask-settle")
        self.outbox: list[StepFuture] = []  # submitted, not yet sent (see `_sending`)
        self.wake = threading.Condition(self.lock)
        self.sender: threading.Thread | None = None
        self.pace = Pace()
        self.numbers = itertools.count()
        self.lost = ""
        self.closing = False
        self.plugin = ""  # the name of the worker plugin with the build's rules
        try:
            self._prepare(pipeline, jobs, jobs_given, digest, remote)
        except BaseException:
            self._close()
            raise

    def _prepare(self, pipeline: Pipeline, jobs: int, jobs_given: bool,
                 digest: str | None, remote: str | None) -> None:
        digest = digest or rules_digest(pipeline.file)
        self.spec = BuildSpec(uuid.uuid4().hex, str(pipeline.file), digest, pipeline.overrides,
                              remote)
        if self.local:
            self.client.run(on_worker.ignore_interrupts)
        else:
            self._wait_for_workers()
            with contextlib.suppress(Exception):
                self.client.run_on_scheduler(_no_dask_retries)
        self._check_workers(pipeline)
        self.client.subscribe_topic(_topic(self.spec.build_id), self._on_event)
        threads = sum(w["nthreads"] for w in self.workers().values())
        self.jobs = jobs if jobs_given or self.local else max(1, threads)
        self.limits = machine(jobs) if self.local else None

    def _wait_for_workers(self) -> None:
        try:
            self.client.wait_for_workers(1, timeout=FIRST_WORKER_SECONDS)
        except (TimeoutError, OSError):
            raise UserError(f"the Dask scheduler at {self.address} has no workers",
                            hint=f"No worker joined within {FIRST_WORKER_SECONDS:g}s; start "
                            f"some with: dask worker {self.address}") from None

    def _check_workers(self, pipeline: Pipeline) -> None:
        """Send every worker the rules image, and refuse the build when a worker's copy of
        the rules file or of a project module differs from the build's."""
        self.plugin = f"makeflow-{self.spec.build_id}"
        try:
            self.client.register_plugin(RulesPlugin(self.spec, pipeline.image), self.plugin)
        except Exception as exc:
            raise UserError(f"could not send the rules to the workers of {self.address}: "
                            f"{exc!r}") from None
        answers = self.client.run(on_worker.refusal, self.spec.build_id, on_error="return")
        problems = [a if isinstance(a, str) or a is None else cannot_check(addr, a)
                    for addr, a in sorted(answers.items())]
        problems = [p for p in problems if p]
        if problems:
            raise UserError(problems[0] + (f" (and {len(problems) - 1} more workers)"
                                           if len(problems) > 1 else ""),
                            hint="Every worker must see the same Makeflow.py and project "
                            "modules at the same path, and have makeflow installed.")

    def workers(self) -> dict[str, dict[str, Any]]:
        try:
            info = self.client.scheduler_info(n_workers=-1)
        except TypeError:  # before Dask 2025: every worker is listed anyway
            info = self.client.scheduler_info()
        return info.get("workers", {})

    def places(self) -> list[Capacity]:
        """This machine for a LocalCluster (makeflow admits steps itself), else each worker
        with the resources it declares (Dask admits steps to workers)."""
        if self.local:
            return [machine(self.jobs)]
        return [Capacity(addr, *(w.get("resources", {}).get(kind) for kind in
                                 ("cpus", "mem_mb", "gpus")))
                for addr, w in self.workers().items()]

    def describe(self) -> str:
        workers = sorted(self.workers())
        where = "a LocalCluster on 127.0.0.1" if self.local else f"the cluster at {self.address}"
        shown = ", ".join(workers[:4]) + (f" and {len(workers) - 4} more" if len(workers) > 4
                                          else "")
        return f"{len(workers)} Dask workers, {where}: {shown}"

    def submit(self, job: Job) -> Future[JobResult]:
        """Queue the step for the sending thread, which sends what queued meanwhile at
        once: one message to the scheduler for many steps, short ones several per task."""
        if self.lost:
            raise BuildFailed(self.lost, hint="The steps that finished are recorded; the "
                              "others run next time.")
        future = StepFuture(self, job)
        future.queued = time.monotonic()
        with self.lock:
            self.outbox.append(future)
            self.wake.notify()
            if self.sender is None:
                self.sender = threading.Thread(target=self._sending, daemon=True,
                                               name="makeflow-dask-send")
                self.sender.start()
        return future

    def _sending(self) -> None:
        """The sending thread: short steps are gathered for up to GATHER_SECONDS while the
        workers have enough queued, so that they go several per task."""
        while True:
            with self.lock:
                while not self.closing and not self._due():
                    self.wake.wait(GATHER_SECONDS if self.outbox else None)
                if self.closing:
                    return
                futures, self.outbox = self.outbox, []
            try:
                self._send(futures)
            except BuildFailed:
                now = time.time()
                for future in futures:
                    self._deliver(future, JobResult(False, now, now, None, self.lost))

    def _due(self) -> bool:
        """Whether to send what waits now (called holding the lock)."""
        if not self.outbox:
            return False
        size = self.pace.batch()
        return (size == 1 or len(self.outbox) >= size * self.jobs
                or len(self.by_key) < self.jobs  # the workers are about to run out
                or time.monotonic() - self.outbox[0].queued >= GATHER_SECONDS)

    def _send(self, futures: list[StepFuture]) -> None:
        """Send steps in tasks, those asking the same resources together; one call, so
        one message to the scheduler, per kind of resources."""
        kinds: dict[tuple, list[StepFuture]] = {}
        for future in futures:
            kinds.setdefault(tuple(sorted(future.job.resources.items())), []).append(future)
        for kind, same in kinds.items():
            batches = split(same, self.pace.batch(), self.jobs)
            # numbered, so that Dask's ordering of tasks sent together keeps the graph's
            keys = [f"makeflow-{next(self.numbers):09d}-{b[0].job.step_id}" for b in batches]
            with self.lock:  # before any of them can end
                self.by_key.update((f.key, f) for f in stamp(batches, time.time()))
            try:
                tasks = self.client.map(run_on_worker, [self.spec] * len(batches),
                                        [[(f.key, f.job) for f in b] for b in batches],
                                        key=keys, pure=False, resources=dict(kind) or None,
                                        retries=0)
            except Exception as exc:
                self._lose(f"cannot send steps to it ({exc})")
                raise BuildFailed(self.lost) from None
            for batch, task in zip(batches, tasks, strict=True):
                self._track(batch, task)

    def _track(self, batch: list[StepFuture], task: distributed.Future) -> None:
        with self.lock:
            for future in batch:
                future.task = self.tasks[future] = task
        task.add_done_callback(lambda done: self._settle(batch, done))

    def _on_event(self, event: Any) -> None:
        """A step's result, sent by its worker; settled in a thread of its own, since this
        runs in the client's event loop and settling moves on to hashing outputs."""
        try:
            message = event[1]
            with self.lock:
                future = self.by_key.pop(message["key"], None)
            result = JobResult(*message["result"])
        except (LookupError, TypeError):
            return
        if future is not None:
            self.settling.submit(self._deliver, future, result)

    def _settle(self, batch: list[StepFuture], task: distributed.Future) -> None:
        """Turn an ended task into its steps' results, for those whose events did not
        bring them already; never raises (a callback thread)."""
        with self.lock:
            for future in batch:
                self.tasks.pop(future, None)
            waiting = [f for f in batch if not (f.withdrawn or f.done())]
        if not waiting:
            return
        if task.status == "finished":
            self.settling.submit(self._settle_finished, batch, task)
            return
        for future in waiting:
            try:
                result = self._result(future, task)
            except Exception as exc:
                now = time.time()
                result = JobResult(False, now, now, None, f"the Dask executor failed: {exc!r}")
            if result is not None:
                self._deliver(future, result)

    def _settle_finished(self, batch: list[StepFuture], task: distributed.Future) -> None:
        """A finished task some of whose events have not come: fetch its results."""
        if all(f.done() for f in batch):
            return
        try:
            results = task.result()
        except Exception as exc:
            now = time.time()
            results = [JobResult(False, now, now, None, f"the Dask executor failed: {exc!r}")
                       ] * len(batch)
        for future, result in zip(batch, results, strict=False):
            self._deliver(future, result)

    def _deliver(self, future: StepFuture, result: JobResult) -> None:
        """Set the step's result once. One that comes while the step is being withdrawn is
        held until that is decided: dropped if it was cancelled, kept if it was not."""
        with self.lock:
            self.by_key.pop(future.key, None)
            if future.withdrawn or future.done():
                return
            if future.withdrawing:
                future.held = result
                return
        self.pace.add(result)
        with contextlib.suppress(Exception):
            future.set_result(result)

    def _result(self, future: StepFuture, task: distributed.Future) -> JobResult | None:
        now = time.time()
        if task.status == "cancelled":
            if self.closing:
                return None
            self._lose("the connection to its scheduler was lost")
            return JobResult(False, future.sent, now, None, self.lost)
        exc = task.exception()
        if isinstance(exc, KilledWorker):
            return self._worker_died(future, exc)
        if isinstance(exc, (OSError, distributed.comm.CommClosedError)):
            self._lose(f"lost touch with it: {exc}")
            return JobResult(False, future.sent, now, None, self.lost)
        return JobResult(False, future.sent, now, None, f"the Dask task failed: {exc!r}")

    def _worker_died(self, future: StepFuture, exc: KilledWorker) -> JobResult | None:
        """A step whose worker died: sent again if it never started there (its log is
        untouched since it was sent), else failed, naming the worker."""
        worker = getattr(exc.last_worker, "address", None) or str(exc.last_worker)
        if not started_since(future.job.log, future.sent) and future.resends < FREE_RESENDS:
            future.resends += 1
            with contextlib.suppress(BuildFailed):
                self._send([future])
                return None
        note(future.job.log, f"[makeflow] worker {worker} died while running this step")
        return JobResult(False, future.sent, time.time(), None,
                         f"its worker {worker} died while it ran")

    def _lose(self, why: str) -> None:
        self.lost = self.lost or f"the Dask cluster at {self.address} went away: {why}"

    def withdraw(self, future: StepFuture) -> bool:
        """Cancel a step that has not started on any worker; False when one runs it.

        Every worker marks the step not to start, unless it runs there already."""
        with self.lock:
            if future in self.outbox:  # not sent yet
                self.outbox.remove(future)
                future.withdrawn = True
                return True
            task = self.tasks.get(future)
            if task is None or self.lost or self.closing:
                return False
            future.withdrawing = True
        try:
            running = self.client.run(on_worker.cancel_steps, self.spec.build_id,
                                      [future.job.step_id], on_error="ignore")
            cancel = not any(running.values())
        except Exception:
            cancel = False
        with self.lock:
            future.withdrawing, future.withdrawn = False, cancel
            held, future.held = future.held, None
            if cancel:
                self.tasks.pop(future, None)
        if cancel and future.alone():  # else the worker skips it, running the others
            with contextlib.suppress(Exception):
                self.client.cancel([task], force=True)
        elif held is not None:
            future.set_result(held)
        return cancel

    def shutdown(self, kill: bool = False) -> None:
        """Stop: with `kill`, cancel what waits and kill what runs on every worker."""
        with self.lock:
            tasks = list({t.key: t for t in self.tasks.values()}.values())
            self.tasks.clear()
            self.closing = True
            self.outbox.clear()
            self.wake.notify_all()
        if not self.lost:
            bounded(lambda: self._stop_workers(tasks, kill), CLOSE_SECONDS)
        self._close()

    def _stop_workers(self, tasks: list[distributed.Future], kill: bool) -> None:
        if kill and tasks:
            self.client.cancel(tasks, force=True)
        stop = on_worker.kill_build if kill else on_worker.end_build
        self.client.run(stop, self.spec.build_id, on_error="ignore")

    def _close(self) -> None:
        self.settling.shutdown(wait=False)
        if self.plugin and not self.lost and not self.local:  # workers joining later: none
            bounded(lambda: self.client.unregister_worker_plugin(self.plugin), CLOSE_SECONDS)
        bounded(lambda: self.client.close(timeout=CONNECT_SECONDS), CLOSE_SECONDS)
        if self.cluster is not None:
            bounded(lambda: self.cluster.close(timeout=CONNECT_SECONDS), CLOSE_SECONDS)
            self.cluster = None


def start_local_cluster(jobs: int) -> Any:
    """`jobs` single-threaded worker processes on 127.0.0.1, no dashboard. Each may hold
    any step this machine can: makeflow's own slots admit steps against the machine.
    Ctrl-C is ignored while they start, so they leave stopping steps to the build."""
    resources = {"cpus": jobs, "mem_mb": memory_mb(), "gpus": gpu_count()}
    previous = signal.signal(signal.SIGINT, signal.SIG_IGN)
    try:
        # send every submitted step to a worker at once: makeflow already keeps no more in
        # flight than -j times `depth`, and a step queued on its worker starts without a
        # round trip to the scheduler when the one before it ends. Its scheduler runs in
        # this process: it samples the system (for a dashboard it has not) once a minute
        dask.config.set({"distributed.scheduler.worker-saturation": float("inf"),
                         "distributed.admin.system-monitor.interval": "60s"})
        return distributed.LocalCluster(
            n_workers=jobs, threads_per_worker=1, processes=True, host="127.0.0.1",
            dashboard_address=None, silence_logs=logging.CRITICAL, memory_limit=0,
            resources=resources, protocol="tcp",
        )
    except Exception as exc:
        raise UserError(f"could not start a Dask LocalCluster: {exc}") from None
    finally:
        signal.signal(signal.SIGINT, previous)


def connect(address: str) -> distributed.Client:
    """A client of the scheduler at `address`; one that does not answer is a user error."""
    if "://" not in address or not address.split("://", 1)[1]:
        raise UserError(f"--scheduler {address!r} is not a scheduler address",
                        hint="Give it as tcp://HOST:PORT, e.g. tcp://10.0.0.5:8786.")
    try:
        return distributed.Client(address, timeout=CONNECT_SECONDS, set_as_default=False)
    except (OSError, TimeoutError, ValueError) as exc:
        raise UserError(
            f"cannot reach the Dask scheduler at {address}: {str(exc).splitlines()[0]}",
            hint="Check that the scheduler runs (dask scheduler) and that this machine can "
            "reach that address and port.",
        ) from None
