"""Settings, login() and Session: thin wrappers over libbill's C API.

Nothing here re-implements libbill's logic (renewal, retries, single
flight, rate limits, error classification): every decision is made by the C
library. This module only converts Python values to C arguments and back,
manages handle lifetimes and turns statuses into exceptions.
"""

from __future__ import annotations

import contextlib
import ctypes
import itertools
import json as _json
import logging
import math
import os
import threading
import urllib.parse
from collections.abc import Callable, Iterator, Mapping, Sequence
from ctypes import byref, c_bool, c_size_t, c_uint8, c_uint16, c_uint32, create_string_buffer
from dataclasses import dataclass, field
from datetime import timedelta
from types import TracebackType
from typing import Any, Final, NoReturn, Union, overload

from ._errors import (
    BillError,
    ClosedError,
    InCallbackError,
    InvalidArgError,
    ProtocolError,
    error_for,
    error_from_last,
    read_text,
)
from ._ffi import EVENT_FN, CallOptionsP, CancelP, OptionsP, ResponseP, SessionP, lib
from ._types import Api, Environment, Event, EventKind, RefreshMode, SignInKind, State, Status, _enum_or_int

__all__ = [
    "Body",
    "CancelToken",
    "Duration",
    "EventHandler",
    "Params",
    "Response",
    "Secret",
    "Session",
    "Settings",
    "login",
]

#: A secret: str, bytes or bytearray. A bytearray is zeroed once login() has handed it to libbill.
Secret = Union[str, bytes, bytearray]
#: A duration: seconds (int or float) or a datetime.timedelta.
Duration = Union[float, int, timedelta]
#: A call body: dict/list (sent as JSON), str or bytes (sent as is), or None (empty).
Body = Union[dict[str, Any], list[Any], str, bytes, bytearray, memoryview, None]
#: The event callback: called with one Event; its return value is ignored.
EventHandler = Callable[[Event], object]
#: Query parameters: a mapping or (name, value) pairs; a list value repeats the name.
Params = Union[Mapping[str, Any], Sequence[tuple[str, Any]]]

#: Session events are logged here (never with a secret).
log = logging.getLogger("billsession")

_U32_MAX: Final = 2**32 - 1
_U64_MAX: Final = 2**64 - 1
_SIZE_MAX: Final = 2 ** (8 * ctypes.sizeof(c_size_t)) - 1

_REFRESH: Final = {"relogin": RefreshMode.RELOGIN, "keepalive": RefreshMode.KEEPALIVE, "lazy": RefreshMode.LAZY}
_SIGN_IN: Final = {"password": SignInKind.PASSWORD, "sync_token": SignInKind.SYNC_TOKEN}
_ENVIRONMENT: Final = {"production": Environment.PRODUCTION, "sandbox": Environment.SANDBOX}


@dataclass(frozen=True, kw_only=True, eq=False)
class Settings:
    """Everything login() needs. Secrets are kept out of ``repr``.

    Durations are seconds (int/float) or ``datetime.timedelta``; None keeps
    libbill's default. A bytearray secret is zeroed by login(), whether it
    succeeds or not, so a Settings holding one can be used for one login.
    """

    user_name: Secret = field(repr=False)
    password: Secret = field(repr=False)
    org_id: str
    dev_key: Secret = field(repr=False)
    api: int = Api.V3
    base_url: str | None = None
    environment: str | int = "production"
    idle_timeout: Duration | None = None
    renew_margin: Duration | None = None
    connect_timeout: Duration | None = None
    request_timeout: Duration | None = None
    refresh: str | int = "relogin"
    sign_in: str | int = "password"
    mfa_remember_id: Secret | None = field(default=None, repr=False)
    mfa_device: str | None = None
    ca_file: str | os.PathLike[str] | None = None
    max_response_bytes: int | None = None
    #: (count, window): at most ``count`` sign-ins per ``window`` for this devKey in the process.
    sign_in_budget: tuple[int, Duration] | None = None
    max_in_flight: int | None = None
    #: Extra hosts v2's apiEndPoint may point at (HTTPS only).
    api_endpoint_hosts: Sequence[str] = ()
    #: Fleet mode: a Redis URL (``redis://[user:password@]host:port[/db]``, ``rediss://``,
    #: ``unix:///path``) shared by every process with the same identity; a secret.
    shared_store: Secret | None = field(default=None, repr=False)
    #: Prefix of every Redis key fleet mode uses (libbill's default "bill:").
    store_key_prefix: str | None = None
    #: The most one Redis operation may take (libbill's default 0.25 s).
    store_timeout: Duration | None = None
    on_event: EventHandler | None = None


# ---------------------------------------------------------------------------
# Argument conversion (Python value -> C argument). Range checks stay in C;
# here only what ctypes cannot express (negative numbers, NUL bytes, types).


def _invalid(msg: str) -> NoReturn:
    raise InvalidArgError(msg)


def _uint(name: str, value: object, limit: int) -> int:
    if isinstance(value, bool) or not isinstance(value, int):
        raise TypeError(f"{name} must be an int")
    if value < 0 or value > limit:
        _invalid(f"{name} is out of range")
    return int(value)


def _ms(name: str, value: object) -> int:
    if isinstance(value, timedelta):
        ms = round(value / timedelta(milliseconds=1))
    elif isinstance(value, (int, float)) and not isinstance(value, bool):
        if not math.isfinite(value):
            _invalid(f"{name} must be a finite duration")
        ms = round(value * 1000)
    else:
        raise TypeError(f"{name} must be seconds (int or float) or a datetime.timedelta")
    if ms < 0 or ms > _U64_MAX:
        _invalid(f"{name} must be a non-negative duration")
    return ms


def _choice(name: str, value: object, names: dict[str, int]) -> int:
    if isinstance(value, str):
        key = value.strip().lower().replace("-", "_")
        if key not in names:
            _invalid(f"{name} must be one of {', '.join(repr(n) for n in names)}")
        return names[key]
    return _uint(name, value, _U32_MAX)


def _text(name: str, value: object) -> bytes:
    if isinstance(value, os.PathLike):
        value = os.fspath(value)
    if isinstance(value, str):
        data = value.encode("utf-8")
    elif isinstance(value, bytes):
        data = value
    else:
        raise TypeError(f"{name} must be a str")
    if b"\0" in data:
        _invalid(f"{name} must not contain a NUL character")
    return data


def _secret_buffer(name: str, value: object) -> tuple[bytearray, bool]:
    """The secret as a bytearray, and whether it is the caller's own (to be wiped by login)."""
    if isinstance(value, bytearray):
        return value, True
    if isinstance(value, str):
        return bytearray(value, "utf-8"), False
    if isinstance(value, bytes):
        return bytearray(value), False
    raise TypeError(f"{name} must be str, bytes or bytearray")


def _wipe(buf: bytearray) -> None:
    n = len(buf)
    if n:
        view = (c_uint8 * n).from_buffer(buf)
        lib.bill_wipe(view, n)
        del view


def _check(status: int) -> None:
    if status != Status.OK:
        raise error_from_last(status)


# ---------------------------------------------------------------------------
# Event callbacks.
#
# The C function pointer handed to libbill must stay valid for as long as
# libbill may call it: until BILL_EVENT_CLOSED, the last event of a session,
# which bill_session_free() delivers before it returns. So the Session owns
# the thunk and drops it only after bill_session_free() returned.

_tls = threading.local()


def _in_callback() -> bool:
    return bool(getattr(_tls, "depth", 0))


_serials = itertools.count(1)


def _log_event(serial: int, event: Event) -> None:
    """Logs a session event to the ``billsession`` logger. libbill's detail never holds a secret."""
    status = event.status.name if isinstance(event.status, Status) else str(event.status)
    if event.kind == EventKind.RENEWED:
        log.debug("session %d renewed", serial)
    elif event.kind == EventKind.RENEW_FAILED:
        log.warning("session %d: renewal failed (%s): %s", serial, status, event.detail)
    elif event.kind == EventKind.EXPIRED:
        log.warning("session %d expired: idle past its timeout without a renewal", serial)
    elif event.kind == EventKind.CLOSED:
        log.debug("session %d closed", serial)
    elif event.kind == EventKind.KEPT_ALIVE:
        log.debug("session %d kept alive", serial)
    elif event.kind == EventKind.STORE_DOWN:
        log.warning("session %d: the shared store stopped answering (%s): %s", serial, status, event.detail)
    elif event.kind == EventKind.STORE_UP:
        log.info("session %d: the shared store answers again", serial)
    else:
        log.debug("session %d: event %s (%s) %s", serial, event.kind, status, event.detail)


class _Hook:
    """Logs C events and forwards them to the user's callable. Holds no reference to the Session."""

    __slots__ = ("serial", "target", "thunk", "closed")

    def __init__(self, target: EventHandler | None) -> None:
        self.serial = next(_serials)
        self.target: EventHandler | None = target
        self.closed = False
        self.thunk = EVENT_FN(self._deliver)

    def _deliver(self, _user_data: int | None, kind: int, status: int, detail: bytes | None) -> None:
        if self.closed:
            return
        target = self.target
        event = Event(
            kind=_enum_or_int(EventKind, kind),
            status=_enum_or_int(Status, status),
            detail=(detail or b"").decode("utf-8", "replace"),
        )
        _tls.depth = getattr(_tls, "depth", 0) + 1
        try:
            _log_event(self.serial, event)
            # An exception here propagates to ctypes, which reports it through
            # sys.unraisablehook and returns normally to libbill: the
            # background thread carries on and later events still arrive.
            if target is not None:
                target(event)
        finally:
            _tls.depth -= 1


# ---------------------------------------------------------------------------


def _build_options(s: Settings, hook: _Hook) -> Any:
    """A new bill_options* for ``s``; the caller frees it. Wipes the caller's bytearrays."""
    owned: list[bytearray] = []  # caller's bytearrays: wiped at the end, success or not
    temps: list[bytearray] = []  # our own copies: wiped too
    opts = OptionsP()
    try:
        _check(lib.bill_options_new(byref(opts)))
        try:

            def secret(fn: Any, name: str, value: object) -> None:
                buf, theirs = _secret_buffer(name, value)
                (owned if theirs else temps).append(buf)
                n = len(buf)
                view = (c_uint8 * n).from_buffer(buf) if n else None
                try:
                    _check(fn(opts, view, n))
                finally:
                    del view

            secret(lib.bill_options_set_user_name, "user_name", s.user_name)
            secret(lib.bill_options_set_password, "password", s.password)
            secret(lib.bill_options_set_dev_key, "dev_key", s.dev_key)
            if s.shared_store is not None:
                buf, theirs = _secret_buffer("shared_store", s.shared_store)
                (owned if theirs else temps).append(buf)
                if 0 in buf:
                    _invalid("shared_store must not contain a NUL character")
                # A NUL-terminated copy in memory we wipe, passed as the C string.
                url = bytearray(len(buf) + 1)
                temps.append(url)
                url[: len(buf)] = buf
                c_url = (ctypes.c_char * len(url)).from_buffer(url)
                try:
                    _check(lib.bill_options_set_shared_store(opts, c_url))
                finally:
                    del c_url
            _check(lib.bill_options_set_org_id(opts, _text("org_id", s.org_id)))
            _check(lib.bill_options_set_api_version(opts, _uint("api", s.api, _U32_MAX)))
            _check(lib.bill_options_set_environment(opts, _choice("environment", s.environment, dict(_ENVIRONMENT))))
            if s.base_url is not None:
                _check(lib.bill_options_set_base_url(opts, _text("base_url", s.base_url)))
            for name, fn in (
                ("idle_timeout", lib.bill_options_set_idle_timeout_ms),
                ("renew_margin", lib.bill_options_set_renew_margin_ms),
                ("connect_timeout", lib.bill_options_set_connect_timeout_ms),
                ("request_timeout", lib.bill_options_set_request_timeout_ms),
            ):
                value = getattr(s, name)
                if value is not None:
                    _check(fn(opts, _ms(name, value)))
            _check(lib.bill_options_set_refresh_mode(opts, _choice("refresh", s.refresh, dict(_REFRESH))))
            _check(lib.bill_options_set_sign_in_kind(opts, _choice("sign_in", s.sign_in, dict(_SIGN_IN))))
            if s.mfa_remember_id is not None or s.mfa_device is not None:
                if s.mfa_remember_id is None or s.mfa_device is None:
                    _invalid("mfa_remember_id and mfa_device go together")
                buf, theirs = _secret_buffer("mfa_remember_id", s.mfa_remember_id)
                (owned if theirs else temps).append(buf)
                n = len(buf)
                view = (c_uint8 * n).from_buffer(buf) if n else None
                try:
                    _check(lib.bill_options_set_mfa_trust(opts, view, n, _text("mfa_device", s.mfa_device)))
                finally:
                    del view
            if s.ca_file is not None:
                _check(lib.bill_options_set_ca_file(opts, _text("ca_file", s.ca_file)))
            if s.max_response_bytes is not None:
                _check(lib.bill_options_set_max_response_bytes(opts, _uint("max_response_bytes", s.max_response_bytes, _SIZE_MAX)))
            if s.sign_in_budget is not None:
                try:
                    count, window = s.sign_in_budget
                except (TypeError, ValueError):
                    raise TypeError("sign_in_budget must be a (count, window) pair") from None
                _check(
                    lib.bill_options_set_sign_in_budget(
                        opts, _uint("sign_in_budget count", count, _U32_MAX), _ms("sign_in_budget window", window)
                    )
                )
            if s.max_in_flight is not None:
                _check(lib.bill_options_set_max_in_flight(opts, _uint("max_in_flight", s.max_in_flight, _U32_MAX)))
            if isinstance(s.api_endpoint_hosts, (str, bytes)):
                raise TypeError("api_endpoint_hosts must be a sequence of host names")
            for host in s.api_endpoint_hosts:
                _check(lib.bill_options_allow_api_endpoint_host(opts, _text("api_endpoint_hosts", host)))
            if s.store_key_prefix is not None:
                _check(lib.bill_options_set_store_key_prefix(opts, _text("store_key_prefix", s.store_key_prefix)))
            if s.store_timeout is not None:
                _check(lib.bill_options_set_store_timeout_ms(opts, _ms("store_timeout", s.store_timeout)))
            _check(lib.bill_options_set_event_callback(opts, hook.thunk, None))
        except BaseException:
            lib.bill_options_free(opts)
            raise
        return opts
    finally:
        for buf in owned + temps:
            _wipe(buf)


@overload
def login(settings: Settings, /) -> Session: ...


@overload
def login(
    *,
    user_name: Secret,
    password: Secret,
    org_id: str,
    dev_key: Secret,
    api: int = 3,
    base_url: str | None = None,
    environment: str | int = "production",
    idle_timeout: Duration | None = None,
    renew_margin: Duration | None = None,
    connect_timeout: Duration | None = None,
    request_timeout: Duration | None = None,
    refresh: str | int = "relogin",
    sign_in: str | int = "password",
    mfa_remember_id: Secret | None = None,
    mfa_device: str | None = None,
    ca_file: str | os.PathLike[str] | None = None,
    max_response_bytes: int | None = None,
    sign_in_budget: tuple[int, Duration] | None = None,
    max_in_flight: int | None = None,
    api_endpoint_hosts: Sequence[str] = (),
    shared_store: Secret | None = None,
    store_key_prefix: str | None = None,
    store_timeout: Duration | None = None,
    on_event: EventHandler | None = None,
) -> Session: ...


def login(settings: Settings | None = None, /, **kwargs: Any) -> Session:
    """Signs in (bill_login) and returns a Session that libbill keeps signed in.

    Pass either a :class:`Settings` or the same fields as keyword arguments.
    Blocks for the sign-in. Raises a :class:`BillError` subclass on failure
    (AuthError, NetworkError, ...), or TypeError for arguments of the wrong type.
    """
    if settings is None:
        settings = Settings(**kwargs)
    elif kwargs:
        raise TypeError("login() takes either a Settings object or keyword arguments, not both")
    elif not isinstance(settings, Settings):
        raise TypeError("login() takes a billsession.Settings object")
    return _login(settings, None)


def _login(settings: Settings, cancel: CancelToken | None) -> Session:
    if _in_callback():
        raise InCallbackError("login() cannot be called inside an event callback")
    hook = _Hook(settings.on_event)
    opts = _build_options(settings, hook)
    handle = SessionP()
    try:
        with _call_options(None, cancel) as co:
            if co is None:
                status = int(lib.bill_login(opts, byref(handle)))
            else:
                status = int(lib.bill_login_with(opts, co, byref(handle)))
        if status != Status.OK:
            raise error_from_last(status)
    finally:
        lib.bill_options_free(opts)
    log.debug("session %d signed in (API v%d)", hook.serial, int(settings.api))
    return Session(handle, Api(settings.api), hook, _origin_of(_base_url(settings)))


def _encode_body(body: Body) -> bytes:
    if body is None:
        return b""
    if isinstance(body, (dict, list, tuple)):
        return _json.dumps(body, separators=(",", ":"), ensure_ascii=False).encode("utf-8")
    if isinstance(body, str):
        return body.encode("utf-8")
    if isinstance(body, (bytes, bytearray, memoryview)):
        return bytes(body)
    raise TypeError("body must be a dict or list (sent as JSON), str, bytes or None")


_DEFAULT_BASE: Final[dict[tuple[int, int], str]] = {
    (Api.V2, Environment.PRODUCTION): "https://api.bill.com/api/v2",
    (Api.V2, Environment.SANDBOX): "https://api-stage.bill.com/api/v2",
    (Api.V3, Environment.PRODUCTION): "https://gateway.prod.bill.com/connect",
    (Api.V3, Environment.SANDBOX): "https://gateway.stage.bill.com/connect",
}


def _base_url(s: Settings) -> str:
    """The base URL the session talks to: base_url, or libbill's default for the API and environment."""
    if s.base_url is not None:
        return s.base_url
    env = _choice("environment", s.environment, dict(_ENVIRONMENT))
    return _DEFAULT_BASE.get((int(s.api), env), "")


def _origin_of(url: str) -> str:
    """scheme://host:port in lower case, with the scheme's default port spelled out; "" if unparsable."""
    try:
        u = urllib.parse.urlsplit(url)
        port = u.port
    except ValueError:
        return ""
    scheme = u.scheme.lower()
    if not u.hostname:
        return ""
    if port is None:
        port = {"https": 443, "http": 80}.get(scheme)
    return f"{scheme}://{u.hostname.lower()}:{port}"


# Characters left as they are when quoting a path or query the caller wrote:
# URL syntax and percent escapes they already made.
_PATH_SAFE: Final = "/%:@!$&'()*+,;=-._~"
_QUERY_SAFE: Final = _PATH_SAFE + "?"


def _with_params(path: str, params: Params | None) -> str:
    """``path`` with spaces and other characters URL-encoded, and ``params`` appended as a query string."""
    base, sep, query = path.partition("?")
    out = urllib.parse.quote(base, safe=_PATH_SAFE)
    if sep:
        out += "?" + urllib.parse.quote(query, safe=_QUERY_SAFE)
    if params:
        items = params.items() if isinstance(params, Mapping) else params
        pairs: list[tuple[str, Any]] = []
        for name, value in items:
            values = value if isinstance(value, (list, tuple)) else [value]
            for v in values:
                if v is None:
                    continue
                if isinstance(v, bool):
                    v = "true" if v else "false"
                pairs.append((str(name), v))
        if pairs:
            encoded = urllib.parse.urlencode(pairs, quote_via=urllib.parse.quote)
            out += ("&" if sep and query else "" if sep else "?") + encoded
    return out


def _timeout_ms(timeout: Duration | None) -> int | None:
    """A per-call timeout in ms (at least 1); 0 when it cannot shorten anything; None for the session's own."""
    if timeout is None:
        return None
    ms = _ms("timeout", timeout)
    seconds = timeout.total_seconds() if isinstance(timeout, timedelta) else timeout
    if seconds <= 0:
        _invalid("timeout must be positive (None uses the session's request_timeout)")
    return 0 if ms > _U32_MAX else max(ms, 1)


class CancelToken:
    """Cancels the calls it is passed to (``call(..., cancel=token)``), from any thread.

    ``cancel()`` aborts their HTTP exchange at once; they raise
    :class:`CallCancelledError`. It is idempotent, and later calls with the
    token fail at once. The asyncio API uses one per call, so cancelling a
    task cancels its call.
    """

    def __init__(self) -> None:
        handle = CancelP()
        _check(lib.bill_cancel_new(byref(handle)))
        self._handle: Any = handle
        self._cancelled = False

    @property
    def cancelled(self) -> bool:
        """True once :meth:`cancel` was called."""
        return self._cancelled

    def cancel(self) -> None:
        """Cancels every call using this token, now and later (bill_cancel_trigger). Any thread."""
        self._cancelled = True
        _check(lib.bill_cancel_trigger(self._handle))

    def __del__(self) -> None:
        # A call using the token holds a reference to it, so it is not in use here.
        handle = getattr(self, "_handle", None)
        if handle:
            self._handle = None
            lib.bill_cancel_free(handle)

    def __reduce__(self) -> NoReturn:
        raise TypeError("a billsession.CancelToken cannot be pickled or copied")


@contextlib.contextmanager
def _call_options(timeout_ms: int | None, cancel: CancelToken | None) -> Iterator[Any]:
    """bill_call_options for one call, or None when the plain C function will do."""
    if timeout_ms is None and cancel is None:
        yield None
        return
    if cancel is not None and not isinstance(cancel, CancelToken):
        raise TypeError("cancel must be a billsession.CancelToken")
    opts = CallOptionsP()
    _check(lib.bill_call_options_new(byref(opts)))
    try:
        if timeout_ms is not None:
            _check(lib.bill_call_options_set_timeout_ms(opts, timeout_ms))
        if cancel is not None:
            _check(lib.bill_call_options_set_cancel(opts, cancel._handle))
        yield opts
    finally:
        lib.bill_call_options_free(opts)


class Response:
    """BILL's reply to :meth:`Session.call`.

    ``status`` is the HTTP status, ``content`` the body as bytes (v2: BILL's
    whole envelope), ``headers`` None (libbill does not hand reply headers
    on). ``json()`` parses the body (None when it is empty), ``text`` decodes it.
    """

    __slots__ = ("status", "content", "headers")

    def __init__(self, status: int, content: bytes, headers: Mapping[str, str] | None = None) -> None:
        self.status = status
        self.content = content
        self.headers = headers

    @property
    def ok(self) -> bool:
        """True for HTTP 2xx and 3xx."""
        return 200 <= self.status < 400

    @property
    def text(self) -> str:
        """The body decoded as UTF-8."""
        return self.content.decode("utf-8", "replace")

    def json(self) -> Any:
        """The body parsed as JSON; None for an empty body. ProtocolError if it is not JSON."""
        if not self.content.strip():
            return None
        try:
            return _json.loads(self.content)
        except ValueError:
            raise ProtocolError(f"the reply is not JSON (HTTP {self.status})") from None

    def __repr__(self) -> str:
        return f"<billsession.Response [{self.status}] {len(self.content)} bytes>"


class Session:
    """A signed-in BILL session kept alive by libbill. Create it with :func:`login`.

    All methods are thread-safe. ``close()`` (or leaving a ``with`` block)
    frees the C session without contacting BILL; ``logout()`` signs out on
    the server first. After either, methods raise :class:`ClosedError`.
    """

    #: First buffer size for ``id``; grown on BILL_ERR_BUFFER_TOO_SMALL.
    _id_capacity = 96

    def __init__(self, handle: Any, api: Api, hook: _Hook | None, origin: str = "") -> None:
        """Internal: use :func:`login`."""
        self._handle: Any = handle
        self._api = api
        self._hook = hook
        self._origin = origin
        self._cond = threading.Condition(threading.Lock())
        self._active = 0
        self._closing = False
        self._freed = False
        self._logged_out = False

    # -- handle lifetime -----------------------------------------------------

    def _enter(self) -> Any:
        with self._cond:
            if self._closing:
                raise ClosedError("the session was closed")
            self._active += 1
            return self._handle

    @contextlib.contextmanager
    def _using(self) -> Iterator[Any]:
        """The C handle, kept from being freed until the block ends."""
        h = self._enter()
        try:
            yield h
        finally:
            self._leave()

    def _leave(self) -> None:
        with self._cond:
            self._active -= 1
            if self._active == 0 and self._closing:
                self._cond.notify_all()

    def close(self) -> None:
        """Stops renewals and frees the session (bill_session_free), without contacting BILL.

        Idempotent and thread-safe: waits for calls in progress on other
        threads to return first, and a second concurrent close() waits for the
        first. Cannot be called from inside an event callback (InCallbackError).
        """
        if _in_callback():
            raise InCallbackError("close() cannot be called inside an event callback")
        with self._cond:
            if self._closing:
                while not self._freed:
                    self._cond.wait()
                return
            self._closing = True
            while self._active:
                self._cond.wait()
            handle, self._handle = self._handle, None
        self._free(handle)

    def _free(self, handle: Any) -> None:
        try:
            lib.bill_session_free(handle)
        finally:
            hook, self._hook = self._hook, None
            if hook is not None:
                hook.closed = True  # nothing calls it any more; drop the user's callable now
                hook.target = None
            with self._cond:
                self._freed = True
                self._cond.notify_all()

    def __del__(self) -> None:
        cond = getattr(self, "_cond", None)
        if cond is None or getattr(self, "_closing", True):
            return
        try:
            with cond:
                self._closing = True
                handle, self._handle = self._handle, None
            if _in_callback():
                # Freeing the last session joins libbill's background thread,
                # which is this very thread: hand the free to another one.
                threading.Thread(target=self._free, args=(handle,), name="billsession-free", daemon=True).start()
            else:
                self._free(handle)
        except Exception:  # interpreter shutdown and the like: never raise from __del__
            pass

    def __enter__(self) -> Session:
        return self

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        self.close()

    def __reduce__(self) -> NoReturn:
        raise TypeError("a billsession.Session cannot be pickled or copied")

    def __repr__(self) -> str:
        if self._closing:
            return f"<billsession.Session api=v{int(self._api)} closed>"
        try:
            state = self.state.name
        except BillError:
            state = "?"
        return f"<billsession.Session api=v{int(self._api)} state={state}>"

    # -- properties ------------------------------------------------------------

    @property
    def api(self) -> Api:
        """The BILL API version this session signed in with."""
        return self._api

    @property
    def closed(self) -> bool:
        """True after close() or logout()."""
        return self._closing or self._logged_out

    @property
    def id(self) -> str:
        """The current session id (bill_session_id). Never waits on the network.

        The id is a secret: do not log it. Raises SessionExpiredError when the
        session idled past its timeout, ClosedError after logout/close.
        """
        return self._read_secret(lib.bill_session_id)

    def _read_secret(self, fn: Callable[..., int]) -> str:
        """Text from a ``(session, buf, cap, *len)`` function, through a buffer wiped after decoding."""
        with self._using() as h:
            cap = self._id_capacity
            for _ in range(16):
                buf = create_string_buffer(cap)
                n = c_size_t(0)
                status = int(fn(h, buf, cap, byref(n)))
                if status == Status.OK:
                    try:
                        return ctypes.string_at(buf, n.value).decode("utf-8")
                    finally:
                        lib.bill_wipe(buf, cap)
                err = error_from_last(status) if status != Status.ERR_BUFFER_TOO_SMALL else None
                lib.bill_wipe(buf, cap)
                if err is not None:
                    raise err
                cap = n.value if n.value > cap else cap * 2
            raise error_for(Status.ERR_BUFFER_TOO_SMALL, "the text kept growing")

    def auth_headers(self) -> dict[str, str]:
        """The headers a v3 request needs, ``{"devKey": ..., "sessionId": ...}`` (bill_session_auth_headers).

        For your own HTTP client (``billsession.httpx`` and
        ``billsession.requests`` use it for you). Never waits on the network.
        Secret material: do not log it. Record the use afterwards with
        :meth:`touch_sent`. Raises SessionExpiredError when the session idled
        out (renew() signs in again); v3 sessions only.
        """
        raw = self._read_secret(lib.bill_session_auth_headers)
        headers: dict[str, str] = {}
        for line in raw.split("\r\n"):
            name, sep, value = line.partition(": ")
            if sep and name:
                headers[name] = value
        return headers

    @property
    def state(self) -> State:
        """The session's :class:`State` (bill_session_state). Never blocks."""
        with self._using() as h:
            out = c_uint32(0)
            _check(lib.bill_session_state(h, byref(out)))
            return State(out.value)

    @property
    def trusted(self) -> bool:
        """Whether BILL reported the current session as MFA-trusted (bill_session_trusted)."""
        with self._using() as h:
            out = c_bool(False)
            _check(lib.bill_session_trusted(h, byref(out)))
            return bool(out.value)

    @property
    def last_renew_error(self) -> BillError | None:
        """The most recent renewal failure as an exception object (not raised), or None."""
        with self._using() as h:
            st = c_uint32(0)
            detail = read_text(lib.bill_session_error, h, byref(st), raise_errors=True)
            if st.value == Status.OK:
                return None
            code = read_text(lib.bill_session_error_code, h, raise_errors=True) or None
            return error_for(st.value, detail, code)

    # -- actions ---------------------------------------------------------------

    def touch(self) -> None:
        """Records use of the session (bill_touch), postponing renewal. Cheap; any thread."""
        with self._using() as h:
            _check(lib.bill_touch(h))

    def touch_sent(self, ago: float) -> None:
        """Records a use by a request sent ``ago`` seconds before now (bill_touch_sent).

        For your own HTTP calls: BILL restarts its idle timer when the request
        arrives, not when the reply is read.
        """
        ms = max(0, min(_U32_MAX, int(ago * 1000)))
        with self._using() as h:
            _check(lib.bill_touch_sent(h, ms))

    def renew(self, *, timeout: Duration | None = None, cancel: CancelToken | None = None) -> None:
        """Signs in again now (bill_renew); threads calling at once share one sign-in.

        ``timeout`` shortens the session's request_timeout for this sign-in;
        ``cancel`` (a :class:`CancelToken`) lets another thread abort it.
        """
        timeout_ms = _timeout_ms(timeout)
        with self._using() as h, _call_options(timeout_ms, cancel) as co:
            if co is None:
                _check(lib.bill_renew(h))
            else:
                _check(lib.bill_renew_with(h, co))

    def call(
        self,
        method: str | None,
        path: str,
        body: Body = None,
        *,
        params: Params | None = None,
        json: Any = None,
        timeout: Duration | None = None,
        cancel: CancelToken | None = None,
    ) -> Response:
        """Makes an authenticated call (bill_call) and returns BILL's reply as a :class:`Response`.

        v3: ``method`` GET/POST/PUT/PATCH/DELETE, ``path`` below ``{base}/v3/``
        (e.g. ``"vendors"``), ``params`` the query (encoded for you), ``json``
        the body as a Python value (or ``body``: dict/list as JSON, str/bytes as
        is). v2: ``method`` None or "POST", ``path`` such as ``"List/Vendor"``,
        the body the ``data`` JSON. libbill recovers from an expired session
        with one shared sign-in.

        ``timeout`` (seconds or timedelta) shortens the session's
        request_timeout for this call (BillTimeoutError, also a builtin
        TimeoutError); ``cancel`` lets another thread abort it
        (CallCancelledError). A BILL error raises; the reply of a success is returned.
        """
        m, p, data, timeout_ms = self._prepare(method, path, body, params, json, timeout)
        status, reply = self._call(m, p, data, timeout_ms, cancel)
        return Response(status, reply)

    def call_json(
        self,
        method: str | None,
        path: str,
        body: Body = None,
        *,
        params: Params | None = None,
        json: Any = None,
        timeout: Duration | None = None,
        cancel: CancelToken | None = None,
    ) -> Any:
        """Like :meth:`call`, but returns the reply parsed as JSON (None for an empty reply).

        This is what ``call()`` returned before it returned a Response.
        """
        return self.call(method, path, body, params=params, json=json, timeout=timeout, cancel=cancel).json()

    def call_raw(
        self,
        method: str | None,
        path: str,
        body: Body = None,
        *,
        params: Params | None = None,
        json: Any = None,
        timeout: Duration | None = None,
        cancel: CancelToken | None = None,
    ) -> tuple[int, bytes]:
        """Like :meth:`call`, but returns ``(HTTP status, reply body)``."""
        r = self.call(method, path, body, params=params, json=json, timeout=timeout, cancel=cancel)
        return r.status, r.content

    def _prepare(
        self, method: str | None, path: str, body: Body, params: Params | None, json: Any, timeout: Duration | None
    ) -> tuple[bytes | None, bytes, bytes, int | None]:
        if body is not None and json is not None:
            raise TypeError("pass the body either as body= or as json=, not both")
        if not isinstance(path, str):
            raise TypeError("path must be a str")
        if params is not None and self._api == Api.V2:
            _invalid("params= is for the v3 API; v2 calls take their fields in the body")
        m = _text("method", method) if method is not None else None
        _text("path", path)  # a NUL is refused, not escaped
        p = _text("path", _with_params(path, params))
        data = _json.dumps(json, separators=(",", ":"), ensure_ascii=False).encode("utf-8") if json is not None else _encode_body(body)
        return m, p, data, _timeout_ms(timeout)

    def _call(
        self, m: bytes | None, p: bytes, data: bytes, timeout_ms: int | None, cancel: CancelToken | None
    ) -> tuple[int, bytes]:
        n = len(data)
        buf = (c_uint8 * n).from_buffer_copy(data) if n else None
        resp = ResponseP()
        try:
            with self._using() as h, _call_options(timeout_ms, cancel) as co:
                if co is None:
                    status = int(lib.bill_call(h, m, p, buf, n, byref(resp)))
                else:
                    status = int(lib.bill_call_with(h, m, p, buf, n, co, byref(resp)))
                if status != Status.OK:
                    raise error_from_last(status)
        finally:
            if buf is not None:
                lib.bill_wipe(buf, n)  # the body may be sensitive: do not leave a copy behind
        try:
            ptr = ctypes.POINTER(c_uint8)()
            length = c_size_t(0)
            _check(lib.bill_response_body(resp, byref(ptr), byref(length)))
            reply = ctypes.string_at(ptr, length.value) if length.value else b""
            http = c_uint16(0)
            _check(lib.bill_response_http_status(resp, byref(http)))
            return int(http.value), reply
        finally:
            lib.bill_response_free(resp)

    def _same_origin(self, url: str) -> bool:
        """Whether ``url`` is on the origin of this session's base URL (where its headers may go)."""
        return bool(self._origin) and _origin_of(url) == self._origin

    def logout(self) -> None:
        """Signs out on BILL's side (bill_logout) and stops renewals.

        The session is closed afterwards even when this raises (the server
        could not confirm). Still free it with close() or a ``with`` block.
        """
        if _in_callback():
            raise InCallbackError("logout() cannot be called inside an event callback")
        with self._using() as h:
            status = int(lib.bill_logout(h))
            self._logged_out = True
            if status != Status.OK:
                raise error_from_last(status)
