#!/usr/bin/env bash
# make bench: build the inputs (once; bench/gen.py), the library-level
# harness, then run every benchmark and print the table (bench/run.py).
#
#   bench/run.sh [BUILD]        BUILD holds dyldkit and libdyldkit.a (default build)
#
# Environment: BENCH_RUNS (rounds per comparison, default 5), BENCH_ONLY
# (fixups, stubs, cache: a subset), BENCH_SKIP_BUILD=1 (no cache build row),
# BENCH_INPUTS (default build/bench-inputs).
set -euo pipefail
HERE=$(cd "$(dirname "$0")/.." && pwd)
cd "$HERE"
BUILD=${1:-build}
INPUTS=${BENCH_INPUTS:-build/bench-inputs}
CC=${CC:-cc}
./scripts/deps.sh   # clang-22, lld-22, llvm-22 (llvm-objdump-22), python3, GNU time
mkdir -p "$BUILD/bench"
$CC -std=c11 -O2 -g -Iinclude -D_GNU_SOURCE -o "$BUILD/bench/cachebench" bench/cachebench.c \
    "$BUILD/libdyldkit.a" -lpthread -lm $(pkg-config --libs capstone 2>/dev/null) -ldl
python3 bench/gen.py "$INPUTS" "$BUILD/dyldkit"
exec python3 bench/run.py "$BUILD" "$INPUTS"
