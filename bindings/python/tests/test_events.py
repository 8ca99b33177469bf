"""Event callbacks: delivery from libbill's background thread, failures, lifetime."""

from __future__ import annotations

import ctypes
import sys
import threading
import time
from typing import Any

import pytest

import billsession
from billsession import Event, EventKind, State, Status, _ffi

from conftest import DEMO, Emulator, creds, wait_for
from emu_checks import id_valid_when_read


def poll(cond: Any, timeout: float) -> bool:
    """True as soon as ``cond()`` holds, False if it still does not after ``timeout`` seconds."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if cond():
            return True
        time.sleep(0.02)
    return bool(cond())


# Longest wait for something that should come about (a busy 2-core machine); passing waits end early.
WAIT = 60.0


class Recorder:
    def __init__(self) -> None:
        self.events: list[tuple[Event, str]] = []
        self.lock = threading.Lock()

    def __call__(self, ev: Event) -> None:
        with self.lock:
            self.events.append((ev, threading.current_thread().name))

    def kinds(self) -> list[int]:
        with self.lock:
            return [e.kind for e, _ in self.events]

    def count(self, kind: EventKind) -> int:
        return self.kinds().count(kind)


def test_renewed_events_arrive_from_the_background_thread(emu: Emulator) -> None:
    emu.config(idle_timeout_ms=1500)
    rec = Recorder()
    with billsession.login(**creds(emu, idle_timeout=1.5, renew_margin=0.7, on_event=rec)) as s:
        first = s.id
        wait_for(lambda: rec.count(EventKind.RENEWED) >= 2, timeout=WAIT, what="two RENEWED events")
        assert s.id != first
        assert id_valid_when_read(emu, lambda: s.id)
        with rec.lock:
            renewed = [(e, t) for e, t in rec.events if e.kind == EventKind.RENEWED]
        for ev, thread in renewed:
            assert ev.status == Status.OK and ev.detail == ""
            assert thread != threading.main_thread().name
    assert rec.kinds()[-1] == EventKind.CLOSED


def test_a_raising_callback_does_not_break_later_events(emu: Emulator, monkeypatch: pytest.MonkeyPatch) -> None:
    emu.config(idle_timeout_ms=1500)
    reported: list[Any] = []
    monkeypatch.setattr(sys, "unraisablehook", lambda args: reported.append(args))
    calls = [0]

    def on_event(ev: Event) -> None:
        calls[0] += 1
        raise RuntimeError(f"callback failure #{calls[0]}")

    with billsession.login(**creds(emu, idle_timeout=1.5, renew_margin=0.7, on_event=on_event)) as s:
        # The callback counts before it raises; the hook reports after: wait on the reports, which are asserted.
        wait_for(lambda: len(reported) >= 3, timeout=WAIT, what="three reported failures of the raising callback")
        assert calls[0] >= 3
        assert s.state in (State.ACTIVE, State.RENEWING)
        assert id_valid_when_read(emu, lambda: s.id)
    assert len(reported) >= 3
    assert isinstance(reported[0].exc_value, RuntimeError)


def test_keepalive_mode_keeps_the_same_id(emu: Emulator) -> None:
    emu.config(idle_timeout_ms=1500)
    rec = Recorder()
    with billsession.login(**creds(emu, refresh="keepalive", idle_timeout=1.5, renew_margin=0.7, on_event=rec)) as s:
        sid = s.id
        logins = emu.stats()["logins"]
        wait_for(lambda: rec.count(EventKind.KEPT_ALIVE) >= 2, timeout=WAIT, what="two KEPT_ALIVE events")
        assert id_valid_when_read(emu, lambda: s.id)
        assert s.id == sid
        assert emu.stats()["logins"] == logins
        assert emu.stats()["keepalives"] >= 2


def test_renew_failed_then_recovered(emu: Emulator) -> None:
    rec = Recorder()
    with billsession.login(**creds(emu, idle_timeout=1.5, renew_margin=0.7, connect_timeout=0.5, on_event=rec)) as s:
        emu.fault("refuse")
        wait_for(lambda: rec.count(EventKind.RENEW_FAILED) >= 1, timeout=WAIT, what="RENEW_FAILED")
        with rec.lock:
            failed = next(e for e, _ in rec.events if e.kind == EventKind.RENEW_FAILED)
        assert failed.status == Status.ERR_NETWORK and failed.detail
        err = s.last_renew_error
        assert isinstance(err, billsession.NetworkError), repr(err)
        renewed = rec.count(EventKind.RENEWED)
        emu.control("POST", "/_emu/faults", {"mode": "none"})
        wait_for(lambda: rec.count(EventKind.RENEWED) > renewed, timeout=WAIT, what="RENEWED after the fault cleared")
        wait_for(lambda: s.state == State.ACTIVE, timeout=WAIT, what="ACTIVE")
        assert id_valid_when_read(emu, lambda: s.id)


def test_no_event_reaches_python_after_close(emu: Emulator) -> None:
    """A renewal running in the background while its session is closed does not reach on_event afterwards."""
    keeper = billsession.login(**creds(emu))  # keeps libbill's background thread running
    try:
        rec = Recorder()
        s = billsession.login(**creds(emu, idle_timeout=1.0, renew_margin=0.5, on_event=rec))
        attempts = emu.stats()["login_attempts"]
        emu.fault("delay", target="login", delay_ms=1000)
        wait_for(lambda: emu.stats()["login_attempts"] > attempts, timeout=WAIT, what="a background renewal to start")
        s.close()
        closed_at = len(rec.kinds())
        assert rec.kinds()[-1] == EventKind.CLOSED
        # The delayed sign-in completes within ~1 s; give a late event twice that to show up.
        late = poll(lambda: len(rec.kinds()) > closed_at, timeout=2.5)
        assert not late, f"events after CLOSED: {rec.kinds()[closed_at:]}"
    finally:
        keeper.close()


def test_c_callback_not_invoked_after_closed(emu: Emulator) -> None:
    """include/bill.h: CLOSED is the last event, so the binding may drop its C thunk once free returns.

    Regression test: libbill before d5a8891 delivered RENEWED after CLOSED
    when a background renewal was in flight as the session was freed.
    """
    calls: list[tuple[float, int]] = []

    def cb(_ud: Any, kind: int, _status: int, _detail: Any) -> None:
        calls.append((time.monotonic(), kind))

    thunk = _ffi.EVENT_FN(cb)
    lib = _ffi.lib

    def login(with_cb: bool, idle_ms: int = 0, margin_ms: int = 0) -> Any:
        o = _ffi.OptionsP()
        assert lib.bill_options_new(ctypes.byref(o)) == 0
        for fn, v in (
            (lib.bill_options_set_user_name, DEMO["user_name"]),
            (lib.bill_options_set_password, DEMO["password"]),
            (lib.bill_options_set_dev_key, DEMO["dev_key"]),
        ):
            b = v.encode()
            assert fn(o, (ctypes.c_uint8 * len(b)).from_buffer_copy(b), len(b)) == 0
        assert lib.bill_options_set_org_id(o, DEMO["org_id"].encode()) == 0
        assert lib.bill_options_set_base_url(o, emu.v3.encode()) == 0
        if idle_ms:
            assert lib.bill_options_set_idle_timeout_ms(o, idle_ms) == 0
            assert lib.bill_options_set_renew_margin_ms(o, margin_ms) == 0
        if with_cb:
            assert lib.bill_options_set_event_callback(o, thunk, None) == 0
        s = _ffi.SessionP()
        assert lib.bill_login(o, ctypes.byref(s)) == 0
        lib.bill_options_free(o)
        return s

    keeper = login(False)
    try:
        a = login(True, 1000, 500)
        attempts = emu.stats()["login_attempts"]
        emu.fault("delay", target="login", delay_ms=1000)
        wait_for(lambda: emu.stats()["login_attempts"] > attempts, timeout=WAIT, what="a background renewal to start")
        lib.bill_session_free(a)
        assert calls and calls[-1][1] == EventKind.CLOSED
        n = len(calls)
        # The delayed sign-in completes within ~1 s; give a late event twice that to show up.
        poll(lambda: len(calls) > n, timeout=2.5)
        late = [k for _, k in calls[n:]]
    finally:
        lib.bill_session_free(keeper)
    assert not late, f"event(s) {late} delivered after BILL_EVENT_CLOSED and after bill_session_free() returned"


def test_methods_inside_the_closed_event_of_close_raise_closed(emu: Emulator) -> None:
    """The CLOSED that close() triggers comes while the handle is being freed: it must not reach libbill."""
    holder: list[billsession.Session] = []
    seen: list[object] = []

    def on_event(ev: Event) -> None:
        if ev.kind == EventKind.CLOSED:
            for op in (lambda: holder[0].id, lambda: holder[0].state, holder[0].touch):
                try:
                    seen.append(op())
                except billsession.BillError as e:
                    seen.append(e)

    s = billsession.login(**creds(emu, on_event=on_event))
    holder.append(s)
    s.close()
    assert len(seen) == 3
    assert all(isinstance(x, billsession.ClosedError) for x in seen), seen
