"""Builds libbill from the repository's Rust sources and bundles it as billsession/_native/libbill.so.

libbill is a plain C-ABI cdylib (no Python bindings), so setuptools-rust's
``Binding.NoBinding`` is used: it runs ``cargo rustc --lib --crate-type cdylib
--release`` on the workspace's Cargo.toml and copies the library into the
package. Two small adjustments below:

* the file keeps its plain name (``libbill.so``) instead of a CPython
  extension suffix, since ctypes loads it, not the import system;
* the wheel is tagged ``py3-none-<platform>``: it works with any Python 3.10+
  because it does not link against libpython.

The Rust sources are found at ``$BILLSESSION_CARGO_MANIFEST``, else at
``rust/Cargo.toml`` beside this file (an unpacked sdist: ``sdist`` copies the
sources it needs there), else at ``../../Cargo.toml`` (a checkout: pip >= 21.3
builds a local directory in place, so the relative path holds).
``CARGO_TARGET_DIR`` is honoured.

Binary wheels without Rust (``make wheel``): with
``BILLSESSION_PREBUILT_LIBRARY=/path/to/libbill.so`` nothing is compiled; that
library is bundled as is, and the wheel gets the platform tag in
``BILLSESSION_WHEEL_PLATFORM`` (for example ``manylinux_2_17_x86_64``, which
``make wheel`` checks with ``auditwheel show``).
"""

from __future__ import annotations

import os
import re
import shutil
import sys
from pathlib import Path

from setuptools import Distribution, setup
from setuptools.command.build_py import build_py
from setuptools.command.sdist import sdist
from setuptools_rust import Binding, RustExtension, Strip
from setuptools_rust.build import build_rust

try:
    from setuptools.command.bdist_wheel import bdist_wheel
except ImportError:  # setuptools < 70.1
    from wheel.bdist_wheel import bdist_wheel  # type: ignore[no-redef]

HERE = Path(__file__).resolve().parent
PREBUILT = os.environ.get("BILLSESSION_PREBUILT_LIBRARY")
WHEEL_PLATFORM = os.environ.get("BILLSESSION_WHEEL_PLATFORM")

# What building libbill needs, relative to the repository root; sdist copies it into rust/.
RUST_SOURCES = ["Cargo.toml", "Cargo.lock", "build.rs", "cbindgen.toml", "src", "include/bill.h"]
# Cargo.toml sections that only the repository needs (other workspace members, tests, benchmarks).
RUST_REPO_ONLY_SECTIONS = {"workspace", "dev-dependencies", "bench"}


def find_manifest() -> str:
    env = os.environ.get("BILLSESSION_CARGO_MANIFEST")
    candidates = [Path(env)] if env else [HERE / "rust" / "Cargo.toml", HERE.parent.parent / "Cargo.toml"]
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
        + "). Build from the sdist, from a checkout of the libbill repository (`pip install ./bindings/python`), "
        "or set BILLSESSION_CARGO_MANIFEST=/path/to/libbill/Cargo.toml."
    )


def standalone_cargo_toml(text: str) -> str:
    """The package's Cargo.toml without the sections that need the rest of the repository."""
    out, keep = [], True
    for line in text.splitlines(keepends=True):
        m = re.match(r"^\[\[?([^\]]+)\]\]?\s*(#.*)?$", line)
        if m:
            keep = m.group(1).strip() not in RUST_REPO_ONLY_SECTIONS
        if keep:
            out.append(line)
    return "".join(out)


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

    def finalize_options(self) -> None:
        if WHEEL_PLATFORM and not self.plat_name:
            self.plat_name = WHEEL_PLATFORM
        super().finalize_options()

    def get_tag(self) -> tuple[str, str, str]:
        _, _, plat = super().get_tag()
        return "py3", "none", plat


class build_py_prebuilt(build_py):
    """Bundles $BILLSESSION_PREBUILT_LIBRARY as billsession/_native/<library> instead of compiling."""

    def run(self) -> None:
        super().run()
        assert PREBUILT
        src = Path(PREBUILT)
        if not src.is_file():
            sys.exit(f"billsession: BILLSESSION_PREBUILT_LIBRARY={PREBUILT} is not a file")
        dest = Path(self.build_lib) / "billsession" / "_native" / shared_lib_name()
        dest.parent.mkdir(parents=True, exist_ok=True)
        shutil.copyfile(src, dest)
        os.chmod(dest, 0o755)


class BinaryDistribution(Distribution):
    """A prebuilt library is still platform-specific: install it to platlib, as auditwheel requires."""

    def has_ext_modules(self) -> bool:
        return True


class sdist_with_rust(sdist):
    """Adds libbill's Rust sources under rust/, so the sdist builds away from the repository."""

    def make_release_tree(self, base_dir: str, files: list[str]) -> None:
        super().make_release_tree(base_dir, files)
        # A checkout, or an unpacked sdist (which carries them in rust/).
        root = Path(find_manifest()).resolve().parent
        dest = Path(base_dir) / "rust"
        for rel in RUST_SOURCES:
            src = root / rel
            out = dest / rel
            out.parent.mkdir(parents=True, exist_ok=True)
            if src.is_dir():
                shutil.copytree(src, out, ignore=shutil.ignore_patterns("*.orig", "*.rej", "*~"))
            elif rel == "Cargo.toml":
                out.write_text(standalone_cargo_toml(src.read_text(encoding="utf-8")), encoding="utf-8")
            else:
                shutil.copyfile(src, out)


cmdclass: dict[str, type] = {"bdist_wheel": bdist_wheel_any_python, "sdist": sdist_with_rust}
if PREBUILT:
    cmdclass["build_py"] = build_py_prebuilt
    setup(cmdclass=cmdclass, distclass=BinaryDistribution)
else:
    cmdclass["build_rust"] = build_rust_plain_name
    setup(
        rust_extensions=[
            RustExtension(
                "billsession._native.libbill",
                path=find_manifest(),
                binding=Binding.NoBinding,
                strip=Strip.Debug,
            )
        ],
        cmdclass=cmdclass,
    )
