"""Python `requests.Session` doing what bill_call does: GET /v3/vendors?max=20
with devKey and sessionId headers, keep-alive, against the emulator. Also
times requests' sign-in POST. Writes flat JSON to argv[1]."""
import os
import statistics
import sys
import time

import requests

from benchlib import emit


def pct(v, p):
    v = sorted(v)
    return v[round(p / 100 * (len(v) - 1))]


def main():
    out = sys.argv[1]
    prefix = sys.argv[2] if len(sys.argv) > 2 else "py"
    n = int(os.environ.get("BENCH_PY_CALL_N", "1000"))
    n_login = int(os.environ.get("BENCH_PY_LOGIN_N", "200"))
    base = os.environ["BILL_V3_BASE_URL"]
    dev_key = os.environ["BILL_DEV_KEY"]
    login = {
        "username": os.environ["BILL_USER"],
        "password": os.environ["BILL_PASSWORD"],
        "organizationId": os.environ["BILL_ORG_ID"],
        "devKey": dev_key,
    }
    s = requests.Session()
    hdr = {"accept": "application/json"}

    def sign_in():
        r = s.post(f"{base}/v3/login", json=login, headers=hdr)
        assert r.status_code == 200, r.text
        return r.json()["sessionId"]

    sid = sign_in()
    url = f"{base}/v3/vendors?max=20"
    headers = {"accept": "application/json", "devKey": dev_key, "sessionId": sid}

    def call():
        r = s.get(url, headers=headers)
        assert r.status_code == 200, r.status_code
        return len(r.content)

    for _ in range(50):
        call()
    calls = []
    for _ in range(n):
        t0 = time.perf_counter_ns()
        call()
        calls.append((time.perf_counter_ns() - t0) / 1e3)
    logins = []
    for _ in range(n_login):
        t0 = time.perf_counter_ns()
        sign_in()
        logins.append((time.perf_counter_ns() - t0) / 1e3)
    res = {
        f"{prefix}.call.requests.median_us": statistics.median(calls),
        f"{prefix}.call.requests.p90_us": pct(calls, 90),
        f"{prefix}.login.requests.median_us": statistics.median(logins),
        f"{prefix}.requests_version": float(".".join(requests.__version__.split(".")[:2])),
    }
    emit(res, out)


if __name__ == "__main__":
    main()
