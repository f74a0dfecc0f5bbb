"""Write the same synthetic pipeline for every benchmarked tool, each in its idiomatic form.

Two shapes, sized by N, the number of steps before the final one:

* ``wide``: N sources ``in/{i}.txt``, N steps ``out/{i}.txt`` that each copy their source,
  and a final step ``all.txt`` concatenating every output. It measures per-step overhead
  with no dependency depth.
* ``layered``: 10 layers of N/10 steps. Step ``out/{k}/{j}.txt`` reads steps ``j`` and
  ``j+1`` (modulo the width) of layer ``k-1`` (of the sources for layer 0), writes their
  sorted unique lines followed by its own path, so every output differs and stays small.
  The final ``all.txt`` concatenates the last layer. It measures scheduling of a deep graph.

The final step reads its operands from ``list.txt`` (``xargs cat < list.txt > all.txt``)
because 100,000 paths do not fit on one command line; it still declares every output as an
input so that the dependency is real for every tool.

Each tool gets its own directory, so no two tools share outputs or state. Output
directories are created here, before any build, so that no tool pays for ``mkdir``.

Usage: ``python benchmarks/generate.py DEST [--shape wide] [--size 1000] [--tools ...]``
"""

from __future__ import annotations

import argparse
import os
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass
from pathlib import Path

SHAPES = ("wide", "layered")
LAYERS = 10
LIST_FILE = "list.txt"
FINAL = "all.txt"
AGGREGATE_COMMAND = f"xargs cat < {LIST_FILE} > {FINAL}"


@dataclass(frozen=True)
class Step:
    """One step of the abstract pipeline: the file it writes and the files it reads."""

    output: str
    inputs: tuple[str, ...]


@dataclass(frozen=True)
class Pipeline:
    """The abstract pipeline, from which every tool's file and the expected outputs derive."""

    shape: str
    size: int

    def __post_init__(self) -> None:
        if self.shape not in SHAPES:
            raise ValueError(f"unknown shape {self.shape!r}; choose from {', '.join(SHAPES)}")
        if self.size < (LAYERS if self.shape == "layered" else 1):
            raise ValueError(f"size {self.size} is too small for the {self.shape} shape")

    @property
    def width(self) -> int:
        """Steps per layer: N for wide (one layer), N/10 for layered."""
        return self.size if self.shape == "wide" else self.size // LAYERS

    @property
    def sources(self) -> list[str]:
        return [f"in/{i}.txt" for i in range(self.width)]

    @property
    def last_layer(self) -> list[str]:
        """The outputs the final step concatenates, in the order of ``list.txt``."""
        if self.shape == "wide":
            return [f"out/{i}.txt" for i in range(self.width)]
        return [f"out/{LAYERS - 1}/{j}.txt" for j in range(self.width)]

    def parents(self, layer: int, j: int) -> tuple[str, str]:
        """The two files a layered step reads."""
        nxt = (j + 1) % self.width
        if layer == 0:
            return (f"in/{j}.txt", f"in/{nxt}.txt")
        return (f"out/{layer - 1}/{j}.txt", f"out/{layer - 1}/{nxt}.txt")

    def steps(self) -> list[Step]:
        """Every step, in a topological order, the final one last."""
        if self.shape == "wide":
            inner = [Step(f"out/{i}.txt", (f"in/{i}.txt",)) for i in range(self.width)]
        else:
            inner = [
                Step(f"out/{k}/{j}.txt", self.parents(k, j))
                for k in range(LAYERS)
                for j in range(self.width)
            ]
        return [*inner, Step(FINAL, (LIST_FILE, *self.last_layer))]

    def output_dirs(self) -> list[str]:
        if self.shape == "wide":
            return ["out"]
        return [f"out/{k}" for k in range(LAYERS)]


def source_content(path: str, version: int) -> bytes:
    """Content of a source file; bumping the version is a real content change."""
    return f"{path} v{version}\n".encode()


def expected_outputs(pipeline: Pipeline, sources: Mapping[str, bytes]) -> dict[str, bytes]:
    """What every output must contain for the given sources, computed without any tool."""
    files: dict[str, bytes] = dict(sources)
    for step in pipeline.steps():
        if step.output == FINAL:
            files[FINAL] = b"".join(files[p] for p in pipeline.last_layer)
        elif pipeline.shape == "wide":
            files[step.output] = files[step.inputs[0]]
        else:
            lines = {line for p in step.inputs for line in files[p].splitlines()}
            body = b"".join(line + b"\n" for line in sorted(lines))
            files[step.output] = body + step.output.encode() + b"\n"
    return {step.output: files[step.output] for step in pipeline.steps()}


# Build files. Each writer returns the text of one tool's file; the layered step command is
# the same shell line everywhere: `sort -u A B > OUT && echo OUT >> OUT` (run with LC_ALL=C).


def makefile(p: Pipeline) -> str:
    """GNU make: pattern rules, the output list read from list.txt without a shell."""
    head = [
        "# Generated by benchmarks/generate.py",
        "MAKEFLAGS += --no-builtin-rules",
        ".SUFFIXES:",
        ".DELETE_ON_ERROR:",
        f"{FINAL}: {LIST_FILE} $(strip $(file <{LIST_FILE}))",
        f"\t{AGGREGATE_COMMAND}",
        "",
    ]
    if p.shape == "wide":
        body = ["out/%.txt: in/%.txt", "\tcp $< $@"]
    else:
        body = ["out/%.txt:", "\tsort -u $^ > $@ && echo $@ >> $@", ""]
        body += [f"{s.output}: {' '.join(s.inputs)}" for s in p.steps()[:-1]]
    return "\n".join(head + body) + "\n"


def ninja(p: Pipeline) -> str:
    """ninja: one rule per kind of step, one explicit build edge per step."""
    lines = [
        "# Generated by benchmarks/generate.py",
        "rule copy",
        "  command = cp $in $out",
        "rule combine",
        "  command = sort -u $in > $out && echo $out >> $out",
        "rule aggregate",
        f"  command = {AGGREGATE_COMMAND}",
        "",
    ]
    kind = "copy" if p.shape == "wide" else "combine"
    steps = p.steps()
    lines += [f"build {s.output}: {kind} {' '.join(s.inputs)}" for s in steps[:-1]]
    lines += [f"build {FINAL}: aggregate {LIST_FILE} | {' '.join(p.last_layer)}"]
    lines += [f"default {FINAL}", ""]
    return "\n".join(lines)


def snakefile(p: Pipeline) -> str:
    """snakemake: wildcard rules; the layered parents come from an input function."""
    if p.shape == "wide":
        return f'''# Generated by benchmarks/generate.py
N = {p.width}

wildcard_constraints:
    i=r"\\d+",

rule all:
    input: "{LIST_FILE}", expand("out/{{i}}.txt", i=range(N))
    output: "{FINAL}"
    shell: "xargs cat < {{input[0]}} > {{output}}"

rule copy:
    input: "in/{{i}}.txt"
    output: "out/{{i}}.txt"
    shell: "cp {{input}} {{output}}"
'''
    return f'''# Generated by benchmarks/generate.py
W = {p.width}
LAYERS = {LAYERS}

wildcard_constraints:
    k=r"\\d+",
    j=r"\\d+",

def parents(wildcards):
    k, j = int(wildcards.k), int(wildcards.j)
    prev = "in/{{}}.txt" if k == 0 else f"out/{{k - 1}}/{{{{}}}}.txt"
    return [prev.format(j), prev.format((j + 1) % W)]

rule all:
    input: "{LIST_FILE}", expand("out/{{k}}/{{j}}.txt", k=LAYERS - 1, j=range(W))
    output: "{FINAL}"
    shell: "xargs cat < {{input[0]}} > {{output}}"

rule combine:
    input: parents
    output: "out/{{k}}/{{j}}.txt"
    shell: "sort -u {{input}} > {{output}} && echo {{output}} >> {{output}}"
'''


def dodo(p: Pipeline) -> str:
    """doit: task generators with file_dep/targets; copies run without a shell."""
    head = f'''# Generated by benchmarks/generate.py
DOIT_CONFIG = {{"default_tasks": ["all"]}}
W = {p.width}
LAYERS = {LAYERS}
'''
    if p.shape == "wide":
        body = '''

def task_copy():
    for i in range(W):
        src, dst = f"in/{i}.txt", f"out/{i}.txt"
        yield {"name": str(i), "file_dep": [src], "targets": [dst],
               "actions": [["cp", src, dst]]}


def task_all():
    outs = [f"out/{i}.txt" for i in range(W)]
'''
    else:
        body = '''

def parents(k, j):
    prev = "in/{}.txt" if k == 0 else f"out/{k - 1}/{{}}.txt"
    return [prev.format(j), prev.format((j + 1) % W)]


def task_combine():
    for k in range(LAYERS):
        for j in range(W):
            deps, dst = parents(k, j), f"out/{k}/{j}.txt"
            yield {"name": f"{k}_{j}", "file_dep": deps, "targets": [dst],
                   "actions": [f"sort -u {' '.join(deps)} > {dst} && echo {dst} >> {dst}"]}


def task_all():
    outs = [f"out/{LAYERS - 1}/{j}.txt" for j in range(W)]
'''
    tail = f'''    return {{"file_dep": ["{LIST_FILE}", *outs], "targets": ["{FINAL}"],
            "actions": ["{AGGREGATE_COMMAND}"]}}
'''
    return head + body + tail


def makeflow_shell(p: Pipeline) -> str:
    """makeflow with shell steps: a pattern rule for wide, a loop of rules for layered."""
    head = f'''# Generated by benchmarks/generate.py
from makeflow import expand, rule

W = {p.width}
LAYERS = {LAYERS}
'''
    if p.shape == "wide":
        body = '''
rule("copy", inputs="in/{i}.txt", outputs="out/{i}.txt", shell="cp {inputs[0]} {outputs[0]}")
LAST = expand("out/{i}.txt", i=range(W))
'''
    else:
        body = '''

def parents(k, j):
    prev = "in/{}.txt" if k == 0 else f"out/{k - 1}/{{}}.txt"
    return [prev.format(j), prev.format((j + 1) % W)]


for k in range(LAYERS):
    for j in range(W):
        dst = f"out/{k}/{j}.txt"
        rule(f"combine_{k}_{j}", inputs=parents(k, j), outputs=dst,
             shell="sort -u {inputs} > {outputs[0]} && echo " + dst + " >> {outputs[0]}")
LAST = expand("out/{k}/{j}.txt", k=[LAYERS - 1], j=range(W))
'''
    tail = f'''rule("all", inputs=["{LIST_FILE}", *LAST], outputs="{FINAL}", default=True,
     shell="xargs cat < {{inputs[0]}} > {{outputs[0]}}")
'''
    return head + body + tail


def makeflow_python(p: Pipeline) -> str:
    """makeflow with Python-function steps: the same graph, no process per step."""
    head = f'''# Generated by benchmarks/generate.py
import shutil

from makeflow import expand, rule

W = {p.width}
LAYERS = {LAYERS}
'''
    if p.shape == "wide":
        body = '''

@rule(inputs="in/{i}.txt", outputs="out/{i}.txt")
def copy(step):
    shutil.copyfile(step.inputs[0], step.outputs[0])


LAST = expand("out/{i}.txt", i=range(W))
'''
    else:
        body = '''

def parents(k, j):
    prev = "in/{}.txt" if k == 0 else f"out/{k - 1}/{{}}.txt"
    return [prev.format(j), prev.format((j + 1) % W)]


def combine(dst):
    def run(step):
        lines = {line for path in step.inputs for line in path.read_bytes().splitlines()}
        body = b"".join(line + b"\\n" for line in sorted(lines))
        step.outputs[0].write_bytes(body + dst.encode() + b"\\n")
    return run


for k in range(LAYERS):
    for j in range(W):
        dst = f"out/{k}/{j}.txt"
        rule(f"combine_{k}_{j}", inputs=parents(k, j), outputs=dst)(combine(dst))
LAST = expand("out/{k}/{j}.txt", k=[LAYERS - 1], j=range(W))
'''
    tail = f'''

@rule(inputs=["{LIST_FILE}", *LAST], outputs="{FINAL}", default=True)
def aggregate(step):
    names = step.inputs[0].read_text().split()
    with open(step.outputs[0], "wb") as out:
        for name in names:
            with open(name, "rb") as part:
                shutil.copyfileobj(part, out)
'''
    return head + body + tail


@dataclass(frozen=True)
class ToolFormat:
    """Where a tool's build file goes and how to write it."""

    filename: str
    render: Callable[[Pipeline], str]


FORMATS: dict[str, ToolFormat] = {
    "makeflow": ToolFormat("Makeflow.py", makeflow_shell),
    "makeflow-py": ToolFormat("Makeflow.py", makeflow_python),
    "make": ToolFormat("Makefile", makefile),
    "ninja": ToolFormat("build.ninja", ninja),
    "snakemake": ToolFormat("Snakefile", snakefile),
    "doit": ToolFormat("dodo.py", dodo),
}


def write_sources(pipeline: Pipeline, dest: Path, version: int = 0) -> dict[str, bytes]:
    """Write the sources and list.txt; return the sources' contents for the output checks."""
    contents = {path: source_content(path, version) for path in pipeline.sources}
    (dest / "in").mkdir(parents=True, exist_ok=True)
    for path, data in contents.items():
        (dest / path).write_bytes(data)
    (dest / LIST_FILE).write_text("\n".join(pipeline.last_layer) + "\n")
    return contents


def write_tool_dir(tool: str, pipeline: Pipeline, dest: Path) -> dict[str, bytes]:
    """Create one tool's fresh copy of the pipeline; `dest` must not exist yet."""
    fmt = FORMATS[tool]
    dest.mkdir(parents=True)
    for sub in pipeline.output_dirs():
        (dest / sub).mkdir(parents=True, exist_ok=True)
    contents = write_sources(pipeline, dest)
    (dest / fmt.filename).write_text(fmt.render(pipeline))
    return contents


def generate_all(pipeline: Pipeline, dest: Path, tools: Iterable[str]) -> list[Path]:
    """Write one directory per tool under `dest` (`dest/<tool>`)."""
    made = []
    for tool in tools:
        target = dest / tool
        write_tool_dir(tool, pipeline, target)
        made.append(target)
    return made


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("dest", type=Path, help="directory to create, one subdirectory per tool")
    parser.add_argument("--shape", choices=SHAPES, default="wide")
    parser.add_argument("--size", type=int, default=1000, help="steps before the final one")
    parser.add_argument("--tools", default=",".join(FORMATS), help="comma-separated list")
    args = parser.parse_args(argv)
    tools = [t for t in args.tools.split(",") if t]
    unknown = sorted(set(tools) - set(FORMATS))
    if unknown:
        parser.error(f"unknown tools: {', '.join(unknown)}")
    for path in generate_all(Pipeline(args.shape, args.size), args.dest, tools):
        print(os.fspath(path))


if __name__ == "__main__":
    main()
