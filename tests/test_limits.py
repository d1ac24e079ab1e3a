#!/usr/bin/env python3
"""Resource limits: hostile files built byte by byte are rejected in bounded
time and memory (issue #8).

Each case writes a file that claims something enormous and runs the dyldkit
commands that parse that structure; every run must
  - exit 1 with one `dyldkit: FILE: ...` line on stderr containing the
    expected phrase (the bound or the defect, stated by the code),
  - finish within TIME_LIMIT seconds (times DK_SLOW for sanitizer builds),
  - peak below RSS_LIMIT_MB of resident memory (sanitizer builds: 4x).

Cases (the bound that stops each is named in the library source):
  - a Mach-O claiming 4 billion load commands (ncmds 0xFFFFFFFF), with small
    and with enormous sizeofcmds (macho.c: ncmds * 8 <= sizeofcmds <= file);
  - an export trie whose node loops to itself, to its parent, and a chain of
    nodes deeper than DK_MAX_TRIE_DEPTH (trie.c: a node reached twice is an
    error; depth bound);
  - chained fixups whose chain never ends (next = 1 to the end of the page
    and beyond), whose page count claims 65535 pages, and whose pages all
    restart the same long chain from 1000s of overlapping starts
    (chained.c: chains stay in their page; a budget on chain entries);
  - a dyld cache whose slide info claims 2^32 - 1 page starts (v2, v3, v5)
    or a v1 toc of 2^32 - 1 entries (slide.c: page count vs mapping size);
  - universal files with 1,000 slices and with nfat_arch = 0xFFFFFFFF
    (file.c: DK_MAX_FAT_ARCHS).
Prints `limits: N cases, M runs`.
"""
import os
import struct
import sys
import tempfile

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "lib"))
import dktest  # noqa: E402

TIME_LIMIT = 2.0
RSS_LIMIT_MB = 200 if dktest.SLOW <= 1 else 800

MACHO_CMDS = ("info", "loadcmds", "segments", "symbols", "dylibs", "exports", "fixups", "chains", "opcodes", "stubs",
              "objc", "verify")


def run(args):
    """(rc, stdout, stderr, seconds, peak RSS in MB) of one dyldkit run; rc None when it had to be killed."""
    hard = TIME_LIMIT * dktest.SLOW * 5 + 5  # well beyond the bound: only so that a hang is reported
    rc, out, err, dt, ru = dktest.run_measured([dktest.DYLDKIT] + args, hard)
    return rc, out, err, dt, ru.ru_maxrss / 1024


def expect_rejected(rep, path, args, phrase):
    rc, out, err, dt, rss = run(args)
    text = err.decode(errors="replace")
    what = "%s (%s)" % (" ".join(a if a != path else os.path.basename(path) for a in args), os.path.basename(path))
    lines = text.splitlines()
    rep.ok(rc == 1, "%s: exit %s, want 1 (stderr %r)" % (what, rc, text[:300]))
    rep.ok(not out, "%s: %d bytes on stdout" % (what, len(out)))
    rep.ok(len(lines) == 1 and lines[0].startswith("dyldkit: ") and path in lines[0],
           "%s: stderr is not one 'dyldkit: FILE: ...' line: %r" % (what, text[:300]))
    rep.ok(phrase.lower() in text.lower(), "%s: message does not say %r: %r" % (what, phrase, text[:300]))
    rep.ok(dt <= TIME_LIMIT * dktest.SLOW, "%s: took %.2fs (limit %.1fs)" % (what, dt, TIME_LIMIT * dktest.SLOW))
    rep.ok(rss <= RSS_LIMIT_MB, "%s: peak RSS %.0f MB (limit %d MB)" % (what, rss, RSS_LIMIT_MB))
    return 1


# ------------------------------------------------------------ Mach-O builder

MH_MAGIC_64 = 0xFEEDFACF
CPU_X86_64 = 0x01000007
CPU_ARM64 = 0x0100000C
MH_EXECUTE = 2
LC_SEGMENT_64 = 0x19
LC_DYLD_EXPORTS_TRIE = 0x80000033
LC_DYLD_CHAINED_FIXUPS = 0x80000034
PAGE = 0x4000


def seg64(name, vmaddr, vmsize, fileoff, filesize, prot, sections=()):
    body = struct.pack("<16sQQQQiiII", name.encode(), vmaddr, vmsize, fileoff, filesize, prot, prot, len(sections), 0)
    for sect, addr, size, off in sections:
        body += struct.pack("<16s16sQQIIIIIIII", sect.encode(), name.encode(), addr, size, off, 3, 0, 0, 0, 0, 0, 0)
    return struct.pack("<II", LC_SEGMENT_64, 8 + len(body)) + body


def macho(data_seg, linkedit, extra_cmds, cpu=CPU_X86_64):
    """An MH_EXECUTE: __TEXT (one page), __DATA (DATA_SEG bytes at one page), __LINKEDIT
    (LINKEDIT bytes); EXTRA_CMDS get (linkedit file offset) and return load commands."""
    base = 0x100000000
    data_off = PAGE
    data_size = max(len(data_seg), PAGE)
    le_off = data_off + data_size
    cmds = [
        seg64("__PAGEZERO", 0, base, 0, 0, 0),
        seg64("__TEXT", base, PAGE, 0, PAGE, 5, [("__text", base + PAGE - 16, 16, PAGE - 16)]),
        seg64("__DATA", base + data_off, data_size, data_off, data_size, 3, [("__data", base + data_off, data_size, data_off)]),
        seg64("__LINKEDIT", base + le_off, (len(linkedit) + PAGE - 1) // PAGE * PAGE, le_off, len(linkedit), 1),
    ] + extra_cmds(le_off)
    lc = b"".join(cmds)
    hdr = struct.pack("<IiiIIIII", MH_MAGIC_64, cpu, 3 if cpu == CPU_X86_64 else 0, MH_EXECUTE, len(cmds), len(lc),
                      0x00200085, 0)
    text = (hdr + lc).ljust(PAGE, b"\0")
    return text + data_seg.ljust(data_size, b"\0") + linkedit


def linkedit_cmd(cmd, rel_off, size):
    return lambda le_off: [struct.pack("<IIII", cmd, 16, le_off + rel_off, size)]


def uleb2(v):
    """V (< 2^14) as a two-byte ULEB128."""
    return bytes([0x80 | (v & 0x7F), v >> 7])


def uleb(v):
    out = bytearray()
    while True:
        b = v & 0x7F
        v >>= 7
        if v:
            out.append(b | 0x80)
        else:
            out.append(b)
            return bytes(out)


# ------------------------------------------------------------------ cases

def case_load_commands(rep, tmp):
    n = 0
    # 4 billion load commands claimed by a 32-byte header plus 16 bytes of commands
    hdr = struct.pack("<IiiIIIII", MH_MAGIC_64, CPU_X86_64, 3, MH_EXECUTE, 0xFFFFFFFF, 16, 0, 0)
    p = os.path.join(tmp, "ncmds-4g")
    open(p, "wb").write(hdr + b"\0" * 16)
    for cmd in ("info", "loadcmds"):
        n += expect_rejected(rep, p, [cmd, p], "ncmds (4294967295)")
    # ... with sizeofcmds claiming 4 GiB of commands
    hdr = struct.pack("<IiiIIIII", MH_MAGIC_64, CPU_X86_64, 3, MH_EXECUTE, 0xFFFFFFFF, 0xFFFFFFF8, 0, 0)
    p = os.path.join(tmp, "ncmds-4g-sizeofcmds")
    open(p, "wb").write(hdr + b"\0" * 64)
    for cmd in ("info", "loadcmds"):
        n += expect_rejected(rep, p, [cmd, p], "sizeofcmds")
    # ... inside a universal file, where each slice is parsed
    fat = struct.pack(">II", 0xCAFEBABE, 1) + struct.pack(">iiIII", CPU_X86_64, 3, 0x1000, len(hdr) + 64, 12)
    p = os.path.join(tmp, "ncmds-4g-fat")
    open(p, "wb").write(fat.ljust(0x1000, b"\0") + hdr + b"\0" * 64)
    n += expect_rejected(rep, p, ["loadcmds", p], "sizeofcmds")
    return n


def trie_file(tmp, name, trie):
    data = macho(b"", trie.ljust(64, b"\0"), linkedit_cmd(LC_DYLD_EXPORTS_TRIE, 0, len(trie)))
    p = os.path.join(tmp, name)
    open(p, "wb").write(data)
    return p


def case_trie(rep, tmp):
    n = 0
    # root: no terminal, one child "_a" -> offset 0 (itself)
    loop = b"\x00\x01_a\x00\x00"
    p = trie_file(tmp, "trie-self-loop", loop)
    n += expect_rejected(rep, p, ["exports", p], "reached twice")
    # root -> node A ("_a") -> back to root ("b")
    a_off = 6
    two = b"\x00\x01_a\x00" + bytes([a_off]) + b"\x00\x01b\x00\x00"
    p = trie_file(tmp, "trie-two-loop", two)
    n += expect_rejected(rep, p, ["exports", p], "reached twice")
    # root with 255 children, every edge to the same terminal node right after the root
    root_len = 2 + 255 * 4  # count byte + 255 x {1-char edge, NUL, 2-byte ULEB}
    node = b"\x02\x00\x10\x00"  # terminal: 2 bytes (flags 0, address 0x10); no children
    shared = b"\x00\xff" + b"".join(bytes([0x41 + i % 26]) + b"\x00" + uleb2(root_len) for i in range(255))
    p = trie_file(tmp, "trie-shared", shared + node)
    n += expect_rejected(rep, p, ["exports", p], "reached twice")
    # a path of 600 single-edge nodes: deeper than DK_MAX_TRIE_DEPTH (512)
    deep = bytearray()
    for i in range(600):
        deep += b"\x00\x01x\x00" + uleb2(len(deep) + 6)
    deep += b"\x02\x00\x10\x00"
    p = trie_file(tmp, "trie-deep", bytes(deep))
    n += expect_rejected(rep, p, ["exports", p], "deeper than 512")
    return n


def chained_blob(segs_starts, imports_count=0, pointer_format=6, page_size=PAGE):
    """dyld_chained_fixups_header + starts_in_image (4 segments) + starts for __DATA (index 2)."""
    seg_count = 4
    starts_off = 32
    page_starts = segs_starts
    seg_info = struct.pack("<IHHQIH", 22 + 2 * len(page_starts), page_size, pointer_format, PAGE, 0,
                           len(page_starts)) + b"".join(struct.pack("<H", s) for s in page_starts)
    image = struct.pack("<I", seg_count) + struct.pack("<4I", 0, 0, 4 + 4 * seg_count, 0)
    starts = image + seg_info
    starts = starts.ljust((len(starts) + 3) // 4 * 4, b"\0")
    imports_off = starts_off + len(starts)
    symbols_off = imports_off + 4 * imports_count
    hdr = struct.pack("<7I", 0, starts_off, imports_off, symbols_off, imports_count, 1, 0).ljust(32, b"\0")
    return hdr + starts + b"\0" * (4 * imports_count) + b"\0\0\0\0"


def chained_file(tmp, name, data_seg, blob, cpu=CPU_X86_64):
    data = macho(data_seg, blob.ljust(len(blob) + 8, b"\0"), linkedit_cmd(LC_DYLD_CHAINED_FIXUPS, 0, len(blob)), cpu)
    p = os.path.join(tmp, name)
    open(p, "wb").write(data)
    return p


def ptr64_offset(target, nxt):
    """DYLD_CHAINED_PTR_64_OFFSET rebase: target (36 bits), high8 0, next (12 bits, 4-byte stride) at bit 51."""
    return struct.pack("<Q", (target & 0xFFFFFFFFF) | (nxt << 51))


def case_chains(rep, tmp):
    n = 0
    # a chain that never ends: every entry says "next one in 4 bytes", past the page end
    page = b"".join(ptr64_offset(0x10, 2) for _ in range(PAGE // 8))
    p = chained_file(tmp, "chain-never-ends", page, chained_blob([0]))
    for cmd in ("fixups", "chains"):
        n += expect_rejected(rep, p, [cmd, p], "past its page")
    # a page count of 65535 pages for a one-page segment
    blob = chained_blob([0xFFFF] * 0xFFFF)
    p = chained_file(tmp, "chain-65535-pages", page, blob)
    n += expect_rejected(rep, p, ["chains", p], "65535 pages")
    # 64 pages, each restarting one chain (8-byte steps to the page end) from 2,000 overlapping
    # starts 8 bytes apart (DYLD_CHAINED_PTR_START_MULTI, all pages sharing one overflow list):
    # about a billion chain steps unless overlapping chains are refused
    npages, nstarts = 64, 2000
    overflow = [8 * k for k in range(nstarts)]
    overflow[-1] |= 0x8000  # DYLD_CHAINED_PTR_START_LAST
    blob = fix_page_count(chained_blob([0x8000 | npages] * npages + overflow), npages)
    p = chained_file(tmp, "chain-overlapping-starts", page_chain(npages), blob)
    for cmd in ("fixups", "chains"):
        n += expect_rejected(rep, p, [cmd, p], "overlap")
    return n


def page_chain(npages):
    """NPAGES pages, each one chain of 64_OFFSET rebases 8 bytes apart running to the page end."""
    per = PAGE // 8
    one = b"".join(struct.pack("<Q", 0x10 | ((2 if i < per - 1 else 0) << 51)) for i in range(per))
    return one * npages


def fix_page_count(blob, npages):
    b = bytearray(blob)
    starts_off = struct.unpack("<I", b[4:8])[0]
    seg_info = starts_off + struct.unpack("<I", b[starts_off + 4 + 4 * 2: starts_off + 8 + 4 * 2])[0]
    struct.pack_into("<H", b, seg_info + 20, npages)
    return bytes(b)


# ---------------------------------------------------------------- caches

def cache_file(slide_blob, data_size=PAGE, arch="x86_64"):
    """A one-file dyld cache: header (mappingOffset 0x140), 3 mappings (TEXT, DATA, LINKEDIT) with
    a with-slide table giving DATA the slide info SLIDE_BLOB, no images."""
    mo = 0x140
    text_size = PAGE
    data_off = text_size
    le_off = data_off + data_size
    slide_off = le_off
    le_size = (len(slide_blob) + PAGE - 1) // PAGE * PAGE or PAGE
    base = 0x7FFF20000000
    maps = [(base, text_size, 0, 5, 5), (base + 0x20000000, data_size, data_off, 3, 3),
            (base + 0x40000000, le_size, le_off, 1, 1)]
    h = bytearray(mo + 32 * 3 + 56 * 3)
    h[0:16] = ("dyld_v1" + arch.rjust(8)).encode() + b"\0"
    struct.pack_into("<II", h, 0x10, mo, 3)
    wo = mo + 32 * 3
    struct.pack_into("<II", h, 0x138, wo, 3)
    for i, (addr, size, off, maxp, initp) in enumerate(maps):
        struct.pack_into("<QQQII", h, mo + 32 * i, addr, size, off, maxp, initp)
        so, ss = (slide_off, len(slide_blob)) if i == 1 else (0, 0)
        struct.pack_into("<QQQQQQII", h, wo + 56 * i, addr, size, off, so, ss, 0, maxp, initp)
    data = bytes(h).ljust(text_size, b"\0") + b"\0" * data_size + slide_blob.ljust(le_size, b"\0")
    return data


def case_slide(rep, tmp):
    n = 0
    blobs = {
        # dyld_cache_slide_info2: version, page_size, page_starts_offset, page_starts_count,
        # page_extras_offset, page_extras_count, delta_mask, value_add
        "v2": struct.pack("<IIIIIIQQ", 2, 0x1000, 40, 0xFFFFFFFF, 40, 0, 0x00FFFF0000000000, 0) + b"\0" * 64,
        # dyld_cache_slide_info3: version, page_size, page_starts_count, pad, auth_value_add
        "v3": struct.pack("<IIIIQ", 3, 0x4000, 0xFFFFFFFF, 0, 0) + b"\0" * 64,
        # dyld_cache_slide_info5: version, page_size, page_starts_count, pad, value_add
        "v5": struct.pack("<IIIIQ", 5, 0x4000, 0xFFFFFFFF, 0, 0) + b"\0" * 64,
        # dyld_cache_slide_info (v1): version, toc_offset, toc_count, entries_offset, entries_count, entries_size
        "v1": struct.pack("<IIIIII", 1, 24, 0xFFFFFFFF, 24, 1, 128) + b"\0" * 128,
        # v4 (arm64_32 style, 4-byte pointers) as stored by x86_64 header: still bounded
        "v4": struct.pack("<IIIIIIQQ", 4, 0x1000, 40, 0xFFFFFFFF, 40, 0, 0xC0000000, 0) + b"\0" * 64,
    }
    for name, blob in blobs.items():
        arch = "arm64_32" if name == "v4" else ("arm64e" if name in ("v3", "v5") else "x86_64")
        p = os.path.join(tmp, "cache-slide-%s-2p32" % name)
        open(p, "wb").write(cache_file(blob, arch=arch))
        for args in (["cache", "slide", p], ["cache", "info", p], ["cache", "mappings", p]):
            n += expect_rejected(rep, p, args, "4294967295")
    # page starts that the blob does hold (70,000 of them) for a mapping of one page
    count = 70000
    blobs = {
        "v2": struct.pack("<IIIIIIQQ", 2, 0x1000, 40, count, 40, 0, 0x00FFFF0000000000, 0) + b"\xff\xff" * count,
        "v3": struct.pack("<IIIIQ", 3, 0x1000, count, 0, 0) + b"\xff\xff" * count,
    }
    for name, blob in blobs.items():
        p = os.path.join(tmp, "cache-slide-%s-70000" % name)
        open(p, "wb").write(cache_file(blob, data_size=0x1000, arch="arm64e" if name == "v3" else "x86_64"))
        n += expect_rejected(rep, p, ["cache", "slide", p], "70000")
    return n


# ------------------------------------------------------------ universal

def tiny_macho():
    hdr = struct.pack("<IiiIIIII", MH_MAGIC_64, CPU_X86_64, 3, MH_EXECUTE, 0, 0, 0, 0)
    return hdr


def case_universal(rep, tmp):
    n = 0
    count = 1000
    body = tiny_macho()
    start = (8 + 20 * count + 0xFFF) // 0x1000 * 0x1000
    archs = b"".join(struct.pack(">iiIII", CPU_X86_64, 3 + i, start + 0x40 * i, len(body), 0) for i in range(count))
    data = (struct.pack(">II", 0xCAFEBABE, count) + archs).ljust(start, b"\0")
    data += b"".join(body.ljust(0x40, b"\0") for _ in range(count))
    p = os.path.join(tmp, "fat-1000")
    open(p, "wb").write(data)
    for cmd in ("info", "loadcmds", "exports"):
        n += expect_rejected(rep, p, [cmd, p], "1000")
    # 4 billion slices claimed by a 28-byte file
    p = os.path.join(tmp, "fat-4g")
    open(p, "wb").write(struct.pack(">II", 0xCAFEBABE, 0xFFFFFFFF) + archs[:20])
    n += expect_rejected(rep, p, ["info", p], "4294967295")
    # fat64 with 1000 slices
    archs64 = b"".join(struct.pack(">iiQQII", CPU_X86_64, 3 + i, start + 0x40 * i, len(body), 0, 0) for i in range(count))
    start64 = (8 + 32 * count + 0xFFF) // 0x1000 * 0x1000
    data = (struct.pack(">II", 0xCAFEBABF, count) + archs64).ljust(start64, b"\0")
    data += b"".join(body.ljust(0x40, b"\0") for _ in range(count))
    p = os.path.join(tmp, "fat64-1000")
    open(p, "wb").write(data)
    n += expect_rejected(rep, p, ["info", p], "1000")
    return n


def main():
    rep = dktest.Report("limits")
    tmp = tempfile.mkdtemp(prefix="dk-limits-")
    runs = 0
    cases = (case_load_commands, case_trie, case_chains, case_slide, case_universal)
    try:
        for case in cases:
            runs += case(rep, tmp)
    finally:
        for f in os.listdir(tmp):
            os.unlink(os.path.join(tmp, f))
        os.rmdir(tmp)
    print("limits: %d cases, %d runs" % (len(cases), runs))
    rep.finish()


if __name__ == "__main__":
    main()
