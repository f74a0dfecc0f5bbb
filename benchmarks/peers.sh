#!/usr/bin/env bash
# Install the Python peers (snakemake, doit) into their own virtualenv.
#
# They are benchmarked as separate programs, so they must never become
# dependencies of makeflow nor share its environment. GNU make and ninja
# come from the system (e.g. `apt-get install make ninja-build`).
set -euo pipefail

here="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
venv="${PEERS_VENV:-$here/.peers-venv}"
python="${PYTHON:-python3}"

if [ ! -x "$venv/bin/python" ]; then
    "$python" -m venv "$venv"
fi
"$venv/bin/python" -m pip install --quiet --upgrade pip
"$venv/bin/python" -m pip install --quiet --upgrade snakemake doit

echo "peers installed in $venv:"
"$venv/bin/snakemake" --version | sed 's/^/  snakemake /'
"$venv/bin/doit" --version | head -1 | sed 's/^/  doit /'
for tool in make ninja; do
    if command -v "$tool" >/dev/null; then
        echo "  $tool: $(command -v "$tool")"
    else
        echo "  $tool: not found (install it from the system package manager)" >&2
    fi
done
