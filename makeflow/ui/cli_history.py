"""`makeflow runs`, `report` and `metrics`: what past builds did, read from the history."""

from __future__ import annotations

import click

from makeflow.errors import MakeflowError
from makeflow.run.build import status
from makeflow.ui.cli_options import (
    handle_errors,
    open_pipeline,
    project_options,
    project_root,
)


@click.command("runs")
@project_options
@click.option("-n", "--limit", type=click.IntRange(min=1), default=20, show_default=True,
              help="Show the last N builds.")
@click.option("--json", "as_json", is_flag=True,
              help="Print one JSON document (see docs/json.md).")
@handle_errors
def runs_command(rules_file: str | None, directory: str | None, overrides: tuple[str, ...],
                 limit: int, as_json: bool) -> None:
    """List recent builds: when, how long, what ran, restored, failed or was skipped."""
    from makeflow.ui.history_view import recent_runs, runs_lines

    entries = recent_runs(project_root(rules_file, directory), limit)
    if as_json:
        from makeflow.ui.jsonout import dumps, runs_document

        click.echo(dumps(runs_document(entries)))
        return
    for line in runs_lines(entries):
        click.echo(line)


@click.command("report")
@project_options
@click.argument("run", required=False, type=click.IntRange(min=1))
@click.option("-o", "--output", default="makeflow-report.html", show_default=True,
              metavar="FILE", help="Where to write the page (relative to the project).")
@click.option("--no-dot", is_flag=True,
              help="Lay the graph out with the bundled layout even when Graphviz is installed.")
@handle_errors
def report_command(rules_file: str | None, directory: str | None, overrides: tuple[str, ...],
                   run: int | None, output: str, no_dot: bool) -> None:
    """Write one self-contained HTML page about the last build, or build RUN."""
    from makeflow.ui.report import load_run, write_report

    root = project_root(rules_file, directory)
    entry, previous = load_run(root, run)
    graph = None
    try:
        graph = status(open_pipeline(rules_file, directory, overrides), entry.targets).graph
    except MakeflowError as exc:
        click.echo(f"warning: the report has no graph edges: {exc}", err=True)
    written = write_report(entry, graph, root / output, previous, use_dot=not no_dot)
    click.echo(f"wrote {written.path} (run {written.run}, {written.steps} steps, "
               f"{written.size / 1e6:.2f} MB)")


@click.group("metrics", invoke_without_command=True)
@project_options
@click.option("--json", "as_json", is_flag=True, help="Print one JSON document.")
@click.pass_context
@handle_errors
def metrics_command(ctx: click.Context, rules_file: str | None, directory: str | None,
                    overrides: tuple[str, ...], as_json: bool) -> None:
    """Show the current values of the outputs that rules mark as metrics."""
    if ctx.invoked_subcommand is not None:
        return
    from makeflow.ui.metrics_view import current, show_lines

    values = current(open_pipeline(rules_file, directory, overrides))
    if as_json:
        from makeflow.ui.jsonout import dumps

        click.echo(dumps({"metrics": values}))
        return
    for line in show_lines(values):
        click.echo(line)


@metrics_command.command("diff")
@project_options
@click.argument("old", required=False)
@click.argument("new", required=False)
@click.option("--json", "as_json", is_flag=True, help="Print one JSON document.")
@handle_errors
def metrics_diff_command(rules_file: str | None, directory: str | None,
                         overrides: tuple[str, ...], old: str | None, new: str | None,
                         as_json: bool) -> None:
    """Compare metrics between OLD and NEW: run ids (`makeflow runs`), git revisions, or
    `workspace`. Default: the last two builds that recorded metrics; OLD alone is compared
    with the workspace."""
    from makeflow.ui.metrics_view import diff, diff_lines

    result = diff(open_pipeline(rules_file, directory, overrides), old, new)
    if as_json:
        from makeflow.ui.jsonout import dumps

        click.echo(dumps(result))
        return
    for line in diff_lines(result):
        click.echo(line)
