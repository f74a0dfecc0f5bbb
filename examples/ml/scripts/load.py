"""Write scikit-learn's bundled diabetes data set to a CSV file (features, then target)."""

from __future__ import annotations

import csv
import sys

from sklearn.datasets import load_diabetes


def main(out_path: str) -> None:
    data = load_diabetes()
    with open(out_path, "w", newline="") as f:
        writer = csv.writer(f, lineterminator="\n")
        writer.writerow([*data.feature_names, "target"])
        for features, target in zip(data.data, data.target, strict=True):
            writer.writerow([repr(float(x)) for x in (*features, target)])


if __name__ == "__main__":
    if len(sys.argv) != 2:
        sys.exit("usage: load.py OUT_CSV")
    main(sys.argv[1])
