"""Lake warming: a paper-shaped pipeline from a pinned download to a generated report.

fetch -> unpack -> clean/{lake} -> fit/{lake} -> score/{lake} -> trend/{lake} -> figure/{lake}
      -> combine -> explore (notebook) -> metrics -> paper (report), supplement (CSV)
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from makeflow import config, rule
from makeflow_rules import (
    convert,
    download,
    evaluate_model,
    extract,
    notebook,
    render,
    sql,
    stable_figure,
    train_model,
)

LAKES = config["data"]["lakes"]

# 1. The raw data, as published: a file shipped beside this example, fetched through a
#    project-relative file: URL so the example runs offline, wherever it is cloned; the
#    pin proves it is the expected file.
download("fetch", url="file:upstream/lakes.tar.gz", output="data/raw/lakes.tar.gz",
         sha256="b6637c09e2379deccb6bc29704bd1303787fbacc417bfa3b5a7454613e533180")

extract("unpack", archive="data/raw/lakes.tar.gz",
        members={f"lakes/{lake}.csv": f"data/raw/{lake}.csv" for lake in LAKES})

# 2. Cleaning, one step per lake (a pattern rule): drop gaps and flagged readings, then
#    average each year's summer months.
months = ", ".join(str(int(m)) for m in config["clean"]["months"])
sql("clean", inputs={"raw": "data/raw/{lake}.csv"}, output="data/clean/{lake}.parquet",
    query=f"""
        SELECT year(date) AS year, round(avg(temp_c), 3) AS temp_c, count(*) AS readings
        FROM raw
        WHERE quality = 'ok' AND temp_c IS NOT NULL AND month(date) IN ({months})
        GROUP BY year(date)
        HAVING count(*) >= {int(config["clean"]["min_readings"])}
        ORDER BY year
    """)

# 3. The analysis, one per lake: a linear trend of the summer mean over the years.
train_model("fit", data="data/clean/{lake}.parquet", model="models/{lake}.pkl",
            target="temp_c", features=["year"])
evaluate_model("score", model="models/{lake}.pkl", data="data/clean/{lake}.parquet",
               metrics="results/{lake}/fit.json", target="temp_c", features=["year"],
               scores=["r2", "rmse"])


@rule(inputs={"model": "models/{lake}.pkl", "fit": "results/{lake}/fit.json"},
      outputs="results/{lake}/trend.json")
def trend(step: Any) -> None:
    """The warming rate in degrees per decade, with the fit's quality beside it."""
    import pickle

    with open(step.inputs.model, "rb") as f:
        model = pickle.load(f)
    fit = json.loads(Path(step.inputs.fit).read_text())
    result = {"warming_per_decade_c": round(float(model.coef_[0]) * 10, 3),
              "r2": fit["r2"], "rmse": fit["rmse"], "years": fit["n"]}
    Path(step.outputs[0]).write_text(json.dumps(result, indent=2, sort_keys=True) + "\n")


@rule(inputs={"data": "data/clean/{lake}.parquet", "model": "models/{lake}.pkl"},
      outputs="figures/{lake}.svg")
def figure(step: Any) -> None:
    """Each year's summer mean and the fitted trend (byte-stable SVG)."""
    import pickle

    from pyarrow import parquet

    table = parquet.read_table(step.inputs.data).to_pydict()
    with open(step.inputs.model, "rb") as f:
        model = pickle.load(f)
    years = table["year"]
    line = model.predict([[years[0]], [years[-1]]])
    with stable_figure(step.outputs[0], 5, 3, bbox_inches="tight") as fig:
        ax = fig.subplots()
        ax.plot(years, table["temp_c"], "o", markersize=3, label="summer mean")
        ax.plot([years[0], years[-1]], line, "-", label="trend")
        ax.set_title(f"Lake {step.wildcards.lake}")
        ax.set_xlabel("year")
        ax.set_ylabel("°C")
        ax.legend()


# 4. Across lakes: one table for the notebook and the supplement, and the metrics file.
sql("combine", inputs={lake: f"data/clean/{lake}.parquet" for lake in LAKES},
    output="data/combined.parquet",
    query=" UNION ALL ".join(f"SELECT '{lake}' AS lake, * FROM {lake}" for lake in LAKES)
    + " ORDER BY lake, year")

notebook("explore", source="notebooks/explore.ipynb", executed="report/explore.ipynb",
         html="report/explore.html", inputs={"data": "data/combined.parquet"},
         outputs={"decades": "results/decades.md"})

convert("supplement", input="data/combined.parquet", output="report/supplement/lakes.csv")


@rule(inputs=[f"results/{lake}/trend.json" for lake in LAKES], outputs="results/metrics.json")
def metrics(step: Any) -> None:
    """Every lake's trend, and their mean: the numbers the paper quotes."""
    files = zip(LAKES, step.inputs, strict=True)
    lakes = {lake: json.loads(Path(path).read_text()) for lake, path in files}
    rates = [r["warming_per_decade_c"] for r in lakes.values()]
    summary = {"lakes": lakes, "mean_warming_per_decade_c": round(sum(rates) / len(rates), 3),
               "warming_lakes": sum(rate > 0 for rate in rates)}
    Path(step.outputs[0]).write_text(json.dumps(summary, indent=2, sort_keys=True) + "\n")


# 5. The paper, generated from the template with every number and figure it quotes.
render("paper", template="templates/paper.md.j2", output="report/paper.md",
       inputs={"metrics": "results/metrics.json", "decades": "results/decades.md",
               "notebook": "report/explore.html", "supplement": "report/supplement/lakes.csv",
               **{f"figure_{lake}": f"figures/{lake}.svg" for lake in LAKES}},
       values={"title": config["report"]["title"], "months": config["clean"]["months"]})

rule("all", inputs=["report/paper.md"], default=True)
