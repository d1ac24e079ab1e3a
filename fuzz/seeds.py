#!/usr/bin/env python3
"""Seed inputs of a fuzz target, referenced, not copied.

    fuzz/seeds.py TARGET [--gen DIR] [--dyldkit PATH] [--max-size N]
                         [--sample N] [--seed S] [--link DIR]

prints the seed paths of TARGET, one per line:

  - Mach-O targets (macho symtab opcodes trie chained stubs objc universal
    loader): every file of the built fixtures (build/fixtures, or
    $DK_FIXTURES) and every Mach-O, universal file and archive listed in
    ../shared/corpus/MANIFEST.tsv, by path;
  - trie: also the raw export tries of those files, and slide: the raw
    slide-info regions of the caches below (both derived, written to --gen);
  - cache, extract: the dyld caches of the corpus by path, plus caches that
    `dyldkit cache build` (--dyldkit) makes from the fixtures into --gen (the
    split 1042 format joined into one input with FZ_FILE_SEP, see fuzz/fuzz.h).

Derived and built seeds live under --gen (default build/fuzz-seeds), never in
the repository.  --max-size drops larger files (default 1 MiB); --sample
keeps N of them, chosen with the random seed S (default 1), for quick runs;
--link DIR also symlinks them into DIR (how fuzz/run.sh hands them to libFuzzer).
"""
import argparse
import os
import random
import struct
import subprocess
import sys

ROOT = os.path.abspath(os.path.join(os.path.dirname(os.path.abspath(__file__)), ".."))
CORPUS = os.path.abspath(os.path.join(ROOT, "..", "shared", "corpus"))
FIXTURES = os.environ.get("DK_FIXTURES", os.path.join(ROOT, "build", "fixtures"))
FILE_SEP = b"\nDKFUZZ-FILE--\n"

MACHO_TARGETS = ("macho", "symtab", "opcodes", "trie", "chained", "stubs", "objc", "universal", "loader")
CACHE_TARGETS = ("cache", "extract")
TARGETS = MACHO_TARGETS + CACHE_TARGETS + ("slide",)

# Caches built from the fixtures: (name, fixture set, dylibs, extra `cache build` options)
CACHE_LIBS = ["libminidep.dylib", "libminic.dylib", "libinner.dylib", "libouter.dylib", "libclient.dylib",
              "libshapes.dylib"]
BUILT_CACHES = [
    ("arm64-chained-832", "arm64-chained", CACHE_LIBS, []),
    ("arm64-classic-1042", "arm64-classic", CACHE_LIBS, ["--format", "1042"]),
    ("x86_64-classic-832", "x86_64-classic", CACHE_LIBS[:4], []),
    ("x86_64-chained-v1", "x86_64-chained", CACHE_LIBS[:2], ["--slide", "v1"]),
    ("arm64-classic-small", "arm64-classic", CACHE_LIBS[:2], []),
]


def fixture_files():
    out = []
    for d, _, files in os.walk(FIXTURES):
        for f in files:
            if not f.startswith("."):
                out.append(os.path.join(d, f))
    return sorted(out)


def corpus_rows():
    path = os.path.join(CORPUS, "MANIFEST.tsv")
    if not os.path.exists(path):
        return []
    with open(path) as f:
        header = f.readline().rstrip("\n").split("\t")
        rows = [dict(zip(header, line.rstrip("\n").split("\t"))) for line in f]
    for r in rows:
        r["abspath"] = os.path.join(CORPUS, r["path"])
    return rows


def macho_files():
    files = fixture_files()
    files += [r["abspath"] for r in corpus_rows() if not r["path"].startswith("dyld_caches/")]
    return files


def corpus_caches():
    return [r["abspath"] for r in corpus_rows() if r["path"].startswith("dyld_caches/")]


# ------------------------------------------------------------ derived seeds

def export_tries(data):
    """(offset, size) of the export tries of a thin little-endian Mach-O."""
    if len(data) < 32:
        return []
    magic = struct.unpack("<I", data[:4])[0]
    if magic not in (0xFEEDFACE, 0xFEEDFACF):
        return []
    ncmds, sizeofcmds = struct.unpack("<II", data[16:24])
    pos = 32 if magic == 0xFEEDFACF else 28
    out = []
    for _ in range(min(ncmds, 1024)):
        if pos + 8 > len(data):
            break
        cmd, size = struct.unpack("<II", data[pos:pos + 8])
        if size < 8:
            break
        if cmd in (0x22, 0x80000022) and pos + 48 <= len(data):
            off, sz = struct.unpack("<II", data[pos + 40:pos + 48])
            out.append((off, sz))
        elif cmd == 0x80000033 and pos + 16 <= len(data):
            out.append(struct.unpack("<II", data[pos + 8:pos + 16]))
        pos += size
    return [(o, s) for o, s in out if s and o + s <= len(data)]


def gen_tries(gen):
    d = os.path.join(gen, "trie")
    os.makedirs(d, exist_ok=True)
    out = []
    for path in fixture_files():
        with open(path, "rb") as f:
            data = f.read()
        for k, (off, size) in enumerate(export_tries(data)):
            name = os.path.join(d, os.path.relpath(path, FIXTURES).replace("/", "_") + ".trie%d" % k)
            with open(name, "wb") as f:
                f.write(data[off:off + size])
            out.append(name)
    return out


def slide_regions(data):
    """(pointer size flag, blob, mapping bytes) for each mapping of a cache file with slide info."""
    if len(data) < 0x20 or not data.startswith(b"dyld_v1"):
        return []
    arch = data[7:16].split(b"\0")[0].strip()
    ptr4 = arch in (b"i386", b"armv7", b"armv7k", b"armv7s", b"arm64_32")
    mo, mc = struct.unpack("<II", data[0x10:0x18])
    maps = []
    for i in range(min(mc, 64)):
        if mo + 32 * (i + 1) > len(data):
            break
        maps.append(struct.unpack("<QQQ", data[mo + 32 * i: mo + 32 * i + 24]))
    slides = []
    if mo >= 0x140:
        wo, wc = struct.unpack("<II", data[0x138:0x140])
        for i in range(min(wc, len(maps))):
            e = wo + 56 * i
            if e + 56 <= len(data):
                so, ss = struct.unpack("<QQ", data[e + 24:e + 40])
                if so and ss:
                    slides.append((i, so, ss))
    elif len(maps) >= 2:
        so, ss = struct.unpack("<QQ", data[0x40:0x50])
        if so and ss:
            slides.append((1, so, ss))
    out = []
    for i, so, ss in slides:
        addr, size, foff = maps[i]
        if so + ss <= len(data) and foff + size <= len(data):
            out.append((ptr4, addr, data[so:so + ss], data[foff:foff + size]))
    return out


def gen_slides(gen, caches):
    d = os.path.join(gen, "slide")
    os.makedirs(d, exist_ok=True)
    out = []
    for path in caches:
        with open(path, "rb") as f:
            data = f.read().split(FILE_SEP)[0]
        for k, (ptr4, addr, blob, mapping) in enumerate(slide_regions(data)):
            name = os.path.join(d, os.path.basename(path) + ".slide%d" % k)
            with open(name, "wb") as f:  # layout of fuzz/fuzz_slide.c (mapping address: its default)
                f.write(bytes([1 if ptr4 else 0]) + struct.pack("<I", len(blob)) + blob + mapping)
            out.append(name)
    return out


def gen_caches(gen, dyldkit):
    """Build small caches from the fixtures; returns the seed files (split formats joined)."""
    d = os.path.join(gen, "cache")
    work = os.path.join(gen, "cache-build")
    os.makedirs(d, exist_ok=True)
    os.makedirs(work, exist_ok=True)
    out = []
    for name, fset, libs, opts in BUILT_CACHES:
        seed = os.path.join(d, name)
        inputs = [os.path.join(FIXTURES, fset, lib) for lib in libs]
        if not all(os.path.exists(p) for p in inputs):
            continue
        if os.path.exists(seed) and all(os.path.getmtime(seed) >= os.path.getmtime(p) for p in inputs + [dyldkit]):
            out.append(seed)
            continue
        base = os.path.join(work, name)
        for f in os.listdir(work):
            if f == name or f.startswith(name + "."):
                os.unlink(os.path.join(work, f))
        # seeds only: a sanitizer build's leak report must not cost the seed
        env = dict(os.environ, ASAN_OPTIONS=os.environ.get("ASAN_OPTIONS", "") + ":detect_leaks=0")
        p = subprocess.run([dyldkit, "cache", "build", "-o", base, "--allow-unresolved"] + opts + inputs,
                           stdout=subprocess.PIPE, stderr=subprocess.PIPE, env=env)
        if p.returncode != 0:
            print("seeds: cache build %s failed: %s" % (name, p.stderr.decode(errors="replace").strip()), file=sys.stderr)
            continue
        parts = [base] + sub_cache_files(base)
        blob = FILE_SEP.join(open(x, "rb").read() for x in parts)
        with open(seed, "wb") as f:
            f.write(blob)
        out.append(seed)
    return out


def sub_cache_files(base):
    """The files of a built cache besides BASE, in the order fz_write_cache names them."""
    with open(base, "rb") as f:
        h = f.read(0x400)
    mo = struct.unpack("<I", h[0x10:0x14])[0]
    files = []
    if mo >= 0x190:
        off, count = struct.unpack("<II", h[0x188:0x190])
        v2 = mo >= 0x1CC
        with open(base, "rb") as f:
            data = f.read()
        for i in range(count):
            if v2:
                e = off + 56 * i
                suffix = data[e + 24:e + 56].split(b"\0")[0].decode()
            else:
                suffix = ".%d" % (i + 1)
            files.append(base + suffix)
    if os.path.exists(base + ".symbols"):
        files.append(base + ".symbols")
    return [f for f in files if os.path.exists(f)]


def seeds(target, gen, dyldkit):
    if target in MACHO_TARGETS:
        out = macho_files()
        if target == "trie":
            out += gen_tries(gen)
        return out
    caches = corpus_caches()
    if dyldkit and os.path.exists(dyldkit):
        caches += gen_caches(gen, dyldkit)
    if target == "slide":
        return gen_slides(gen, caches)
    return caches


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("target", choices=TARGETS)
    ap.add_argument("--gen", default=os.path.join(ROOT, "build", "fuzz-seeds"))
    ap.add_argument("--dyldkit", default=os.environ.get("DYLDKIT", os.path.join(ROOT, "build", "dyldkit")))
    ap.add_argument("--max-size", type=int, default=1 << 20)
    ap.add_argument("--sample", type=int, default=0)
    ap.add_argument("--seed", type=int, default=1)
    ap.add_argument("--link", metavar="DIR", help="also symlink each seed into DIR (emptied first)")
    a = ap.parse_args()
    out = [p for p in seeds(a.target, a.gen, a.dyldkit) if os.path.getsize(p) <= a.max_size]
    if a.sample and len(out) > a.sample:
        out = sorted(random.Random(a.seed).sample(out, a.sample))
    if a.link:
        os.makedirs(a.link, exist_ok=True)
        for f in os.listdir(a.link):
            os.unlink(os.path.join(a.link, f))
        for i, p in enumerate(out):
            os.symlink(os.path.abspath(p), os.path.join(a.link, "%04d-%s" % (i + 1, os.path.basename(p))))
    for p in out:
        print(p)


if __name__ == "__main__":
    main()
