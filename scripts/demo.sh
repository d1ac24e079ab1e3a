#!/usr/bin/env bash
# `make demo`: run dyldkit on the real example embedded in the repository
# (examples/hello: a universal x86_64 + arm64 executable built from
# examples/hello.c by ld64.lld; see scripts/build-example.sh).
set -euo pipefail
DK=${1:-build/dyldkit}
EX=$(cd "$(dirname "$0")/.." && pwd)/examples/hello
run() { printf '\n\033[1m$ dyldkit %s\033[0m\n' "$*"; "$DK" "$@"; }
run info --arch x86_64 "$EX"
run dylibs "$EX"
run fixups "$EX"
run exports --arch arm64 "$EX"
run chains --arch arm64 "$EX"
run opcodes --arch x86_64 "$EX"
run stubs "$EX"
# the example runs: x86_64 natively, arm64 under unicorn (when dyldkit was built with it)
run call --arch x86_64 "$EX" main || echo "(x86_64 code runs natively only on an x86_64 host)"
run call --arch arm64 "$EX" main || echo "(arm64 code runs when dyldkit is built with libunicorn-dev)"
