#!/usr/bin/env python3
"""Summarises scripts/bench.sh's profile step: instructions per call of each
hot path under callgrind, the functions that dominate (inclusive, and their
own "self" cost), and system calls per call under strace.
Writes DIR/profile.txt and DIR/frag/profile.json.

    scripts/bench_profile_report.py DIR
"""
import json
import os
import re
import subprocess
import sys

ROW = re.compile(r"^\s*([\d,]+)\s+\(\s*([\d.]+)%\)\s+(\S.*)$")


def annotate(path, inclusive):
    args = ["callgrind_annotate", "--auto=no", "--threshold=99.5", path]
    if inclusive:
        args.insert(1, "--inclusive=yes")
    out = subprocess.run(args, capture_output=True, text=True).stdout
    total, rows = 0, []
    for line in out.splitlines():
        m = ROW.match(line)
        if not m:
            continue
        ir, share, fn = int(m.group(1).replace(",", "")), float(m.group(2)), m.group(3)
        fn = re.sub(r"\s*\[[^\]]*\]$", "", fn)
        if "PROGRAM TOTALS" in fn:
            total = ir
        else:
            rows.append((ir, share, fn))
    return total, rows


def main():
    out = sys.argv[1]
    cg = os.path.join(out, "callgrind")
    res, text = {}, []
    for line in open(os.path.join(cg, "runs.txt")):
        name, n = line.split()
        n = int(n)
        f = os.path.join(cg, name + ".out")
        total, incl = annotate(f, True)
        _, own = annotate(f, False)
        res[f"profile.{name}.ir_per_call"] = total / n
        text.append(f"== {name}: {total / n:,.1f} instructions per call ({total:,} over {n:,} calls)")
        # The callers above the measured function (main, libc) are 100%: skip them.
        inner = [r for r in incl if r[1] < 99.95][:18]
        text.append("  inclusive:")
        text += [f"  {ir / n:>12,.1f} Ir/call {p:6.1f}%  {fn[:140]}" for ir, p, fn in inner]
        text.append("  self:")
        text += [f"  {ir / n:>12,.1f} Ir/call {p:6.1f}%  {fn[:140]}" for ir, p, fn in own[:10]]
    whole_n = os.path.join(cg, "whole_n.txt")
    if os.path.exists(whole_n):
        n = int(open(whole_n).read())
        per = {}
        for k in ("call", "ureq"):
            one, _ = annotate(os.path.join(cg, f"whole_{k}_1.out"), False)
            three, _ = annotate(os.path.join(cg, f"whole_{k}_3.out"), False)
            per[k] = (three - one) / (2 * n)
            res[f"profile.whole_{k}.ir_per_call"] = per[k]
        text.append(f"== whole process, instructions per call: bill_call {per['call']:,.0f}, "
                    f"plain ureq loop {per['ureq']:,.0f} ({per['call'] / per['ureq']:.2f}x)")
    n_strace = int(os.environ.get("BENCH_PROFILE_STRACE_N", "1000"))
    for k in ("call", "ureq"):
        f = os.path.join(cg, f"strace_{k}.txt")
        if not os.path.exists(f):
            continue
        counts = {}
        for line in open(f):
            p = line.split()
            # "% time  seconds  usecs/call  calls  [errors]  syscall"
            if len(p) >= 5 and p[-1].isidentifier() and p[-1] != "total" and p[3].isdigit():
                counts[p[-1]] = int(p[3])
        total = sum(counts.values())
        res[f"profile.strace_{k}.syscalls_per_call"] = total / n_strace
        res[f"profile.strace_{k}.clone_per_call"] = (counts.get("clone3", 0) + counts.get("clone", 0)) / n_strace
        top = sorted(counts.items(), key=lambda kv: -kv[1])[:8]
        text.append(f"== strace {k} (profile-{k} {n_strace}): {total / n_strace:.1f} system calls per call; "
                    + ", ".join(f"{name} {c / n_strace:.2f}" for name, c in top))
    with open(os.path.join(out, "profile.txt"), "w") as f:
        f.write("\n".join(text) + "\n")
    os.makedirs(os.path.join(out, "frag"), exist_ok=True)
    with open(os.path.join(out, "frag", "profile.json"), "w") as f:
        json.dump(res, f, indent=1)
    print("\n".join(text))


if __name__ == "__main__":
    main()
