"""Make upstream/lakes.tar.gz, the synthetic "published data set" the example downloads.

The data are invented: monthly surface temperatures of three lakes, 1985-2023, with a
warming trend, seasonal swing, noise, gaps and a few flagged bad readings. The archive is
byte-reproducible (fixed seed, fixed timestamps), so its sha256 pin in Makeflow.py holds.
Run `python upstream/generate.py` only to change the data; then update the pin.
"""

from __future__ import annotations

import gzip
import io
import random
import tarfile
from pathlib import Path

LAKES = {"arrow": (17.2, 0.035), "birch": (15.8, 0.021), "cedar": (19.1, 0.048)}
YEARS = range(1985, 2024)
MONTHS = {5: -5.5, 6: -1.5, 7: 1.5, 8: 2.2, 9: 0.0, 10: -4.0}


def lake_csv(name: str, base: float, per_year: float, rnd: random.Random) -> bytes:
    lines = ["date,station,temp_c,quality"]
    for year in YEARS:
        for month, offset in MONTHS.items():
            temp = base + offset + per_year * (year - YEARS[0]) + rnd.gauss(0, 0.45)
            roll = rnd.random()
            value, quality = f"{temp:.2f}", "ok"
            if roll < 0.03:
                value = ""  # a gap in the record
            elif roll < 0.05:
                value, quality = f"{rnd.choice([-9.99, 99.9]):.2f}", "bad"
            lines.append(f"{year}-{month:02d}-15,{name.upper()}-1,{value},{quality}")
    return ("\n".join(lines) + "\n").encode()


def main() -> None:
    rnd = random.Random(20240601)
    raw = io.BytesIO()
    with tarfile.open(fileobj=raw, mode="w", format=tarfile.PAX_FORMAT) as tf:
        for name, (base, per_year) in LAKES.items():
            data = lake_csv(name, base, per_year, rnd)
            info = tarfile.TarInfo(f"lakes/{name}.csv")
            info.size, info.mtime, info.mode = len(data), 0, 0o644
            tf.addfile(info, io.BytesIO(data))
    target = Path(__file__).with_name("lakes.tar.gz")
    with open(target, "wb") as f, gzip.GzipFile(fileobj=f, mode="wb", mtime=0,
                                                filename="") as gz:
        gz.write(raw.getvalue())


if __name__ == "__main__":
    main()
