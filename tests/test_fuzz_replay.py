#!/usr/bin/env python3
"""Replay of the fuzz targets' inputs without libFuzzer (issue #8).

Every fuzz target (fuzz/fuzz_<target>.c) is also linked with fuzz/replay.c
into $DK_BUILD/fuzz-replay/<target> (make unit), so this runs in the plain
build (make test) and under ASan/UBSan (make asan).  For each target:
  - every saved crasher in fuzz/regressions/<target>/ is replayed, always;
  - the seeds (fuzz/seeds.py: fixtures, ../shared/corpus, caches built from
    the fixtures) are replayed too: all of them by default, or a sample of
    DK_FUZZ_SEEDS files per target when that is set (0: none).
A run passes when the driver exits 0 (no crash, no sanitizer report, no
target check failing) and no single input takes more than TIME_LIMIT seconds
(times DK_SLOW).  Prints `fuzz-replay: N inputs over T targets`.
"""
import os
import subprocess
import sys

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, os.path.join(HERE, "lib"))
import dktest  # noqa: E402

TIME_LIMIT = 2.0
SANITIZER_MARKERS = ("AddressSanitizer", "LeakSanitizer", "UndefinedBehaviorSanitizer", "runtime error:")


def main():
    rep = dktest.Report("fuzz-replay")
    bindir = os.path.join(dktest.BUILD, "fuzz-replay")
    fuzzdir = os.path.join(dktest.ROOT, "fuzz")
    targets = sorted(f[len("fuzz_"):-2] for f in os.listdir(fuzzdir) if f.startswith("fuzz_") and f.endswith(".c"))
    sample = os.environ.get("DK_FUZZ_SEEDS")
    total = 0
    for t in targets:
        binary = os.path.join(bindir, t)
        if not rep.ok(os.access(binary, os.X_OK), "%s missing (make unit)" % binary):
            continue
        cmd = [sys.executable, os.path.join(fuzzdir, "seeds.py"), t, "--gen", os.path.join(dktest.BUILD, "fuzz-seeds"),
               "--dyldkit", dktest.DYLDKIT]
        if sample:
            cmd += ["--sample", sample] if int(sample) > 0 else ["--max-size", "-1"]
        p = subprocess.run(cmd, stdout=subprocess.PIPE, stderr=subprocess.PIPE)
        if not rep.ok(p.returncode == 0, "seeds.py %s: %s" % (t, p.stderr.decode(errors="replace").strip())):
            continue
        inputs = p.stdout.decode().splitlines()
        regdir = os.path.join(fuzzdir, "regressions", t)
        regs = sorted(os.path.join(regdir, f) for f in os.listdir(regdir)) if os.path.isdir(regdir) else []
        inputs += regs
        if not inputs:
            continue
        r = subprocess.run([binary, "-t", "%g" % (TIME_LIMIT * dktest.SLOW), "-l", "-"], input="\n".join(inputs).encode(),
                           stdout=subprocess.PIPE, stderr=subprocess.PIPE)
        err = r.stderr.decode(errors="replace")
        last = [l for l in err.splitlines() if l.startswith("replay: ")]
        ok = r.returncode == 0 and not any(m in err for m in SANITIZER_MARKERS)
        if not rep.ok(ok, "fuzz target %s: exit %d over %d inputs (%d regressions): %s" %
                      (t, r.returncode, len(inputs), len(regs), (last[-1] if last else err.strip()[-2000:]))):
            print(err[-4000:])
            continue
        total += len(inputs)
        print("fuzz-replay %-10s %4d inputs (%d regressions): %s" % (t, len(inputs), len(regs), r.stdout.decode().strip()))
    print("fuzz-replay: %d inputs over %d targets" % (total, len(targets)))
    rep.finish()


if __name__ == "__main__":
    main()
