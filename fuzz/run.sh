#!/usr/bin/env bash
# The long fuzz run of the C kernel: libFuzzer (clang) with AddressSanitizer and
# UndefinedBehaviorSanitizer, seeded with the interop vectors and synthetic traffic.
#
#   fuzz/run.sh [RUNS] [extra libFuzzer flags...]     (default: 10 million executions)
#   FUZZ_TARGET=pcap fuzz/run.sh [RUNS]                 the capture-file walker / BPF instead
#
# Needs clang and libclang-rt (Debian: apt-get install clang libclang-rt-14-dev).  The corpus
# grows in fuzz/corpus-work/corpus; anything found lands in fuzz/corpus-work/artifacts/ (copy
# it to fuzz/regressions/ once fixed).  PYTHON picks the interpreter (default: the repo's .venv).
set -euo pipefail
cd "$(dirname "$0")"
PY=${PYTHON:-../.venv/bin/python}
RUNS=${1:-10000000}
shift || true
TARGET=${FUZZ_TARGET:-kernel}
"$PY" build_targets.py "$TARGET:libfuzzer"
W=corpus-work
[ "$TARGET" = kernel ] || W=corpus-work/$TARGET
mkdir -p $W/corpus $W/artifacts $W/seeds
if [ -z "$(ls -A $W/seeds)" ]; then
    "$PY" make_seeds.py --target "$TARGET" $W/seeds
fi
REGRESSIONS=regressions
[ "$TARGET" = kernel ] || REGRESSIONS=regressions-$TARGET
mkdir -p $REGRESSIONS
export ASAN_OPTIONS=${ASAN_OPTIONS:-allocator_may_return_null=1:detect_leaks=1}
export UBSAN_OPTIONS=${UBSAN_OPTIONS:-halt_on_error=1:print_stacktrace=1}
MAX_LEN=65536
[ "$TARGET" = kernel ] || MAX_LEN=262144
nice -n 10 build/fuzz_$TARGET-libfuzzer -runs="$RUNS" -max_len=$MAX_LEN -rss_limit_mb=4096 -timeout=10 \
    -print_final_stats=1 -artifact_prefix=$W/artifacts/ "$@" \
    $W/corpus $W/seeds $REGRESSIONS 2>&1 | tee $W/run.log
