#!/usr/bin/env python3
"""call: load Mach-O code and run it (x86_64 natively, arm64 under unicorn).

1. Every self-test fixture (tests/fixtures/expected/selftest.json): selftest()
   returns 0 and every listed function returns the expected value and prints
   the expected text, on each set (x86_64/arm64, classic/chained, the
   -init_offsets variant, the universal file with and without --arch).
2. --json shape and --ret; the umbrella clients against their own libSystem
   (--root), whose dyld_stub_binder is a trap: lazy binding must be ours.
3. Usage errors exit 2; a missing dependency, an unresolved import, a missing
   symbol, a call to a --lazy trap and guest crashes exit 1 with one message.
4. Damaged copies (fixups outside the segments, bad ordinals, truncation,
   initializers outside __TEXT, TLV descriptors past their template, random
   corruption of the fixup data) exit 1 (or run), never crash the host.
"""
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

FX = dktest.FIXTURES
SETS = ["x86_64-classic", "x86_64-chained", "arm64-classic", "arm64-chained"]
TIMEOUT = 60


def call(*args, timeout=TIMEOUT):
    """(rc, stdout text, stderr text); rc is negative (a signal) or 'timeout' when the host died."""
    try:
        rc, out, err = dktest.run([dktest.DYLDKIT, "call"] + list(args), timeout=timeout)
    except subprocess.TimeoutExpired:
        return "timeout", "", ""
    err = err.decode(errors="replace")
    if "Sanitizer" in err or "runtime error:" in err:
        return "sanitizer", "", err  # a report even if the guard turned its abort into exit 1
    return rc, out.decode(errors="replace"), err


def selftest_targets(spec):
    """(label, path, extra args, arch) for every fixture of selftest.json."""
    out = []
    for rel in spec["fixtures"]:
        path = os.path.join(FX, rel)
        if rel.startswith("universal/"):
            out.append((rel + " --arch x86_64", path, ["--arch", "x86_64"], "x86_64"))
            out.append((rel + " --arch arm64", path, ["--arch", "arm64"], "arm64"))
            out.append((rel + " (default slice)", path, [], "x86_64"))
        else:
            out.append((rel, path, [], rel.split("-")[0]))
    return out


def check_calls(rep, spec):
    jobs = []
    for label, path, extra, arch in selftest_targets(spec):
        for c in spec["calls"]:
            if "archs" in c and arch not in c["archs"]:
                continue
            jobs.append((label, path, extra, c))

    def one(job):
        label, path, extra, c = job
        args = extra + ["--ret", c["ret"], path, c["symbol"]] + c["args"]
        return job, call(*args)

    with ThreadPoolExecutor(max_workers=4) as ex:
        for (label, path, extra, c), (rc, out, err) in ex.map(one, jobs):
            what = "%s: %s(%s)" % (label, c["symbol"], ", ".join(c["args"]))
            if not rep.ok(rc == 0, "%s: exit %s: %s" % (what, rc, err.strip())):
                continue
            lines = out.split("\n")
            if not rep.ok(len(lines) >= 2 and lines[-1] == "", "%s: no result line: %r" % (what, out)):
                continue
            result = lines[-2]
            printed = "\n".join(lines[:-2]) + ("\n" if len(lines) > 2 else "")
            try:
                value = int(result)
            except ValueError:
                rep.fail("%s: result line %r is not a number" % (what, result))
                continue
            if "result" in c:
                rep.ok(value == c["result"], "%s: returned %d, expected %d" % (what, value, c["result"]))
            if "result_min" in c:
                rep.ok(value >= c["result_min"], "%s: returned %d, expected >= %d" % (what, value, c["result_min"]))
            rep.ok(printed == c.get("stdout", ""), "%s: printed %r, expected %r" % (what, printed, c.get("stdout", "")))


def check_json_and_ret(rep):
    for s in SETS:
        lib = os.path.join(FX, s, "selftest", "libselftest.dylib")
        rc, out, err = call("--json", lib, "add3", "1", "2", "3")
        if not rep.ok(rc == 0, "%s: --json exit %s: %s" % (s, rc, err)):
            continue
        rep.ok(out.count("\n") == 1, "%s: --json is one line: %r" % (s, out[:200]))
        doc = json.loads(out)
        arch = s.split("-")[0]
        rep.ok(doc.get("schema") == 1 and doc.get("symbol") == "_add3" and doc.get("result") == 6,
               "%s: --json schema/symbol/result: %s" % (s, out[:200]))
        rep.ok(doc.get("arch") == arch, "%s: arch %r" % (s, doc.get("arch")))
        rep.ok(doc.get("mode") == ("native" if arch == "x86_64" else "emulated"), "%s: mode %r" % (s, doc.get("mode")))
        imgs = doc.get("images", [])
        names = sorted(os.path.basename(i["path"]) for i in imgs)
        rep.ok(names == ["libselftest.dylib", "libstinner.dylib", "libstouter.dylib", "libstweak.dylib"],
               "%s: images %s" % (s, names))
        rep.ok(all(isinstance(i.get("load_address"), int) and i["load_address"] > 0 and i.get("install_name")
                   for i in imgs), "%s: every image has a load_address and an install_name" % s)
        rep.ok(imgs and os.path.samefile(imgs[0]["path"], lib), "%s: images[0] is LIB" % s)
        main = imgs[0] if imgs else {"load_address": 0, "size": 0}
        rep.ok(isinstance(doc.get("address"), int) and main["load_address"] <= doc["address"] < main["load_address"] + main["size"],
               "%s: address inside the main image" % s)
        rep.ok(doc.get("host_dylibs") == ["/usr/lib/libSystem.B.dylib"], "%s: host_dylibs %r" % (s, doc.get("host_dylibs")))
        # --ret
        for ret, args, want in [("void", ["selftest"], ""), ("int", ["negate", "0x7fffffffffffffff"], "1\n"),
                                ("uint", ["negate", "7"], "4294967289\n"), ("long", ["negate", "7"], "-7\n"),
                                ("ulong", ["negate", "1"], "18446744073709551615\n")]:
            rc, out, err = call("--ret", ret, lib, *args)
            rep.ok(rc == 0 and out == want, "%s: --ret %s %s: exit %s, %r (expected %r) %s" % (s, ret, args, rc, out, want, err))
        rc, out, err = call("--json", "--ret", "void", lib, "selftest")
        rep.ok(rc == 0 and json.loads(out).get("result", 0) is None, "%s: --json --ret void has result null" % s)


def check_umbrella(rep):
    spec = json.load(open(os.path.join(dktest.ROOT, "tests", "fixtures", "expected", "umbrella.json")))
    for fx in spec["fixtures"]:
        path = os.path.join(FX, fx["client"])
        root = os.path.join(FX, fx["root"])
        rc, out, err = call("--root", root, path, "umbrella_selftest")
        rep.ok(rc == 0 and out == "0\n", "%s: umbrella_selftest: exit %s, %r %s" % (fx["client"], rc, out, err.strip()))
    # without --root the umbrella is missing: libSystem is served by the host instead
    rc, out, err = call(os.path.join(FX, "x86_64-chained", "umbrella", "libumbclient.dylib"), "umbrella_selftest")
    rep.ok(rc == 1 and ("libSystem_fixture_version" in err or "dyld_fixture_image_count" in err or "kernel_log" in err),
           "umbrella without --root: exit 1 naming an umbrella-only symbol: %s %s" % (rc, err.strip()))


def one_message(rep, what, rc, err, want_rc, needle):
    rep.ok(rc == want_rc, "%s: exit %s (expected %s): %s" % (what, rc, want_rc, err.strip()))
    rep.ok(err.count("\n") >= 1 and needle in err, "%s: message names %r: %r" % (what, needle, err))


def check_errors(rep, tmp):
    x86 = os.path.join(FX, "x86_64-chained", "selftest", "libselftest.dylib")
    arm = os.path.join(FX, "arm64-chained", "selftest", "libselftest.dylib")
    uni = os.path.join(FX, "universal", "selftest", "libselftest.dylib")
    # usage
    for args, what in [([], "no arguments"), ([x86], "no SYMBOL"), ([x86, "add3", "12abc"], "12abc"),
                       ([x86, "add3", "0x"], "0x"), ([x86, "add3", "--", "1x"], "1x"), ([x86, "add3", "1.5"], "1.5"),
                       ([x86, "add3", "99999999999999999999"], "overflow"),
                       ([x86, "add6"] + ["1"] * 7, "7 arguments on x86_64"),
                       ([arm, "add8"] + ["1"] * 9, "9 arguments on arm64"),
                       (["--arch", "ppc", uni, "selftest"], "--arch ppc"),
                       (["--arch", "arm64", x86, "selftest"], "--arch arm64 of a thin x86_64 file"),
                       (["--arch", "i386", arm, "selftest"], "--arch i386"),
                       (["--ret", "float", x86, "selftest"], "--ret float"), (["--bogus", x86, "selftest"], "--bogus")]:
        rc, out, err = call(*args)
        rep.ok(rc == 2 and out == "", "usage: %s: exit %s %r %s" % (what, rc, out, err.strip()))
    rc, out, err = call(arm, "add8", *["1"] * 8)
    rep.ok(rc == 0 and out == "36\n", "8 arguments on arm64: %s %r" % (rc, out))
    # missing LIB, missing dependency, missing symbol
    rc, out, err = call(os.path.join(tmp, "nonexistent.dylib"), "selftest")
    one_message(rep, "missing LIB", rc, err, 1, "nonexistent.dylib")
    for s in SETS:
        alone = os.path.join(tmp, "alone-" + s)
        os.makedirs(alone)
        shutil.copy(os.path.join(FX, s, "selftest", "libselftest.dylib"), alone)
        rc, out, err = call(os.path.join(alone, "libselftest.dylib"), "selftest")
        one_message(rep, "%s: missing dependency" % s, rc, err, 1, "libstouter.dylib")
        # -L finds them by basename
        rc, out, err = call("-L", os.path.join(FX, s, "selftest"), os.path.join(alone, "libselftest.dylib"), "selftest")
        rep.ok(rc == 0 and out == "0\n", "%s: -L DIR finds the dependencies: %s %r %s" % (s, rc, out, err.strip()))
        lib = os.path.join(FX, s, "selftest", "libselftest.dylib")
        rc, out, err = call(lib, "no_such_function")
        one_message(rep, "%s: missing SYMBOL" % s, rc, err, 1, "no_such_function")
        # an import nothing defines: libflat's flat lookups of libminic symbols
        flat = os.path.join(FX, s, "libflat.dylib")
        rc, out, err = call(flat, "flat_call", "1")
        one_message(rep, "%s: unresolved import" % s, rc, err, 1, "_minic_")
        rc, out, err = call("--lazy", flat, "flat_call", "1")
        one_message(rep, "%s: call to a --lazy trap" % s, rc, err, 1, "_minic_add")
        rep.ok(out == "flat 1\n", "%s: the guest's output before the trap is kept: %r" % (s, out))
        # libobjc is served by the host, which has no Objective-C runtime
        rc, out, err = call(os.path.join(FX, s, "libshapes.dylib"), "anything")
        one_message(rep, "%s: libobjc import" % s, rc, err, 1, "libobjc")
        # guest crashes: a data symbol called as code; a NULL pointer handed to the host's strlen
        rc, out, err = call(lib, "st_value_ptrs")
        one_message(rep, "%s: calling data" % s, rc, err, 1, "libselftest.dylib+0x")
        rc, out, err = call(lib, "str_len", "0")
        one_message(rep, "%s: NULL to strlen" % s, rc, err, 1, "crashed")


def check_arm64e(rep):
    """A real arm64e dylib (ARM64E_USERLAND24 chained fixups, authenticated
    rebases and binds) from the shared corpus loads; its only export is data,
    so the call itself faults, which names the symbol."""
    lib = os.path.join(dktest.CORPUS, "macho", "gimli-object-testfiles", "macho", "fixup-chains-arm64e.dylib")
    if not os.path.exists(lib):
        return
    rc, out, err = call("--lazy", "--json", lib, "h")
    rep.ok(rc == 1 and "non-executable" in err and "_h" in err, "arm64e corpus dylib: exit %s: %s" % (rc, err.strip()))
    rc, out, err = call(lib, "h")
    one_message(rep, "arm64e corpus dylib without --lazy", rc, err, 1, "_errno")


# ------------------------------------------------------------------ damage

def load_json(*args):
    rc, doc, err = dktest.dk_json(*args)
    return doc if rc == 0 else None


def file_offset(segs, vmaddr):
    for s in segs["segments"]:
        if s["vmaddr"] <= vmaddr < s["vmaddr"] + s["filesize"]:
            return vmaddr - s["vmaddr"] + s["fileoff"]
    return None


def section(segs, name):
    for s in segs["segments"]:
        for sec in s.get("sections", []):
            if sec["name"] == name:
                return sec
    return None


def damaged_copies(s, src):
    """(label, bytes, expected rc or None for 'anything but a crash') for one set."""
    data = open(src, "rb").read()
    segs = load_json("segments", "--json", src)
    out = []
    # truncated
    for cut in [0, 4, 32, 200, len(data) // 2, len(data) - 1]:
        out.append(("truncated to %d bytes" % cut, data[:cut], 1))
    if "classic" in s:
        ops = load_json("opcodes", "--json", src)
        streams = {st["name"]: st for st in ops["streams"]}
        bind = streams["bind"]
        o = [op for op in bind["opcodes"] if op["opcode"] == "BIND_OPCODE_SET_DYLIB_ORDINAL_IMM"][0]
        d = bytearray(data)
        d[bind["offset"] + o["offset"]] = 0x1F  # ordinal 15 of 3 dylibs
        out.append(("bind ordinal out of range", bytes(d), 1))
        lazy = streams["lazy_bind"]
        o = [op for op in lazy["opcodes"] if op["opcode"] == "BIND_OPCODE_SET_DYLIB_ORDINAL_IMM"][0]
        d = bytearray(data)
        d[lazy["offset"] + o["offset"]] = 0x1E
        out.append(("lazy-bind ordinal out of range", bytes(d), 1))
        reb = streams["rebase"]
        o = [op for op in reb["opcodes"] if op["opcode"] == "REBASE_OPCODE_SET_SEGMENT_AND_OFFSET_ULEB"][0]
        d = bytearray(data)
        d[reb["offset"] + o["offset"]] = 0x20 | 0xF  # segment 15
        out.append(("rebase in a segment that does not exist", bytes(d), 1))
        o = [op for op in reb["opcodes"] if op["opcode"] == "REBASE_OPCODE_DO_REBASE_ULEB_TIMES"][0]
        d = bytearray(data)
        at = reb["offset"] + o["offset"] + 1
        n = 0
        while d[at + n] & 0x80:
            n += 1
        d[at:at + n + 1] = b"\xff" * n + b"\x7f"  # far more pointers than the segment holds
        out.append(("rebases running past the segment", bytes(d), 1))
        init = section(segs, "__mod_init_func")
        if init:
            d = bytearray(data)
            data_sec = section(segs, "__data")
            struct.pack_into("<Q", d, init["offset"], data_sec["addr"])  # an initializer in __DATA
            out.append(("initializer outside __TEXT", bytes(d), 1))
    else:
        ch = load_json("chains", "--json", src)
        h = ch["header"]
        d = bytearray(data)
        d[h["dataoff"] + h["imports_offset"]] = 0x0F  # import 0: ordinal 15
        out.append(("import ordinal out of range", bytes(d), 1))
        seg = [sg for sg in ch["segments"] if sg.get("page_count")][0]
        starts = h["dataoff"] + h["starts_offset"] + seg["seg_info_offset"]
        d = bytearray(data)
        struct.pack_into("<H", d, starts + 20, 0x7fff)  # page_count: pages far past the segment
        out.append(("chain pages past the segment", bytes(d), 1))
        d = bytearray(data)
        struct.pack_into("<H", d, starts + 22, 0x3ff8)  # page_start past the page's pointers
        out.append(("chain starting at the end of a page", bytes(d), None))
        init = section(segs, "__init_offsets")
        if init:
            d = bytearray(data)
            data_sec = section(segs, "__data")
            struct.pack_into("<I", d, init["offset"], data_sec["addr"])
            out.append(("init offset outside __TEXT", bytes(d), 1))
    tv = section(segs, "__thread_vars")
    if tv:
        d = bytearray(data)
        struct.pack_into("<Q", d, tv["offset"] + 16, 0x100000)
        out.append(("TLV descriptor past its template", bytes(d), 1))
    # random corruption of the fixup information (seeded: the same copies every run)
    rng = random.Random("call-" + s)
    if "classic" in s:
        ops = load_json("opcodes", "--json", src)
        ranges = [(st["offset"], st["size"]) for st in ops["streams"]]
    else:
        h = load_json("chains", "--json", src)["header"]
        ranges = [(h["dataoff"], h["datasize"])]
    for i in range(24):
        d = bytearray(data)
        for _ in range(1 + i % 4):
            off, size = rng.choice(ranges)
            d[off + rng.randrange(size)] = rng.randrange(256)
        out.append(("random fixup damage #%d" % i, bytes(d), None))
    return out


def check_damage(rep, tmp):
    jobs = []
    for s in SETS:
        src = os.path.join(FX, s, "selftest", "libselftest.dylib")
        for k, (label, blob, want) in enumerate(damaged_copies(s, src)):
            d = os.path.join(tmp, "damage-%s-%d" % (s, k))
            shutil.copytree(os.path.join(FX, s, "selftest"), d)
            path = os.path.join(d, "libselftest.dylib")
            open(path, "wb").write(blob)
            jobs.append(("%s: %s" % (s, label), path, want))

    def one(job):
        return job, call(job[1], "selftest_count", timeout=30)

    with ThreadPoolExecutor(max_workers=4) as ex:
        for (label, path, want), (rc, out, err) in ex.map(one, jobs):
            if want is None:
                rep.ok(rc in (0, 1), "%s: exit %s (a crash or hang of the host): %s" % (label, rc, err.strip()[:300]))
            else:
                rep.ok(rc == want, "%s: exit %s, expected %s: %s" % (label, rc, want, err.strip()[:300]))
            if rc == 1:
                rep.ok(err.startswith("dyldkit: ") and err.count("\n") == 1, "%s: one message line: %r" % (label, err[:300]))


def main():
    rep = dktest.Report("call")
    spec = json.load(open(os.path.join(dktest.ROOT, "tests", "fixtures", "expected", "selftest.json")))
    tmp = tempfile.mkdtemp(prefix="dk-call-")
    try:
        check_calls(rep, spec)
        check_json_and_ret(rep)
        check_umbrella(rep)
        check_errors(rep, tmp)
        check_arm64e(rep)
        check_damage(rep, tmp)
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    rep.finish()


if __name__ == "__main__":
    main()
