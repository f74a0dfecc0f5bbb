"""Figures with matplotlib that come out byte-identical for identical data.

A figure file normally carries its creation date (SVG, PDF) and random ids
(SVG), so every rerun writes new bytes and every step below it runs again. These helpers
draw on the Agg canvas (no display, no pyplot state shared between steps), drop the date
and fix the id salt, so a rerun with the same data writes the same bytes and early cutoff
stops the cascade.
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from makeflow import StepError

# What savefig(metadata=...) would otherwise fill with the time of the run.
METADATA: dict[str, dict[str, Any]] = {
    "png": {},
    "svg": {"Date": None},
    "pdf": {"CreationDate": None, "ModDate": None},
}
STABLE_RC = {"svg.hashsalt": "makeflow", "svg.fonttype": "path"}


def new_figure(width: float = 6.4, height: float = 4.8, dpi: float = 100) -> Any:
    """A matplotlib Figure on the Agg canvas, sized in inches; pyplot is never involved.

    Example::

        fig = new_figure(5, 3)
        ax = fig.subplots()
        ax.plot([1, 2, 3], [2, 4, 3])
        save_figure(fig, step.outputs[0])
    """
    try:
        from matplotlib.backends.backend_agg import FigureCanvasAgg
        from matplotlib.figure import Figure
    except ImportError:
        raise StepError("plots need matplotlib: pip install 'makeflow[plot]'") from None
    fig = Figure(figsize=(width, height), dpi=dpi)
    FigureCanvasAgg(fig)
    return fig


def save_figure(fig: Any, path: str | Path, **savefig: Any) -> None:
    """Write `fig` to `path` (format from the suffix: png, svg or pdf) byte-stably.

    PostScript is left out: matplotlib stamps it with the time whatever the metadata says.
    Other keyword arguments go to `Figure.savefig` (`bbox_inches="tight"`, `dpi`...).

    Example::

        save_figure(fig, "figures/trend.svg", bbox_inches="tight")
    """
    import matplotlib

    fmt = savefig.pop("format", None) or Path(path).suffix.lstrip(".").lower()
    if fmt not in METADATA:
        raise StepError(f"{path}: save figures as png, svg or pdf (found {fmt!r})")
    metadata = {**METADATA[fmt], **savefig.pop("metadata", {})}
    with matplotlib.rc_context(STABLE_RC):
        fig.savefig(path, format=fmt, metadata=metadata, **savefig)


@contextlib.contextmanager
def stable_figure(path: str | Path, width: float = 6.4, height: float = 4.8, dpi: float = 100,
                  **savefig: Any) -> Iterator[Any]:
    """A new figure, saved byte-stably to `path` when the block ends without an error.

    Example::

        @rule(inputs="results/{city}.csv", outputs="figures/{city}.svg")
        def figure(step):
            years, temps = read_columns(step.inputs[0])
            with stable_figure(step.outputs[0], 5, 3) as fig:
                ax = fig.subplots()
                ax.plot(years, temps)
    """
    fig = new_figure(width, height, dpi)
    yield fig
    save_figure(fig, path, **savefig)
