#!/usr/bin/env python3
"""cache extract, checked round trip against the dylibs the cache was built from.

Caches are built from the fixtures (x86_64 and arm64, classic and chained
inputs, formats 832 and 1042, slide info v1, the umbrella set, arm64_32), then every
image is extracted and compared with its ORIGINAL input dylib, address for
address by (segment, offset in segment):
  - every rebase comes back, with the same target (ObjC strings the builder
    coalesced are compared by content, wherever the extractor put them back);
  - every bind comes back with the same symbol, addend, weak flag and dylib,
    lazy binds as lazy binds (bypassed stubs and call sites are restored);
  - exports, nlist symbols, ObjC classes/methods/protocols are the same
    (protocol references the builder uniqued into another image point back
    at the image's own definitions);
  - llvm-objdump-22 reads every output without a complaint, `dyldkit verify`
    passes, and the code runs: `dyldkit call` executes the self-test
    libraries (natively on x86_64, under unicorn on arm64), whose selftest()
    checks rebases, binds with addends, re-exports, weak and flat lookups,
    TLVs and initializers from inside the extracted code.
The real Apple-built caches in the corpus are extracted too (llvm-objdump,
verify, ObjC metadata equal to the cache's own view), --fixups chained and
--sign are checked, and failures leave nothing behind.
"""
import json
import os
import re
import shutil
import stat
import struct
import sys
import tempfile

sys.path.insert(0, os.path.join(os.path.dirname(__file__), "lib"))
sys.path.insert(0, os.path.dirname(__file__))
import dktest  # noqa: E402
from test_cache_build import SETS, LIBS, UMBRELLA, Original, j  # noqa: E402
from test_codesign import parse_macho, check_blob  # noqa: E402

STRING_SECTIONS = ("__objc_methname", "__objc_classname", "__objc_methtype")
OBJDUMP_FLAGS = ["--macho", "--private-headers", "--rebase", "--bind", "--lazy-bind", "--weak-bind",
                 "--exports-trie", "--indirect-symbols", "--objc-meta-data"]


class Image(Original):
    """One Mach-O file as dyldkit reads it (test_cache_build.Original), plus where things are."""

    def __init__(self, path):
        super().__init__(path)
        self.fix = self.fix["fixups"]
        self.dylibs = {d["ordinal"]: d["name"] for d in self.dylibs}

    def seg_off(self, addr):
        """(segment name, offset) of ADDR; one past a segment's end stays with it."""
        for s in self.segs:
            if s["vmaddr"] <= addr < s["vmaddr"] + s["vmsize"]:
                return s["name"], addr - s["vmaddr"]
        for s in self.segs:
            if addr == s["vmaddr"] + s["vmsize"] and s["name"] != "__LINKEDIT":
                return s["name"], addr - s["vmaddr"]
        return None, addr

    def section(self, addr):
        x = self.section_of(addr)
        return x["name"] if x else None

    def meaning(self, f):
        """What fixup F means, independent of where the image lives."""
        if f["kind"] == "rebase":
            t = f["target"]
            if self.section(t) in STRING_SECTIONS or self.seg_off(t)[0] == "__OBJC_EXTRA":
                return ("rebase", "string", self.cstr(t), f.get("auth"))
            a = f.get("auth")
            return ("rebase",) + self.seg_off(t) + ((a["key"], a["diversity"], a["addr_div"]) if a else None,)
        dylib = self.dylibs.get(f.get("ordinal"), f.get("ordinal"))
        kind = "bind" if f["kind"] in ("bind", "lazy_bind", "weak_bind") else f["kind"]
        a = f.get("auth")
        return (kind, f.get("symbol"), f.get("addend", 0), bool(f.get("weak_import")), dylib,
                (a["key"], a["diversity"], a["addr_div"]) if a else None)

    def fixup_map(self):
        out = {}
        for f in self.fix:
            key = self.seg_off(f["address"])
            m = self.meaning(f)
            if f["kind"] == "rebase" and key in out:
                continue  # a lazy slot: its bind is what it means
            out[key] = m
        return out

    def lazy_slots(self):
        return {self.seg_off(f["address"]) for f in self.fix if f["kind"] == "lazy_bind"}


def objdump_clean(rep, path, label):
    rc, out, err = dktest.run([dktest.OBJDUMP] + OBJDUMP_FLAGS + [path], timeout=120)
    text = err.decode(errors="replace").strip()
    if rc != 0 and "bad segIndex (too large)" in text and sectionless_segments(path):
        # llvm-objdump indexes segments through their sections: a rebase in a segment
        # without sections (libobjc's __OBJC_RW) is "too large" to it; dyld reads it fine
        return True
    return rep.ok(rc == 0 and not text, "%s: llvm-objdump-22 exit %d: %s" % (label, rc, text[:300]))


ADRP_OR_LITERAL = re.compile(r"^\s*([0-9a-f]+):\s+(adrp\s+x\d+|ldr\s+x\d+), 0x([0-9a-f]+)", re.M)


def code_stays_inside(rep, path, label):
    """arm64: every ADRP page and literal load of the image's code (as llvm-objdump-22
    decodes it) lies in one of its own segments: nothing still aims at the cache's
    shared GOT slots, branch islands or other images' data."""
    segs = [(g["vmaddr"], g["vmaddr"] + g["vmsize"]) for g in j("segments", "--json", path)["segments"]]
    rc, out, _ = dktest.run([dktest.OBJDUMP, "-d", "--no-show-raw-insn", path], timeout=120)
    bad = []
    for m in ADRP_OR_LITERAL.finditer(out.decode(errors="replace")):
        t = int(m.group(3), 16)
        page = m.group(2).startswith("adrp")
        if not any((lo & ~0xFFF) <= t < hi if page else lo <= t < hi for lo, hi in segs):
            bad.append("%s %s 0x%x" % (m.group(1), m.group(2), t))
    return rep.ok(rc == 0 and not bad, "%s: code addressing outside the image: %s" % (label, bad[:4]))


LITERAL_OR_PAIR = re.compile(r"^\s*[0-9a-f]+:\s+(?:ldr\s+x\d+, 0x([0-9a-f]+)|adrp\s+x(\d+), 0x([0-9a-f]+)\n\s*[0-9a-f]+:\s+ldr\s+x\d+, \[x(\d+), #0x([0-9a-f]+)\])", re.M)


def code_selectors(path):
    """The selectors arm64 code loads, in code order: every LDR literal and adjacent
    ADRP+LDR (llvm-objdump-22's decoding) of a selector reference, by selector name."""
    refs = {r["address"]: r.get("selector") for r in j("objc", "--json", "--selectors", path).get("selrefs", [])}
    if not refs:
        return []
    rc, out, _ = dktest.run([dktest.OBJDUMP, "-d", "--no-show-raw-insn", path], timeout=120)
    names = []
    for m in LITERAL_OR_PAIR.finditer(out.decode(errors="replace")):
        if m.group(1):
            a = int(m.group(1), 16)
        elif m.group(2) == m.group(4):
            a = int(m.group(3), 16) + int(m.group(5), 16)
        else:
            continue
        if a in refs:
            names.append(refs[a])
    return names


def sectionless_segments(path):
    return any(not s["sections"] and s["name"] != "__LINKEDIT" for s in j("segments", "--json", path)["segments"])


def verify_ok(rep, path, label, *extra):
    rc, out, err = dktest.dk("verify", *extra, path, timeout=120)
    return rep.ok(rc == 0, "%s: dyldkit verify exit %d: %s %s" % (label, rc, out.decode(errors="replace")[-600:],
                                                                   err.decode(errors="replace").strip()))


def objc_view(path, info=False):
    """Classes/categories/protocols with method names and types, without addresses
    (and with INFO, the image info flags)."""
    rc, doc, err = dktest.dk_json("objc", "--json", path, timeout=120)
    if rc != 0:
        return None, err
    def meths(lst):
        return sorted((m["name"], m.get("types")) for m in lst or [])
    classes = sorted((c["name"], c.get("superclass"), tuple(meths(c.get("instance_methods"))), tuple(meths(c.get("class_methods"))))
                     for c in doc["classes"])
    protos = sorted((p["name"], tuple(meths(p.get("instance_methods"))), tuple(meths(p.get("class_methods"))),
                     tuple(meths(p.get("optional_instance_methods"))), tuple(meths(p.get("optional_class_methods"))))
                    for p in doc["protocols"])
    cats = sorted(c.get("name") or "" for c in doc["categories"])
    sels = sorted(s.get("selector") or s.get("name") or "" for s in doc.get("selrefs", []))
    view = (classes, protos, cats, sels)
    if info:  # the optimized-by-dyld bit (8) cleared again, the rest as it was
        view += ((doc.get("image_info") or {}).get("flags"),)
    return view, ""


def extract(rep, cache, out, *opts):
    rc, stdout, err = dktest.dk("cache", "extract", cache, "--all", "-o", out, "--json", *opts, timeout=300)
    ok = rep.ok(rc == 0, "extract %s %s: exit %d %s" % (os.path.basename(cache), " ".join(opts), rc, err.decode(errors="replace").strip()))
    return json.loads(stdout) if ok else None


def compare(rep, orig_path, ext_path, label, lazy_expected=True, kept=(), ext=None):
    o, e = Image(orig_path), ext or Image(ext_path)
    om, em = o.fixup_map(), e.fixup_map()
    problems = []
    for key, want in om.items():
        got = em.get(key)
        if got is None:
            problems.append("%s+0x%x: %r missing" % (key[0], key[1], want))
        elif got != want and key in kept and got[:-1] == want[:-1] and got[-1] is None:
            # an import the cache kept unresolved (or a missing weak import) is a classic
            # bind opcode in the cache, which has no room for pointer authentication
            continue
        elif got != want:
            problems.append("%s+0x%x: %r, expected %r" % (key[0], key[1], got, want))
    for key, got in em.items():
        if key not in om and key[0] != "__OBJC_EXTRA":
            problems.append("%s+0x%x: extra %r" % (key[0], key[1], got))
    if lazy_expected:
        missing = o.lazy_slots() - e.lazy_slots()
        if missing:
            problems.append("lazy binds not restored at %s" % sorted(missing)[:4])
    rep.ok(not problems, "%s: %d fixups round trip; %s" % (label, len(om), "; ".join(problems[:6])))
    # exports: same names, flags and (segment, offset)
    bad = []
    for name, x in o.exports.items():
        y = e.exports.get(name)
        if y is None:
            bad.append("%s missing" % name)
        elif x["flags"] != y["flags"]:
            bad.append("%s flags %s vs %s" % (name, y["flags"], x["flags"]))
        elif "absolute" not in x["flags"] and "reexport" not in x["flags"] and o.seg_off(x["address"]) != e.seg_off(y["address"]):
            bad.append("%s at %s, expected %s" % (name, e.seg_off(y["address"]), o.seg_off(x["address"])))
    bad += ["%s extra" % n for n in e.exports if n not in o.exports]
    rep.ok(not bad, "%s: %d exports preserved; %s" % (label, len(o.exports), "; ".join(bad[:6])))
    # every named nlist symbol of the original (locals from the unmapped table included)
    osyms = {s["name"] for s in j("symbols", "--json", orig_path)["symbols"] if s["name"] and s["kind"] != "stab"}
    esyms = {s["name"] for s in j("symbols", "--json", ext_path)["symbols"]}
    rep.ok(osyms <= esyms, "%s: symbols missing: %s" % (label, sorted(osyms - esyms)[:6]))
    # ObjC metadata reads the same
    ov, oerr = objc_view(orig_path, info=True)
    if ov is not None and (ov[0] or ov[1] or ov[2]):
        ev, eerr = objc_view(ext_path, info=True)
        rep.ok(ev == ov, "%s: ObjC metadata differs: %s %s" % (label, eerr.strip(), diff_objc(ov, ev)))
    return len(om)


def diff_objc(a, b):
    if b is None:
        return "unreadable"
    names = ("classes", "protocols", "categories", "selrefs", "image info flags")
    return "; ".join("%s: %s vs %s" % (n, str(x)[:200], str(y)[:200]) for n, x, y in zip(names, a, b) if x != y)


def call(*args):
    rc, out, err = dktest.dk("call", *args, timeout=120)
    return rc, out.decode(errors="replace"), err.decode(errors="replace")


def check_set(rep, tmp, s, fmt_opts, label, inputs, rpath_dir=True, *extract_opts):
    cache = os.path.join(tmp, label.replace("/", "-"))
    rc, _, err = dktest.dk("cache", "build", "-o", cache, *fmt_opts, *inputs, timeout=300)
    if not rep.ok(rc == 0, "cache build %s: %s" % (label, err.decode(errors="replace").strip())):
        return 0
    out = cache + ".x"
    doc = extract(rep, cache, out, *extract_opts)
    if not doc:
        return 0
    rep.ok(doc["failed"] == 0 and doc["images"] == len(inputs) and doc["unresolved_pointers"] == 0,
           "%s: %d images, %d failed, %d unresolved pointers" % (label, doc["images"], doc["failed"], doc["unresolved_pointers"]))
    by_install = {f["install_name"]: f["path"] for f in doc["files"] if "path" in f}
    if any(p.endswith("libshapes_ptrlists.dylib") for p in inputs):
        # the builder uniqued libshapes_ptrlists' protocols into libshapes: they must come back
        rep.ok(doc["protocols_restored"] >= 3, "%s: %d protocol references restored" % (label, doc["protocols_restored"]))
    n = 0
    for path in inputs:
        install = j("info", "--json", path)["install_name"]
        ext = by_install.get(install)
        if not rep.ok(ext and os.path.exists(ext), "%s: %s not extracted" % (label, install)):
            continue
        rep.ok(ext == os.path.join(out, install.lstrip("/")), "%s: %s written at %s" % (label, install, ext))
        what = "%s %s" % (label, install)
        objdump_clean(rep, ext, what)
        verify_ok(rep, ext, what)
        if s.startswith("arm64"):
            code_stays_inside(rep, ext, what)
            # the builder makes selector loads direct (832) and extraction makes them loads again
            want, got = code_selectors(path), code_selectors(ext)
            rep.ok(want == got, "%s: code loads selectors %s, expected %s" % (what, got[:6], want[:6]))
        e = Image(ext)
        kept = {e.seg_off(f["address"]) for f in j("fixups", "--json", "%s:%s" % (cache, install))["fixups"] if f["kind"] != "rebase"}
        n += compare(rep, path, ext, what, kept=kept, ext=e)
    # run the code
    st = os.path.join(out, "@rpath", "libselftest.dylib")
    if os.path.exists(st):
        rc, o, e = call("-L", os.path.join(out, "@rpath"), st, "selftest")
        rep.ok(rc == 0 and o.strip().splitlines()[-1:] == ["0"], "%s: selftest() in the extracted libraries: exit %d, %r %s" % (label, rc, o[-200:], e.strip()))
    uc = os.path.join(out, "@rpath", "libumbclient.dylib")
    if os.path.exists(uc):
        rc, o, e = call("--root", out, uc, "umbrella_selftest")
        rep.ok(rc == 0 and o.strip().splitlines()[-1:] == ["0"], "%s: umbrella_selftest(): exit %d, %r %s" % (label, rc, o[-200:], e.strip()))
    return n


def check_got_uniquing(rep, tmp, s, inputs):
    """1042 arm64 and x86_64 caches unique GOT entries cache-wide (dsc-format.md 5.2): the builder
    re-aims code at shared slots and lists them in the patch table (v3 GOT uses); the
    extractor aims that code back at each image's own slots (check_set runs the result)."""
    label = "%s/got" % s
    cache = os.path.join(tmp, label.replace("/", "-"))
    rc, out, err = dktest.dk("cache", "build", "--json", "-o", cache, "--allow-unresolved", "--format", "1042", *inputs, timeout=300)
    if not rep.ok(rc == 0, "cache build %s: %s" % (label, err.decode(errors="replace").strip())):
        return
    b = json.loads(out)
    rep.ok(b["gots_uniqued"] > b["got_slots"] > 0 and b["got_loads_redirected"] > 0,
           "%s: %d GOT entries in %d shared slots, %d loads re-aimed" % (label, b["gots_uniqued"], b["got_slots"], b["got_loads_redirected"]))
    pt = j("cache", "patches", "--json", cache)
    got = [e for e in pt["entries"] if e["event"] == "got_use"]
    rep.ok(pt["version"] == 3 and len(got) == b["got_slots"], "%s: patch table v%d lists %d GOT uses for %d shared slots" %
           (label, pt["version"], len(got), b["got_slots"]))
    for e in got[:8]:
        # a shared slot belongs to no image and holds its export's address
        a = j("cache", "addr", "--json", cache, hex(e["location"]))
        rep.ok(a.get("image") is None, "%s: GOT slot 0x%x lies in image %s" % (label, e["location"], a.get("image")))
    x = extract(rep, cache, cache + ".x")
    if x:
        rep.ok(x["got_loads_restored"] > 0 and x["got_loads_lost"] == 0,
               "%s: %d GOT loads restored, %d lost" % (label, x["got_loads_restored"], x["got_loads_lost"]))
    rc, out, _ = dktest.dk("cache", "build", "--json", "-o", cache + "-off", "--allow-unresolved", "--format", "1042", "--no-unique-gots",
                           *inputs, timeout=300)
    rep.ok(rc == 0 and json.loads(out)["gots_uniqued"] == 0, "%s: --no-unique-gots still uniqued GOTs" % label)


def check_corpus_caches(rep, tmp):
    caches = [r for r in dktest.corpus_manifest() if r["path"].startswith("dyld_caches/") and "dyld_shared_cache" in r["path"]]
    for row in caches:
        cache = row["abspath"]
        name = os.path.basename(cache)
        out = os.path.join(tmp, "real-" + name)
        doc = extract(rep, cache, out)
        if not doc:
            continue
        rep.ok(doc["failed"] == 0 and doc["unresolved_pointers"] == 0,
               "%s: %d failed, %d unresolved pointers" % (name, doc["failed"], doc["unresolved_pointers"]))
        for f in doc["files"]:
            what = "%s %s" % (name, f["install_name"])
            if not rep.ok("path" in f, "%s: %s" % (what, f.get("error"))):
                continue
            objdump_clean(rep, f["path"], what)
            verify_ok(rep, f["path"], what)
            # the cache's own view of the ObjC metadata is what the extracted file shows
            cv, cerr = objc_view("%s:%s" % (cache, f["install_name"]))
            if cv is not None and (cv[0] or cv[1] or cv[2]):
                ev, eerr = objc_view(f["path"])
                rep.ok(ev == cv, "%s: ObjC metadata differs from the cache's: %s %s" % (what, eerr.strip(), diff_objc(cv, ev)))
            # stubs name what their slots bind (old caches zeroed the indirect symbol table)
            stubs = j("stubs", "--json", f["path"])
            bad = [s for s in stubs.get("stubs", []) if s.get("bind_symbol") and s.get("symbol") != s.get("bind_symbol")]
            rep.ok(not bad, "%s: stubs named apart from their binds: %s" % (what, bad[:3]))


def check_failures(rep, tmp, cache):
    # an unknown image: nothing written at all
    out = os.path.join(tmp, "fail-a")
    rc, o, e = dktest.dk("cache", "extract", cache, "libminic", "no_such_image", "-o", out)
    rep.ok(rc == 1 and b"no_such_image" in e and not os.path.exists(out), "unknown image: exit %d, %r, output left: %s" % (rc, e, os.path.exists(out)))
    # output directory is a file
    f = os.path.join(tmp, "a-file")
    open(f, "w").close()
    rc, o, e = dktest.dk("cache", "extract", cache, "libminic", "-o", f)
    rep.ok(rc == 1 and e.strip(), "-o names a file: exit %d, %r" % (rc, e))
    # a read-only directory: a clear error, no temporary files left behind
    if os.geteuid() != 0:
        ro = os.path.join(tmp, "ro")
        os.makedirs(os.path.join(ro, "@rpath"))
        os.chmod(os.path.join(ro, "@rpath"), stat.S_IRUSR | stat.S_IXUSR)
        rc, o, e = dktest.dk("cache", "extract", cache, "libminic", "-o", ro)
        left = os.listdir(os.path.join(ro, "@rpath"))
        os.chmod(os.path.join(ro, "@rpath"), stat.S_IRWXU)
        rep.ok(rc == 1 and e.strip() and not left, "read-only output: exit %d, %r, left %s" % (rc, e, left))
    # not a cache
    rc, o, e = dktest.dk("cache", "extract", os.path.join(dktest.FIXTURES, "arm64-chained", "libminic.dylib"), "--all", "-o", os.path.join(tmp, "fail-b"))
    rep.ok(rc == 1 and e.strip() and not os.path.exists(os.path.join(tmp, "fail-b")), "not a cache: exit %d, %r" % (rc, e))
    # usage
    for args in (["cache", "extract", cache], ["cache", "extract", cache, "--all"], ["cache", "extract", cache, "--all", "x", "-o", tmp],
                 ["cache", "extract", cache, "--all", "-o", tmp, "--fixups", "bogus"]):
        rc, o, e = dktest.dk(*args)
        rep.ok(rc == 2, "%s: exit %d (usage)" % (" ".join(args[2:]), rc))


def check_sign_and_chained(rep, tmp):
    s = "arm64-classic"
    inputs = [os.path.join(dktest.FIXTURES, s, lib) for lib in LIBS]
    cache = os.path.join(tmp, "sc")
    rc, _, err = dktest.dk("cache", "build", "-o", cache, "--allow-unresolved", "--format", "1042", *inputs, timeout=300)
    if not rep.ok(rc == 0, "cache build sc: %s" % err):
        return
    # classic inputs, written with chained fixups: same meaning, and it runs
    out = os.path.join(tmp, "sc-chained")
    doc = extract(rep, cache, out, "--fixups", "chained", "--sign")
    if not doc:
        return
    for path in inputs:
        install = j("info", "--json", path)["install_name"]
        ext = os.path.join(out, install.lstrip("/"))
        what = "chained+signed %s" % install
        rc, o, e = dktest.run([dktest.OBJDUMP, "--macho", "--chained-fixups", "--private-headers", ext])
        rep.ok(rc == 0 and not e.strip(), "%s: llvm-objdump-22 --chained-fixups: %s" % (what, e.decode(errors="replace").strip()))
        rep.ok(b"LC_DYLD_CHAINED_FIXUPS" in o and b"LC_DYLD_INFO" not in o, "%s: chained fixups only" % what)
        verify_ok(rep, ext, what)
        compare(rep, path, ext, what, lazy_expected=False)
        data = open(ext, "rb").read()
        m = parse_macho(data)
        if rep.ok(m and m["cs"], "%s: LC_CODE_SIGNATURE present" % what):
            check_blob(rep, what, data, m, os.path.basename(install))
    st = os.path.join(out, "@rpath", "libselftest.dylib")
    rc, o, e = call("-L", os.path.join(out, "@rpath"), st, "selftest")
    rep.ok(rc == 0 and o.strip().splitlines()[-1:] == ["0"], "chained+signed: selftest(): exit %d, %r %s" % (rc, o[-200:], e.strip()))


def main():
    rep = dktest.Report("extract")
    tmp = tempfile.mkdtemp(prefix="dk-extract-")
    total = 0
    # under the sanitizers (DK_SLOW > 1) one cache format per set keeps the run short
    formats = ("832", "1042") if dktest.SLOW <= 1 else ("1042",)
    try:
        for s in SETS:
            inputs = [os.path.join(dktest.FIXTURES, s, lib) for lib in LIBS]
            for fmt in formats:
                total += check_set(rep, tmp, s, ["--allow-unresolved", "--format", fmt], "%s/%s" % (s, fmt), inputs)
            uin = [os.path.join(dktest.FIXTURES, s, "umbrella", p) for p in UMBRELLA]
            total += check_set(rep, tmp, s, [], "%s/umbrella" % s, uin)
        # arm64e (the arm64 chained fixtures converted by tests/tools/mkarm64e): authenticated
        # pointers through slide info v3 and back into DYLD_CHAINED_PTR_ARM64E
        s = "arm64e-chained"
        if rep.ok(os.path.isdir(os.path.join(dktest.FIXTURES, s)), "fixtures %s built (tests/tools/mkarm64e)" % s):
            inputs = [os.path.join(dktest.FIXTURES, s, lib) for lib in LIBS]
            for fmt in formats:
                total += check_set(rep, tmp, s, ["--allow-unresolved", "--format", fmt], "%s/%s" % (s, fmt), inputs)
            # slide info v5 (the newer arm64e format: one value_add, no B keys)
            total += check_set(rep, tmp, s, ["--allow-unresolved", "--slide", "v5"], "%s/v5" % s, inputs)
            uin = [os.path.join(dktest.FIXTURES, s, "umbrella", p) for p in UMBRELLA]
            total += check_set(rep, tmp, s, [], "%s/umbrella" % s, uin)
        # slide info v1 on one set (the pointer values, not the layout, differ)
        s = "arm64-chained"
        inputs = [os.path.join(dktest.FIXTURES, s, lib) for lib in LIBS]
        total += check_set(rep, tmp, s, ["--allow-unresolved", "--slide", "v1"], "%s/v1" % s, inputs)
        # arm64_32 (ILP32: 4-byte pointers, slide info v4 by default)
        a32 = [os.path.join(dktest.FIXTURES, "misc", "arm64_32", lib) for lib in ("libminidep.dylib", "libminic.dylib")]
        for fmt in formats:
            total += check_set(rep, tmp, "arm64_32", ["--allow-unresolved", "--format", fmt], "arm64_32/%s" % fmt, a32)
        for s in ("arm64-chained", "arm64e-chained", "x86_64-chained"):
            # with the libSystem-shaped umbrella, so that several images import one symbol
            # from one dependency (GOT entries the builder coalesces into one slot)
            check_got_uniquing(rep, tmp, s, [os.path.join(dktest.FIXTURES, s, lib) for lib in LIBS] +
                               [os.path.join(dktest.FIXTURES, s, "umbrella", p) for p in UMBRELLA if p.startswith("root/")])
        check_sign_and_chained(rep, tmp)
        check_corpus_caches(rep, tmp)
        check_failures(rep, tmp, os.path.join(tmp, "arm64-chained-%s" % formats[0]))
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    print("extract: %d fixups compared round trip" % total)
    rep.finish()


if __name__ == "__main__":
    main()
