#!/usr/bin/env python3
"""The README's front door stays true: examples/hello is exactly what
scripts/build-example.sh produces from examples/hello.c (byte for byte), and
scripts/demo.sh (`make demo`) runs every command it shows with exit status 0,
including running the example's main() through `dyldkit call`."""
import os
import sys
import tempfile

sys.path.insert(0, os.path.join(os.path.dirname(__file__), "lib"))
import dktest  # noqa: E402


def main():
    rep = dktest.Report("example")
    committed = os.path.join(dktest.ROOT, "examples", "hello")
    with tempfile.TemporaryDirectory(prefix="dk-example-") as tmp:
        out = os.path.join(tmp, "hello")
        rc, o, e = dktest.run([os.path.join(dktest.ROOT, "scripts", "build-example.sh"), out], timeout=120)
        if rep.ok(rc == 0, "build-example.sh: exit %d %s" % (rc, e.decode(errors="replace")[-500:])):
            with open(out, "rb") as a, open(committed, "rb") as b:
                rep.ok(a.read() == b.read(), "examples/hello differs from what scripts/build-example.sh builds now")
    rc, o, e = dktest.run([os.path.join(dktest.ROOT, "scripts", "demo.sh"), dktest.DYLDKIT], timeout=120)
    text = o.decode(errors="replace")
    rep.ok(rc == 0, "demo.sh: exit %d %s" % (rc, e.decode(errors="replace")[-500:]))
    for cmd in ("info", "fixups", "chains", "opcodes", "stubs", "call"):
        rep.ok("$ dyldkit %s" % cmd in text, "demo.sh shows `dyldkit %s`" % cmd)
    rep.ok(text.count("hello, Mach-O") == 2, "demo.sh runs main() of both slices: %r" % text[-400:])
    rep.finish()


if __name__ == "__main__":
    main()
