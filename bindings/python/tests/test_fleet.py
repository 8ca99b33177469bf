"""Fleet mode (``shared_store``) against a real redis-server and the emulator."""

from __future__ import annotations

import os
import shutil
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

import billsession

from conftest import HERE, PYROOT, Emulator, account_env, creds

CHILD = HERE / "fleet_child.py"


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port: int = s.getsockname()[1]
        return port


def _pong(port: int) -> bool:
    try:
        with socket.create_connection(("127.0.0.1", port), timeout=1) as c:
            c.settimeout(1)
            c.sendall(b"PING\r\n")
            return c.recv(64).startswith(b"+PONG")
    except OSError:
        return False


class Redis:
    """A redis-server on a free loopback port without persistence, stopped by pid."""

    def __init__(self, path: str, tmp: Path) -> None:
        for _ in range(5):  # another process may take the free port first
            self.port = _free_port()
            self.proc = subprocess.Popen(
                [path, "--port", str(self.port), "--bind", "127.0.0.1", "--save", "", "--appendonly", "no",
                 "--dir", str(tmp), "--daemonize", "no", "--logfile", str(tmp / "redis.log")],
                stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
            )  # fmt: skip
            deadline = time.monotonic() + 20
            while time.monotonic() < deadline and self.proc.poll() is None:
                if _pong(self.port):
                    return
                time.sleep(0.02)
            self.stop()
        log = (tmp / "redis.log").read_text(errors="replace") if (tmp / "redis.log").exists() else ""
        raise RuntimeError(f"redis-server did not start on a free loopback port; its log:\n{log[-2000:]}")

    @property
    def url(self) -> str:
        return f"redis://127.0.0.1:{self.port}/0"

    def stop(self) -> None:
        if self.proc.poll() is None:
            self.proc.kill()
        self.proc.wait()


@pytest.fixture
def redis(tmp_path: Path) -> Iterator[Redis]:
    path = shutil.which("redis-server")
    if path is None:
        pytest.skip("redis-server is not on PATH: fleet mode tests need a real Redis (Debian: apt-get install redis-server)")
    server = Redis(path, tmp_path)
    try:
        yield server
    finally:
        server.stop()


def test_two_processes_share_one_sign_in(emu: Emulator, redis: Redis) -> None:
    emu.config(idle_timeout_ms=600_000)
    # Slow sign-ins, so that the second process starts while the first one's is in flight.
    emu.fault("delay", target="login", delay_ms=500)
    env = dict(os.environ)
    env.update(
        account_env(emu),
        PYTHONPATH=os.pathsep.join(p for p in (str(PYROOT), env.get("PYTHONPATH")) if p),
        BILL_SHARED_STORE=redis.url,
        BILL_STORE_KEY_PREFIX="billpy-test:",
    )
    children = [
        subprocess.Popen(
            [sys.executable, str(CHILD)], env=env, stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True
        )
        for _ in range(2)
    ]
    try:
        ids = []
        for child in children:
            assert child.stdout is not None
            line = child.stdout.readline()  # blocks until the child signed in, or exited
            if not line.startswith("ID "):
                child.kill()
                _, err = child.communicate(timeout=30)
                pytest.fail(f"a child reported {line!r} instead of its id; stderr:\n{err}")
            ids.append(line[3:].strip())
        same = bool(ids[0]) and ids[0] == ids[1]  # not compared in the assert: pytest would print the ids
        assert same, "the two processes hold different session ids"
        assert emu.stats()["logins"] == 1, "the fleet signed in more than once"
        for child in children:
            out, err = child.communicate(input="", timeout=60)
            assert child.returncode == 0, f"a child failed:\n{err}"
            assert "STORE-DOWN" not in out, out
    finally:
        for child in children:
            if child.poll() is None:
                child.kill()
                child.wait()


def test_malformed_store_url_is_refused_without_the_password(emu: Emulator) -> None:
    password = "s3cr3t-pw"
    with pytest.raises(billsession.InvalidArgError) as ei:
        billsession.login(**creds(emu, shared_store=f"redis://:{password}@host:notaport"))
    text = f"{ei.value} {ei.value!r} {ei.value.message}"
    assert "s3cr3t" not in text
    assert "shared store" in text


def test_store_options_are_checked_and_kept_out_of_repr(emu: Emulator) -> None:
    with pytest.raises(billsession.InvalidArgError):
        billsession.login(**creds(emu, shared_store="http://127.0.0.1:6379"))
    with pytest.raises(billsession.InvalidArgError):
        billsession.login(**creds(emu, shared_store="redis://127.0.0.1:6379", store_key_prefix="my app:"))
    with pytest.raises(billsession.InvalidArgError):
        billsession.login(**creds(emu, shared_store="redis://127.0.0.1:6379", store_timeout=61))
    url = bytearray(b"redis://:s3cr3t-pw@127.0.0.1:1/0\0")
    with pytest.raises(billsession.InvalidArgError):
        billsession.login(**creds(emu, shared_store=url))
    assert url == bytearray(len(url)), "login() did not zero the caller's bytearray"
    settings = billsession.Settings(**creds(emu, shared_store="redis://:s3cr3t-pw@127.0.0.1:1/0"))
    assert "s3cr3t" not in repr(settings)
