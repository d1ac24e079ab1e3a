#!/usr/bin/env python3
"""Malformed-input contract: every corpus file marked malformed=yes in
../shared/corpus/MANIFEST.tsv goes through every Mach-O inspection command,
with and without --json.

For each run:
  - the exit status is 0 or 1: never a signal, a sanitizer report or a hang
    (timeout TIMEOUT seconds, scaled by DK_SLOW for sanitizer builds);
  - on exit 1 stdout is empty and stderr is exactly one line that starts with
    `dyldkit: ` and names the file;
  - on exit 0 with --json stdout is one JSON document with "schema": 1.
And each malformed file must be rejected (exit 1) by at least one command,
unless ALLOWED below says why dyldkit has no reason to reject it.

The run/check helpers are shared with tests/test_corpus.py (mutation pass).
Prints `malformed: N rejected, M allowed, K runs`.
"""
import json
import os
import subprocess
import sys
from concurrent.futures import ThreadPoolExecutor

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "lib"))
import dktest  # noqa: E402

COMMANDS = ("info", "loadcmds", "segments", "symbols", "dylibs", "exports", "fixups", "chains", "opcodes")
TIMEOUT = 2.0  # seconds per run, times dktest.SLOW

_LLVM_OBJ = "macho/llvm-project/llvm/test/Object/Inputs/"
_LLVM_OBJDUMP = "macho/llvm-project/llvm/test/tools/llvm-objdump/MachO/Inputs/"

# Files marked malformed that no inspection command has a reason to reject: each
# one was examined by hand; the reason says exactly what is wrong in it and why
# that is outside what `info loadcmds segments symbols dylibs exports fixups
# chains opcodes` decode.  Any command rejecting one of them is fine too.
ALLOWED = {
    _LLVM_OBJ + "macho-invalid-prebind_cksum-obsolete":
        "a well-formed 32-bit object whose only load command is LC_PREBIND_CKSUM (cmdsize 12, cksum 0); LLVM "
        "rejects it only because it refuses obsolete load commands ('cmd value of: 23 is obsolete'). dyldkit "
        "decodes obsolete commands (NeXTSTEP-era files such as 2048-NeXTSTEP use them)",
    _LLVM_OBJ + "macho-invalid-prepage-obsolete":
        "a well-formed 32-bit object whose only load command is LC_PREPAGE (cmdsize 16); LLVM rejects it only "
        "because the command is obsolete ('cmd value of: 10 is obsolete')",
    _LLVM_OBJ + "macho-invalid-symseg-obsolete":
        "a well-formed 32-bit object whose only load command is LC_SYMSEG (cmdsize 16, offset 0, size 0); LLVM "
        "rejects it only because the command is obsolete ('cmd value of: 3 is obsolete')",
    _LLVM_OBJ + "macho-invalid-zero-ncmds":
        "a bare 32-byte mach_header_64 (cputype 0, MH_OBJECT, ncmds 0, sizeofcmds 0): an empty but valid object; "
        "llvm-objdump-22 also prints its header without error (llvm_objdump_22_ok=yes)",
    _LLVM_OBJDUMP + "macho-invalid-reloc-section-index":
        "a universal static archive (x86_64, i386) of two objects; the only defect is in c_start.o (x86_64): "
        "the non-extern X86_64_RELOC_UNSIGNED relocation at 0x21 of __TEXT,__text has r_symbolnum 8388613 "
        "(0x800005), a section index the object does not have. dyldkit does not decode relocation entries",
    _LLVM_OBJDUMP + "malformed-machos/mem-crup-0261.macho":
        "a fuzzed x86_64 executable whose __TEXT,__text section header has section type S_ZEROFILL (flags "
        "0x80000401) although it holds file-backed code at offset 0xf76 (this crashed llvm-objdump's "
        "disassembler); the load commands, LINKEDIT ranges, symbols and dyld info are consistent, and dyldkit "
        "does not decode section contents",
    _LLVM_OBJDUMP + "malformed-unwind.macho-x86_64":
        "an x86_64 executable whose __TEXT,__unwind_info has a second-level page of unknown kind 4 (only 2, "
        "REGULAR, and 3, COMPRESSED, exist) at offset 0x40; dyldkit does not decode compact unwind info",
    _LLVM_OBJDUMP + "truncated-section.dylib.macho-x86_64":
        "an x86_64 dylib whose __TEXT,__text was shrunk to 0x16 bytes (0xfa0..0xfb6) so that the nlist symbol "
        "_func2 (value 0xfc0, n_sect 1) lies past the end of its section (llvm-objdump -d: 'section data ends, "
        "_func2 lies outside valid range'); every range is inside the file and dyldkit prints n_value as stored "
        "(as nm does) without disassembling",
    "macho/rizin-testbins/mach0/r2_hang_test":
        "an x86_64 Objective-C executable whose class_ro_t for Person (in __DATA,__objc_const) has baseMethods "
        "0xfffffffffffffffe, a pointer to nowhere that made rizin's ObjC analysis (aalor) loop; the load "
        "commands and dyld info are sound and ObjC metadata is the objc command's business, not one of these",
}

SANITIZER_MARKERS = ("AddressSanitizer", "LeakSanitizer", "UndefinedBehaviorSanitizer", "runtime error:")


def run_cmd(cmd, path, json_out, timeout=TIMEOUT):
    """Run `dyldkit CMD [--json] PATH`; (rc or None on timeout, stdout, stderr)."""
    args = [dktest.DYLDKIT, cmd] + (["--json"] if json_out else []) + [path]
    try:
        p = subprocess.run(args, stdout=subprocess.PIPE, stderr=subprocess.PIPE, timeout=timeout * dktest.SLOW)
    except subprocess.TimeoutExpired:
        return None, b"", b""
    return p.returncode, p.stdout, p.stderr


def crash_problems(rc, text, limit):
    """A hang (RC None after LIMIT seconds), a signal, an exit status other than
    0 or 1, a sanitizer report in TEXT (stderr): each as a line."""
    if rc is None:
        return ["no exit within %.1fs (hang)" % limit]
    probs = []
    if rc < 0:
        probs.append("killed by signal %d" % -rc)
    elif rc not in (0, 1):
        probs.append("exit status %d" % rc)
    for mark in SANITIZER_MARKERS:
        if mark in text:
            probs.append("sanitizer report: %s" % [l for l in text.splitlines() if mark in l][0][:300])
            break
    return probs


def contract_problems(rc, out, err, path, json_out):
    """How one run breaks the exit-status contract; empty list when it keeps it."""
    text = err.decode(errors="replace")
    probs = crash_problems(rc, text, TIMEOUT * dktest.SLOW)
    if rc is None:
        return probs
    if rc == 1:
        lines = text.splitlines()
        if out:
            probs.append("exit 1 with %d bytes on stdout" % len(out))
        if len(lines) != 1:
            probs.append("exit 1 with %d stderr lines: %r" % (len(lines), text[:300]))
        elif not lines[0].startswith("dyldkit: "):
            probs.append("stderr does not start with 'dyldkit: ': %r" % lines[0][:200])
        elif path not in lines[0]:
            probs.append("stderr does not name the file: %r" % lines[0][:200])
    if rc == 0 and json_out:
        try:
            doc = json.loads(out)
            if not isinstance(doc, dict) or doc.get("schema") != 1:
                probs.append("JSON without \"schema\": 1")
        except ValueError as e:
            probs.append("invalid JSON: %s" % e)
    return probs


def check_file(path):
    """Every command on PATH: (list of (cmd, json, rc, problems))."""
    res = []
    for cmd in COMMANDS:
        for json_out in (True, False):
            rc, out, err = run_cmd(cmd, path, json_out)
            res.append((cmd, json_out, rc, contract_problems(rc, out, err, path, json_out)))
    return res


def main():
    rep = dktest.Report("malformed")
    rows = [r for r in dktest.corpus_manifest() if r["malformed"] == "yes"]
    if not rows:
        print("malformed: corpus not found at %s; skipped" % dktest.CORPUS)
        return
    for p in ALLOWED:
        rep.ok(any(r["path"] == p for r in rows), "allow-list entry %s is a malformed corpus file" % p)
    rejected = allowed = runs = 0
    with ThreadPoolExecutor(max_workers=os.cpu_count() or 2) as ex:
        for row, res in zip(rows, ex.map(lambda r: check_file(r["abspath"]), rows)):
            for cmd, json_out, rc, probs in res:
                runs += 1
                for pr in probs:
                    rep.fail("%s %s%s: %s" % (row["path"], cmd, " --json" if json_out else "", pr))
                if not probs:
                    rep.ok(True, "")
            if any(rc == 1 for _, _, rc, _ in res):
                rejected += 1
                rep.ok(True, "")
            elif row["path"] in ALLOWED:
                allowed += 1
            else:
                rep.fail("%s: malformed but accepted by every command (add it to ALLOWED only with the reason)"
                         % row["path"])
    print("malformed: %d rejected, %d allowed, %d runs over %d files" % (rejected, allowed, runs, len(rows)))
    rep.finish()


if __name__ == "__main__":
    main()
