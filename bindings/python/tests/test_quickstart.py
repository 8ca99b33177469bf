"""examples/python/quickstart.py against the emulator, v3 and v2."""

from __future__ import annotations

import os
import subprocess
import sys

import pytest

from conftest import DEMO, PYROOT, REPO, Emulator

QUICKSTART = REPO / "examples" / "python" / "quickstart.py"


def quickstart_env(emu: Emulator, api: int) -> dict[str, str]:
    env = dict(os.environ)
    env["PYTHONPATH"] = str(PYROOT)
    env.update(
        BILL_USER=DEMO["user_name"],
        BILL_PASSWORD=DEMO["password"],
        BILL_ORG_ID=DEMO["org_id"],
        BILL_DEV_KEY=DEMO["dev_key"],
        BILL_BASE_URL=emu.v3 if api == 3 else emu.v2,
        BILL_API=str(api),
    )
    env.pop("BILL_CA_FILE", None)
    return env


@pytest.mark.parametrize("api", [3, 2])
def test_quickstart(emu: Emulator, api: int) -> None:
    r = subprocess.run(
        [sys.executable, str(QUICKSTART)], env=quickstart_env(emu, api), capture_output=True, text=True, timeout=60
    )
    assert r.returncode == 0, r.stderr
    lines = r.stdout.splitlines()
    assert lines[0].startswith(f"signed in (API v{api}); session id ") and lines[0].endswith("…")
    masked = lines[0].rsplit(" ", 1)[1]
    assert len(masked) == 5  # first 4 characters + "…"
    assert lines[-1] == "logged out"
    assert DEMO["password"] not in r.stdout + r.stderr
    assert emu.stats()["logouts"] == 1


def test_quickstart_reports_bad_credentials(emu: Emulator) -> None:
    env = quickstart_env(emu, 3)
    env["BILL_PASSWORD"] = "not-the-password"
    r = subprocess.run([sys.executable, str(QUICKSTART)], env=env, capture_output=True, text=True, timeout=60)
    assert r.returncode == 1
    assert "AuthError" in r.stderr and "BDC_1101" in r.stderr
    assert "not-the-password" not in r.stderr
