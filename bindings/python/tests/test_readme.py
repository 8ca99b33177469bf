"""Every ```python block of bindings/python/README.md runs against the emulator."""

from __future__ import annotations

import os
import re
import subprocess
import sys
from pathlib import Path

import pytest

from conftest import DEMO, PYROOT, Emulator, account_env

README = PYROOT / "README.md"
BLOCKS = re.findall(r"^```python\n(.*?)^```", README.read_text(encoding="utf-8"), flags=re.M | re.S)


def test_readme_has_python_blocks() -> None:
    assert len(BLOCKS) >= 4


@pytest.mark.parametrize("index", range(len(BLOCKS)))
def test_readme_block_runs(emu: Emulator, index: int, tmp_path: Path) -> None:
    script = tmp_path / f"readme_{index}.py"
    script.write_text(BLOCKS[index], encoding="utf-8")
    env = dict(os.environ)
    env.update(account_env(emu), PYTHONPATH=str(PYROOT))
    env.pop("BILL_CA_FILE", None)
    r = subprocess.run([sys.executable, str(script)], env=env, cwd=tmp_path, capture_output=True, text=True, timeout=60)
    assert r.returncode == 0, f"README block {index} failed:\n{BLOCKS[index]}\n{r.stderr}"
    assert DEMO["password"] not in r.stdout + r.stderr
