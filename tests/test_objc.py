#!/usr/bin/env python3
"""dyldkit `objc`: Objective-C metadata.

1. Fixtures: on every ObjC fixture the names (classes, superclasses, methods,
   ivars, properties, protocols, categories, selector/class/superclass refs)
   equal the hand-written tests/fixtures/expected/shapes*.json, and the chained
   and classic builds of one source give identical `objc --json` apart from
   addresses.
2. llvm-objdump-22 --objc-meta-data parity on every classic (non-chained) ObjC
   image of the corpus and the fixtures: class, superclass, method, protocol,
   ivar, property and category names agree.  (llvm prints raw chain values for
   chained images, so those are checked against the fixture sources instead.)
   Differences that are llvm's are listed in KNOWN_LLVM_BUGS with the reason.
3. Malformed ObjC data: damaged copies of the fixtures (huge counts, lists and
   class_ro_t outside the image, a self-referencing superclass, random byte
   flips in the ObjC sections) and the corpus's objc-crash file give exit 0
   or 1 with a message, never a crash or a hang.
4. The human output reads like a class dump; --selectors lists selrefs.
"""
import json
import os
import random
import re
import shutil
import struct
import sys
import tempfile
from concurrent.futures import ThreadPoolExecutor

sys.path.insert(0, os.path.join(os.path.dirname(__file__), "lib"))
import dktest  # noqa: E402

R = dktest.Report("test_objc")
EXPECTED = os.path.join(dktest.ROOT, "tests", "fixtures", "expected")

# (path suffix, arch) -> {what differs: reason}.  Only the listed kinds of difference are
# allowed in that slice; everything else must still agree.
RELATIVE_SEL_BUG = ("llvm-objdump prints a relative method's selref address without the image's high bits "
                    "(0x80e0 for 0x1000080e0: it adds the 32-bit offset to a truncated address), finds nothing there "
                    "and prints no selector name; the selrefs at the full addresses hold the names dyldkit reports")
META_LIMIT_BUG = ("llvm-objdump's 64-bit printer counts printed metaclasses in one never-reset counter "
                  "(info->depth, meant as a recursion guard) and stops at 100: classes after the 100th have no "
                  "'Meta Class' section, so their class methods and class properties are missing")
CATEGORY32_BUG = ("llvm-objdump's 32-bit category printer (print_category32_t) names category_t.name and .cls only "
                  "through a relocation symbol and never reads the C string, so a linked image shows neither")
KNOWN_LLVM_BUGS = {
    ("mach0/hello-macos-arm64", None): {"llvm-unnamed-selectors": RELATIVE_SEL_BUG},
    ("mach0/hello-macos-arm64-nopie", None): {"llvm-unnamed-selectors": RELATIVE_SEL_BUG},
    ("mach0/objc-employee-ios14-arm64", None): {"llvm-unnamed-selectors": RELATIVE_SEL_BUG},
    ("mach0/WheresMyBrowser", None): {"llvm-unnamed-selectors": RELATIVE_SEL_BUG},
    ("mach0/iGoat-Swift.arm_64.1", None): {"llvm-metaclass-limit": META_LIMIT_BUG},
    ("mach0/BatteryLife", "arm64"): {"llvm-metaclass-limit": META_LIMIT_BUG},
    ("mach0/BatteryLife.arm_64.1", None): {"llvm-metaclass-limit": META_LIMIT_BUG},
    ("mach0/BatteryLife", "armv7"): {"llvm-unnamed-category": CATEGORY32_BUG},
    ("mach0/BatteryLife.arm_32.0", None): {"llvm-unnamed-category": CATEGORY32_BUG},
}


# ----------------------------------------------------------------- helpers

def objc_json(path, *extra):
    rc, doc, err = dktest.dk_json("objc", "--json", *extra, path, timeout=60)
    return rc, doc, err


def names(items):
    return [x["name"] for x in items]


ADDRESS_KEYS = {"address", "imp", "metaclass", "data", "superclass_address", "class_address",
                "offset_address", "file"}


def strip_addresses(x):
    if isinstance(x, dict):
        return {k: strip_addresses(v) for k, v in x.items() if k not in ADDRESS_KEYS}
    if isinstance(x, list):
        return [strip_addresses(v) for v in x]
    return x


# ---------------------------------------------------- 1. fixtures vs sources

def check_expected(exp_file):
    exp = json.load(open(os.path.join(EXPECTED, exp_file)))
    for rel in exp["fixtures"]:
        path = os.path.join(dktest.FIXTURES, rel)
        if not os.path.exists(path):
            R.fail("%s: fixture %s missing (build.sh not run?)" % (exp_file, rel))
            continue
        rc, doc, err = objc_json(path)
        if not R.ok(rc == 0, "%s: objc exit %d: %s" % (rel, rc, err.strip())):
            continue
        for sl in dktest.slices_of(doc):
            compare_expected("%s[%s]" % (rel, sl.get("arch")), sl, exp, rel)


def compare_expected(label, doc, exp, rel):
    def same_set(what, got, want):
        R.ok(sorted(got) == sorted(want), "%s: %s: got %s, want %s" % (label, what, sorted(got), sorted(want)))

    R.ok(doc["image_info"] is not None and doc["image_info"]["flags"] == exp["image_info_flags"],
         "%s: image_info flags %s, want %s" % (label, doc["image_info"], exp["image_info_flags"]))
    same_set("class names", names(doc["classes"]), names(exp["classes"]))
    got = {c["name"]: c for c in doc["classes"]}
    kind = exp["method_lists"].get(os.path.basename(rel), exp["method_lists"].get("*"))
    for ec in exp["classes"]:
        c = got.get(ec["name"])
        if c is None:
            continue
        n = "class %s" % ec["name"]
        R.ok(c["superclass"] == ec["superclass"], "%s: %s superclass %r, want %r" % (label, n, c["superclass"], ec["superclass"]))
        for key in ("instance_methods", "class_methods", "ivars", "properties", "class_properties"):
            same_set("%s %s" % (n, key), names(c[key]), ec[key])
        same_set("%s protocols" % n, c["protocols"], ec["protocols"])
        if kind:
            lists = {c.get("method_lists")} - {None}
            R.ok(lists == {kind}, "%s: %s method lists %s, want %s" % (label, n, lists, kind))
        for m in c["instance_methods"] + c["class_methods"]:
            R.ok(isinstance(m["imp"], int) and m["imp"] > 0, "%s: %s method %s has no imp" % (label, n, m["name"]))
            R.ok(bool(m["types"]), "%s: %s method %s has no types" % (label, n, m["name"]))
    same_set("protocol names", names(doc["protocols"]), names(exp["protocols"]))
    gotp = {p["name"]: p for p in doc["protocols"]}
    for ep in exp["protocols"]:
        p = gotp.get(ep["name"])
        if p is None:
            continue
        n = "protocol %s" % ep["name"]
        same_set("%s protocols" % n, p["protocols"], ep["protocols"])
        for key in ("instance_methods", "class_methods", "optional_instance_methods", "optional_class_methods",
                    "properties"):
            same_set("%s %s" % (n, key), names(p[key]), ep[key])
    same_set("category names", names(doc["categories"]), names(exp["categories"]))
    gotc = {c["name"]: c for c in doc["categories"]}
    for ec in exp["categories"]:
        c = gotc.get(ec["name"])
        if c is None:
            continue
        n = "category %s" % ec["name"]
        R.ok(c["class"] == ec["class"], "%s: %s class %r, want %r" % (label, n, c["class"], ec["class"]))
        for key in ("instance_methods", "class_methods", "properties", "class_properties"):
            same_set("%s %s" % (n, key), names(c[key]), ec[key])
        same_set("%s protocols" % n, c["protocols"], ec["protocols"])
    sels = {s["selector"] for s in doc["selrefs"]}
    missing = [s for s in exp["selrefs_include"] if s not in sels]
    R.ok(not missing, "%s: selectors missing from selrefs: %s" % (label, missing))
    same_set("classrefs", [x["class"] for x in doc["classrefs"]], exp["classrefs"])
    same_set("superrefs", [x["class"] for x in doc["superrefs"]], exp["superrefs"])


def check_chained_vs_classic():
    """The same source linked with classic opcodes and with chained fixups decodes the same."""
    pairs = 0
    for arch in ("x86_64", "arm64"):
        classic_dir = os.path.join(dktest.FIXTURES, arch + "-classic")
        if not os.path.isdir(classic_dir):
            continue
        for name in sorted(os.listdir(classic_dir)):
            if not name.startswith("libshapes"):
                continue
            a, b = os.path.join(classic_dir, name), os.path.join(dktest.FIXTURES, arch + "-chained", name)
            if not os.path.exists(b):
                continue
            rca, da, ea = objc_json(a)
            rcb, db, eb = objc_json(b)
            if not R.ok(rca == 0 and rcb == 0, "%s/%s: objc exit %d/%d: %s %s" % (arch, name, rca, rcb, ea, eb)):
                continue
            sa, sb = strip_addresses(da), strip_addresses(db)
            pairs += 1
            if sa != sb:
                a_txt = json.dumps(sa, indent=1, sort_keys=True).split("\n")
                b_txt = json.dumps(sb, indent=1, sort_keys=True).split("\n")
                first = next((i for i, (x, y) in enumerate(zip(a_txt, b_txt)) if x != y), min(len(a_txt), len(b_txt)))
                R.fail("%s/%s: classic and chained objc --json differ near line %d: %r vs %r" % (
                    arch, name, first, a_txt[first:first + 1], b_txt[first:first + 1]))
            else:
                R.ok(True, "")
    R.ok(pairs >= 6, "only %d classic/chained pairs compared" % pairs)
    print("chained == classic: %d pairs" % pairs, flush=True)


# ------------------------------------------------------ 2. llvm-objdump parity

HEX = re.compile(r"^(0x[0-9a-fA-F]+|\(0x[0-9a-fA-F]+\))$")


def trailing_name(value):
    """The symbol/string llvm prints after the hex values of a field, or None."""
    toks = value.split()
    while toks and HEX.match(toks[0]):
        toks.pop(0)
    if not toks or toks[0].startswith("(") or toks[0].startswith("l_OBJC_") or toks[0] == "(struct":
        return None
    return " ".join(toks)


def strip_class_symbol(sym):
    if sym is None:
        return None
    for pre in ("_OBJC_CLASS_$_", "_OBJC_METACLASS_$_"):
        if sym.startswith(pre):
            return sym[len(pre):]
    return None


def new_class():
    return {"name": None, "has_meta": False, "superclass": None, "instance_methods": [], "class_methods": [], "protocols": [],
            "ivars": [], "properties": [], "class_properties": []}


def parse_llvm_objc(text):
    """Parse llvm-objdump --objc-meta-data output (objc2 and objc1) into names."""
    doc = {"classes": [], "categories": [], "protocol_symbols": [], "classrefs": [], "superrefs": [], "metas": 0}
    section = None
    cls = cat = None
    meta = False
    ctx = None          # which list the next names belong to
    cat_class_dump = False
    for raw in text.split("\n"):
        m = re.match(r"^(\s*)(\S+)\s?(.*)$", raw)
        if not m:
            continue
        ind, lab, val = m.group(1), m.group(2), m.group(3)
        if lab.startswith("list["):
            lab = "list[]"
        if lab.startswith("defs["):
            lab = "defs[]"
        if lab == "Contents":
            sm = re.match(r"of \((\w*),(\w+)\) section", val)
            section = sm.group(2) if sm else None
            cls = cat = None
            ctx = None
            continue
        if lab == "Objective-C" and val.startswith("segment"):
            section = "__OBJC"
            continue
        if section in ("__objc_classlist", "__objc_nlclslist", "__objc_catlist", "__objc_protolist",
                       "__objc_classrefs", "__objc_superrefs") and ind == "" and re.match(r"^[0-9a-f]{8,16}$", lab):
            sym = trailing_name(val)
            if section in ("__objc_classlist", "__objc_nlclslist"):
                cls = new_class()
                cls["metas_before"] = doc["metas"]
                doc["classes"].append(cls)
                meta = False
                ctx = None
            elif section == "__objc_catlist":
                cat = {"name": None, "class": None, "instance_methods": [], "class_methods": [], "protocols": [],
                       "properties": []}
                doc["categories"].append(cat)
                cat_class_dump = False
                ctx = None
            elif section == "__objc_protolist":
                if sym and sym.startswith("__OBJC_PROTOCOL_$_"):
                    doc["protocol_symbols"].append(sym[len("__OBJC_PROTOCOL_$_"):])
            else:
                doc[section[7:]].append(strip_class_symbol(sym))
            continue
        if section == "__OBJC":
            parse_objc1_line(doc, ind, lab, val)
            continue
        key = (ind.replace("\t", "T"), lab)
        # ------------------------------------------------------------ categories
        if section == "__objc_catlist" and cat is not None:
            if key == ("              ", "name"):
                cat["name"] = trailing_name(val)
            elif key == ("               ", "cls"):
                sym = trailing_name(val)
                cat["class"] = strip_class_symbol(sym)
                cat_class_dump = cat["class"] is None
                ctx = None
            elif cat_class_dump and key == ("                     ", "name") and cat["class"] is None:
                cat["class"] = trailing_name(val)
            elif key == ("   ", "instanceMethods"):
                ctx, cat_class_dump = "cat_im", False
            elif key == ("      ", "classMethods"):
                ctx, cat_class_dump = "cat_cm", False
            elif key == ("         ", "protocols"):
                ctx, cat_class_dump = "cat_protocols", False
            elif key == ("", "instanceProperties"):
                ctx, cat_class_dump = "cat_props", False
            elif cat_class_dump:
                continue
            elif key == ("TT      ", "name") and ctx in ("cat_im", "cat_cm"):
                cat["instance_methods" if ctx == "cat_im" else "class_methods"].append(trailing_name(val))
            elif key == ("TT      ", "list[]") and ctx in ("cat_protocols", "cat_proto", "cat_proto_body"):
                ctx = "cat_proto"
            elif key == ("TTT     ", "name") and ctx == "cat_proto":
                cat["protocols"].append(trailing_name(val))
                ctx = "cat_proto_body"
            elif key == ("TTT     ", "name") and ctx == "cat_props":
                cat["properties"].append(trailing_name(val))
            continue
        # --------------------------------------------------------------- classes
        if section not in ("__objc_classlist", "__objc_nlclslist") or cls is None:
            continue
        if key == ("", "Meta"):
            meta = True
            cls["has_meta"] = True
            doc["metas"] += 1
            ctx = None
        elif key == ("    ", "superclass") and not meta:
            cls["superclass"] = strip_class_symbol(trailing_name(val))
            cls["superclass_raw"] = val
        elif key == ("                     ", "name"):
            if not meta:
                cls["name"] = trailing_name(val)
        elif key == ("              ", "baseMethods"):
            ctx = "methods"
        elif key == ("            ", "baseProtocols"):
            ctx = "protocols"
        elif key == ("                    ", "ivars"):
            ctx = "ivars"
        elif key == ("           ", "weakIvarLayout"):
            ctx = None
        elif key == ("           ", "baseProperties"):
            ctx = "props"
        elif key == ("TT      ", "name") and ctx == "methods":
            cls["class_methods" if meta else "instance_methods"].append(trailing_name(val))
        elif key == ("TT      ", "list[]") and ctx in ("protocols", "proto_body"):
            ctx = "proto"
        elif key == ("TTT     ", "name") and ctx == "proto":
            if not meta:
                cls["protocols"].append(trailing_name(val))
            ctx = "proto_body"
        elif key == ("TTT     ", "name") and ctx == "ivars":
            cls["ivars"].append(trailing_name(val))
        elif key == ("TTT     ", "name") and ctx == "props":
            cls["class_properties" if meta else "properties"].append(trailing_name(val))
    return doc


def parse_objc1_line(doc, ind, lab, val):
    key = (ind.replace("\t", "T"), lab)
    st = doc.setdefault("_objc1", {"cls": None, "meta": False, "depth_ok": True})
    if key == ("T", "defs[]"):
        st["cls"] = new_class()
        doc["classes"].append(st["cls"])
        st["meta"] = False
        return
    cls = st["cls"]
    if cls is None:
        return
    if key == ("T", "Meta"):
        st["meta"] = True
    elif key == ("TT     ", "name") and not st["meta"]:
        cls["name"] = trailing_name(val)
    elif key == ("T      ", "super_class") and not st["meta"]:
        cls["superclass"] = trailing_name(val)
    elif key == ("TT      ", "method_name"):
        cls["class_methods" if st["meta"] else "instance_methods"].append(trailing_name(val))
    elif key == ("TT    ", "protocol_name") and not st["meta"]:
        cls["protocols"].append(trailing_name(val))


def dk_view(sl):
    """Our slice document reduced to what llvm prints."""
    classes = []
    for c in sl["classes"]:
        if not c.get("classlist", True):
            continue  # only in __objc_nlclslist, which llvm-objdump does not print
        classes.append({"name": c["name"], "superclass": c["superclass"],
                        "superclass_external": c.get("superclass_address") is None,
                        "instance_methods": names(c["instance_methods"]), "class_methods": names(c["class_methods"]),
                        "protocols": c["protocols"], "ivars": names(c["ivars"]),
                        "properties": names(c["properties"]), "class_properties": names(c["class_properties"])})
    cats = [{"name": c["name"], "class": c["class"], "instance_methods": names(c["instance_methods"]),
             "class_methods": names(c["class_methods"]), "protocols": c["protocols"],
             "properties": names(c["properties"])} for c in sl["categories"]]
    return {"classes": classes, "categories": cats, "protocols": names(sl["protocols"]),
            "classrefs": [x["class"] for x in sl["classrefs"]], "superrefs": [x["class"] for x in sl["superrefs"]],
            "abi": sl.get("abi")}


def unnamed_only(mine, theirs):
    """llvm printed the entries but not their names (None), the rest agrees."""
    return len(mine) == len(theirs) and None in theirs and all(b is None or a == b for a, b in zip(mine, theirs))


def first_diff(a, b):
    for i, (x, y) in enumerate(zip(a, b)):
        if x != y:
            return "differ at [%d]: %r vs llvm %r (%d vs %d entries)" % (i, x, y, len(a), len(b))
    return "%d entries vs llvm %d (first extra: %r)" % (len(a), len(b), (a[len(b):] or b[len(a):])[:1])


def compare_llvm(label, mine, ll):
    """Differences between our view and llvm's, as (kind, text) pairs."""
    diffs = []

    def d(kind, text):
        diffs.append((kind, "%s: %s" % (label, text)))

    mine_names, ll_names = [c["name"] for c in mine["classes"]], [c["name"] for c in ll["classes"]]
    if mine_names != ll_names:
        d("classes", "class names %s" % first_diff(mine_names, ll_names))
    for a, b in zip(mine["classes"], ll["classes"]):
        n = a["name"]
        # llvm names a superclass only through a symbol; compare when it has one
        if b["superclass"] is not None and a["superclass"] != b["superclass"]:
            d("superclass", "%s superclass %r vs llvm %r" % (n, a["superclass"], b["superclass"]))
        for key in ("instance_methods", "class_methods", "protocols", "ivars", "properties", "class_properties"):
            if a[key] != b[key]:
                if key in ("class_methods", "class_properties") and not b["has_meta"] and b.get("metas_before", 0) >= 100:
                    d("llvm-metaclass-limit", "%s %s: llvm printed no metaclass" % (n, key))
                elif unnamed_only(a[key], b[key]):
                    d("llvm-unnamed-selectors", "%s %s: llvm prints no selector names" % (n, key))
                else:
                    d(key, "%s %s %s vs llvm %s" % (n, key, first_diff(a[key], b[key]), len(b[key])))
    if len(mine["categories"]) != len(ll["categories"]):
        d("categories", "%d categories vs llvm %d" % (len(mine["categories"]), len(ll["categories"])))
    for a, b in zip(mine["categories"], ll["categories"]):
        n = "category %s" % a["name"]
        if b["name"] is None and b["class"] is None:
            d("llvm-unnamed-category", "%s: llvm prints neither the category's name nor its class" % n)
        elif a["name"] != b["name"]:
            d("categories", "category name %r vs llvm %r" % (a["name"], b["name"]))
        if b["class"] is not None and a["class"] != b["class"]:
            d("category class", "%s class %r vs llvm %r" % (n, a["class"], b["class"]))
        for key in ("instance_methods", "class_methods", "protocols", "properties"):
            if a[key] != b[key]:
                if unnamed_only(a[key], b[key]):
                    d("llvm-unnamed-selectors", "%s %s: llvm prints no selector names" % (n, key))
                else:
                    d("category " + key, "%s %s %s vs llvm" % (n, key, first_diff(a[key], b[key])))
    if ll["protocol_symbols"]:
        if sorted(mine["protocols"]) != sorted(ll["protocol_symbols"]):
            d("protocols", "protocols %s vs llvm %s" % (sorted(mine["protocols"])[:8], sorted(ll["protocol_symbols"])[:8]))
    for key in ("classrefs", "superrefs"):
        # llvm names a reference only through a symbol
        pairs = list(zip(mine[key], ll[key]))
        if len(mine[key]) != len(ll[key]) or any(b is not None and a != b for a, b in pairs):
            d(key, "%s %s vs llvm %s" % (key, mine[key][:8], ll[key][:8]))
    return diffs


def encodings(path):
    """arch -> (fixups_encoding, filetype) for every slice."""
    rc, doc, err = dktest.dk_json("info", "--json", path)
    if rc != 0:
        return {}
    return {s["arch"]: (s.get("fixups_encoding"), s.get("filetype")) for s in dktest.slices_of(doc)}


def llvm_check(item):
    path, label = item
    results = []  # (label, status, diffs) status: agree / differ / skipped:<why>
    encs = encodings(path)
    if encs and all(ft == "DSYM" for enc, ft in encs.values()):
        # a dSYM keeps the section headers, not their contents: dyldkit says so (exit 1)
        rc, out, err = dktest.dk("objc", path)
        ok = rc == 1 and b"dSYM" in err
        return [(label, "skipped:dsym" if ok else "error", [] if ok else [("dsym", "%s: dSYM: exit %d %r" % (label, rc, err))])]
    rc, doc, err = objc_json(path)
    if rc != 0:
        return [(label, "error", [("dyldkit", "%s: objc exit %d: %s" % (label, rc, err.strip()))])]
    slices = dktest.slices_of(doc)
    multi = "slices" in doc
    for sl in slices:
        arch = sl["arch"]
        sl_label = "%s[%s]" % (label, arch) if multi else label
        if encs.get(arch, (None, None))[0] == "chained":
            results.append((sl_label, "skipped:chained", []))
            continue
        if sl.get("abi") == 0:
            results.append((sl_label, "skipped:no-objc", []))
            continue
        cmd = [dktest.OBJDUMP, "--macho", "--objc-meta-data", "--no-leading-headers"]
        if multi:
            cmd.append("--arch=" + arch)
        lrc, out, lerr = dktest.run(cmd + [path], timeout=120)
        if lrc != 0 or not out.strip():
            results.append((sl_label, "skipped:llvm-fails", [("llvm", lerr.decode(errors="replace").strip()[:200])]))
            continue
        ll = parse_llvm_objc(out.decode(errors="replace"))
        diffs = compare_llvm(sl_label, dk_view(sl), ll)
        known = None
        for (suffix, karch), allowed in KNOWN_LLVM_BUGS.items():
            if path.endswith(suffix) and karch in (None, arch):
                known = allowed
        if known:
            rest = [x for x in diffs if x[0] not in known]
            results.append((sl_label, "known" if not rest and diffs else ("agree" if not diffs else "differ"), rest))
        else:
            results.append((sl_label, "agree" if not diffs else "differ", diffs))
    return results


def check_llvm_parity():
    items = []
    for row in dktest.corpus_manifest():
        if "objc" not in row.get("exercises", "") or row.get("malformed") == "yes":
            continue
        if row.get("filetype") == "dyld_shared_cache":
            continue  # not a Mach-O: objc reads images
        items.append((row["abspath"], row["path"]))
    for row in dktest.fixture_manifest():
        feats = row.get("features", "").split(",")
        if "objc" in feats and row.get("encoding") == "classic":
            items.append((row["abspath"], "fixtures/" + row["name"]))
    with ThreadPoolExecutor(max_workers=os.cpu_count() or 2) as ex:
        all_results = [r for rs in ex.map(llvm_check, items) for r in rs]
    counts = {}
    files_agree, files_compared = set(), set()
    for label, status, diffs in all_results:
        counts[status] = counts.get(status, 0) + 1
        base = label.split("[")[0]
        if status in ("agree", "known"):
            files_compared.add(base)
            files_agree.add(base)
        elif status in ("differ", "error"):
            files_compared.add(base)
            for kind, text in diffs[:6]:
                R.fail("llvm parity: %s (%s)" % (text, kind))
        elif status == "skipped:dsym":
            pass
    files_agree = {f for f in files_agree if not any(
        l.split("[")[0] == f and s in ("differ", "error") for l, s, _ in all_results)}
    corpus_agree = len([f for f in files_agree if not f.startswith("fixtures/")])
    corpus_compared = len([f for f in files_compared if not f.startswith("fixtures/")])
    fix_agree = len([f for f in files_agree if f.startswith("fixtures/")])
    fix_compared = len([f for f in files_compared if f.startswith("fixtures/")])
    print("llvm parity (slices): %s" % ", ".join("%s %d" % kv for kv in sorted(counts.items())), flush=True)
    print("llvm parity: corpus %d/%d files agree, fixtures %d/%d" % (corpus_agree, corpus_compared, fix_agree,
                                                                     fix_compared), flush=True)
    if os.path.isdir(dktest.CORPUS):
        R.ok(corpus_compared >= 40, "only %d corpus files compared with llvm-objdump" % corpus_compared)
    else:
        print("corpus not found at %s; corpus parity skipped" % dktest.CORPUS, flush=True)


# Corpus images built from one source with different fixup encodings (classic opcodes,
# chained fixups, arm64e threaded binds / auth pointers): the names must agree, which checks
# the chained and arm64e images llvm-objdump cannot decode.  (path, arch) pairs.
CORPUS_PAIRS = [
    (("mach0/hello-macos-arm64", None), ("mach0/hello-macos-arm64-chained", None)),
    (("mach0/hello-macos-arm64", None), ("mach0/hello-macos-arm64e", None)),
    (("mach0/hello-macos-arm64", None), ("mach0/hello-macos-arm64e-userland24", None)),
    (("mach0/hello-macos-arm64-objc-stubs", None), ("mach0/hello-macos-arm64e-objc-stubs", None)),
    (("mach0/imports-arm64", None), ("mach0/imports-arm64-chained", None)),
    (("mach0/imports-arm64e-threaded", "arm64"), ("mach0/imports-arm64e-threaded", "arm64e")),
    (("mach0/imports-arm64e-chained", "arm64"), ("mach0/imports-arm64e-chained", "arm64e")),
    (("mach0/objc-employee-ios14-arm64", None), ("mach0/objc-employee-ios14-arm64e", None)),
    (("mach0/TestRTTI-arm64", None), ("mach0/TestRTTI-arm64e", None)),
    (("mach0/modernobjc-noarm64", "x86_64"), ("mach0/modernobjc-noarm64", "arm64e")),
]


def name_view(sl):
    def n(items):
        return sorted(x["name"] for x in items)
    return {
        "classes": [(c["name"], c["superclass"], n(c["instance_methods"]), n(c["class_methods"]), sorted(c["protocols"]),
                     [i["name"] for i in c["ivars"]], n(c["properties"]), n(c["class_properties"]))
                    for c in sl["classes"]],
        "protocols": n(sl["protocols"]),
        "categories": [(c["name"], c["class"], n(c["instance_methods"]), n(c["class_methods"])) for c in sl["categories"]],
        "classrefs": sorted(str(x["class"]) for x in sl["classrefs"]),
        "superrefs": sorted(str(x["class"]) for x in sl["superrefs"]),
    }


def check_corpus_pairs():
    mach0 = os.path.join(dktest.CORPUS, "macho", "rizin-testbins")
    done = 0
    for (pa, aa), (pb, ab) in CORPUS_PAIRS:
        views = []
        for p, arch in ((pa, aa), (pb, ab)):
            path = os.path.join(mach0, p)
            if not os.path.exists(path):
                break
            rc, doc, err = objc_json(path, *(["--arch", arch] if arch else []))
            if not R.ok(rc == 0, "pair %s[%s]: objc exit %d: %s" % (p, arch, rc, err.strip())):
                break
            views.append(name_view(dktest.slices_of(doc)[0]))
        if len(views) == 2:
            done += 1
            R.ok(views[0] == views[1], "same-source pair %s[%s] / %s[%s]: names differ" % (pa, aa, pb, ab))
    print("corpus same-source pairs: %d compared" % done, flush=True)
    # An image inside a dyld shared cache (CACHE:IMAGE): rizin's hello program again, with
    # relative method lists whose selectors are direct (flag 0x40000000), pointers decoded
    # through slide info and NSObject read from libobjc's class_ro_t in the same cache.
    cache = os.path.join(dktest.CORPUS, "dyld_caches", "dyld_shared_cache_arm64-macOS-objc")
    hello = os.path.join(mach0, "mach0", "hello-macos-arm64")
    if os.path.exists(cache) and os.path.exists(hello):
        rc, doc, err = objc_json(cache + ":libhello-1.0.dylib")
        rc2, doc2, err2 = objc_json(hello)
        if R.ok(rc == 0 and rc2 == 0, "cache image objc: exit %d/%d: %s %s" % (rc, rc2, err.strip(), err2.strip())):
            a, b = name_view(dktest.slices_of(doc)[0]), name_view(dktest.slices_of(doc2)[0])
            R.ok(a["classes"] == b["classes"], "cache image Test class %s vs standalone %s" % (a["classes"], b["classes"]))
        rc, doc, err = objc_json(cache + ":libobjc.A.dylib")
        R.ok(rc == 0 and "NSObject" in names(doc["classes"]) and "NSObject" in names(doc["protocols"]),
             "cache libobjc: exit %d %s" % (rc, err.strip()))


# ------------------------------------------------------------ 3. malformed

def segments(path):
    rc, doc, err = dktest.dk_json("segments", "--json", path)
    return dktest.slices_of(doc)[0]["segments"] if rc == 0 else []


def vm_to_off(segs, addr):
    for s in segs:
        if s["vmaddr"] <= addr < s["vmaddr"] + s["filesize"]:
            return s["fileoff"] + addr - s["vmaddr"]
    return None


def run_damaged(path, what, want_msg=None, want_rc=None):
    """dyldkit objc (JSON and human) on PATH: exit 0 or 1 with a message; never a crash or hang."""
    for args in (["objc", "--json", path], ["objc", "--selectors", path]):
        try:
            rc, out, err = dktest.dk(*args, timeout=30)
        except Exception as e:  # timeout
            R.fail("%s: %s: %s" % (what, " ".join(args[:2]), e))
            return
        err = err.decode(errors="replace")
        ok = rc in (0, 1) and "AddressSanitizer" not in err and "runtime error" not in err
        R.ok(ok, "%s: exit %d: %s" % (what, rc, err.strip()[:300]))
        if rc == 1:
            R.ok(err.startswith("dyldkit: ") and len(err.strip()) > 20, "%s: exit 1 without a message: %r" % (what, err))
            R.ok(out == b"", "%s: exit 1 but printed output" % what)
        if want_rc is not None:
            R.ok(rc == want_rc, "%s: exit %d, want %d (%s)" % (what, rc, want_rc, err.strip()[:200]))
        if want_msg and rc == 1:
            R.ok(want_msg in err, "%s: message %r lacks %r" % (what, err.strip(), want_msg))


def check_malformed():
    src = os.path.join(dktest.FIXTURES, "x86_64-classic", "libshapes.dylib")
    src_ptr = os.path.join(dktest.FIXTURES, "x86_64-classic", "libshapes_ptrlists.dylib")
    src_chained = os.path.join(dktest.FIXTURES, "arm64-chained", "libshapes.dylib")
    if not all(os.path.exists(p) for p in (src, src_ptr, src_chained)):
        R.fail("malformed: fixtures missing")
        return
    tmp = tempfile.mkdtemp(prefix="dk_objc_")
    try:
        damage_cases(tmp, src, src_ptr, src_chained)
        fuzz_cases(tmp, [src, src_ptr, src_chained])
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    crash = os.path.join(dktest.CORPUS, "macho", "radare2-testbins", "mach0", "objc-crash")
    if os.path.exists(crash):
        run_damaged(crash, "corpus objc-crash")
    for row in dktest.corpus_manifest():
        if "objc" in row.get("exercises", "") and row.get("malformed") == "yes":
            run_damaged(row["abspath"], "corpus %s" % row["path"])


def patch(src, dst, edits):
    data = bytearray(open(src, "rb").read())
    for off, fmt, value in edits:
        struct.pack_into(fmt, data, off, value)
    open(dst, "wb").write(bytes(data))
    return dst


def damage_cases(tmp, src, src_ptr, src_chained):
    rc, doc, err = objc_json(src)
    rc2, doc_ptr, err2 = objc_json(src_ptr)
    rc3, doc_ch, err3 = objc_json(src_chained)
    if not R.ok(rc == 0 and rc2 == 0 and rc3 == 0, "malformed: base fixtures do not decode"):
        return
    segs, segs_ptr, segs_ch = segments(src), segments(src_ptr), segments(src_chained)
    circle = next(c for c in doc["classes"] if c["name"] == "FXCircle")
    circle_p = next(c for c in doc_ptr["classes"] if c["name"] == "FXCircle")
    root_p = next(c for c in doc_ptr["classes"] if c["name"] == "FXRoot")
    circle_c = next(c for c in doc_ch["classes"] if c["name"] == "FXCircle")
    # class_ro_t fields (64-bit): flags 0, instanceStart 4, instanceSize 8, reserved 12, ivarLayout 16,
    # name 24, baseMethods 32, baseProtocols 40, ivars 48, weakIvarLayout 56, baseProperties 64.
    ro = vm_to_off(segs, circle["data"])
    rel_list = vm_to_off(segs, read_ptr(src, ro + 32))
    ptr_list = vm_to_off(segs_ptr, read_ptr(src_ptr, vm_to_off(segs_ptr, circle_p["data"]) + 32))
    ivar_list = vm_to_off(segs, read_ptr(src, ro + 48))
    prop_list = vm_to_off(segs, read_ptr(src, ro + 64))
    proto_list = vm_to_off(segs, read_ptr(src, ro + 40))
    cls_off = vm_to_off(segs_ptr, circle_p["address"])
    cases = [
        ("relative method list count 0xffffffff", src, [(rel_list + 4, "<I", 0xffffffff)], "method_list_t"),
        ("relative method list count 0x10000", src, [(rel_list + 4, "<I", 0x10000)], "method_list_t"),
        ("relative method list entsize 4", src, [(rel_list, "<I", 0x80000004)], "entsize"),
        ("relative method name offset wild", src, [(rel_list + 8, "<i", 0x7ffffff0)], None),
        ("relative method types offset wild", src, [(rel_list + 12, "<i", -0x7ffffff0)], None),
        ("pointer method list count 0xffffffff", src_ptr, [(ptr_list + 4, "<I", 0xffffffff)], "method_list_t"),
        ("pointer method list entsize 0", src_ptr, [(ptr_list, "<I", 0)], "entsize"),
        ("pointer method name outside", src_ptr, [(ptr_list + 8, "<Q", 0x7fff00000000)], "method_t.name"),
        ("ivar list count huge", src, [(ivar_list + 4, "<I", 0x40000000)], "ivar_list_t"),
        ("property list count huge", src, [(prop_list + 4, "<I", 0xfffffff0)], "property_list_t"),
        ("protocol list count huge", src, [(proto_list, "<Q", 0xffffffffffff)], "protocol_list_t"),
        ("class_ro_t outside the image", src_ptr, [(cls_off + 32, "<Q", 0x7fff0000000)], "class_ro_t"),
        ("class_ro_t null", src_ptr, [(cls_off + 32, "<Q", 0)], "class_t"),
        ("self-referencing superclass", src_ptr, [(cls_off + 8, "<Q", circle_p["address"])], "loops"),
        # FXCircle -> FXRoot -> FXCircle (FXRoot's superclass is a plain 0, FXCircle's a rebase
        # whose stored value is the target in a classic image)
        ("two-class superclass loop", src_ptr,
         [(cls_off + 8, "<Q", root_p["address"]), (vm_to_off(segs_ptr, root_p["address"]) + 8, "<Q", circle_p["address"])],
         "loops"),
        ("metaclass pointer outside", src_ptr, [(cls_off, "<Q", 0x7fff0000000)], "class_t"),
    ]
    # chained image: counts are plain data even when pointers are chain entries
    ro_c = vm_to_off(segs_ch, circle_c["data"])
    if ro_c is not None:
        cases.append(("chained: class_ro_t instanceSize changed (still valid)", src_chained,
                      [(ro_c + 8, "<I", 0x12345)], None))
    for what, base, edits, msg in cases:
        if any(e[0] is None for e in edits):
            R.fail("malformed case %s: could not locate the structure" % what)
            continue
        dst = patch(base, os.path.join(tmp, "case.dylib"), edits)
        run_damaged(dst, what, want_msg=msg, want_rc=1 if msg else None)


def read_ptr(path, off):
    with open(path, "rb") as f:
        f.seek(off)
        return struct.unpack("<Q", f.read(8))[0]


def fuzz_cases(tmp, bases, rounds=60 if dktest.SLOW <= 1 else 20):
    """Random byte flips inside the ObjC sections: exit 0 or 1, never a crash or a hang."""
    rng = random.Random(20240511)
    for base in bases:
        segs = segments(base)
        ranges = []
        for s in segs:
            for x in s.get("sections", []):
                name = x.get("sectname") or x.get("name")
                if (name.startswith("__objc_") or name in ("__const", "__data")) and x.get("size"):
                    off = x.get("offset")
                    if off:
                        ranges.append((off, x["size"]))
        if not ranges:
            R.fail("fuzz: no ObjC sections in %s" % base)
            continue
        data = open(base, "rb").read()
        for i in range(rounds):
            buf = bytearray(data)
            for _ in range(rng.randint(1, 8)):
                off, size = rng.choice(ranges)
                pos = off + rng.randrange(size)
                buf[pos] = rng.choice([0, 0xff, rng.randrange(256), buf[pos] ^ (1 << rng.randrange(8))])
            dst = os.path.join(tmp, "fuzz.dylib")
            open(dst, "wb").write(bytes(buf))
            run_damaged(dst, "fuzz %s #%d" % (os.path.basename(base), i))


# ------------------------------------------------------------- 4. human view

def check_human():
    path = os.path.join(dktest.FIXTURES, "x86_64-classic", "libshapes.dylib")
    if not os.path.exists(path):
        return
    rc, out, err = dktest.dk("objc", path)
    text = out.decode()
    R.ok(rc == 0, "human objc exit %d" % rc)
    for want in ("@interface FXCircle : FXShapeBase <FXColored>", "@protocol FXColored <NSObject>",
                 "@interface FXCircle (Geometry) <FXScalable>", "@interface NSObject (FXDebug)",
                 "- (void)setRadius:(double)arg1;", "+ (id)circleWithRadius:(double)arg1;",
                 "double _radius;", "@property (nonatomic) double radius;", "@optional", "@end"):
        R.ok(want in text, "human output lacks %r" % want)
    R.ok(re.search(r"- \(double\)area;\s+// 0x[0-9a-f]+", text) is not None, "human output: no imp address for -area")
    R.ok("Selector references" not in text, "selectors listed without --selectors")
    rc, out, err = dktest.dk("objc", "--selectors", path)
    text = out.decode()
    R.ok(re.search(r"Selector references \(\d+\)\n\s+0x[0-9a-f]+\s+init\n", text) is not None,
         "--selectors does not list selrefs")
    rc, out, err = dktest.dk("objc", "--bogus", path)
    R.ok(rc == 2, "unknown option: exit %d" % rc)
    # a non-ObjC image: exit 0, empty lists
    hello = os.path.join(dktest.FIXTURES, "x86_64-classic", "hello")
    rc, doc, err = objc_json(hello)
    R.ok(rc == 0 and doc["abi"] == 0 and doc["classes"] == [] and doc["image_info"] is None,
         "non-ObjC image: %d %s" % (rc, err))
    # universal: one document per slice
    uni = os.path.join(dktest.FIXTURES, "universal", "libshapes.dylib")
    if os.path.exists(uni):
        rc, doc, err = objc_json(uni)
        R.ok(rc == 0 and len(doc.get("slices", [])) == 2, "universal objc --json: %d %s" % (rc, err))
    # objc1: decoded
    o1 = os.path.join(dktest.CORPUS, "macho", "llvm-project", "llvm", "test", "tools", "llvm-objdump", "MachO", "Inputs",
                      "Objc1.32bit.exe.macho-i386")
    if os.path.exists(o1):
        rc, doc, err = objc_json(o1)
        R.ok(rc == 0 and doc["abi"] == 1 and "ViewController" in names(doc["classes"]),
             "objc1 image: %d %s" % (rc, err))


def main():
    if not os.path.exists(dktest.DYLDKIT):
        R.fail("no dyldkit at %s" % dktest.DYLDKIT)
        R.finish()
    for f in sorted(os.listdir(EXPECTED)):
        if f.startswith("shapes") and f.endswith(".json"):
            check_expected(f)
    check_chained_vs_classic()
    check_human()
    check_llvm_parity()
    check_corpus_pairs()
    check_malformed()
    R.finish()


if __name__ == "__main__":
    main()
