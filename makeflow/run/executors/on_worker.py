"""What a cluster worker does for a build: check its copy of the rules, run steps, stop them.

Runs inside a worker process of a cluster (and imports nothing of the cluster's library,
which the Dask executor module alone does). Each build has a `Site` on each worker it
uses, opened once per build (by the executor's worker plugin, also on a worker that joins
later) and kept for the build. It gets the rules image the build loaded (`Makeflow.py`
and the project's helper modules, as bytes): the worker's own copy of each of those files
is compared with it once, as a local worker runs exactly those bytes, and a worker whose
copy differs is refused, naming the files. Shell steps run as process groups of their
own, and Python steps run in a child process of the worker that loaded the image once, so
the worker's own thread never runs a step and a timed-out or cancelled step can be killed.
"""

from __future__ import annotations

import dataclasses
import os
import signal
import tempfile
import threading
import time
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

from makeflow.run.executors import Job, JobResult, rules_digest
from makeflow.run.executors.jobs import Processes, run_shell
from makeflow.run.executors.local import WorkerPool, may_have_children

if TYPE_CHECKING:
    from makeflow.define.loader import RulesImage

KEEP = 4  # builds a worker remembers; an older one's Python processes are ended


@dataclass(frozen=True)
class BuildSpec:
    """What every step of one build tells the worker: which build, and which rules."""

    build_id: str
    rules_file: str
    digest: str
    overrides: tuple[str, ...]
    remote: str | None = None  # workers share no disk with the build: steps run in scratch

    @property
    def root(self) -> str:
        return str(Path(self.rules_file).parent)


def image_mismatch(image: RulesImage, worker: str) -> str:
    """Why this worker must not run the build's steps ('' when its copies of the rules
    file and of every project module the build loaded are byte for byte the build's)."""
    root = Path(image.file).parent
    unreadable, differ = [], []
    for filename, data in sorted(image.sources.items()):
        try:
            with open(filename, "rb") as f:
                same = f.read() == data
        except OSError:
            unreadable.append(filename)
            continue
        if not same:
            differ.append(_shown(filename, root))
    if unreadable:
        return (f"worker {worker} cannot read {_listed([_shown(f, root) for f in unreadable])}"
                f" in {root}; the workers must see the project at the same path (or run the "
                "build with --no-shared-fs)")
    if differ:
        return (f"worker {worker} has another version of {_listed(differ)} than the build "
                f"(in {root}); it was refused, so no step ran with the wrong code")
    return ""


def _shown(filename: str, root: Path) -> str:
    try:
        return str(Path(filename).relative_to(root))
    except ValueError:
        return filename


def _listed(names: list[str]) -> str:
    return ", ".join(names[:5]) + (f" and {len(names) - 5} more" if len(names) > 5 else "")


def rules_mismatch(spec: BuildSpec, worker: str) -> str:
    """Why this worker must not run the build's steps, when the build's rules image did not
    reach it: its rules file's digest alone is compared ('' when it is the same)."""
    try:
        digest = rules_digest(spec.rules_file)
    except OSError as exc:
        return (f"worker {worker} cannot read the rules file {spec.rules_file}: "
                f"{exc.strerror or exc}; the workers must see the project at the same path")
    if digest != spec.digest:
        return (f"worker {worker} has another version of {spec.rules_file} than the build "
                f"(digest {digest[:12]}, the build's is {spec.digest[:12]}); it was refused, "
                "so no step ran with the wrong code")
    return ""


class Site:
    """One build on one worker: its running shell steps and its Python step processes."""

    def __init__(self, spec: BuildSpec, worker: str, image: RulesImage | None = None,
                 base: str = ""):
        self.spec = spec
        self.opened = time.time()  # blobs of the scratch store not used since go at the end
        self.base = base  # the worker's own folder, where scratch folders and blobs go
        # sharing no disk, the worker has no copy to compare: it runs the image it is sent
        self.refused = ("" if spec.remote is not None else image_mismatch(image, worker)
                        if image is not None else rules_mismatch(spec, worker))
        may_have_children()
        self.processes = Processes()
        self.pool = WorkerPool(max(1, os.cpu_count() or 1), spec.rules_file, spec.overrides,
                               image)
        self.lock = threading.Lock()
        self.running: set[str] = set()
        self.cancelled: set[str] = set()
        self.killed = False

    def run(self, job: Job, worker: str, base: str = "") -> JobResult:
        """Run a step here; with a remote, in a scratch folder under `base`."""
        self.base = self.base or base
        if self.refused:
            now = time.time()
            return JobResult(False, now, now, None, self.refused)
        with self.lock:
            if job.step_id in self.cancelled or self.killed:
                now = time.time()
                return JobResult(False, now, now, None, "cancelled before it started")
            self.running.add(job.step_id)
        try:
            if self.spec.remote is not None:
                from makeflow.run.executors.scratch import run_in_scratch

                result = run_in_scratch(job, lambda here: self._run(here, worker),
                                        self.spec.remote, base)
            else:
                os.chdir(self.spec.root)  # relative paths of the job are the project's
                result = self._run(job, worker)
        finally:
            with self.lock:
                self.running.discard(job.step_id)
        return dataclasses.replace(result, worker=worker)

    def _run(self, job: Job, worker: str) -> JobResult:
        if job.command is not None:
            result = run_shell(job, self.processes)
        else:
            result = self.pool.submit(job).result()
        _note_worker(job.at(job.log), worker)
        return result

    def cancel(self, step_ids: list[str]) -> list[str]:
        """Mark steps not to start here; returns those already running here."""
        with self.lock:
            running = [s for s in step_ids if s in self.running]
            self.cancelled.update(s for s in step_ids if s not in self.running)
        return running

    def kill(self) -> int:
        """Stop every step of the build on this worker; returns how many were running."""
        with self.lock:
            self.killed = True
            count = len(self.running)
        self.pool.kill_all()
        self.processes.stop_all(grace=1.0)
        return count

    def close(self) -> None:
        self.pool.kill_all() if self.killed else self.pool.close()

    def trim(self) -> None:
        """Sharing no disk, drop the scratch store's blobs this build did not use."""
        if self.spec.remote is not None and self.base:
            from makeflow.run.executors.scratch import trim

            trim(self.base, self.opened)


def _note_worker(log: str, worker: str) -> None:
    """Say in the step's log which worker ran it, for `makeflow logs`."""
    try:
        fd = os.open(log, os.O_WRONLY | os.O_APPEND | os.O_CREAT | os.O_CLOEXEC, 0o666)
    except OSError:
        return
    try:
        os.write(fd, f"\n[makeflow] ran on worker {worker}\n".encode())
    finally:
        os.close(fd)


_sites: dict[str, Site] = {}
_early: dict[str, set[str]] = {}  # steps cancelled before the build's first step came here
_sites_lock = threading.Lock()


def open_build(spec: BuildSpec, image: RulesImage | None, worker: str, base: str = "") -> str:
    """Make the build's Site on this worker with the rules image the build loaded (`base`:
    the worker's own folder); why the worker is refused ('' when it is not)."""
    return site_for(spec, worker, image, base).refused


def refusal(build_id: str) -> str | None:
    """Why this worker was refused for the build ('' if it was not; None: never opened)."""
    site = _sites.get(build_id)
    return None if site is None else site.refused


def site_for(spec: BuildSpec, worker: str, image: RulesImage | None = None,
             base: str = "") -> Site:
    """The build's Site on this worker: opened with its image, or else made at its first
    step (then the rules file's digest alone is checked)."""
    with _sites_lock:
        site = _sites.get(spec.build_id)
        if site is None:
            site = _sites[spec.build_id] = Site(spec, worker, image, base)
            site.cancelled.update(_early.pop(spec.build_id, ()))
            old = list(_sites)[:-KEEP]
            retired = [_sites.pop(build_id) for build_id in old]
        else:
            retired = []
    for gone in retired:
        gone.close()
    return site


def run_step(spec: BuildSpec, job: Job, worker: str, base: str = "") -> JobResult:
    """Run a step of the build on this worker (`base`: where its scratch folders go)."""
    return site_for(spec, worker).run(job, worker, base or tempfile.gettempdir())


def cancel_steps(build_id: str, step_ids: list[str]) -> list[str]:
    """Mark steps not to start on this worker; returns those already running here."""
    with _sites_lock:
        site = _sites.get(build_id)
        if site is None:  # no step of the build came here yet: remember for when one does
            _early.setdefault(build_id, set()).update(step_ids)
            return []
    return site.cancel(step_ids)


def kill_build(build_id: str) -> int:
    site = _sites.get(build_id)
    return site.kill() if site is not None else 0


def end_build(build_id: str) -> None:
    """The build is over on this worker: its Python processes end, its unused blobs go."""
    with _sites_lock:
        site = _sites.pop(build_id, None)
    if site is not None:
        site.close()
        site.trim()


def ignore_interrupts() -> None:
    """Workers started by makeflow leave Ctrl-C to the build, which stops steps itself."""
    signal.signal(signal.SIGINT, signal.SIG_IGN)
