"""Fixtures: a BILL emulator process for the whole run, reset before each test."""

from __future__ import annotations

import json
import os
import queue
import subprocess
import threading
import time
import urllib.request
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

HERE = Path(__file__).resolve().parent
PYROOT = HERE.parent  # bindings/python
REPO = PYROOT.parent.parent  # repository root

SERVER_IDLE_MS = 3000


def emulator_binary() -> Path:
    path = Path(os.environ.get("EMULATOR") or REPO / "target" / "debug" / "bill-emulator")
    if not path.exists():
        pytest.exit(f"emulator not built: {path} (run `make build`)", returncode=2)
    return path


def demo_account() -> dict[str, str]:
    """The emulator's seeded account, as ``bill-emulator --print-demo-account`` defines it."""
    out = subprocess.run(
        [str(emulator_binary()), "--print-demo-account"], check=True, capture_output=True, timeout=30
    ).stdout
    a = json.loads(out)
    return {"user_name": a["userName"], "password": a["password"], "org_id": a["orgId"], "dev_key": a["devKey"]}


DEMO = demo_account()


def wait_for(cond: Callable[[], Any], timeout: float = 10.0, interval: float = 0.02, what: str = "condition") -> Any:
    """Polls ``cond`` until it returns something truthy; fails after ``timeout`` seconds."""
    deadline = time.monotonic() + timeout
    while True:
        value = cond()
        if value:
            return value
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out after {timeout}s waiting for {what}")
        time.sleep(interval)


class Emulator:
    """One running bill-emulator and a client for its control API."""

    def __init__(self, *args: str) -> None:
        self.proc = subprocess.Popen(
            [str(emulator_binary()), "--port", "0", "--control-port", "0", "--exit-on-stdin-eof", *args],
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
        )
        first: queue.Queue[bytes] = queue.Queue()

        def drain() -> None:
            assert self.proc.stdout is not None
            first.put(self.proc.stdout.readline())
            for _ in self.proc.stdout:  # keep draining so the emulator never blocks on a full pipe
                pass

        threading.Thread(target=drain, daemon=True).start()
        threading.Thread(target=lambda: self.proc.stderr and self.proc.stderr.read(), daemon=True).start()
        try:
            line = first.get(timeout=30)
        except queue.Empty:
            self.stop()
            raise RuntimeError("bill-emulator did not start within 30 s") from None
        if not line:
            self.stop()
            raise RuntimeError("bill-emulator exited before printing its address")
        self.info: dict[str, Any] = json.loads(line)
        self.v2 = str(self.info["v2_base"])
        self.v3 = str(self.info["v3_base"])

    def stop(self) -> None:
        if self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(timeout=10)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()

    def control(self, method: str, path: str, body: Any = None) -> Any:
        data = None if body is None else json.dumps(body).encode()
        req = urllib.request.Request(
            f"{self.info['control']}{path}", data=data, method=method, headers={"Content-Type": "application/json"}
        )
        with urllib.request.urlopen(req, timeout=30) as r:
            return json.loads(r.read() or b"null")

    def stats(self) -> dict[str, Any]:
        s: dict[str, Any] = self.control("GET", "/_emu/stats")
        return s

    def session(self, session_id: str) -> dict[str, Any]:
        s: dict[str, Any] = self.control("POST", "/_emu/session", {"sessionId": session_id})
        return s

    def expire(self, session_id: str) -> None:
        self.control("POST", "/_emu/expire", {"sessionId": session_id})

    def fault(self, mode: str, target: str = "all", delay_ms: int = 0, count: int = 0) -> None:
        self.control("POST", "/_emu/faults", {"mode": mode, "target": target, "delay_ms": delay_ms, "count": count})

    def config(self, **patch: Any) -> None:
        self.control("POST", "/_emu/config", patch)

    def add_account(self, user_name: str, password: str, org_id: str, dev_key: str) -> None:
        self.control(
            "POST", "/_emu/accounts", {"userName": user_name, "password": password, "orgId": org_id, "devKey": dev_key}
        )

    def reset(self) -> None:
        self.control("POST", "/_emu/reset", {})
        self.config(idle_timeout_ms=SERVER_IDLE_MS)


@pytest.fixture(scope="session")
def emulator() -> Iterator[Emulator]:
    emu = Emulator("--idle-timeout-ms", str(SERVER_IDLE_MS))
    try:
        yield emu
    finally:
        emu.stop()


@pytest.fixture
def emu(emulator: Emulator) -> Iterator[Emulator]:
    """The shared emulator with counters, faults and config reset for this test."""
    emulator.reset()
    yield emulator
    emulator.control("POST", "/_emu/faults", {"mode": "none"})


def run_in_threads(n: int, fn: Callable[[], object]) -> list[BaseException]:
    """Runs ``fn`` on ``n`` threads released together; returns what they raised."""
    barrier = threading.Barrier(n)
    errors: list[BaseException] = []

    def run() -> None:
        try:
            barrier.wait()
            fn()
        except BaseException as e:  # reported to the caller
            errors.append(e)

    threads = [threading.Thread(target=run) for _ in range(n)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    return errors


def account_env(emu: Emulator) -> dict[str, str]:
    """The BILL_* environment variables (as the quickstart reads them) for the demo account on ``emu``."""
    return {
        "BILL_USER": DEMO["user_name"],
        "BILL_PASSWORD": DEMO["password"],
        "BILL_ORG_ID": DEMO["org_id"],
        "BILL_DEV_KEY": DEMO["dev_key"],
        "BILL_BASE_URL": emu.v3,
        "BILL_V2_BASE_URL": emu.v2,
    }


def creds(emu: Emulator, api: int = 3, **extra: Any) -> dict[str, Any]:
    """login() keyword arguments for the emulator's demo account."""
    kw: dict[str, Any] = dict(DEMO)
    kw.update(api=api, base_url=emu.v3 if api == 3 else emu.v2, sign_in_budget=(100_000, 3600))
    kw.update(extra)
    return kw
