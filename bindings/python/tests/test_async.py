"""The asyncio API: calls on worker threads, cancellation that reaches libbill, and timeout=."""

from __future__ import annotations

import asyncio
import time

import pytest

import billsession
from billsession import BillTimeoutError, CallCancelledError

from conftest import Emulator, creds, wait_for
from slow import INTERRUPTED_WITHIN, SLOW_BODY, in_flight, probe_path, seen_once, slow_emu

__all__ = ["slow_emu"]


async def next_call_works(emu: Emulator, s: billsession.AsyncSession) -> None:
    path = probe_path()
    r = await s.call("GET", path)
    assert r.status == 200 and r.json()["path"].endswith(path)
    assert seen_once(emu, path), "the call after the interrupted one needed a retry"


async def wait_in_flight(emu: Emulator) -> None:
    deadline = time.monotonic() + 30
    while in_flight(emu) == 0:
        assert time.monotonic() < deadline, "the slow call never reached the emulator"
        await asyncio.sleep(0.01)


def test_task_cancellation_interrupts_a_slow_call(slow_emu: Emulator) -> None:
    async def main() -> None:
        async with await billsession.alogin(**creds(slow_emu)) as s:
            ticks = 0

            async def ticker() -> None:
                nonlocal ticks
                while True:
                    ticks += 1
                    await asyncio.sleep(0.005)

            tick_task = asyncio.create_task(ticker())
            task = asyncio.create_task(s.call("POST", "slow", json=SLOW_BODY))
            start = time.monotonic()
            await wait_in_flight(slow_emu)
            ticks_at_start = ticks
            await asyncio.sleep(0.05)
            assert ticks > ticks_at_start, "the event loop froze while the call ran"
            task.cancel()
            with pytest.raises(asyncio.CancelledError):
                await task
            assert time.monotonic() - start < INTERRUPTED_WITHIN
            tick_task.cancel()
            assert s.state == billsession.State.ACTIVE
            await next_call_works(slow_emu, s)

    asyncio.run(main())


def test_wait_for_interrupts_a_slow_call(slow_emu: Emulator) -> None:
    async def main() -> None:
        async with await billsession.alogin(**creds(slow_emu)) as s:
            start = time.monotonic()
            with pytest.raises(asyncio.TimeoutError):
                await asyncio.wait_for(s.call("POST", "slow", json=SLOW_BODY), 0.3)
            assert time.monotonic() - start < INTERRUPTED_WITHIN
            await next_call_works(slow_emu, s)
            # timeout= works in the async API too, as a BillTimeoutError
            with pytest.raises(BillTimeoutError):
                await s.call("POST", "slow", json=SLOW_BODY, timeout=0.3)
            await next_call_works(slow_emu, s)

    asyncio.run(main())


def test_timeout_interrupts_a_slow_sync_call(slow_emu: Emulator) -> None:
    with billsession.login(**creds(slow_emu)) as s:
        start = time.monotonic()
        with pytest.raises(BillTimeoutError) as ei:
            s.call("POST", "slow", json=SLOW_BODY, timeout=0.3)
        assert isinstance(ei.value, TimeoutError)
        assert time.monotonic() - start < INTERRUPTED_WITHIN
        path = probe_path()
        assert s.call("GET", path).status == 200
        assert seen_once(slow_emu, path)


def test_cancel_token_from_another_thread(slow_emu: Emulator) -> None:
    import threading

    with billsession.login(**creds(slow_emu)) as s:
        token = billsession.CancelToken()
        assert not token.cancelled

        def cancel_when_in_flight() -> None:
            wait_for(lambda: in_flight(slow_emu) > 0, timeout=30, what="the slow call")
            token.cancel()

        t = threading.Thread(target=cancel_when_in_flight)
        t.start()
        start = time.monotonic()
        with pytest.raises(CallCancelledError):
            s.call("POST", "slow", json=SLOW_BODY, cancel=token)
        t.join()
        assert time.monotonic() - start < INTERRUPTED_WITHIN
        assert token.cancelled
        with pytest.raises(CallCancelledError):  # a triggered token cancels later calls at once
            s.call("GET", "vendors", cancel=token)
        path = probe_path()
        assert s.call("GET", path).status == 200
        assert seen_once(slow_emu, path)


def test_async_session_basics(emu: Emulator) -> None:
    async def main() -> None:
        s = await billsession.alogin(**creds(emu))
        try:
            assert s.id and s.state == billsession.State.ACTIVE and s.api == billsession.Api.V3
            assert (await s.call_json("GET", "vendors"))["path"] == "/connect/v3/vendors"
            before = emu.stats()["logins"]
            await s.renew()
            assert emu.stats()["logins"] == before + 1
            emu.expire(s.id)
            r = await s.call("POST", "vendors", json={"name": "Acme"})
            assert r.json()["echo"] == {"name": "Acme"}
            await s.logout()
        finally:
            await s.close()
        assert s.closed

    asyncio.run(main())
