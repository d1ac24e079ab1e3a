#!/usr/bin/env python3
"""dyld shared cache reader tests.

1. The real caches in ../shared/corpus/dyld_caches: every value of
   expected/dyld_caches/*.json (header fields, both mapping tables, image
   tables, slide info headers, page starts and every rebase), the rizin test-db
   symbols and sections, and every image opened as CACHE:IMAGE by the Mach-O
   commands.
2. Synthetic caches written here byte by byte for the layouts the corpus lacks:
   split caches with 24-byte (".1") and 56-byte (".01", ".dyldlinkedit")
   sub-cache entries, a ".development" main file, a .symbols file with 16-byte
   local-symbol entries, 12-byte entries in the main file, v3 and v5 slide info,
   the legacy header slideInfoOffset, aliases, UUID mismatches.
3. Fuzzing: truncations and bit flips of every cache; each cache subcommand
   must exit 0 or 1 (with a message and no output on 1) within a timeout.
"""
import json
import os
import random
import shutil
import struct
import subprocess
import sys
import tempfile

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "lib"))
import dktest  # noqa: E402

R = dktest.Report("test_cache")
CACHES = os.path.join(dktest.CORPUS, "dyld_caches")
EXPECTED = os.path.join(dktest.CORPUS, "expected", "dyld_caches")
NAMES = ["dyld_shared_cache_arm64-macOS", "dyld_shared_cache_arm64-macOS-objc", "dyld_shared_cache_arm64-macOS-1042.1"]


def uuid_norm(u):
    return u.replace("-", "").lower() if isinstance(u, str) else u


def run_json(*args):
    rc, doc, err = dktest.dk_json(*args)
    if rc != 0:
        R.fail("%s: exit %d: %s" % (" ".join(args), rc, err.strip()))
    return doc


# ------------------------------------------------------------------ corpus


def check_corpus_cache(name):
    path = os.path.join(CACHES, name)
    exp = json.load(open(os.path.join(EXPECTED, name + ".json")))

    info = run_json("cache", "info", "--json", path)
    if info:
        hdr = info["header"]
        want = exp["header"]
        R.ok(set(hdr) == set(want), "%s: header field names %s" % (name, sorted(set(hdr) ^ set(want))))
        for k, v in want.items():
            got = hdr.get(k)
            if k in ("uuid", "symbolFileUUID"):
                R.ok(uuid_norm(got) == uuid_norm(v), "%s: header %s %r != %r" % (name, k, got, v))
            else:
                R.ok(got == v, "%s: header %s %r != %r" % (name, k, got, v))
        R.ok(uuid_norm(info["uuid"]) == uuid_norm(want["uuid"]), "%s: uuid" % name)
        R.ok(info["magic"] == want["magic"], "%s: magic" % name)
        R.ok(info["arch"] == "arm64", "%s: arch %s" % (name, info["arch"]))
        R.ok(info["platform"] == want["platform"], "%s: platform" % name)
        R.ok(info["cache_type"] == want["cacheType"], "%s: cache_type" % name)
        R.ok(info["mapping_count"] == len(exp["mappings"]), "%s: mapping_count" % name)
        R.ok(info["image_count"] == len(exp["images"]), "%s: image_count" % name)
        R.ok(info["subcaches"] == [] and info["symbols_file"] is None, "%s: no sub-caches" % name)
        if "osVersion" in want:
            v = want["osVersion"]
            R.ok(info["os_version"] == "%d.%d" % (v >> 16, (v >> 8) & 0xFF), "%s: os_version %s" % (name, info["os_version"]))
        else:
            R.ok(info["os_version"] is None, "%s: os_version null" % name)

    maps = run_json("cache", "mappings", "--json", path)
    if maps:
        got = maps["mappings"]
        R.ok(len(got) == len(exp["mappings"]), "%s: mapping count" % name)
        for i, (g, m, w) in enumerate(zip(got, exp["mappings"], exp["mappings_with_slide"])):
            for a, b in (("address", "address"), ("size", "size"), ("file_offset", "fileOffset"), ("max_prot", "maxProt"),
                         ("init_prot", "initProt")):
                R.ok(g[a] == m[b], "%s: mapping %d %s %r != %r" % (name, i, a, g[a], m[b]))
            for a, b in (("slide_info_offset", "slideInfoFileOffset"), ("slide_info_size", "slideInfoFileSize"),
                         ("flags", "flags")):
                R.ok(g[a] == w[b], "%s: mapping %d %s %r != %r" % (name, i, a, g[a], w[b]))
            slid = [s for s in exp.get("slide_info", []) if s["mapping_index"] == i]
            want_v = slid[0]["version"] if slid else None
            R.ok(g["slide_info_version"] == want_v, "%s: mapping %d slide version %r" % (name, i, g["slide_info_version"]))
            R.ok(g["file"] == name, "%s: mapping %d file" % (name, i))

    imgs = run_json("cache", "images", "--json", path)
    if imgs:
        got = imgs["images"]
        R.ok(len(got) == len(exp["images"]), "%s: image count" % name)
        for i, (g, w) in enumerate(zip(got, exp["images"])):
            R.ok(g["index"] == i and g["address"] == w["address"] and g["path"] == w["path"],
                 "%s: image %d %r" % (name, i, g))
            R.ok(g["mod_time"] == w["modTime"] and g["inode"] == w["inode"] and g["path_file_offset"] == w["pathFileOffset"],
                 "%s: image %d modTime/inode/pathFileOffset" % (name, i))
            R.ok(g["alias"] is False, "%s: image %d not an alias" % (name, i))
            t = [x for x in exp["images_text"] if x["loadAddress"] == w["address"]]
            R.ok(t and uuid_norm(g["uuid"]) == uuid_norm(t[0]["uuid"]) and g["text_size"] == t[0]["textSegmentSize"],
                 "%s: image %d uuid/text_size" % (name, i))
        gt = imgs["images_text"]
        R.ok(len(gt) == len(exp["images_text"]), "%s: images_text count" % name)
        for i, (g, w) in enumerate(zip(gt, exp["images_text"])):
            R.ok(uuid_norm(g["uuid"]) == uuid_norm(w["uuid"]) and g["address"] == w["loadAddress"]
                 and g["text_size"] == w["textSegmentSize"] and g["path_offset"] == w["pathOffset"] and g["path"] == w["path"],
                 "%s: images_text %d" % (name, i))

    slide = run_json("cache", "slide", "--json", "--pointers", path)
    if slide:
        got = slide["mappings"]
        want = exp.get("slide_info", [])
        R.ok(len(got) == len(want), "%s: %d slid mappings, expected %d" % (name, len(got), len(want)))
        for g, w in zip(got, want):
            R.ok(g["mapping"] == w["mapping_index"], "%s: slide mapping index" % name)
            R.ok(g["slide_info_offset"] == w["fileOffset"] and g["slide_info_size"] == w["size"], "%s: slide blob" % name)
            for k in ("version", "page_size", "page_starts_offset", "page_starts_count", "page_extras_offset",
                      "page_extras_count", "delta_mask", "value_add"):
                R.ok(g.get(k) == w[k], "%s: slide %s %r != %r" % (name, k, g.get(k), w[k]))
            R.ok(g["page_starts"] == w["page_starts"], "%s: page_starts" % name)
            R.ok(g["page_extras"] == w["page_extras"], "%s: page_extras" % name)
            R.ok(g["pointer_count"] == w["rebase_count"] == len(g["pointers"]),
                 "%s: pointer_count %d, expected %d" % (name, g["pointer_count"], w["rebase_count"]))
            gp = [[p["address"], p["raw"], p["target"]] for p in g["pointers"]]
            R.ok(gp == w["rebases"], "%s: every rebase [address, raw, target]" % name)
            for p in g["pointers"]:
                if "high8" in p:
                    R.ok(p["high8"] == p["target"] >> 56, "%s: high8 of %x" % (name, p["address"]))
    return exp


def check_rizin(name, exp):
    path = os.path.join(CACHES, name)
    for rec in exp.get("rizin_testdb", []):
        parsed = rec["parsed"]
        # exported functions at their addresses (rizin demangles C++ names)
        for sym in parsed.get("symbols", []):
            rc, doc, err = dktest.dk_json("cache", "addr", "--json", path, str(sym["vaddr"]))
            if not R.ok(rc == 0, "%s: cache addr %#x: %s" % (name, sym["vaddr"], err)):
                continue
            s = doc["symbol"]
            ok = s is not None and s["address"] == sym["vaddr"] and s["offset"] == 0
            if ok and not sym["name"].startswith("dyld3::"):
                ok = s["name"] == sym["name"]
            R.ok(ok, "%s: symbol at %#x is %r, rizin says %s" % (name, sym["vaddr"], s, sym["name"]))
            R.ok(doc["file_offset"] == sym["paddr"], "%s: file offset of %s" % (name, sym["name"]))
        # sections: lib_<image>.<n>.<seg>.<sect>
        secs = {}
        for s in parsed.get("sections", []):
            parts = s["name"].split(".")
            secs[(parts[-2], parts[-1], s["vaddr"])] = s
        if secs:
            images = run_json("cache", "images", "--json", path)["images"]
            found = set()
            for im in images:
                seg = run_json("segments", "--json", "%s:%d" % (path, im["index"]))
                for sg in seg.get("segments", []) if seg else []:
                    for x in sg["sections"]:
                        key = (x["segment"], x["name"], x["addr"])
                        if key in secs:
                            R.ok(x["size"] == secs[key]["size"] and x["offset"] == secs[key]["paddr"],
                                 "%s: section %s,%s size/offset" % (name, x["segment"], x["name"]))
                            found.add(key)
            R.ok(found == set(secs), "%s: rizin sections not found: %s" % (name, sorted(set(secs) - found)))
        for pr in parsed.get("pointer_reads", []):
            slide = run_json("cache", "slide", "--json", "--pointers", path)
            ptrs = {p["address"]: p["target"] for m in slide["mappings"] for p in m["pointers"]}
            R.ok(ptrs.get(pr["address"]) == pr["value"], "%s: pointer at %#x" % (name, pr["address"]))


def check_images_as_macho(name):
    """Every image of the cache through CACHE:IMAGE with the Mach-O commands."""
    path = os.path.join(CACHES, name)
    imgs = run_json("cache", "images", "--json", path)
    if not imgs:
        return
    n = 0
    for im in imgs["images"]:
        for spec in ("%s:%d" % (path, im["index"]), "%s:%s" % (path, im["path"]), "%s:%s" % (path, os.path.basename(im["path"]))):
            info = run_json("info", "--json", spec)
            if not info:
                continue
            R.ok(info["install_name"] == im["path"], "%s: install name of %s" % (name, spec))
            R.ok(uuid_norm(info["uuid"]) == uuid_norm(im["uuid"]), "%s: uuid of %s" % (name, spec))
            R.ok(info["base_address"] == im["address"], "%s: base address of %s" % (name, spec))
            R.ok("DYLIB_IN_CACHE" in info["flag_names"], "%s: MH_DYLIB_IN_CACHE in %s" % (name, spec))
        spec = "%s:%d" % (path, im["index"])
        segs = run_json("segments", "--json", spec)
        exps = run_json("exports", "--json", spec)
        syms = run_json("symbols", "--json", spec)
        csym = run_json("cache", "symbols", "--json", path, str(im["index"]))
        if not (segs and exps and syms and csym):
            continue
        ranges = [(s["vmaddr"], s["vmaddr"] + s["vmsize"]) for s in segs["segments"]]
        for e in exps["exports"]:
            if "address" in e and "absolute" not in e["flags"]:
                R.ok(any(a <= e["address"] < b for a, b in ranges), "%s: export %s inside %s" % (name, e["name"], spec))
        cexp = csym["images"][0]["exports"]
        R.ok(sorted((e["name"], e.get("address")) for e in cexp) == sorted((e["name"], e.get("address")) for e in exps["exports"]),
             "%s: cache symbols exports == exports of %s" % (name, spec))
        n += 1
        for cmd in ("loadcmds", "dylibs", "fixups"):
            rc, out, err = dktest.dk(cmd, spec)
            R.ok(rc == 0 and out, "%s: %s %s: exit %d %s" % (name, cmd, spec, rc, err.decode(errors="replace").strip()))
    R.ok(n == len(imgs["images"]), "%s: %d of %d images parsed as Mach-O" % (name, n, len(imgs["images"])))


def check_corpus():
    if not os.path.isdir(CACHES):
        print("test_cache: corpus caches not found, skipping the corpus part")
        return
    for name in NAMES:
        exp = check_corpus_cache(name)
        check_rizin(name, exp)
        check_images_as_macho(name)
    # the objc cache: libobjc's pointer read by the Mach-O layer decodes slide info
    path = os.path.join(CACHES, "dyld_shared_cache_arm64-macOS-objc")
    doc = run_json("cache", "addr", "--json", path, "0x182064028")
    if doc:
        R.ok(doc["image"]["path"] == "/usr/lib/libhello-1.0.dylib" and doc["segment"] == "__DATA_CONST"
             and doc["section"] == "__objc_classlist", "objc cache: 0x182064028 is libhello __objc_classlist: %r" % doc)
    doc = run_json("cache", "addr", "--json", path, "0x182068068")
    if doc:
        R.ok(doc["symbol"] and doc["symbol"]["name"] == "_OBJC_CLASS_$_Test", "objc cache: class Test symbol %r" % doc["symbol"])
    rc, out, err = dktest.dk("cache", "addr", path, "0x10")
    R.ok(rc == 1 and not out and b"not in any mapping" in err, "cache addr outside the mappings: exit 1")
    rc, out, err = dktest.dk("cache", "addr", path, "0xzz")
    R.ok(rc == 2, "cache addr with a bad address: usage error")
    rc, out, err = dktest.dk("cache", "symbols", path, "libnothere.dylib")
    R.ok(rc == 1 and b"no image named" in err, "cache symbols of an unknown image")
    for cmd in ("info", "mappings", "images", "slide", "symbols"):
        rc, out, err = dktest.dk("cache", cmd, path)
        R.ok(rc == 0 and out and not err, "cache %s (human) exit %d %s" % (cmd, rc, err))
    rc, out, err = dktest.dk("cache", "addr", path, "0x180019000")
    R.ok(rc == 0 and b"libobjc.A.dylib" in out, "cache addr (human)")


# -------------------------------------------------------- synthetic caches

BASE = 0x180000000
IMG = BASE + 0x4000           # the image's mach_header / __TEXT
DATA = BASE + 0x8000          # __DATA (a data mapping)
LINKEDIT = BASE + 0xC000      # __LINKEDIT (the linkedit mapping)
INSTALL = "/usr/lib/libsyn.dylib"
ALIAS = "/usr/lib/libsyn.1.dylib"
IMG_UUID = bytes(range(0x10, 0x20))

HDR_FIELDS = {
    "magic": (0x00, "16s"), "mappingOffset": (0x10, "<I"), "mappingCount": (0x14, "<I"),
    "imagesOffsetOld": (0x18, "<I"), "imagesCountOld": (0x1C, "<I"),
    "slideInfoOffset": (0x38, "<Q"), "slideInfoSize": (0x40, "<Q"),
    "localSymbolsOffset": (0x48, "<Q"), "localSymbolsSize": (0x50, "<Q"), "uuid": (0x58, "16s"),
    "cacheType": (0x68, "<Q"), "imagesTextOffset": (0x88, "<Q"), "imagesTextCount": (0x90, "<Q"),
    "platform": (0xD8, "<I"), "sharedRegionStart": (0xE0, "<Q"), "sharedRegionSize": (0xE8, "<Q"),
    "mappingWithSlideOffset": (0x138, "<I"), "mappingWithSlideCount": (0x13C, "<I"), "osVersion": (0x16C, "<I"),
    "subCacheArrayOffset": (0x188, "<I"), "subCacheArrayCount": (0x18C, "<I"), "symbolFileUUID": (0x190, "16s"),
    "imagesOffset": (0x1C0, "<I"), "imagesCount": (0x1C4, "<I"), "cacheSubType": (0x1C8, "<I"),
}


# every dyld_cache_header field name (current and era names) with its offset
FIELD_OFFSETS = {
    "magic": 0x0, "mappingOffset": 0x10, "mappingCount": 0x14, "imagesOffsetOld": 0x18, "imagesCountOld": 0x1C,
    "dyldBaseAddress": 0x20, "codeSignatureOffset": 0x28, "codeSignatureSize": 0x30, "slideInfoOffsetUnused": 0x38,
    "slideInfoSizeUnused": 0x40, "slideInfoOffset": 0x38, "slideInfoSize": 0x40, "localSymbolsOffset": 0x48,
    "localSymbolsSize": 0x50, "uuid": 0x58, "cacheType": 0x68, "branchPoolsOffset": 0x70, "branchPoolsCount": 0x74,
    "dyldInCacheMH": 0x78, "dyldInCacheEntry": 0x80, "accelerateInfoAddr": 0x78, "accelerateInfoSize": 0x80,
    "imagesTextOffset": 0x88, "imagesTextCount": 0x90, "patchInfoAddr": 0x98, "patchInfoSize": 0xA0,
    "dylibsImageGroupAddr": 0x98, "dylibsImageGroupSize": 0xA0, "otherImageGroupAddrUnused": 0xA8,
    "otherImageGroupSizeUnused": 0xB0, "otherImageGroupAddr": 0xA8, "otherImageGroupSize": 0xB0,
    "progClosuresAddr": 0xB8, "progClosuresSize": 0xC0, "progClosuresTrieAddr": 0xC8, "progClosuresTrieSize": 0xD0,
    "platform": 0xD8, "formatVersion": 0xDC, "dylibsExpectedOnDisk": 0xDC, "simulator": 0xDC, "locallyBuiltCache": 0xDC,
    "builtFromChainedFixups": 0xDC, "newFormatTLVs": 0xDC, "bitfieldRest": 0xDC, "sharedRegionStart": 0xE0,
    "sharedRegionSize": 0xE8, "maxSlide": 0xF0, "dylibsImageArrayAddr": 0xF8, "dylibsImageArraySize": 0x100,
    "dylibsTrieAddr": 0x108, "dylibsTrieSize": 0x110, "otherImageArrayAddr": 0x118, "otherImageArraySize": 0x120,
    "otherTrieAddr": 0x128, "otherTrieSize": 0x130, "mappingWithSlideOffset": 0x138, "mappingWithSlideCount": 0x13C,
    "dylibsPBLStateArrayAddrUnused": 0x140, "dylibsPBLSetAddr": 0x148, "programsPBLSetPoolAddr": 0x150,
    "programsPBLSetPoolSize": 0x158, "programTrieAddr": 0x160, "programTrieSize": 0x168, "osVersion": 0x16C,
    "altPlatform": 0x170, "altOsVersion": 0x174, "swiftOptsOffset": 0x178, "swiftOptsSize": 0x180,
    "subCacheArrayOffset": 0x188, "subCacheArrayCount": 0x18C, "symbolFileUUID": 0x190, "rosettaReadOnlyAddr": 0x1A0,
    "rosettaReadOnlySize": 0x1A8, "rosettaReadWriteAddr": 0x1B0, "rosettaReadWriteSize": 0x1B8, "imagesOffset": 0x1C0,
    "imagesCount": 0x1C4, "cacheSubType": 0x1C8, "objcOptsOffset": 0x1D0, "objcOptsSize": 0x1D8,
    "cacheAtlasOffset": 0x1E0, "cacheAtlasSize": 0x1E8, "dynamicDataOffset": 0x1F0, "dynamicDataMaxSize": 0x1F8,
    "tproMappingsOffset": 0x200, "tproMappingsCount": 0x204, "functionVariantInfoAddr": 0x208,
    "functionVariantInfoSize": 0x210, "prewarmingDataOffset": 0x218, "prewarmingDataSize": 0x220,
}


def put(buf, off, fmt, *vals):
    data = struct.pack(fmt, *vals)
    if len(buf) < off + len(data):
        buf.extend(b"\0" * (off + len(data) - len(buf)))
    buf[off:off + len(data)] = data


def header(buf, hsize, **fields):
    for k, v in fields.items():
        off, fmt = HDR_FIELDS[k]
        if off + struct.calcsize(fmt) <= hsize:
            put(buf, off, fmt, v)
    put(buf, 0x10, "<I", hsize)


def mapping_tables(buf, hsize, maps):
    """maps: (address, size, fileOffset, maxProt, initProt, slideOff, slideSize, flags); returns the end offset."""
    off = hsize
    for m in maps:
        put(buf, off, "<QQQII", m[0], m[1], m[2], m[3], m[4])
        off += 32
    with_slide = hsize >= 0x140
    if with_slide:
        header(buf, hsize, mappingWithSlideOffset=off, mappingWithSlideCount=len(maps))
        for m in maps:
            put(buf, off, "<QQQQQQII", m[0], m[1], m[2], m[5], m[6], m[7], m[3], m[4])
            off += 56
    header(buf, hsize, mappingCount=len(maps))
    return off


def uleb(v):
    out = bytearray()
    while True:
        b = v & 0x7F
        v >>= 7
        out.append(b | (0x80 if v else 0))
        if not v:
            return bytes(out)


def macho_image(arm64e, le_fileoff, data_fileoff):
    """A cache dylib at IMG: __TEXT (IMG, file 0x4000), __DATA (DATA), __LINKEDIT (LINKEDIT, file LE_FILEOFF)."""
    cmds = []

    def seg(name, vmaddr, vmsize, fileoff, filesize, prot, sections):
        c = struct.pack("<II16sQQQQiiII", 0x19, 72 + 80 * len(sections), name.encode(), vmaddr, vmsize, fileoff, filesize,
                        prot, prot, len(sections), 0)
        for sect, addr, size, offset in sections:
            c += struct.pack("<16s16sQQIIIIIIII", sect.encode(), name.encode(), addr, size, offset, 2, 0, 0, 0, 0, 0, 0)
        cmds.append(c)

    seg("__TEXT", IMG, 0x4000, 0x4000, 0x4000, 5, [("__text", IMG + 0x100, 0x40, 0x4100)])
    seg("__DATA", DATA, 0x4000, data_fileoff, 0x4000, 3, [("__data", DATA, 0x100, data_fileoff)])
    seg("__LINKEDIT", LINKEDIT, 0x4000, le_fileoff, 0x4000, 1, [])
    name = INSTALL.encode() + b"\0"
    name += b"\0" * (-(24 + len(name)) % 8)
    cmds.append(struct.pack("<IIIIII", 0xD, 24 + len(name), 24, 2, 0x10000, 0x10000) + name)
    cmds.append(struct.pack("<II16s", 0x1B, 24, IMG_UUID))
    cmds.append(struct.pack("<IIIIII", 0x2, 24, le_fileoff, 1, le_fileoff + 0x100, 16))
    cmds.append(struct.pack("<II18I", 0xB, 80, 0, 0, 0, 1, 1, 0, *([0] * 12)))
    trie_len = len(export_trie())
    cmds.append(struct.pack("<IIII", 0x80000033, 16, le_fileoff + 0x200, (trie_len + 7) & ~7))
    cmds.append(struct.pack("<IIIIII", 0x32, 24, 1, 0x0D0000, 0x0D0000, 0))
    body = b"".join(cmds)
    hdr = struct.pack("<IIIIIIII", 0xFEEDFACF, 0x0100000C, 2 if arm64e else 0, 6, len(cmds), len(body), 0x80000085, 0)
    idname_off = 32 + sum(len(c) for c in cmds[:3]) + 24
    return hdr + body, idname_off


def export_trie():
    child = bytes([3, 0]) + uleb(0x100) + bytes([0])
    root_len = 2 + len(b"_syn_func\0") + 1
    return bytes([0, 1]) + b"_syn_func\0" + bytes([root_len]) + child


def linkedit(le):
    """nlist at +0, strings at +0x100, export trie at +0x200."""
    put(le, 0, "<IBBHQ", 1, 0x0F, 1, 0, IMG + 0x100)
    put(le, 0x100, "16s", b"\0_syn_func\0")
    t = export_trie()
    le[0x200:0x200 + len(t)] = t


def local_symbols(buf, off, entry64, dylib_offset):
    """dyld_cache_local_symbols_info with one entry and two locals (_local_a, _local_b)."""
    put(buf, off, "<6I", 0x40, 2, 0x80, 0x20, 0x18, 1)
    if entry64:
        put(buf, off + 0x18, "<QII", dylib_offset, 0, 2)
    else:
        put(buf, off + 0x18, "<III", dylib_offset, 0, 2)
    put(buf, off + 0x40, "<IBBHQ", 1, 0x0E, 1, 0, IMG + 0x110)
    put(buf, off + 0x50, "<IBBHQ", 10, 0x0E, 1, 0, IMG + 0x120)
    put(buf, off + 0x80, "32s", b"\0_local_a\0_local_b\0")
    return 0xA0


def slide_blob(version, pointers_off=0):
    """(blob, {offset in DATA page 0: raw}, expected pointers) for a 4-page DATA mapping."""
    t = IMG + 0x100
    if version == 2:
        mask = 0x00FFFF0000000000
        blob = struct.pack("<6IQQ", 2, 0x1000, 40, 4, 48, 0, mask, 0) + struct.pack("<4H", 0, 0x4000, 0x4000, 0x4000)
        raws = {0: t | (8 << 38), 8: t}
        exp = [{"address": DATA, "target": t, "raw": raws[0]}, {"address": DATA + 8, "target": t, "raw": raws[8]}]
    elif version == 3:
        blob = struct.pack("<IIIIQ", 3, 0x1000, 4, 0, BASE) + struct.pack("<4H", 0, 0xFFFF, 0xFFFF, 0xFFFF)
        raws = {0: t | (1 << 51), 8: (1 << 63) | (0 << 49) | (1 << 48) | (0x1111 << 32) | (t - BASE)}
        exp = [{"address": DATA, "target": t, "raw": raws[0]},
               {"address": DATA + 8, "target": t, "raw": raws[8], "auth": {"key": "IA", "diversity": 0x1111, "addr_div": True}}]
    else:
        blob = struct.pack("<IIIIQ", 5, 0x1000, 4, 0, BASE) + struct.pack("<4H", 0, 0xFFFF, 0xFFFF, 0xFFFF)
        raws = {0: (t - BASE) | (0x12 << 34) | (1 << 52), 8: (1 << 63) | (1 << 51) | (1 << 50) | (0x2222 << 34) | (t - BASE)}
        exp = [{"address": DATA, "target": t | (0x12 << 56), "raw": raws[0], "high8": 0x12},
               {"address": DATA + 8, "target": t, "raw": raws[8], "auth": {"key": "DA", "diversity": 0x2222, "addr_div": True}}]
    return blob, raws, exp


def image_tables(buf, off, hsize, idname_fileoff, old_table):
    """Image table (image + alias), text table and strings at OFF in the main file."""
    strings = off + 0x80
    put(buf, strings, "%ds" % (len(INSTALL) + 1), INSTALL.encode())
    alias_off = strings + 0x40
    put(buf, alias_off, "%ds" % (len(ALIAS) + 1), ALIAS.encode())
    # old tables (before dyld-940) hold the real image's path inside its LC_ID_DYLIB, aliases' before the first image
    real_path = idname_fileoff if old_table else strings
    put(buf, off, "<QQQII", IMG, 0, 0x1234, real_path, 0)
    put(buf, off + 32, "<QQQII", IMG, 0, 0x5678, alias_off, 0)
    put(buf, off + 64, "<16sQII", IMG_UUID, IMG, 0x4000, strings)
    if old_table:
        header(buf, hsize, imagesOffsetOld=off, imagesCountOld=2)
    else:
        header(buf, hsize, imagesOffset=off, imagesCount=2)
    header(buf, hsize, imagesTextOffset=off + 64, imagesTextCount=1)


UUIDS = {s: bytes([i] * 16) for i, s in enumerate(["main", "data", "linkedit", "symbols"], start=0xA1)}


def build(d, variant):
    """Write a synthetic cache into D; returns (main path, description of what to expect)."""
    split = variant in ("split_v1", "split_v2")
    hsize = {"legacy": 0x98, "single": 0x140, "split_v1": 0x1C8, "split_v2": 0x200}[variant]
    arm64e = split
    slide_version = {"legacy": 2, "single": 2, "split_v1": 3, "split_v2": 5}[variant]
    magic = b"dyld_v1  arm64e" if arm64e else b"dyld_v1   arm64"
    name = "dyld_shared_cache_%s" % ("arm64e" if arm64e else "arm64")
    main = bytearray()
    header(main, hsize, magic=magic, uuid=UUIDS["main"], cacheType=1, platform=1, sharedRegionStart=BASE,
           sharedRegionSize=0x10000, osVersion=0x0D0000)
    blob, raws, exp_ptrs = slide_blob(slide_version)
    le_fileoff = 0x4000 if split else 0xC000
    data_fileoff = 0x4000 if split else 0x8000
    image, idname_off = macho_image(arm64e, le_fileoff, data_fileoff)
    files = {}
    expect = {"slide": exp_ptrs, "slide_version": slide_version, "subcaches": [], "symbols_file": None,
              "locals": ["_local_a", "_local_b"], "entry64": split}
    if not split:
        maps = [(BASE, 0x8000, 0, 5, 5, 0, 0, 0),
                (DATA, 0x4000, 0x8000, 3, 3, 0x10000 if variant == "single" else 0, len(blob) if variant == "single" else 0, 0),
                (LINKEDIT, 0x4000, 0xC000, 1, 1, 0, 0, 0)]
        end = mapping_tables(main, hsize, maps)
        image_tables(main, 0x800, hsize, 0x4000 + idname_off, old_table=True)
        put(main, 0x4000, "%ds" % len(image), image)
        for o, v in raws.items():
            put(main, 0x8000 + o, "<Q", v)
        le = bytearray(0x4000)
        linkedit(le)
        put(main, 0xC000, "%ds" % len(le), bytes(le))
        put(main, 0x10000, "%ds" % len(blob), blob)
        if variant == "legacy":
            header(main, hsize, slideInfoOffset=0x10000, slideInfoSize=len(blob))
        n = local_symbols(main, 0x11000, False, 0x4000)
        header(main, hsize, localSymbolsOffset=0x11000, localSymbolsSize=n)
        assert end < 0x800
        files[name] = main
        expect["maps"] = [(m[0], m[1], name) for m in maps]
        return files, name, expect
    # split: main = TEXT; data sub-cache; linkedit sub-cache; .symbols
    v2 = variant == "split_v2"
    sfx_data, sfx_le = (".01", ".dyldlinkedit") if v2 else (".1", ".2")
    maps = [(BASE, 0x8000, 0, 5, 5, 0, 0, 0)]
    off = mapping_tables(main, hsize, maps)
    sub_off = off
    subs = [(UUIDS["data"], 0x8000, sfx_data), (UUIDS["linkedit"], 0xC000, sfx_le)]
    for u, vmoff, sfx in subs:
        if v2:
            put(main, off, "<16sQ32s", u, vmoff, sfx.encode())
            off += 56
        else:
            put(main, off, "<16sQ", u, vmoff)
            off += 24
    header(main, hsize, subCacheArrayOffset=sub_off, subCacheArrayCount=2, symbolFileUUID=UUIDS["symbols"], cacheSubType=1)
    image_tables(main, 0x800, hsize, 0, old_table=False)
    put(main, 0x4000, "%ds" % len(image), image)
    put(main, 0x8000 - 1, "B", 0)
    main_name = name + (".development" if v2 else "")
    files[main_name] = main
    data = bytearray()
    header(data, hsize, magic=magic, uuid=UUIDS["data"], cacheType=1, platform=1, sharedRegionStart=BASE)
    mapping_tables(data, hsize, [(DATA, 0x4000, 0x4000, 3, 3, 0x1000, len(blob), 1)])
    put(data, 0x1000, "%ds" % len(blob), blob)
    for o, v in raws.items():
        put(data, 0x4000 + o, "<Q", v)
    put(data, 0x8000 - 1, "B", 0)
    files[name + sfx_data] = data
    le_file = bytearray()
    header(le_file, hsize, magic=magic, uuid=UUIDS["linkedit"], cacheType=1, platform=1, sharedRegionStart=BASE)
    mapping_tables(le_file, hsize, [(LINKEDIT, 0x4000, 0x4000, 1, 1, 0, 0, 0)])
    le = bytearray(0x4000)
    linkedit(le)
    put(le_file, 0x4000, "%ds" % len(le), bytes(le))
    files[name + sfx_le] = le_file
    sym = bytearray()
    header(sym, hsize, magic=magic, uuid=UUIDS["symbols"], cacheType=1, platform=1)
    mapping_tables(sym, hsize, [])
    n = local_symbols(sym, 0x1000, True, IMG - BASE)
    header(sym, hsize, localSymbolsOffset=0x1000, localSymbolsSize=n)
    files[name + ".symbols"] = sym
    expect["maps"] = [(BASE, 0x8000, main_name), (DATA, 0x4000, name + sfx_data), (LINKEDIT, 0x4000, name + sfx_le)]
    expect["subcaches"] = [(name + sfx_data, UUIDS["data"], 0x8000), (name + sfx_le, UUIDS["linkedit"], 0xC000)]
    expect["symbols_file"] = (name + ".symbols", UUIDS["symbols"])
    return files, main_name, expect


def write(d, files):
    for n, b in files.items():
        with open(os.path.join(d, n), "wb") as f:
            f.write(bytes(b))


def check_synthetic(variant, tmp):
    d = os.path.join(tmp, variant)
    os.makedirs(d)
    files, main, expect = build(d, variant)
    write(d, files)
    path = os.path.join(d, main)
    info = run_json("cache", "info", "--json", path)
    if not info:
        return d, files, main
    R.ok([(s["file"], uuid_norm(s["uuid"]), s["vm_offset"]) for s in info["subcaches"]]
         == [(f, u.hex(), o) for f, u, o in expect["subcaches"]], "%s: sub-caches %r" % (variant, info["subcaches"]))
    if expect["symbols_file"]:
        R.ok(info["symbols_file"] and info["symbols_file"]["file"] == expect["symbols_file"][0]
             and uuid_norm(info["symbols_file"]["uuid"]) == expect["symbols_file"][1].hex(), "%s: symbols file" % variant)
    else:
        R.ok(info["symbols_file"] is None, "%s: no symbols file" % variant)
    hdr = info["header"]
    offs = dict(FIELD_OFFSETS)
    if "imagesOffsetOld" not in hdr:
        offs.update(imagesOffset=0x18, imagesCount=0x1C)
    R.ok(hdr["mappingOffset"] == info["header_size"] and all(offs[k] < info["header_size"] for k in hdr),
         "%s: only fields below mappingOffset: %s" % (variant, [k for k in hdr if offs.get(k, 1 << 20) >= info["header_size"]]))
    R.ok(("imagesOffset" in hdr) and (("imagesOffsetOld" in hdr) == (info["header_size"] >= 0x1C8)),
         "%s: image table field names of the era" % variant)
    R.ok(("slideInfoOffset" in hdr) == (info["header_size"] < 0x140), "%s: slideInfoOffset era name" % variant)
    R.ok(info["mapping_count"] == len(expect["maps"]) and info["image_count"] == 2, "%s: counts" % variant)
    maps = run_json("cache", "mappings", "--json", path)
    if maps:
        R.ok([(m["address"], m["size"], m["file"]) for m in maps["mappings"]] == expect["maps"], "%s: mappings %r" % (variant, maps))
        R.ok([m["slide_info_version"] for m in maps["mappings"]].count(expect["slide_version"]) == 1,
             "%s: one mapping with slide info v%d" % (variant, expect["slide_version"]))
    imgs = run_json("cache", "images", "--json", path)
    if imgs:
        R.ok([(i["path"], i["alias"]) for i in imgs["images"]] == [(INSTALL, False), (ALIAS, True)],
             "%s: images and alias %r" % (variant, imgs["images"]))
        R.ok(uuid_norm(imgs["images"][0]["uuid"]) == IMG_UUID.hex(), "%s: image uuid" % variant)
    slide = run_json("cache", "slide", "--json", "--pointers", path)
    if slide:
        m = slide["mappings"]
        R.ok(len(m) == 1 and m[0]["version"] == expect["slide_version"] and m[0]["pointer_count"] == 2,
             "%s: slide header %r" % (variant, m))
        if m:
            R.ok(m[0]["pointers"] == expect["slide"], "%s: slide pointers %r" % (variant, m[0]["pointers"]))
    syms = run_json("cache", "symbols", "--json", path)
    if syms:
        R.ok(len(syms["images"]) == 1, "%s: aliases skipped in cache symbols" % variant)
        im = syms["images"][0]
        R.ok([(e["name"], e["address"]) for e in im["exports"]] == [("_syn_func", IMG + 0x100)], "%s: exports %r" % (variant, im["exports"]))
        R.ok([(s["name"], s["value"]) for s in im["symbols"]] == [("_syn_func", IMG + 0x100)], "%s: nlist %r" % (variant, im["symbols"]))
        R.ok([(s["name"], s["value"]) for s in im["locals"]] == [("_local_a", IMG + 0x110), ("_local_b", IMG + 0x120)],
             "%s: locals %r" % (variant, im["locals"]))
    for spec in (ALIAS, "libsyn.dylib", "1"):
        doc = run_json("cache", "symbols", "--json", path, spec)
        R.ok(doc and doc["images"][0]["path"] == (INSTALL if spec == "libsyn.dylib" else ALIAS), "%s: symbols of %s" % (variant, spec))
    addr = run_json("cache", "addr", "--json", path, hex(IMG + 0x124))
    if addr:
        R.ok(addr["image"] == {"index": 0, "path": INSTALL} and addr["segment"] == "__TEXT" and addr["section"] == "__text"
             and addr["symbol"] == {"name": "_local_b", "address": IMG + 0x120, "offset": 4}, "%s: addr %r" % (variant, addr))
    addr = run_json("cache", "addr", "--json", path, hex(DATA + 8))
    if addr:
        R.ok(addr["segment"] == "__DATA" and addr["section"] == "__data" and addr["cache_file"] == expect["maps"][1][2]
             and addr["file_offset"] == (0x4008 if variant.startswith("split") else 0x8008), "%s: data addr %r" % (variant, addr))
    # the image through CACHE:IMAGE: LINKEDIT read from the linkedit mapping (split: another file)
    for cmd, key in (("exports", "exports"), ("symbols", "symbols")):
        doc = run_json(cmd, "--json", path + ":libsyn.dylib")
        R.ok(doc and [e["name"] for e in doc[key]] == ["_syn_func"], "%s: %s via CACHE:IMAGE %r" % (variant, cmd, doc))
    doc = run_json("info", "--json", path + ":" + INSTALL)
    R.ok(doc and doc["arch"] == ("arm64e" if variant.startswith("split") else "arm64") and doc["install_name"] == INSTALL,
         "%s: info via CACHE:IMAGE" % variant)
    return d, files, main


def check_synthetic_errors(tmp):
    d = os.path.join(tmp, "errors")
    os.makedirs(d)
    files, main, _ = build(d, "split_v2")
    name = main[:-len(".development")]
    # opened without the .development suffix too
    write(d, files)
    shutil.copy(os.path.join(d, main), os.path.join(d, name))
    R.ok(dktest.dk("cache", "info", os.path.join(d, name))[0] == 0, "split_v2 main without .development")
    # a sub-cache whose UUID differs from the main header's entry
    bad = dict(files)
    sub = bytearray(bad[name + ".01"])
    sub[0x58] ^= 0xFF
    bad[name + ".01"] = sub
    write(d, bad)
    rc, out, err = dktest.dk("cache", "info", os.path.join(d, main))
    R.ok(rc == 1 and not out and b"does not match" in err and b".01" in err, "sub-cache UUID mismatch: %r" % err)
    # a missing sub-cache / symbols file
    write(d, files)
    os.unlink(os.path.join(d, name + ".dyldlinkedit"))
    rc, out, err = dktest.dk("cache", "mappings", os.path.join(d, main))
    R.ok(rc == 1 and b"dyldlinkedit" in err, "missing sub-cache: %r" % err)
    write(d, files)
    os.unlink(os.path.join(d, name + ".symbols"))
    rc, out, err = dktest.dk("cache", "info", os.path.join(d, main))
    R.ok(rc == 1 and b".symbols" in err, "missing symbols file: %r" % err)
    # a suffix that would leave the directory
    write(d, files)
    m = bytearray(files[main])
    off = struct.unpack_from("<I", m, 0x188)[0]
    m[off + 24:off + 24 + 8] = b"/../x\0\0\0"
    with open(os.path.join(d, main), "wb") as f:
        f.write(m)
    rc, out, err = dktest.dk("cache", "info", os.path.join(d, main))
    R.ok(rc == 1 and b"fileSuffix" in err, "sub-cache suffix with a slash: %r" % err)
    # overlapping mappings
    write(d, files)
    m = bytearray(files[main])
    struct.pack_into("<Q", m, 0x200 + 8, 0x9000)  # TEXT now runs into the DATA sub-cache's range
    struct.pack_into("<Q", m, 0x220 + 8, 0x9000)
    with open(os.path.join(d, main), "wb") as f:
        f.write(m + b"\0" * 0x1000)
    rc, out, err = dktest.dk("cache", "info", os.path.join(d, main))
    R.ok(rc == 1 and b"overlaps" in err, "overlapping mappings: %r" % err)
    # not a cache
    p = os.path.join(d, "notacache")
    with open(p, "wb") as f:
        f.write(b"\xcf\xfa\xed\xfe" + b"\0" * 64)
    rc, out, err = dktest.dk("cache", "info", p)
    R.ok(rc == 1 and b"bad magic" in err, "not a cache: %r" % err)
    rc, out, err = dktest.dk("cache", "info")
    R.ok(rc == 2, "cache info without CACHE: usage")


# ------------------------------------------------------------------ fuzzing

# Every mutant runs the commands that walk the most (slide chains, symbols, address lookup); the
# ones that only print validated tables take turns.  dk_cache_open validates the same tables for all.
FUZZ_CMDS = [["cache", "slide", "--pointers", "--json"], ["cache", "symbols", "--json"], ["cache", "addr"]]
FUZZ_ROTATE = [["cache", "info", "--json"], ["cache", "mappings"], ["cache", "images", "--json"], ["cache", "slide"]]


def run_guarded(args, what):
    try:
        p = subprocess.run([dktest.DYLDKIT] + args, stdout=subprocess.PIPE, stderr=subprocess.PIPE, timeout=20 * dktest.SLOW)
    except subprocess.TimeoutExpired:
        R.fail("%s: %s hangs" % (what, " ".join(args[:2])))
        return
    ok = p.returncode in (0, 1)
    if p.returncode == 1:
        ok = ok and p.stderr.startswith(b"dyldkit: ") and not p.stdout
    elif p.returncode == 0:
        ok = ok and bool(p.stdout)
    R.ok(ok, "%s: %s exit %d stderr %r stdout %d bytes" % (what, " ".join(args[:3]), p.returncode, p.stderr[-300:], len(p.stdout)))


def fuzz_one(d, files, main, label, mutations):
    """Mutate one file of a cache in D at a time; run the cache subcommands on each mutant."""
    path = os.path.join(d, main)
    for i, (what, target, mutate) in enumerate(mutations):
        write(d, files)
        b = bytearray(files[target])
        mutate(b)
        with open(os.path.join(d, target), "wb") as f:
            f.write(b)
        for cmd in FUZZ_CMDS + [FUZZ_ROTATE[i % len(FUZZ_ROTATE)]]:
            args = cmd + [path] + (["0x180004104"] if cmd[1] == "addr" else [])
            run_guarded(args, "%s %s" % (label, what))
        if i % 3 == 0:
            run_guarded(["info", path + ":0"], "%s %s" % (label, what))


def flip(off, bit):
    def f(b):
        if off < len(b):
            b[off] ^= 1 << bit
    return f


def trunc(n):
    def f(b):
        del b[n:]
    return f


def setword(off, fmt, v):
    def f(b):
        if off + struct.calcsize(fmt) <= len(b):
            struct.pack_into(fmt, b, off, v)
    return f


def mutations_for(files, main, rng, slide_off, slide_file, scale):
    """Truncations, bit flips in the header and the tables after it, hostile header values, slide-info damage."""
    b = files[main]
    size = len(b)
    hsize = struct.unpack_from("<I", b, 0x10)[0]
    muts = []
    cuts = sorted(set([0x17, hsize - 1, hsize + 31] + [rng.randrange(1, size) for _ in range(3 * scale)]))
    for n in cuts:
        if 0 <= n < size:
            muts.append(("truncated at %#x" % n, main, trunc(n)))
    for _ in range(4 * scale):
        off = rng.randrange(0, min(size, hsize + 0x200))
        muts.append(("bit flip at %#x" % off, main, flip(off, rng.randrange(8))))
    values = [0xFFFFFFFF, size, 0x7FFFFFFF]
    fields = ((0x10, "<I"), (0x14, "<I"), (0x18, "<I"), (0x1C, "<I"), (0x90, "<Q"), (0x98, "<Q"), (0x13C, "<I"),
              (0x18C, "<I"), (0x1C4, "<I"))
    for k, (off, fmt) in enumerate(fields):
        if off < hsize and (scale > 1 or rng.random() < 0.5):
            v = values[k % len(values)]
            muts.append(("header %#x = %#x" % (off, v), main, setword(off, fmt, v)))
    if slide_off is not None:
        for _ in range(3 * scale):
            off = slide_off + rng.randrange(0, 64)
            muts.append(("slide info flip at %#x" % off, slide_file, flip(off, rng.randrange(8))))
        for k in range(4, 40, 16 // scale):
            muts.append(("slide info word %#x = 0xffffffff" % (slide_off + k), slide_file, setword(slide_off + k, "<I", 0xFFFFFFFF)))
    return muts


def check_fuzz(tmp, synth):
    rng = random.Random(4)
    scale = 1 if dktest.SLOW > 1 else 2
    if os.path.isdir(CACHES):
        for name in NAMES:
            d = os.path.join(tmp, "fuzz-" + name)
            os.makedirs(d)
            files = {name: open(os.path.join(CACHES, name), "rb").read()}
            exp = json.load(open(os.path.join(EXPECTED, name + ".json")))
            slides = exp.get("slide_info", [])
            muts = mutations_for(files, name, rng, slides[0]["fileOffset"] if slides else None, name, scale)
            if slides and any(s != 0x4000 for s in slides[0]["page_starts"]):  # damage the chains themselves
                m = exp["mappings"][slides[0]["mapping_index"]]
                starts = [i for i, s in enumerate(slides[0]["page_starts"]) if s != 0x4000]
                for _ in range(3 * scale):
                    off = m["fileOffset"] + 0x1000 * rng.choice(starts) + rng.randrange(0, 0x100)
                    muts.append(("data page flip at %#x" % off, name, flip(off, rng.randrange(8))))
            fuzz_one(d, files, name, name, muts)
    for variant, (d, files, main) in synth.items():
        fd = d + "-fuzz"
        os.makedirs(fd)
        slide_file = [n for n in files if n.endswith((".01", ".1"))]
        sf = slide_file[0] if slide_file else main
        muts = mutations_for(files, main, rng, 0x1000 if slide_file else 0x10000, sf, scale)
        for n in files:
            if n != main:
                muts.append(("%s truncated" % n[-14:], n, trunc(rng.randrange(0, len(files[n])))))
                muts.append(("%s header flip" % n[-14:], n, flip(rng.randrange(0, 0x220), rng.randrange(8))))
        fuzz_one(fd, files, main, variant, muts)


def main():
    check_corpus()
    tmp = tempfile.mkdtemp(prefix="dk-cache-")
    try:
        synth = {}
        for variant in ("legacy", "single", "split_v1", "split_v2"):
            synth[variant] = check_synthetic(variant, tmp)
        check_synthetic_errors(tmp)
        check_fuzz(tmp, synth)
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    R.finish()


if __name__ == "__main__":
    main()
