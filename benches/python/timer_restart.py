"""BILL's sample approach to staying signed in: a `threading.Timer` that is
cancelled and started again on every API call (each start is a new thread).
Times one restart, the equivalent of one bill_touch. Writes JSON to argv[1]."""
import os
import statistics
import sys
import threading
import time

from benchlib import emit


def renew():
    pass


def main():
    n = int(os.environ.get("BENCH_PY_TIMER_N", "3000"))
    idle = 35 * 60 - 60
    t = threading.Timer(idle, renew)
    t.daemon = True
    t.start()
    times = []
    for i in range(n + 100):
        t0 = time.perf_counter_ns()
        t.cancel()
        t = threading.Timer(idle, renew)
        t.daemon = True
        t.start()
        if i >= 100:
            times.append((time.perf_counter_ns() - t0) / 1e3)
    t.cancel()
    res = {"py.timer_restart.median_us": statistics.median(times)}
    emit(res, sys.argv[1], "us")


if __name__ == "__main__":
    main()
