"""billsession: stay signed in to the BILL (bill.com) API, via libbill's C ABI.

    import billsession

    with billsession.login(user_name=..., password=..., org_id=..., dev_key=...) as s:
        vendors = s.call("GET", "vendors", params={"max": 20}).json()
        s.logout()

The work is done by libbill (a Rust library with a C ABI) loaded with
ctypes: this package has no compiled code of its own.
"""

from __future__ import annotations

from ._errors import (
    APIError,
    AuthError,
    BillError,
    BillTimeoutError,
    BufferTooSmallError,
    CallCancelledError,
    ClosedError,
    ForkedError,
    InCallbackError,
    InternalError,
    InvalidArgError,
    MFARequiredError,
    NetworkError,
    NullArgError,
    PanicError,
    ProtocolError,
    RateLimitedError,
    ResponseTooLargeError,
    ServerError,
    SessionExpiredError,
    TLSError,
)
from ._ffi import library_path as _library_path
from ._ffi import lib as _lib
from ._async import AsyncSession, alogin
from ._session import Body, CancelToken, Duration, EventHandler, Params, Response, Secret, Session, Settings, login
from ._types import Api, Environment, Event, EventKind, RefreshMode, SignInKind, State, Status

__version__ = "0.1.0"

__all__ = [
    "alogin",
    "Api",
    "APIError",
    "AsyncSession",
    "AuthError",
    "BillError",
    "BillTimeoutError",
    "Body",
    "BufferTooSmallError",
    "CallCancelledError",
    "CancelToken",
    "ClosedError",
    "Duration",
    "Environment",
    "Event",
    "EventHandler",
    "EventKind",
    "ForkedError",
    "InCallbackError",
    "InternalError",
    "InvalidArgError",
    "library_path",
    "library_version",
    "login",
    "MFARequiredError",
    "NetworkError",
    "NullArgError",
    "PanicError",
    "Params",
    "ProtocolError",
    "RateLimitedError",
    "RefreshMode",
    "Response",
    "ResponseTooLargeError",
    "Secret",
    "ServerError",
    "Session",
    "SessionExpiredError",
    "Settings",
    "SignInKind",
    "State",
    "Status",
    "TLSError",
    "__version__",
]


def library_version() -> str:
    """The loaded libbill's version (bill_version), "MAJOR.MINOR.PATCH"."""
    raw = _lib.bill_version()
    return raw.decode("ascii", "replace") if isinstance(raw, bytes) else ""


def library_path() -> str:
    """The path (or name) of the libbill shared library that was loaded."""
    return _library_path
