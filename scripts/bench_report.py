#!/usr/bin/env python3
"""Merges the benchmark fragments of every run (DIR/frag/runN/*.json) into
DIR/results.json, renders the table (DIR/table.md) and writes BENCHMARKS.md
(the repository's, or the path in BENCH_MD; BENCH_MD=- skips it).

    scripts/bench_report.py [DIR]      (default build/bench)

Each figure in the table is the median over the runs, with the lowest and
highest run in brackets. A target counts as met only if every run meets it.
results.json: {"meta": {...}, "runs": [{fragment: {key: value}}],
"rows": [{"what", "measured", "alternative", "target", "met", "runs_met"}]}.
No number in BENCHMARKS.md is written by hand: all of it comes from here.
"""
import json
import os
import re
import statistics
import sys

HERE = os.path.dirname(os.path.abspath(__file__))


def load(d):
    frag = os.path.join(d, "frag")
    meta, runs = {}, []
    if not os.path.isdir(frag):
        return meta, runs
    for name in sorted(os.listdir(frag)):
        p = os.path.join(frag, name)
        if name.startswith("meta_") and name.endswith(".json"):
            with open(p) as f:
                m = json.load(f)
            if name in ("meta_start.json", "meta_end.json"):
                meta.update(m)
            else:
                run = name[len("meta_"):-len(".json")].rsplit("_", 1)[0]
                meta.setdefault("partial_runs", {}).setdefault(run, {}).update(m)
        elif re.fullmatch(r"run\d+", name) and os.path.isdir(p):
            figs = {}
            for fn in sorted(os.listdir(p)):
                if fn.endswith(".json"):
                    with open(os.path.join(p, fn)) as f:
                        figs[fn[:-5]] = json.load(f)
            if figs:
                runs.append((int(name[3:]), figs))
    runs.sort()
    # Without a full run, the machine facts come from a partial one.
    for facts in meta.get("partial_runs", {}).values():
        for key in ("nproc", "cpu_model", "cpu_mhz", "kernel", "git_rev", "command", "src_uncommitted"):
            meta.setdefault(key, facts.get(key))
    return meta, [figs for _, figs in runs]


class Run:
    def __init__(self, figs):
        self.f = figs

    def __call__(self, frag, key):
        return self.f.get(frag, {}).get(key)


def values(runs, fn):
    """fn(run) for every run; None where a figure is missing."""
    out = []
    for r in runs:
        try:
            v = fn(r)
        except (TypeError, ZeroDivisionError):
            v = None
        out.append(v)
    return out


def num(v, unit="", nd=1):
    return "n/a" if v is None else f"{v:,.{nd}f}{unit}"


def spread(runs, fn, unit="", nd=1):
    """'median (min–max)' over the runs, or one value if there is one run."""
    v = [x for x in values(runs, fn) if x is not None]
    if not v:
        return "n/a"
    med = statistics.median(v)
    if len(v) == 1 or num(min(v), "", nd) == num(max(v), "", nd):
        return num(med, unit, nd)
    return f"{num(med, unit, nd)} ({num(min(v), '', nd)}–{num(max(v), '', nd)})"


def verdict(runs, fn):
    """(met, runs_met): met only if every run meets the target; None if a run lacks a figure."""
    v = values(runs, fn)
    if not v or any(x is None for x in v):
        return None, sum(1 for x in v if x)
    return all(v), sum(1 for x in v if x)


def rows(runs):
    out = []

    def row(what, measured, alternative, target, test=None):
        met, k = verdict(runs, test) if test else ("-", None)
        out.append({"what": what, "measured": measured, "alternative": alternative, "target": target,
                    "met": met, "runs_met": k, "runs": len(runs)})

    S = lambda fn, unit="", nd=1: spread(runs, fn, unit, nd)
    hot = lambda k: lambda r: r("hot", k)

    row("`bill_touch` through the C ABI, one thread",
        f"median {S(hot('touch.median_ns'), ' ns')}; {S(hot('touch_over_floor.median_ratio'), '×', 2)} the floor "
        "(median of per-batch ratios, batches interleaved)",
        f"floor (coarse clock read + atomic store, C loop): {S(hot('floor.median_ns'), ' ns')}",
        "median ≤ 2× the floor",
        lambda r: r("hot", "touch_over_floor.median_ratio") <= 2.0)

    py = lambda k: lambda r: r("pyhost", k)
    row("Python host: `bill_touch` through ctypes vs BILL's sample (a `threading.Timer` cancelled and started again)",
        f"`bill_touch` via ctypes {S(py('py.touch_ctypes_ns.median'), ' ns', 0)}; the Timer re-arm costs "
        f"{S(py('py.rearm_over_touch.median'), '×', 0)} as much (median of per-round ratios, one process, interleaved)",
        f"Timer re-arm {S(lambda r: r('pyhost', 'py.timer_rearm_ns.median') / 1e3, ' µs')}",
        "report (what a Python host pays per call)")

    row("`bill_touch`, 2 threads on one session",
        f"scaling {S(hot('threads.touch.scaling'), '×', 2)} one thread "
        f"({S(hot('threads.touch.2t_mops'), ' M/s')} vs {S(hot('threads.touch.1t_mops'), ' M/s')}); "
        f"{S(hot('threads.touch_over_own.scaling_ratio'), '×', 3)} the control's scaling (median of per-round ratios)",
        f"control, same run, rounds interleaved: each thread touching its own session (nothing shared) "
        f"{S(hot('threads.touch_own.scaling'), '×', 2)}; floor with a private line per thread "
        f"{S(hot('threads.floor_private.scaling'), '×', 2)}; floor writing one shared line "
        f"{S(hot('threads.floor_shared.scaling'), '×', 2)}",
        "scaling ≥ 0.95× the nothing-shared control's scaling in the same run",
        lambda r: r("hot", "threads.touch_over_own.scaling_ratio") >= 0.95)

    row("`bill_session_id` into a caller buffer",
        f"median {S(hot('id.median_ns'), ' ns')}",
        f"memcpy of the id: {S(hot('memcpy.median_ns'), ' ns')}",
        "≤ 30 ns median",
        lambda r: r("hot", "id.median_ns") <= 30)

    def extreme(fn, pick, nd=2):
        v = [x for x in values(runs, fn) if x is not None]
        return num(pick(v), "", nd) if v else "n/a"

    cyc = lambda r: r("hot", "renewal.cycles")
    row("`bill_session_id` while a renewal is held in flight "
        f"({S(hot('renewal.delay_ms'), ' ms', 0)} sign-in delay, renewals every {S(hot('renewal.spacing_ms'), ' ms', 0)})",
        f"in flight / just before, median over {S(cyc, '', 0)} cycles: {S(hot('id.inflight_over_idle'), '×', 2)}; "
        f"single cycles, all runs: {extreme(hot('id.inflight_over_idle.min'), min)} to "
        f"{extreme(hot('id.inflight_over_idle.max'), max)}",
        f"in flight / an idle session read at the same moments, median over cycles: "
        f"{S(hot('id.inflight_over_ctl'), '×', 2)}; single cycles, all runs: "
        f"{extreme(hot('id.inflight_over_ctl.min'), min)} to {extreme(hot('id.inflight_over_ctl.max'), max)}",
        "no slowdown: both medians ≤ 1.10, every cycle measured",
        lambda r: (r("hot", "id.inflight_over_idle") <= 1.10 and r("hot", "id.inflight_over_ctl") <= 1.10
                   and r("hot", "renewal.batches_dropped") == 0
                   and r("hot", "renewal.cycles") == r("hot", "renewal.cycles_requested")))

    call = lambda k: lambda r: r("call", k)
    row("`bill_call` round trip over loopback keep-alive (Rust, through the C ABI)",
        f"median {S(call('call.lib.median_us'), ' µs')}; {S(call('call.lib_over_ureq.median_ratio'), '×', 2)} plain ureq "
        f"(median of per-pair ratios, one call of each in rotating order). Through a host name (`localhost`): "
        f"{S(call('call.lib_localhost_over_ureq_localhost'), '×', 2)} plain ureq through the same name",
        f"plain ureq loop {S(call('call.ureq.median_us'), ' µs')}; raw keep-alive socket {S(call('call.raw.median_us'), ' µs')}",
        "≤ 1.15× plain ureq",
        lambda r: r("call", "call.lib_over_ureq.median_ratio") <= 1.15)

    row("Python host: `requests.Session` vs `bill_call` through ctypes",
        f"`bill_call` via ctypes {S(py('py.call.bill_call_us.median'), ' µs')}; requests takes "
        f"{S(py('py.call.requests_over_bill_call.median'), '×', 2)} as long (median of per-pair ratios, one process, interleaved)",
        f"`requests.Session` GET {S(py('py.call.requests_us.median'), ' µs')}",
        "≥ 3× faster than requests",
        lambda r: r("pyhost", "py.call.requests_over_bill_call.median") >= 3)

    row("sign-in (`bill_login`)",
        f"median {S(call('login.lib.median_us'), ' µs')}: {S(call('login.lib_minus_raw_us'), ' µs')} above the emulator's "
        f"own time (raw keep-alive POST {S(call('login.raw.median_us'), ' µs')}), "
        f"{S(call('login.lib_minus_ureq_us'), ' µs')} above plain ureq (interleaved)",
        f"`curl` same POST (keep-alive, time_total, separate process) {S(lambda r: r('curl', 'login.curl.median_us'), ' µs')}; "
        f"Python: requests takes {S(py('py.login.requests_over_bill_login.median'), '×', 2)} as long as `bill_login` "
        f"via ctypes (interleaved)",
        "report the overhead")

    ses = lambda k: lambda r: r("sessions", k)
    tim = lambda k: lambda r: r("timers", k)
    row(f"{S(ses('sessions.n'), '', 0)} idle sessions over {S(ses('sessions.dev_keys'), '', 0)} devKeys "
        "(BILL's sign-in budget)",
        f"{S(ses('sessions.background_threads'), '', 0)} libbill thread while idle "
        f"({S(ses('sessions.threads_added'), '', 0)} added by the sessions); heap "
        f"{S(ses('sessions.heap_per_session_bytes'), ' B', 0)}/session. Renewals due one per ms on loopback: "
        f"{S(ses('sessions.renewed_before_deadline'), '', 0)} renewed before their deadline, lateness after the due time "
        f"p50 {S(ses('sessions.renew_late_median_ms'), ' ms', 2)}, max {S(ses('sessions.renew_late_max_ms'), ' ms', 1)}, "
        f"at most {S(ses('sessions.peak_renewal_threads_sampled'), '', 0)} renewal threads seen",
        f"one `threading.Timer` per session (BILL's sample): {S(tim('py.timers.threads_added'), '', 0)} threads, "
        f"{S(tim('py.timers.rss_per_session_bytes'), ' B', 0)} RSS/session",
        "1 libbill thread while idle; heap ≤ 4 KiB/session",
        lambda r: (r("sessions", "sessions.background_threads") == 1 and r("sessions", "sessions.threads_added") == 0
                   and r("sessions", "sessions.heap_per_session_bytes") <= 4096))

    def renew(engine, wl):
        f = f"renew_{engine}"
        k = f"renew.{engine}.{wl}"
        g = lambda key: lambda r: r(f, f"{k}.{key}")

        def late(name):
            s = S(g(f"late_{name}_ms"), " ms", 0)
            cens = values(runs, g(f"late_{name}_censored"))
            return ("> " + s) if any(c for c in cens if c) else s

        return g, late

    for wl in ("spread",):
        gp, lp = renew("parallel", wl)
        gs, ls = renew("serial", wl)
        row(f"renewal: {S(gp('sessions'), '', 0)} sessions over {S(gp('orgs'), '', 0)} organizations and "
            f"{S(gp('dev_keys'), '', 0)} devKeys, idle {S(gp('idle_s'), ' s', 0)}, margin {S(gp('margin_s'), ' s', 0)}, "
            f"all due within {S(gp('due_spread_ms'), ' ms', 0)}, sign-in delay {S(gp('login_delay_ms'), ' ms', 0)}",
            f"parallel engine: {S(gp('before_deadline_pct'), '%', 1)} renewed before the idle deadline; lateness after "
            f"the due time p50 {lp('p50')}, p99 {lp('p99')}, max {lp('max')}; peak "
            f"{S(gp('peak_workers'), '', 0)} renewal threads; final {S(gp('final_threads'), '', 0)} libbill thread(s), "
            f"{S(lambda r: r('renew_parallel', 'renew.parallel.spread.workers_exit_ms') / 1e3, ' s', 1)} after the "
            "last renewal (at most 5 s is waited)",
            f"serial engine (`set_max_workers(1)`), same run: {S(gs('before_deadline_pct'), '%', 1)} before the deadline; "
            f"p50 {ls('p50')}, p99 {ls('p99')}, max {ls('max')} (cut off {S(gs('cutoff_after_last_due_ms'), ' ms', 0)} "
            f"after the last due time, {S(gs('renewed'), '', 0)} renewed by then); peak {S(gs('peak_workers'), '', 0)} "
            f"renewal thread; {S(gs('final_threads'), '', 0)} libbill threads at the cut-off",
            "100% renewed before the deadline (parallel engine)",
            lambda r: r("renew_parallel", "renew.parallel.spread.before_deadline")
            == r("renew_parallel", "renew.parallel.spread.sessions"))

    gp, lp = renew("parallel", "one_org")
    gs, ls = renew("serial", "one_org")
    row(f"renewal: {S(gp('sessions'), '', 0)} sessions in one organization (3 in flight), same delay",
        f"parallel engine: {S(gp('before_deadline_pct'), '%', 1)} renewed before the deadline; drain "
        f"{S(lambda r: r('renew_parallel', 'renew.parallel.one_org.drain_ms') / 1e3, ' s', 2)} from the first due time "
        f"to the last renewal, {S(lambda r: r('renew_parallel', 'renew.parallel.one_org.drain_ms') / r('renew_parallel', 'renew.parallel.one_org.bound_ms'), '×', 2)} "
        f"the bound; at most {S(gp('peak_workers_sampled'), '', 0)} renewal threads seen at once",
        f"bound {S(lambda r: r('renew_parallel', 'renew.parallel.one_org.bound_ms') / 1e3, ' s', 2)} "
        f"(sessions × delay / 3); serial engine, same run: drain "
        f"{S(lambda r: r('renew_serial', 'renew.serial.one_org.drain_ms') / 1e3, ' s', 2)}, "
        f"{S(gs('before_deadline_pct'), '%', 1)} before the deadline",
        "100% renewed before the deadline (parallel engine); drain compared with the bound",
        lambda r: r("renew_parallel", "renew.parallel.one_org.before_deadline")
        == r("renew_parallel", "renew.parallel.one_org.sessions"))

    fl = lambda k: lambda r: r("fleet", k)
    row(f"fleet mode: sign-ins of {S(fl('fleet.processes'), '', 0)} processes of one identity, first sign-in and "
        f"{S(fl('fleet.periods'), '', 0)} renewal periods",
        f"with the shared store: {S(fl('fleet.sign_ins.store'), '', 0)} sign-ins, "
        f"{S(fl('fleet.sign_ins_per_period.store'), '', 1)} per period",
        f"without (each process on its own), same run: {S(fl('fleet.sign_ins.local'), '', 0)} sign-ins, "
        f"{S(fl('fleet.sign_ins_per_period.local'), '', 1)} per period",
        "1 sign-in per period with the store",
        lambda r: r("fleet", "fleet.sign_ins.store") == r("fleet", "fleet.periods") + 1)

    row("fleet mode: `bill_call` round trip with the fleet-wide in-flight permit (2 Redis round trips per call)",
        f"median {S(fl('fleet.call.fleet_us'), ' µs')}; {S(fl('fleet.call.fleet_over_local'), '×', 2)} a local "
        "session's call (median of per-pair ratios, interleaved)",
        f"local session, same process: {S(fl('fleet.call.local_us'), ' µs')}",
        "report the ratio")

    row("fleet mode: `bill_touch` and `bill_session_id` of a fleet session",
        f"touch {S(fl('fleet.touch.fleet_ns'), ' ns')}, {S(fl('fleet.touch.fleet_over_local'), '×', 2)} a local "
        f"session's; id {S(fl('fleet.id.fleet_ns'), ' ns')}, {S(fl('fleet.id.fleet_over_local'), '×', 2)} "
        "(medians of per-batch ratios, interleaved)",
        f"local session, same process: touch {S(fl('fleet.touch.local_ns'), ' ns')}, id {S(fl('fleet.id.local_ns'), ' ns')}",
        "unchanged: both ratios ≤ 1.10",
        lambda r: r("fleet", "fleet.touch.fleet_over_local") <= 1.10 and r("fleet", "fleet.id.fleet_over_local") <= 1.10)

    row("library size and load",
        f"stripped `libbill.so` {S(lambda r: r('size', 'size.stripped_bytes') / 1048576, ' MiB', 2)}; "
        f"`dlopen`+`dlsym` {S(lambda r: r('dlopen_stripped', 'dlopen.stripped.median_us'), ' µs', 0)}",
        f"as built (symbols kept): {S(lambda r: r('size', 'size.built_bytes') / 1048576, ' MiB', 2)}, dlopen "
        f"{S(lambda r: r('dlopen_built', 'dlopen.built.median_us'), ' µs', 0)}",
        "size ≤ 4 MiB",
        lambda r: r("size", "size.stripped_bytes") <= 4 * 1048576)
    return out


def met_text(r):
    if r["met"] == "-":
        return "—"
    if r["met"] is None:
        return f"n/a ({r['runs_met']}/{r['runs']} runs have the figures and meet it)"
    if r["met"]:
        return f"yes ({r['runs_met']}/{r['runs']} runs)"
    return f"**no** ({r['runs_met']}/{r['runs']} runs meet it)"


def table(rs):
    lines = ["| what | measured | alternative / control | target | met in every run |", "|---|---|---|---|---|"]
    for r in rs:
        lines.append(f"| {r['what']} | {r['measured']} | {r['alternative']} | {r['target']} | {met_text(r)} |")
    return "\n".join(lines)


# Headline figures, one column per run.
PER_RUN = [
    ("touch / floor", "hot", "touch_over_floor.median_ratio", 2),
    ("touch scaling, 2 threads", "hot", "threads.touch.scaling", 2),
    ("own-session control scaling", "hot", "threads.touch_own.scaling", 2),
    ("touch scaling / control", "hot", "threads.touch_over_own.scaling_ratio", 3),
    ("`bill_session_id` (ns)", "hot", "id.median_ns", 1),
    ("id in flight / before (median of cycles)", "hot", "id.inflight_over_idle", 2),
    ("id in flight / idle session (median of cycles)", "hot", "id.inflight_over_ctl", 2),
    ("`bill_call` / plain ureq", "call", "call.lib_over_ureq.median_ratio", 2),
    ("Python: Timer re-arm / `bill_touch` via ctypes", "pyhost", "py.rearm_over_touch.median", 0),
    ("Python: requests / `bill_call` via ctypes", "pyhost", "py.call.requests_over_bill_call.median", 2),
    ("heap per idle session (B)", "sessions", "sessions.heap_per_session_bytes", 0),
    ("renewal, spread: parallel, % before deadline", "renew_parallel", "renew.parallel.spread.before_deadline_pct", 1),
    ("renewal, spread: parallel, max lateness (ms)", "renew_parallel", "renew.parallel.spread.late_max_ms", 0),
    ("renewal, spread: serial, % before deadline", "renew_serial", "renew.serial.spread.before_deadline_pct", 1),
    ("renewal, one org: parallel, % before deadline", "renew_parallel", "renew.parallel.one_org.before_deadline_pct", 1),
    ("renewal, one org: parallel drain (ms)", "renew_parallel", "renew.parallel.one_org.drain_ms", 0),
    ("renewal, one org: serial drain (ms)", "renew_serial", "renew.serial.one_org.drain_ms", 0),
    ("fleet: sign-ins with the store", "fleet", "fleet.sign_ins.store", 0),
    ("fleet: sign-ins without the store", "fleet", "fleet.sign_ins.local", 0),
    ("fleet: `bill_call` fleet / local", "fleet", "fleet.call.fleet_over_local", 2),
    ("fleet: touch fleet / local", "fleet", "fleet.touch.fleet_over_local", 2),
    ("fleet: id fleet / local", "fleet", "fleet.id.fleet_over_local", 2),
]


def per_run_table(runs):
    head = "| figure | " + " | ".join(f"run {i + 1}" for i in range(len(runs))) + " |"
    lines = [head, "|---|" + "---|" * len(runs)]
    for label, frag, key, nd in PER_RUN:
        lines.append(f"| {label} | " + " | ".join(num(r(frag, key), "", nd) for r in runs) + " |")
    return "\n".join(lines)


def header(meta, nruns):
    load = f"load average {meta.get('start.loadavg', '?')} at the start, {meta.get('end.loadavg', '?')} at the end"
    try:
        busy = max(float(x) for x in (meta.get("start.loadavg", "0").split() + meta.get("end.loadavg", "0").split()))
    except ValueError:
        busy = 0.0
    nproc = meta.get("nproc") or 2
    partial = "; ".join(f"{k}: {v.get('start.time', '?')}, load {v.get('start.loadavg', '?')}"
                        for k, v in meta.get("partial_runs", {}).items())
    h = (f"Command: `{meta.get('command', '?')}` ({nruns} runs). Commit {meta.get('git_rev', '?')}"
         + (" (src/ had uncommitted changes)" if meta.get("src_uncommitted") else "")
         + f". {meta.get('start.time', '?')} to {meta.get('end.time', '?')}. Machine: {meta.get('nproc', '?')} CPUs, "
         + f"{meta.get('cpu_model', '?')}, kernel {meta.get('kernel', '?')}; {load}.")
    if busy > nproc:
        h += (f" **The machine was busy** (load above its {nproc} CPUs, from other builds): absolute times are "
              "inflated and noisier than on a quiet machine; ratios are taken side by side, but a busy machine "
              "also widens their spread.")
    if partial:
        h += f" Partial runs since (scripts/bench.sh --only): {partial}."
    return h


def main():
    d = sys.argv[1] if len(sys.argv) > 1 else "build/bench"
    meta, figs = load(d)
    runs = [Run(f) for f in figs]
    rs = rows(runs)
    with open(os.path.join(d, "results.json"), "w") as f:
        json.dump({"meta": meta, "runs": figs, "rows": rs}, f, indent=1)
    head = header(meta, len(runs))
    md = table(rs)
    per = per_run_table(runs)
    with open(os.path.join(d, "table.md"), "w") as f:
        f.write(head + "\n\n" + md + "\n\n" + per + "\n")
    print()
    print(head)
    print()
    print(md)
    print()
    print(per)
    print(f"\nresults: {os.path.join(d, 'results.json')}")
    out = os.environ.get("BENCH_MD", os.path.join(HERE, "..", "BENCHMARKS.md"))
    if out != "-":
        with open(os.path.join(HERE, "..", "benches", "BENCHMARKS.md.in")) as f:
            tpl = f.read()
        doc = tpl.replace("@HEADER@", head).replace("@TABLE@", md).replace("@PER_RUN@", per)
        with open(out, "w") as f:
            f.write(doc)
        print(f"wrote {os.path.normpath(out)}")


if __name__ == "__main__":
    main()
