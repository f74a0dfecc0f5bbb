"""Benchmark the HTML report: how long `makeflow report` takes, how big the file is, and how
long headless Chromium takes to open it, after a full build of a generated pipeline.

For each size it generates the `wide` shell pipeline (see generate.py), builds it from
scratch with `makeflow build -j 2`, then times `makeflow report` (median of --repeat
runs) with Graphviz `dot` (when installed) and with the bundled layout (`--no-dot`). With
selenium and Debian's chromium/chromium-driver it also loads each page --repeat times and
reports the median time until the page's script has drawn it (`data-ready` set).

Usage: python benchmarks/report.py [--sizes 1000,10000] [--repeat 3]
       [--workdir /tmp/makeflow-report-bench] [--makeflow PATH]
"""

from __future__ import annotations

import argparse
import shutil
import statistics
import subprocess
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

from generate import Pipeline, write_tool_dir


def timed(argv: list[str], cwd: Path) -> float:
    started = time.perf_counter()
    subprocess.run(argv, cwd=cwd, check=True, stdout=subprocess.DEVNULL)
    return time.perf_counter() - started


def browser():
    """Headless Chromium through Selenium, or None when either is missing."""
    try:
        from selenium import webdriver
        from selenium.webdriver.chrome.service import Service
    except ImportError:
        return None
    chromium, driver = shutil.which("chromium"), shutil.which("chromedriver")
    if not chromium or not driver:
        return None
    options = webdriver.ChromeOptions()
    for arg in ("--headless=new", "--no-sandbox", "--disable-gpu", "--window-size=1300,1800"):
        options.add_argument(arg)
    options.binary_location = chromium
    return webdriver.Chrome(options=options, service=Service(driver))


def open_seconds(driver, page: Path, repeat: int) -> float:
    """Median seconds from navigation start until the page's script finished drawing."""
    times = []
    for _ in range(repeat):
        driver.get("about:blank")
        driver.get(page.as_uri())
        ready = driver.find_element("css selector", "body").get_attribute("data-ready")
        assert ready == "1", "the report's script did not finish"
        # the page notes when its script finished, in ms from the start of navigation
        body = driver.find_element("css selector", "body")
        times.append(float(body.get_attribute("data-ready-ms")) / 1000)
    return statistics.median(times)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--sizes", default="1000,10000")
    parser.add_argument("--repeat", type=int, default=3)
    parser.add_argument("--workdir", type=Path, default=Path("/tmp/makeflow-report-bench"))
    parser.add_argument("--makeflow", default=str(Path(sys.executable).parent / "makeflow"))
    args = parser.parse_args()
    driver = browser()
    rows = []
    try:
        for size in (int(s) for s in args.sizes.split(",")):
            rows += measure(size, args, driver)
    finally:
        if driver is not None:
            driver.quit()
    print("| steps | layout | `makeflow report` | file size | open in Chromium |")
    print("|---:|---|---:|---:|---:|")
    for row in rows:
        print("| {:,} | {} | {:.2f} s | {:.2f} MB | {} |".format(*row))


def measure(size: int, args: argparse.Namespace, driver) -> list[tuple]:
    folder = args.workdir / f"wide-{size}"
    shutil.rmtree(folder, ignore_errors=True)
    write_tool_dir("makeflow", Pipeline("wide", size), folder)
    took = timed([args.makeflow, "build", "-j", "2", "-q"], folder)
    print(f"N={size}: scratch build {took:.1f} s", file=sys.stderr)
    rows = []
    layouts = [("dot", [])] if shutil.which("dot") else []
    layouts.append(("bundled", ["--no-dot"]))
    for name, extra in layouts:
        out = folder / f"report-{name}.html"
        seconds = statistics.median(
            timed([args.makeflow, "report", "-o", out.name, *extra], folder)
            for _ in range(args.repeat))
        opened = "-" if driver is None else f"{open_seconds(driver, out, args.repeat):.2f} s"
        rows.append((size + 1, name, seconds, out.stat().st_size / 1e6, opened))
        print(f"  {name}: {seconds:.2f} s, {out.stat().st_size / 1e6:.2f} MB, open {opened}",
              file=sys.stderr)
    return rows


if __name__ == "__main__":
    main()
