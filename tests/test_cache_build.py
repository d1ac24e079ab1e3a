#!/usr/bin/env python3
"""cache build, checked independently of the builder.

Caches are built from the fixtures (x86_64 and arm64, classic and chained
inputs, the ObjC library, the umbrella set; formats 832 and 1042, several
slide-info versions).  Then, for every fixup of every input dylib, the value
the cache holds at the relocated location (decoded from the cache's slide
info by the reader, or read raw) must equal what the fixup means, computed
here in Python from the ORIGINAL dylibs: a rebase's target relocated by the
segment move, a bind's defining export (two-level lookup through
re-exports, flat and weak lookups, all over the original export tries) plus
its addend; unresolved imports hold 0 and stay binds.  Selector strings the
builder coalesced are compared by content; protocol lists and references
must point at the first image's definition of that protocol (uniquing).
Builds are deterministic.
"""
import json
import os
import shutil
import struct
import sys
import tempfile

sys.path.insert(0, os.path.join(os.path.dirname(__file__), "lib"))
import dktest  # noqa: E402

MASK56 = (1 << 56) - 1

SETS = ["x86_64-classic", "x86_64-chained", "arm64-classic", "arm64-chained"]
LIBS = ["libminidep.dylib", "libminic.dylib", "libinner.dylib", "libouter.dylib", "libclient.dylib", "libshapes.dylib",
        "libshapes_ptrlists.dylib", "libflat.dylib", "selftest/libstinner.dylib", "selftest/libstouter.dylib",
        "selftest/libstweak.dylib", "selftest/libselftest.dylib"]
UMBRELLA = ["root/usr/lib/system/libdyld.dylib", "root/usr/lib/system/libsystem_c.dylib",
            "root/usr/lib/system/libsystem_kernel.dylib", "root/usr/lib/system/libsystem_malloc.dylib",
            "root/usr/lib/libSystem.B.dylib", "libumbclient.dylib"]


def j(*args):
    rc, doc, err = dktest.dk_json(*args)
    if rc != 0:
        raise RuntimeError("dyldkit %s: %s" % (" ".join(args), err.strip()))
    return doc


class Cache:
    """Read a built cache through dyldkit's reader: mappings, slide pointers, raw bytes."""

    def __init__(self, path):
        self.path = path
        self.maps = j("cache", "mappings", "--json", path)["mappings"]
        self.files = {}
        d = os.path.dirname(path)
        for m in self.maps:
            if m["file"] not in self.files:
                with open(os.path.join(d, m["file"]), "rb") as f:
                    self.files[m["file"]] = f.read()
        self.ptrs = {}
        self.auth = {}  # arm64e: the key, diversity and address diversity slide info gives a pointer
        for m in j("cache", "slide", "--pointers", "--json", path)["mappings"]:
            for p in m["pointers"]:
                self.ptrs[p["address"]] = p["target"] | (p.get("high8", 0) << 56)
                if "auth" in p:
                    self.auth[p["address"]] = p["auth"]

    def read(self, addr, n):
        for m in self.maps:
            if m["address"] <= addr and addr + n <= m["address"] + m["size"]:
                off = m["file_offset"] + addr - m["address"]
                return self.files[m["file"]][off:off + n]
        return None

    def cstr(self, addr):
        out = b""
        while True:
            c = self.read(addr + len(out), 1)
            if not c or c == b"\0":
                return out
            out += c


class Original:
    """An input dylib as its own file describes it."""

    def __init__(self, path):
        self.path = path
        self.info = j("info", "--json", path)
        self.install = self.info["install_name"]
        self.segs = j("segments", "--json", path)["segments"]
        self.fix = j("fixups", "--json", path)
        self.exports = {e["name"]: e for e in j("exports", "--json", path)["exports"]}
        self.dylibs = j("dylibs", "--json", path)["dylibs"]
        with open(path, "rb") as f:
            self.data = f.read()

    def section_of(self, addr):
        for s in self.segs:
            for x in s["sections"]:
                if x["addr"] <= addr < x["addr"] + x["size"]:
                    return x
        return None

    def cstr(self, addr):
        for s in self.segs:
            if s["vmaddr"] <= addr < s["vmaddr"] + s["filesize"]:
                off = s["fileoff"] + addr - s["vmaddr"]
                end = self.data.index(b"\0", off)
                return self.data[off:end]
        return None


def seg_map(orig, cache_segs):
    """old segment vmaddr range -> new vmaddr, by segment name (the cache keeps the order)."""
    out = []
    for o, n in zip(orig.segs, cache_segs):
        assert o["name"] == n["name"], (o["name"], n["name"])
        out.append((o["vmaddr"], o["vmsize"], n["vmaddr"], o["name"]))
    return out


def xlate(smap, addr):
    for old, size, new, name in smap:
        if old <= addr < old + size:
            return new + addr - old
    for old, size, new, name in smap:  # one past the end of a segment stays with it
        if addr == old + size and name != "__LINKEDIT":
            return new + addr - old
    return None


def lookup(images, by_install, idx, sym, depth=0):
    """Two-level lookup of SYM in image IDX and what it re-exports: (image index, old address, flags) or None."""
    if depth > 32:
        return None
    im = images[idx]
    e = im.exports.get(sym)
    if e:
        if "reexport" in e["flags"]:
            dep = by_install.get(e["reexport_from"])
            return None if dep is None else lookup(images, by_install, dep, e["imported_name"], depth + 1)
        return idx, e.get("address"), e["flags"]
    for d in im.dylibs:
        if d["kind"] == "reexport" and d["name"] in by_install:
            r = lookup(images, by_install, by_install[d["name"]], sym, depth + 1)
            if r:
                return r
    return None


def rebase_target(im, f):
    t = f["target"]
    return t & MASK56 if im.fix["encoding"] != "chained" else t


def proto_name(im, target):
    """Name of the protocol_t at TARGET in an original image (its name field is a rebase)."""
    ptr = 8 if im.info["is64"] else 4
    for f in im.fix["fixups"]:
        if f["address"] == target + ptr and f["kind"] == "rebase":
            return im.cstr(rebase_target(im, f))
    return None


def canonical_protocols(images):
    """Protocol name -> (image index, old address) of its first definition in cache order:
    the cache builder points every protocol list and reference at that one (uniquing)."""
    out = {}
    for k, im in enumerate(images):
        for f in im.fix["fixups"]:
            sec = im.section_of(f["address"])
            if f["kind"] != "rebase" or not sec or sec["name"] != "__objc_protolist":
                continue
            t = rebase_target(im, f)
            name = proto_name(im, t)
            if name is not None and name not in out:
                out[name] = (k, t)
    return out


def check_cache(rep, cache_path, inputs, label):
    cache = Cache(cache_path)
    images = [Original(p) for p in inputs]
    protos = canonical_protocols(images)
    smaps = {}
    by_install = {im.install: i for i, im in enumerate(images)}
    listed = [i["path"] for i in j("cache", "images", "--json", cache_path)["images"]]
    rep.ok(listed == [im.install for im in images], "%s: image table lists the inputs in order" % label)
    checked = 0
    problems = []
    for i, im in enumerate(images):
        spec = "%s:%d" % (cache_path, i)
        csegs = j("segments", "--json", spec)["segments"]
        smap = seg_map(im, csegs)
        smaps[i] = smap
        cfix = j("fixups", "--json", spec)
        kept = {(f["symbol"], f["address"]) for f in cfix["fixups"] if f["kind"] != "rebase"}
        # several records at one address: the last kind applied wins (as dyld applies them)
        order = {"rebase": 0, "bind": 1, "lazy_bind": 2, "weak_bind": 3}
        final = {}
        for f in im.fix["fixups"]:
            if f.get("strong"):
                continue
            if f["address"] not in final or order[f["kind"]] >= order[final[f["address"]]["kind"]]:
                final[f["address"]] = f
        for addr, f in sorted(final.items()):
            loc = xlate(smap, addr)
            if loc is None:
                problems.append("%s: fixup 0x%x not relocated" % (im.install, addr))
                continue
            got = cache.ptrs.get(loc)
            raw = cache.read(loc, 8 if im.info["is64"] else 4)
            rawv = int.from_bytes(raw, "little") if raw else None
            if f["kind"] == "rebase":
                t = f["target"]
                high8 = f.get("high8", 0)
                if im.fix["encoding"] != "chained":
                    high8, t = t >> 56, t & MASK56
                sec = im.section_of(t)
                if sec and sec["name"] == "__objc_methname":
                    # coalesced into the shared selector strings: same text
                    want = im.cstr(t)
                    ok = got is not None and cache.cstr(got & MASK56) == want
                    if not ok:
                        problems.append("%s: 0x%x -> selector %r, cache has %r" % (im.install, addr, want, got and cache.cstr(got & MASK56)))
                    checked += 1
                    continue
                nt = xlate(smap, t)
                want = None if nt is None else nt | (high8 << 56)
                lsec = im.section_of(addr)
                if lsec and lsec["name"] in ("__objc_protolist", "__objc_protorefs") and proto_name(im, t) in protos:
                    # protocol uniquing: the first image's definition of that name
                    k, ot = protos[proto_name(im, t)]
                    if k not in smaps:
                        smaps[k] = seg_map(images[k], j("segments", "--json", "%s:%d" % (cache_path, k))["segments"])
                    want = xlate(smaps[k], ot)
            else:
                ordinal = -3 if f["kind"] == "weak_bind" else f["ordinal"]
                r = None
                if ordinal > 0:
                    inst = im.dylibs[ordinal - 1]["name"]
                    if inst in by_install:
                        r = lookup(images, by_install, by_install[inst], f["symbol"])
                elif ordinal == 0:
                    r = lookup(images, by_install, i, f["symbol"])
                elif ordinal in (-2, -3):
                    if ordinal == -2 and (f["symbol"], loc) in kept:
                        r = None  # flat lookups stay binds with --allow-unresolved
                    else:
                        for k in range(len(images)):
                            e = images[k].exports.get(f["symbol"])
                            if e and "reexport" not in e["flags"]:
                                r = (k, e.get("address"), e["flags"])
                                break
                if r is None:
                    want = 0
                    if not f["weak_import"] and (f["symbol"], loc) not in kept:
                        problems.append("%s: unresolved %s at 0x%x is not kept as a bind" % (im.install, f["symbol"], addr))
                elif "absolute" in r[2]:
                    want = (r[1] + f["addend"]) & ((1 << 64) - 1)
                else:
                    dsmap = seg_map(images[r[0]], j("segments", "--json", "%s:%d" % (cache_path, r[0]))["segments"])
                    want = (xlate(dsmap, r[1]) + f["addend"]) & ((1 << 64) - 1)
            value = got if got is not None else rawv
            if want is None or value != want:
                problems.append("%s: %s at 0x%x (new 0x%x): cache holds %s, expected %s" % (
                    im.install, f["kind"], addr, loc, value if value is None else hex(value), want if want is None else hex(want)))
            elif got is not None and cache.auth.get(loc) != f.get("auth"):
                # arm64e: slide info v3/v5 keep each authenticated pointer's signing data
                problems.append("%s: %s at 0x%x (new 0x%x): cache signs it %s, the dylib %s" % (
                    im.install, f["kind"], addr, loc, cache.auth.get(loc), f.get("auth")))
            checked += 1
        # every export is still found in the cache image
        cexp = {e["name"] for e in j("exports", "--json", spec)["exports"]}
        rep.ok(cexp == set(im.exports), "%s %s: export names preserved" % (label, im.install))
    rep.ok(not problems, "%s: %d pointers checked; %s" % (label, checked, "; ".join(problems[:6])))
    return checked


def build(rep, out, inputs, *opts):
    rc, stdout, err = dktest.dk("cache", "build", "-o", out, *opts, *inputs, timeout=120)
    return rep.ok(rc == 0, "cache build %s %s: %s" % (" ".join(opts), os.path.basename(out), err.decode(errors="replace").strip()))


def main():
    rep = dktest.Report("cache-build")
    tmp = tempfile.mkdtemp(prefix="dk-build-")
    total = 0
    try:
        for s in SETS:
            inputs = [os.path.join(dktest.FIXTURES, s, lib) for lib in LIBS]
            for fmt in ("832", "1042"):
                out = os.path.join(tmp, "%s-%s" % (s, fmt))
                if build(rep, out, inputs, "--allow-unresolved", "--format", fmt):
                    total += check_cache(rep, out, inputs, "%s/%s" % (s, fmt))
            # slide info v1 for a 64-bit cache
            out = os.path.join(tmp, "%s-v1" % s)
            if build(rep, out, inputs, "--allow-unresolved", "--slide", "v1"):
                total += check_cache(rep, out, inputs, "%s/v1" % s)
            # the umbrella set needs nothing outside it
            base = os.path.join(dktest.FIXTURES, s, "umbrella")
            uin = [os.path.join(base, p) for p in UMBRELLA]
            out = os.path.join(tmp, "%s-umbrella" % s)
            if build(rep, out, uin):
                total += check_cache(rep, out, uin, "%s/umbrella" % s)
        # arm64e (tests/tools/mkarm64e's conversions): slide info v3 (the default) and v5,
        # authenticated pointers keeping their key, diversity and address diversity
        s = "arm64e-chained"
        inputs = [os.path.join(dktest.FIXTURES, s, lib) for lib in LIBS]
        for opts in (("--format", "832"), ("--format", "1042"), ("--slide", "v5")):
            out = os.path.join(tmp, "%s-%s" % (s, opts[1]))
            if build(rep, out, inputs, "--allow-unresolved", *opts):
                total += check_cache(rep, out, inputs, "%s/%s" % (s, opts[1]))
        # determinism: the same inputs give byte-identical caches
        s = "arm64-chained"
        inputs = [os.path.join(dktest.FIXTURES, s, lib) for lib in LIBS]
        a, b = os.path.join(tmp, "det-a"), os.path.join(tmp, "det-b")
        if build(rep, a, inputs, "--allow-unresolved", "--format", "1042") and build(rep, b, inputs, "--allow-unresolved", "--format", "1042"):
            for suf in ("", ".01", ".dyldlinkedit", ".symbols"):
                rep.ok(open(a + suf, "rb").read() == open(b + suf, "rb").read(), "deterministic %s" % suf)
        # failures name what is missing
        rc, out, err = dktest.dk("cache", "build", "-o", os.path.join(tmp, "x"), inputs[1])
        rep.ok(rc == 1 and b"libminidep" in err and not os.path.exists(os.path.join(tmp, "x")),
               "missing dependency named, no output: %r" % err)
        rc, out, err = dktest.dk("cache", "build", "-o", os.path.join(tmp, "y"),
                                 os.path.join(dktest.FIXTURES, "arm64-chained", "libminidep.dylib"),
                                 os.path.join(dktest.FIXTURES, "x86_64-chained", "libminic.dylib"))
        rep.ok(rc == 1 and (b"architecture" in err or b"slice" in err), "mixed architectures refused: %r" % err)
        # bounded memory: a zero-fill segment of 36 TB (fuzz-cli mutant 881 of bind2.macho-x86_64
        # had one) is refused before anything is allocated (ASan aborted on the calloc)
        data = bytearray(open(os.path.join(dktest.FIXTURES, "x86_64-chained", "libminidep.dylib"), "rb").read())
        off = 32
        for _ in range(struct.unpack_from("<I", data, 16)[0]):
            cmd, size = struct.unpack_from("<II", data, off)
            if cmd == 0x19 and data[off + 8:off + 24].rstrip(b"\0") == b"__DATA":
                struct.pack_into("<Q", data, off + 32, 0x20B700000000)
            off += size
        huge = os.path.join(tmp, "libhuge.dylib")
        with open(huge, "wb") as f:
            f.write(data)
        rc, out, err = dktest.dk("cache", "build", "--allow-unresolved", "-o", os.path.join(tmp, "h"), huge)
        rep.ok(rc == 1 and b"segment __DATA is 0x20b700000000 bytes" in err and huge.encode() in err
               and not os.path.exists(os.path.join(tmp, "h")), "36 TB segment refused: %r" % err)
        # a dylib the builder cannot take is named in the one error line, whichever stage
        # finds the problem (the inputs, the export tries, the slide info encoding)
        for rel, why in (("macho/gimli-object-testfiles/macho/fixup-chains-armv7k.dylib", b"cannot build a cache for it"),
                         ("macho/llvm-project/llvm/test/tools/llvm-objdump/MachO/Inputs/macho-trie-node-loop",
                          b"export trie: node at offset 0x5 reached twice"),
                         ("macho/llvm-project/llvm/test/tools/llvm-objdump/MachO/AArch64/Inputs/rel-method-lists-arm64_32.dylib",
                          b"DATA mapping: pointer at 0x")):
            src = os.path.join(dktest.CORPUS, rel)
            x = os.path.join(tmp, "named")
            rc, out, err = dktest.dk("cache", "build", "--allow-unresolved", "-o", x, src)
            lines = err.splitlines()
            rep.ok(rc == 1 and not out and len(lines) == 1 and src.encode() in lines[0] and why in lines[0]
                   and not os.path.exists(x), "%s refused, named in one line: %r" % (os.path.basename(rel), err))
    finally:
        shutil.rmtree(tmp)
    print("cache-build: %d pointers checked against the original dylibs" % total)
    rep.finish()


if __name__ == "__main__":
    main()
