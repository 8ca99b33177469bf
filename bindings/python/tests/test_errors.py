"""Each error class that can be triggered through the public API (plus the mapping itself)."""

from __future__ import annotations

import builtins
import ctypes
import pickle
import socket
from collections.abc import Iterator

import pytest

import billsession
from billsession import Status, _ffi
from billsession._errors import error_from_last

from conftest import DEMO, Emulator, creds, wait_for
from emu_checks import id_valid_when_read


def assert_no_secrets(e: BaseException) -> None:
    text = f"{e} {e!r} {getattr(e, 'message', '')}"
    for secret in (DEMO["password"], DEMO["dev_key"], "not-the-password"):
        assert secret not in text


def test_auth_error_carries_bill_code(emu: Emulator) -> None:
    with pytest.raises(billsession.AuthError) as ei:
        billsession.login(**creds(emu, password="not-the-password"))
    e = ei.value
    assert e.status == Status.ERR_AUTH
    assert e.code == "BDC_1101"
    assert "BDC_1101" in e.message and e.retry_after is None
    assert isinstance(e, billsession.BillError)
    assert_no_secrets(e)


def test_auth_error_unknown_dev_key(emu: Emulator) -> None:
    with pytest.raises(billsession.AuthError) as ei:
        billsession.login(**creds(emu, dev_key="NOT-A-DEVKEY"))
    assert ei.value.code is not None and ei.value.code.startswith("BDC_")
    assert "NOT-A-DEVKEY" not in str(ei.value)


def test_mfa_required_on_untrusted_session(emu: Emulator) -> None:
    with billsession.login(**creds(emu)) as s:
        assert s.trusted is False
        with pytest.raises(billsession.MFARequiredError) as ei:
            s.call("GET", "payments")
        assert ei.value.code == "BDC_1361"
        assert ei.value.status == Status.ERR_MFA_REQUIRED


def test_mfa_trusted_device(emu: Emulator) -> None:
    emu.control("POST", "/_emu/mfa", {"rememberMeId": "remember-123", "device": "pytest-device"})
    remember = bytearray(b"remember-123")
    with billsession.login(**creds(emu, mfa_remember_id=remember, mfa_device="pytest-device")) as s:
        assert s.trusted is True
        s.call("GET", "payments")
    assert remember == bytearray(len(remember))


def test_invalid_arguments(emu: Emulator) -> None:
    # Rejected by libbill (the detail comes from C).
    with pytest.raises(billsession.InvalidArgError) as ei:
        billsession.login(**creds(emu, base_url="ftp://example.com/api"))
    assert ei.value.status == Status.ERR_INVALID_ARG and ei.value.message
    with pytest.raises(billsession.InvalidArgError):
        billsession.login(**creds(emu, idle_timeout=1.0, renew_margin=2.0))
    with pytest.raises(billsession.InvalidArgError):
        billsession.login(**creds(emu, api=4))
    with pytest.raises(billsession.InvalidArgError):
        billsession.login(**creds(emu, max_in_flight=0))
    with billsession.login(**creds(emu)) as s:
        with pytest.raises(billsession.InvalidArgError):
            s.call("TRACE", "vendors")
        with pytest.raises(billsession.InvalidArgError):
            s.call("GET", "../admin")
        with pytest.raises(billsession.InvalidArgError):
            s.call("GET", "vendors\0x")
    # Rejected while converting Python values (no C call possible).
    with pytest.raises(billsession.InvalidArgError):
        billsession.login(**creds(emu, idle_timeout=-1))
    with pytest.raises(billsession.InvalidArgError):
        billsession.login(**creds(emu, refresh="sometimes"))
    with pytest.raises(billsession.InvalidArgError):
        billsession.login(**creds(emu, mfa_device="lonely"))
    with pytest.raises(ValueError):  # InvalidArgError is also a ValueError
        billsession.login(**creds(emu, org_id="a\0b"))
    with pytest.raises(TypeError):
        billsession.login(**creds(emu, password=12345))
    with pytest.raises(TypeError):
        billsession.login(**creds(emu, idle_timeout="10s"))


def test_session_expired_when_idle_past_timeout(emu: Emulator) -> None:
    events: list[billsession.Event] = []
    with billsession.login(**creds(emu, refresh="lazy", idle_timeout=0.3, renew_margin=0.1, on_event=events.append)) as s:
        assert s.id
        # The state changes before the EXPIRED event is delivered: wait for both, as both are asserted.
        wait_for(
            lambda: s.state == billsession.State.EXPIRED and any(e.kind == billsession.EventKind.EXPIRED for e in events),
            timeout=60,
            what="the session to expire and the EXPIRED event",
        )
        with pytest.raises(billsession.SessionExpiredError) as ei:
            _ = s.id
        assert ei.value.status == Status.ERR_SESSION_EXPIRED
        with pytest.raises(billsession.SessionExpiredError):
            s.touch()
        assert any(e.kind == billsession.EventKind.EXPIRED for e in events)
        s.renew()  # the way out of EXPIRED
        assert s.state == billsession.State.ACTIVE
        assert id_valid_when_read(emu, lambda: s.id)


def test_closed_error_after_logout(emu: Emulator) -> None:
    s = billsession.login(**creds(emu))
    s.logout()
    for op in (lambda: s.id, s.touch, s.renew, lambda: s.call("GET", "vendors"), s.logout):
        with pytest.raises(billsession.ClosedError):
            op()
    s.close()


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def test_network_error(emu: Emulator) -> None:
    with pytest.raises(billsession.NetworkError) as ei:
        billsession.login(**creds(emu, base_url=f"http://127.0.0.1:{_free_port()}/connect", connect_timeout=2))
    assert ei.value.status == Status.ERR_NETWORK


def test_timeout_error(emu: Emulator) -> None:
    emu.fault("delay", target="login", delay_ms=2000)
    with pytest.raises(billsession.BillTimeoutError) as ei:
        billsession.login(**creds(emu, request_timeout=0.3))
    assert isinstance(ei.value, builtins.TimeoutError)
    assert ei.value.status == Status.ERR_TIMEOUT


def test_server_protocol_and_too_large_errors(emu: Emulator) -> None:
    with billsession.login(**creds(emu, max_response_bytes=64 * 1024)) as s:
        emu.fault("http500", target="calls")
        with pytest.raises(billsession.ServerError):
            s.call("GET", "vendors")
        emu.fault("malformed", target="calls")
        with pytest.raises(billsession.ProtocolError):
            s.call("GET", "vendors")
        emu.fault("huge_body", target="calls", count=1)
        with pytest.raises(billsession.ResponseTooLargeError):
            s.call("GET", "vendors")


def test_rate_limited_by_client_budget(emu: Emulator) -> None:
    # A devKey of its own, so the process-wide budget of the demo devKey is untouched.
    emu.add_account("budget@example.com", "budget-pw", "00901BUDGET", "BUDGET-DEVKEY")
    kw = creds(emu, user_name="budget@example.com", password="budget-pw", org_id="00901BUDGET", dev_key="BUDGET-DEVKEY")
    kw["sign_in_budget"] = (1, 3600)
    with billsession.login(**kw):
        pass
    with pytest.raises(billsession.RateLimitedError) as ei:
        billsession.login(**kw)
    assert ei.value.retry_after is not None and ei.value.retry_after > 0
    assert "BUDGET-DEVKEY" not in str(ei.value)


def test_rate_limited_by_bill_1144(emu: Emulator) -> None:
    emu.add_account("limit@example.com", "limit-pw", "00901LIMIT", "LIMIT-DEVKEY")
    emu.config(login_limit=1)
    kw = creds(emu, user_name="limit@example.com", password="limit-pw", org_id="00901LIMIT", dev_key="LIMIT-DEVKEY")
    try:
        with billsession.login(**kw):
            pass
        with pytest.raises(billsession.RateLimitedError) as ei:
            billsession.login(**kw)
        assert ei.value.code == "BDC_1144"
        assert ei.value.retry_after is not None and ei.value.retry_after > 0
    finally:
        emu.config(login_limit=200)


def test_in_callback_error(emu: Emulator) -> None:
    holder: list[billsession.Session] = []
    seen: list[BaseException] = []

    def on_event(ev: billsession.Event) -> None:
        if ev.kind != billsession.EventKind.RENEWED or not holder:
            return
        for op in (lambda: holder[0].call("GET", "vendors"), holder[0].close, holder[0].logout):
            try:
                op()
            except billsession.BillError as e:
                seen.append(e)
        holder[0].touch()  # allowed inside a callback

    with billsession.login(**creds(emu, on_event=on_event)) as s:
        holder.append(s)
        s.renew()  # RENEWED is delivered on this thread, inside bill_renew
        assert len(seen) == 3
        assert all(isinstance(e, billsession.InCallbackError) for e in seen), seen
        assert s.state == billsession.State.ACTIVE


@pytest.fixture(scope="module")
def tls_emulator() -> Iterator[Emulator]:
    emu = Emulator("--tls", "--idle-timeout-ms", "3000")
    try:
        yield emu
    finally:
        emu.stop()


def test_ca_file_trusts_the_emulator(tls_emulator: Emulator) -> None:
    info = tls_emulator.info
    assert info["scheme"] == "https" and info["ca_file"]
    with billsession.login(**creds(tls_emulator, ca_file=info["ca_file"])) as s:
        assert s.call("GET", "vendors")["path"] == "/connect/v3/vendors"


def test_untrusted_certificate_is_tls_error(tls_emulator: Emulator) -> None:
    info = tls_emulator.info
    with pytest.raises(billsession.BillError) as ei:
        billsession.login(**creds(tls_emulator, ca_file=info["wrong_ca_file"]))
    e = ei.value
    # Regression: libbill before 67ed206 reported this as BILL_ERR_NETWORK ("invalid data").
    assert isinstance(e, billsession.TLSError), repr(e)
    assert e.status == Status.ERR_TLS


def test_null_arg_maps_to_null_arg_error() -> None:
    # Not reachable through the public API (it never passes NULL): check the mapping at the C boundary.
    status = _ffi.lib.bill_touch(None)
    assert status == Status.ERR_NULL_ARG
    e = error_from_last(status)
    assert isinstance(e, billsession.NullArgError) and isinstance(e, ValueError) and e.message
    out = ctypes.c_uint32(0)
    assert _ffi.lib.bill_session_state(None, ctypes.byref(out)) == Status.ERR_NULL_ARG


def test_every_status_builds_its_class_and_pickles() -> None:
    from billsession._errors import error_for

    for status in Status:
        if status == Status.OK:
            continue
        e = error_for(status, "", code="BDC_0000", retry_after=1.5)
        assert e.status == status and e.message  # default message from bill_status_str
        assert type(e).__name__ != "BillError"
        back = pickle.loads(pickle.dumps(e))
        assert type(back) is type(e) and back.status == status and back.code == "BDC_0000" and back.retry_after == 1.5
    assert isinstance(error_for(Status.ERR_TIMEOUT), builtins.TimeoutError)
    unknown = error_for(999, "from the future")
    assert type(unknown) is billsession.BillError and unknown.status == 999
