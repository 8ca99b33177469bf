"""How the shared library is found, and what the ImportError says when it is not."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

from conftest import PYROOT


def run_import(env_lib: str | None, tmp_path: Path) -> subprocess.CompletedProcess[str]:
    env = {k: v for k, v in os.environ.items() if k != "BILLSESSION_LIBRARY"}
    env["PYTHONPATH"] = str(PYROOT)
    if env_lib is not None:
        env["BILLSESSION_LIBRARY"] = env_lib
    return subprocess.run(
        [sys.executable, "-c", "import billsession; print(billsession.library_path())"],
        env=env,
        cwd=tmp_path,
        capture_output=True,
        text=True,
        timeout=60,
    )


def test_env_var_overrides(tmp_path: Path) -> None:
    lib = os.environ.get("BILLSESSION_LIBRARY")
    if not lib:
        pytest.skip("BILLSESSION_LIBRARY is not set for this run")
    r = run_import(lib, tmp_path)
    assert r.returncode == 0, r.stderr
    assert r.stdout.strip() == lib


def test_missing_env_library_lists_the_path(tmp_path: Path) -> None:
    missing = str(tmp_path / "nowhere" / "libbill.so")
    r = run_import(missing, tmp_path)
    assert r.returncode != 0
    assert "ImportError" in r.stderr and missing in r.stderr and "no such file" in r.stderr


def test_wrong_library_is_rejected(tmp_path: Path) -> None:
    import ctypes.util

    other = ctypes.util.find_library("z") or ctypes.util.find_library("m")
    if not other:
        pytest.skip("no system library to load as an impostor")
    r = run_import(other, tmp_path)
    assert r.returncode != 0
    assert "loaded but unusable" in r.stderr and "bill_version" in r.stderr


def test_no_library_lists_every_place_looked(tmp_path: Path) -> None:
    bundled = PYROOT / "billsession" / "_native" / "libbill.so"
    if bundled.exists():
        pytest.skip(f"{bundled} exists (editable install): the source tree has a bundled library")
    r = run_import(None, tmp_path)
    if r.returncode == 0:
        pytest.skip(f"a system-wide libbill is on the loader's search path: {r.stdout.strip()}")
    assert str(bundled) in r.stderr
    assert "dynamic loader's search path" in r.stderr
    assert "BILLSESSION_LIBRARY" in r.stderr
