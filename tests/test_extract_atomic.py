#!/usr/bin/env python3
"""No partial output from `cache extract` (issue #8).

A cache of 12 images is built from the fixtures and extracted once in full
(the reference).  Then:
  - interrupted: `cache extract --all` (-j1 and -j2) is stopped (SIGSTOP) at
    short intervals until some but not all images are written, and killed
    with SIGKILL right there; afterwards every regular file under the output
    directory has the name and the exact bytes of a reference file, and no
    temporary file (".dk-tmp-") is left;
  - failing writes: with RLIMIT_FSIZE of 1 byte and SIGXFSZ ignored every
    write fails (EFBIG): exit 1, each failure one `dyldkit: image N: ...` line,
    no file left; with SIGXFSZ at its default the process dies while writing:
    no file left; with a limit between the smallest and largest image, the
    images that fit are complete and the others absent;
  - unwritable output (we run as root, so no chmod): -o through a regular file,
    -o under /proc, a read-only bind mount in a private mount namespace
    (skipped where mounts are not allowed), and a final path occupied by a
    directory: exit 1 with one clear `dyldkit: ...` line (per failing image
    for the last), nothing written, no temporary file.
Prints `extract-atomic: N kills (M mid-run), K failure cases`.
"""
import os
import resource
import shutil
import signal
import subprocess
import sys
import tempfile
import time

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "lib"))
import dktest  # noqa: E402

SET = "arm64-classic"
LIBS = ["libminidep.dylib", "libminic.dylib", "libinner.dylib", "libouter.dylib", "libclient.dylib", "libshapes.dylib",
        "libshapes_ptrlists.dylib", "libflat.dylib", "selftest/libstinner.dylib", "selftest/libstouter.dylib",
        "selftest/libstweak.dylib", "selftest/libselftest.dylib"]
ATTEMPTS = 12


def files_under(d):
    """{relative path: bytes} of every regular file under D, plus the names of anything else odd."""
    out, odd = {}, []
    for root, dirs, files in os.walk(d):
        for f in files:
            p = os.path.join(root, f)
            rel = os.path.relpath(p, d)
            if os.path.islink(p) or not os.path.isfile(p):
                odd.append(rel)
                continue
            with open(p, "rb") as fh:
                out[rel] = fh.read()
    return out, odd


def check_tree(rep, what, out, ref):
    """Every file under OUT is a complete reference file; returns how many there are."""
    got, odd = files_under(out) if os.path.isdir(out) else ({}, [])
    rep.ok(not odd, "%s: non-regular entries %s" % (what, odd))
    tmp = [f for f in got if ".dk-tmp-" in f]
    rep.ok(not tmp, "%s: temporary files left behind: %s" % (what, tmp))
    for rel, data in got.items():
        if rel in tmp:
            continue
        if not rep.ok(rel in ref, "%s: unexpected file %s" % (what, rel)):
            continue
        rep.ok(data == ref[rel], "%s: %s is %d bytes, differs from the complete %d-byte file" % (what, rel, len(data), len(ref[rel])))
    return len(got)


def count_files(d):
    n = 0
    for _, _, files in os.walk(d):
        n += len(files)
    return n


def interrupted(rep, tmp, cache, ref, jobs, attempt):
    """One run stopped at short intervals and killed once it is part way; True if it was mid-run."""
    out = os.path.join(tmp, "kill-j%d-%d" % (jobs, attempt))
    p = subprocess.Popen([dktest.DYLDKIT, "cache", "extract", cache, "--all", "-o", out, "-j", str(jobs)],
                         stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    step = 0.0005 * (1 + attempt % 4) * dktest.SLOW
    mid = False
    while p.poll() is None:
        time.sleep(step)
        try:
            os.kill(p.pid, signal.SIGSTOP)
        except ProcessLookupError:
            break
        n = count_files(out) if os.path.isdir(out) else 0
        if 0 < n < len(ref):
            os.kill(p.pid, signal.SIGKILL)
            mid = True
            break
        os.kill(p.pid, signal.SIGCONT)
    p.wait()
    err = p.stderr.read().decode(errors="replace")
    if not mid:
        rep.ok(p.returncode == 0, "extract -j%d (not interrupted): exit %d: %s" % (jobs, p.returncode, err.strip()))
    n = check_tree(rep, "killed extract -j%d attempt %d" % (jobs, attempt), out, ref)
    if mid:
        rep.ok(0 < n < len(ref), "killed extract -j%d: %d files after the kill" % (jobs, n))
    shutil.rmtree(out, ignore_errors=True)
    return mid


def limited(nbytes, ignore_sigxfsz):
    def setup():
        resource.setrlimit(resource.RLIMIT_FSIZE, (nbytes, nbytes))
        signal.signal(signal.SIGXFSZ, signal.SIG_IGN if ignore_sigxfsz else signal.SIG_DFL)
    return setup


def extract(args, preexec=None):
    p = subprocess.run([dktest.DYLDKIT, "cache", "extract"] + args, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                       preexec_fn=preexec, timeout=120 * dktest.SLOW)
    return p.returncode, p.stdout.decode(errors="replace"), p.stderr.decode(errors="replace")


def clean_lines(rep, what, err, want):
    lines = err.splitlines()
    rep.ok(lines and all(l.startswith("dyldkit: ") for l in lines), "%s: stderr is not 'dyldkit: ' lines: %r" % (what, err[:400]))
    rep.ok(all(want in l for l in lines), "%s: a line does not say %r: %r" % (what, want, err[:400]))
    rep.ok(not any(m in err for m in ("Sanitizer", "runtime error")), "%s: sanitizer report" % what)


def failures(rep, tmp, cache, ref):
    n = 0
    # every write fails with EFBIG
    out = os.path.join(tmp, "fsize-1")
    rc, so, se = extract([cache, "--all", "-o", out], limited(1, True))
    rep.ok(rc == 1, "RLIMIT_FSIZE 1: exit %d" % rc)
    clean_lines(rep, "RLIMIT_FSIZE 1", se, "File too large")
    rep.ok(len(se.splitlines()) == len(ref), "RLIMIT_FSIZE 1: %d error lines for %d images" % (len(se.splitlines()), len(ref)))
    rep.ok(check_tree(rep, "RLIMIT_FSIZE 1", out, ref) == 0, "RLIMIT_FSIZE 1: files written")
    n += 1
    # killed by SIGXFSZ in the middle of its first write
    out = os.path.join(tmp, "fsize-sig")
    rc, so, se = extract([cache, "--all", "-o", out], limited(4096, False))
    rep.ok(rc == -signal.SIGXFSZ, "RLIMIT_FSIZE 4096, SIGXFSZ: exit %d, want killed by SIGXFSZ" % rc)
    rep.ok(check_tree(rep, "killed by SIGXFSZ", out, ref) == 0, "killed by SIGXFSZ: files written")
    n += 1
    # a limit some images fit under
    sizes = sorted(len(v) for v in ref.values())
    limit = sizes[len(sizes) // 2]
    out = os.path.join(tmp, "fsize-mid")
    rc, so, se = extract([cache, "--all", "-o", out, "-j", "1"], limited(limit, True))
    fit = sum(1 for s in sizes if s <= limit)
    rep.ok(rc == 1, "RLIMIT_FSIZE %d: exit %d" % (limit, rc))
    clean_lines(rep, "RLIMIT_FSIZE %d" % limit, se, "File too large")
    got = check_tree(rep, "RLIMIT_FSIZE %d" % limit, out, ref)
    rep.ok(got == fit, "RLIMIT_FSIZE %d: %d files, %d images fit" % (limit, got, fit))
    n += 1
    # -o through a regular file
    f = os.path.join(tmp, "a-file")
    with open(f, "w") as fh:
        fh.write("keep")
    rc, so, se = extract([cache, "--all", "-o", os.path.join(f, "out")])
    rep.ok(rc == 1 and not so, "-o under a file: exit %d, stdout %r" % (rc, so))
    clean_lines(rep, "-o under a file", se, "Not a directory")
    rep.ok(len(se.splitlines()) == 1 and open(f).read() == "keep", "-o under a file: %r" % se)
    n += 1
    # -o naming the file itself
    rc, so, se = extract([cache, "--all", "-o", f])
    rep.ok(rc == 1 and len(se.splitlines()) == 1 and "not a directory" in se, "-o a file: exit %d, %r" % (rc, se))
    n += 1
    # -o under /proc, where nothing can be created
    rc, so, se = extract([cache, "libminic", "-o", "/proc/dyldkit-no-such-dir/out"])
    rep.ok(rc == 1 and not so and len(se.splitlines()) == 1, "-o under /proc: exit %d, %r" % (rc, se))
    clean_lines(rep, "-o under /proc", se, "cannot create directory")
    n += 1
    # the final path is taken by a directory: the rename fails, nothing else is left
    out = os.path.join(tmp, "occupied")
    target = os.path.join(out, "@rpath", "libminic.dylib")
    os.makedirs(os.path.join(target, "inside"))
    rc, so, se = extract([cache, "libminic", "libminidep", "-o", out])
    rep.ok(rc == 1, "occupied final path: exit %d" % rc)
    clean_lines(rep, "occupied final path", se, "libminic")
    rep.ok(os.path.isdir(os.path.join(target, "inside")), "occupied final path: the directory was touched")
    got, odd = files_under(out)
    rep.ok(set(got) == {os.path.join("@rpath", "libminidep.dylib")} and not odd,
           "occupied final path: files left %s %s" % (sorted(got), odd))
    n += 1
    # a read-only bind mount, in a private mount namespace
    ro = os.path.join(tmp, "ro")
    os.makedirs(ro)
    script = ('mount --bind "$1" "$1" && mount -o remount,bind,ro "$1" || exit 99; shift; exec "$@"')
    p = subprocess.run(["unshare", "-m", "sh", "-c", script, "sh", ro, dktest.DYLDKIT, "cache", "extract", cache, "--all",
                        "-o", os.path.join(ro, "out")], stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    if p.returncode == 99 or b"unshare" in p.stderr[:200]:
        print("extract-atomic: read-only bind mount not permitted here; skipped")
    else:
        se = p.stderr.decode(errors="replace")
        rep.ok(p.returncode == 1 and not p.stdout and len(se.splitlines()) == 1,
               "read-only mount: exit %d, %r" % (p.returncode, se))
        clean_lines(rep, "read-only mount", se, "Read-only file system")
        rep.ok(not os.listdir(ro), "read-only mount: %s written under the mount point" % os.listdir(ro))
        n += 1
    return n


def main():
    rep = dktest.Report("extract-atomic")
    inputs = [os.path.join(dktest.FIXTURES, SET, lib) for lib in LIBS]
    if not all(os.path.exists(p) for p in inputs):
        print("extract-atomic: fixtures not built; skipped")
        return
    tmp = tempfile.mkdtemp(prefix="dk-atomic-")
    try:
        cache = os.path.join(tmp, "cache")
        rc, _, err = dktest.dk("cache", "build", "-o", cache, "--allow-unresolved", *inputs, timeout=300)
        if not rep.ok(rc == 0, "cache build: %s" % err.decode(errors="replace").strip()):
            rep.finish()
        refdir = os.path.join(tmp, "ref")
        rc, _, err = dktest.dk("cache", "extract", cache, "--all", "-o", refdir, timeout=300)
        if not rep.ok(rc == 0, "reference extract: %s" % err.decode(errors="replace").strip()):
            rep.finish()
        ref, _ = files_under(refdir)
        rep.ok(len(ref) == len(LIBS), "reference: %d files for %d images" % (len(ref), len(LIBS)))
        # the output does not depend on the run: a second extraction is identical
        again = os.path.join(tmp, "again")
        dktest.dk("cache", "extract", cache, "--all", "-o", again, "-j", "1", timeout=300)
        rep.ok(files_under(again)[0] == ref, "two extractions differ")
        shutil.rmtree(again)
        kills = mid = 0
        for jobs in (1, 2):
            for attempt in range(ATTEMPTS):
                kills += 1
                mid += interrupted(rep, tmp, cache, ref, jobs, attempt)
        rep.ok(mid >= 2, "only %d of %d runs could be killed part way" % (mid, kills))
        nfail = failures(rep, tmp, cache, ref)
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    print("extract-atomic: %d kills (%d mid-run), %d failure cases" % (kills, mid, nfail))
    rep.finish()


if __name__ == "__main__":
    main()
