#!/usr/bin/env python3
"""Fixtures against what their sources say (tests/fixtures/expected, written by
hand from the C/ObjC sources, not from any tool): every import of every fixture
with its ordinal, dylib, addends and weak-import flag; every export trie; and
the same names from the classic and the chained build of each fixture."""
import json
import os
import sys

sys.path.insert(0, os.path.join(os.path.dirname(__file__), "lib"))
import dktest  # noqa: E402

EXP = os.path.join(dktest.ROOT, "tests", "fixtures", "expected")


def load(name):
    with open(os.path.join(EXP, name)) as f:
        return json.load(f)


def main():
    rep = dktest.Report("fixtures")
    if not os.path.isdir(dktest.FIXTURES):
        rep.fail("fixtures not built in %s" % dktest.FIXTURES)
        rep.finish()
    imports = load("imports.json")["fixtures"]
    for name, spec in imports.items():
        for s in spec["sets"]:
            path = os.path.join(dktest.FIXTURES, s, name)
            rc, doc, err = dktest.dk_json("fixups", "--json", path)
            if not rep.ok(rc == 0, "%s/%s: fixups: %s" % (s, name, err.strip())):
                continue
            chained = doc["encoding"] == "chained"
            binds = [f for f in doc["fixups"] if f["kind"] in ("bind", "lazy_bind")]
            got = {}
            for f in binds:
                e = got.setdefault(f["symbol"], {"ordinals": set(), "dylibs": set(), "addends": set(), "weak": set()})
                e["ordinals"].add(f["ordinal"])
                e["dylibs"].add(f["dylib"])
                e["addends"].add(f["addend"])
                e["weak"].add(f["weak_import"])
            want_syms = set()
            for imp in spec["imports"]:
                if imp.get("classic_only") and chained:
                    continue
                want_syms.add(imp["symbol"])
                g = got.get(imp["symbol"])
                if not rep.ok(g is not None, "%s/%s: no bind of %s" % (s, name, imp["symbol"])):
                    continue
                rep.ok(g["ordinals"] == {imp["ordinal"]}, "%s/%s %s: ordinals %s, want %s" % (s, name, imp["symbol"], g["ordinals"], imp["ordinal"]))
                rep.ok(g["dylibs"] == {imp["dylib"]}, "%s/%s %s: dylibs %s, want %s" % (s, name, imp["symbol"], g["dylibs"], imp["dylib"]))
                rep.ok(g["addends"] == set(imp["addends"]), "%s/%s %s: addends %s, want %s" % (s, name, imp["symbol"], sorted(g["addends"]), imp["addends"]))
                rep.ok(g["weak"] == {imp["weak_import"]}, "%s/%s %s: weak_import %s, want %s" % (s, name, imp["symbol"], g["weak"], imp["weak_import"]))
            weak_syms = {wb if isinstance(wb, str) else wb.get("symbol") for wb in spec.get("weak_binds", [])}
            extra = {x for x in set(got) - want_syms if not (x in weak_syms and got[x]["ordinals"] == {-3})}
            rep.ok(not extra, "%s/%s: binds not in the expectations: %s" % (s, name, sorted(extra)))
            for wb in spec.get("weak_binds", []):
                sym = wb if isinstance(wb, str) else wb.get("symbol")
                hits = [f for f in doc["fixups"] if f.get("symbol") == sym and (f["kind"] == "weak_bind" or f.get("ordinal") == -3)]
                rep.ok(hits, "%s/%s: no weak bind of %s" % (s, name, sym))
    exports = load("exports.json")["fixtures"]
    for name, spec in exports.items():
        for s in spec["sets"]:
            path = os.path.join(dktest.FIXTURES, s, name)
            rc, doc, err = dktest.dk_json("exports", "--json", path)
            if not rep.ok(rc == 0, "%s/%s: exports: %s" % (s, name, err.strip())):
                continue
            got = sorted((e["name"], tuple(sorted(e["flags"]))) for e in doc["exports"])
            want = sorted((e["name"], tuple(sorted(e["flags"]))) for e in spec["exports"])
            rep.ok(got == want, "%s/%s: exports %s, want %s" % (s, name, got, want))
    rep.finish()


if __name__ == "__main__":
    main()
