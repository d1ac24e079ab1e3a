#!/usr/bin/env python3
"""Corpus replay and mutation pass.

1. Every non-malformed corpus Mach-O (thin, universal, archive; not the dyld
   caches) goes through every inspection command, --json and human: each must
   exit 0, and --json must print one JSON document with "schema": 1.  For a
   universal file the JSON has "slices" in the order of the fat header, each
   with the "arch" of its fat_arch (archive slices: one per member, each with
   its "member").
2. Mutation pass: MUTATIONS deterministic mutants (byte flips, 32-bit fields set
   to boundary values in the load commands, truncations, ULEB stretches in the
   LINKEDIT streams, byte insertions/deletions) of a seeded sample of those
   files, written to a temporary directory, go through every command (--json
   or human, alternating) under the rules of tests/test_malformed.py: exit 0
   or 1, never a signal, sanitizer report or hang; on exit 1 an empty stdout
   and one `dyldkit: FILE: ...` line.  Failing mutants are kept in
   $DK_BUILD/mutants/ for replay.  Environment: DK_SEED (default 20240611),
   DK_MUTATIONS (default 2000, divided by DK_SLOW/2 for sanitizer builds).

Prints `corpus: N files ok` and `mutations: N mutants, seed S`.
"""
import json
import os
import random
import shutil
import struct
import sys
import tempfile
from concurrent.futures import ThreadPoolExecutor

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, os.path.join(HERE, "lib"))
sys.path.insert(0, HERE)
import dktest  # noqa: E402
from test_malformed import COMMANDS, contract_problems, run_cmd  # noqa: E402

SEED = int(os.environ.get("DK_SEED", "20240611"))
# Sanitizer builds (DK_SLOW > 1) run each process several times slower: fewer mutants keep the
# pass to a few minutes there (set DK_MUTATIONS to choose).
MUTATIONS = int(os.environ.get("DK_MUTATIONS", str(int(2000 / max(1.0, dktest.SLOW / 2)))))
SAMPLE_FILES = 60          # files the mutants are drawn from
# MANIFEST "exercises" tags the sample always covers, PER_STRATUM files each
STRATA = ("chained-fixups:64_OFFSET", "chained-fixups:64", "chained-fixups:32", "chained-fixups:ARM64E",
          "chained-fixups:ARM64E_USERLAND24", "arm64e-threaded-bind", "classic-dyld-info", "LC_DYLD_EXPORTS_TRIE",
          "fat/universal", "static-archive", "kext")
PER_STRATUM = 3
MAX_SAMPLE_SIZE = 256 * 1024  # keep each run short

# <mach/machine.h>: cputype -> {cpusubtype & ~CPU_SUBTYPE_MASK: name}, None = any subtype
ARCH_NAMES = {
    7: {3: "i386"},
    0x01000007: {3: "x86_64", 8: "x86_64h", None: "x86_64"},
    12: {0: "arm", 5: "armv4t", 6: "armv6", 7: "armv5", 8: "xscale", 9: "armv7", 10: "armv7f", 11: "armv7s",
         12: "armv7k", 13: "armv8", 14: "armv6m", 15: "armv7m", 16: "armv7em"},
    0x0100000C: {0: "arm64", 1: "arm64v8", 2: "arm64e"},
    0x0200000C: {None: "arm64_32"},
    18: {0: "ppc", 1: "ppc601", 2: "ppc602", 3: "ppc603", 4: "ppc603e", 5: "ppc603ev", 6: "ppc604", 7: "ppc604e",
         8: "ppc620", 9: "ppc750", 10: "ppc7400", 11: "ppc7450", 100: "ppc970"},
    0x01000012: {0: "ppc64", 100: "ppc970-64"},
    6: {None: "m68k"},
    11: {None: "hppa"},
    14: {None: "sparc"},
    13: {None: "m88k"},
    15: {None: "i860"},
}


def arch_name(cputype, cpusubtype):
    names = ARCH_NAMES.get(cputype)
    if names is None:
        return None
    sub = cpusubtype & 0x00FFFFFF
    return names.get(sub, names.get(None))


def fat_archs(data):
    """[(cputype, cpusubtype, offset, size)] in fat-header order, or None for a thin file."""
    if len(data) < 8:
        return None
    magic = struct.unpack(">I", data[:4])[0]
    if magic not in (0xCAFEBABE, 0xCAFEBABF):
        return None
    n = struct.unpack(">I", data[4:8])[0]
    out = []
    for i in range(n):
        if magic == 0xCAFEBABE:
            ct, cs, off, size, _ = struct.unpack(">iiIII", data[8 + 20 * i: 28 + 20 * i])
        else:
            ct, cs, off, size, _, _ = struct.unpack(">iiQQII", data[8 + 32 * i: 40 + 32 * i])
        out.append((ct & 0xFFFFFFFF, cs & 0xFFFFFFFF, off, size))
    return out


def check_slices(rep, path, data, cmd, doc):
    """A universal file's JSON lists its slices in fat-header order with each slice's arch
    (checked by name where ARCH_NAMES knows the cpusubtype)."""
    archs = fat_archs(data)
    if archs is None:
        rep.ok("slices" not in doc or data[:8] == b"!<arch>\n", "%s %s: thin file with slices" % (path, cmd))
        return
    if not rep.ok(isinstance(doc.get("slices"), list), "%s %s --json: universal file without slices" % (path, cmd)):
        return
    slices = doc["slices"]
    want = []  # expected arch per slice, expanding archive slices to their members
    k = 0
    for ct, cs, off, size in archs:
        name = arch_name(ct, cs)
        if data[off:off + 8] == b"!<arch>\n":
            # the members of this slice come next, each with "member"
            n = 0
            while k + n < len(slices) and "member" in slices[k + n] and (
                    name is None or slices[k + n].get("arch") == name):
                n += 1
            rep.ok(n > 0, "%s %s: archive slice %s has no members listed" % (path, cmd, name))
            want += [name] * n
            k += n
        else:
            want.append(name)
            k += 1
    rep.ok(len(slices) == len(want), "%s %s: %d slices, fat header has %d (members expanded)"
           % (path, cmd, len(slices), len(want)))
    for i, (s, w) in enumerate(zip(slices, want)):
        rep.ok(s.get("schema") == 1 and isinstance(s.get("arch"), str),
               "%s %s: slice %d without schema/arch" % (path, cmd, i))
        if w is not None:
            rep.ok(s.get("arch") == w, "%s %s: slice %d is %r, fat header order says %r"
                   % (path, cmd, i, s.get("arch"), w))


def corpus_pass(rep, rows):
    def one(row):
        res = []
        for cmd in COMMANDS:
            for json_out in (True, False):
                rc, out, err = run_cmd(cmd, row["abspath"], json_out, timeout=10)
                res.append((cmd, json_out, rc, out, err))
        return res

    nfiles = 0
    with ThreadPoolExecutor(max_workers=os.cpu_count() or 2) as ex:
        for row, res in zip(rows, ex.map(one, rows)):
            path = row["path"]
            good = True
            with open(row["abspath"], "rb") as f:
                data = f.read()
            for cmd, json_out, rc, out, err in res:
                what = "%s %s%s" % (path, cmd, " --json" if json_out else "")
                for pr in contract_problems(rc, out, err, row["abspath"], json_out):
                    good = rep.fail("%s: %s" % (what, pr))
                if rc != 0:
                    good = rep.fail("%s: exit %s on a valid file: %s" % (what, rc, err.decode(errors="replace").strip()[:300]))
                    continue
                if json_out:
                    try:
                        doc = json.loads(out)
                    except ValueError:
                        continue  # reported by contract_problems
                    check_slices(rep, path, data, cmd, doc)
            nfiles += good
    print("corpus: %d of %d files ok under every command" % (nfiles, len(rows)))


# ------------------------------------------------------------------ mutants

def linkedit_ranges(data, base=0):
    """File ranges of the opcode streams, export trie and chained fixups of the
    thin image at BASE (empty if it does not parse)."""
    out = []
    try:
        magic = struct.unpack("<I", data[base:base + 4])[0]
        if magic == 0xFEEDFACF:
            e, hsize = "<", 32
        elif magic == 0xFEEDFACE:
            e, hsize = "<", 28
        elif magic == 0xCFFAEDFE:
            e, hsize = ">", 32
        elif magic == 0xCEFAEDFE:
            e, hsize = ">", 28
        else:
            return out
        ncmds, sizeofcmds = struct.unpack(e + "II", data[base + 16: base + 24])
        pos = base + hsize
        for _ in range(min(ncmds, 512)):
            cmd, size = struct.unpack(e + "II", data[pos: pos + 8])
            if size < 8:
                break
            if cmd in (0x22, 0x80000022):
                vals = struct.unpack(e + "10I", data[pos + 8: pos + 48])
                out += [(base + vals[k], vals[k + 1]) for k in range(0, 10, 2) if vals[k + 1]]
            elif cmd in (0x80000033, 0x80000034):
                off, sz = struct.unpack(e + "II", data[pos + 8: pos + 16])
                if sz:
                    out.append((base + off, sz))
            pos += size
    except struct.error:
        pass
    return [(o, s) for o, s in out if 0 <= o < len(data) and s > 0]


def header_span(data, base=0):
    """Bytes [base, base+span) holding the mach header and load commands."""
    try:
        magic = struct.unpack("<I", data[base:base + 4])[0]
        e = "<" if magic in (0xFEEDFACF, 0xFEEDFACE) else ">"
        hsize = 32 if magic in (0xFEEDFACF, 0xCFFAEDFE) else 28
        sizeofcmds = struct.unpack(e + "I", data[base + 20: base + 24])[0]
        return e, min(hsize + sizeofcmds, len(data) - base)
    except struct.error:
        return "<", min(64, len(data) - base)


BOUNDARY32 = (0, 1, 2, 7, 8, 0x7F, 0x80, 0xFF, 0x100, 0xFFFF, 0x10000, 0x7FFFFFFF, 0x80000000, 0xFFFFFFF0,
              0xFFFFFFFE, 0xFFFFFFFF)


def mutate(data, rng):
    """One mutation of DATA; returns (bytes, description)."""
    b = bytearray(data)
    n = len(b)
    archs = fat_archs(data)
    base = 0
    if archs:
        ok = [a for a in archs if a[2] + 32 <= n]
        if ok and rng.random() < 0.8:
            base = rng.choice(ok)[2]
    e, span = header_span(data, base)
    span = max(span, 1)
    streams = linkedit_ranges(data, base)
    kind = rng.choice(("flip", "flip", "word", "word", "word", "trunc", "uleb", "uleb", "insert", "delete"))
    if kind == "uleb" and not streams:
        kind = "flip"
    if kind == "flip":
        offs = []
        for _ in range(rng.randint(1, 4)):
            if streams and rng.random() < 0.3:
                o, s = rng.choice(streams)
                off = o + rng.randrange(s)
            elif rng.random() < 0.6:
                off = base + rng.randrange(span)
            else:
                off = rng.randrange(n)
            off = min(off, n - 1)
            b[off] ^= rng.randint(1, 255)
            offs.append(off)
        return bytes(b), "flip bytes at %s" % ",".join(hex(o) for o in offs)
    if kind == "word":
        off = base + (rng.randrange(max(span, 4)) & ~3)
        off = min(off, n - 4) if n >= 4 else 0
        val = rng.choice(BOUNDARY32 + (n, n - 1, n + 1, off))
        if n >= 4:
            b[off:off + 4] = struct.pack(e + "I", val & 0xFFFFFFFF)
        return bytes(b), "u32 at 0x%x := 0x%x" % (off, val & 0xFFFFFFFF)
    if kind == "trunc":
        if rng.random() < 0.5 and span < n:
            cut = rng.randrange(base + span, n) if base + span < n else rng.randrange(n)
        else:
            cut = rng.randrange(n)
        return bytes(b[:cut]), "truncate to 0x%x" % cut
    if kind == "uleb":
        o, s = rng.choice(streams)
        off = o + rng.randrange(s)
        length = rng.randint(1, 12)
        for k in range(off, min(off + length, n)):
            b[k] |= 0x80
        if rng.random() < 0.3 and off + length < n:
            b[off + length] = 0x7F
        return bytes(b), "ULEB stretch of %d bytes at 0x%x" % (length, off)
    if kind == "insert":
        off = rng.choice((base + rng.randrange(span), rng.randrange(n)))
        ins = bytes(rng.choice((0, 0x80, 0xFF, rng.randrange(256))) for _ in range(rng.randint(1, 16)))
        return bytes(b[:off] + ins + b[off:]), "insert %d bytes at 0x%x" % (len(ins), off)
    off = rng.choice((base + rng.randrange(span), rng.randrange(n)))
    cnt = rng.randint(1, 16)
    return bytes(b[:off] + b[off + cnt:]), "delete %d bytes at 0x%x" % (cnt, off)


def mutation_pass(rep, rows):
    pool = sorted((r for r in rows if int(r["size"]) <= MAX_SAMPLE_SIZE), key=lambda r: r["path"])
    if not pool:
        return
    # a few files of every encoding the decoders walk, then random ones
    rng = random.Random(SEED)
    sample = []
    for tag in STRATA:
        have = [r for r in pool if tag in r.get("exercises", "") and r not in sample]
        sample += rng.sample(have, min(PER_STRATUM, len(have)))
    rest = [r for r in pool if r not in sample]
    sample += rng.sample(rest, max(0, min(SAMPLE_FILES - len(sample), len(rest))))
    originals = {}
    for r in sample:
        with open(r["abspath"], "rb") as f:
            originals[r["path"]] = f.read()
    keep = os.path.join(dktest.BUILD, "mutants")
    tmp = tempfile.mkdtemp(prefix="dyldkit-mutants-")

    def one(i):
        rng = random.Random("%d:%d" % (SEED, i))
        row = sample[i % len(sample)]
        data, desc = mutate(originals[row["path"]], rng)
        path = os.path.join(tmp, "m%05d-%s" % (i, os.path.basename(row["path"])))
        with open(path, "wb") as f:
            f.write(data)
        fails = []
        rejected = False
        for k, cmd in enumerate(COMMANDS):
            json_out = (i + k) % 2 == 0
            rc, out, err = run_cmd(cmd, path, json_out)
            rejected |= rc == 1
            for pr in contract_problems(rc, out, err, path, json_out):
                fails.append("%s%s: %s" % (cmd, " --json" if json_out else "", pr))
        if fails:
            os.makedirs(keep, exist_ok=True)
            shutil.copy(path, keep)
        os.unlink(path)
        return row["path"], desc, fails, rejected

    nrej = 0
    try:
        with ThreadPoolExecutor(max_workers=os.cpu_count() or 2) as ex:
            for i, (src, desc, fails, rejected) in enumerate(ex.map(one, range(MUTATIONS))):
                nrej += rejected
                if not fails:
                    rep.ok(True, "")
                for fl in fails:
                    rep.fail("mutant %d (seed %d) of %s, %s -> kept in %s: %s" % (i, SEED, src, desc, keep, fl))
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    print("mutations: %d mutants of %d files, seed %d, %d rejected by some command"
          % (MUTATIONS, len(sample), SEED, nrej))


def main():
    rep = dktest.Report("corpus")
    rows = [r for r in dktest.corpus_manifest()
            if r["malformed"] == "no" and not r["path"].startswith("dyld_caches/")]
    if not rows:
        print("corpus: not found at %s; skipped" % dktest.CORPUS)
        return
    corpus_pass(rep, rows)
    mutation_pass(rep, rows)
    rep.finish()


if __name__ == "__main__":
    main()
