#!/usr/bin/env bash
# Rebuild examples/hello (a universal x86_64 + arm64 executable) from
# examples/hello.c with clang-22 and ld64.lld-22.  The result is committed so
# `make demo` needs nothing but a C compiler; `make test` rebuilds it and
# checks the committed bytes are exactly what this script produces.
#   scripts/build-example.sh OUT     (default: examples/hello)
set -euo pipefail
unset LIBRARY_PATH
CLANG=${CLANG:-clang-22}
LD=${LD:-ld64.lld-22}
LIPO=${LIPO:-llvm-lipo-22}
HERE=$(cd "$(dirname "$0")/.." && pwd)
OUT=${1:-$HERE/examples/hello}
TMP=$(mktemp -d)
trap 'rm -rf "$TMP"' EXIT
mkdir -p "$TMP/sdk/usr/lib"
cp "$HERE/tests/fixtures/src/sdk/usr/lib/libSystem.B.tbd" "$TMP/sdk/usr/lib/"
ln -s libSystem.B.tbd "$TMP/sdk/usr/lib/libSystem.tbd"
cd "$TMP"
common=(-isysroot "$TMP/sdk" -fuse-ld=lld "--ld-path=$LD" -O1 -fno-stack-protector)
# x86_64 with classic dyld info (rebase/bind/lazy opcodes, __stub_helper)
"$CLANG" -target x86_64-apple-macos10.15 "${common[@]}" -Wl,-no_fixup_chains -o hello.x86_64 "$HERE/examples/hello.c"
# arm64 with chained fixups
"$CLANG" -target arm64-apple-macos12 "${common[@]}" -Wl,-fixup_chains -o hello.arm64 "$HERE/examples/hello.c"
"$LIPO" -create hello.x86_64 hello.arm64 -output hello
cp hello "$OUT"
