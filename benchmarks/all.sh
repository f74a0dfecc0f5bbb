#!/usr/bin/env bash
# Every benchmark in one go, printing markdown: hashing, watch latency, then makeflow beside
# every peer at 1,000, 10,000 and 100,000 steps, both shapes. About 70 minutes on 2 cores
# (see benchmarks/README.md for the estimate); the report also goes to
# benchmarks/results-<date>.md.
#
# Run from a virtualenv where makeflow is installed (pip install -e .), or set
# MAKEFLOW=/path/to/venv/bin/makeflow to benchmark another install, e.g. a frozen,
# non-editable one while the source keeps changing: run.py then times that executable, and
# hashing.py and watch_latency.py run with the Python of its virtualenv.
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)
out="$here/results-$(date +%Y-%m-%d).md"

makeflow_args=()
python=python
if [ -n "${MAKEFLOW:-}" ]; then
  makeflow=$(command -v "$MAKEFLOW") || { echo "MAKEFLOW=$MAKEFLOW: not found" >&2; exit 2; }
  makeflow=$(realpath "$makeflow")
  python="$(dirname "$makeflow")/python"
  [ -x "$python" ] || { echo "no python beside $makeflow" >&2; exit 2; }
  makeflow_args=(--makeflow "$makeflow")
fi
# The scripts below import makeflow; from here, no source tree shadows the installed one.
cd "$here"

# Which tools timed out, carried from one size to the next: a tool that timed out at
# 10,000 steps is shown as not run at 100,000.
timeouts=$(mktemp)
trap 'rm -f "$timeouts"' EXIT
run() { python "$here/run.py" "${makeflow_args[@]}" --timeouts "$timeouts" "$@"; }

"$here/peers.sh" >&2
{
  echo "Time budget: 3 timed runs after a warm-up at 1,000 steps; 1 after a warm-up at"
  echo "10,000 (snakemake's scratch build: one run, no warm-up, as it can take the whole"
  echo "10-minute limit); at 100,000 one run, the scratch build without a warm-up (it takes"
  echo "minutes), the other phases after one."
  echo
  echo "## Hashing"; echo
  "$python" "$here/hashing.py"
  echo; echo "## Watch latency"; echo
  "$python" "$here/watch_latency.py"
  echo
  run --sizes 1000 --repeat 3
  run --sizes 10000 --repeat 1 --single-run snakemake
  run --sizes 100000 --tools makeflow,make,ninja,doit --not-run snakemake \
      --repeat 1 --no-warmup --timeout 1800
} | tee "$out"
