"""Builds libbill from the repository's Rust sources and bundles it as billsession/_native/libbill.so.

libbill is a plain C-ABI cdylib (no Python bindings), so setuptools-rust's
``Binding.NoBinding`` is used: it runs ``cargo rustc --lib --crate-type cdylib
--release`` on the workspace's Cargo.toml and copies the library into the
package. Two small adjustments below:

* the file keeps its plain name (``libbill.so``) instead of a CPython
  extension suffix, since ctypes loads it, not the import system;
* the wheel is tagged ``py3-none-<platform>``: it works with any Python 3.10+
  because it does not link against libpython.

The Rust sources are found at ``../../Cargo.toml`` relative to this file
(pip >= 21.3 builds a local directory in place, so the relative path holds),
or at ``$BILLSESSION_CARGO_MANIFEST``. ``CARGO_TARGET_DIR`` is honoured.
"""

from __future__ import annotations

import os
import sys
from pathlib import Path

from setuptools import setup
from setuptools_rust import Binding, RustExtension, Strip
from setuptools_rust.build import build_rust

try:
    from setuptools.command.bdist_wheel import bdist_wheel
except ImportError:  # setuptools < 70.1
    from wheel.bdist_wheel import bdist_wheel  # type: ignore[no-redef]

HERE = Path(__file__).resolve().parent


def find_manifest() -> str:
    env = os.environ.get("BILLSESSION_CARGO_MANIFEST")
    candidates = [Path(env)] if env else [HERE.parent.parent / "Cargo.toml"]
    for c in candidates:
        try:
            text = c.read_text(encoding="utf-8")
        except OSError:
            continue
        if 'name = "libbill"' in text:
            return os.path.relpath(c.resolve(), Path.cwd()) if c.is_absolute() else str(c)
    sys.exit(
        "billsession: cannot find libbill's Cargo.toml (looked at "
        + ", ".join(str(c) for c in candidates)
        + "). Build from a checkout of the libbill repository, e.g. `pip install ./bindings/python`, "
        "or set BILLSESSION_CARGO_MANIFEST=/path/to/libbill/Cargo.toml."
    )


def shared_lib_name() -> str:
    if sys.platform == "darwin":
        return "libbill.dylib"
    if sys.platform == "win32":
        return "bill.dll"
    return "libbill.so"


class build_rust_plain_name(build_rust):
    """Installs the cdylib as billsession/_native/libbill.so, not libbill.cpython-3xx-....so."""

    def get_dylib_ext_path(self, ext: RustExtension, target_fname: str) -> str:
        path = super().get_dylib_ext_path(ext, target_fname)
        return os.path.join(os.path.dirname(path), shared_lib_name())


class bdist_wheel_any_python(bdist_wheel):
    """The bundled library does not use Python's C API: one wheel per platform serves every Python 3."""

    def get_tag(self) -> tuple[str, str, str]:
        _, _, plat = super().get_tag()
        return "py3", "none", plat


setup(
    rust_extensions=[
        RustExtension(
            "billsession._native.libbill",
            path=find_manifest(),
            binding=Binding.NoBinding,
            strip=Strip.Debug,
        )
    ],
    cmdclass={"build_rust": build_rust_plain_name, "bdist_wheel": bdist_wheel_any_python},
)
