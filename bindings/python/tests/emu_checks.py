"""Checks against the emulator that a descheduled test thread cannot get wrong."""

from __future__ import annotations

from typing import Callable

from conftest import Emulator


def emu_now(emu: Emulator) -> int:
    """The emulator's clock in ms, the one its session times use."""
    now: int = emu.control("POST", "/_emu/clock", {"advance_ms": 0})["now_ms"]
    return now


def valid_since(emu: Emulator, sid: str, since: int) -> bool:
    """Whether the emulator accepted ``sid`` at its time ``since`` (an emu_now() taken before the id was read).

    True if the id is valid now, or idled out no earlier than ``since``: a check made late, by a thread that
    was descheduled after reading the id, still judges the id as it was when read.
    """
    info = emu.session(sid)
    ended = info.get("ended_ms")
    return bool(info["valid"]) or (info.get("end_reason") == "idle" and ended is not None and ended >= since)


def id_valid_when_read(emu: Emulator, read_id: Callable[[], str]) -> bool:
    """Reads an id with ``read_id()`` and checks that the emulator accepted it then."""
    since = emu_now(emu)
    return valid_since(emu, read_id(), since)
