"""`makeflow pull`, `push` and `cache`: the run cache and the shared remote cache."""

from __future__ import annotations

import sys

import click

from makeflow.ui.cli_options import (
    handle_errors,
    open_pipeline,
    project_options,
    remote_option,
    size_text,
    transfer_lines,
)
from makeflow.ui.view import make_reporter


@click.command("pull")
@project_options
@click.argument("targets", nargs=-1)
@remote_option
@click.option("-q", "--quiet", is_flag=True, help="Print only the summary.")
@handle_errors
def pull_command(rules_file: str | None, directory: str | None, overrides: tuple[str, ...],
                 targets: tuple[str, ...], remote: str | None, quiet: bool) -> None:
    """Restore the outputs of TARGETS from the remote cache without running anything.

    A step is restored when the cache holds its result for its current inputs, or when
    makeflow.lock records its outputs for them. Steps it cannot restore are left for
    `makeflow build`.
    """
    from makeflow.run.share import pull

    # big files' transfers show in the build's view: live rows or lines on stderr
    result = pull(open_pipeline(rules_file, directory, overrides), targets, remote,
                  make_reporter(sys.stdout, quiet))
    if result.not_run:
        click.echo(f"{len(result.not_run)} steps are not in the cache; `makeflow build` "
                   "runs them: " + ", ".join(result.not_run[:10])
                   + (" ..." if len(result.not_run) > 10 else ""))


@click.command("push")
@project_options
@click.argument("targets", nargs=-1)
@remote_option
@handle_errors
def push_command(rules_file: str | None, directory: str | None, overrides: tuple[str, ...],
                 targets: tuple[str, ...], remote: str | None) -> None:
    """Upload the outputs and records of TARGETS' up-to-date steps to the remote cache."""
    from makeflow.run.share import push

    done = push(open_pipeline(rules_file, directory, overrides), targets, remote,
                transfer_lines())
    click.echo(f"pushed {done.steps} steps ({done.new} new to the remote)")
    if done.skipped:
        click.echo(f"skipped {len(done.skipped)} stale or uncached steps: "
                   + ", ".join(done.skipped[:10]) + (" ..." if len(done.skipped) > 10 else ""))


@click.group("cache", invoke_without_command=True)
@project_options
@click.pass_context
@handle_errors
def cache_command(ctx: click.Context, rules_file: str | None, directory: str | None,
                  overrides: tuple[str, ...]) -> None:
    """Show the run cache: where it is, its size, and how often builds hit it."""
    if ctx.invoked_subcommand is not None:
        return
    from makeflow.run.share import cache_info

    info = cache_info(open_pipeline(rules_file, directory, overrides))
    hits, misses = info.counts.get("hits", 0), info.counts.get("misses", 0)
    limit = f" (limit {size_text(info.max_size)})" if info.max_size is not None else ""
    click.echo(f"cache    {info.root}")
    click.echo(f"size     {size_text(info.size)} in {info.blobs} blobs{limit}")
    click.echo(f"records  {info.records} step results")
    click.echo(f"lookups  {hits} hits, {misses} misses")


@cache_command.command("gc")
@project_options
@click.option("--max-size", metavar="SIZE",
              help="Trim to this size, least recently used first (e.g. 10GB). "
              "Default: cache_max_size in the [makeflow] table.")
@handle_errors
def cache_gc_command(rules_file: str | None, directory: str | None, overrides: tuple[str, ...],
                     max_size: str | None) -> None:
    """Trim the run cache."""
    from makeflow.define.settings import parse_size
    from makeflow.run.share import cache_gc

    limit = parse_size(max_size, "--max-size") if max_size is not None else None
    removed, freed = cache_gc(open_pipeline(rules_file, directory, overrides), limit)
    click.echo(f"removed {removed} blobs, {size_text(freed)}")
