#!/usr/bin/env bash
# Install what dyldkit's tests need on Debian (bookworm), only when missing:
# the LLVM 22 toolchain that builds real Mach-O fixtures and serves as the
# oracle (clang-22, lld-22, llvm-22), python3 for the golden comparisons,
# libunicorn-dev for emulated arm64 calls, libcapstone-dev for x86_64 cache
# building, zlib; GNU time for make bench.  Safe to run repeatedly.
set -euo pipefail
need=()
command -v clang-22 >/dev/null 2>&1 || need+=(clang-22)
command -v ld64.lld-22 >/dev/null 2>&1 || need+=(lld-22)
command -v llvm-objdump-22 >/dev/null 2>&1 || need+=(llvm-22)
command -v python3 >/dev/null 2>&1 || need+=(python3)
[ -x /usr/bin/time ] || need+=(time)   # GNU time: peak memory in make bench
command -v cc >/dev/null 2>&1 || need+=(gcc)
command -v make >/dev/null 2>&1 || need+=(make)
command -v pkg-config >/dev/null 2>&1 || need+=(pkg-config)
pkg-config --exists unicorn 2>/dev/null || need+=(libunicorn-dev)
pkg-config --exists zlib 2>/dev/null || need+=(zlib1g-dev)
pkg-config --exists capstone 2>/dev/null || need+=(libcapstone-dev)
# libFuzzer and the sanitizer runtimes for clang-22
[ -d /usr/lib/llvm-22/lib/clang ] && ls /usr/lib/llvm-22/lib/clang/*/lib/linux/libclang_rt.fuzzer-x86_64.a >/dev/null 2>&1 || need+=(libclang-rt-22-dev)
if [ ${#need[@]} -eq 0 ]; then
    exit 0
fi
echo "deps: installing ${need[*]}" >&2
SUDO=
if [ "$(id -u)" != 0 ]; then SUDO=sudo; fi
export DEBIAN_FRONTEND=noninteractive
$SUDO apt-get update -qq >/dev/null
$SUDO apt-get install -y -qq "${need[@]}" >/dev/null
