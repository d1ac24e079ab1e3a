#!/usr/bin/env python3
"""Golden comparison for what llvm-objdump cannot decode: dyldkit's
`chains --json`, `fixups --json` and `opcodes --json` against the gimli-rs
`object` crate's `.readobj` dumps in ../shared/corpus/expected/gimli-object/macho
(they decode every chained fixup per page, DYLD_CHAINED_PTR_32 and
ARM64E_USERLAND24 included, and the classic opcode streams), and against the
fixup values that rizin/radare2 test-db records publish
(../shared/corpus/expected/{rizin,radare2}, see expected/testdb-index.tsv).

For each gimli dump with LC_DYLD_CHAINED_FIXUPS: the header, every import
(library ordinal, weak, addend, name), every segment's starts (size, page
size, pointer format, segment offset, max_valid_pointer, page count) and every
fixup in chain order (offset, kind, import index and name, inline addend,
rebase target, high8, auth key / address diversity / diversity), both in the
chains view and in the unified fixups view.  For each dump with dyld info:
every opcode (up to the stream's DONE; gimli also lists the zero padding
after it) with its operands, and every decoded rebase / bind / weak bind /
lazy bind.  Prints `gimli: N/M` (fixup records that match in every field, of
all records the dumps give) and `testdb: N/M`.
"""
import json
import os
import re
import sys

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "lib"))
import dktest  # noqa: E402

GIMLI = os.path.join(dktest.CORPUS, "expected", "gimli-object", "macho")
GIMLI_BIN = os.path.join(dktest.CORPUS, "macho", "gimli-object-testfiles", "macho")
KEYS = {"IA": "IA", "IB": "IB", "DA": "DA", "DB": "DB"}


# ------------------------------------------------------------ readobj parser

class Node:
    """One `Name { ... }` block of a readobj dump: fields in order and child blocks."""

    def __init__(self, name):
        self.name = name
        self.fields = {}
        self.children = []

    def kids(self, name):
        return [c for c in self.children if c.name == name]

    def kid(self, name):
        k = self.kids(name)
        return k[0] if k else None

    def find_all(self, name):
        out = []
        for c in self.children:
            if c.name == name:
                out.append(c)
            out += c.find_all(name)
        return out


def parse_readobj(text):
    root = Node("")
    stack = [root]
    for line in text.splitlines():
        s = line.strip()
        if not s:
            continue
        if s.endswith("{"):
            node = Node(s[:-1].strip())
            stack[-1].children.append(node)
            stack.append(node)
        elif s == "}":
            stack.pop()
        elif ":" in s:
            k, v = s.split(":", 1)
            stack[-1].fields.setdefault(k.strip(), v.strip())
        # other lines are flag names listed under a field: not needed
    return root


def num(v):
    """The number in a readobj value: `0x1F`, `-3`, `NAME (0x3)`, `NAME (-2)`, `"sym" (0x2)`."""
    m = re.search(r"\((-?(?:0x[0-9A-Fa-f]+|\d+))\)\s*$", v)
    if m:
        v = m.group(1)
    v = v.strip()
    return int(v, 16) if v.lower().startswith(("0x", "-0x")) else int(v)


def qstr(v):
    m = re.match(r'^"(.*)"', v)
    return m.group(1) if m else None


def u64(x):
    return x & 0xFFFFFFFFFFFFFFFF


# --------------------------------------------------------------- comparison

class Tally:
    def __init__(self):
        self.matched = 0
        self.total = 0


def run_json(rep, *args):
    rc, doc, err = dktest.dk_json(*args)
    rep.ok(rc == 0, "dyldkit %s: exit %d: %s" % (" ".join(args), rc, err.strip()))
    return doc


def expect(diffs, what, ours, theirs):
    if ours != theirs:
        diffs.append("%s: dyldkit %r, gimli %r" % (what, ours, theirs))


def compare_auth(diffs, what, ours, g):
    """Auth fields of a gimli Bind/Rebase (Key, AddrDiv, Diversity) against dyldkit's "auth"."""
    a = ours.get("auth")
    if "Key" in g.fields:
        if a is None:
            diffs.append("%s: gimli has auth key %s, dyldkit none" % (what, g.fields["Key"]))
            return
        expect(diffs, what + " key", a.get("key"), KEYS.get(g.fields["Key"], g.fields["Key"]))
        expect(diffs, what + " addr_div", a.get("addr_div"), g.fields.get("AddrDiv") == "true")
        expect(diffs, what + " diversity", a.get("diversity"), num(g.fields.get("Diversity", "0")))
    elif a is not None:
        diffs.append("%s: dyldkit has auth %r, gimli none" % (what, a))


def compare_chained(rep, tally, name, gfix, base, chains, fixups):
    """One DyldChainedFixups block against dyldkit's chains and fixups documents."""
    f = gfix.fields
    h = chains.get("header") or {}
    diffs = []
    for gk, ok in (("FixupsVersion", "fixups_version"), ("StartsOffset", "starts_offset"),
                   ("ImportsOffset", "imports_offset"), ("SymbolsOffset", "symbols_offset"),
                   ("ImportsCount", "imports_count"), ("ImportsFormat", "imports_format"),
                   ("SymbolsFormat", "symbols_format")):
        expect(diffs, "header " + ok, h.get(ok), num(f[gk]))
    gimps = gfix.kids("Import")
    imps = chains.get("imports", [])
    expect(diffs, "import count", len(imps), len(gimps))
    for i, (gi, oi) in enumerate(zip(gimps, imps)):
        expect(diffs, "import %d lib_ordinal" % i, oi["lib_ordinal"], num(gi.fields["LibraryOrdinal"]))
        expect(diffs, "import %d weak_import" % i, oi["weak_import"], gi.fields["WeakImport"] == "true")
        expect(diffs, "import %d addend" % i, oi["addend"], num(gi.fields["Addend"]))
        expect(diffs, "import %d name" % i, oi["name"], qstr(gi.fields["Name"]))
    for d in diffs:
        rep.fail("%s: %s" % (name, d))
    if not diffs:
        rep.ok(True, "")

    segs = {s["index"]: s for s in chains.get("segments", [])}
    unified = [x for x in fixups.get("fixups", [])]
    uidx = {x["address"]: x for x in unified}
    for gseg in gfix.kids("Segment"):
        si = num(gseg.fields["SegmentIndex"])
        seg = segs.get(si)
        if not rep.ok(seg is not None, "%s: gimli segment %d missing from dyldkit chains" % (name, si)):
            tally.total += len([c for c in gseg.children if c.name in ("Bind", "Rebase")])
            continue
        diffs = []
        for gk, ok in (("Size", "size"), ("PageSize", "page_size"), ("PointerFormat", "pointer_format"),
                       ("SegmentOffset", "segment_offset"), ("MaxValidPointer", "max_valid_pointer"),
                       ("PageCount", "page_count")):
            expect(diffs, "segment %d %s" % (si, ok), seg.get(ok), num(gseg.fields[gk]))
        for d in diffs:
            rep.fail("%s: %s" % (name, d))
        ours = [fx for pg in seg.get("pages", []) for fx in pg.get("fixups", [])]
        gents = [c for c in gseg.children if c.name in ("Bind", "Rebase")]
        rep.ok(len(ours) == len(gents), "%s: segment %d has %d fixups in dyldkit, %d in gimli"
               % (name, si, len(ours), len(gents)))
        seg_addr = base + seg["segment_offset"]
        for k, g in enumerate(gents):
            tally.total += 1
            off = num(g.fields["Offset"])
            what = "%s seg %d +0x%x" % (name, si, off)
            if k >= len(ours):
                rep.fail("%s: missing in dyldkit" % what)
                continue
            o = ours[k]
            d = []
            expect(d, what + " address", o["address"], seg_addr + off)
            expect(d, what + " kind", o["kind"], g.name.lower())
            if g.name == "Bind":
                m = re.match(r'^"(.*)" \((0x[0-9A-Fa-f]+|\d+)\)$', g.fields["Ordinal"])
                idx = num(m.group(2))
                expect(d, what + " import_index", o.get("import_index"), idx)
                expect(d, what + " symbol", o.get("symbol"), m.group(1))
                imp_addend = imps[idx]["addend"] if idx < len(imps) else 0
                expect(d, what + " inline addend", o.get("addend", 0) - imp_addend, num(g.fields.get("Addend", "0")))
            else:
                expect(d, what + " target", o.get("target"), base + num(g.fields["TargetOffset"]))
                expect(d, what + " high8", o.get("high8", 0), num(g.fields.get("High8", "0")))
            compare_auth(d, what, o, g)
            # the unified fixups view must say the same about this location
            u = uidx.get(seg_addr + off)
            if u is None:
                d.append("%s: not in fixups --json" % what)
            else:
                for key in ("kind", "target", "high8", "symbol", "addend", "ordinal", "dylib", "weak_import", "auth"):
                    expect(d, what + " fixups." + key, u.get(key), o.get(key))
            for x in d:
                rep.fail(x)
            if not d:
                tally.matched += 1
                rep.ok(True, "")
    # nothing beyond what gimli lists
    ng = sum(len([c for c in s.children if c.name in ("Bind", "Rebase")]) for s in gfix.kids("Segment"))
    rep.ok(len(unified) == ng, "%s: fixups --json has %d entries, gimli %d" % (name, len(unified), ng))


OPS_FIELDS = {"Type", "SegmentIndex", "Offset", "Count", "Ordinal", "Flags", "Name", "Addend", "Skip"}


def op_values(op):
    """What a gimli operation's fields must equal in dyldkit's opcode record."""
    return op


def compare_ops(rep, name, stream, gops, ours, ptrsize):
    """gimli Operation blocks against dyldkit opcodes --json for one stream."""
    opcodes = ours.get("opcodes", []) if ours else []
    what = "%s %s opcodes" % (name, stream)
    if not rep.ok(len(opcodes) <= len(gops), "%s: dyldkit %d, gimli %d" % (what, len(opcodes), len(gops))):
        return
    for k, g in enumerate(gops):
        gname = re.match(r"^(\S+)", g.fields["Opcode"]).group(1)
        gval = num(g.fields["Opcode"])
        if k >= len(opcodes):
            # gimli goes on through the zero padding after the stream's DONE
            rep.ok(gval == 0, "%s #%d: gimli %s after dyldkit's last opcode" % (what, k, gname))
            continue
        o = opcodes[k]
        d = []
        expect(d, "%s #%d opcode" % (what, k), o["opcode"], gname)
        expect(d, "%s #%d value" % (what, k), o["byte"] & 0xF0, gval)
        args = o.get("args", [])
        for fk, fv in g.fields.items():
            if fk == "Opcode":
                continue
            w = "%s #%d %s" % (what, k, fk)
            if fk == "Name":
                expect(d, w, o.get("symbol"), qstr(fv))
            elif fk in ("Type", "SegmentIndex", "Flags"):
                expect(d, w, o["imm"], num(fv))
            elif fk == "Ordinal":
                if gname == "BIND_OPCODE_SET_DYLIB_SPECIAL_IMM":
                    imm = o["imm"]
                    expect(d, w, 0 if imm == 0 else imm - 16, num(fv))
                elif gname.endswith("_IMM"):
                    expect(d, w, o["imm"], num(fv))
                else:
                    expect(d, w, args[:1], [num(fv)])
            elif fk == "Count":
                expect(d, w, o["imm"] if gname.endswith("IMM_TIMES") else (args[:1] or [None])[0], num(fv))
            elif fk == "Skip":
                expect(d, w, args[1:2], [num(fv)])
            elif fk == "Offset":
                if gname.endswith("IMM_SCALED"):
                    expect(d, w, o["imm"] * ptrsize, num(fv))
                else:
                    expect(d, w, [u64(a) for a in args[:1]], [u64(num(fv))])
            elif fk == "Addend":
                expect(d, w, [a - (1 << 64) if a >= 1 << 63 else a for a in args[:1]], [num(fv)])
            else:
                d.append("%s: field %s not understood by this test" % (w, fk))
        for x in d:
            rep.fail(x)
        if not d:
            rep.ok(True, "")


def compare_dyldinfo(rep, tally, name, ginfo, segaddrs, fixups, opcodes, ptrsize):
    """A DyldInfoCommand block: opcode streams and decoded records."""
    streams = {s["name"]: s for s in (opcodes or {}).get("streams", [])}
    for gblock, sname in (("RebaseOperations", "rebase"), ("BindOperations", "bind"),
                          ("WeakBindOperations", "weak_bind"), ("LazyBindOperations", "lazy_bind")):
        gb = ginfo.kid(gblock)
        if gb is not None:
            compare_ops(rep, name, sname, gb.kids("Operation"), streams.get(sname), ptrsize)
    allfx = [x for x in fixups.get("fixups", []) if not x.get("strong")]
    for gblock, kind in (("Rebases", "rebase"), ("Binds", "bind"), ("WeakBinds", "weak_bind"),
                         ("LazyBinds", "lazy_bind")):
        gb = ginfo.kid(gblock)
        if gb is None:
            continue
        ours = [x for x in allfx if x["kind"] == kind]
        gents = gb.children
        rep.ok(len(ours) == len(gents), "%s %s: dyldkit %d, gimli %d" % (name, gblock, len(ours), len(gents)))
        for k, g in enumerate(gents):
            tally.total += 1
            si, so = num(g.fields["SegmentIndex"]), num(g.fields["SegmentOffset"])
            what = "%s %s seg %d +0x%x" % (name, kind, si, so)
            if k >= len(ours):
                rep.fail("%s: missing in dyldkit" % what)
                continue
            o = ours[k]
            d = []
            expect(d, what + " address", o["address"], segaddrs[si] + so if si < len(segaddrs) else None)
            gtype = num(g.fields["Type"])
            expect(d, what + " type", o.get("type", "pointer"),
                   {1: "pointer", 2: "text_absolute32", 3: "text_pcrel32"}.get(gtype))
            if kind != "rebase":
                expect(d, what + " ordinal", o["ordinal"], num(g.fields["LibraryOrdinal"]))
                expect(d, what + " symbol", o["symbol"], qstr(g.fields["Symbol"]))
                expect(d, what + " addend", o["addend"], num(g.fields["Addend"]))
                expect(d, what + " weak_import", o["weak_import"], bool(num(g.fields["Flags"]) & 1))
            for x in d:
                rep.fail(x)
            if not d:
                tally.matched += 1
                rep.ok(True, "")


def gimli_pass(rep):
    chained, dyldinfo = Tally(), Tally()
    files = sorted(f for f in os.listdir(GIMLI) if f.endswith(".readobj"))
    for f in files:
        binname = f[: -len(".readobj")]
        path = os.path.join(GIMLI_BIN, binname)
        with open(os.path.join(GIMLI, f)) as fh:
            tree = parse_readobj(fh.read())
        gfixes = tree.find_all("DyldChainedFixups")
        ginfos = [n for n in tree.find_all("DyldInfoCommand") if n.kid("RebaseOperations") or n.kid("BindOperations")]
        if not gfixes and not ginfos:
            continue
        if not rep.ok(os.path.exists(path), "%s: binary %s missing" % (f, path)):
            continue
        info = run_json(rep, "info", "--json", path)
        fixups = run_json(rep, "fixups", "--json", path)
        if info is None or fixups is None:
            continue
        base = info["base_address"]
        if gfixes:
            chains = run_json(rep, "chains", "--json", path)
            if chains is None:
                continue
            for g in gfixes:
                compare_chained(rep, chained, binname, g, base, chains, fixups)
        if ginfos:
            opcodes = run_json(rep, "opcodes", "--json", path)
            segaddrs = [s["vmaddr"] for s in info["segments"]]
            ptrsize = 8 if info["is64"] else 4
            for g in ginfos:
                compare_dyldinfo(rep, dyldinfo, binname, g, segaddrs, fixups, opcodes, ptrsize)
    return chained, dyldinfo


# --------------------------------------------------- rizin / radare2 records

def testdb_records(relpath):
    """{test name: EXPECT text} of one test-db file under expected/."""
    out = {}
    path = os.path.join(dktest.CORPUS, "expected", relpath)
    if not os.path.exists(path):
        return out
    name, lines, in_expect = None, [], False
    with open(path) as fh:
        for line in fh:
            line = line.rstrip("\n")
            if line.startswith("NAME="):
                name, lines, in_expect = line[5:], [], False
            elif line.startswith("EXPECT=<<EOF"):
                in_expect = True
            elif in_expect and line == "EOF":
                in_expect = False
                out[name] = "\n".join(lines)
            elif in_expect:
                lines.append(line)
            elif line.startswith("EXPECT=") and name:
                out[name] = line[7:]
    return out


def normalize(sym):
    """A symbol as rizin prints it: one leading underscore off, ObjC class symbols by class name."""
    if sym.startswith("_"):
        sym = sym[1:]
    for p in ("OBJC_CLASS_$_", "OBJC_METACLASS_$_"):
        if sym.startswith(p):
            sym = sym[len(p):]
    return sym


IR_ROW = re.compile(r"^(0x[0-9a-f]+)\s+(0x[0-9a-f]+)\s+(0x[0-9a-f]+)\s+SET_64\s*(\S*)\s*$")

# rizin `ir` tables of chained / threaded images: every fixup with its address; binds by symbol,
# rebases with an empty name.  (db file, test name, corpus file, arch of the slice rizin loads)
IR_RECORDS = [
    ("rizin/formats/mach0/arm64e", "macOS arm64 with DYLD_CHAINED_PTR_64_OFFSET",
     "macho/rizin-testbins/mach0/hello-macos-arm64-chained", None),
    ("rizin/formats/mach0/arm64e", "macOS arm64e with DYLD_CHAINED_PTR_ARM64E_USERLAND24",
     "macho/rizin-testbins/mach0/hello-macos-arm64e-userland24", None),
    ("rizin/formats/mach0/imports", "mach0 arm64 chained imports",
     "macho/rizin-testbins/mach0/imports-arm64-chained", None),
    # `-a arm -b 64` on these arm64+arm64e files: the 23 rows are the arm64e slice's (the arm64
    # slice of the threaded file uses classic opcodes and has 28 fixups)
    ("rizin/formats/mach0/imports", "mach0 arm64e legacy chained imports (BIND_OPCODE_THREADED)",
     "macho/rizin-testbins/mach0/imports-arm64e-threaded", "arm64e"),
    ("rizin/formats/mach0/imports", "mach0 arm64e chained imports",
     "macho/rizin-testbins/mach0/imports-arm64e-chained", "arm64e"),
]

# Pointer values the records print (pxr / pv8): (db file, test name, corpus file, address,
# expected rebase target or None for "a non-pointer riding the chain: no fixup", the line the
# record's EXPECT holds for it).
VALUE_RECORDS = [
    ("rizin/formats/mach0/arm64e", "macOS arm64 with DYLD_CHAINED_PTR_64_OFFSET",
     "macho/rizin-testbins/mach0/hello-macos-arm64-chained", 0x100004038, 0x100003e64,
     "0x100004038 0x0000000100003e64"),
    ("rizin/formats/mach0/imports", "mach0 arm64 chained imports",
     "macho/rizin-testbins/mach0/imports-arm64-chained", 0x1000080c0, 0x100008100, "0x1000080c0 0x0000000100008100"),
    ("rizin/formats/mach0/mach0", "DYLD_CHAINED_PTR_64", "macho/rizin-testbins/mach0/ios-DYLD_CHAINED_PTR_64",
     0x100011538, 0x10000b672, "0x000000010000b672"),
    # arm64_32 DYLD_CHAINED_PTR_32: two pointers and, between them, non-pointers restored by the bias
    ("rizin/formats/mach0/mach0", "arm64_32, DYLD_CHAINED_PTR_32", "macho/rizin-testbins/mach0/arm64_32-fixups-nonptr",
     0xc000, 0xbf94, "0x0000c000 0x0000bf94"),
    ("rizin/formats/mach0/mach0", "arm64_32, DYLD_CHAINED_PTR_32", "macho/rizin-testbins/mach0/arm64_32-fixups-nonptr",
     0xc078, None, "0x0000c078 0x00001234"),
    ("rizin/formats/mach0/mach0", "arm64_32, DYLD_CHAINED_PTR_32", "macho/rizin-testbins/mach0/arm64_32-fixups-nonptr",
     0xc07c, None, "0x0000c07c 0x0000002a"),
    ("rizin/formats/mach0/mach0", "arm64_32, DYLD_CHAINED_PTR_32", "macho/rizin-testbins/mach0/arm64_32-fixups-nonptr",
     0xc080, None, "0x0000c080 0x00000056"),
    ("rizin/formats/mach0/mach0", "arm64_32, DYLD_CHAINED_PTR_32", "macho/rizin-testbins/mach0/arm64_32-fixups-nonptr",
     0xc084, 0xbf98, "0x0000c084 0x0000bf98"),
    # radare2 `ir~0x100008158~?` prints 1: a fixup at that address
    ("radare2/formats/mach0/mach0", "mach0 chained fixup relocs ignore bin.unnamed",
     "macho/rizin-testbins/mach0/hello-macos-arm64-chained", 0x100008158, "any", "1"),
]


def fixups_of(rep, corpus_path, arch):
    path = os.path.join(dktest.CORPUS, corpus_path)
    args = ["fixups", "--json"] + (["--arch", arch] if arch else []) + [path]
    doc = run_json(rep, *args)
    return dktest.slices_of(doc)[0].get("fixups", []) if doc else None


def testdb_pass(rep):
    ok = total = 0
    for dbfile, test, corpus_path, arch in IR_RECORDS:
        exp = testdb_records(dbfile).get(test)
        if not rep.ok(exp is not None, "%s: record %r not found" % (dbfile, test)):
            continue
        rows = [IR_ROW.match(l) for l in exp.splitlines()]
        rows = [(int(m.group(1), 16), m.group(4)) for m in rows if m]
        fx = fixups_of(rep, corpus_path, arch)
        if fx is None:
            continue
        ours = {x["address"]: x for x in fx if not x.get("strong")}
        what = "%s / %s" % (os.path.basename(corpus_path), test)
        rep.ok(len(ours) == len(rows), "%s: dyldkit %d fixups, rizin ir %d rows" % (what, len(ours), len(rows)))
        for addr, sym in rows:
            total += 1
            o = ours.get(addr)
            good = o is not None and ((o["kind"] == "rebase") if not sym else
                                      (o["kind"] != "rebase" and normalize(o["symbol"]) == sym))
            ok += good
            rep.ok(good, "%s: rizin ir 0x%x %s; dyldkit %s" % (what, addr, sym or "(rebase)",
                                                               "%s %s" % (o["kind"], o.get("symbol", hex(o.get("target", 0))))
                                                               if o else "nothing"))
    for dbfile, test, corpus_path, addr, target, line in VALUE_RECORDS:
        exp = testdb_records(dbfile).get(test)
        if not rep.ok(exp is not None and line in exp, "%s: record %r does not hold %r" % (dbfile, test, line)):
            continue
        fx = fixups_of(rep, corpus_path, None)
        if fx is None:
            continue
        total += 1
        o = next((x for x in fx if x.get("address") == addr), None)
        if target is None:
            good = o is None
            msg = "non-pointer: no fixup expected, dyldkit has %r" % (o,)
        elif target == "any":
            good = o is not None
            msg = "a fixup expected, dyldkit has none"
        else:
            good = o is not None and o["kind"] == "rebase" and o["target"] | (o.get("high8", 0) << 56) == target
            msg = "rebase to 0x%x expected, dyldkit has %r" % (target, o)
        ok += good
        rep.ok(good, "%s 0x%x (%s): %s" % (os.path.basename(corpus_path), addr, test, msg))
    return ok, total


def main():
    rep = dktest.Report("gimli checks")
    if not os.path.isdir(GIMLI):
        print("gimli: corpus not found at %s; skipped" % GIMLI)
        return
    chained, dyldinfo = gimli_pass(rep)
    ok, total = testdb_pass(rep)
    m = chained.matched + dyldinfo.matched
    t = chained.total + dyldinfo.total
    print("gimli: %d/%d (chained fixups %d/%d, dyld info rebases/binds %d/%d)"
          % (m, t, chained.matched, chained.total, dyldinfo.matched, dyldinfo.total))
    print("testdb: %d/%d rizin/radare2 fixup values" % (ok, total))
    rep.finish()


if __name__ == "__main__":
    main()
