"""An emulator of its own for slow calls, and the check that the next call succeeds first time."""

from __future__ import annotations

import itertools
from collections.abc import Iterator
from typing import Any

import pytest

from conftest import Emulator

#: The emulator holds a v3 generic call whose body has sleepMs this long: far
#: longer than the tests wait, so a call that returns in time was interrupted.
HOLD_MS = 20_000
#: A generous bound for "interrupted": well under the hold.
INTERRUPTED_WITHIN = 15.0

SLOW_BODY: dict[str, Any] = {"sleepMs": HOLD_MS}

_probes = itertools.count(1)


@pytest.fixture
def slow_emu() -> Iterator[Emulator]:
    """A fresh emulator: held calls count as in flight until they end, and must not crowd the shared one."""
    emu = Emulator("--idle-timeout-ms", "600000")
    try:
        yield emu
    finally:
        emu.stop()


def in_flight(emu: Emulator) -> int:
    n: int = emu.stats()["in_flight"]
    return n


def probe_path() -> str:
    return f"probe{next(_probes)}"


def seen_once(emu: Emulator, path: str) -> bool:
    """Whether the emulator saw exactly one request for ``path``: the call needed no retry."""
    log = emu.control("GET", "/_emu/log")
    return sum(1 for entry in log if entry["path"].endswith("/" + path)) == 1
