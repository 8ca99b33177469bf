#!/usr/bin/env python3
"""Merges the benchmark fragments in DIR/frag/*.json into DIR/results.json
and renders the issue #7 table as Markdown (stdout and DIR/table.md).

    scripts/bench_report.py [DIR]      (default build/bench)

results.json: {"meta": {...}, "figures": {fragment: {key: value}},
"rows": [{"what", "measured", "alternative", "target", "met"}]}.
A row's "met" is true/false when every figure it needs is present, else null.
"""
import json
import os
import statistics
import sys


def load(d):
    frag = os.path.join(d, "frag")
    figures = {}
    for name in sorted(os.listdir(frag)) if os.path.isdir(frag) else []:
        if name.endswith(".json"):
            with open(os.path.join(frag, name)) as f:
                figures[name[:-5]] = json.load(f)
    return figures


class Fig:
    def __init__(self, figures):
        self.f = figures

    def get(self, frag, key):
        return self.f.get(frag, {}).get(key)

    def mean(self, frags, key):
        """Mean of a figure over rounds (fragments call1, call2, ...)."""
        v = [self.f[fr][key] for fr in frags if fr in self.f and key in self.f[fr]]
        return statistics.mean(v) if v else None


def fmt(v, unit="", nd=1):
    if v is None:
        return "n/a"
    return f"{v:,.{nd}f}{unit}"


def all_present(*v):
    return all(x is not None for x in v)


def rows(F):
    out = []
    hot = lambda k: F.get("hot", k)

    # 1. bill_touch, one thread
    touch, floor, ratio = hot("touch.median_ns"), hot("floor.median_ns"), hot("touch_over_floor.median_ratio")
    timer = F.get("timer_restart", "py.timer_restart.median_us")
    out.append({
        "what": "`bill_touch` through the C ABI, one thread",
        "measured": f"median {fmt(touch, ' ns')}; {fmt(ratio, '×', 2)} the floor",
        "alternative": f"floor (coarse clock read + atomic store, C loop): {fmt(floor, ' ns')}; "
                       f"Python `threading.Timer` restart: {fmt(timer, ' µs')}"
                       + (f" ({timer * 1e3 / touch:,.0f}× slower than `bill_touch`)" if all_present(timer, touch) else ""),
        "target": "median ≤ 2× the floor",
        "met": (ratio <= 2.0) if ratio is not None else None,
    })

    # 2. bill_touch, two threads
    sc, sc1, sc2 = hot("threads.touch.scaling"), hot("threads.touch.1t_mops"), hot("threads.touch.2t_mops")
    fp, fs = hot("threads.floor_private.scaling"), hot("threads.floor_shared.scaling")
    own = hot("threads.touch_own.scaling")
    out.append({
        "what": "`bill_touch`, 2 threads on one session",
        "measured": f"{fmt(sc, '×', 2)} one thread ({fmt(sc2, ' M/s', 1)} vs {fmt(sc1, ' M/s', 1)}; "
                    f"best round {fmt(hot('threads.touch.scaling_max'), '×', 2)})",
        "alternative": f"1 thread. Controls, same run: each thread touching its own session {fmt(own, '×', 2)}; "
                       f"floor with a private line per thread {fmt(fp, '×', 2)}; floor writing one shared line {fmt(fs, '×', 2)}",
        "target": "≥ 1.8× one thread",
        "met": (sc >= 1.8) if sc is not None else None,
    })

    # 3. bill_session_id
    idm, mc = hot("id.median_ns"), hot("memcpy.median_ns")
    slow, vs_ctl, observed = hot("id.inflight_over_idle"), hot("id.inflight_over_ctl"), hot("renewal.observed")
    out.append({
        "what": "`bill_session_id` into a caller buffer",
        "measured": f"median {fmt(idm, ' ns')}. While a renewal is held in flight: {fmt(slow, '×', 2)} the time just before "
                    f"(median of {fmt(observed, '', 0)} per-renewal ratios), {fmt(vs_ctl, '×', 2)} an idle session read "
                    f"at the same moments",
        "alternative": f"memcpy of the id: {fmt(mc, ' ns')}",
        "target": "≤ 30 ns median; no slowdown during a renewal (both ratios ≤ 1.10)",
        "met": (idm <= 30 and slow <= 1.10 and vs_ctl <= 1.10 and observed >= 1)
        if all_present(idm, slow, vs_ctl, observed) else None,
    })

    # 4. bill_call
    calls = ["call1", "call2"]
    C = lambda k: F.mean(calls, k)
    lib, ure, raw = C("call.lib.median_us"), C("call.ureq.median_us"), C("call.raw.median_us")
    r_lib = C("call.lib_over_ureq.median_ratio")
    req = F.mean(["py1", "py2"], "py.call.requests.median_us")
    speed = req / lib if all_present(req, lib) else None
    out.append({
        "what": "`bill_call` round trip over loopback keep-alive",
        "measured": f"median {fmt(lib, ' µs')}; {fmt(r_lib, '×', 2)} plain ureq; {fmt(speed, '×', 1)} faster than requests. "
                    f"Through a host name (`localhost`): {fmt(C('call.lib_localhost.median_us'), ' µs')}, "
                    f"{fmt(C('call.lib_localhost_over_ureq_localhost'), '×', 2)} plain ureq through the same name",
        "alternative": f"plain ureq loop {fmt(ure, ' µs')}; Python `requests.Session` {fmt(req, ' µs')}; "
                       f"raw socket floor {fmt(raw, ' µs')}",
        "target": "≤ 1.15× plain ureq; ≥ 3× faster than requests",
        "met": (r_lib <= 1.15 and speed >= 3) if all_present(r_lib, speed) else None,
    })

    # 5. sign-in
    ll, lr, lu = C("login.lib.median_us"), C("login.raw.median_us"), C("login.ureq.median_us")
    lc = F.get("curl", "login.curl.median_us")
    lreq = F.mean(["py1", "py2"], "py.login.requests.median_us")
    out.append({
        "what": "sign-in (`bill_login`)",
        "measured": f"median {fmt(ll, ' µs')}: {fmt(ll - lr if all_present(ll, lr) else None, ' µs')} above the emulator's own time "
                    f"(raw keep-alive POST {fmt(lr, ' µs')}), {fmt(ll - lu if all_present(ll, lu) else None, ' µs')} above plain ureq",
        "alternative": f"`curl` same POST (keep-alive, time_total) {fmt(lc, ' µs')}; plain ureq {fmt(lu, ' µs')}; requests {fmt(lreq, ' µs')}",
        "target": "report the overhead",
        "met": True if all_present(ll, lr) else None,
    })

    # 6. 10,000 idle sessions
    S = lambda k: F.get("sessions", k)
    n, bg, heap, late = S("sessions.n"), S("sessions.background_threads"), S("sessions.heap_per_session_bytes"), S("sessions.renew_late_max_ms")
    renewed, within, added = S("sessions.renewed"), S("sessions.renewed_within_50ms"), S("sessions.threads_added")
    T = lambda k: F.get("timers", k)
    out.append({
        "what": f"{fmt(n, '', 0)} idle sessions",
        "measured": f"{fmt(bg, '', 0)} background thread ({fmt(added, '', 0)} added by the sessions); heap {fmt(heap, ' B', 0)}/session; "
                    f"{fmt(within, '', 0)}/{fmt(n, '', 0)} renewals within 50 ms (latest {fmt(late, ' ms', 1)}, "
                    f"median {fmt(S('sessions.renew_late_median_ms'), ' ms', 2)})",
        "alternative": f"burst of {fmt(S('burst.n'), '', 0)} renewals due at once: last {fmt(S('burst.drain_ms'), ' ms', 0)} late, "
                       f"{fmt(S('burst.within_50ms'), '', 0)} within 50 ms ({fmt(S('burst.renewals_per_s'), '/s', 0)} one after another). "
                       f"One `threading.Timer` per session (BILL's sample): {fmt(T('py.timers.threads_added'), '', 0)} threads, "
                       f"{fmt(T('py.timers.rss_per_session_bytes'), ' B', 0)} RSS/session, latest timer {fmt(T('py.timers.late_max_ms'), ' ms', 1)}",
        "target": "1 background thread; heap ≤ 4 KiB/session; every renewal within 50 ms of its deadline",
        "met": (bg == 1 and added == 0 and heap <= 4096 and renewed == n and within == n)
        if all_present(bg, added, heap, renewed, within, n) else None,
    })

    # 7. size and load
    st, bt = F.get("size", "size.stripped_bytes"), F.get("size", "size.built_bytes")
    ds, db = F.get("dlopen_stripped", "dlopen.stripped.median_us"), F.get("dlopen_built", "dlopen.built.median_us")
    out.append({
        "what": "library size and load",
        "measured": f"stripped `libbill.so` {fmt(st / 1048576 if st else None, ' MiB', 2)}; `dlopen`+`dlsym` {fmt(ds, ' µs', 0)}",
        "alternative": f"as built (symbols kept): {fmt(bt / 1048576 if bt else None, ' MiB', 2)}, dlopen {fmt(db, ' µs', 0)}",
        "target": "size ≤ 4 MiB",
        "met": (st <= 4 * 1048576) if st else None,
    })
    return out


def table(rs):
    lines = ["| what | measured | alternative / limit | target | met |", "|---|---|---|---|---|"]
    for r in rs:
        met = {True: "yes", False: "**no**", None: "n/a"}[r["met"]]
        lines.append(f"| {r['what']} | {r['measured']} | {r['alternative']} | {r['target']} | {met} |")
    return "\n".join(lines)


def main():
    d = sys.argv[1] if len(sys.argv) > 1 else "build/bench"
    figures = load(d)
    meta = {}
    for k in ("meta_start", "meta_end"):
        meta.update(figures.pop(k, {}))
    # Partial runs (scripts/bench.sh --only ...) that replaced some figures since.
    for k in sorted(k for k in figures if k.startswith("meta_only-")):
        run = k[len("meta_"):].rsplit("_", 1)[0]
        meta.setdefault("partial_runs", {}).setdefault(run, {}).update(figures.pop(k))
    # Without a full run, the machine facts come from a partial one.
    for facts in meta.get("partial_runs", {}).values():
        for key in ("nproc", "cpu_model", "cpu_mhz", "kernel"):
            meta.setdefault(key, facts.get(key))
    F = Fig(figures)
    rs = rows(F)
    with open(os.path.join(d, "results.json"), "w") as f:
        json.dump({"meta": meta, "figures": figures, "rows": rs}, f, indent=1)
    md = table(rs)
    partial = "; ".join(f"{k}: {v.get('start.time', '?')}, load {v.get('start.loadavg', '?')}"
                        for k, v in meta.get("partial_runs", {}).items())
    head = (f"Machine: {meta.get('nproc', '?')} CPUs, {meta.get('cpu_model', '?')}, kernel {meta.get('kernel', '?')}; "
            f"load average {meta.get('start.loadavg', '?')} at start, {meta.get('end.loadavg', '?')} at end; "
            f"{meta.get('start.time', '?')}; commit {meta.get('git_rev', '?')}"
            + (" (src/ had uncommitted changes)" if meta.get("src_uncommitted") else "")
            + f"; `{meta.get('command', '?')}`"
            + (f". Partial runs since (scripts/bench.sh --only): {partial}" if partial else ""))
    with open(os.path.join(d, "table.md"), "w") as f:
        f.write(head + "\n\n" + md + "\n")
    print()
    print(head)
    print()
    print(md)
    print(f"\nresults: {os.path.join(d, 'results.json')}")


if __name__ == "__main__":
    main()
