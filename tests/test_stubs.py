#!/usr/bin/env python3
"""Stubs and resolve.

1. Every S_SYMBOL_STUBS entry of every fixture and every corpus file that
   llvm-objdump decodes: `stubs --json` lists the same (address, symbol) as
   `llvm-objdump-22 --macho --indirect-symbols`, and the slot each stub's
   instructions load from is an entry of a pointer section that llvm lists
   with the same symbol (an independent check of the instruction decoding).
   No lazy stub's helper pushes an offset whose lazy-bind record binds
   another slot.
2. resolve: the libSystem-shaped umbrella set -- every import of every client
   resolves to the sub-library tests/fixtures/expected/umbrella.json names;
   the re-export trio and the self-test's flat lookup and weak imports.
"""
import json
import os
import re
import sys
from concurrent.futures import ThreadPoolExecutor

sys.path.insert(0, os.path.join(os.path.dirname(__file__), "lib"))
import dktest  # noqa: E402


def llvm_indirect(path, arch):
    args = [dktest.OBJDUMP, "--macho", "--indirect-symbols"] + (["--arch=" + arch] if arch else []) + [path]
    rc, out, err = dktest.run(args)
    if rc != 0 or b"error" in err or b"warning" in err:
        return None
    sections = {}
    cur = None
    for line in out.decode(errors="replace").splitlines():
        m = re.match(r"^Indirect symbols for \((\S+),(\S+)\) (\d+) entries", line)
        if m:
            # llvm prints a 16-character sectname without its terminator followed by the segname
            # ("__picsymbolstub4__TEXT"): keep the first 16 characters
            cur = sections.setdefault((m.group(1), m.group(2)[:16]), [])
            continue
        m = re.match(r"^0x([0-9a-fA-F]+)\s+(\S+)\s*(.*)$", line)
        if m and cur is not None:
            name = m.group(3).strip()
            if m.group(2) in ("LOCAL", "ABSOLUTE") or name in ("LOCAL", "ABSOLUTE"):
                name = None
            cur.append((int(m.group(1), 16), name))
    return sections


def check_file(path):
    problems = []
    rc, info, err = dktest.dk_json("info", "--json", path)
    if rc != 0:
        return path, 0, ["info failed: " + err.strip()]
    multi = "slices" in info
    compared = 0
    for sl in dktest.slices_of(info):
        arch = sl["arch"] if multi else None
        rc, doc, err = dktest.dk_json("stubs", "--json", *(["--arch", arch] if arch else []), path)
        if rc != 0:
            problems.append("%s: stubs failed: %s" % (arch, err.strip()))
            continue
        llvm = llvm_indirect(path, arch)
        if llvm is None:
            continue
        compared += 1
        if doc.get("lazy_bind_mismatches"):
            problems.append("%s: %d lazy-bind mismatches" % (arch, doc["lazy_bind_mismatches"]))
        ours = [(s["address"], s["symbol"]) for s in doc["stubs"] if s["stub_kind"] != "objc_msgSend"]
        stub_sects = {s["section"] for s in doc["stubs"] if s["stub_kind"] != "objc_msgSend"}
        theirs = []
        for (seg, sect), rows in llvm.items():
            if sect in stub_sects or sect in ("__stubs", "__auth_stubs", "__symbol_stub", "__symbol_stub1",
                                              "__picsymbolstub4", "__symbol_stub4", "__picsymbol_stub", "__jump_table"):
                theirs.extend(rows)
        if sorted(ours, key=str) != sorted(theirs, key=str):
            a, b = set(ours) - set(theirs), set(theirs) - set(ours)
            problems.append("%s: stub lists differ: dyldkit-only %s llvm-only %s" % (arch, sorted(a, key=str)[:4], sorted(b, key=str)[:4]))
        # slots: every decoded slot is an indirect pointer entry with the same symbol
        pointers = {}
        for (seg, sect), rows in llvm.items():
            for addr, name in rows:
                pointers[addr] = name
        for s in doc["stubs"]:
            if s["stub_kind"] == "objc_msgSend" or s["slot"] is None or s["symbol"] is None:
                continue
            slot_sect = (s.get("slot_section") or "?,?").split(",")
            if tuple(slot_sect) not in llvm:
                continue  # e.g. kext __got sections without indirect entries: nothing independent to compare
            if s["slot"] not in pointers:
                problems.append("%s: stub 0x%x (%s) slot 0x%x is not an indirect pointer entry" % (arch, s["address"], s["symbol"], s["slot"]))
            elif pointers[s["slot"]] != s["symbol"]:
                problems.append("%s: stub 0x%x (%s) loads slot 0x%x which llvm names %s" % (arch, s["address"], s["symbol"], s["slot"], pointers[s["slot"]]))
    return path, compared, problems


def files():
    out = [r["abspath"] for r in dktest.fixture_manifest()]
    for r in dktest.corpus_manifest():
        if r["path"].startswith("dyld_caches/") or r["malformed"] == "yes" or r["llvm_objdump_22_ok"] != "yes":
            continue
        if "static-archive" in r["exercises"]:
            continue
        out.append(r["abspath"])
    return out


def check_resolve(rep):
    umb = json.load(open(os.path.join(dktest.ROOT, "tests", "fixtures", "expected", "umbrella.json")))
    for fx in umb["fixtures"]:
        client = os.path.join(dktest.FIXTURES, fx["client"])
        root = os.path.join(dktest.FIXTURES, fx["root"])
        rc, doc, err = dktest.dk_json("resolve", "--json", "--all", "--root", root, client)
        if not rep.ok(rc == 0, "%s: resolve --all: %s" % (fx["client"], err.strip())):
            continue
        got = {i["symbol"]: i.get("image") for i in doc["imports"]}
        want = dict(umb["imports"])
        if fx["encoding"] != "classic":
            for s in umb.get("classic_only_imports", []):
                want.pop(s, None)
        rep.ok(got == want, "%s: resolved %s, want %s" % (fx["client"], got, want))
        rep.ok(all(i["ordinal"] == umb["ordinal"] for i in doc["imports"]), "%s: every import has the umbrella's ordinal" % fx["client"])
        # one import in detail: the hops go umbrella -> re-export -> sub-library
        rc, one, err = dktest.dk_json("resolve", "--json", "--root", root, client, "_write")
        if rep.ok(rc == 0, "%s: resolve _write: %s" % (fx["client"], err.strip())):
            kinds = [h["kind"] for h in one["hops"]]
            rep.ok(kinds[-4:] == ["ordinal", "image", "reexport", "export"], "%s: _write hops %s" % (fx["client"], kinds))
            rep.ok(one["final"]["image"] == "/usr/lib/system/libsystem_kernel.dylib", "%s: _write final %s" % (fx["client"], one["final"]))
            rep.ok(one["final"]["path"].startswith(root), "%s: _write found under the root" % fx["client"])
            if fx["encoding"] == "classic":
                rep.ok(kinds[:4] == ["stub", "slot", "stub_helper", "lazy_bind"], "%s: classic hops start stub/slot/helper/lazy: %s" % (fx["client"], kinds))
    # a missing symbol: exit 1 naming it
    fx = umb["fixtures"][0]
    rc, out, err = dktest.dk("resolve", "--root", os.path.join(dktest.FIXTURES, fx["root"]),
                             os.path.join(dktest.FIXTURES, fx["client"]), "_no_such_symbol")
    rep.ok(rc == 1 and b"_no_such_symbol" in err and not out, "resolve of a symbol the client does not import: exit 1 with a message")
    for s in ("x86_64-classic", "x86_64-chained", "arm64-classic", "arm64-chained"):
        client = os.path.join(dktest.FIXTURES, s, "libclient.dylib")
        rc, doc, err = dktest.dk_json("resolve", "--json", client, "_inner_add")
        if rep.ok(rc == 0, "%s/libclient: resolve _inner_add: %s" % (s, err.strip())):
            rep.ok(doc["final"]["image"] == "@rpath/libinner.dylib", "%s/libclient: _inner_add defined in %s" % (s, doc["final"]["image"]))
            rep.ok(any(h["kind"] == "reexport" for h in doc["hops"]), "%s/libclient: _inner_add goes through a re-export" % s)
        # without a root, libSystem's imports stay unresolved (exit 1) but the
        # report still covers every import
        lib = os.path.join(dktest.FIXTURES, s, "selftest", "libselftest.dylib")
        rc, out, err = dktest.dk("resolve", "--json", "--all", lib)
        if rep.ok(rc == 1 and out, "%s/libselftest: resolve --all without a root exits 1 with a report: %s" % (s, err.strip())):
            doc = json.loads(out)
            by = {i["symbol"]: i for i in doc["imports"]}
            rep.ok(not by["_printf"]["resolved"] and "libSystem" in by["_printf"]["error"], "%s: _printf unresolved without a root" % s)
            rep.ok(by["_stweak_flat"]["resolved"] and by["_stweak_flat"]["image"] == "@rpath/libstweak.dylib",
                   "%s/libselftest: flat lookup of _stweak_flat: %s" % (s, by["_stweak_flat"]))
            rep.ok(not by["_stweak_missing"]["resolved"] and by["_stweak_missing"]["weak_import"], "%s: missing weak import reported" % s)
            rep.ok(doc["weak_missing"] == 2, "%s: weak_missing %s" % (s, doc["weak_missing"]))


def main():
    rep = dktest.Report("stubs")
    total = 0
    with ThreadPoolExecutor(max_workers=os.cpu_count() or 2) as ex:
        for path, compared, problems in ex.map(check_file, files()):
            total += compared
            rep.ok(not problems, "%s: %s" % (os.path.relpath(path, dktest.ROOT), "; ".join(problems)[:1200]))
    print("stubs: %d slices compared with llvm-objdump --indirect-symbols" % total)
    check_resolve(rep)
    rep.finish()


if __name__ == "__main__":
    main()
