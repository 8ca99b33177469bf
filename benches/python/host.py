"""What a Python host pays, measured in one process with every pair interleaved:

- per API call made with your own HTTP client: `bill_touch` through ctypes
  against BILL's sample, a `threading.Timer` cancelled and started again;
- a call: `requests.Session` GET against `bill_call` through ctypes, same
  endpoint (GET /v3/vendors?max=20), keep-alive both;
- a sign-in: `requests` POST /v3/login against `bill_login` through ctypes.

Order rotates every round, so both sides see the same machine and the same
gaps between round trips. Writes flat JSON to argv[1]. Runs under
scripts/with-emulator.sh; libbill from BILL_LIB_SO (default target/release).
"""
import ctypes as C
import os
import statistics
import sys
import threading
import time

import requests

from benchlib import emit

OPTS, SESS, RESP = C.c_void_p, C.c_void_p, C.c_void_p


def load():
    lib = C.CDLL(os.environ.get("BILL_LIB_SO", "target/release/libbill.so"))
    sig = {
        "bill_options_new": [C.POINTER(OPTS)],
        "bill_options_free": [OPTS],
        "bill_options_set_user_name": [OPTS, C.c_char_p, C.c_size_t],
        "bill_options_set_password": [OPTS, C.c_char_p, C.c_size_t],
        "bill_options_set_dev_key": [OPTS, C.c_char_p, C.c_size_t],
        "bill_options_set_org_id": [OPTS, C.c_char_p],
        "bill_options_set_api_version": [OPTS, C.c_uint32],
        "bill_options_set_base_url": [OPTS, C.c_char_p],
        "bill_options_set_request_timeout_ms": [OPTS, C.c_uint64],
        "bill_options_set_sign_in_budget": [OPTS, C.c_uint32, C.c_uint64],
        "bill_login": [OPTS, C.POINTER(SESS)],
        "bill_touch": [SESS],
        "bill_call": [SESS, C.c_char_p, C.c_char_p, C.c_char_p, C.c_size_t, C.POINTER(RESP)],
        "bill_response_body": [RESP, C.POINTER(C.c_void_p), C.POINTER(C.c_size_t)],
        "bill_response_free": [RESP],
        "bill_session_free": [SESS],
    }
    for name, args in sig.items():
        f = getattr(lib, name)
        f.argtypes = args
        f.restype = None if name.endswith("_free") else C.c_uint32
    return lib


def ok(st, what):
    if st != 0:
        raise SystemExit(f"{what}: status {st}")


def pct(v, p):
    v = sorted(v)
    return v[round(p / 100 * (len(v) - 1))]


def spread(res, key, v, unit_scale=1.0):
    res[f"{key}.median"] = statistics.median(v) * unit_scale
    res[f"{key}.p10"] = pct(v, 10) * unit_scale
    res[f"{key}.p90"] = pct(v, 90) * unit_scale


def interleave(kinds, rounds, warm):
    """Runs each callable once per round in a rotating order; seconds per call by kind."""
    t = [[] for _ in kinds]
    for i in range(warm + rounds):
        for j in range(len(kinds)):
            k = (i + j) % len(kinds)
            t0 = time.perf_counter_ns()
            kinds[k]()
            if i >= warm:
                t[k].append(time.perf_counter_ns() - t0)
    return t


def main():
    out = sys.argv[1]
    env = os.environ
    base, dev_key = env["BILL_V3_BASE_URL"], env["BILL_DEV_KEY"]
    lib = load()

    o = OPTS()
    ok(lib.bill_options_new(C.byref(o)), "bill_options_new")
    for setter, var in (("user_name", "BILL_USER"), ("password", "BILL_PASSWORD"), ("dev_key", "BILL_DEV_KEY")):
        v = env[var].encode()
        ok(getattr(lib, f"bill_options_set_{setter}")(o, v, len(v)), setter)
    ok(lib.bill_options_set_org_id(o, env["BILL_ORG_ID"].encode()), "org")
    ok(lib.bill_options_set_api_version(o, 3), "api")
    ok(lib.bill_options_set_base_url(o, base.encode()), "base url")
    ok(lib.bill_options_set_request_timeout_ms(o, 10000), "timeout")
    ok(lib.bill_options_set_sign_in_budget(o, 4000000000, 3600000), "budget")
    s = SESS()
    ok(lib.bill_login(o, C.byref(s)), "bill_login")
    res = {}

    # ---- touch vs Timer re-arm, in interleaved batches ----
    idle = 35 * 60 - 60
    timer = [threading.Timer(idle, lambda: None)]
    timer[0].daemon = True
    timer[0].start()
    touch = lib.bill_touch
    nt, nr = int(env.get("BENCH_PY_TOUCH_BATCH", "200")), int(env.get("BENCH_PY_TIMER_BATCH", "20"))

    def touches():
        for _ in range(nt):
            touch(s)

    def rearms():
        for _ in range(nr):
            timer[0].cancel()
            timer[0] = threading.Timer(idle, lambda: None)
            timer[0].daemon = True
            timer[0].start()

    rounds = int(env.get("BENCH_PY_TOUCH_ROUNDS", "400"))
    t_touch, t_rearm = interleave([touches, rearms], rounds, 20)
    timer[0].cancel()
    per_touch = [x / nt for x in t_touch]
    per_rearm = [x / nr for x in t_rearm]
    ratio = [r / t for r, t in zip(per_rearm, per_touch)]
    spread(res, "py.touch_ctypes_ns", per_touch)
    spread(res, "py.timer_rearm_ns", per_rearm)
    spread(res, "py.rearm_over_touch", ratio)
    res["py.touch.rounds"] = rounds

    # ---- requests vs bill_call, one of each per round ----
    sess = requests.Session()
    url = f"{base}/v3/vendors?max=20"
    sid = None
    login_body = {"username": env["BILL_USER"], "password": env["BILL_PASSWORD"],
                  "organizationId": env["BILL_ORG_ID"], "devKey": dev_key}

    def req_login():
        r = sess.post(f"{base}/v3/login", json=login_body, headers={"accept": "application/json"})
        assert r.status_code == 200, r.text
        return r.json()["sessionId"]

    sid = req_login()
    headers = {"accept": "application/json", "devKey": dev_key, "sessionId": sid}

    def req_call():
        r = sess.get(url, headers=headers)
        assert r.status_code == 200, r.status_code
        return len(r.content)

    path = b"vendors?max=20"

    def lib_call():
        r = RESP()
        ok(lib.bill_call(s, b"GET", path, None, 0, C.byref(r)), "bill_call")
        body, n = C.c_void_p(), C.c_size_t()
        ok(lib.bill_response_body(r, C.byref(body), C.byref(n)), "bill_response_body")
        C.string_at(body, n.value)  # what a host does with the reply: copy it out
        lib.bill_response_free(r)

    n = int(env.get("BENCH_PY_CALL_N", "1000"))
    t_req, t_lib = interleave([req_call, lib_call], n, 50)
    ratio = [a / b for a, b in zip(t_req, t_lib)]
    spread(res, "py.call.requests_us", t_req, 1e-3)
    spread(res, "py.call.bill_call_us", t_lib, 1e-3)
    spread(res, "py.call.requests_over_bill_call", ratio)
    res["py.call.requests_over_bill_call.ratio_of_medians"] = statistics.median(t_req) / statistics.median(t_lib)
    res["py.call.n"] = n

    signed_in = []

    def lib_login():
        x = SESS()
        ok(lib.bill_login(o, C.byref(x)), "bill_login")
        signed_in.append(x)

    n = int(env.get("BENCH_PY_LOGIN_N", "200"))
    t_req, t_lib = interleave([req_login, lib_login], n, 20)
    for x in signed_in:
        lib.bill_session_free(x)
    spread(res, "py.login.requests_us", t_req, 1e-3)
    spread(res, "py.login.bill_login_us", t_lib, 1e-3)
    spread(res, "py.login.requests_over_bill_login", [a / b for a, b in zip(t_req, t_lib)])
    res["py.login.n"] = n
    res["py.requests_version"] = float(".".join(requests.__version__.split(".")[:2]))

    lib.bill_session_free(s)
    lib.bill_options_free(o)
    emit(res, out)


if __name__ == "__main__":
    main()
