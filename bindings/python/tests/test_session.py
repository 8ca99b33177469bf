"""Sessions against the emulator: sign-in, ids, calls, recovery, close."""

from __future__ import annotations

import gc
import threading
import time
from datetime import timedelta

import pytest

import billsession
from billsession import ClosedError, Event, EventKind, Settings, State

from conftest import DEMO, Emulator, creds, run_in_threads, wait_for
from emu_checks import emu_now, valid_since

# An emulator idle timeout no pause of this process comes near: for tests that
# count sign-ins or check ids without meaning to test idling out.
LONG_IDLE_MS = 600_000
# Longest wait for something that should come about (a busy 2-core machine).
WAIT = 60.0


def test_v3_sign_in_and_call(emu: Emulator) -> None:
    emu.config(idle_timeout_ms=LONG_IDLE_MS)
    with billsession.login(**creds(emu, api=3)) as s:
        assert s.api == billsession.Api.V3
        sid = s.id
        assert sid
        info = emu.session(sid)
        assert info["known"] and info["valid"] and info["api"] == "v3"
        assert s.state == State.ACTIVE
        assert s.trusted is False
        assert s.last_renew_error is None
        reply = s.call("GET", "vendors")
        assert reply["path"] == "/connect/v3/vendors"
        http, raw = s.call_raw("GET", "/v3/vendors?max=2")
        assert http == 200 and b'"path":"/connect/v3/vendors"' in raw
        echoed = s.call("POST", "vendors", {"name": "Acme", "n": [1, 2]})
        assert echoed["echo"] == {"name": "Acme", "n": [1, 2]}
        assert s.call("POST", "vendors", b'{"a":1}')["echo"] == {"a": 1}
        assert s.call("POST", "vendors", '{"b":2}')["echo"] == {"b": 2}
        s.touch()
        s.logout()
    assert emu.session(sid)["valid"] is False
    assert emu.stats()["logins_v3"] == 1


def test_v2_sign_in_and_call(emu: Emulator) -> None:
    emu.config(idle_timeout_ms=LONG_IDLE_MS)
    with billsession.login(**creds(emu, api=2)) as s:
        assert s.api == billsession.Api.V2
        sid = s.id
        info = emu.session(sid)
        assert info["valid"] and info["api"] == "v2"
        reply = s.call(None, "List/Vendor", {})
        assert reply["response_status"] == 0
        assert reply["response_data"]["endpoint"] == "List/Vendor.json"
        assert s.call("POST", "Crud/Read/Vendor.json", {"id": "x"})["response_data"]["echo"] == {"id": "x"}
        s.logout()
    assert emu.stats()["logins_v2"] == 1


def test_login_with_settings_object(emu: Emulator) -> None:
    emu.config(idle_timeout_ms=LONG_IDLE_MS)
    settings = Settings(**creds(emu), request_timeout=timedelta(seconds=5), connect_timeout=2.5)
    text = repr(settings)
    for secret in (DEMO["password"], DEMO["dev_key"], DEMO["user_name"]):
        assert secret not in text
    with billsession.login(settings) as s:
        assert emu.session(s.id)["valid"]
    with pytest.raises(TypeError):
        billsession.login(settings, api=2)  # type: ignore[call-overload]
    with pytest.raises(TypeError):
        billsession.login(user_name="x")  # type: ignore[call-overload]


def test_bytearray_secrets_are_wiped(emu: Emulator) -> None:
    password = bytearray(DEMO["password"], "ascii")
    dev_key = bytearray(DEMO["dev_key"], "ascii")
    user = bytearray(DEMO["user_name"], "ascii")
    kw = creds(emu, password=password, dev_key=dev_key, user_name=user)
    with billsession.login(**kw) as s:
        assert s.id
    for buf in (password, dev_key, user):
        assert buf == bytearray(len(buf)), "bytearray secret was not zeroed after login"
    # Also when the sign-in fails.
    wrong = bytearray(b"not-the-password")
    with pytest.raises(billsession.AuthError):
        billsession.login(**creds(emu, password=wrong))
    assert wrong == bytearray(len(wrong))
    # str and bytes secrets work too (and cannot be wiped: documented).
    with billsession.login(**creds(emu, password=DEMO["password"].encode())) as s:
        assert s.id


def test_ids_from_16_threads_during_renewals(emu: Emulator) -> None:
    """16 threads read ids while libbill renews every ~0.8 s: every id is non-empty and valid at the emulator."""
    emu.config(idle_timeout_ms=1500)
    renewed = threading.Event()
    renewals: list[Event] = []

    def on_event(ev: Event) -> None:
        if ev.kind == EventKind.RENEWED:
            renewals.append(ev)
            if len(renewals) >= 3:
                renewed.set()

    seen: set[str] = set()
    failures: list[str] = []
    reads = [0]
    lock = threading.Lock()
    stop = threading.Event()
    with billsession.login(**creds(emu, idle_timeout=1.5, renew_margin=0.7, on_event=on_event)) as s:

        def reader() -> None:
            last = ""
            while not stop.is_set():
                since = emu_now(emu)
                try:
                    sid = s.id
                except billsession.BillError as e:
                    failures.append(repr(e))
                    return
                if not sid:
                    failures.append("empty id")
                    return
                if sid != last:
                    # A newly seen id must have been live at the emulator when it was read.
                    if not valid_since(emu, sid, since):
                        failures.append(f"id not valid at the emulator when read: {emu.session(sid)}")
                        return
                    last = sid
                    with lock:
                        seen.add(sid)
                with lock:
                    reads[0] += 1
                time.sleep(0.001)

        threads = [threading.Thread(target=reader) for _ in range(16)]
        for t in threads:
            t.start()
        try:
            # Three renewals, and three distinct ids read (what is asserted below).
            wait_for(
                lambda: failures or (renewed.is_set() and len(seen) >= 3),
                timeout=WAIT,
                what=f"3 renewals and 3 distinct ids read (renewals {len(renewals)}, ids {len(seen)})",
            )
        finally:
            stop.set()
            for t in threads:
                t.join()
        assert not failures, failures[:5]
        assert s.state in (State.ACTIVE, State.RENEWING)
    assert len(seen) >= 3, f"threads saw {len(seen)} distinct ids over {len(renewals)} renewals"
    issued = set(emu.stats()["sessions_issued"])
    assert seen <= issued
    assert reads[0] > 16


def test_call_recovers_from_server_expired_session_with_one_login(emu: Emulator) -> None:
    emu.config(idle_timeout_ms=LONG_IDLE_MS)
    with billsession.login(**creds(emu)) as s:
        old = s.id
        before = emu.stats()["logins"]
        emu.expire(old)
        assert emu.session(old)["valid"] is False
        assert s.call("GET", "vendors")["path"] == "/connect/v3/vendors"
        assert emu.stats()["logins"] == before + 1
        new = s.id
        assert new != old and emu.session(new)["valid"]


def test_concurrent_calls_share_one_recovery_login(emu: Emulator) -> None:
    emu.config(idle_timeout_ms=LONG_IDLE_MS)
    with billsession.login(**creds(emu)) as s:
        before = emu.stats()["logins"]
        emu.expire(s.id)
        errors = run_in_threads(8, lambda: s.call("GET", "vendors"))
        assert not errors, errors
        assert emu.stats()["logins"] == before + 1


def test_renew_installs_a_new_id(emu: Emulator) -> None:
    emu.config(idle_timeout_ms=LONG_IDLE_MS)
    with billsession.login(**creds(emu)) as s:
        old = s.id
        s.renew()
        assert s.id != old
        assert emu.session(s.id)["valid"]


def test_double_close_and_context_manager(emu: Emulator) -> None:
    with billsession.login(**creds(emu)) as s:
        assert not s.closed
    assert s.closed
    s.close()
    s.close()
    with pytest.raises(ClosedError):
        _ = s.id
    with pytest.raises(ClosedError):
        s.touch()
    with pytest.raises(ClosedError):
        s.call("GET", "vendors")
    with pytest.raises(ClosedError):
        _ = s.state
    assert "closed" in repr(s)


def test_close_from_many_threads_at_once(emu: Emulator) -> None:
    s = billsession.login(**creds(emu))
    errors = run_in_threads(8, s.close)
    assert not errors
    assert s.closed


def test_close_waits_for_a_call_in_flight(emu: Emulator) -> None:
    s = billsession.login(**creds(emu))
    emu.fault("delay", target="calls", delay_ms=1000)
    calls = emu.stats()["calls"]
    result: list[object] = []

    def caller() -> None:
        try:
            result.append(s.call("GET", "vendors"))
        except BaseException as e:  # pragma: no cover - reported below
            result.append(e)

    # The emulator holds the reply for 1 s after the call arrives, and the call
    # arrives after `before` (emulator ms): a close() that waits for the call
    # returns no earlier than before + 1000, however this thread is scheduled.
    before = emu_now(emu)
    t = threading.Thread(target=caller)
    t.start()
    wait_for(lambda: emu.stats()["calls"] > calls, timeout=WAIT, what="the call to reach the emulator")
    s.close()  # must wait: freeing the session under the running call is undefined behaviour
    closed_at = emu_now(emu)
    t.join()
    assert isinstance(result[0], dict), result
    assert closed_at >= before + 1000, f"close() returned {closed_at - before} ms after the call started; it is held 1000 ms"
    with pytest.raises(ClosedError):
        s.touch()


def test_del_frees_the_session(emu: Emulator) -> None:
    events: list[Event] = []
    s = billsession.login(**creds(emu, on_event=events.append))
    assert s.id
    del s
    gc.collect()
    assert [e.kind for e in events] == [EventKind.CLOSED]


def test_logout_then_methods_raise_closed(emu: Emulator) -> None:
    s = billsession.login(**creds(emu))
    sid = s.id
    s.logout()
    assert s.closed
    assert s.state == State.CLOSED
    assert emu.session(sid)["end_reason"] is not None
    with pytest.raises(ClosedError) as ei:
        _ = s.id
    assert ei.value.status == billsession.Status.ERR_CLOSED
    with pytest.raises(ClosedError):
        s.logout()
    with pytest.raises(ClosedError):
        s.renew()
    s.close()


def test_session_cannot_be_pickled(emu: Emulator) -> None:
    import pickle

    with billsession.login(**creds(emu)) as s:
        with pytest.raises(TypeError):
            pickle.dumps(s)
        assert s.id not in repr(s)


def test_id_buffer_grows_on_buffer_too_small(emu: Emulator) -> None:
    with billsession.login(**creds(emu)) as s:
        full = s.id
        s._id_capacity = 4  # far too small: bill_session_id answers BUFFER_TOO_SMALL with the size needed
        assert s.id == full
        s._id_capacity = len(full)  # one byte short (the NUL)
        assert s.id == full


def test_empty_secret_is_rejected(emu: Emulator) -> None:
    with pytest.raises((billsession.NullArgError, billsession.InvalidArgError)):
        billsession.login(**creds(emu, password=""))
