"""call(): params= encoding, json=, timeout= checks, and the Response object."""

from __future__ import annotations

from datetime import timedelta

import pytest

import billsession
from billsession import InvalidArgError

from conftest import Emulator, creds


def logged_path(emu: Emulator) -> str:
    log = emu.control("GET", "/_emu/log")
    path: str = log[-1]["path"]
    return path


def test_params_are_encoded(emu: Emulator) -> None:
    with billsession.login(**creds(emu)) as s:
        r = s.call("GET", "vendors", params={"max": 20, "name": "A & B/ç", "tag": ["x", "y z"], "skip": None})
        assert r.status == 200
        assert r.json()["path"] == "/connect/v3/vendors"
        # The emulator's PII check sees the whole query: nothing it flags, and no secret in it.
        assert emu.stats()["violations"] == []
        # A space in the path is encoded rather than refused.
        r = s.call("GET", "vendor notes", params=[("a", 1)])
        assert r.json()["path"] == "/connect/v3/vendor%20notes"
        r = s.call("GET", "vendors?max=2", params={"start": 0, "flag": True})
        assert r.ok


def test_json_body_and_response(emu: Emulator) -> None:
    with billsession.login(**creds(emu)) as s:
        r = s.call("POST", "vendors", json={"name": "Acme", "n": [1, 2]})
        assert r.json()["echo"] == {"name": "Acme", "n": [1, 2]}
        assert r.text.startswith("{") and r.content.startswith(b"{")
        assert repr(r) == f"<billsession.Response [200] {len(r.content)} bytes>"
        with pytest.raises(TypeError):
            s.call("POST", "vendors", {"a": 1}, json={"b": 2})
        with pytest.raises(InvalidArgError):
            s.call("GET", "vendors", timeout=0)
        with pytest.raises(InvalidArgError):
            s.call("GET", "vendors", timeout=-1)
        with pytest.raises(TypeError):
            s.call("GET", "vendors", timeout="soon")  # type: ignore[arg-type]
        assert s.call("GET", "vendors", timeout=timedelta(seconds=30)).ok
        s.renew(timeout=30)


def test_params_refused_on_v2(emu: Emulator) -> None:
    with billsession.login(**creds(emu, api=2)) as s:
        with pytest.raises(InvalidArgError):
            s.call(None, "List/Vendor", {}, params={"max": 1})
        assert s.call(None, "List/Vendor", {}).json()["response_status"] == 0


def test_empty_reply_json_is_none() -> None:
    assert billsession.Response(200, b"").json() is None
    assert billsession.Response(204, b"  ").json() is None
    with pytest.raises(billsession.ProtocolError):
        billsession.Response(200, b"<html>").json()
