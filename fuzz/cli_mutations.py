#!/usr/bin/env python3
"""Deterministic corpus mutations through every CLI command (issue #8).

    fuzz/cli_mutations.py [--count N] [--seed S] [--jobs J] [--keep DIR]
                          [--report FILE] [--first K]

Mutant I (0 <= I < N) is a deterministic function of (S, I): every tenth is a
mutant of a dyld cache (the corpus caches and single-file caches built from
the fixtures by fuzz/seeds.py), the rest mutants of the corpus Mach-O files
(thin, universal, archives; <= 256 KiB) made by tests/test_corpus.py's
mutate() (byte flips, boundary values in load commands, truncations, ULEB
stretches in LINKEDIT streams, insertions, deletions).  Each mutant goes
through every CLI command that reads such a file, --json and human output
alternating:
  Mach-O: info loadcmds segments symbols dylibs exports fixups chains opcodes
          stubs objc verify, resolve --all (with an empty --root), cache build
          --allow-unresolved (a failed build must leave no file behind)
  cache:  cache info / mappings / images / slide --pointers / addr / symbols / patches /
          extract --all, and info symbols exports fixups stubs objc on CACHE:0
Every run must exit 0 or 1 (never a signal, a usage error or a sanitizer
report) within HANG_SECONDS; exit 1 follows tests/test_malformed.py's contract
(empty stdout, one `dyldkit: FILE: ...` line), except that verify and
resolve --all print their report before the finding and extract prints its
summary.  Runs whose CPU time (user+sys of that process) or wall time exceeds
2 seconds are counted and listed.  Failing mutants are kept in --keep.

--originals runs the whole corpus unmutated instead (every Mach-O of any size,
the malformed ones included, and every cache), each file twice so that every
command sees it both with --json and without.

Use the sanitizer build (make fuzz-cli: DYLDKIT=build/asan/dyldkit); DYLDKIT
and DK_SLOW are read as by the tests.  --server BIN (fuzz/cli_server.c, built
as $BUILD/fuzz-cli-server) runs each command as a fork of one already started
sanitizer process instead of a fresh dyldkit: the same CLI code, without the
sanitizer runtime's start-up cost on every run.  Prints one summary line and writes
--report (JSON) with the counts, the slowest runs and every failure.
"""
import argparse
import glob
import json
import os
import random
import shutil
import struct
import subprocess
import sys
import tempfile
import threading
import time
from concurrent.futures import ThreadPoolExecutor

ROOT = os.path.abspath(os.path.join(os.path.dirname(os.path.abspath(__file__)), ".."))
sys.path.insert(0, os.path.join(ROOT, "tests", "lib"))
sys.path.insert(0, os.path.join(ROOT, "tests"))
sys.path.insert(0, os.path.join(ROOT, "fuzz"))
import dktest  # noqa: E402
from test_corpus import mutate, BOUNDARY32  # noqa: E402
from test_malformed import contract_problems, crash_problems  # noqa: E402
import seeds  # noqa: E402

MAX_SIZE = 256 * 1024
HANG_SECONDS = 20.0   # a run is killed (and reported as a hang) after this many seconds times DK_SLOW
SLOW_SECONDS = 2.0    # runs above this (CPU or wall) are reported
MACHO_CMDS = ["info", "loadcmds", "segments", "symbols", "dylibs", "exports", "fixups", "chains", "opcodes", "stubs",
              "objc", "verify", "resolve", "cache build"]
CACHE_CMDS = ["cache info", "cache mappings", "cache images", "cache slide", "cache addr", "cache symbols", "cache patches",
              "cache extract", "info@0", "symbols@0", "exports@0", "fixups@0", "stubs@0", "objc@0"]
FINDING_CMDS = ("verify", "resolve")


def run(args, timeout):
    """(rc or None when killed, stdout, stderr, wall seconds, cpu seconds)."""
    rc, out, err, wall, ru = dktest.run_measured(args, timeout, keep=256 << 20)
    return rc, out, err, wall, ru.ru_utime + ru.ru_stime


class Server:
    """One fuzz/cli_server process (per worker thread): each run is a fork of it."""

    def __init__(self, path, timeout):
        env = dict(os.environ, DK_CLI_TIMEOUT=str(timeout))
        self.p = subprocess.Popen([path], stdin=subprocess.PIPE, stdout=subprocess.PIPE, env=env)

    def run(self, args):
        self.p.stdin.write(b"\x1f".join(a.encode() for a in args) + b"\n")
        self.p.stdin.flush()
        head = self.p.stdout.readline().split()
        if len(head) != 6:
            raise RuntimeError("cli_server died")
        code, sig, wall, cpu, olen, elen = (int(x) for x in head)
        out = self.p.stdout.read(olen)
        err = self.p.stdout.read(elen)
        rc = -sig if sig else code
        if sig == 9:
            rc = None  # killed by the server's timeout
        return rc, out, err, wall / 1e6, cpu / 1e6

    def close(self):
        self.p.stdin.close()
        self.p.wait()


# ------------------------------------------------------------ cache mutants

def cache_regions(data):
    """Interesting byte ranges of a cache file: header and tables, slide info blobs."""
    out = [(0, min(len(data), 0x400))]
    try:
        mo, mc = struct.unpack("<II", data[0x10:0x18])
        out.append((mo, min(32 * mc, 0x400)))
        io, ic = struct.unpack("<II", data[0x18:0x20])
        if mo >= 0x1C8:
            io, ic = struct.unpack("<II", data[0x1C0:0x1C8])
        out.append((io, min(32 * ic, 0x800)))
        for _, _, blob, _ in seeds.slide_regions(data):
            k = data.find(blob[:64])
            if k > 0:
                out.append((k, min(len(blob), 0x1000)))
        # the patch table (patchInfoAddr, a VM address, when the header has it)
        if mo > 0xA8:
            pa, ps = struct.unpack("<QQ", data[0x98:0xA8])
            for m in range(mc):
                addr, size, foff = struct.unpack("<QQQ", data[mo + 32 * m:mo + 32 * m + 24])
                if pa and addr <= pa < addr + size:
                    out.append((foff + pa - addr, min(ps or 0x400, 0x1000)))
    except struct.error:
        pass
    return [(o, s) for o, s in out if 0 <= o < len(data) and s > 0]


def mutate_cache(data, rng):
    b = bytearray(data)
    regions = cache_regions(data)
    kind = rng.choice(("word", "word", "word", "qword", "flip", "flip", "trunc"))
    o, s = rng.choice(regions)
    off = min(o + (rng.randrange(s) & ~3), len(b) - 8)
    if kind == "word":
        val = rng.choice(BOUNDARY32 + (len(b), len(b) - 1, off))
        struct.pack_into("<I", b, off, val & 0xFFFFFFFF)
        return bytes(b), "u32 at 0x%x := 0x%x" % (off, val & 0xFFFFFFFF)
    if kind == "qword":
        val = rng.choice((0, 1, 0xFFFFFFFFFFFFFFFF, 0x8000000000000000, 1 << 32, len(b), struct.unpack_from("<Q", b, off)[0] + rng.choice((-8, 8, 0x1000, -0x1000))))
        struct.pack_into("<Q", b, off, val & 0xFFFFFFFFFFFFFFFF)
        return bytes(b), "u64 at 0x%x := 0x%x" % (off, val & 0xFFFFFFFFFFFFFFFF)
    if kind == "flip":
        offs = []
        for _ in range(rng.randint(1, 4)):
            oo, ss = rng.choice(regions)
            k = min(oo + rng.randrange(ss), len(b) - 1)
            b[k] ^= rng.randint(1, 255)
            offs.append(k)
        return bytes(b), "flip bytes at %s" % ",".join(hex(k) for k in offs)
    cut = rng.randrange(len(b))
    return bytes(b[:cut]), "truncate to 0x%x" % cut


def mutate_macho(data, rng):
    """tests/test_corpus.py's mutate(); plain byte flips where its parsing of a (malformed) source gives up."""
    state = rng.getstate()
    try:
        return mutate(data, rng)
    except (struct.error, ValueError, IndexError):
        rng.setstate(state)
        b = bytearray(data)
        offs = [rng.randrange(len(b)) for _ in range(rng.randint(1, 4))] if b else []
        for k in offs:
            b[k] ^= rng.randint(1, 255)
        return bytes(b), "flip bytes at %s" % ",".join(hex(k) for k in offs)


def cache_base(data):
    try:
        mo = struct.unpack("<I", data[0x10:0x14])[0]
        return struct.unpack("<Q", data[mo:mo + 8])[0]
    except struct.error:
        return 0


# ------------------------------------------------------------------ checks

def check(cmd, rc, out, err, path, json_out, wall, cpu):
    text = err.decode(errors="replace")
    probs = crash_problems(rc, text, HANG_SECONDS * dktest.SLOW)
    if probs:
        return probs
    if cmd == "cache extract" or (cmd in FINDING_CMDS and rc == 1):
        lines = text.splitlines()
        if rc == 1 and (not lines or not all(l.startswith("dyldkit: ") for l in lines)):
            probs.append("exit 1 with stderr not all 'dyldkit: ' lines: %r" % text[:300])
        if cmd in FINDING_CMDS and len(lines) != 1:
            probs.append("finding with %d stderr lines: %r" % (len(lines), text[:300]))
        if json_out and rc == 0:
            try:
                json.loads(out)
            except ValueError as e:
                probs.append("invalid JSON: %s" % e)
        return probs
    return contract_problems(rc, out, err, path, json_out)


def argv(cmd, path, json_out, extra):
    j = ["--json"] if json_out else []
    if cmd.endswith("@0"):
        return [cmd[:-2]] + j + [path + ":0"]
    if cmd == "resolve":
        return ["resolve"] + j + ["--root", extra["root"], "--all", path]
    if cmd == "cache slide":
        return ["cache", "slide"] + j + ["--pointers", path]
    if cmd == "cache addr":
        return ["cache", "addr"] + j + [path, "0x%x" % (extra["base"] + 0x1000)]
    if cmd == "cache extract":
        return ["cache", "extract", path, "--all", "-o", extra["out"], "-j", "1"]
    if cmd == "cache build":
        return ["cache", "build"] + j + ["--allow-unresolved", "-o", extra["out"] + ".cache", path]
    return cmd.split() + j + [path]


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--count", type=int, default=int(os.environ.get("DK_MUTATIONS", "10000")))
    ap.add_argument("--seed", type=int, default=int(os.environ.get("DK_SEED", "20240611")))
    ap.add_argument("--jobs", type=int, default=os.cpu_count() or 2)
    ap.add_argument("--first", type=int, default=0, help="start at mutant K (resume)")
    ap.add_argument("--keep", default=os.path.join(dktest.BUILD, "cli-mutants"))
    ap.add_argument("--report", default=os.path.join(dktest.BUILD, "cli-mutations.json"))
    ap.add_argument("--server", help="fuzz/cli_server binary: fork each run from it instead of starting DYLDKIT")
    ap.add_argument("--originals", action="store_true",
                    help="run the whole corpus unmutated instead (every Mach-O of any size, malformed ones too, and "
                         "every cache), each file twice: --json first and human first")
    a = ap.parse_args()

    rows = [r for r in dktest.corpus_manifest() if not r["path"].startswith("dyld_caches/")]
    macho = sorted(r["abspath"] for r in rows if int(r["size"]) <= MAX_SIZE)
    gen = os.path.join(dktest.BUILD, "fuzz-seeds")
    caches = [p for p in seeds.corpus_caches() if open(p, "rb").read(7) == b"dyld_v1"]
    caches += [p for p in seeds.gen_caches(gen, dktest.DYLDKIT) if seeds.FILE_SEP not in open(p, "rb").read()]
    if not macho or not caches:
        print("cli-mutations: corpus or caches missing (%d Mach-O files, %d caches)" % (len(macho), len(caches)))
        sys.exit(1)
    everything = sorted(r["abspath"] for r in rows) + caches
    cache_set = set(caches)
    originals = {}
    for p in ([] if a.originals else macho + caches):
        with open(p, "rb") as f:
            originals[p] = f.read()
    tmp = tempfile.mkdtemp(prefix="dk-climut-")
    root = os.path.join(tmp, "empty-root")
    os.makedirs(root)
    lock = threading.Lock()
    stats = {"mutants": 0, "cache_mutants": 0, "runs": 0, "rejected": 0, "failures": [], "slow": [],
             "max_cpu": 0.0, "max_wall": 0.0, "cpu_total": 0.0, "caches_built": 0}

    local = threading.local()

    def runner(args):
        if not a.server:
            return run([dktest.DYLDKIT] + args, HANG_SECONDS * dktest.SLOW)
        if not hasattr(local, "server"):
            local.server = Server(a.server, HANG_SECONDS * dktest.SLOW)
            with lock:
                servers.append(local.server)
        return local.server.run(args)

    servers = []

    def commands(path, is_cache, parity, extra):
        """Every command on PATH: (fails, slow runs, rejected by some command, built a cache, CPU sum, max CPU, max wall)."""
        fails, slow, rejected, built_ok = [], [], False, False
        cpu_sum, cpu_max, wall_max = 0.0, 0.0, 0.0
        cmds = CACHE_CMDS if is_cache else MACHO_CMDS
        for k, cmd in enumerate(cmds):
            json_out = (parity + k) % 2 == 0 and cmd != "cache extract"
            rc, out, err, wall, cpu = runner(argv(cmd, path, json_out, extra))
            rejected |= rc == 1
            cpu_sum += cpu
            cpu_max, wall_max = max(cpu_max, cpu), max(wall_max, wall)
            if cpu > SLOW_SECONDS or wall > SLOW_SECONDS:
                slow.append({"cmd": cmd, "cpu": round(cpu, 3), "wall": round(wall, 3)})
            probs = check(cmd, rc, out, err, path, json_out, wall, cpu)
            if cmd == "cache build":
                built = glob.glob(glob.escape(extra["out"] + ".cache") + "*")
                if rc != 0 and built:
                    probs.append("failed build left %s" % ", ".join(os.path.basename(b) for b in built))
                built_ok = rc == 0
                for b in built:
                    os.unlink(b)
            for pr in probs:
                fails.append("%s%s: %s" % (cmd, " --json" if json_out else "", pr))
        shutil.rmtree(extra["out"], ignore_errors=True)
        return fails, slow, rejected, built_ok, cpu_sum, cpu_max, wall_max

    def record(i, src, desc, is_cache, res):
        fails, slow, rejected, built_ok, cpu_sum, cpu_max, wall_max = res
        with lock:
            stats["mutants"] += 1
            stats["cache_mutants"] += is_cache
            stats["runs"] += len(CACHE_CMDS if is_cache else MACHO_CMDS)
            stats["rejected"] += rejected
            stats["caches_built"] += built_ok
            stats["cpu_total"] += cpu_sum
            stats["max_cpu"] = max(stats["max_cpu"], cpu_max)
            stats["max_wall"] = max(stats["max_wall"], wall_max)
            stats["slow"] += [dict(sl, mutant=i, source=os.path.relpath(src, ROOT + "/..")) for sl in slow]
            for fl in fails:
                stats["failures"].append({"mutant": i, "source": os.path.relpath(src, ROOT + "/.."), "mutation": desc,
                                          "problem": fl})
                print("FAIL: %s %s (%s) -> %s: %s" % ("original" if i is None else "mutant %d of" % i, src, desc,
                                                     a.keep, fl), flush=True)
            if stats["mutants"] % 500 == 0:
                print("cli-mutations: %d %s done" % (stats["mutants"], "files" if a.originals else "mutants"),
                      flush=True)

    def one(i):
        rng = random.Random("%d:%d" % (a.seed, i))
        is_cache = i % 10 == 9
        src = caches[(i // 10) % len(caches)] if is_cache else macho[(i - i // 10) % len(macho)]
        data, desc = (mutate_cache if is_cache else mutate_macho)(originals[src], rng)
        path = os.path.join(tmp, "m%05d-%s" % (i, os.path.basename(src)))
        with open(path, "wb") as f:
            f.write(data)
        res = commands(path, is_cache, i, {"root": root, "base": cache_base(data), "out": path + ".out"})
        if res[0]:
            os.makedirs(a.keep, exist_ok=True)
            shutil.copy(path, a.keep)
        os.unlink(path)
        record(i, src, desc, is_cache, res)

    def original(job):
        """An unmutated corpus file through every command, --json and human both ways round."""
        src, is_cache, parity = job
        with open(src, "rb") as f:
            head = f.read(0x1000)
        out = os.path.join(tmp, "o%d-%s.out" % (parity, os.path.basename(src)))
        record(None, src, "unmutated, %s first" % ("--json" if parity == 0 else "human"), is_cache,
               commands(src, is_cache, parity, {"root": root, "base": cache_base(head), "out": out}))

    t0 = time.time()
    try:
        with ThreadPoolExecutor(max_workers=a.jobs) as ex:
            if a.originals:
                jobs = [(p, p in cache_set, parity) for p in everything for parity in (0, 1)]
                list(ex.map(original, jobs))
            else:
                list(ex.map(one, range(a.first, a.count)))
    finally:
        for sv in servers:
            sv.close()
        shutil.rmtree(tmp, ignore_errors=True)
    stats.update({"originals": a.originals, "seed": a.seed, "first": a.first, "count": a.count,
                  "dyldkit": a.server or dktest.DYLDKIT,
                  "asan_options": os.environ.get("ASAN_OPTIONS", ""),
                  "seconds": round(time.time() - t0), "macho_sources": len(macho), "cache_sources": len(caches)})
    stats["slow"].sort(key=lambda s: -max(s["cpu"], s["wall"]))
    os.makedirs(os.path.dirname(os.path.abspath(a.report)), exist_ok=True)
    with open(a.report, "w") as f:
        json.dump(stats, f, indent=1)
    what = ("whole corpus unmutated: %d passes (%d of caches) over %d files, --json first and human first"
            % (stats["mutants"], stats["cache_mutants"], len(everything)) if a.originals else
            "%d mutants (%d of caches) of %d files, seed %d" % (stats["mutants"], stats["cache_mutants"],
                                                                 len(macho) + len(caches), a.seed))
    print("cli-mutations: %s, %d runs in %ds (%.0f CPU s); %d rejected by some command; %d built into a cache; "
          "max %.2fs CPU, %.2fs wall per run; %d runs over %gs; %d failures"
          % (what, stats["runs"], stats["seconds"], stats["cpu_total"], stats["rejected"], stats["caches_built"],
             stats["max_cpu"], stats["max_wall"], len(stats["slow"]), SLOW_SECONDS, len(stats["failures"])))
    sys.exit(1 if stats["failures"] else 0)


if __name__ == "__main__":
    main()
