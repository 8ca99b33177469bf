"""Drift check: include/bill.h against the ctypes declarations in billsession._ffi.

Parses every function prototype, the callback typedef and the enums of the
header (plain regular expressions over cbindgen's regular output) and
compares them with what Python declares. Fails when a function is missing on
either side, or when an argument or return type, or an enum value, differs.
"""

from __future__ import annotations

import enum
import re
from ctypes import POINTER, c_bool, c_char, c_char_p, c_size_t, c_uint8, c_uint16, c_uint32, c_uint64, c_void_p
from typing import Any

import pytest

import billsession
from billsession import _ffi

from conftest import REPO

HEADER = REPO / "include" / "bill.h"

# The one place that says which ctypes type stands for which C type.
C_TO_CTYPES: dict[str, Any] = {
    "void": None,
    "bill_status": c_uint32,
    "bill_event": c_uint32,
    "uint32_t": c_uint32,
    "uint64_t": c_uint64,
    "size_t": c_size_t,
    "const char *": c_char_p,
    "char *": POINTER(c_char),
    "void *": c_void_p,
    "size_t *": POINTER(c_size_t),
    "const uint8_t *": POINTER(c_uint8),
    "const uint8_t **": POINTER(POINTER(c_uint8)),
    "uint16_t *": POINTER(c_uint16),
    "bool *": POINTER(c_bool),
    "bill_state *": POINTER(c_uint32),
    "bill_status *": POINTER(c_uint32),
    "bill_event_fn": _ffi.EVENT_FN,
    "bill_options *": POINTER(_ffi.bill_options),
    "const bill_options *": POINTER(_ffi.bill_options),
    "bill_options **": POINTER(POINTER(_ffi.bill_options)),
    "bill_session *": POINTER(_ffi.bill_session),
    "const bill_session *": POINTER(_ffi.bill_session),
    "bill_session **": POINTER(POINTER(_ffi.bill_session)),
    "bill_response *": POINTER(_ffi.bill_response),
    "const bill_response *": POINTER(_ffi.bill_response),
    "bill_response **": POINTER(POINTER(_ffi.bill_response)),
    "bill_cancel *": POINTER(_ffi.bill_cancel),
    "const bill_cancel *": POINTER(_ffi.bill_cancel),
    "bill_cancel **": POINTER(POINTER(_ffi.bill_cancel)),
    "bill_call_options *": POINTER(_ffi.bill_call_options),
    "const bill_call_options *": POINTER(_ffi.bill_call_options),
    "bill_call_options **": POINTER(POINTER(_ffi.bill_call_options)),
}

_PROTO = re.compile(r"^([A-Za-z_][\w ]*?[\w*])\s*(\**)\s*\b(bill_\w+)\s*\(([^;{]*?)\)\s*;", re.M | re.S)
_CALLBACK = re.compile(r"typedef\s+(\w+)\s*\(\s*\*\s*(bill_\w+)\s*\)\s*\(([^;]*?)\)\s*;", re.S)
_ENUM = re.compile(r"enum\s+(bill_\w+)\s*(?:#if[^\n]*\n[^\n]*\n#endif[^\n]*\n)?\s*\{(.*?)\};", re.S)


def _norm_type(t: str) -> str:
    t = re.sub(r"\s+", " ", t.strip())
    t = re.sub(r"\s*\*", " *", t)
    t = t.replace("* *", "**")
    return t


def _split_param(p: str) -> str:
    """'const uint8_t *value' -> 'const uint8_t *'; 'size_t len' -> 'size_t'; 'void' -> ''."""
    p = re.sub(r"\s+", " ", p.strip())
    if p == "void":
        return ""
    m = re.match(r"^(.*?)(\w+)$", p)
    assert m, f"cannot parse parameter {p!r}"
    return _norm_type(m.group(1))


def _strip_comments(text: str) -> str:
    text = re.sub(r"/\*.*?\*/", "", text, flags=re.S)
    return re.sub(r"//[^\n]*", "", text)


def header_functions() -> dict[str, tuple[str, list[str]]]:
    text = _strip_comments(HEADER.read_text(encoding="utf-8"))
    out: dict[str, tuple[str, list[str]]] = {}
    for m in _PROTO.finditer(text):
        ret = _norm_type(m.group(1) + " " + m.group(2))
        if ret.startswith("typedef"):
            continue
        params = [_split_param(p) for p in m.group(4).split(",")]
        out[m.group(3)] = (ret, [p for p in params if p])
    return out


def header_enums() -> dict[str, dict[str, int]]:
    text = _strip_comments(HEADER.read_text(encoding="utf-8"))
    out: dict[str, dict[str, int]] = {}
    for m in _ENUM.finditer(text):
        members = dict((k, int(v)) for k, v in re.findall(r"(BILL_\w+)\s*=\s*(\d+)", m.group(2)))
        out[m.group(1)] = members
    return out


def ctype(c: str) -> Any:
    if c not in C_TO_CTYPES:
        pytest.fail(f"include/bill.h uses C type {c!r}, which tests/test_prototypes.py does not know: add its ctypes mapping")
    return C_TO_CTYPES[c]


def test_header_parses() -> None:
    fns = header_functions()
    assert len(fns) >= 40, f"only {len(fns)} prototypes parsed from {HEADER}: the regex no longer matches the header"
    assert fns["bill_call"] == (
        "bill_status",
        ["bill_session *", "const char *", "const char *", "const uint8_t *", "size_t", "bill_response **"],
    )
    assert fns["bill_version"] == ("const char *", [])


def test_every_header_function_is_declared_with_matching_types() -> None:
    problems: list[str] = []
    fns = header_functions()
    for name, (ret, params) in fns.items():
        if name not in _ffi.PROTOTYPES:
            problems.append(f"{name}: in include/bill.h but not declared in billsession/_ffi.py")
            continue
        restype, argtypes = _ffi.PROTOTYPES[name]
        if restype is not ctype(ret):
            problems.append(f"{name}: returns {ret} but _ffi declares {restype}")
        want = tuple(ctype(p) for p in params)
        if tuple(argtypes) != want:
            problems.append(f"{name}: takes ({', '.join(params)}) but _ffi declares {argtypes}")
        fn = getattr(_ffi.lib, name)
        if fn.restype is not restype or tuple(fn.argtypes) != tuple(argtypes):
            problems.append(f"{name}: the loaded function's restype/argtypes differ from PROTOTYPES")
    for name in _ffi.PROTOTYPES:
        if name not in fns:
            problems.append(f"{name}: declared in billsession/_ffi.py but not in include/bill.h")
    assert not problems, "\n".join(problems)


def test_event_callback_typedef_matches() -> None:
    text = _strip_comments(HEADER.read_text(encoding="utf-8"))
    m = _CALLBACK.search(text)
    assert m and m.group(2) == "bill_event_fn"
    params = [_split_param(p) for p in m.group(3).split(",")]
    assert _ffi.EVENT_FN._restype_ is ctype(m.group(1))
    assert tuple(_ffi.EVENT_FN._argtypes_) == tuple(ctype(p) for p in params)


@pytest.mark.parametrize(
    ("c_enum", "py_enum", "prefix"),
    [
        ("bill_status", billsession.Status, "BILL_"),
        ("bill_event", billsession.EventKind, "BILL_EVENT_"),
        ("bill_state", billsession.State, "BILL_STATE_"),
        ("bill_api", billsession.Api, "BILL_API_"),
        ("bill_environment", billsession.Environment, "BILL_ENV_"),
        ("bill_refresh_mode", billsession.RefreshMode, "BILL_REFRESH_"),
        ("bill_sign_in_kind", billsession.SignInKind, "BILL_SIGN_IN_"),
    ],
)
def test_enums_match(c_enum: str, py_enum: type[enum.IntEnum], prefix: str) -> None:
    enums = header_enums()
    assert c_enum in enums, f"enum {c_enum} not found in include/bill.h"
    c_members = {k.removeprefix(prefix): v for k, v in enums[c_enum].items()}
    py_members = {m.name: int(m.value) for m in py_enum}
    assert py_members == c_members


def test_every_status_has_its_exception_class() -> None:
    from billsession._errors import _BY_STATUS

    for status in billsession.Status:
        if status == billsession.Status.OK:
            continue
        assert status in _BY_STATUS, f"no BillError subclass for {status.name}"
        cls = _BY_STATUS[status]
        assert cls.default_status == status
        assert cls.__name__ in billsession.__all__ and getattr(billsession, cls.__name__) is cls


def test_library_version_matches_header() -> None:
    m = re.search(r'#define BILL_VERSION_STRING "([^"]+)"', HEADER.read_text(encoding="utf-8"))
    assert m
    assert billsession.library_version() == m.group(1)
