"""`pip install ./bindings/python` in a fresh virtualenv builds libbill and bundles it.

A release build of libbill by default. `make test` sets
SETUPTOOLS_RUST_CARGO_PROFILE=dev and BILLSESSION_CARGO_TARGET_DIR to the
repository's target/, so the build reuses what `make build` compiled.
"""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

from conftest import DEMO, REPO, Emulator

QUICKSTART = REPO / "examples" / "python" / "quickstart.py"


@pytest.mark.install
def test_pip_install_builds_and_bundles_libbill(tmp_path: Path, emu: Emulator) -> None:
    venv = tmp_path / "venv"
    subprocess.run([sys.executable, "-m", "venv", str(venv)], check=True, timeout=300)
    py = str(venv / "bin" / "python")

    # The environment a user has: nothing of ours, except where Cargo keeps its build cache.
    env = {k: v for k, v in os.environ.items() if not k.startswith(("BILLSESSION_", "PYTHON", "VIRTUAL_ENV"))}
    env["CARGO_TARGET_DIR"] = os.environ.get("BILLSESSION_CARGO_TARGET_DIR") or str(REPO / "build" / "python" / "cargo")
    r = subprocess.run(
        [py, "-m", "pip", "install", "--disable-pip-version-check", "--no-input", "./bindings/python"],
        cwd=REPO,
        env=env,
        capture_output=True,
        text=True,
        timeout=1800,
    )
    assert r.returncode == 0, f"pip install failed:\n{r.stdout[-4000:]}\n{r.stderr[-4000:]}"

    # Import from elsewhere, with no environment variables pointing anywhere.
    probe = (
        "import billsession, pathlib\n"
        "print(billsession.__file__)\n"
        "print(billsession.library_path())\n"
        "print(billsession.library_version())\n"
    )
    r = subprocess.run([py, "-c", probe], cwd=tmp_path, env=env, capture_output=True, text=True, timeout=60)
    assert r.returncode == 0, r.stderr
    init_file, lib_path, version = r.stdout.splitlines()
    pkg = Path(init_file).parent
    assert pkg.is_relative_to(venv), f"imported {init_file}, not the installed package"
    assert Path(lib_path) == pkg / "_native" / "libbill.so"
    assert Path(lib_path).is_file()
    assert version == "0.1.0"
    assert (pkg / "py.typed").is_file()
    wheel_meta = next(venv.glob("lib/python*/site-packages/billsession-*.dist-info/WHEEL")).read_text()
    assert "Tag: py3-none-" in wheel_meta

    # The bundled library works: the quickstart against the emulator.
    qenv = dict(env)
    qenv.update(
        BILL_USER=DEMO["user_name"],
        BILL_PASSWORD=DEMO["password"],
        BILL_ORG_ID=DEMO["org_id"],
        BILL_DEV_KEY=DEMO["dev_key"],
        BILL_BASE_URL=emu.v3,
        BILL_API="3",
    )
    r = subprocess.run([py, str(QUICKSTART)], cwd=tmp_path, env=qenv, capture_output=True, text=True, timeout=60)
    assert r.returncode == 0, r.stderr
    assert r.stdout.splitlines()[-1] == "logged out"
