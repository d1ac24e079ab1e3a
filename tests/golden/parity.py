#!/usr/bin/env python3
"""Golden comparison: dyldkit `fixups --json` and `exports --json` against
llvm-objdump-22 on every fixture and on every corpus file llvm-objdump decodes.

For classic dyld info llvm-objdump is run with --rebase --bind --lazy-bind
--weak-bind --exports-trie; for chained fixups with --dyld-info (it decodes
only DYLD_CHAINED_PTR_64 and _64_OFFSET).  Each slice of a universal file is
compared separately (--arch).  A difference is a failure unless it is listed
in KNOWN_LLVM_BUGS below with the reason.  Prints `parity: N/M`.
"""
import collections
import json
import os
import re
import sys
from concurrent.futures import ThreadPoolExecutor

sys.path.insert(0, os.path.join(os.path.dirname(__file__), "..", "lib"))
import dktest  # noqa: E402

# Differences that are llvm-objdump's, not ours: (path suffix, arch or None) -> (the only
# kind of difference allowed, reason).  Any other difference in these slices still fails.
KNOWN_LLVM_BUGS = {
    ("MachO/Inputs/weak-bind.macho-x86_64", "x86_64"): ("weak binds differ",
        "llvm-objdump re-applies the previous DO_BIND's pointer advance after a BIND_SYMBOL_FLAGS_NON_WEAK_DEFINITION "
        "record (MachOBindEntry::moveNext adds AdvanceAmount on every call), so it places the weak bind of __Znam at "
        "0x100001018; dyld's interpreter puts it at 0x100001010 (__la_symbol_ptr), which dyldkit reports"),
    ("MachO/Inputs/Objc2.32bit.exe.macho-i386", "i386"): ("rebases differ",
        "llvm-objdump misplaces i386 REBASE_TYPE_TEXT_ABSOLUTE32 rebases in __TEXT by __text's file offset (0x13c0): "
        "SET_SEGMENT_AND_OFFSET_ULEB(1, 0x2ff0) is __TEXT+0x2ff0 = 0x3ff0, the operand of the first `jmp *` in "
        "__symbol_stub; llvm prints 0x53b0, inside __objc_methtype strings"),
    ("x86_64-chained/libaddend64.dylib", "x86_64"): ("binds differ",
        "DYLD_CHAINED_IMPORT_ADDEND64: llvm-objdump decodes the weak flag and name offset of every import after the "
        "first from the wrong bits (MachOObjectFile reads weak as Raw>>17 and the name as (Raw>>16)&1), so it prints "
        "the first import's name with weak_import for all of them (inspectors.md A6.1); dyldkit reads "
        "lib_ordinal:16, weak:1, reserved:15, name_offset:32 as fixup-chains.h defines"),
    ("arm64-chained/libaddend64.dylib", "arm64"): ("binds differ",
        "the same llvm-objdump DYLD_CHAINED_IMPORT_ADDEND64 misdecoding as x86_64-chained/libaddend64.dylib"),
    ("mach0/libexpat.1.dylib", "i386"): ("rebases differ",
        "same llvm-objdump i386 TEXT_ABSOLUTE32 misplacement as Objc2.32bit.exe (off by __text's file offset 0x804)"),
}

SPECIAL = {0: "this-image", -1: "main-executable", -2: "flat-namespace", -3: "weak"}


def short_names(install):
    """The names llvm-objdump may print for a dylib (guessLibraryShortName)."""
    if install is None:
        return set()
    out = {install}
    base = install.rsplit("/", 1)[-1]
    out.add(base)
    m = re.search(r"([^/]+)\.framework/", install)
    if m:
        out.add(m.group(1))
    stem = base[:-6] if base.endswith(".dylib") else base
    out.add(stem)
    out.add(stem.split(".", 1)[0])
    for suf in ("_debug", "_profile"):
        for s in list(out):
            if s.endswith(suf):
                out.add(s[: -len(suf)])
    return out


def dylib_matches(llvm_name, ordinal, dylib):
    if ordinal in SPECIAL and ordinal <= 0:
        return llvm_name == SPECIAL[ordinal]
    return llvm_name in short_names(dylib)


RE_HEX = r"0x([0-9A-Fa-f]+)"


def parse_llvm_classic(text):
    """Rebase/bind/lazy/weak tables and the export trie from llvm-objdump text."""
    res = {"rebase": [], "bind": [], "lazy": [], "weak": [], "strong": [], "exports": []}
    section = None
    for line in text.splitlines():
        if line.endswith(":") and not line.startswith(" ") and not line.startswith("0x"):
            hdr = line.rstrip(":")
            section = {"Rebase table": "rebase", "Bind table": "bind", "Lazy bind table": "lazy",
                       "Weak bind table": "weak", "Exports trie": "exports"}.get(hdr, section if hdr not in
                                                                                    ("Exports trie",) else None)
            if hdr not in ("Rebase table", "Bind table", "Lazy bind table", "Weak bind table", "Exports trie"):
                section = None if not hdr.startswith("/") and " " in hdr else section
            continue
        if not line.strip() or line.startswith("segment "):
            continue
        if section == "rebase":
            f = line.split()
            res["rebase"].append((int(f[2], 16), " ".join(f[3:])))
        elif section == "bind":
            m = re.match(r"^(\S+)\s+(\S+)\s+0x([0-9A-Fa-f]+)\s+(pointer|text abs32|text rel32)\s+(-?\d+)\s+(\S+)\s+(.*?)( \(weak_import\))?$", line)
            if not m:
                raise ValueError("bind line: %r" % line)
            res["bind"].append((int(m.group(3), 16), m.group(4), int(m.group(5)), m.group(6), m.group(7), bool(m.group(8))))
        elif section == "lazy":
            m = re.match(r"^(\S+)\s+(\S+)\s+0x([0-9A-Fa-f]+)\s+(\S+)\s+(.*?)( \(weak_import\))?$", line)
            if not m:
                raise ValueError("lazy line: %r" % line)
            res["lazy"].append((int(m.group(3), 16), m.group(4), m.group(5)))
        elif section == "weak":
            m = re.match(r"^\s+strong\s+(.*)$", line)
            if m:
                res["strong"].append(m.group(1))
                continue
            m = re.match(r"^(\S+)\s+(\S+)\s+0x([0-9A-Fa-f]+)\s+(pointer|text abs32|text rel32)\s+(-?\d+)\s+(.*)$", line)
            if not m:
                raise ValueError("weak line: %r" % line)
            res["weak"].append((int(m.group(3), 16), m.group(4), int(m.group(5)), m.group(6)))
        elif section == "exports":
            res["exports"].append(parse_export_line(line))
    return res


def parse_export_line(line):
    m = re.match(r"^\[re-export\] (.*) \((?:(.*) )?from (\S+)\)$", line)
    if m:
        return ("reexport", m.group(1), m.group(2), m.group(3))
    m = re.match(r"^0x([0-9A-Fa-f]+)  (.*?)(?: \[([^\]]*)\])?$", line)
    if not m:
        raise ValueError("export line: %r" % line)
    flags = set()
    resolver = None
    if m.group(3):
        for part in m.group(3).split(", "):
            if part.startswith("resolver="):
                resolver = int(part.split("=", 1)[1], 16)
            else:
                flags.add(part)
    return ("export", m.group(2), int(m.group(1), 16), frozenset(flags), resolver)


def parse_llvm_dyldinfo(text):
    rows = []
    started = False
    for line in text.splitlines():
        if line.startswith("dyld information:"):
            started = True
            continue
        if not started or line.startswith("segment ") or not line.strip():
            continue
        f = line.split()
        if len(f) >= 6 and f[4] == "rebase":
            rows.append(("rebase", int(f[2], 16), int(f[5], 16)))
        elif len(f) >= 7 and f[4] == "bind":
            weak = line.endswith("(weak import)")
            if weak:
                f = line[: -len(" (weak import)")].split()
            # dylib short names may contain spaces ("Electron Framework"); symbols do not
            addend = int(f[5], 16)
            if addend >= 1 << 63:  # llvm prints the 64-bit addend as unsigned hex
                addend -= 1 << 64
            rows.append(("bind", int(f[2], 16), addend, " ".join(f[6:-1]), f[-1], weak))
        else:
            raise ValueError("dyld-info line: %r" % line)
    return rows


TYPES = {None: "pointer", "text_absolute32": "text abs32", "text_pcrel32": "text rel32"}


def ours_classic(fix, exports):
    res = {"rebase": [], "bind": [], "lazy": [], "weak": [], "strong": []}
    for f in fix["fixups"]:
        k = f["kind"]
        t = TYPES[f.get("type")]
        if k == "rebase":
            res["rebase"].append((f["address"], t))
        elif k == "bind":
            res["bind"].append((f["address"], t, f["addend"], f["ordinal"], f["dylib"], f["symbol"], f["weak_import"]))
        elif k == "lazy_bind":
            res["lazy"].append((f["address"], f["ordinal"], f["dylib"], f["symbol"]))
        elif k == "weak_bind":
            if f.get("strong"):
                res["strong"].append(f["symbol"])
            else:
                res["weak"].append((f["address"], t, f["addend"], f["symbol"]))
    return res


def compare_multisets(name, a, b, problems, limit=5):
    ca, cb = collections.Counter(a), collections.Counter(b)
    if ca != cb:
        only_a = list((ca - cb).elements())[:limit]
        only_b = list((cb - ca).elements())[:limit]
        problems.append("%s differ: llvm-only %s; dyldkit-only %s" % (name, only_a, only_b))


def compare_exports(llvm_exports, ours, problems):
    lv = []
    for e in llvm_exports:
        if e[0] == "reexport":
            lv.append(("reexport", e[1], e[2] or e[1], e[3]))
        else:
            lv.append(("export", e[1], e[2], e[3], e[4]))
    us = []
    for e in ours:
        fl = set(e["flags"])
        if "reexport" in fl:
            us.append(("reexport", e["name"], e["imported_name"], e["reexport_from"]))
        else:
            lf = set()
            if "weak" in fl:
                lf.add("weak_def")
            if "tls" in fl:
                lf.add("per-thread")
            if "absolute" in fl:
                lf.add("absolute")
            us.append(("export", e["name"], e["address"], frozenset(lf), e.get("resolver")))
    # match re-export dylib names through the short-name rule
    lv_norm, us_norm = [], []
    for e in lv:
        lv_norm.append(e[:3] + ("*",) if e[0] == "reexport" else e)
    for e in us:
        us_norm.append(e[:3] + ("*",) if e[0] == "reexport" else e)
    compare_multisets("exports", lv_norm, us_norm, problems)
    lre = sorted((e[1], e[3]) for e in lv if e[0] == "reexport")
    ure = sorted((e[1], e[3]) for e in us if e[0] == "reexport")
    for (n1, d1), (n2, d2) in zip(lre, ure):
        if n1 == n2 and d1 not in short_names(d2):
            problems.append("re-export %s: llvm says from %s, dyldkit %s" % (n1, d1, d2))


def check_slice(path, arch, multi):
    """Compare one slice; returns (status, problems) with status 'ok'|'skip'|'fail'."""
    archargs = ["--arch", arch] if multi else []
    rc, fix, err = dktest.dk_json("fixups", "--json", *archargs, path)
    if rc != 0:
        return "fail", ["dyldkit fixups failed: %s" % err.strip()]
    rc, exp, err = dktest.dk_json("exports", "--json", *archargs, path)
    if rc != 0:
        return "fail", ["dyldkit exports failed: %s" % err.strip()]
    llarch = ["--arch=" + arch] if multi else []
    problems = []
    if fix["encoding"] == "chained":
        rc, out, lerr = dktest.run([dktest.OBJDUMP, "--macho", "--dyld-info", "--exports-trie"] + llarch + [path])
        text = out.decode(errors="replace")
        if rc != 0 or b"error" in lerr or b"warning" in lerr or "dyld information:" not in text:
            return "skip", ["llvm-objdump cannot decode: %s" % lerr.decode(errors="replace").strip()[:200]]
        dyld_part = text.split("Exports trie:")[0]
        rows = parse_llvm_dyldinfo(dyld_part)
        lr = [(r[1], r[2]) for r in rows if r[0] == "rebase"]
        lb = [(r[1], r[2], r[4], r[5]) for r in rows if r[0] == "bind"]
        ldy = {(r[1], r[4]): r[3] for r in rows if r[0] == "bind"}
        ur, ub = [], []
        for f in fix["fixups"]:
            if f["kind"] == "rebase":
                ur.append((f["address"], f["target"] | (f.get("high8", 0) << 56)))
            else:
                ub.append((f["address"], f["addend"], f["symbol"], f["weak_import"]))
                d = ldy.get((f["address"], f["symbol"]))
                if d is not None and not dylib_matches(d, f["ordinal"], f["dylib"]):
                    problems.append("bind at 0x%x %s: llvm dylib %s, dyldkit ordinal %d %s" % (
                        f["address"], f["symbol"], d, f["ordinal"], f["dylib"]))
        compare_multisets("rebases", lr, ur, problems)
        compare_multisets("binds", lb, ub, problems)
        llvm_exports = parse_llvm_classic("Exports trie:\n" + text.split("Exports trie:", 1)[1])["exports"] \
            if "Exports trie:" in text else []
    else:
        rc, out, lerr = dktest.run([dktest.OBJDUMP, "--macho", "--rebase", "--bind", "--lazy-bind", "--weak-bind",
                                    "--exports-trie"] + llarch + [path])
        if rc != 0 or b"error" in lerr or b"warning" in lerr:
            return "skip", ["llvm-objdump cannot decode: %s" % lerr.decode(errors="replace").strip()[:200]]
        lv = parse_llvm_classic(out.decode(errors="replace"))
        us = ours_classic(fix, exp)
        compare_multisets("rebases", lv["rebase"], us["rebase"], problems)
        # binds: dylib names compared through the short-name rule
        lbk = [(a, t, ad, s, w) for (a, t, ad, d, s, w) in lv["bind"]]
        ubk = [(a, t, ad, s, w) for (a, t, ad, o, d, s, w) in us["bind"]]
        compare_multisets("binds", lbk, ubk, problems)
        ld = {(a, s): d for (a, t, ad, d, s, w) in lv["bind"]}
        for (a, t, ad, o, d, s, w) in us["bind"]:
            if (a, s) in ld and not dylib_matches(ld[(a, s)], o, d):
                problems.append("bind 0x%x %s: llvm dylib %s, dyldkit %d %s" % (a, s, ld[(a, s)], o, d))
        compare_multisets("lazy binds", [(a, s) for (a, d, s) in lv["lazy"]], [(a, s) for (a, o, d, s) in us["lazy"]], problems)
        ll = {(a, s): d for (a, d, s) in lv["lazy"]}
        for (a, o, d, s) in us["lazy"]:
            if (a, s) in ll and not dylib_matches(ll[(a, s)], o, d):
                problems.append("lazy bind 0x%x %s: llvm dylib %s, dyldkit %d %s" % (a, s, ll[(a, s)], o, d))
        compare_multisets("weak binds", lv["weak"], us["weak"], problems)
        compare_multisets("strong weak-bind records", lv["strong"], us["strong"], problems)
        llvm_exports = lv["exports"]
    compare_exports(llvm_exports, exp["exports"], problems)
    return ("fail" if problems else "ok"), problems


def files():
    out = []
    for row in dktest.fixture_manifest():
        out.append(("fixture", row["abspath"]))
    for row in dktest.corpus_manifest():
        if row["path"].startswith("dyld_caches/") or row.get("llvm_objdump_22_ok") != "yes":
            continue
        if row["filetype"].startswith("ar(") or "static-archive" in row.get("exercises", ""):
            continue
        out.append(("corpus", row["abspath"]))
    return out


def check_file(item):
    kind, path = item
    rc, info, err = dktest.dk_json("info", "--json", path)
    if rc != 0:
        return path, [("*", "fail", ["dyldkit info failed: %s" % err.strip()])]
    slices = dktest.slices_of(info)
    multi = "slices" in info
    results = []
    for s in slices:
        arch = s["arch"]
        st, problems = check_slice(path, arch, multi)
        results.append((arch, st, problems))
    return path, results


def main():
    rep = dktest.Report("parity")
    items = files()
    compared = agreed = skipped = known = 0
    with ThreadPoolExecutor(max_workers=os.cpu_count() or 2) as ex:
        for path, results in ex.map(check_file, items):
            rel = os.path.relpath(path, dktest.ROOT)
            for arch, st, problems in results:
                if st == "skip":
                    skipped += 1
                    continue
                compared += 1
                key = None
                for suffix, a in KNOWN_LLVM_BUGS:
                    if path.endswith(suffix) and (a is None or a == arch):
                        key = (suffix, a)
                if st == "ok":
                    agreed += 1
                    rep.ok(True, rel)
                elif key and all(p.startswith(KNOWN_LLVM_BUGS[key][0]) for p in problems):
                    known += 1
                    agreed += 1
                    print("known llvm-objdump difference: %s (%s): %s" % (rel, arch, KNOWN_LLVM_BUGS[key][1]))
                else:
                    rep.fail("%s (%s): %s" % (rel, arch, "; ".join(problems)[:1500]))
    print("parity: %d/%d slices agree with llvm-objdump-22 (%d documented llvm differences, %d slices llvm cannot decode)"
          % (agreed, compared, known, skipped))
    rep.finish()


if __name__ == "__main__":
    main()
