"""Exceptions: one subclass of BillError per bill_status.

The detail of a failure lives in libbill's thread-local last-error slot.
``error_from_last`` must run on the thread that made the failing call, right
after it: ctypes releases the GIL during a call but stays on the same OS
thread, so reading it immediately in the same Python function is correct.
"""

from __future__ import annotations

import builtins
import re
from ctypes import byref, c_size_t, create_string_buffer
from typing import Any, Callable

from ._ffi import lib
from ._types import Status

_CODE = re.compile(r"^(BDC_\d+)\b")


class BillError(Exception):
    """Base class of every libbill failure.

    Attributes:
        status: the :class:`Status` (an int for statuses newer than this package).
        code: BILL's error code such as ``"BDC_1101"``, or None.
        message: libbill's detail; BILL's code and message when BILL sent one.
            Never contains a secret.
        retry_after: for rate limiting, seconds until retrying makes sense; else None.
    """

    default_status: Status | None = None

    def __init__(
        self,
        message: str = "",
        status: int | None = None,
        code: str | None = None,
        retry_after: float | None = None,
    ) -> None:
        if status is None:
            status = self.default_status if self.default_status is not None else Status.ERR_INTERNAL
        try:
            status = Status(status)
        except ValueError:
            pass
        if not message:
            message = _status_str(status)
        super().__init__(message)
        self.status: Status | int = status
        self.code: str | None = code or None
        self.message: str = message
        self.retry_after: float | None = retry_after

    def __str__(self) -> str:
        return self.message

    def __repr__(self) -> str:
        name = self.status.name if isinstance(self.status, Status) else str(self.status)
        return f"{type(self).__name__}(status={name}, code={self.code!r}, message={self.message!r})"

    def __reduce__(self) -> tuple[Callable[..., BillError], tuple[Any, ...]]:
        return (type(self), (self.message, int(self.status), self.code, self.retry_after))


class NullArgError(BillError, ValueError):
    """BILL_ERR_NULL_ARG: a required argument was missing."""

    default_status = Status.ERR_NULL_ARG


class InvalidArgError(BillError, ValueError):
    """BILL_ERR_INVALID_ARG: an argument was out of range, malformed or unknown."""

    default_status = Status.ERR_INVALID_ARG


class BufferTooSmallError(BillError):
    """BILL_ERR_BUFFER_TOO_SMALL (handled inside the package; not normally seen)."""

    default_status = Status.ERR_BUFFER_TOO_SMALL


class AuthError(BillError):
    """BILL_ERR_AUTH: BILL refused the credentials, devKey or organization."""

    default_status = Status.ERR_AUTH


class SessionExpiredError(BillError):
    """BILL_ERR_SESSION_EXPIRED: the session is no longer valid."""

    default_status = Status.ERR_SESSION_EXPIRED


class NetworkError(BillError):
    """BILL_ERR_NETWORK: connection refused, reset, DNS failure..."""

    default_status = Status.ERR_NETWORK


class BillTimeoutError(BillError, builtins.TimeoutError):
    """BILL_ERR_TIMEOUT: a connect or request timeout passed. Also a builtins.TimeoutError."""

    default_status = Status.ERR_TIMEOUT


class ProtocolError(BillError):
    """BILL_ERR_PROTOCOL: BILL's reply could not be understood."""

    default_status = Status.ERR_PROTOCOL


class RateLimitedError(BillError):
    """BILL_ERR_RATE_LIMITED: BDC_1144/BDC_1322 or the sign-in budget; see ``retry_after``."""

    default_status = Status.ERR_RATE_LIMITED


class MFARequiredError(BillError):
    """BILL_ERR_MFA_REQUIRED: BDC_1361, the operation needs an MFA-trusted session."""

    default_status = Status.ERR_MFA_REQUIRED


class APIError(BillError):
    """BILL_ERR_API: any other BILL error; see ``code``."""

    default_status = Status.ERR_API


class ClosedError(BillError):
    """BILL_ERR_CLOSED: the session was logged out or closed."""

    default_status = Status.ERR_CLOSED


class PanicError(BillError):
    """BILL_ERR_PANIC: a bug inside libbill was caught at the boundary."""

    default_status = Status.ERR_PANIC


class ForkedError(BillError):
    """BILL_ERR_FORKED: the session was created before fork() and cannot be used in the child."""

    default_status = Status.ERR_FORKED


class TLSError(BillError):
    """BILL_ERR_TLS: TLS failed, for example an untrusted certificate."""

    default_status = Status.ERR_TLS


class ServerError(BillError):
    """BILL_ERR_SERVER: HTTP 5xx or BDC_1001 (transient)."""

    default_status = Status.ERR_SERVER


class ResponseTooLargeError(BillError):
    """BILL_ERR_RESPONSE_TOO_LARGE: the reply exceeded ``max_response_bytes``."""

    default_status = Status.ERR_RESPONSE_TOO_LARGE


class InCallbackError(BillError):
    """BILL_ERR_IN_CALLBACK: a blocking call was made inside an event callback."""

    default_status = Status.ERR_IN_CALLBACK


class InternalError(BillError):
    """BILL_ERR_INTERNAL: an internal error that is not a panic."""

    default_status = Status.ERR_INTERNAL


class CallCancelledError(BillError):
    """BILL_ERR_CANCELLED: the call was cancelled (a CancelToken, or its asyncio task)."""

    default_status = Status.ERR_CANCELLED


_BY_STATUS: dict[int, type[BillError]] = {
    cls.default_status: cls
    for cls in (
        NullArgError,
        InvalidArgError,
        BufferTooSmallError,
        AuthError,
        SessionExpiredError,
        NetworkError,
        BillTimeoutError,
        ProtocolError,
        RateLimitedError,
        MFARequiredError,
        APIError,
        ClosedError,
        PanicError,
        ForkedError,
        TLSError,
        ServerError,
        ResponseTooLargeError,
        InCallbackError,
        InternalError,
        CallCancelledError,
    )
    if cls.default_status is not None
}


def _status_str(status: int) -> str:
    raw = lib.bill_status_str(int(status))
    return raw.decode("utf-8", "replace") if isinstance(raw, bytes) else "unknown status"


def read_text(fn: Callable[..., int], *lead: Any, raise_errors: bool = False) -> str:
    """Calls a ``(..., char *buf, size_t cap, size_t *len)`` function, growing the buffer as needed.

    Returns "" on any other failure, or raises it when ``raise_errors``.
    """
    cap = 256
    for _ in range(16):
        buf = create_string_buffer(cap)
        n = c_size_t(0)
        st = int(fn(*lead, buf, cap, byref(n)))
        if st == Status.OK:
            return buf.raw[: n.value].decode("utf-8", "replace")
        if st != Status.ERR_BUFFER_TOO_SMALL:
            if raise_errors:
                raise error_from_last(st)
            return ""
        cap = n.value if n.value > cap else cap * 2
    return ""


def error_for(status: int, message: str = "", code: str | None = None, retry_after: float | None = None) -> BillError:
    """Builds the BillError subclass for ``status``."""
    cls = _BY_STATUS.get(int(status), BillError)
    return cls(message, status=status, code=code, retry_after=retry_after)


def error_from_last(status: int) -> BillError:
    """The error for a call that just returned ``status`` on this thread, with libbill's detail."""
    detail = read_text(lib.bill_last_error)
    code = read_text(lib.bill_last_error_code) or None
    retry_ms = int(lib.bill_last_error_retry_after_ms())
    retry_after = retry_ms / 1000.0 if retry_ms else None
    if code is None:
        m = _CODE.match(detail)
        code = m.group(1) if m else None
    return error_for(status, detail, code, retry_after)

