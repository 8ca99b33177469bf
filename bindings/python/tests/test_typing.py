"""mypy --strict over the package (and the quickstart), when mypy is installed (make test-python installs it)."""

from __future__ import annotations

import os
import subprocess
import sys

import pytest

from conftest import PYROOT, REPO


def test_mypy_strict() -> None:
    pytest.importorskip("mypy", reason="mypy is not installed (make test-python installs it)")
    cache = REPO / "build" / "python" / "mypy-cache"
    r = subprocess.run(
        [
            sys.executable, "-m", "mypy", "--strict", "--cache-dir", str(cache),
            "billsession", str(REPO / "examples" / "python" / "quickstart.py"),
        ],
        cwd=PYROOT,
        env={**os.environ, "MYPYPATH": str(PYROOT)},
        capture_output=True,
        text=True,
        timeout=600,
    )
    assert r.returncode == 0, r.stdout + r.stderr
