"""What every `makeflow` command shares: -f, -C and --set, finding and loading the rules,
the executor and remote options, and turning library errors into a message and an exit
status, never a traceback.
"""

from __future__ import annotations

import contextlib
import functools
import os
import signal
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any

import click

from makeflow.define.loader import Pipeline, find_rules_file, load
from makeflow.errors import Interrupted, MakeflowError, Terminated
from makeflow.run.build import BuildOptions
from makeflow.run.executors.choose import EXECUTORS, SCHEDULER_ENV, Choice, choose
from makeflow.ui.plain import TransferLines


def handle_errors(command: Callable[..., Any]) -> Callable[..., Any]:
    """Turn library errors into a message on stderr and an exit status, never a traceback."""

    @functools.wraps(command)
    def wrapper(*args: Any, **kwargs: Any) -> Any:
        try:
            return command(*args, **kwargs)
        except Interrupted as exc:
            with contextlib.suppress(OSError):  # after a hangup the terminal is gone
                error(str(exc), after_keys=True)
            sys.exit(exc.exit_code)
        except MakeflowError as exc:
            error(str(exc))
            sys.exit(exc.exit_code)
        except Terminated as exc:
            with contextlib.suppress(OSError):  # after a hangup the terminal is gone
                error(f"stopped by {signal.Signals(exc.signum).name}", after_keys=True)
            sys.exit(128 + exc.signum)
        except KeyboardInterrupt:
            error("stopped by SIGINT", after_keys=True)
            sys.exit(128 + signal.SIGINT)

    return wrapper


def no_color() -> bool:
    """Whether the user asked for no colour at all (https://no-color.org)."""
    return bool(os.environ.get("NO_COLOR"))


def error(text: str, after_keys: bool = False) -> None:
    """Print an error on stderr. `after_keys`: after Ctrl-C, whose `^C` the terminal
    echoed where the cursor was, so the message starts on a line of its own."""
    if after_keys and sys.stderr.isatty():
        click.echo("", err=True)
    first, _, rest = text.partition("\n")
    prefix = "makeflow: error: "
    if not no_color():
        prefix = click.style(prefix, fg="red", bold=True)
    click.echo(prefix + first, err=True)
    if rest:
        click.echo(rest, err=True)


def project_options(command: Callable[..., Any]) -> Callable[..., Any]:
    """-f, -C and --set, shared by every command that reads the rules file."""
    command = click.option(
        "--set", "overrides", multiple=True, metavar="KEY=VALUE",
        help="Override a value of makeflow.toml, e.g. --set train.alpha=0.3 (a TOML literal).",
    )(command)
    command = click.option(
        "-C", "--directory", metavar="DIR", help="Run as if started in DIR.")(command)
    command = click.option(
        "-f", "--file", "rules_file", metavar="FILE",
        help="The rules file (default: Makeflow.py).")(command)
    return command


def open_pipeline(rules_file: str | None, directory: str | None,
                  overrides: tuple[str, ...]) -> Pipeline:
    """Load the rules file; options given before the command (`makeflow -C dir build`) count
    too, as with make."""
    early = click.get_current_context().find_root().obj or {}
    return load(
        find_rules_file(rules_file or early.get("rules_file"),
                        directory or early.get("directory")),
        (*early.get("overrides", ()), *overrides),
    )


def executor_options(command: Callable[..., Any]) -> Callable[..., Any]:
    """--executor, --scheduler, --no-shared-fs and --download, shared by build and watch."""
    command = click.option(
        "--download", type=click.Choice(["targets", "all"]), default=None,
        help="With --no-shared-fs: which outputs come back here, the requested targets' "
        "(default) or all.")(command)
    command = click.option(
        "--no-shared-fs", "no_shared_fs", is_flag=True, default=None,
        help="The Dask workers do not see the project folder: each step runs in a scratch "
        "folder on its worker, its files moving through the remote store (needs --remote "
        "or MAKEFLOW_REMOTE).")(command)
    command = click.option(
        "--scheduler", metavar="ADDRESS",
        help="Run steps on the Dask cluster of this scheduler, e.g. tcp://10.0.0.5:8786 "
        f"(or set {SCHEDULER_ENV}).")(command)
    command = click.option(
        "--executor", type=click.Choice(EXECUTORS), default=None,
        help="Where steps run: local processes, or a Dask cluster (default: local, or the "
        "[makeflow] executor setting of makeflow.toml).")(command)
    return command


def executor_for(pipeline: Pipeline, jobs: int | None, executor: str | None,
                 scheduler: str | None, no_shared_fs: bool | None = None,
                 download: str | None = None) -> tuple[BuildOptions, Choice]:
    """The build's -j and its executor, from the command line, environment and config;
    with --no-shared-fs (None: the setting) and --download."""
    choice = choose(pipeline, executor, scheduler, jobs_given=jobs is not None)
    return BuildOptions(jobs=jobs or os.cpu_count() or 1,
                        shared_fs=False if no_shared_fs else None, download=download), choice


def remote_option(command: Callable[..., Any]) -> Callable[..., Any]:
    return click.option(
        "--remote", metavar="URL", default=None,
        help="The shared cache: any fsspec URL (s3://bucket/prefix, file:///path, ...). "
        "Default: $MAKEFLOW_REMOTE, or remote in the [makeflow] table of makeflow.toml.",
    )(command)



def project_root(rules_file: str | None, directory: str | None) -> Path:
    """The folder of the rules file, found as the other commands find it, without running
    it: reading the history needs no rules."""
    early = click.get_current_context().find_root().obj or {}
    return find_rules_file(rules_file or early.get("rules_file"),
                           directory or early.get("directory")).parent


def transfer_lines() -> TransferLines:
    """Big files' transfers on stderr, for commands without a build's reporter (push)."""
    return TransferLines(sys.stderr)


def size_text(n: int) -> str:
    for unit, scale in (("GB", 10**9), ("MB", 10**6), ("kB", 10**3)):
        if n >= scale:
            return f"{n / scale:.1f} {unit}"
    return f"{n} B"


kept: list[object] = []  # a command's big results, left for the process's end to free


def keep(*results: object) -> None:
    """Hold on to a command's results (its graph, its plan) past its return: freeing a
    million steps object by object costs a second or more, which `quick_exit` skips."""
    kept.extend(results)


def quick_exit(code: int) -> None:
    """End the process now, once the output is flushed: the memory goes back to the
    system in one piece instead of one object at a time. Nothing else is pending by
    then: the store, the lock and every file were closed by the command."""
    try:
        sys.stdout.flush()
        sys.stderr.flush()
    except (OSError, ValueError):
        return  # let the usual exit report it
    os._exit(code)
