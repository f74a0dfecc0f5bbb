"""The `makeflow` command: parses arguments, calls the library, prints, picks the exit status.

Exit status: 0 success, 1 a step failed (or `status --check` found stale steps), 2 wrong
input from the user, 128 + N when stopped by signal N.
"""

from __future__ import annotations

import contextlib
import dataclasses
import functools
import importlib
import os
import signal
import sys

import click

from makeflow import __version__
from makeflow.define.loader import Pipeline
from makeflow.errors import STOP_SIGNALS, Terminated, UserError
from makeflow.plan.staleness import Plan
from makeflow.run.build import build, status
from makeflow.ui.cli_options import (
    executor_for,
    executor_options,
    handle_errors,
    keep,
    kept,
    open_pipeline,
    project_options,
    quick_exit,
    remote_option,
)
from makeflow.ui.cli_tracking import build_and_log, log_to_mlflow, mlflow_option, mlflow_uri
from makeflow.ui.plain import batches, plan_lines
from makeflow.ui.view import make_reporter


def warn(text: str) -> None:
    click.echo(f"warning: {text}", err=True)


def say(text: str) -> None:
    click.echo(text, err=True)


def _on_stop_signal(signum: int, frame: object) -> None:
    raise Terminated(signum)


def main() -> None:
    for sig in STOP_SIGNALS:
        signal.signal(sig, _on_stop_signal)
    for stream in (sys.stdout, sys.stderr):  # file names need not be valid UTF-8
        if hasattr(stream, "reconfigure"):
            stream.reconfigure(errors="backslashreplace")
    try:
        cli(prog_name="makeflow")
    except SystemExit as exc:
        if kept and (exc.code is None or isinstance(exc.code, int)):
            quick_exit(exc.code or 0)
        raise


LAZY_COMMANDS = {  # name: "module:object", imported when the command runs or is listed
    "pull": "makeflow.ui.cli_sharing:pull_command",
    "push": "makeflow.ui.cli_sharing:push_command",
    "cache": "makeflow.ui.cli_sharing:cache_command",
    "runs": "makeflow.ui.cli_history:runs_command",
    "report": "makeflow.ui.cli_history:report_command",
    "metrics": "makeflow.ui.cli_history:metrics_command",
}


class LazyGroup(click.Group):
    """A group whose rarer commands live in modules imported only when one of them runs
    or `--help` lists them (click's documented lazy loading): every command pays for the
    imports of the whole command line otherwise, a no-op build included."""

    def list_commands(self, ctx: click.Context) -> list[str]:
        return sorted({*super().list_commands(ctx), *LAZY_COMMANDS})

    def get_command(self, ctx: click.Context, cmd_name: str) -> click.Command | None:
        if cmd_name in LAZY_COMMANDS and cmd_name not in self.commands:
            module, _, name = LAZY_COMMANDS[cmd_name].partition(":")
            self.add_command(getattr(importlib.import_module(module), name), cmd_name)
        return super().get_command(ctx, cmd_name)

    def resolve_command(self, ctx: click.Context, args: list[str]
                        ) -> tuple[str | None, click.Command | None, list[str]]:
        try:
            return super().resolve_command(ctx, args)
        except click.exceptions.NoSuchCommand as exc:  # "did you mean" knows only the loaded
            raise click.exceptions.NoSuchCommand(
                exc.command_name, possibilities=self.list_commands(ctx), ctx=ctx) from None


@click.group(cls=LazyGroup, context_settings={"help_option_names": ["-h", "--help"]})
@click.version_option(__version__, "--version", prog_name="makeflow")
@project_options
@click.pass_context
def cli(ctx: click.Context, rules_file: str | None, directory: str | None,
        overrides: tuple[str, ...]) -> None:
    """makeflow: build data artifacts from the rules in Makeflow.py.

    Steps rerun only when the content of their inputs, their code or their parameters
    changed; run `makeflow status` to see what is stale and why.
    """
    ctx.obj = {"rules_file": rules_file, "directory": directory, "overrides": overrides}


@cli.command("build")
@project_options
@click.argument("targets", nargs=-1)
@click.option("-j", "--jobs", type=click.IntRange(min=1), default=None,
              help="Run up to N steps at once (default: the CPUs here, or a running "
              "cluster's threads).")
@executor_options
@click.option("-n", "--dry-run", is_flag=True, help="Show what would run, run nothing.")
@click.option("-B", "--force", is_flag=True, help="Run every step, stale or not.")
@click.option("--forcerun", "forcerun", multiple=True, metavar="RULE|FILE",
              help="Rerun this rule's steps (or the step making this file), fresh or not, "
              "and what their outputs change below them; repeat for more.")
@click.option("--until", "until", multiple=True, metavar="RULE|FILE",
              help="Build only the steps leading up to this rule or file (it included); "
              "repeat for more.")
@click.option("--touch", is_flag=True,
              help="Record the existing outputs of stale steps as fresh, without running "
              "anything (to adopt outputs made by hand or by another tool).")
@click.option("-k", "--keep-going", is_flag=True,
              help="After a failure, still run every step that does not depend on it.")
@click.option("-q", "--quiet", is_flag=True, help="Print only failures and the summary.")
@click.option("--no-wait", is_flag=True,
              help="If another build runs in this folder, exit with status 2 instead of waiting.")
@click.option("-p", "--print-commands", is_flag=True,
              help="Print the command each step runs (after substitution), also with -n.")
@click.option("--json", "as_json", is_flag=True,
              help="Print one JSON object per line as the build goes (see docs/json.md).")
@remote_option
@click.option("--push", "push", is_flag=True, default=None,
              help="Upload what this build made to the remote cache.")
@click.option("--no-cache", is_flag=True,
              help="Run stale steps instead of restoring them, and cache nothing.")
@mlflow_option
@handle_errors
def build_command(rules_file: str | None, directory: str | None, overrides: tuple[str, ...],
                  targets: tuple[str, ...], jobs: int | None, executor: str | None,
                  scheduler: str | None, no_shared_fs: bool | None, download: str | None,
                  dry_run: bool, force: bool, forcerun: tuple[str, ...],
                  until: tuple[str, ...], touch: bool,
                  keep_going: bool, quiet: bool, no_wait: bool, print_commands: bool,
                  as_json: bool, remote: str | None, push: bool | None,
                  no_cache: bool, mlflow: str | None) -> None:
    """Bring TARGETS (files or rule names; default: the default rule) up to date.

    A stale step whose result is in the run cache (local, or the remote when one is set)
    is restored instead of run.
    """
    pipeline = open_pipeline(rules_file, directory, overrides)
    base, choice = executor_for(pipeline, jobs, executor, scheduler, no_shared_fs, download)
    if touch and (force or forcerun):
        raise UserError("--touch records outputs as they are without running anything, so "
                        "it cannot be combined with -B or --forcerun, which run steps",
                        hint="Run the build with -B or --forcerun, or --touch, not both.")
    options = dataclasses.replace(
        base, dry_run=dry_run, force=force, keep_going=keep_going, wait=not no_wait,
        remote=remote, push=push, cache=not no_cache, forcerun=forcerun, until=until,
        touch=touch)
    uri = None if dry_run else mlflow_uri(pipeline, mlflow)
    reporter = make_reporter(sys.stdout, quiet, print_commands, as_json)
    result = build(pipeline, targets, options, reporter, choice)
    if uri:  # synchronous: done before a quick exit could skip anything
        log_to_mlflow(uri, pipeline, result, targets, warn, None if quiet else say)
    if dry_run or result.plan is None or not result.plan.runnable:
        keep(pipeline, result)  # nothing ran: no executor or cluster to close at exit
    if not result.ok:
        sys.exit(1)


@cli.command("status")
@project_options
@click.argument("targets", nargs=-1)
@click.option("--check", is_flag=True, help="Exit with status 1 when anything is stale.")
@click.option("-p", "--print-commands", is_flag=True,
              help="Print the command each stale step would run.")
@click.option("--json", "as_json", is_flag=True,
              help="Print one JSON document (see docs/json.md).")
@remote_option
@handle_errors
def status_command(rules_file: str | None, directory: str | None, overrides: tuple[str, ...],
                   targets: tuple[str, ...], check: bool, print_commands: bool,
                   as_json: bool, remote: str | None) -> None:
    """Show which steps are stale and why, without running anything; a stale step the run
    cache can restore says so."""
    plan = status(open_pipeline(rules_file, directory, overrides), targets, remote=remote,
                  cache=True)
    keep(plan)
    if as_json:
        from makeflow.ui.jsonout import dumps, status_document

        document = status_document(plan, print_commands)
        click.echo(dumps(document))
        if check and document["stale"]:
            sys.exit(1)
        return
    for warning in plan.warnings:
        click.echo(f"warning: {warning}", err=True)
    for batch in batches(plan_lines(plan, print_commands, "stale  ")):
        click.echo(batch)
    skipped = {s: why for s, why in plan.skipped.items()
               if not plan.graph.steps[s].rule.is_alias}
    for sid, why in skipped.items():
        click.echo(f"skipped  {sid}: {why}")
    stale = len(plan.runnable)
    total = len(plan.graph.steps) - len(plan.graph.aliases)
    also = f", {len(skipped)} skipped" if skipped else ""
    if stale:
        click.echo(f"{stale} of {total} steps stale{also}")
    elif skipped:
        click.echo(f"{total - len(skipped)} of {total} steps up to date{also}")
    else:
        click.echo(f"all {total} steps up to date")
    if check and stale:
        sys.exit(1)


@cli.command("why")
@project_options
@click.argument("file")
@handle_errors
def why_command(rules_file: str | None, directory: str | None, overrides: tuple[str, ...],
                file: str) -> None:
    """Explain whether FILE is up to date, and what would rebuild it."""
    from makeflow.plan.made import folder_output_around, steps_with_outputs_below

    pipeline = open_pipeline(rules_file, directory, overrides)
    plan = status(pipeline, [file])  # refuses a path outside the project
    file = _in_project(file, pipeline)
    whole = plan
    path = os.path.normpath(file)
    if file not in plan.graph.steps and path not in plan.graph.producer:
        folder = folder_output_around(pipeline, path)
        if folder is not None:
            around = status(pipeline, [folder])
            made = explain(around, folder, around).partition(";")[2]
            sid = around.graph.producer[folder]
            click.echo(f"{file} is inside {folder}, a folder output of {sid} "
                       f"({around.graph.steps[sid].rule.where});{made}")
            return
        with contextlib.suppress(UserError):  # a pattern rule as the default: no whole graph
            whole = status(pipeline, [])  # who reads a source is known from the whole pipeline
        if os.path.isdir(path):
            makers = steps_with_outputs_below(pipeline, path, whole.graph.producer)
            if makers:
                click.echo(f"{file} is a folder that holds outputs of {', '.join(makers)}; "
                           "no rule makes it as a whole")
                return
    click.echo(explain(plan, file, whole))


def _in_project(file: str, pipeline: Pipeline) -> str:
    """An absolute path inside the project as the relative path the graph knows it by."""
    if not os.path.isabs(file):
        return file
    root = str(pipeline.root)
    for base, full in ((os.path.abspath(root), file),
                       (os.path.realpath(root), os.path.realpath(file))):
        rel = os.path.relpath(full, base)
        if rel != ".." and not rel.startswith("../"):
            return rel
    return file


def explain(plan: Plan, target: str, whole: Plan) -> str:
    graph = plan.graph
    sid = target if target in graph.steps else graph.producer.get(os.path.normpath(target))
    if sid is None:
        path = os.path.normpath(target)
        users = [s.id for s in whole.graph.steps.values() if path in s.inputs.paths]
        used = f"; used by {', '.join(users)}" if users else ""
        return f"{target} is a source file: no rule makes it{used}"
    step = graph.steps[sid]
    made = f"{target} is made by {sid} ({step.rule.where})" if sid != target else \
        f"{sid} ({step.rule.where})"
    why = plan.stale.get(sid)
    if not why and sid in plan.skipped:
        return f"{made}; it is skipped: {plan.skipped[sid]}"
    if not why:
        return f"{made}; it is up to date"
    return f"{made}; it is stale:\n" + "\n".join(f"  - {w}" for w in why)


@cli.command("graph")
@project_options
@click.argument("target", required=False)
@click.option("--format", "fmt", type=click.Choice(["text", "dot", "mermaid"]),
              default="text", show_default=True,
              help="text to read, dot for Graphviz, mermaid for Markdown pages.")
@handle_errors
def graph_command(rules_file: str | None, directory: str | None, overrides: tuple[str, ...],
                  target: str | None, fmt: str) -> None:
    """Print the steps leading to TARGET and the files between them."""
    from makeflow.ui.graphs import render  # only this command draws graphs

    plan = status(open_pipeline(rules_file, directory, overrides), [target] if target else [])
    click.echo(render(plan, fmt))


@cli.command("list")
@project_options
@click.option("--json", "as_json", is_flag=True,
              help="Print one JSON document (see docs/json.md).")
@handle_errors
def list_command(rules_file: str | None, directory: str | None,
                 overrides: tuple[str, ...], as_json: bool) -> None:
    """List the rules with their inputs and outputs."""
    pipeline = open_pipeline(rules_file, directory, overrides)
    if as_json:
        from makeflow.ui.jsonout import dumps, list_document

        click.echo(dumps(list_document(pipeline)))
        return
    default = pipeline.default_rule
    for r in pipeline.rules:
        kind = "shell" if r.shell is not None else "python" if r.func else "alias"
        kind += ", checkpoint" if r.checkpoint else ""
        mark = " (default)" if r is default else ""
        click.echo(f"{r.name}{mark}  [{kind}, {r.where}]")
        inputs = list(r.inputs.paths)
        if r.dynamic is not None and r.dynamic.inputs is not None:
            inputs.append("(what its inputs function returns)")
        if inputs:
            click.echo("  inputs:  " + ", ".join(inputs))
        if r.outputs.paths:
            click.echo("  outputs: " + ", ".join(r.outputs.paths))


@cli.command("clean")
@project_options
@click.argument("targets", nargs=-1)
@click.option("-n", "--dry-run", is_flag=True, help="Show what would be removed.")
@click.option("--upstream", is_flag=True,
              help="Also remove what the steps leading to TARGETS made.")
@click.option("--force", is_flag=True,
              help="Remove protected (read-only) outputs too, without asking.")
@handle_errors
def clean_command(rules_file: str | None, directory: str | None, overrides: tuple[str, ...],
                  targets: tuple[str, ...], dry_run: bool, upstream: bool,
                  force: bool) -> None:
    """Remove the outputs makeflow made: of TARGETS' own steps (files, rule names, pattern
    rule names), or of every step; never sources, edited files or anything outside.
    Protected outputs are removed only when you say yes, or with --force."""
    from makeflow.run.clean import clean  # only this command removes files

    done = clean(open_pipeline(rules_file, directory, overrides), targets, dry_run, upstream,
                 confirm=(lambda paths: True) if force else _confirm_protected)
    verb = "would remove" if dry_run else "removed"
    for path in done.removed:
        click.echo(f"{verb} {path}")
    for path in done.kept:
        click.echo(f"kept {path}: edited since makeflow wrote it")
    for path in done.sources:
        click.echo(f"kept {path}: the current rules read it as a source")
    for path in done.outside:
        click.echo(f"kept {path}: it resolves outside the project folder")
    for path in done.protected:
        click.echo(f"kept {path}: it is protected (clean --force removes it)")
    click.echo(f"{verb} {len(done.removed)} files")


def _confirm_protected(paths: list[str]) -> bool:
    """Ask on a terminal; elsewhere refuse the whole clean, naming the files (exit 2)."""
    shown = ", ".join(paths[:10]) + (f" and {len(paths) - 10} more" if len(paths) > 10 else "")
    if not sys.stdin.isatty():
        raise UserError(
            f"clean would remove {len(paths)} protected output(s): {shown}; nothing was "
            "removed, since there is no terminal to ask on",
            hint="Run `makeflow clean --force` to remove them too, or clean other targets.")
    return click.confirm(f"Remove {len(paths)} protected output(s): {shown}?", default=False)


@cli.command("logs")
@project_options
@click.argument("step")
@handle_errors
def logs_command(rules_file: str | None, directory: str | None, overrides: tuple[str, ...],
                 step: str) -> None:
    """Show the log of the last run of STEP (a step name, or a file it makes)."""
    pipeline = open_pipeline(rules_file, directory, overrides)
    alias = pipeline.rule(step)
    if alias is not None and alias.is_alias:
        _no_log_for_alias(pipeline, step)
    from makeflow.run.steplog import step_log  # only this command reads logs

    click.echo(step_log(pipeline, step), nl=False)


def _no_log_for_alias(pipeline: Pipeline, name: str) -> None:
    """An alias only groups targets: say so, and name the steps whose logs there are."""
    plan = status(pipeline, [name])
    steps = [u for u in plan.graph.upstream.get(name, [])
             if not plan.graph.steps[u].rule.is_alias]
    hint = f"Ask for the log of a step it builds: makeflow logs {steps[0]}" if steps else None
    if len(steps) > 1:
        hint = f"{hint} (or {', '.join(steps[1:4])}{', ...' if len(steps) > 4 else ''})"
    raise UserError(f"{name} is an alias: it runs no command, so it has no log", hint=hint)


@cli.command("watch")
@project_options
@click.argument("targets", nargs=-1)
@click.option("-j", "--jobs", type=click.IntRange(min=1), default=None,
              help="Run up to N steps at once (default: the CPUs here, or a running "
              "cluster's threads).")
@executor_options
@click.option("--debounce", type=click.FloatRange(min=0), default=0.2, show_default=True,
              metavar="SECONDS", help="Wait until changes have been quiet this long.")
@click.option("--poll", is_flag=True,
              help="Poll for changes instead of using the system's file events.")
@click.option("--schedule", "cron", metavar="CRON",
              help='Also build at these times, e.g. "0 23 * * SUN" (cron, local time).')
@mlflow_option
@handle_errors
def watch_command(rules_file: str | None, directory: str | None, overrides: tuple[str, ...],
                  targets: tuple[str, ...], jobs: int | None, executor: str | None,
                  scheduler: str | None, no_shared_fs: bool | None, download: str | None,
                  debounce: float, poll: bool, cron: str | None, mlflow: str | None) -> None:
    """Build TARGETS, then rebuild what is stale whenever a source, the rules or the
    config change, until Ctrl-C."""
    from makeflow.ui.watch_screen import PlainScreen
    from makeflow.watch.schedule import (
        Schedule,  # watch mode's libraries load only for this command
    )
    from makeflow.watch.watcher import Watcher

    schedule = Schedule(cron) if cron is not None else None
    pipeline = open_pipeline(rules_file, directory, overrides)
    options, choice = executor_for(pipeline, jobs, executor, scheduler, no_shared_fs, download)
    build_fn = functools.partial(build, executor=choice)
    if mlflow_uri(pipeline, mlflow):  # checked now, then for each build's rules
        build_fn = functools.partial(build_and_log, mlflow, build_fn)
    watcher = Watcher(pipeline, targets, screen=PlainScreen(sys.stdout), options=options,
                      debounce=debounce, poll=poll, schedule=schedule, build_fn=build_fn)
    try:
        watcher.run()
    except KeyboardInterrupt as exc:
        if watcher.building or type(exc) is not KeyboardInterrupt:
            raise  # a build was stopped, or SIGTERM: the usual message and exit status
        click.echo("stopped watching")

