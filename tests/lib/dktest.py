"""Helpers shared by dyldkit's Python test scripts: locating the tools, the
corpus manifest and fixtures, running dyldkit and llvm-objdump, and reporting."""
import json
import os
import subprocess
import sys

ROOT = os.path.abspath(os.path.join(os.path.dirname(__file__), "..", ".."))
CORPUS = os.path.abspath(os.path.join(ROOT, "..", "shared", "corpus"))
BUILD = os.environ.get("DK_BUILD", os.path.join(ROOT, "build"))
DYLDKIT = os.environ.get("DYLDKIT", os.path.join(BUILD, "dyldkit"))
FIXTURES = os.environ.get("DK_FIXTURES", os.path.join(ROOT, "build", "fixtures"))
OBJDUMP = os.environ.get("LLVM_OBJDUMP", "llvm-objdump-22")
# Under ASan/UBSan everything is slower; tests scale their timeouts by this.
SLOW = float(os.environ.get("DK_SLOW", "1"))


def corpus_manifest():
    """Rows of ../shared/corpus/MANIFEST.tsv as dicts (paths made absolute)."""
    rows = []
    path = os.path.join(CORPUS, "MANIFEST.tsv")
    if not os.path.exists(path):
        return rows
    with open(path) as f:
        header = f.readline().rstrip("\n").split("\t")
        for line in f:
            vals = line.rstrip("\n").split("\t")
            row = dict(zip(header, vals))
            row["abspath"] = os.path.join(CORPUS, row["path"])
            rows.append(row)
    return rows


def fixture_manifest():
    """Rows of tests/fixtures/MANIFEST.tsv for the built fixtures."""
    rows = []
    path = os.path.join(ROOT, "tests", "fixtures", "MANIFEST.tsv")
    if not os.path.exists(path):
        return rows
    with open(path) as f:
        header = None
        for line in f:
            if line.startswith("#") or not line.strip():
                continue
            vals = line.rstrip("\n").split("\t")
            if header is None:
                header = vals
                continue
            row = dict(zip(header, vals))
            row["abspath"] = os.path.join(FIXTURES, row[header[0]])
            rows.append(row)
    return rows


def run(cmd, timeout=60):
    """Run a command; return (returncode, stdout bytes, stderr bytes)."""
    p = subprocess.run(cmd, stdout=subprocess.PIPE, stderr=subprocess.PIPE, timeout=timeout * SLOW)
    return p.returncode, p.stdout, p.stderr


def run_measured(cmd, timeout, keep=65536):
    """Run CMD, killing it after TIMEOUT seconds: (returncode or None when it
    had to be killed, stdout, stderr, wall seconds, its resource usage).
    Only the first KEEP bytes of each stream are kept (a runaway output must
    not grow this process); a longer stream ends with its total size."""
    import threading
    import time
    t0 = time.monotonic()
    p = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    bufs = {}

    def drain(name, f):
        kept, total = b"", 0
        while True:
            chunk = f.read(65536)
            if not chunk:
                break
            total += len(chunk)
            if len(kept) < keep:
                kept += chunk[:keep - len(kept)]
        bufs[name] = kept if total == len(kept) else kept + b"... (%d bytes)" % total

    readers = [threading.Thread(target=drain, args=(k, f)) for k, f in (("out", p.stdout), ("err", p.stderr))]
    for r in readers:
        r.start()
    killed = False
    while True:
        pid, status, ru = os.wait4(p.pid, os.WNOHANG)
        if pid:
            break
        if not killed and time.monotonic() - t0 > timeout:
            p.kill()
            killed = True
        time.sleep(0.002)
    wall = time.monotonic() - t0
    for r in readers:
        r.join()
    p.returncode = os.waitstatus_to_exitcode(status)  # reaped here (wait4 gives this child's own rusage)
    return (None if killed else p.returncode), bufs["out"], bufs["err"], wall, ru


def dk(*args, timeout=60):
    return run([DYLDKIT] + list(args), timeout=timeout)


def dk_json(*args, timeout=60):
    """dyldkit CMD --json ...; returns (rc, document or None, stderr text)."""
    rc, out, err = dk(*args, timeout=timeout)
    doc = None
    if rc == 0:
        doc = json.loads(out)
    return rc, doc, err.decode(errors="replace")


def slices_of(doc):
    """Per-slice documents of a dyldkit JSON document (universal or thin)."""
    if doc is None:
        return []
    if "slices" in doc:
        return doc["slices"]
    return [doc]


class Report:
    """Counts checks, prints failures, exits non-zero if any failed."""

    def __init__(self, name):
        self.name = name
        self.failures = []
        self.passed = 0

    def ok(self, cond, what):
        if cond:
            self.passed += 1
        else:
            self.failures.append(what)
            print("FAIL: %s" % what, flush=True)
        return cond

    def fail(self, what):
        return self.ok(False, what)

    def finish(self):
        print("%s: %d passed, %d failed" % (self.name, self.passed, len(self.failures)), flush=True)
        sys.exit(1 if self.failures else 0)
