#!/usr/bin/env python3
"""Ad-hoc code signatures (src/codesign.c), checked independently in Python.

The unit test program (build/.../tests/test_codesign --sign IN OUT ID) signs a
file with dk_codesign_adhoc_image.  Here, with nothing but hashlib and the
layouts of xnu osfmk/kern/cs_blobs.h and <mach-o/loader.h>:

1. The checker itself is first run on every blob ld64.lld-22 wrote (the
   arm64 fixtures, hello.x86_64.adhoc): lld's signatures must pass it, so its
   expectations are lld's, not dyldkit's.
2. Every unsigned thin fixture (all x86_64 sets, hello.arm64.unsigned, ...) is
   signed, and the output must be the input with exactly these changes:
   ncmds + 1, sizeofcmds + 16, LC_CODE_SIGNATURE in the header padding after
   the last load command, __LINKEDIT's filesize (and vmsize) grown to the end
   of the signature, zeros up to a 16-byte aligned dataoff, and a signature
   whose every field and every page hash are recomputed here.
3. `dyldkit loadcmds --json` shows the CodeDirectory with the identifier and
   slot counts.
4. Re-signing a signed output with the same identifier gives the same bytes;
   with another identifier, the signature is replaced (no second
   LC_CODE_SIGNATURE) and the result checks out again.
5. Refusals, with the image not written: no room in the header, truncated
   input, bytes after __LINKEDIT, a universal file.
"""
import hashlib
import json
import os
import struct
import sys
import tempfile

sys.path.insert(0, os.path.join(os.path.dirname(__file__), "lib"))
import dktest  # noqa: E402

UNIT = os.path.join(dktest.BUILD, "tests", "test_codesign")
LC_SEGMENT, LC_SEGMENT_64, LC_CODE_SIGNATURE = 0x1, 0x19, 0x1D
MH_EXECUTE = 0x2
PAGE = 4096


def align16(v):
    return (v + 15) & ~15


def parse_macho(data):
    """Header, segments and LC_CODE_SIGNATURE of a thin little-endian Mach-O, or None."""
    if len(data) < 28:
        return None
    magic = struct.unpack_from("<I", data, 0)[0]
    if magic not in (0xFEEDFACE, 0xFEEDFACF):
        return None
    is64 = magic == 0xFEEDFACF
    hdr = 32 if is64 else 28
    cputype, _, filetype, ncmds, sizeofcmds = struct.unpack_from("<iIIII", data, 4)
    m = {"is64": is64, "hdr": hdr, "cputype": cputype, "filetype": filetype, "ncmds": ncmds,
         "sizeofcmds": sizeofcmds, "segments": [], "cs": None, "cmds": []}
    off = hdr
    for _ in range(ncmds):
        cmd, cmdsize = struct.unpack_from("<II", data, off)
        m["cmds"].append((cmd, off, cmdsize))
        if cmd in (LC_SEGMENT, LC_SEGMENT_64):
            name = data[off + 8:off + 24].rstrip(b"\0").decode()
            if cmd == LC_SEGMENT_64:
                vmaddr, vmsize, fileoff, filesize = struct.unpack_from("<QQQQ", data, off + 24)
                nsects = struct.unpack_from("<I", data, off + 64)[0]
                sects = []
                for k in range(nsects):
                    s = off + 72 + 80 * k
                    size, offset = struct.unpack_from("<QI", data, s + 40)
                    flags = struct.unpack_from("<I", data, s + 64)[0]
                    sects.append((size, offset, flags))
            else:
                vmaddr, vmsize, fileoff, filesize = struct.unpack_from("<IIII", data, off + 24)
                nsects = struct.unpack_from("<I", data, off + 48)[0]
                sects = []
                for k in range(nsects):
                    s = off + 56 + 68 * k
                    size, offset = struct.unpack_from("<II", data, s + 36)
                    flags = struct.unpack_from("<I", data, s + 56)[0]
                    sects.append((size, offset, flags))
            m["segments"].append({"name": name, "lc": off, "vmaddr": vmaddr, "vmsize": vmsize,
                                  "fileoff": fileoff, "filesize": filesize, "sects": sects})
        elif cmd == LC_CODE_SIGNATURE:
            m["cs"] = (off,) + struct.unpack_from("<II", data, off + 8)
        off += cmdsize
    return m


def segment(m, name):
    return next((s for s in m["segments"] if s["name"] == name), None)


def expected_blob_size(code_limit, ident):
    """SuperBlob (12) + one BlobIndex (8), padded to 24; CodeDirectory 0x20400 (88); identifier+NUL to 16."""
    return align16(24 + 88 + len(ident) + 1) + 32 * ((code_limit + PAGE - 1) // PAGE)


def check_blob(r, what, data, m, ident=None):
    """Every field of the signature in DATA against cs_blobs.h; returns the identifier found."""
    off, dataoff, datasize = m["cs"]
    blob = data[dataoff:dataoff + datasize]
    ok = r.ok(len(blob) == datasize and dataoff + datasize <= len(data), "%s: signature inside the file" % what)
    if not ok:
        return None
    magic, length, count = struct.unpack_from(">III", blob, 0)
    r.ok(magic == 0xFADE0CC0, "%s: SuperBlob magic %#x" % (what, magic))
    r.ok(length == datasize, "%s: SuperBlob length %d, datasize %d" % (what, length, datasize))
    r.ok(count == 1, "%s: %d blobs (one CodeDirectory expected)" % (what, count))
    btype, boff = struct.unpack_from(">II", blob, 12)
    r.ok(btype == 0 and boff == 24, "%s: blob index type %d offset %d" % (what, btype, boff))
    r.ok(blob[20:24] == b"\0" * 4, "%s: padding after the blob index" % what)
    cd = blob[boff:]
    (cmagic, clen, version, flags, hash_off, ident_off, nspecial, ncode, code_limit,
     hash_size, hash_type, platform, page_shift, spare2, scatter, team, spare3, limit64,
     seg_base, seg_limit, seg_flags) = struct.unpack_from(">IIIIIIIIIBBBBIIIIQQQQ", cd, 0)
    r.ok(cmagic == 0xFADE0C02, "%s: CodeDirectory magic %#x" % (what, cmagic))
    r.ok(clen == datasize - 24, "%s: CodeDirectory length %d" % (what, clen))
    r.ok(version == 0x20400, "%s: version %#x" % (what, version))
    r.ok(flags == 0x20002, "%s: flags %#x (CS_ADHOC | CS_LINKER_SIGNED)" % (what, flags))
    r.ok(nspecial == 0, "%s: %d special slots" % (what, nspecial))
    r.ok(code_limit == dataoff, "%s: codeLimit %#x, dataoff %#x" % (what, code_limit, dataoff))
    r.ok((hash_size, hash_type, platform, page_shift) == (32, 2, 0, 12),
         "%s: hashSize/hashType/platform/pageSize %r" % (what, (hash_size, hash_type, platform, page_shift)))
    r.ok((spare2, scatter, team, spare3, limit64) == (0, 0, 0, 0, 0), "%s: unused fields not zero" % what)
    text = segment(m, "__TEXT")
    r.ok((seg_base, seg_limit) == (text["fileoff"], text["filesize"]),
         "%s: execSeg %#x+%#x, __TEXT %#x+%#x" % (what, seg_base, seg_limit, text["fileoff"], text["filesize"]))
    r.ok(seg_flags == (1 if m["filetype"] == MH_EXECUTE else 0), "%s: execSegFlags %#x" % (what, seg_flags))
    r.ok(ident_off == 88, "%s: identOffset %d" % (what, ident_off))
    end = cd.index(b"\0", ident_off)
    found = cd[ident_off:end].decode()
    if ident is not None:
        r.ok(found == ident, "%s: identifier %r, expected %r" % (what, found, ident))
    r.ok(hash_off == align16(24 + 88 + len(found) + 1) - 24, "%s: hashOffset %d" % (what, hash_off))
    r.ok(cd[end:hash_off] == b"\0" * (hash_off - end), "%s: identifier padding not zero" % what)
    r.ok(ncode == (dataoff + PAGE - 1) // PAGE, "%s: nCodeSlots %d" % (what, ncode))
    r.ok(datasize == expected_blob_size(dataoff, found), "%s: datasize %d" % (what, datasize))
    bad = [i for i in range(ncode)
           if cd[hash_off + 32 * i:hash_off + 32 * i + 32]
           != hashlib.sha256(data[i * PAGE:min((i + 1) * PAGE, dataoff)]).digest()]
    r.ok(not bad, "%s: page hashes differ at pages %s" % (what, bad[:8]))
    return found


def check_signed(r, what, orig, out, ident):
    """OUT must be ORIG signed by dk_codesign_adhoc_image, with exactly the expected edits."""
    om, m = parse_macho(orig), parse_macho(out)
    if not r.ok(m is not None and m["cs"] is not None, "%s: output has no LC_CODE_SIGNATURE" % what):
        return
    lc_end = om["hdr"] + om["sizeofcmds"]
    if om["cs"] is None:
        r.ok(m["ncmds"] == om["ncmds"] + 1 and m["sizeofcmds"] == om["sizeofcmds"] + 16,
             "%s: ncmds/sizeofcmds %d/%d" % (what, m["ncmds"], m["sizeofcmds"]))
        r.ok(m["cs"][0] == lc_end and m["cmds"][-1][0] == LC_CODE_SIGNATURE,
             "%s: LC_CODE_SIGNATURE at %#x, expected %#x (last)" % (what, m["cs"][0], lc_end))
        base = len(orig)
    else:
        r.ok((m["ncmds"], m["sizeofcmds"]) == (om["ncmds"], om["sizeofcmds"]), "%s: load commands changed" % what)
        base = om["cs"][1]
    _, dataoff, datasize = m["cs"]
    r.ok(dataoff == align16(base), "%s: dataoff %#x, expected %#x" % (what, dataoff, align16(base)))
    r.ok(len(out) == dataoff + datasize, "%s: file size %d, signature ends at %d" % (what, len(out), dataoff + datasize))
    r.ok(out[base:dataoff] == b"\0" * (dataoff - base), "%s: padding before the signature" % what)
    ole, le = segment(om, "__LINKEDIT"), segment(m, "__LINKEDIT")
    r.ok(le["fileoff"] == ole["fileoff"] and le["fileoff"] + le["filesize"] == len(out),
         "%s: __LINKEDIT %#x+%#x does not end the file" % (what, le["fileoff"], le["filesize"]))
    if ole["vmsize"] == ole["filesize"]:
        want_vm = le["filesize"]
    elif ole["vmsize"] >= le["filesize"]:
        want_vm = ole["vmsize"]
    else:
        page = 0x4000 if om["cputype"] & 0xFFFFFF == 12 else 0x1000
        want_vm = (le["filesize"] + page - 1) & ~(page - 1)
    r.ok(le["vmsize"] == want_vm, "%s: __LINKEDIT vmsize %#x, expected %#x" % (what, le["vmsize"], want_vm))
    # everything else in front of the signature is the input's
    expect = bytearray(orig[:base])
    expect[16:24] = out[16:24]
    if om["cs"] is None:
        r.ok(orig[lc_end:lc_end + 16] == b"\0" * 16, "%s: header padding was not free" % what)
        expect[lc_end:lc_end + 16] = struct.pack("<IIII", LC_CODE_SIGNATURE, 16, dataoff, datasize)
    else:
        expect[om["cs"][0] + 8:om["cs"][0] + 16] = struct.pack("<II", dataoff, datasize)
    if om["is64"]:
        struct.pack_into("<Q", expect, ole["lc"] + 32, want_vm)
        struct.pack_into("<Q", expect, ole["lc"] + 48, le["filesize"])
    else:
        struct.pack_into("<I", expect, ole["lc"] + 28, want_vm)
        struct.pack_into("<I", expect, ole["lc"] + 36, le["filesize"])
    diff = [i for i in range(base) if expect[i] != out[i]]
    r.ok(not diff, "%s: %d unexpected byte changes, first at %#x" % (what, len(diff), diff[0] if diff else 0))
    check_blob(r, what, out, m, ident)


def sign(src, dst, ident):
    rc, _, err = dktest.run([UNIT, "--sign", src, dst, ident], timeout=60)
    return rc, err.decode(errors="replace")


def loadcmds_codedirectory(path):
    """The CodeDirectory summary `dyldkit loadcmds --json` prints for PATH."""
    rc, doc, _ = dktest.dk_json("loadcmds", "--json", path)
    if rc != 0:
        return None
    for lc in doc["loadcmds"]:
        if lc["cmd"] == "LC_CODE_SIGNATURE":
            sb = lc.get("superblob")
            sb = sb[0] if isinstance(sb, list) and sb else sb
            return sb, lc
    return None


def thin_fixtures():
    for row in dktest.fixture_manifest():
        path = row["abspath"]
        if not os.path.isfile(path):
            continue
        with open(path, "rb") as f:
            data = f.read()
        m = parse_macho(data)
        if m is not None:
            yield path, data, m


def main():
    r = dktest.Report("test_codesign")
    if not r.ok(os.path.exists(UNIT), "unit program %s not built" % UNIT):
        r.finish()
    fixtures = list(thin_fixtures())
    signed = [(p, d, m) for p, d, m in fixtures if m["cs"] is not None]
    unsigned = [(p, d, m) for p, d, m in fixtures
                if m["cs"] is None and segment(m, "__LINKEDIT") and segment(m, "__TEXT")]
    r.ok(len(signed) >= 20, "only %d lld-signed fixtures" % len(signed))
    r.ok(len(unsigned) >= 20, "only %d unsigned fixtures" % len(unsigned))

    # 1. the checker agrees with lld
    for path, data, m in signed:
        check_blob(r, "lld " + os.path.relpath(path, dktest.FIXTURES), data, m)

    with tempfile.TemporaryDirectory() as tmp:
        # 2. + 3. every unsigned fixture, signed
        for i, (path, data, m) in enumerate(unsigned):
            rel = os.path.relpath(path, dktest.FIXTURES)
            ident = os.path.basename(path)
            out = os.path.join(tmp, "s%d" % i)
            rc, err = sign(path, out, ident)
            if not r.ok(rc == 0, "%s: signing failed: %s" % (rel, err.strip())):
                continue
            with open(out, "rb") as f:
                sdata = f.read()
            check_signed(r, rel, data, sdata, ident)
            got = loadcmds_codedirectory(out)
            if r.ok(got is not None, "%s: loadcmds shows no LC_CODE_SIGNATURE" % rel):
                sb, lc = got
                blobs = sb["blobs"]
                r.ok(sb["magic_name"] == "CSMAGIC_EMBEDDED_SIGNATURE" and sb["count"] == 1 and len(blobs) == 1,
                     "%s: loadcmds SuperBlob %r" % (rel, sb))
                cd = blobs[0] if blobs else {}
                want = {"type_name": "CodeDirectory", "identifier": ident, "nSpecialSlots": 0,
                        "nCodeSlots": (lc["dataoff"] + PAGE - 1) // PAGE, "codeLimit": lc["dataoff"],
                        "hashType_name": "SHA-256", "hashSize": 32, "pageSize": PAGE, "version": 0x20400,
                        "flags": 0x20002}
                bad = {k: (cd.get(k), v) for k, v in want.items() if cd.get(k) != v}
                r.ok(not bad, "%s: loadcmds CodeDirectory (got, want): %r" % (rel, bad))

        # 4. re-signing
        src = os.path.join(dktest.FIXTURES, "misc", "hello.arm64.unsigned")
        with open(src, "rb") as f:
            orig = f.read()
        a, b, c = (os.path.join(tmp, n) for n in ("a", "b", "c"))
        if r.ok(sign(src, a, "hello")[0] == 0, "sign hello.arm64.unsigned"):
            r.ok(sign(a, b, "hello")[0] == 0, "re-sign with the same identifier")
            with open(a, "rb") as f:
                adata = f.read()
            with open(b, "rb") as f:
                r.ok(f.read() == adata, "re-signing with the same identifier changed the file")
            r.ok(sign(a, c, "com.example.some-much-longer-identifier")[0] == 0, "re-sign with another identifier")
            with open(c, "rb") as f:
                cdata = f.read()
            cm = parse_macho(cdata)
            r.ok(sum(1 for cmd in cm["cmds"] if cmd[0] == LC_CODE_SIGNATURE) == 1, "two LC_CODE_SIGNATURE commands")
            check_signed(r, "re-signed", adata, cdata, "com.example.some-much-longer-identifier")
            check_signed(r, "re-signed vs unsigned", orig, cdata, "com.example.some-much-longer-identifier")

        # 5. refusals
        m = parse_macho(orig)
        lc_end = m["hdr"] + m["sizeofcmds"]
        first = min(o for s in m["segments"] for size, o, fl in s["sects"] if size and o and fl & 0xFF not in (1, 0xC, 0x12))
        full = bytearray(orig)
        fill = (first - lc_end) & ~7
        struct.pack_into("<II", full, lc_end, 0x8, fill)  # LC_IDENT over the whole padding
        struct.pack_into("<II", full, 16, m["ncmds"] + 1, m["sizeofcmds"] + fill)
        cases = [
            ("no header room", bytes(full), "no room in the header for LC_CODE_SIGNATURE"),
            ("truncated header", orig[:24], "truncated"),
            ("truncated load commands", orig[:lc_end - 40], "sizeofcmds"),
            ("truncated __LINKEDIT", orig[:-8], "outside the"),
            ("bytes after __LINKEDIT", orig + b"\0" * 32, "after the end of __LINKEDIT"),
        ]
        with open(os.path.join(dktest.FIXTURES, "universal", "hello"), "rb") as f:
            cases.append(("universal file", f.read(), "universal"))
        for name, blob, msg in cases:
            inp, out = os.path.join(tmp, "in"), os.path.join(tmp, "out")
            if os.path.exists(out):
                os.unlink(out)
            with open(inp, "wb") as f:
                f.write(blob)
            rc, err = sign(inp, out, "hello")
            r.ok(rc == 1 and msg in err, "%s: exit %d, %r (expected %r)" % (name, rc, err.strip(), msg))
            r.ok(not os.path.exists(out), "%s: output written" % name)
    r.finish()


if __name__ == "__main__":
    main()
