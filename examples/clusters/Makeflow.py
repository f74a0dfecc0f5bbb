"""Clusters: a step decides how many groups the points form, each group is summarised, and a
report reads every summary, all in one `makeflow build`.

`cluster` is a checkpoint: its output folder decides the rest of the graph. `report` lists
its inputs with a function that globs that folder, so it waits for `cluster`, and one
`summarise` step runs per group `cluster` wrote (docs/dynamic.md).
"""

import csv
import json
import os

from makeflow import config, expand, glob_wildcards, rule


@rule(inputs="data/points.csv", outputs="clusters", checkpoint=True,
      params={"gap": config["cluster"]["gap"]})
def cluster(step):
    """Points sorted by x; a gap wider than `gap` starts a new group. One CSV per group,
    numbered from the left, so a group added on the right leaves the others' files as
    they were."""
    with open(step.inputs[0], newline="") as f:
        points = sorted((float(r["x"]), float(r["y"])) for r in csv.DictReader(f))
    groups, last = [], None
    for x, y in points:
        if last is None or x - last > step.params.gap:
            groups.append([])
        groups[-1].append((x, y))
        last = x
    os.makedirs(step.outputs[0], exist_ok=True)
    for i, group in enumerate(groups):
        with open(step.outputs[0] / f"{i}.csv", "w") as f:
            f.write("x,y\n" + "".join(f"{x},{y}\n" for x, y in group))


@rule(inputs="clusters/{c}.csv", outputs="summary/{c}.json")
def summarise(step):
    with open(step.inputs[0], newline="") as f:
        points = [(float(r["x"]), float(r["y"])) for r in csv.DictReader(f)]
    n = len(points)
    summary = {"cluster": int(step.wildcards["c"]), "points": n,
               "centre": [round(sum(x for x, _ in points) / n, 3),
                          round(sum(y for _, y in points) / n, 3)]}
    step.outputs[0].write_text(json.dumps(summary, indent=1) + "\n")


@rule(inputs=lambda: expand("summary/{c}.json", c=sorted(
          glob_wildcards("clusters/{c}.csv").c, key=int)),
      outputs="report.md", default=True)
def report(step):
    rows = [json.loads(path.read_text()) for path in step.inputs]
    lines = [f"# {len(rows)} clusters", "", "| cluster | points | centre |", "|---|---|---|"]
    lines += [f"| {r['cluster']} | {r['points']} | {r['centre'][0]}, {r['centre'][1]} |"
              for r in rows]
    step.outputs[0].write_text("\n".join(lines) + "\n")
