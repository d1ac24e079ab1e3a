#!/usr/bin/env python3
"""Run dyldkit's benchmarks and print a table (see BENCHMARKS.md).

    bench/run.py BUILD [INPUTS]      (bench/run.sh builds what this needs)

Every comparison runs its two sides interleaved (A B A B ...) in the same
invocation, BENCH_RUNS times (default 5), and reports medians: the machine
is shared, so ratios are what count and absolute times are context.  Peak
memory is GNU time's "Maximum resident set size" (one extra run per
command); wall and CPU times are of the command run directly.
"""
import json
import os
import resource
import shutil
import statistics
import subprocess
import sys
import time

RUNS = int(os.environ.get("BENCH_RUNS", "5"))
OBJDUMP = os.environ.get("OBJDUMP", "llvm-objdump-22")
NCPU = os.cpu_count() or 2
TIME = "/usr/bin/time"
TMPDIR = "/tmp"


def measure(cmd, cwd=None):
    """Wall and CPU seconds (user+sys) of CMD run directly, its output thrown
    away.  CPU is this process's children rusage before and after (in
    microseconds); timing under GNU time would add its own exec (~4 ms of
    CPU on these machines) to every number."""
    r0 = resource.getrusage(resource.RUSAGE_CHILDREN)
    t0 = time.perf_counter()
    p = subprocess.run(cmd, cwd=cwd, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    dt = time.perf_counter() - t0
    r1 = resource.getrusage(resource.RUSAGE_CHILDREN)
    if p.returncode != 0:
        raise SystemExit("bench: %s exited %d: %s" % (" ".join(cmd), p.returncode, p.stderr.decode(errors="replace")))
    return dt, (r1.ru_utime - r0.ru_utime) + (r1.ru_stime - r0.ru_stime)


def peak_rss(cmd, cwd=None):
    """Peak RSS (KiB) of CMD, from a run under GNU time: its small process is
    what forks CMD (the rusage of a child forked from this Python process
    would count the parent's pages in ru_maxrss)."""
    tf = os.path.join(TMPDIR, "time.txt")
    p = subprocess.run([TIME, "-f", "%M", "-o", tf, *cmd], cwd=cwd, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    if p.returncode != 0:
        raise SystemExit("bench: %s exited %d: %s" % (" ".join(cmd), p.returncode, p.stderr.decode(errors="replace")))
    return int(open(tf).read().split()[-1])


def output_of(cmd):
    return subprocess.run(cmd, check=True, stdout=subprocess.PIPE).stdout


class M:
    """Medians of wall and CPU seconds, maximum peak RSS (KiB)."""
    def __init__(self, walls, cpus, rss):
        self.wall = statistics.median(walls)
        self.cpu = statistics.median(cpus)
        self.rss = max(rss)


def side_by_side(cmds, runs=RUNS, before=None):
    """Run each command of CMDS in turn, RUNS rounds (A B A B ...), after
    one run of each under GNU time for its peak RSS."""
    res = [([], [], []) for _ in cmds]
    for i, c in enumerate(cmds):
        if before:
            before(i)
        res[i][2].append(peak_rss(c))
    for _ in range(runs):
        for i, c in enumerate(cmds):
            if before:
                before(i)
            for lst, v in zip(res[i], measure(c)):
                lst.append(v)
    return [M(*r) for r in res]


ROWS = []


def row(name, value, unit, target="", note=""):
    ROWS.append({"benchmark": name, "value": value, "unit": unit, "target": target, "note": note})
    print("  %-52s %14s %-10s %-14s %s" % (name, fmt(value), unit, target, note), flush=True)


def fmt(v):
    if isinstance(v, float):
        if v >= 1000:
            return "{:,.0f}".format(v)
        if v >= 10:
            return "%.1f" % v
        return "%.3f" % v
    if isinstance(v, int):
        return "{:,}".format(v)
    return str(v)


def compare(label, ours, theirs, size):
    a, b = side_by_side([ours, theirs])
    row(label + ": dyldkit", a.wall, "s", "", "cpu %.3fs, peak RSS %.1f MiB" % (a.cpu, a.rss / 1024))
    row(label + ": llvm-objdump-22", b.wall, "s", "", "cpu %.3fs, peak RSS %.1f MiB" % (b.cpu, b.rss / 1024))
    row(label + ": speedup (wall)", b.wall / a.wall, "x", ">= 5x", "PASS" if b.wall / a.wall >= 5 else "MISS")
    row(label + ": speedup (cpu)", b.cpu / a.cpu, "x", ">= 5x", "PASS" if b.cpu / a.cpu >= 5 else "MISS")
    row(label + ": dyldkit RSS / file size", a.rss * 1024 / size, "x", "<= 2x",
        "PASS" if a.rss * 1024 <= 2 * size else "MISS")


def tree_bytes(d):
    n = b = 0
    for root, _, files in os.walk(d):
        for f in files:
            n += 1
            b += os.path.getsize(os.path.join(root, f))
    return n, b


def main():
    global TMPDIR
    build = os.path.abspath(sys.argv[1])
    inputs = os.path.abspath(sys.argv[2] if len(sys.argv) > 2 else "build/bench-inputs")
    dk = os.path.join(build, "dyldkit")
    cb = os.path.join(build, "bench", "cachebench")
    only = os.environ.get("BENCH_ONLY", "")
    TMPDIR = os.path.join(build, "bench")
    os.makedirs(TMPDIR, exist_ok=True)
    if not os.access(TIME, os.X_OK):
        raise SystemExit("bench: %s (GNU time) not found: apt-get install time" % TIME)
    print("dyldkit benchmarks: %s, inputs %s, %d runs, medians; %d cores" % (dk, inputs, RUNS, NCPU))
    print("  %-52s %14s %-10s %-14s %s" % ("benchmark", "value", "unit", "target", "note"))

    def I(p):
        return os.path.join(inputs, p)

    if not only or "fixups" in only:
        for kind in ("classic", "chained"):
            f = I("libfix_%s.dylib" % kind)
            size = os.path.getsize(f)
            count = output_of([dk, "fixups", f]).count(b"\n") - 1
            row("libfix_%s.dylib: size / fixups" % kind, size, "bytes", "", "%d fixups" % count)
            theirs = [OBJDUMP, "--macho", "--rebase", "--bind", "--lazy-bind", "--weak-bind", f] \
                if kind == "classic" else [OBJDUMP, "--macho", "--dyld-info", f]
            compare("fixups --json %s" % kind, [dk, "fixups", "--json", f], theirs, size)
            compare("fixups (text) %s" % kind, [dk, "fixups", f], theirs, size)
        for kind in ("classic", "chained"):
            f = I("libexp_%s.dylib" % kind)
            compare("exports %s (100k)" % kind, [dk, "exports", f],
                    [OBJDUMP, "--macho", "--exports-trie", f], os.path.getsize(f))
        # everything llvm-objdump prints about the file in one run, against both our commands
        f = I("libfix_classic.dylib")
        both = os.path.join(build, "bench", "fixups_and_exports.sh")
        with open(both, "w") as s:
            s.write('#!/bin/sh\n"%s" fixups --json "$1" && "%s" exports "$1"\n' % (dk, dk))
        os.chmod(both, 0o755)
        compare("fixups+exports classic", [both, f],
                [OBJDUMP, "--macho", "--rebase", "--bind", "--lazy-bind", "--weak-bind", "--exports-trie", f],
                os.path.getsize(f))

    if not only or "stubs" in only:
        for kind in ("classic", "chained"):
            f = I("stubs_%s" % kind)
            a, b = side_by_side([[dk, "stubs", "--json", f], [OBJDUMP, "--macho", "--indirect-symbols", f]])
            row("stubs --json %s (100k stubs)" % kind, a.wall, "s", "", "cpu %.3fs, peak RSS %.1f MiB = %.2fx file"
                % (a.cpu, a.rss / 1024, a.rss * 1024 / os.path.getsize(f)))
            row("  llvm-objdump --indirect-symbols", b.wall, "s", "", "cpu %.3fs; ratio wall %.1fx cpu %.1fx"
                % (b.cpu, b.wall / a.wall, b.cpu / a.cpu))

    if not only or "cache" in only:
        cache = I("cache/dyld_shared_cache_arm64")
        csize = os.path.getsize(cache)
        info = json.loads(output_of([dk, "cache", "info", "--json", cache]))
        row("cache: images / size", info["image_count"], "images", "", "%.1f MiB" % (csize / 2**20))
        paths = open(I("cache/inputs.txt")).read().split()
        tmp = os.path.join(build, "bench", "tmp")
        shutil.rmtree(tmp, ignore_errors=True)
        os.makedirs(tmp)
        if not os.environ.get("BENCH_SKIP_BUILD"):
            a, = side_by_side([[dk, "cache", "build", "-o", os.path.join(tmp, "built"), *paths]],
                              runs=max(1, RUNS // 2))
            row("cache build (%d dylibs)" % len(paths), a.wall, "s", "", "cpu %.2fs, peak RSS %.1f MiB"
                % (a.cpu, a.rss / 1024))
        outs = {j: os.path.join(tmp, "x%d" % j) for j in (1, NCPU)}
        copy = os.path.join(tmp, "copy")

        def clean(i):
            for d in list(outs.values()) + [copy]:
                shutil.rmtree(d, ignore_errors=True)
            if i == 2:  # the copy needs a source
                measure([dk, "cache", "extract", cache, "--all", "-o", outs[NCPU], "-j", str(NCPU)])
        cmds = [[dk, "cache", "extract", cache, "--all", "-o", outs[NCPU], "-j", str(NCPU)],
                [dk, "cache", "extract", cache, "--all", "-o", outs[1], "-j", "1"],
                ["cp", "-r", outs[NCPU], copy]]
        res = side_by_side(cmds, before=clean)
        nimg, nbytes = tree_bytes(outs[NCPU])
        tj, t1, tc = res[0].wall, res[1].wall, res[2].wall
        row("cache extract --all -j %d" % NCPU, tj, "s", "", "%d images, %.1f MiB out, cpu %.2fs, peak RSS %.1f MiB"
            % (nimg, nbytes / 2**20, res[0].cpu, res[0].rss / 1024))
        row("  images/s (-j %d)" % NCPU, nimg / tj, "images/s", ">= 200", "PASS" if nimg / tj >= 200 else "MISS")
        row("  MB/s (-j %d)" % NCPU, nbytes / 1e6 / tj, "MB/s", "", "")
        row("cache extract --all -j 1", t1, "s", "", "%.0f images/s, cpu %.2fs, peak RSS %.1f MiB"
            % (nimg / t1, res[1].cpu, res[1].rss / 1024))
        row("  scaling -j %d vs -j 1" % NCPU, t1 / tj, "x", "", "")
        row("cp -r of the same output", tc, "s", "", "%.0f MB/s, cpu %.2fs" % (nbytes / 1e6 / tc, res[2].cpu))
        row("  extract / copy time (wall)", tj / tc, "x", "<= 5x", "PASS" if tj / tc <= 5 else "MISS")
        if res[2].cpu > 0:
            r = res[0].cpu / res[2].cpu
            row("  extract / copy time (cpu)", r, "x", "<= 5x", "PASS" if r <= 5 else "MISS")
        for d in list(outs.values()) + [copy]:
            shutil.rmtree(d, ignore_errors=True)

        opens = [float(output_of([cb, "open", cache]).split(b"=")[1]) for _ in range(RUNS)]
        row("cache open (library)", statistics.median(opens), "s", "", "")
        lines = [dict(kv.split("=") for kv in output_of([cb, "addr", cache, "200000"]).decode().split())
                 for _ in range(RUNS)]
        lps = statistics.median(float(x["lookups_per_s"]) for x in lines)
        first = statistics.median(float(x["first_lookup_s"]) for x in lines)
        row("cache addr lookups (library, 200k random)", lps, "lookups/s", "",
            "first lookup (builds index) %.3fs; %s of %s with a symbol" % (first, lines[0]["with_symbol"], lines[0]["found"]))
        t = side_by_side([[dk, "cache", "addr", cache, "0x%x" % (info["base_address"] + 0x10000)]])[0].wall
        row("dyldkit cache addr (CLI: open + 1 lookup)", t, "s", "", "%.0f processes/s" % (1 / t))
        lines = [dict(kv.split("=") for kv in output_of([cb, "slide", cache]).decode().split()) for _ in range(RUNS)]
        pps = statistics.median(float(x["pointers_per_s"]) for x in lines)
        cold = statistics.median(float(x["cold_pointers_per_s"]) for x in lines)
        row("slide pointers decoded (library)", pps, "pointers/s", "",
            "%s pointers; %.0f/s on the first pass (page faults)" % (lines[0]["pointers"], cold))
        t = side_by_side([[dk, "cache", "slide", "--pointers", "--json", cache]])[0].wall
        row("dyldkit cache slide --pointers --json (CLI)", t, "s", "",
            "%.0f pointers/s incl. JSON" % (int(lines[0]["pointers"]) / t))
        shutil.rmtree(tmp, ignore_errors=True)

    with open(os.path.join(build, "bench", "results.json"), "w") as f:
        json.dump(ROWS, f, indent=1)


if __name__ == "__main__":
    main()
