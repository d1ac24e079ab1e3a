#!/usr/bin/env python3
"""The CPU-time table of FUZZING.md, from fuzz/run.sh's log.

    fuzz/cpu_table.py [build/libfuzzer/fuzz-runs.tsv]

The log has one line per run: date, target, wall s, CPU s, executions,
result (the first runs, before run.sh measured CPU, have no CPU column).
"CPU since the last finding" adds only measured CPU: a wall-only run counts
in the totals as an upper bound but not towards the clean hour.  A FOUND run
resets it, except the artefacts listed in NOT_FINDINGS (see FUZZING.md's
findings table for why each is not a defect).
"""
import sys

TARGETS = ["macho", "symtab", "opcodes", "trie", "chained", "stubs", "objc", "universal", "slide", "cache", "extract",
           "loader"]
# libFuzzer timeout while the fuzzer was stopped with SIGSTOP (wall-clock timeout), 2026-11-22
NOT_FINDINGS = ("timeout-547615cebf213b23a07ddd508d73f4b5d6cf1b0f",)


def main():
    path = sys.argv[1] if len(sys.argv) > 1 else "build/libfuzzer/fuzz-runs.tsv"
    def new():
        return {"wall": 0, "cpu": 0, "wall_only": 0, "execs": 0, "runs": 0, "found": 0, "clean": 0}

    tot = {t: new() for t in TARGETS}
    with open(path) as f:
        for line in f:
            r = line.rstrip("\n").split("\t")
            if len(r) == 5:
                _, t, wall, execs, res = r
                cpu = ""
            else:
                _, t, wall, cpu, execs, res = r
            measured = cpu.isdigit()
            x = tot.setdefault(t, new())
            x["runs"] += 1
            x["wall"] += int(wall)
            x["execs"] += int(execs) if execs.isdigit() else 0
            if measured:
                x["cpu"] += int(cpu)
            else:
                x["wall_only"] += int(wall)
            if res.startswith("FOUND") and not any(n in res for n in NOT_FINDINGS):
                x["found"] += 1
                x["clean"] = 0
            elif measured:
                x["clean"] += int(cpu)
    print("| target | runs | wall time | CPU time | executions | findings | measured CPU since the last finding |")
    print("|---|---|---|---|---|---|---|")
    for t, x in tot.items():
        cpu = "%d s" % x["cpu"]
        if x["wall_only"]:
            cpu += " + <= %d s (early runs, wall time only)" % x["wall_only"]
        print("| `%s` | %d | %d s | %s | %s | %d | %d s |" % (t, x["runs"], x["wall"], cpu, format(x["execs"], ","), x["found"],
                                                          x["clean"]))
    total = sum(x["cpu"] + x["wall_only"] for x in tot.values())
    print()
    print("total CPU: %.2f hours (at most; %.2f measured)" % (total / 3600, sum(x["cpu"] for x in tot.values()) / 3600))


if __name__ == "__main__":
    main()
