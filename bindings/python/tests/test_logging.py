"""The ``billsession`` logger: session events at the documented levels, never a secret."""

from __future__ import annotations

import logging

import pytest

import billsession

from conftest import DEMO, Emulator, creds, wait_for

WAIT = 30.0


def messages(caplog: pytest.LogCaptureFixture, level: int, text: str) -> list[str]:
    return [
        r.getMessage() for r in caplog.records if r.name == "billsession" and r.levelno == level and text in r.getMessage()
    ]


def test_logger_reports_events_without_secrets(emu: Emulator, caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.DEBUG, logger="billsession")
    ids: list[str] = []
    s = billsession.login(**creds(emu, idle_timeout=1.5, renew_margin=0.7, connect_timeout=0.5))
    try:
        ids.append(s.id)
        s.renew()
        ids.append(s.id)
        assert messages(caplog, logging.DEBUG, "renewed")
        emu.fault("refuse")
        wait_for(lambda: messages(caplog, logging.WARNING, "renewal failed"), timeout=WAIT, what="a WARNING for RENEW_FAILED")
        wait_for(lambda: messages(caplog, logging.WARNING, "expired"), timeout=WAIT, what="a WARNING for EXPIRED")
        emu.control("POST", "/_emu/faults", {"mode": "none"})
        s.renew()
        ids.append(s.id)
    finally:
        s.close()
    assert messages(caplog, logging.DEBUG, "closed")
    assert messages(caplog, logging.DEBUG, "signed in")
    ids += emu.stats()["sessions_issued"]
    secrets = [DEMO["password"], DEMO["dev_key"], DEMO["user_name"], *ids]
    formatter = logging.Formatter("%(name)s %(levelname)s %(message)s %(args)s")
    text = "\n".join(formatter.format(r) for r in caplog.records) + caplog.text
    for secret in secrets:
        assert secret not in text


def test_logger_is_quiet_by_default(emu: Emulator, capsys: pytest.CaptureFixture[str]) -> None:
    """With no logging configured, a renewal prints nothing (DEBUG is below the last-resort handler's WARNING)."""
    with billsession.login(**creds(emu)) as s:
        s.renew()
    out = capsys.readouterr()
    assert out.out == "" and out.err == ""
