#!/usr/bin/env bash
# Reproduce splitgate's performance figures with the shared side-by-side harness.
# usage: bench/run.sh [HARNESS_DIR] [compare.sh options ...]
#   HARNESS_DIR defaults to ../shared/bench beside the repository. It is copied to a scratch
#   folder (it builds a venv and writes results beside itself), then run with this folder's
#   contenders.toml: direct, nginx, refproxy and splitgate, alternating, 3 repetitions.
#   Smoke run (~1 min): bench/run.sh "" --reps 1 --duration 3 --warmup 1 --mem-streams 300 --mem-pause 3
#   Other contenders: SPLITGATE_BENCH_CONTENDERS="splitgate splitgate-redis" bench/run.sh
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)
root=$(cd "$here/.." && pwd)
harness=${1:-}
[ -n "$harness" ] || harness="$root/../shared/bench"
shift || true
[ -f "$harness/compare.sh" ] || { echo "bench/run.sh: no harness at $harness (pass its folder)" >&2; exit 2; }
work=${SPLITGATE_BENCH_DIR:-/tmp/splitgate-bench}
mkdir -p "$work"
rsync -a --exclude results --exclude .venv "$harness/" "$work/harness/" 2>/dev/null || cp -r "$harness/." "$work/harness/"
export SPLITGATE_PYTHON=${SPLITGATE_PYTHON:-$(command -v python3)}
export SPLITGATE_SRC=$root
"$SPLITGATE_PYTHON" -c 'import proxy, aiohttp, uvloop' || { echo "bench/run.sh: $SPLITGATE_PYTHON cannot import splitgate (pip install -e . first)" >&2; exit 2; }
# shellcheck disable=SC2086 # the contender list is meant to split into words
"$work/harness/compare.sh" --config "$here/contenders.toml" --out "$work/results" "$@" \
  ${SPLITGATE_BENCH_CONTENDERS:-direct nginx refproxy splitgate}
