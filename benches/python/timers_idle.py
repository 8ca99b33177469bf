"""BILL's sample approach for N idle sessions: one threading.Timer (one OS
thread) per session. Measures threads, memory per session and how late the
timers fire when their deadlines are spread like bill_bench's renewals.
Writes JSON to argv[1]."""
import os
import statistics
import sys
import threading
import time

from benchlib import emit


def vm(field):
    with open("/proc/self/status") as f:
        for line in f:
            if line.startswith(field):
                return int(line.split()[1]) * 1024
    return 0


def main():
    n = int(os.environ.get("BENCH_SESSIONS", "10000"))
    pace = int(os.environ.get("BENCH_SESSION_PACE_US", "1000")) / 1e6
    gap = 3.0
    fired = [0.0] * n
    due = [0.0] * n
    done = threading.Semaphore(0)

    def fire(i):
        fired[i] = time.monotonic()
        done.release()

    threads0 = threading.active_count()
    rss0 = vm("VmRSS:")
    t_create = time.monotonic()
    # Like bill_bench: "sign in" one session every `pace`, each due a fixed
    # time after its own start, so the deadlines are spaced the same way.
    renew_after = n * pace + gap
    timers = []
    try:
        for i in range(n):
            wait = t_create + i * pace - time.monotonic()
            if wait > 0:
                time.sleep(wait)
            now = time.monotonic()
            due[i] = now + renew_after
            t = threading.Timer(renew_after, fire, args=(i,))
            t.daemon = True
            t.start()
            timers.append(t)
    except RuntimeError as e:  # cannot start new thread
        print(f"  could not start timer {len(timers)}: {e}")
    created_s = time.monotonic() - t_create
    m = len(timers)
    threads1 = threading.active_count()
    rss1 = vm("VmRSS:")
    for _ in range(m):
        if not done.acquire(timeout=max(1.0, due[-1] - time.monotonic() + 30)):
            break
    late = [(fired[i] - due[i]) * 1e3 for i in range(m) if fired[i]]
    late.sort()
    res = {
        "py.timers.n": m,
        "py.timers.threads_added": threads1 - threads0,
        "py.timers.rss_per_session_bytes": (rss1 - rss0) / max(m, 1),
        "py.timers.create_s": created_s,
        "py.timers.late_median_ms": statistics.median(late) if late else -1,
        "py.timers.late_max_ms": late[-1] if late else -1,
        "py.timers.within_50ms": sum(1 for x in late if x <= 50),
    }
    emit(res, sys.argv[1])


if __name__ == "__main__":
    main()
