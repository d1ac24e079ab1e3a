#!/usr/bin/env python3
"""Build the benchmark inputs with the real toolchain (clang-22, ld64.lld-22).

    bench/gen.py OUTDIR            (make bench uses build/bench-inputs)

Everything is generated source (assembly, C, Objective-C) compiled and linked
here; nothing is committed.  A stamp (the hash of this file) makes a second
run a no-op; delete OUTDIR or edit this file to rebuild.

OUTDIR/
  libexp_{classic,chained}.dylib   arm64, 100,000 exported functions (export trie)
  libfix_{classic,chained}.dylib   arm64, 1,000,000 pointer fixups (7/8 rebases,
                                   1/8 binds to libexp's exports)
  stubs_{classic,chained}          arm64 executable calling 100,000 imports
                                   through 100,000 stubs (classic: lazy binds)
  cache/dyld_shared_cache_arm64    `dyldkit cache build` of cache/dylibs/*:
                                   a libobjc stand-in and 1,000 ObjC dylibs,
                                   100 unique selectors each (100,000+)
"""
import hashlib
import os
import shutil
import subprocess
import sys
import time
from concurrent.futures import ThreadPoolExecutor

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.dirname(HERE)
CLANG = os.environ.get("CLANG", "clang-22")
LD = os.environ.get("LD", "ld64.lld-22")

N_EXPORTS = 100_000
N_FIXUPS = 1_000_000
N_STUBS = 100_000
N_IMAGES = 1000
N_SELS = 100          # unique selectors (methods) per image
N_LOCAL = 4096        # rebase targets in libfix

TRIPLES = {"classic": ("arm64-apple-macos11", "-Wl,-no_fixup_chains"),
           "chained": ("arm64-apple-macos12", "-Wl,-fixup_chains")}


def log(msg):
    print("gen: " + msg, file=sys.stderr, flush=True)


def run(cmd, cwd=None):
    r = subprocess.run(cmd, cwd=cwd, stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    if r.returncode != 0:
        sys.stderr.write(r.stdout.decode(errors="replace") + r.stderr.decode(errors="replace"))
        raise SystemExit("gen: failed: " + " ".join(cmd[:12]) + " ...")


def cc(out, kind, sdk, *args):
    triple, fix = TRIPLES[kind]
    run([CLANG, "-target", triple, "-isysroot", sdk, "-fuse-ld=lld", "--ld-path=" + LD,
         "-O1", "-fno-stack-protector", fix, *args, "-o", out])


def write(path, text):
    with open(path, "w") as f:
        f.write(text)


def gen_exp(d, sdk):
    s = os.path.join(d, "exp.s")
    lines = ["\t.text", "\t.p2align 2"]
    for i in range(N_EXPORTS):
        lines.append("\t.globl _bk_exp_%d\n_bk_exp_%d:\n\tret" % (i, i))
    write(s, "\n".join(lines) + "\n")
    for kind in TRIPLES:
        cc(os.path.join(d, "libexp_%s.dylib" % kind), kind, sdk, "-dynamiclib",
           "-install_name", "@rpath/libexp.dylib", s)


def gen_fix(d, sdk):
    s = os.path.join(d, "fix.s")
    out = ["\t.text", "\t.p2align 2"]
    for k in range(N_LOCAL):
        out.append("_bk_local_%d:\n\tret" % k)
    out.append("\t.globl _bk_fix_entry\n_bk_fix_entry:\n\tret")
    out.append("\t.section __DATA,__data\n\t.p2align 3\n\t.globl _bk_table\n_bk_table:")
    for n in range(N_FIXUPS):
        if n % 8 == 7:
            out.append("\t.quad _bk_exp_%d" % ((n * 37) % N_EXPORTS))
        else:
            out.append("\t.quad _bk_local_%d" % (n % N_LOCAL))
    write(s, "\n".join(out) + "\n")
    for kind in TRIPLES:
        cc(os.path.join(d, "libfix_%s.dylib" % kind), kind, sdk, "-dynamiclib",
           "-install_name", "@rpath/libfix.dylib", s, os.path.join(d, "libexp_%s.dylib" % kind))


def gen_stubs(d, sdk):
    s = os.path.join(d, "stubs.s")
    out = ["\t.text", "\t.p2align 2", "\t.globl _main", "_main:",
           "\tstp x29, x30, [sp, #-16]!"]
    for i in range(N_STUBS):
        out.append("\tbl _bk_exp_%d" % i)
    out += ["\tmov w0, #0", "\tldp x29, x30, [sp], #16", "\tret"]
    write(s, "\n".join(out) + "\n")
    for kind in TRIPLES:
        cc(os.path.join(d, "stubs_%s" % kind), kind, sdk, s, os.path.join(d, "libexp_%s.dylib" % kind))


OBJC_H = """__attribute__((objc_root_class))
@interface NSObject { Class isa; }
+ (id)alloc;
- (id)init;
@end
"""

LIBOBJC_M = """#include "bkobjc.h"
@implementation NSObject
+ (id)alloc { return (id)self; }
- (id)init { return self; }
@end
"""

LIBOBJC_C = """void *_objc_empty_cache[4];
void *objc_msgSend(void *a, void *s) { return a; }
void *objc_msgSendSuper2(void *a, void *s) { return a; }
void *objc_alloc(void *a) { return a; }
void *objc_alloc_init(void *a) { return a; }
void *objc_opt_class(void *a) { return a; }
"""


def deps_of(i):
    """Images image I links against (besides libobjc)."""
    return sorted({j for j in (i - 1, i // 2, (i * 7) // 13) if 0 <= j < i})


def image_source(i):
    """ObjC dylib I: class BK<i> (subclass of BK<i-1> unless i % 10 == 0) with
    N_SELS methods of its own selectors, a function calling into its
    dependencies, messages to their selectors, and a table of pointers to
    their functions (cross-image binds)."""
    deps = deps_of(i)
    sup = "BK%d" % (i - 1) if i % 10 and i > 0 else "NSObject"
    o = ['#include "bkobjc.h"']
    for j in deps:
        o.append("extern int bk_f%d(int);" % j)
    if sup != "NSObject":
        o.append("@interface %s : NSObject @end" % sup)
    for j in deps:
        o.append("@interface BKX%d_%d : NSObject\n- (int)bk%d_m0:(int)a;\n- (int)bk%d_m1:(int)a;\n@end"
                 % (i, j, j, j))
    o.append("@interface BK%d : %s { int x%d; }" % (i, sup, i))
    for k in range(N_SELS):
        o.append("- (int)bk%d_m%d:(int)a;" % (i, k))
    o.append("@end\n@implementation BK%d" % i)
    for k in range(N_SELS):
        if k == 1:
            body = "return [self bk%d_m0:a] + x%d;" % (i, i)
        elif k == 2 and deps:
            body = "return " + " + ".join("[(BKX%d_%d *)self bk%d_m%d:a]" % (i, j, j, m)
                                          for j in deps for m in (0, 1)) + ";"
        else:
            body = "return a + %d;" % k
        o.append("- (int)bk%d_m%d:(int)a { %s }" % (i, k, body))
    o.append("@end")
    calls = " + ".join("bk_f%d(a)" % j for j in deps) or "0"
    o.append("int bk_f%d(int a) { return a + %s; }" % (i, calls))
    ptrs = ["(void *)bk_f%d" % i] + ["(void *)bk_f%d" % j for j in deps] * 4
    o.append("void *bk_table%d[] = { %s };" % (i, ", ".join(ptrs)))
    return "\n".join(o) + "\n"


def gen_cache(d, sdk, dk):
    c = os.path.join(d, "cache")
    src = os.path.join(c, "src")
    lib = os.path.join(c, "dylibs")
    for p in (src, lib):
        os.makedirs(p, exist_ok=True)
    write(os.path.join(src, "bkobjc.h"), OBJC_H)
    write(os.path.join(src, "libobjc.m"), LIBOBJC_M)
    write(os.path.join(src, "rt.c"), LIBOBJC_C)
    kind = "chained"
    triple, fix = TRIPLES[kind]
    common = ["-target", triple, "-isysroot", sdk, "-O1", "-fno-stack-protector", "-fno-builtin",
              "-fno-objc-arc", "-I", src]
    link = ["-fuse-ld=lld", "--ld-path=" + LD, fix, "-nostdlib", "-dynamiclib",
            "-Wl,-objc_relative_method_lists"]
    objc = os.path.join(lib, "libobjc.A.dylib")
    run([CLANG, *common, *link, "-install_name", "/usr/lib/libobjc.A.dylib",
         os.path.join(src, "libobjc.m"), os.path.join(src, "rt.c"), "-o", objc])
    names = []
    for i in range(N_IMAGES):
        write(os.path.join(src, "bk%d.m" % i), image_source(i))
        names.append("bk%d" % i)
    # compile in batches (one clang process compiles many files), 2 at a time
    t0 = time.time()
    batches = [names[k:k + 50] for k in range(0, len(names), 50)]
    ncpu = os.cpu_count() or 2
    with ThreadPoolExecutor(max_workers=ncpu) as ex:
        list(ex.map(lambda b: run([CLANG, *common, "-c", *[n + ".m" for n in b]], cwd=src), batches))
    log("cache: compiled %d images in %.1fs" % (N_IMAGES, time.time() - t0))
    # link in dependency order (each image links against earlier ones)
    t0 = time.time()
    paths = [objc]
    for i in range(N_IMAGES):
        out = os.path.join(lib, "libbk%d.dylib" % i)
        run([CLANG, *common, *link, "-install_name", "/System/Library/bk/libbk%d.dylib" % i,
             os.path.join(src, "bk%d.o" % i), objc,
             *[os.path.join(lib, "libbk%d.dylib" % j) for j in deps_of(i)], "-o", out])
        paths.append(out)
    log("cache: linked %d images in %.1fs" % (N_IMAGES, time.time() - t0))
    write(os.path.join(c, "inputs.txt"), "\n".join(paths) + "\n")
    t0 = time.time()
    run([dk, "cache", "build", "-o", os.path.join(c, "dyld_shared_cache_arm64"), *paths])
    log("cache: built in %.1fs" % (time.time() - t0))


def main():
    if len(sys.argv) not in (2, 3):
        raise SystemExit("usage: gen.py OUTDIR [DYLDKIT]")
    d = os.path.abspath(sys.argv[1])
    dk = os.path.abspath(sys.argv[2] if len(sys.argv) == 3 else os.path.join(ROOT, "build", "dyldkit"))
    os.environ.pop("LIBRARY_PATH", None)
    with open(os.path.abspath(__file__), "rb") as f:
        stamp = hashlib.sha256(f.read()).hexdigest()
    sfile = os.path.join(d, "stamp")
    if os.path.exists(sfile) and open(sfile).read() == stamp:
        return
    if os.path.exists(d):
        shutil.rmtree(d)
    os.makedirs(d)
    sdk = os.path.join(d, "sdk")
    os.makedirs(os.path.join(sdk, "usr", "lib"))
    for f in ("libSystem.B.tbd", "libobjc.A.tbd"):
        shutil.copy(os.path.join(ROOT, "tests", "fixtures", "src", "sdk", "usr", "lib", f),
                    os.path.join(sdk, "usr", "lib", f))
    os.symlink("libSystem.B.tbd", os.path.join(sdk, "usr", "lib", "libSystem.tbd"))
    os.symlink("libobjc.A.tbd", os.path.join(sdk, "usr", "lib", "libobjc.tbd"))
    for name, fn in (("exports", gen_exp), ("fixups", gen_fix), ("stubs", gen_stubs)):
        t0 = time.time()
        fn(d, sdk)
        log("%s: %.1fs" % (name, time.time() - t0))
    gen_cache(d, sdk, dk)
    for f in ("exp.s", "fix.s", "stubs.s"):
        os.remove(os.path.join(d, f))
    write(sfile, stamp)


if __name__ == "__main__":
    main()
