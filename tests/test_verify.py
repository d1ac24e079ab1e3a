#!/usr/bin/env python3
"""verify: every fixture passes (the umbrella clients with --root); damaged
copies fail the check that names the damage (header, stubs, binds, code);
every corpus file gets a verdict (exit 0 or 1), never a crash."""
import json
import os
import shutil
import struct
import sys
import tempfile

sys.path.insert(0, os.path.join(os.path.dirname(__file__), "lib"))
import dktest  # noqa: E402


def checks(doc):
    return {c["name"]: c for c in doc["checks"]}


def main():
    rep = dktest.Report("verify")
    for row in dktest.fixture_manifest():
        path = row["abspath"]
        args = ["verify", "--json"]
        if "/umbrella/" in path and "/root/" not in path:
            args += ["--root", os.path.join(os.path.dirname(path), "root")]
        rc, out, err = dktest.dk(*(args + [path]))
        rep.ok(rc == 0, "%s: verify exit %d: %s %s" % (row["name"], rc, err.decode().strip(), out[:300]))

    tmp = tempfile.mkdtemp(prefix="dk-verify-")
    try:
        src = os.path.join(dktest.FIXTURES, "x86_64-classic", "libminic.dylib")
        # 1. MH_DYLIB_IN_CACHE set in a standalone file
        bad = os.path.join(tmp, "incache.dylib")
        data = bytearray(open(src, "rb").read())
        flags = struct.unpack_from("<I", data, 24)[0] | 0x80000000
        struct.pack_into("<I", data, 24, flags)
        open(bad, "wb").write(data)
        rc, out, err = dktest.dk("verify", "--json", bad)
        rep.ok(rc == 1 and checks(json.loads(out))["header"]["ok"] is False, "MH_DYLIB_IN_CACHE flagged")
        rep.ok(b"check" in err and err.count(b"\n") == 1, "one-line message on stderr: %r" % err)
        # 2. a stub whose instructions no longer decode
        rc, doc, _ = dktest.dk_json("stubs", "--json", src)
        stub = doc["stubs"][0]
        rc, segs, _ = dktest.dk_json("segments", "--json", src)
        text = [s for s in segs["segments"] if s["name"] == "__TEXT"][0]
        off = stub["address"] - text["vmaddr"] + text["fileoff"]
        data = bytearray(open(src, "rb").read())
        data[off:off + 2] = b"\x90\x90"
        bad2 = os.path.join(tmp, "badstub.dylib")
        open(bad2, "wb").write(data)
        rc, out, err = dktest.dk("verify", "--json", bad2)
        rep.ok(rc == 1 and checks(json.loads(out))["stubs"]["ok"] is False, "broken stub flagged")
        # 3. a bind whose symbol the root does not export
        client = os.path.join(dktest.FIXTURES, "arm64-chained", "umbrella", "umbrella_client")
        emptyroot = os.path.join(tmp, "root", "usr", "lib")
        os.makedirs(emptyroot)
        shutil.copy(os.path.join(dktest.FIXTURES, "arm64-chained", "umbrella", "root", "usr", "lib", "libSystem.B.dylib"), emptyroot)
        rc, out, err = dktest.dk("verify", "--json", "--root", os.path.join(tmp, "root"), client)
        rep.ok(rc == 1 and checks(json.loads(out))["binds"]["ok"] is False, "binds whose re-exported libraries are missing flagged")
        # 4. arm64 code addressing outside the image (what an extraction that missed a
        #    cache-wide GOT or branch island leaves): the first ADRP aimed 1 GiB away
        a64 = os.path.join(dktest.FIXTURES, "arm64-chained", "libminic.dylib")
        rc, doc, _ = dktest.dk_json("verify", "--json", a64)
        rep.ok(rc == 0 and checks(doc)["code"]["count"] > 0, "arm64 code references checked: %r" % checks(doc).get("code"))
        rc, segs, _ = dktest.dk_json("segments", "--json", a64)
        sect = [x for g in segs["segments"] for x in g["sections"] if x["name"] == "__text"][0]
        data = bytearray(open(a64, "rb").read())
        for off in range(sect["offset"], sect["offset"] + sect["size"], 4):
            insn = struct.unpack_from("<I", data, off)[0]
            if insn & 0x9F000000 == 0x90000000:  # ADRP
                struct.pack_into("<I", data, off, (insn & ~(0x7FFFF << 5)) | (0x3FFFF << 5))
                break
        else:
            rep.ok(False, "no ADRP in %s" % a64)
        bad4 = os.path.join(tmp, "farpage.dylib")
        open(bad4, "wb").write(data)
        rc, out, err = dktest.dk("verify", "--json", bad4)
        rep.ok(rc == 1 and checks(json.loads(out))["code"]["ok"] is False, "ADRP outside the image flagged")
    finally:
        shutil.rmtree(tmp)

    n = 0
    for row in dktest.corpus_manifest():
        if row["path"].startswith("dyld_caches/") or row["malformed"] == "yes":
            continue
        rc, out, err = dktest.dk("verify", row["abspath"], timeout=20)
        n += 1
        rep.ok(rc in (0, 1), "%s: verify exit %d %s" % (row["path"], rc, err.decode(errors="replace").strip()))
    print("verify: %d corpus files got a verdict" % n)
    rep.finish()


if __name__ == "__main__":
    main()
