#!/usr/bin/env bash
# Every benchmark in one go, printing markdown: peers against makeflow at 1,000 and 10,000
# steps, makeflow against make and ninja at 100,000, hashing, and watch latency.
# Run from a virtualenv where makeflow is installed (pip install -e .). Takes about 1.5 h
# on 2 cores; the tables also go to benchmarks/results-<date>.md.
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)
out="$here/results-$(date +%Y-%m-%d).md"
"$here/peers.sh" >&2
{
  echo "## Hashing"; echo
  python "$here/hashing.py"
  echo; echo "## Watch latency"; echo
  python "$here/watch_latency.py"
  echo
  python "$here/run.py" --sizes 1000 --repeat 3
  python "$here/run.py" --sizes 10000 --tools makeflow,makeflow-py,make,ninja,doit --repeat 3
  python "$here/run.py" --sizes 10000 --tools snakemake,make --repeat 1
  python "$here/run.py" --sizes 100000 --tools makeflow,make,ninja --repeat 1 --no-warmup \
      --timeout 1800
} | tee "$out"
