"""Which executor a build uses: the command line first, then the environment, then the
`[makeflow]` table of makeflow.toml; the local one when nothing says otherwise."""

from __future__ import annotations

import os
from dataclasses import dataclass

from makeflow.define.loader import Pipeline
from makeflow.errors import UserError
from makeflow.run.executors import Executor, rules_digest
from makeflow.run.outcome import BuildOptions

EXECUTORS = ("local", "dask")
SCHEDULER_ENV = "MAKEFLOW_DASK_SCHEDULER"


@dataclass(frozen=True)
class Choice:
    """An executor chosen for a build, callable as the build's executor factory."""

    kind: str = "local"
    scheduler: str | None = None  # a running Dask scheduler; None starts a LocalCluster
    jobs_given: bool = True  # -j given: else a running cluster's thread count sets it
    digest: str | None = None  # of the rules file when it was loaded, for workers to match

    def __call__(self, pipeline: Pipeline, options: BuildOptions) -> Executor:
        from makeflow.run.cached import unshared_remote  # only a build that runs steps

        if self.kind == "dask":
            try:
                from makeflow.run.executors.dask import DaskExecutor
            except ImportError:
                raise UserError("--executor dask needs Dask: pip install 'makeflow[dask]'") \
                    from None
            return DaskExecutor(pipeline, options.jobs, self.scheduler, self.jobs_given,
                                self.digest, unshared_remote(options, pipeline.settings))
        if unshared_remote(options, pipeline.settings) is not None:
            raise UserError("--no-shared-fs runs steps on Dask workers, not on this machine",
                            hint="Give --executor dask (a LocalCluster) or --scheduler ADDRESS,"
                            " or leave --no-shared-fs out.")
        from makeflow.run.executors.local import LocalExecutor  # only a build that runs steps

        return LocalExecutor(options.jobs, pipeline.file, pipeline.overrides, pipeline.image)


def choose(pipeline: Pipeline, executor: str | None = None, scheduler: str | None = None,
           jobs_given: bool = True) -> Choice:
    """The executor from `--executor`/`--scheduler`, else the `executor` setting of
    makeflow.toml; the scheduler from `--scheduler`, else MAKEFLOW_DASK_SCHEDULER, else the
    `scheduler` setting. A scheduler address implies Dask unless the executor is local."""
    if executor == "local" and scheduler:
        raise UserError(f"--scheduler {scheduler} needs --executor dask, not local")
    if executor is None and scheduler is None:
        executor = pipeline.settings.executor
    if executor != "local":
        scheduler = (scheduler or os.environ.get(SCHEDULER_ENV)
                     or pipeline.settings.scheduler)
    if executor is None:
        executor = "dask" if scheduler else "local"
    if executor == "local":
        return Choice("local", None, jobs_given)
    return Choice("dask", scheduler, jobs_given, _digest(pipeline))


def _digest(pipeline: Pipeline) -> str | None:
    """The rules file as this process loaded it: a worker with another copy is refused."""
    try:
        return rules_digest(pipeline.file)
    except OSError:
        return None
