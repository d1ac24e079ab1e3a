#!/usr/bin/env python3
"""arm64e fixtures (build/fixtures/arm64e-chained, made by tests/tools/mkarm64e
from arm64-chained), checked against the arm64 originals.

1. Every converted file: cputype ARM64 with cpusubtype 0x80000002 (arm64e,
   ptrauth ABI version 0); llvm-objdump-22 --chained-fixups decodes it
   (exit 0, empty stderr) and shows DYLD_CHAINED_PTR_ARM64E starts with the
   original's page size and the original's imports (then extra imports that
   copy one of them with an addend).  Every chain entry is decoded HERE from
   the file bytes with the arm64e layouts of <mach-o/fixup-chains.h>, walking
   llvm-objdump's page starts, and must mean, address for address, what
   llvm-objdump --dyld-info says the ORIGINAL's pointer meant (kind, rebase
   target, bind dylib/symbol/addend/weak import), with exactly the auth data
   mkarm64e's documented rules give (recomputed here from the sections).
   llvm-objdump-22 --dyld-info cannot decode pointer format 1 (it stops with
   "unsupported chained fixup pointer_format 1", see ../shared/docs/toolchain.md);
   if it ever does, its rows are compared too.
2. dyldkit fixups --json of original vs converted: equal apart from the auth
   data, which equals the rules; arch "arm64e".
3. Nothing else changed: every byte before __LINKEDIT except the header's
   cpusubtype, the three rewritten load commands and the pointers; the
   LINKEDIT blobs in place (the old fixups zeroed); the new fixups inside
   __LINKEDIT; a valid ad-hoc signature (page hashes recomputed here) with the
   original identifier wherever the original was signed.
4. mkarm64e reproduces the fixtures byte for byte, and refuses what it cannot
   convert (exit 1, one line, no output file) or bad usage (exit 2); damaged
   copies of an input (seeded) are converted or refused, never crash it.
5. dyldkit call: every selftest.json call on the converted libselftest (in
   place and from a copy with -L to the converted dependencies) and
   umbrella_selftest in the converted umbrella client and dylib with --root.
"""
import hashlib
import json
import os
import random
import shutil
import struct
import subprocess
import sys
import tempfile
from concurrent.futures import ThreadPoolExecutor

sys.path.insert(0, os.path.join(os.path.dirname(__file__), "lib"))
import dktest  # noqa: E402

SRC = os.path.join(dktest.FIXTURES, "arm64-chained")
DST = os.path.join(dktest.FIXTURES, "arm64e-chained")
MKARM64E = os.environ.get("MKARM64E", os.path.join(dktest.BUILD, "tools", "mkarm64e"))
REQUIRED = ["libminidep.dylib", "libminic.dylib", "libinner.dylib", "libouter.dylib", "libclient.dylib", "libshapes.dylib",
            "libflat.dylib", "selftest/libselftest.dylib", "selftest/libstinner.dylib", "selftest/libstouter.dylib",
            "selftest/libstweak.dylib", "umbrella/umbrella_client", "umbrella/libumbclient.dylib",
            "umbrella/root/usr/lib/libSystem.B.dylib", "umbrella/root/usr/lib/system/libdyld.dylib",
            "umbrella/root/usr/lib/system/libsystem_c.dylib", "umbrella/root/usr/lib/system/libsystem_kernel.dylib",
            "umbrella/root/usr/lib/system/libsystem_malloc.dylib"]
KEYS = ["IA", "IB", "DA", "DB"]
ARM64E_SUBTYPE = 0x80000002
LC_SEGMENT_64, LC_CODE_SIGNATURE, LC_DYLD_CHAINED_FIXUPS = 0x19, 0x1D, 0x80000034
CODE_ATTRS = 0x80000000 | 0x400  # S_ATTR_PURE_INSTRUCTIONS | S_ATTR_SOME_INSTRUCTIONS
UNSUPPORTED_DYLD_INFO = "unsupported chained fixup pointer_format 1"


def rel_files(root):
    out = []
    for d, _, names in os.walk(root):
        for n in names:
            p = os.path.join(d, n)
            if os.path.isfile(p) and not os.path.islink(p):
                out.append(os.path.relpath(p, root))
    return sorted(out)


# --------------------------------------------------------------- Mach-O


class MachO:
    """The load commands this test needs, parsed from the bytes."""

    def __init__(self, path):
        with open(path, "rb") as f:
            self.data = f.read()
        d = self.data
        magic, self.cputype, self.cpusubtype, _, ncmds, _, _, _ = struct.unpack_from("<8I", d, 0)
        assert magic == 0xFEEDFACF, "%s: not a 64-bit Mach-O" % path
        self.segs, self.sects, self.lcs = [], [], {}
        off = 32
        for _ in range(ncmds):
            cmd, size = struct.unpack_from("<II", d, off)
            if cmd == LC_SEGMENT_64:
                name = d[off + 8:off + 24].rstrip(b"\0").decode()
                vmaddr, vmsize, fileoff, filesize = struct.unpack_from("<4Q", d, off + 24)
                nsects = struct.unpack_from("<I", d, off + 64)[0]
                self.segs.append({"name": name, "vmaddr": vmaddr, "vmsize": vmsize, "fileoff": fileoff,
                                  "filesize": filesize, "lc": off})
                for k in range(nsects):
                    s = off + 72 + 80 * k
                    addr, ssize = struct.unpack_from("<2Q", d, s + 32)
                    flags = struct.unpack_from("<I", d, s + 64)[0]
                    self.sects.append({"sect": d[s:s + 16].rstrip(b"\0").decode(),
                                       "seg": d[s + 16:s + 32].rstrip(b"\0").decode(),
                                       "addr": addr, "size": ssize, "flags": flags})
            elif cmd in (LC_CODE_SIGNATURE, LC_DYLD_CHAINED_FIXUPS):
                dataoff, datasize = struct.unpack_from("<II", d, off + 8)
                self.lcs[cmd] = {"lc": off, "dataoff": dataoff, "datasize": datasize}
            off += size
        self.base = next(s["vmaddr"] for s in self.segs if s["fileoff"] == 0 and s["filesize"])
        self.linkedit = next(s for s in self.segs if s["name"] == "__LINKEDIT")

    def section_at(self, addr):
        for s in self.sects:
            if s["addr"] <= addr < s["addr"] + s["size"]:
                return s
        return None

    def file_offset(self, addr):
        for s in self.segs:
            if s["vmaddr"] <= addr < s["vmaddr"] + s["filesize"]:
                return s["fileoff"] + addr - s["vmaddr"]
        return None


def expected_auth(m, addr, kind, target=0, high8=0):
    """mkarm64e's rules (its header comment), recomputed: None or (key, diversity, addr_div)."""
    s = m.section_at(addr)
    if s is None:
        return None
    name = s["sect"]
    got = name in ("__got", "__auth_got", "__la_symbol_ptr", "__auth_ptr")
    slot = (addr - s["addr"]) // 8
    div = ((addr - m.base) & 0xFFFF) ^ 0xA5A5
    if kind == "bind":
        if got:
            return ("IA", 0, True)
        if name == "__const":
            return ("DA", div, False)
        if name == "__data":
            return ("DA", div, True)
        return None
    if high8 or target < m.base or target - m.base >= 1 << 32:
        return None
    ts = m.section_at(target)
    code = ts is not None and bool(ts["flags"] & CODE_ATTRS)
    if got and code:
        return ("IA", 0, True)
    if name == "__mod_init_func" and code:
        return ("IA", div, True)
    if name == "__const":
        return ("IA", div, slot % 2 == 0) if code else ("DA", div, True)
    if name == "__data" and slot % 4 == 3:
        return ("IA" if code else "DA", div, slot % 8 == 7)
    return None


# ------------------------------------------------------------ llvm-objdump


def objdump(*args):
    rc, out, err = dktest.run([dktest.OBJDUMP, "--macho"] + list(args), timeout=120)
    return rc, out.decode(errors="replace"), err.decode(errors="replace")


def parse_chained(text):
    """llvm-objdump --chained-fixups: header fields, starts per segment, imports."""
    hdr, starts, imports = {}, {}, []
    cur = None
    for line in text.splitlines():
        t = line.strip()
        if line.startswith("chained starts in segment "):
            cur = {"pages": []}
            starts[int(line.split()[4])] = cur
        elif line.startswith("dyld chained import"):
            cur = {"addend": 0}
            imports.append(cur)
        elif line.startswith("chained") or not t:
            cur = None if line.startswith("chained") else cur
        elif cur is not None and "=" in t:
            k, v = [x.strip() for x in t.split("=", 1)]
            if k.startswith("page_start["):
                cur["pages"].append(int(v.split()[0]))
            elif k in ("page_size", "segment_offset"):
                cur[k] = int(v, 16)
            elif k == "pointer_format":
                cur[k] = int(v.split()[0])
            elif k == "lib_ordinal":
                cur["ordinal"] = int(v.split()[0])
                cur["dylib"] = v.split("(", 1)[1].rstrip(")")
            elif k == "weak_import":
                cur["weak"] = v == "1"
            elif k == "name_offset":
                cur["name"] = v.split("(", 1)[1].rstrip(")")
            elif k == "addend":
                cur["addend"] = int(v)
        elif "=" in t:
            k, v = [x.strip() for x in t.split("=", 1)]
            if k in ("fixups_version", "imports_count", "imports_format", "symbols_format", "starts_offset"):
                hdr[k] = int(v.split()[0])
    return hdr, starts, imports


def parse_dyld_info(text):
    """llvm-objdump --dyld-info rows: {address: fixup}."""
    out = {}
    for line in text.splitlines():
        f = line.split()
        if len(f) < 6 or not f[2].startswith("0x") or f[4] not in ("rebase", "bind"):
            continue
        addr = int(f[2], 16)
        if f[4] == "rebase":
            out[addr] = {"kind": "rebase", "target": int(f[5], 16)}
        else:
            addend = int(f[5], 16)
            if addend >= 1 << 63:
                addend -= 1 << 64
            out[addr] = {"kind": "bind", "addend": addend, "dylib": f[6], "symbol": f[7],
                         "weak": line.rstrip().endswith("(weak import)")}
    return out


def parse_blob(m):
    """LC_DYLD_CHAINED_FIXUPS parsed here from the bytes: (header, {segment: starts}, imports)."""
    lc = m.lcs[LC_DYLD_CHAINED_FIXUPS]
    d = m.data[lc["dataoff"]:lc["dataoff"] + lc["datasize"]]
    names = ("fixups_version", "starts_offset", "imports_offset", "symbols_offset", "imports_count", "imports_format",
             "symbols_format")
    hdr = dict(zip(names, struct.unpack_from("<7I", d, 0)))
    starts = {}
    seg_count = struct.unpack_from("<I", d, hdr["starts_offset"])[0]
    for i in range(seg_count):
        off = struct.unpack_from("<I", d, hdr["starts_offset"] + 4 + 4 * i)[0]
        if off == 0:
            continue
        at = hdr["starts_offset"] + off
        _, page_size, fmt, seg_off, _, count = struct.unpack_from("<IHHQIH", d, at)
        starts[i] = {"page_size": page_size, "pointer_format": fmt, "segment_offset": seg_off,
                     "pages": list(struct.unpack_from("<%dH" % count, d, at + 22))}
    imports = []
    fmt = hdr["imports_format"]
    for i in range(hdr["imports_count"]):
        if fmt == 1:
            v = struct.unpack_from("<I", d, hdr["imports_offset"] + 4 * i)[0]
            ordinal, weak, noff, addend = v & 0xFF, (v >> 8) & 1, v >> 9, 0
        elif fmt == 2:
            v, addend = struct.unpack_from("<Ii", d, hdr["imports_offset"] + 8 * i)
            ordinal, weak, noff = v & 0xFF, (v >> 8) & 1, v >> 9
        else:
            v, addend = struct.unpack_from("<Qq", d, hdr["imports_offset"] + 16 * i)
            ordinal, weak, noff = v & 0xFFFF, (v >> 16) & 1, v >> 32
        bits = 8 if fmt != 3 else 16
        if ordinal >= (1 << bits) - 15:  # the special ordinals 0xF0.. are negative
            ordinal -= 1 << bits
        so = hdr["symbols_offset"] + noff
        imports.append({"ordinal": ordinal, "weak": bool(weak), "addend": addend,
                        "name": d[so:d.index(b"\0", so)].decode()})
    return hdr, starts, imports


def decode_chains(m, starts, imports):
    """Walk the page starts and decode every entry (DYLD_CHAINED_PTR_64, _64_OFFSET or ARM64E) of M
    with the layouts of <mach-o/fixup-chains.h>: {address: fixup}, problems."""
    out, problems = {}, []
    for seg_index, st in sorted(starts.items()):
        fmt = st["pointer_format"]
        if fmt not in (1, 2, 6):
            problems.append("segment %d: pointer_format %d" % (seg_index, fmt))
            continue
        seg_addr = m.base + st["segment_offset"]
        for page, start in enumerate(st["pages"]):
            if start == 0xFFFF:
                continue
            addr = seg_addr + page * st["page_size"] + start
            while True:
                off = m.file_offset(addr)
                if off is None:
                    problems.append("entry at 0x%x is outside the file" % addr)
                    break
                raw = struct.unpack_from("<Q", m.data, off)[0]
                e = {"auth": None}
                if fmt == 1:
                    auth, bind, nxt, stride = raw >> 63, (raw >> 62) & 1, (raw >> 51) & 0x7FF, 8
                    if bind:
                        ordinal, inline = raw & 0xFFFF, 0
                        if (raw >> 16) & 0xFFFF:
                            problems.append("bind at 0x%x: zero field is 0x%x" % (addr, (raw >> 16) & 0xFFFF))
                        if not auth:
                            inline = (raw >> 32) & 0x7FFFF
                            if inline & 0x40000:
                                inline -= 1 << 19
                    elif auth:
                        e.update(kind="rebase", target=m.base + (raw & 0xFFFFFFFF), high8=0)
                    else:
                        e.update(kind="rebase", target=raw & ((1 << 43) - 1), high8=(raw >> 43) & 0xFF)
                    if auth:
                        e["auth"] = (KEYS[(raw >> 49) & 3], (raw >> 32) & 0xFFFF, bool((raw >> 48) & 1))
                else:
                    bind, nxt, stride = raw >> 63, (raw >> 51) & 0xFFF, 4
                    if bind:
                        ordinal, inline = raw & 0xFFFFFF, (raw >> 24) & 0xFF
                    else:
                        target = raw & ((1 << 36) - 1)
                        e.update(kind="rebase", target=target + (m.base if fmt == 6 else 0), high8=(raw >> 36) & 0xFF)
                if bind:
                    if ordinal >= len(imports):
                        problems.append("bind at 0x%x: import %d of %d" % (addr, ordinal, len(imports)))
                        break
                    imp = imports[ordinal]
                    e.update(kind="bind", ordinal=imp["ordinal"], symbol=imp["name"], addend=imp["addend"] + inline,
                             weak=imp["weak"])
                if addr in out:
                    problems.append("entry at 0x%x reached twice" % addr)
                    break
                out[addr] = e
                if not nxt:
                    break
                addr += stride * nxt
    return out, problems


# --------------------------------------------------------- code signature


def check_signature(ok, rel, orig, conv):
    ocs, ccs = orig.lcs.get(LC_CODE_SIGNATURE), conv.lcs.get(LC_CODE_SIGNATURE)
    if not ok((ocs is None) == (ccs is None), "%s: LC_CODE_SIGNATURE present in one file only" % rel):
        return
    if ccs is None:
        return

    def ident_and_cd(m, cs):
        sb = m.data[cs["dataoff"]:cs["dataoff"] + cs["datasize"]]
        magic, _, count = struct.unpack_from(">3I", sb, 0)
        for i in range(count):
            typ, boff = struct.unpack_from(">2I", sb, 12 + 8 * i)
            if typ == 0:
                cd = sb[boff:]
                ident_off = struct.unpack_from(">I", cd, 20)[0]
                return cd[ident_off:cd.index(b"\0", ident_off)].decode(), cd
        return None, None

    oid, _ = ident_and_cd(orig, ocs)
    cid, cd = ident_and_cd(conv, ccs)
    if not ok(cd is not None and cid == oid, "%s: signature identifier %r, original %r" % (rel, cid, oid)):
        return
    le = conv.linkedit
    ok(ccs["dataoff"] + ccs["datasize"] <= len(conv.data) and len(conv.data) - (ccs["dataoff"] + ccs["datasize"]) < 16
           and ccs["dataoff"] % 16 == 0, "%s: signature not at the end of the file" % rel)
    ok(le["fileoff"] + le["filesize"] == len(conv.data), "%s: __LINKEDIT does not end at the end of the file" % rel)
    hash_off, _, _, n_code, code_limit = struct.unpack_from(">5I", cd, 16)
    hash_size, hash_type, _, page_log = cd[36], cd[37], cd[38], cd[39]
    ok(code_limit == ccs["dataoff"], "%s: codeLimit 0x%x, signature at 0x%x" % (rel, code_limit, ccs["dataoff"]))
    page = 1 << page_log
    good = hash_type == 2 and hash_size == 32 and n_code == (code_limit + page - 1) // page
    for i in range(n_code if good else 0):
        want = hashlib.sha256(conv.data[i * page:min((i + 1) * page, code_limit)]).digest()
        if cd[hash_off + 32 * i:hash_off + 32 * i + 32] != want:
            good = False
            break
    ok(good, "%s: the ad-hoc signature's page hashes do not match the file" % rel)


# ------------------------------------------------------------- one file


def check_file(rel):
    """Every static check of one converted file: ([(passed, message)], {kind: authenticated pointers})."""
    res = []

    def ok(cond, what):
        res.append((bool(cond), what))
        return cond

    opath, cpath = os.path.join(SRC, rel), os.path.join(DST, rel)
    orig, conv = MachO(opath), MachO(cpath)
    ok(conv.cputype == 0x0100000C and conv.cpusubtype == ARM64E_SUBTYPE,
       "%s: cputype 0x%x cpusubtype 0x%x, want ARM64 / 0x%x" % (rel, conv.cputype, conv.cpusubtype, ARM64E_SUBTYPE))
    ok(orig.cpusubtype == 0, "%s: original cpusubtype 0x%x" % (rel, orig.cpusubtype))

    # the chained fixups, parsed here; llvm-objdump --chained-fixups must decode the arm64e
    # file and agree (it misprints DYLD_CHAINED_IMPORT_ADDEND64 names, ordinals and flags)
    nauth = {"rebase": 0, "bind": 0}
    ohdr, ostarts, oimports = parse_blob(orig)
    chdr, cstarts, cimports = parse_blob(conv)
    for path, (hdr, starts, imports) in ((opath, (ohdr, ostarts, oimports)), (cpath, (chdr, cstarts, cimports))):
        args = ["--chained-fixups"] + (["--dyld-info"] if path == opath else [])
        rc, text, err = objdump(*(args + [path]))
        what = "%s%s: llvm-objdump %s" % (rel, " (original)" if path == opath else "", " ".join(args))
        if not ok(rc == 0 and not err, "%s: exit %d: %s" % (what, rc, err.strip()[:300])):
            return res, nauth
        thdr, tstarts, timports = parse_chained(text)
        ok(all(thdr.get(k) == hdr[k] for k in thdr) and tstarts == starts, "%s: header/starts differ from the bytes" % what)
        full = hdr["imports_format"] != 3
        ok([(i["addend"],) + ((i["ordinal"], i["name"], i["weak"]) if full else ()) for i in timports] ==
           [(i["addend"],) + ((i["ordinal"], i["name"], i["weak"]) if full else ()) for i in imports],
           "%s: imports differ from the bytes" % what)
        if path == opath:
            short = {i["ordinal"]: t["dylib"] for i, t in zip(imports, timports)}
            dinfo = parse_dyld_info(text)
    ok(chdr["fixups_version"] == 0 and chdr["symbols_format"] == 0, "%s: chained header %s" % (rel, chdr))
    ok(sorted(cstarts) == sorted(ostarts), "%s: segments with starts %s, original %s" % (rel, sorted(cstarts), sorted(ostarts)))
    for i, st in cstarts.items():
        o = ostarts.get(i, {"pages": []})
        n = len(o["pages"])
        # lld stops page_start at the last page with fixups, dyldkit's encoder covers the segment
        ok(st["pointer_format"] == 1 and st["page_size"] == o.get("page_size") and st["segment_offset"] == o.get("segment_offset")
           and st["pages"][:n] == o["pages"] and all(p == 0xFFFF for p in st["pages"][n:]),
           "%s: segment %d starts %s, original %s" % (rel, i, st, o))
    key = lambda im: (im["ordinal"], im["name"], im["weak"], im["addend"])  # noqa: E731
    ok([key(i) for i in cimports[:len(oimports)]] == [key(i) for i in oimports], "%s: imports differ from the original's" % rel)
    onames = {(i["ordinal"], i["name"], i["weak"]) for i in oimports}
    ok(all((i["ordinal"], i["name"], i["weak"]) in onames for i in cimports[len(oimports):]),
       "%s: an extra import is not a copy of an original one" % rel)

    # every pointer of both files decoded here; the original's also against llvm-objdump --dyld-info
    want, problems = decode_chains(orig, ostarts, oimports)
    ok(not problems, "%s (original): chain walk: %s" % (rel, "; ".join(problems[:5])))
    full = ohdr["imports_format"] != 3
    mism = [a for a in sorted(set(want) | set(dinfo))
            if a not in want or a not in dinfo or want[a]["kind"] != dinfo[a]["kind"]
            or (want[a]["kind"] == "rebase" and want[a]["target"] != dinfo[a]["target"])
            or (want[a]["kind"] == "bind" and (want[a]["addend"] != dinfo[a]["addend"] or full and (
                short.get(want[a]["ordinal"]) != dinfo[a]["dylib"] or want[a]["symbol"] != dinfo[a]["symbol"]
                or want[a]["weak"] != dinfo[a]["weak"])))]
    ok(not mism, "%s (original): this decoder and llvm-objdump --dyld-info disagree at %s" % (rel, [hex(a) for a in mism[:5]]))
    got, problems = decode_chains(conv, cstarts, cimports)
    ok(not problems, "%s: chain walk: %s" % (rel, "; ".join(problems[:5])))
    ok(sorted(got) == sorted(want), "%s: %d pointers, original %d (only here: %s; only there: %s)" % (
        rel, len(got), len(want), [hex(a) for a in sorted(set(got) - set(want))[:5]],
        [hex(a) for a in sorted(set(want) - set(got))[:5]]))
    bad = []
    for addr in sorted(set(got) & set(want)):
        g, w = dict(got[addr]), dict(want[addr])
        gauth = g.pop("auth")
        w.pop("auth")
        exp = expected_auth(orig, addr, g["kind"], g.get("target", 0), g.get("high8", 0))
        if gauth is not None:
            nauth[g["kind"]] += 1
        if g != w or gauth != exp:
            bad.append("0x%x: %s auth %s, original %s (want auth %s)" % (addr, g, gauth, w, exp))
    ok(not bad, "%s: %d pointers differ: %s" % (rel, len(bad), "; ".join(bad[:4])))

    # llvm-objdump --dyld-info on the arm64e file: cannot decode format 1 today
    rc, text, err = objdump("--dyld-info", cpath)
    if rc == 0 and not err:
        cinfo = parse_dyld_info(text)
        ok({a: (f["kind"], f.get("target"), f.get("symbol"), f.get("addend")) for a, f in cinfo.items()} ==
           {a: (f["kind"], f.get("target"), f.get("symbol"), f.get("addend")) for a, f in dinfo.items()},
           "%s: llvm-objdump --dyld-info of the arm64e file differs from the original's" % rel)
    else:
        ok(UNSUPPORTED_DYLD_INFO in err or not got,
           "%s: llvm-objdump --dyld-info exit %d: %s" % (rel, rc, err.strip()[:300]))

    # dyldkit fixups --json: original and converted agree apart from auth
    rc1, d1, e1 = dktest.dk_json("fixups", "--json", opath)
    rc2, d2, e2 = dktest.dk_json("fixups", "--json", cpath)
    if ok(rc1 == 0 and rc2 == 0, "%s: dyldkit fixups: %s %s" % (rel, e1.strip(), e2.strip())):
        ok(d2["arch"] == "arm64e" and d2["encoding"] == "chained", "%s: dyldkit fixups arch %r encoding %r" % (
            rel, d2["arch"], d2["encoding"]))
        f1 = {f["address"]: f for f in d1["fixups"]}
        f2 = {f["address"]: f for f in d2["fixups"]}
        ok(sorted(f1) == sorted(f2) == sorted(want), "%s: dyldkit fixups addresses differ (%d original, %d arm64e)" % (
            rel, len(f1), len(f2)))
        bad = []
        for addr in sorted(set(f1) & set(f2)):
            a, b = dict(f1[addr]), dict(f2[addr])
            auth = b.pop("auth", None)
            a.pop("auth", "absent")
            exp = expected_auth(orig, addr, a["kind"], a.get("target", 0), a.get("high8", 0))
            got_auth = (auth["key"], auth["diversity"], auth["addr_div"]) if auth else None
            if a != b or got_auth != exp or "auth" in f1[addr]:
                bad.append("0x%x: %s / %s (auth %s, want %s)" % (addr, f1[addr], f2[addr], got_auth, exp))
        ok(not bad, "%s: dyldkit fixups: %d differ: %s" % (rel, len(bad), "; ".join(bad[:3])))

    # nothing else changed
    ocf, ccf = orig.lcs[LC_DYLD_CHAINED_FIXUPS], conv.lcs[LC_DYLD_CHAINED_FIXUPS]
    le = conv.linkedit
    ok(le["fileoff"] <= ccf["dataoff"] and ccf["dataoff"] + ccf["datasize"] <= le["fileoff"] + le["filesize"]
       and ccf["dataoff"] % 8 == 0, "%s: new chained fixups 0x%x+0x%x outside __LINKEDIT" % (rel, ccf["dataoff"], ccf["datasize"]))
    ok(le["vmsize"] >= le["filesize"] and le["fileoff"] == orig.linkedit["fileoff"], "%s: __LINKEDIT %s" % (rel, le))
    a, b = bytearray(orig.data[:orig.linkedit["fileoff"]]), bytearray(conv.data[:le["fileoff"]])
    for buf, m in ((a, orig), (b, conv)):
        buf[8:12] = b"\0" * 4  # cpusubtype
        for x in m.lcs.values():
            buf[x["lc"] + 8:x["lc"] + 16] = b"\0" * 8  # dataoff, datasize
        buf[m.linkedit["lc"] + 32:m.linkedit["lc"] + 40] = b"\0" * 8  # vmsize
        buf[m.linkedit["lc"] + 48:m.linkedit["lc"] + 56] = b"\0" * 8  # filesize
        for addr in want:
            off = m.file_offset(addr)
            buf[off:off + 8] = b"\0" * 8
    ok(a == b, "%s: bytes before __LINKEDIT differ beyond the header, fixups and pointers" % rel)
    old = conv.data[ocf["dataoff"]:ocf["dataoff"] + ocf["datasize"]]
    ok(old == b"\0" * len(old), "%s: the old chained fixups are not zeroed" % rel)
    ocs = orig.lcs.get(LC_CODE_SIGNATURE)
    le_end = ocs["dataoff"] if ocs and ocs["datasize"] else orig.linkedit["fileoff"] + orig.linkedit["filesize"]
    keep = range(orig.linkedit["fileoff"], le_end)
    same = all(conv.data[i] == orig.data[i] for i in keep if not ocf["dataoff"] <= i < ocf["dataoff"] + ocf["datasize"])
    ok(same, "%s: LINKEDIT bytes other than the fixups changed" % rel)
    check_signature(ok, rel, orig, conv)
    return res, nauth


# ----------------------------------------------------------- mkarm64e


def check_tool(rep, files, tmp):
    if not rep.ok(os.access(MKARM64E, os.X_OK), "mkarm64e not built at %s" % MKARM64E):
        return
    out = os.path.join(tmp, "conv")
    for rel in files:
        dst = os.path.join(out, rel)
        os.makedirs(os.path.dirname(dst), exist_ok=True)
        rc, _, err = dktest.run([MKARM64E, os.path.join(SRC, rel), dst])
        if rep.ok(rc == 0, "mkarm64e %s: exit %d: %s" % (rel, rc, err.decode(errors="replace").strip())):
            with open(dst, "rb") as a, open(os.path.join(DST, rel), "rb") as b:
                rep.ok(a.read() == b.read(), "mkarm64e %s: output differs from the fixture (stale fixtures?)" % rel)

    # inputs it cannot convert: exit 1, one line, no output
    trunc = os.path.join(tmp, "truncated.dylib")
    with open(os.path.join(SRC, "libminic.dylib"), "rb") as f:
        data = f.read()
    with open(trunc, "wb") as f:
        f.write(data[:len(data) // 2])
    notmacho = os.path.join(tmp, "text.txt")
    with open(notmacho, "w") as f:
        f.write("not a Mach-O file\n")
    cases = [
        (os.path.join(dktest.FIXTURES, "universal", "hello"), "universal"),
        (os.path.join(dktest.FIXTURES, "arm64-classic", "hello"), "no chained fixups"),
        (os.path.join(dktest.FIXTURES, "x86_64-chained", "libminic.dylib"), "only arm64"),
        (os.path.join(dktest.FIXTURES, "misc", "arm64_32", "libminic.dylib"), "only arm64"),
        (os.path.join(DST, "libminic.dylib"), "already arm64e"),
        (os.path.join(tmp, "does-not-exist"), "cannot read"),
        (trunc, ""),
        (notmacho, ""),
    ]
    for src, needle in cases:
        dst = os.path.join(tmp, "refused.out")
        rc, out, err = dktest.run([MKARM64E, src, dst])
        err = err.decode(errors="replace")
        what = "mkarm64e %s" % os.path.relpath(src, dktest.FIXTURES)
        rep.ok(rc == 1 and err.count("\n") == 1 and needle in err and not out, "%s: exit %d, stderr %r" % (what, rc, err))
        rep.ok(not os.path.exists(dst), "%s: wrote an output file" % what)
    # damaged inputs (seeded): converted or refused with one message, never a crash
    rng = random.Random(0xA64E)
    src = MachO(os.path.join(SRC, "selftest", "libselftest.dylib"))
    cf = src.lcs[LC_DYLD_CHAINED_FIXUPS]
    data_seg = next(x for x in src.segs if x["name"] == "__DATA")
    for i in range(40 // (2 if dktest.SLOW > 1 else 1)):
        d = bytearray(src.data)
        lo, hi = (cf["dataoff"], cf["dataoff"] + cf["datasize"]) if i % 2 else (
            data_seg["fileoff"], data_seg["fileoff"] + 0x400)
        for _ in range(rng.randint(1, 4)):
            d[rng.randrange(lo, hi)] = rng.randrange(256)
        bad = os.path.join(tmp, "damaged.dylib")
        dst = os.path.join(tmp, "damaged.out")
        if os.path.exists(dst):
            os.remove(dst)
        with open(bad, "wb") as f:
            f.write(d)
        rc, out, err = dktest.run([MKARM64E, bad, dst])
        err = err.decode(errors="replace")
        what = "mkarm64e damaged copy %d" % i
        if rep.ok(rc in (0, 1) and "Sanitizer" not in err and "runtime error" not in err,
                  "%s: exit %d: %s" % (what, rc, err.strip()[:300])):
            rep.ok((rc == 0) == os.path.exists(dst) and (rc == 0 or err.count("\n") == 1),
                   "%s: exit %d, output %s, stderr %r" % (what, rc, os.path.exists(dst), err))
    for args in ([], ["only-one"], ["-x", "a", "b"], ["a", "b", "c"]):
        rc, _, err = dktest.run([MKARM64E] + args)
        rep.ok(rc == 2 and b"usage" in err, "mkarm64e %s: exit %d (want 2 and a usage line)" % (args, rc))


# ----------------------------------------------------------- dyldkit call


def call(*args):
    try:
        rc, out, err = dktest.run([dktest.DYLDKIT, "call"] + list(args), timeout=60)
    except subprocess.TimeoutExpired:
        return "timeout", "", ""
    return rc, out.decode(errors="replace"), err.decode(errors="replace")


def check_calls(rep, tmp):
    with open(os.path.join(dktest.ROOT, "tests", "fixtures", "expected", "selftest.json")) as f:
        spec = json.load(f)
    lib = os.path.join(DST, "selftest", "libselftest.dylib")
    alone = os.path.join(tmp, "alone")
    os.makedirs(alone, exist_ok=True)
    shutil.copy(lib, alone)
    targets = [("in place", [], lib), ("copy, -L", ["-L", os.path.join(DST, "selftest")],
                                        os.path.join(alone, "libselftest.dylib"))]
    jobs = [(label, extra, path, c) for label, extra, path in targets for c in spec["calls"]
            if "archs" not in c or "arm64" in c["archs"]]

    def one(job):
        label, extra, path, c = job
        return job, call(*(extra + ["--ret", c["ret"], path, c["symbol"]] + c["args"]))

    with ThreadPoolExecutor(max_workers=4) as ex:
        for (label, extra, path, c), (rc, out, err) in ex.map(one, jobs):
            what = "call %s(%s) (%s)" % (c["symbol"], ", ".join(c["args"]), label)
            if not rep.ok(rc == 0, "%s: exit %s: %s" % (what, rc, err.strip()[:300])):
                continue
            lines = out.split("\n")
            try:
                value = int(lines[-2])
            except (ValueError, IndexError):
                rep.fail("%s: no result line in %r" % (what, out))
                continue
            printed = "\n".join(lines[:-2]) + ("\n" if len(lines) > 2 else "")
            if "result" in c:
                rep.ok(value == c["result"], "%s: returned %d, expected %d" % (what, value, c["result"]))
            if "result_min" in c:
                rep.ok(value >= c["result_min"], "%s: returned %d, expected >= %d" % (what, value, c["result_min"]))
            rep.ok(printed == c.get("stdout", ""), "%s: printed %r, expected %r" % (what, printed, c.get("stdout", "")))
    rc, out, err = call("--json", lib, "selftest")
    if rep.ok(rc == 0, "call --json selftest: exit %s: %s" % (rc, err.strip())):
        doc = json.loads(out)
        rep.ok(doc.get("arch") == "arm64e" and doc.get("mode") == "emulated" and doc.get("result") == 0,
               "call --json selftest: %s" % out.strip()[:300])
    root = os.path.join(DST, "umbrella", "root")
    for rel in ("umbrella/umbrella_client", "umbrella/libumbclient.dylib"):
        rc, out, err = call("--root", root, os.path.join(DST, rel), "umbrella_selftest")
        rep.ok(rc == 0 and out == "0\n", "call --root %s umbrella_selftest: exit %s, stdout %r: %s" % (rel, rc, out, err.strip()))


def main():
    rep = dktest.Report("arm64e")
    if not rep.ok(os.path.isdir(DST), "%s missing: the fixture build skips it when mkarm64e is not built" % DST):
        rep.finish()
    src_files, dst_files = rel_files(SRC), rel_files(DST)
    rep.ok(src_files == dst_files, "arm64e-chained does not mirror arm64-chained: only in arm64: %s; only in arm64e: %s" % (
        sorted(set(src_files) - set(dst_files)), sorted(set(dst_files) - set(src_files))))
    for rel in REQUIRED:
        rep.ok(rel in dst_files, "arm64e-chained/%s missing" % rel)
    link = os.path.join(DST, "umbrella", "root", "usr", "lib", "libSystem.dylib")
    rep.ok(os.path.islink(link) and os.readlink(link) == "libSystem.B.dylib", "umbrella root: libSystem.dylib symlink")
    files = sorted(set(src_files) & set(dst_files))
    totals = {"rebase": 0, "bind": 0}
    with ThreadPoolExecutor(max_workers=4) as ex:
        for res, nauth in ex.map(check_file, files):
            for cond, what in res:
                rep.ok(cond, what)
            for k in totals:
                totals[k] += nauth[k]
    # the rules must really produce authenticated rebases and binds of every key
    rep.ok(totals["rebase"] > 1000 and totals["bind"] > 100, "auth totals %s" % totals)
    keys = set()
    for rel in ("libminic.dylib", "selftest/libselftest.dylib"):
        rc, doc, _ = dktest.dk_json("fixups", "--json", os.path.join(DST, rel))
        if rc == 0:
            keys |= {(f["kind"], f["auth"]["key"], f["auth"]["addr_div"]) for f in doc["fixups"] if "auth" in f}
    for want in [("bind", "IA", True), ("bind", "DA", True), ("rebase", "IA", True), ("rebase", "IA", False),
                 ("rebase", "DA", False), ("rebase", "DA", True)]:
        rep.ok(want in keys, "no %s with key %s addr_div %s in libminic/libselftest" % want)
    rep.ok(not any(k in ("IB", "DB") for _, k, _ in keys), "B keys used (cache slide info v5 cannot hold them)")
    tmp = tempfile.mkdtemp(prefix="dk-arm64e-")
    try:
        check_tool(rep, files, tmp)
        check_calls(rep, tmp)
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    print("arm64e: %d files, %d auth rebases, %d auth binds" % (len(files), totals["rebase"], totals["bind"]))
    rep.finish()


if __name__ == "__main__":
    main()
