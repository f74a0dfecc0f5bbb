"""Fill a report template (Markdown, HTML, LaTeX...) with values, metrics and file links.

Plain `string.Template` (`$name`) needs nothing extra; a template whose name ends in `.j2`,
`.jinja` or `.jinja2` goes through jinja2 (extra `report`) for loops and formatting.
"""

from __future__ import annotations

import json
import os
import re
import string
from pathlib import Path
from typing import Any

from makeflow import StepError, UserError

from ._declare import declare, single_path

__makeflow_factory__ = True  # rule errors point at the line in Makeflow.py

JINJA = (".j2", ".jinja", ".jinja2")
TEXT = (".md", ".txt", ".csv", ".tsv", ".html", ".tex", ".json", ".rst")
NAME = re.compile(r"[A-Za-z_][A-Za-z0-9_]*")
WILDCARD = re.compile(r"\{([A-Za-z_][A-Za-z0-9_]*)(?:,[^{}]*)?\}")


def render(name: str, *, template: str, output: str, inputs: dict[str, str] | None = None,
           values: dict[str, Any] | None = None, **options: Any) -> Any:
    """Declare rule `name`: fill `template` and write `output`.

    The template sees, for each `inputs` entry `NAME: path`:

    - `$NAME`: the path, relative to the output's folder (for links and images);
    - `$NAME_text`: the file's text, for `.md`, `.txt`, `.csv`, `.html`, `.json`... files;
    - `$NAME_KEY`: each value of a JSON object file, nested keys joined by `_`
      (`{"test": {"r2": 0.9}}` gives `$NAME_test_r2`);
    - with jinja2 also `NAME_data`: the parsed JSON, for loops;

    and every entry of `values` (plain values, rule parameters). A name the template uses
    that none of these gives fails the step, naming it. The template file is an input:
    editing it reruns the step.

    Example::

        from makeflow_rules import render

        render("report", template="report.md.tmpl", output="paper/report.md",
               inputs={"metrics": "results/metrics.json", "trend": "figures/trend.svg"},
               values={"title": "Lakes are warming"})
    """
    template = single_path("render", name, "template", template)
    target = single_path("render", name, "output", output)
    files = dict(inputs or {})
    given = dict(values or {})
    for key in [*files, *given]:
        if not isinstance(key, str) or not NAME.fullmatch(key):
            raise UserError(f"render({name!r}): {key!r} cannot be a template name; use "
                            "letters, digits and _")
    try:
        json.dumps(given, allow_nan=False)
    except (TypeError, ValueError):
        raise UserError(f"render({name!r}): values= must hold plain values (numbers, "
                        "strings, booleans, lists, dicts)") from None
    params = {"names": list(files), "values": given, "output": target,
              "engine": "jinja2" if template.endswith(JINJA) else "string"}
    paths = [single_path("render", name, f"inputs[{k!r}]", v) for k, v in files.items()]
    return declare("render", name, fill, inputs=[template, *paths], outputs=target,
                   params=params, options=options)


def fill(step: Any) -> None:
    """The step: gather the names, fill the template, write the output."""
    p = step.params
    template = Path(step.inputs[0])
    final = WILDCARD.sub(lambda m: step.wildcards[m.group(1)], p["output"])
    names = dict(p["values"])
    for key, path in zip(p["names"], step.inputs[1:], strict=True):
        names.update(describe_file(key, Path(path), os.path.dirname(final) or "."))
    text = template.read_text(encoding="utf-8")
    filled = _jinja(template, text, names) if p["engine"] == "jinja2" else \
        _plain(template, text, names)
    Path(step.outputs[0]).write_text(filled, encoding="utf-8")


def describe_file(key: str, path: Path, folder: str) -> dict[str, Any]:
    """The template names one input gives: its relative path, text, JSON values."""
    names: dict[str, Any] = {key: os.path.relpath(path, folder)}
    if path.suffix.lower() in TEXT and path.is_file():
        names[f"{key}_text"] = path.read_text(encoding="utf-8")
    if path.suffix.lower() == ".json":
        try:
            data = json.loads(names[f"{key}_text"])
        except ValueError as exc:
            raise StepError(f"{path} is not valid JSON: {exc}") from None
        names[f"{key}_data"] = data
        names.update(_flatten(key, data))
    return names


def _flatten(prefix: str, data: Any) -> dict[str, Any]:
    if not isinstance(data, dict):
        return {}
    flat: dict[str, Any] = {}
    for k, v in data.items():
        key = f"{prefix}_{k}"
        if isinstance(v, dict):
            flat.update(_flatten(key, v))
        elif NAME.fullmatch(key):
            flat[key] = v
    return flat


def _plain(template: Path, text: str, names: dict[str, Any]) -> str:
    try:
        return string.Template(text).substitute(names)
    except KeyError as exc:
        known = ", ".join(sorted(k for k in names if not k.endswith("_data")))
        raise StepError(f"{template} uses ${exc.args[0]}, which no input or value gives "
                        f"(known: {known})") from None
    except ValueError as exc:
        raise StepError(f"{template}: {exc} (write a literal $ as $$)") from None


def _jinja(template: Path, text: str, names: dict[str, Any]) -> str:
    try:
        import jinja2
    except ImportError:
        raise StepError(f"{template} is a jinja2 template: pip install 'makeflow[report]'") \
            from None
    env = jinja2.Environment(undefined=jinja2.StrictUndefined, keep_trailing_newline=True,
                             autoescape=False)
    try:
        return env.from_string(text).render(names)
    except jinja2.UndefinedError as exc:
        raise StepError(f"{template}: {exc.message}, which no input or value gives") from None
    except jinja2.TemplateSyntaxError as exc:
        raise StepError(f"{template}:{exc.lineno}: {exc.message}") from None
