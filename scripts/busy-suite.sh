#!/usr/bin/env bash
# Runs the whole suite RUNS times (default 3) while every core is kept busy by a CPU burner,
# so a test that only passes on an idle machine shows up here (issue 12). Not part of
# `make test`: it takes RUNS times as long. Stops at the first failing run.
set -euo pipefail
cd "$(dirname "$0")/.."
runs="${RUNS:-3}"
burners=()
trap 'kill "${burners[@]}" 2>/dev/null || true' EXIT
for _ in $(seq "$(nproc)"); do
  .venv/bin/python -c 'while True: pass' &
  burners+=($!)
done
source scripts/pg-env.sh
for run in $(seq "$runs"); do
  echo "busy-suite: run $run of $runs with $(nproc) CPU burners" >&2
  .venv/bin/pytest -q -p no:cacheprovider
done
