#!/usr/bin/env bash
# The kernel under valgrind (memcheck): the standalone fuzz driver, built without sanitizers,
# replays the seeds and the regressions, then runs RUNS blindly mutated inputs.
#
#   fuzz/valgrind.sh [RUNS]        (default 20000)
set -euo pipefail
cd "$(dirname "$0")"
PY=${PYTHON:-../.venv/bin/python}
RUNS=${1:-20000}
"$PY" build_targets.py plain
mkdir -p corpus-work/seeds
if [ -z "$(ls -A corpus-work/seeds)" ]; then
    "$PY" make_seeds.py corpus-work/seeds
fi
nice -n 10 valgrind --tool=memcheck --error-exitcode=99 --leak-check=full --show-leak-kinds=definite,indirect,possible \
    --errors-for-leak-kinds=definite,indirect,possible --track-origins=yes \
    build/fuzz_kernel-plain -n "$RUNS" corpus-work/seeds regressions 2>&1 | tee corpus-work/valgrind.log
