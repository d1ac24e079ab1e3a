#!/usr/bin/env python3
"""The encoders of src/writer.h against llvm-objdump-22.

The unit test program (build/.../tests/test_writers --emit DIR) writes one
synthetic image per stream kind -- classic LC_DYLD_INFO_ONLY images (x86_64 and
i386: rebase, bind, weak bind, lazy bind, export trie) and chained-fixup images
(DYLD_CHAINED_PTR_64 and _64_OFFSET, each with all three import formats, plus
LC_DYLD_EXPORTS_TRIE) -- and next to each a NAME.expect listing, written from
the encoder's *input*, of every entry the image must contain.  Here
llvm-objdump-22 --macho --rebase --bind --lazy-bind --weak-bind --exports-trie
(and --dyld-info for the chained images) must accept every image (exit 0, no
error or warning) and list exactly those entries.

One known LLVM defect is allowed for: llvm-objdump-22 reads
dyld_chained_import_addend64 with weak_import and name_offset swapped (it takes
bit 16 as the name offset and bits 17+ as the weak flag), so for images whose
imports_format is DYLD_CHAINED_IMPORT_ADDEND64 the bind's symbol and weak flag
are not compared (address, pointer, addend and library still are).  The same
images decode correctly with dyldkit (the unit test checks every field).
"""
import os
import re
import shutil
import subprocess
import sys
import tempfile
from collections import Counter

sys.path.insert(0, os.path.join(os.path.dirname(__file__), "lib"))
import dktest  # noqa: E402

UNIT = os.path.join(dktest.BUILD, "tests", "test_writers")
STREAM_FLAGS = ["--macho", "--rebase", "--bind", "--lazy-bind", "--weak-bind", "--exports-trie"]


def split_type(tokens, i):
    """The bind/rebase type at tokens[i] ("pointer", "text abs32", "text rel32"); returns (type, next index)."""
    if tokens[i] == "text":
        return tokens[i] + " " + tokens[i + 1], i + 2
    return tokens[i], i + 1


def export_key(name, flags, address, other, ordinal, imported, base):
    """The tuple an llvm-objdump --exports-trie line gives for one export."""
    shown = []
    kind = flags & 3
    if flags & 0x04:
        shown.append("weak_def")
    if kind == 1:
        shown.append("per-thread")
    if kind == 2:
        shown.append("absolute")
    if flags & 0x10:
        shown.append("resolver=0x%08X" % other)
    if flags & 0x08:
        return ("re-export", name, tuple(shown), imported, "libdk%d" % ordinal)
    return ("export", name, tuple(shown), base + address)


def parse_expect(path):
    """Entries an image must list, keyed by table."""
    want = {k: Counter() for k in ("rebase", "bind", "weak", "lazy", "export", "chained")}
    base = 0
    addend64 = False
    with open(path) as f:
        for line in f:
            t = line.split()
            if not t:
                continue
            kind = t[0]
            if kind == "base":
                base = int(t[1], 16)
            elif kind == "rebase":
                want["rebase"][(t[1], t[2], int(t[3], 16), " ".join(t[4:]))] += 1
            elif kind == "bind":
                typ, i = split_type(t, 4)
                want["bind"][(t[1], t[2], int(t[3], 16), typ, int(t[i]), t[i + 1], t[i + 2], "(weak_import)" in t)] += 1
            elif kind == "weak":
                typ, i = split_type(t, 4)
                want["weak"][(t[1], t[2], int(t[3], 16), typ, int(t[i]), t[i + 1])] += 1
            elif kind == "strong":
                want["weak"][("strong", t[1])] += 1
            elif kind == "lazy":
                want["lazy"][(t[1], t[2], int(t[3], 16), t[4], t[5])] += 1
            elif kind == "export":
                name, flags, address, other, ordinal = t[1], int(t[2], 16), int(t[3], 16), int(t[4], 16), int(t[5])
                imported = None if t[6] == "-" else t[6]
                want["export"][export_key(name, flags, address, other, ordinal, imported, base)] += 1
            elif kind == "chained-rebase":
                target, high8 = int(t[5], 16), int(t[6], 16)
                # llvm prints the target as a vmaddr with high8 folded into the top byte
                want["chained"][(t[1], t[2], int(t[3], 16), int(t[4], 16), "rebase", target | high8 << 56)] += 1
            elif kind == "chained-bind":
                weak = "(weak import)" in line
                want["chained"][(t[1], t[2], int(t[3], 16), int(t[4], 16), "bind", int(t[5]) & (2**64 - 1), t[6], t[7], weak)] += 1
    return want, base


def parse_llvm_tables(text):
    """The tables of llvm-objdump --rebase --bind --lazy-bind --weak-bind --exports-trie."""
    got = {k: Counter() for k in ("rebase", "bind", "weak", "lazy", "export")}
    table = None
    heads = {"Rebase table:": "rebase", "Bind table:": "bind", "Lazy bind table:": "lazy", "Weak bind table:": "weak",
             "Exports trie:": "export"}
    for line in text.splitlines():
        s = line.strip()
        if s in heads:
            table = heads[s]
            continue
        if not s or s.startswith("segment") or table is None or s.endswith(":"):
            continue
        t = s.split()
        if table == "rebase":
            got["rebase"][(t[0], t[1], int(t[2], 16), " ".join(t[3:]))] += 1
        elif table == "bind":
            typ, i = split_type(t, 3)
            got["bind"][(t[0], t[1], int(t[2], 16), typ, int(t[i]), t[i + 1], t[i + 2], "(weak_import)" in t)] += 1
        elif table == "weak":
            if t[0] == "strong":
                got["weak"][("strong", t[1])] += 1
            else:
                typ, i = split_type(t, 3)
                got["weak"][(t[0], t[1], int(t[2], 16), typ, int(t[i]), t[i + 1])] += 1
        elif table == "lazy":
            got["lazy"][(t[0], t[1], int(t[2], 16), t[3], t[4])] += 1
        else:
            m = re.match(r"^(?:\[re-export\] |0x([0-9A-Fa-f]+)  )(\S+)(?: \[([^\]]*)\])?(?: \((?:(\S+) )?from (\S+)\))?$", s)
            if not m:
                got["export"][("unparsed", s)] += 1
                continue
            shown = tuple(x.strip() for x in m.group(3).split(",")) if m.group(3) else ()
            if s.startswith("[re-export]"):
                got["export"][("re-export", m.group(2), shown, m.group(4), m.group(5))] += 1
            else:
                got["export"][("export", m.group(2), shown, int(m.group(1), 16))] += 1
    return got


def parse_llvm_dyld_info(text):
    """The fixups of llvm-objdump --dyld-info (chained fixups)."""
    got = Counter()
    for line in text.splitlines():
        t = line.split()
        if len(t) < 6 or t[0] == "segment":
            continue
        if t[4] == "rebase":
            got[(t[0], t[1], int(t[2], 16), int(t[3], 16), "rebase", int(t[5], 16))] += 1
        elif t[4] == "bind":
            weak = "(weak import)" in line
            sym = t[7] if len(t) > 7 and not t[7].startswith("(") else ""
            got[(t[0], t[1], int(t[2], 16), int(t[3], 16), "bind", int(t[5], 16), t[6], sym, weak)] += 1
    return got


def imports_format(path):
    """imports_format of the image's LC_DYLD_CHAINED_FIXUPS, through dyldkit."""
    rc, doc, err = dktest.dk_json("chains", "--json", path)
    if rc != 0:
        return None
    found = []

    def walk(o):
        if isinstance(o, dict):
            if "imports_format" in o:
                found.append(o["imports_format"])
            for v in o.values():
                walk(v)
        elif isinstance(o, list):
            for v in o:
                walk(v)

    walk(doc)
    return found[0] if found else None


def compare(r, name, table, want, got):
    missing = want - got
    extra = got - want
    ok = r.ok(not missing and not extra,
              "%s %s: %d entries expected, %d listed by llvm-objdump; %d missing, %d unexpected"
              % (name, table, sum(want.values()), sum(got.values()), sum(missing.values()), sum(extra.values())))
    if not ok:
        for k in list(missing)[:3]:
            print("   missing:    %s" % (k,))
        for k in list(extra)[:3]:
            print("   unexpected: %s" % (k,))
    return ok


def llvm(r, name, args):
    rc, out, err = dktest.run([dktest.OBJDUMP] + args)
    text = err.decode(errors="replace")
    r.ok(rc == 0 and "error" not in text and "warning" not in text,
         "%s: llvm-objdump %s exits %d: %s" % (name, " ".join(args[:-1]), rc, text.strip()[:300]))
    return out.decode(errors="replace")


def main():
    r = dktest.Report("test_writers.py")
    if not os.path.exists(UNIT):
        r.fail("%s not built (make unit)" % UNIT)
        r.finish()
    if not shutil.which(dktest.OBJDUMP):
        r.fail("%s not found" % dktest.OBJDUMP)
        r.finish()
    tmp = tempfile.mkdtemp(prefix="dk-writers-")
    try:
        env = dict(os.environ, DK_WRITER_PERF_N="1000")  # the million-fixup timing is the unit run's job
        p = subprocess.run([UNIT, "--emit", tmp], stdout=subprocess.PIPE, stderr=subprocess.PIPE, env=env,
                           timeout=300 * dktest.SLOW)
        r.ok(p.returncode == 0, "test_writers --emit exits %d: %s" % (p.returncode, p.stderr.decode(errors="replace")[-500:]))
        images = sorted(f[:-len(".macho")] for f in os.listdir(tmp) if f.endswith(".macho"))
        r.ok(any(n.startswith("classic") for n in images) and any(n.startswith("chained") for n in images),
             "the unit test wrote classic and chained images (%s)" % images)
        totals = Counter()
        for name in images:
            path = os.path.join(tmp, name + ".macho")
            want, base = parse_expect(os.path.join(tmp, name + ".expect"))
            got = parse_llvm_tables(llvm(r, name, STREAM_FLAGS + [path]))
            for table in ("rebase", "bind", "weak", "lazy", "export"):
                compare(r, name, table, want[table], got[table])
                totals[table] += sum(got[table].values())
            if name.startswith("chained"):
                chained = parse_llvm_dyld_info(llvm(r, name, ["--macho", "--dyld-info", path]))
                expected = want["chained"]
                fmt = imports_format(path)
                r.ok(fmt is not None, "%s: dyldkit chains --json gives the imports_format" % name)
                if fmt == 3 or fmt == "DYLD_CHAINED_IMPORT_ADDEND64":
                    # llvm-objdump-22 swaps weak_import and name_offset of dyld_chained_import_addend64
                    def strip(c):
                        out = Counter()
                        for k, v in c.items():
                            out[k[:7] if k[4] == "bind" else k] += v
                        return out
                    expected, chained = strip(expected), strip(chained)
                compare(r, name, "chained fixups", expected, chained)
                totals["chained"] += sum(chained.values())
        print("llvm-objdump-22 listed, over %d images: %s" % (len(images), ", ".join("%d %s" % (v, k) for k, v in sorted(totals.items()))))
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    r.finish()


if __name__ == "__main__":
    main()
