"""Run a Jupyter notebook with parameters, keeping the executed copy and an HTML copy.

Parameters are injected as a cell after the one tagged `parameters` (the papermill
convention; at the top when there is none), so the notebook still runs on its own with its
defaults. Execution goes through nbclient on a real kernel, and the HTML through nbconvert.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

from makeflow import StepError, UserError

from ._declare import declare, single_path

__makeflow_factory__ = True  # rule errors point at the line in Makeflow.py

INJECTED = "injected-parameters"


def notebook(name: str, *, source: str, executed: str, html: str,
             inputs: dict[str, str] | None = None, outputs: dict[str, str] | None = None,
             parameters: dict[str, Any] | None = None, kernel: str = "python3",
             cell_timeout: float = 600, **options: Any) -> Any:
    """Declare rule `name`: execute the notebook `source`, write `executed` and `html`.

    Every `inputs` and `outputs` entry `NAME: path` and every `parameters` entry becomes a
    variable of that name in the injected cell (paths as strings, relative to the folder
    of Makeflow.py, where the kernel runs); the notebook writes its extra outputs to the
    paths it is given. The notebook file is an input: editing it reruns the step; so does
    changing a parameter. A cell that raises fails the step with the error's name and
    message. Needs the extra `notebook` (nbclient, nbconvert, ipykernel).

    Example::

        from makeflow_rules import notebook

        notebook("explore", source="notebooks/explore.ipynb",
                 executed="reports/explore.ipynb", html="reports/explore.html",
                 inputs={"data": "data/clean.parquet"}, outputs={"summary": "summary.csv"},
                 parameters={"alpha": 0.05})
    """
    source = single_path("notebook", name, "source", source)
    files_in, files_out = dict(inputs or {}), dict(outputs or {})
    values = dict(parameters or {})
    _check_names(name, [*files_in, *files_out, *values])
    if not isinstance(cell_timeout, (int, float)) or cell_timeout <= 0:
        raise UserError(f"notebook({name!r}): cell_timeout= must be a number of seconds > 0")
    params = {"inputs": list(files_in), "outputs": list(files_out), "parameters": values,
              "kernel": kernel, "cell_timeout": cell_timeout}
    outs = [single_path("notebook", name, "executed", executed),
            single_path("notebook", name, "html", html), *files_out.values()]
    return declare("notebook", name, execute, inputs=[source, *files_in.values()],
                   outputs=outs, params=params, options=options)


def _check_names(name: str, names: list[Any]) -> None:
    seen: set[str] = set()
    for key in names:
        if not isinstance(key, str) or not key.isidentifier():
            raise UserError(f"notebook({name!r}): {key!r} cannot be a Python variable name")
        if key in seen:
            raise UserError(f"notebook({name!r}): {key!r} is given twice")
        seen.add(key)


def execute(step: Any) -> None:
    """The step: inject the parameters, run every cell, write the notebook and its HTML."""
    try:
        import nbformat
        from nbclient import NotebookClient
        from nbclient.exceptions import CellExecutionError, DeadKernelError
    except ImportError:
        raise StepError("notebook needs nbclient: pip install 'makeflow[notebook]'") from None
    p = step.params
    source = Path(step.inputs[0])
    nb = nbformat.read(source, as_version=4)
    inject(nb, variables(step))
    client = NotebookClient(nb, timeout=p["cell_timeout"], kernel_name=p["kernel"],
                            resources={"metadata": {"path": os.getcwd()}}, record_timing=False)
    try:
        client.execute()
    except CellExecutionError as exc:
        raise StepError(f"{source}: a cell raised {exc.ename}: {exc.evalue}") from None
    except (DeadKernelError, TimeoutError, RuntimeError) as exc:
        raise StepError(f"{source}: {type(exc).__name__}: {exc}") from None
    nbformat.write(nb, step.outputs[0])
    Path(step.outputs[1]).write_text(to_html(nb, source.stem), encoding="utf-8")


def variables(step: Any) -> dict[str, Any]:
    """The injected names: parameters, then input paths, then output paths."""
    p = step.params
    found = dict(p["parameters"])
    found.update((k, str(v)) for k, v in zip(p["inputs"], step.inputs[1:], strict=True))
    found.update((k, str(v)) for k, v in zip(p["outputs"], step.outputs[2:], strict=True))
    return found


def inject(nb: Any, values: dict[str, Any]) -> None:
    """Insert the parameters cell after the cell tagged `parameters` (or first)."""
    import nbformat

    lines = ["# Parameters injected by makeflow"]
    lines += [f"{key} = {value!r}" for key, value in values.items()]
    cell = nbformat.v4.new_code_cell("\n".join(lines))
    cell.id = INJECTED
    cell.metadata["tags"] = [INJECTED]
    tagged = [i for i, c in enumerate(nb.cells) if "parameters" in c.metadata.get("tags", [])]
    nb.cells.insert(tagged[0] + 1 if tagged else 0, cell)


def to_html(nb: Any, title: str) -> str:
    from nbconvert import HTMLExporter

    body, _ = HTMLExporter().from_notebook_node(nb, resources={"metadata": {"name": title}})
    return body
