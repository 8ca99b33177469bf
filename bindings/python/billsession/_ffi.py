"""ctypes declarations for every function in libbill's C API (include/bill.h).

This module is the only place that knows the C prototypes. Every function
in the header is declared here with its ``argtypes`` and ``restype``;
``tests/test_prototypes.py`` parses include/bill.h and fails when a function
is missing here or its types drift.

Loading order:

1. ``$BILLSESSION_LIBRARY`` when set (and then nothing else);
2. the library bundled in the package, ``billsession/_native/libbill.so``
   (``.dylib`` on macOS, ``bill.dll`` on Windows);
3. the dynamic loader's own search (``LD_LIBRARY_PATH``, ldconfig cache)
   for ``libbill.so.0`` then ``libbill.so``, as a system-wide ``make install``
   puts them.

When none loads, the ImportError lists every place that was tried and why.
"""

from __future__ import annotations

import ctypes
import os
import sys
from ctypes import (
    CFUNCTYPE,
    POINTER,
    c_bool,
    c_char,
    c_char_p,
    c_size_t,
    c_uint8,
    c_uint16,
    c_uint32,
    c_uint64,
    c_void_p,
)
from pathlib import Path
from typing import Any, Final

__all__ = [
    "ENV_VAR",
    "EVENT_FN",
    "PROTOTYPES",
    "CallOptionsP",
    "CancelP",
    "ResponseP",
    "SessionP",
    "OptionsP",
    "bill_call_options",
    "bill_cancel",
    "bill_options",
    "bill_response",
    "bill_session",
    "lib",
    "library_path",
]

#: Environment variable naming the shared library to load instead of the bundled one.
ENV_VAR: Final = "BILLSESSION_LIBRARY"

#: The C header's major version this module was written against.
EXPECTED_MAJOR: Final = 0


class bill_options(ctypes.Structure):
    """Opaque ``bill_options``."""


class bill_session(ctypes.Structure):
    """Opaque ``bill_session``."""


class bill_response(ctypes.Structure):
    """Opaque ``bill_response``."""


class bill_cancel(ctypes.Structure):
    """Opaque ``bill_cancel``."""


class bill_call_options(ctypes.Structure):
    """Opaque ``bill_call_options``."""


OptionsP = POINTER(bill_options)
SessionP = POINTER(bill_session)
ResponseP = POINTER(bill_response)
CancelP = POINTER(bill_cancel)
CallOptionsP = POINTER(bill_call_options)

# C enums cross the ABI as uint32_t (bill_status, bill_state, bill_event, ...).
_status = c_uint32
_enum = c_uint32

#: ``typedef void (*bill_event_fn)(void *user_data, bill_event event, bill_status status, const char *detail);``
EVENT_FN = CFUNCTYPE(None, c_void_p, _enum, _status, c_char_p)

_char_buf = POINTER(c_char)
_size_p = POINTER(c_size_t)
_bytes_in = POINTER(c_uint8)

#: name -> (restype, argtypes), in header order.
PROTOTYPES: Final[dict[str, tuple[Any, tuple[Any, ...]]]] = {
    "bill_version": (c_char_p, ()),
    "bill_status_str": (c_char_p, (c_uint32,)),
    "bill_last_error": (_status, (_char_buf, c_size_t, _size_p)),
    "bill_last_error_code": (_status, (_char_buf, c_size_t, _size_p)),
    "bill_last_error_status": (_status, ()),
    "bill_last_error_retry_after_ms": (c_uint64, ()),
    "bill_wipe": (None, (c_void_p, c_size_t)),
    "bill_options_new": (_status, (POINTER(OptionsP),)),
    "bill_options_free": (None, (OptionsP,)),
    "bill_options_set_user_name": (_status, (OptionsP, _bytes_in, c_size_t)),
    "bill_options_set_password": (_status, (OptionsP, _bytes_in, c_size_t)),
    "bill_options_set_dev_key": (_status, (OptionsP, _bytes_in, c_size_t)),
    "bill_options_set_org_id": (_status, (OptionsP, c_char_p)),
    "bill_options_set_api_version": (_status, (OptionsP, c_uint32)),
    "bill_options_set_environment": (_status, (OptionsP, c_uint32)),
    "bill_options_set_base_url": (_status, (OptionsP, c_char_p)),
    "bill_options_set_idle_timeout_ms": (_status, (OptionsP, c_uint64)),
    "bill_options_set_renew_margin_ms": (_status, (OptionsP, c_uint64)),
    "bill_options_set_connect_timeout_ms": (_status, (OptionsP, c_uint64)),
    "bill_options_set_request_timeout_ms": (_status, (OptionsP, c_uint64)),
    "bill_options_set_ca_file": (_status, (OptionsP, c_char_p)),
    "bill_options_set_shared_store": (_status, (OptionsP, c_char_p)),
    "bill_options_set_store_key_prefix": (_status, (OptionsP, c_char_p)),
    "bill_options_set_store_timeout_ms": (_status, (OptionsP, c_uint64)),
    "bill_options_set_refresh_mode": (_status, (OptionsP, c_uint32)),
    "bill_options_set_sign_in_kind": (_status, (OptionsP, c_uint32)),
    "bill_options_set_mfa_trust": (_status, (OptionsP, _bytes_in, c_size_t, c_char_p)),
    "bill_options_set_max_response_bytes": (_status, (OptionsP, c_size_t)),
    "bill_options_set_sign_in_budget": (_status, (OptionsP, c_uint32, c_uint64)),
    "bill_options_set_max_in_flight": (_status, (OptionsP, c_uint32)),
    "bill_options_allow_api_endpoint_host": (_status, (OptionsP, c_char_p)),
    "bill_options_set_event_callback": (_status, (OptionsP, EVENT_FN, c_void_p)),
    "bill_login": (_status, (OptionsP, POINTER(SessionP))),
    "bill_session_id": (_status, (SessionP, _char_buf, c_size_t, _size_p)),
    "bill_touch": (_status, (SessionP,)),
    "bill_renew": (_status, (SessionP,)),
    "bill_call": (_status, (SessionP, c_char_p, c_char_p, _bytes_in, c_size_t, POINTER(ResponseP))),
    "bill_logout": (_status, (SessionP,)),
    "bill_session_free": (None, (SessionP,)),
    "bill_session_state": (_status, (SessionP, POINTER(_enum))),
    "bill_session_trusted": (_status, (SessionP, POINTER(c_bool))),
    "bill_session_error": (_status, (SessionP, POINTER(_status), _char_buf, c_size_t, _size_p)),
    "bill_session_error_code": (_status, (SessionP, _char_buf, c_size_t, _size_p)),
    "bill_response_body": (_status, (ResponseP, POINTER(_bytes_in), _size_p)),
    "bill_response_http_status": (_status, (ResponseP, POINTER(c_uint16))),
    "bill_response_free": (None, (ResponseP,)),
    "bill_cancel_new": (_status, (POINTER(CancelP),)),
    "bill_cancel_trigger": (_status, (CancelP,)),
    "bill_cancel_is_triggered": (_status, (CancelP, POINTER(c_bool))),
    "bill_cancel_free": (None, (CancelP,)),
    "bill_set_max_renewal_workers": (_status, (c_uint32,)),
    "bill_call_options_new": (_status, (POINTER(CallOptionsP),)),
    "bill_call_options_free": (None, (CallOptionsP,)),
    "bill_call_options_set_timeout_ms": (_status, (CallOptionsP, c_uint32)),
    "bill_call_options_set_cancel": (_status, (CallOptionsP, CancelP)),
    "bill_call_with": (
        _status,
        (SessionP, c_char_p, c_char_p, _bytes_in, c_size_t, CallOptionsP, POINTER(ResponseP)),
    ),
    "bill_renew_with": (_status, (SessionP, CallOptionsP)),
    "bill_login_with": (_status, (OptionsP, CallOptionsP, POINTER(SessionP))),
    "bill_session_auth_headers": (_status, (SessionP, _char_buf, c_size_t, _size_p)),
    "bill_touch_sent": (_status, (SessionP, c_uint32)),
}


def _shared_lib_name() -> str:
    if sys.platform == "darwin":
        return "libbill.dylib"
    if sys.platform == "win32":
        return "bill.dll"
    return "libbill.so"


def _candidates() -> list[tuple[str, str]]:
    """(where it came from, what to pass to dlopen), in the order tried."""
    env = os.environ.get(ENV_VAR)
    if env:
        return [(f"${ENV_VAR}", env)]
    name = _shared_lib_name()
    found = [("bundled with the package", str(Path(__file__).resolve().parent / "_native" / name))]
    if sys.platform.startswith("linux"):
        # `make install` ships libbill.so.MAJOR (the SONAME) and a libbill.so symlink.
        found.append(("the dynamic loader's search path", f"{name}.{EXPECTED_MAJOR}"))
    found.append(("the dynamic loader's search path", name))
    return found


def _declare(cdll: ctypes.CDLL) -> None:
    for name, (restype, argtypes) in PROTOTYPES.items():
        fn = getattr(cdll, name)  # AttributeError when the symbol is missing
        fn.restype = restype
        fn.argtypes = list(argtypes)


def _check_version(cdll: ctypes.CDLL) -> None:
    raw = cdll.bill_version()
    text = raw.decode("ascii", "replace") if isinstance(raw, bytes) else "?"
    major = text.split(".", 1)[0]
    if major != str(EXPECTED_MAJOR):
        raise OSError(f"libbill {text} is not ABI-compatible with billsession (needs major {EXPECTED_MAJOR})")


def _load() -> tuple[ctypes.CDLL, str]:
    tried: list[str] = []
    for origin, path in _candidates():
        if os.sep in path and not os.path.exists(path):
            tried.append(f"  {path} ({origin}): no such file")
            continue
        try:
            cdll = ctypes.CDLL(path)
        except OSError as e:
            tried.append(f"  {path} ({origin}): {e}")
            continue
        try:
            _declare(cdll)
            _check_version(cdll)
        except (AttributeError, OSError) as e:
            tried.append(f"  {path} ({origin}): loaded but unusable: {e}")
            continue
        return cdll, path
    raise ImportError(
        "billsession: cannot load libbill. Looked in:\n"
        + "\n".join(tried)
        + f"\nInstall the package with `pip install ./bindings/python` (which builds and bundles libbill), "
        f"or set {ENV_VAR}=/path/to/{_shared_lib_name()}."
    )


lib, library_path = _load()
