"""Shuffle a CSV's rows with a fixed seed and split them into train and test CSV files."""

from __future__ import annotations

import argparse
import csv
import random


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("data")
    parser.add_argument("train_out")
    parser.add_argument("test_out")
    parser.add_argument("--test-fraction", type=float, default=0.2)
    parser.add_argument("--seed", type=int, default=42)
    args = parser.parse_args()

    with open(args.data, newline="") as f:
        header, *rows = list(csv.reader(f))
    random.Random(args.seed).shuffle(rows)
    n_test = round(len(rows) * args.test_fraction)

    for path, part in [(args.test_out, rows[:n_test]), (args.train_out, rows[n_test:])]:
        with open(path, "w", newline="") as f:
            csv.writer(f, lineterminator="\n").writerows([header, *part])


if __name__ == "__main__":
    main()
