#!/usr/bin/env bash
# Run the libFuzzer targets one after another (never two at once).
#
#   fuzz/run.sh FUZZ_BUILD SECONDS [TARGET...]      (make fuzz FUZZ_SECONDS=N)
#
# FUZZ_BUILD holds the fuzzers (make fuzz-build).  For each target (default:
# all of fuzz/fuzz_*.c):
#   - seeds: fuzz/seeds.py TARGET, linked (not copied) into
#     FUZZ_BUILD/seeds/TARGET, plus fuzz/regressions/TARGET (read only);
#   - new inputs go to FUZZ_BUILD/corpus/TARGET (kept between runs);
#   - a crash, leak, timeout (-timeout, default 10 s per input) or out-of-memory
#     (-rss_limit_mb, default 2048) input is written to FUZZ_BUILD/artifacts/TARGET/:
#     add it to fuzz/regressions/TARGET/ with the fix;
#   - the log is FUZZ_BUILD/logs/TARGET.log, and one line per run (date, target,
#     wall seconds, CPU seconds of the fuzzer process, executions, result) is
#     appended to FUZZ_BUILD/fuzz-runs.tsv, the record FUZZING.md totals come from.
# Environment: FUZZ_TIMEOUT, FUZZ_RSS_MB, FUZZ_ARGS (extra libFuzzer flags),
# DYLDKIT (the CLI seeds.py builds caches with; default build/dyldkit).
# To stop a run early, send SIGINT to the fuzzer (not SIGSTOP: the per-input
# timeout is wall time); it is logged as "interrupted", nothing found.
# Exits 1 if any target found something.
set -uo pipefail
HERE=$(cd "$(dirname "$0")/.." && pwd)
cd "$HERE"
FB=${1:?usage: fuzz/run.sh FUZZ_BUILD SECONDS [TARGET...]}
SECS=${2:?usage: fuzz/run.sh FUZZ_BUILD SECONDS [TARGET...]}
shift 2
TARGETS=("$@")
if [ ${#TARGETS[@]} -eq 0 ]; then
    for f in fuzz/fuzz_*.c; do t=${f#fuzz/fuzz_}; TARGETS+=("${t%.c}"); done
fi
FB=$(cd "$FB" && pwd)
DYLDKIT=${DYLDKIT:-$HERE/build/dyldkit}
[ -x "$DYLDKIT" ] || DYLDKIT=$(ls "$HERE"/build/*/dyldkit 2>/dev/null | head -1)
export ASAN_OPTIONS=${ASAN_OPTIONS:-detect_leaks=1:allocator_may_return_null=1}
export UBSAN_OPTIONS=${UBSAN_OPTIONS:-halt_on_error=1:print_stacktrace=1}
status=0
for t in "${TARGETS[@]}"; do
    bin=$FB/fuzzers/$t
    if [ ! -x "$bin" ]; then
        echo "fuzz: $bin missing (make fuzz-build)" >&2
        status=1
        continue
    fi
    case $t in
        cache|extract) maxlen=1048576 ;;
        slide) maxlen=524288 ;;
        *) maxlen=262144 ;;
    esac
    seeds=$FB/seeds/$t
    mkdir -p "$FB/corpus/$t" "$FB/artifacts/$t" "$FB/logs" "fuzz/regressions/$t"
    i=$(python3 fuzz/seeds.py "$t" --gen "$FB/seeds-gen" --dyldkit "$DYLDKIT" --max-size $maxlen --link "$seeds" | wc -l)
    log=$FB/logs/$t.log
    echo "== fuzz $t: ${SECS}s, $i seeds, log $log"
    start=$(date +%s)
    TIMEFORMAT='%U %S'
    { time "$bin" -max_total_time="$SECS" -timeout="${FUZZ_TIMEOUT:-10}" -rss_limit_mb="${FUZZ_RSS_MB:-2048}" \
        -max_len=$maxlen -dict=fuzz/dyldkit.dict -artifact_prefix="$FB/artifacts/$t/" -print_final_stats=1 \
        ${FUZZ_ARGS:-} "$FB/corpus/$t" "$seeds" "fuzz/regressions/$t" > "$log" 2>&1 ; } 2> "$FB/logs/$t.time"
    rc=$?
    secs=$(( $(date +%s) - start ))
    cpu=$(awk '{printf "%.0f", $1 + $2}' "$FB/logs/$t.time" 2>/dev/null)
    execs=$(sed -n 's/^stat::number_of_executed_units: *//p' "$log" | tail -1)
    if [ $rc -eq 0 ]; then
        result=clean
    elif [ $rc -eq 72 ] && grep -q 'libFuzzer: run interrupted' "$log"; then
        result=interrupted  # SIGINT (libFuzzer's -interrupted_exitcode): stopped early, nothing found
    else
        result="FOUND (exit $rc): $(ls -t "$FB/artifacts/$t" | head -1)"
        status=1
        grep -m1 -E 'ERROR: |runtime error|SUMMARY|fuzz:' "$log" | sed 's/^/   /'
    fi
    printf '%s\t%s\t%s\t%s\t%s\t%s\n' "$(date -u +%Y-%m-%dT%H:%M:%SZ)" "$t" "$secs" "${cpu:-?}" "${execs:-?}" "$result" >> "$FB/fuzz-runs.tsv"
    echo "== fuzz $t: $result, ${secs}s wall, ${cpu:-?}s CPU, ${execs:-?} executions"
done
exit $status
