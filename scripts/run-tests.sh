#!/usr/bin/env bash
# Run every dyldkit test against the build in BUILD (default: build).
# Called by `make test` (and `make asan` with BUILD=build/asan) after the
# library, CLI and unit tests are built.  Each stage prints its own summary;
# the script fails if any stage fails.
set -uo pipefail
BUILD=${1:-build}
HERE=$(cd "$(dirname "$0")/.." && pwd)
cd "$HERE"
export DK_BUILD=$HERE/$BUILD
export DYLDKIT=$DK_BUILD/dyldkit
export DK_FIXTURES=$HERE/build/fixtures
case "$BUILD" in *asan*) export DK_SLOW=${DK_SLOW:-6}; export ASAN_OPTIONS=${ASAN_OPTIONS:-detect_leaks=1:abort_on_error=1}; export UBSAN_OPTIONS=${UBSAN_OPTIONS:-halt_on_error=1:print_stacktrace=1};; esac
failed=()
stage() {
    local name=$1
    shift
    echo "== $name"
    if "$@"; then echo "== $name: ok"; else echo "== $name: FAILED"; failed+=("$name"); fi
}
# Fixtures are built once (outside the sanitizer build) and shared.
if [ ! -f build/fixtures/.stamp ] || [ -n "$(find tests/fixtures tests/tools -newer build/fixtures/.stamp -type f | head -1)" ]; then
    stage fixtures bash -c './tests/fixtures/build.sh build/fixtures && touch build/fixtures/.stamp'
fi
for t in "$DK_BUILD"/tests/*; do
    [ -x "$t" ] || continue
    stage "unit $(basename "$t")" "$t"
done
for t in tests/*.py tests/golden/*.py; do
    [ -f "$t" ] || continue
    stage "$t" python3 "$t"
done
if [ ${#failed[@]} -ne 0 ]; then
    echo "FAILED: ${failed[*]}"
    exit 1
fi
echo "all tests passed"
