"""Python mirrors of the C enums in include/bill.h, and the Event record."""

from __future__ import annotations

import enum
from dataclasses import dataclass


class Status(enum.IntEnum):
    """``bill_status``: the result of every fallible C call."""

    OK = 0
    ERR_NULL_ARG = 1
    ERR_INVALID_ARG = 2
    ERR_BUFFER_TOO_SMALL = 3
    ERR_AUTH = 4
    ERR_SESSION_EXPIRED = 5
    ERR_NETWORK = 6
    ERR_TIMEOUT = 7
    ERR_PROTOCOL = 8
    ERR_RATE_LIMITED = 9
    ERR_MFA_REQUIRED = 10
    ERR_API = 11
    ERR_CLOSED = 12
    ERR_PANIC = 13
    ERR_FORKED = 14
    ERR_TLS = 15
    ERR_SERVER = 16
    ERR_RESPONSE_TOO_LARGE = 17
    ERR_IN_CALLBACK = 18
    ERR_INTERNAL = 19
    ERR_CANCELLED = 20


class EventKind(enum.IntEnum):
    """``bill_event``: what an event callback is told."""

    RENEWED = 1
    RENEW_FAILED = 2
    EXPIRED = 3
    CLOSED = 4
    KEPT_ALIVE = 5
    STORE_DOWN = 6
    STORE_UP = 7


class State(enum.IntEnum):
    """``bill_state``: a session's state, as ``Session.state`` reports it."""

    ACTIVE = 1
    RENEWING = 2
    EXPIRED = 3
    FAILED = 4
    CLOSED = 5


class Api(enum.IntEnum):
    """``bill_api``: BILL API version."""

    V2 = 2
    V3 = 3


class Environment(enum.IntEnum):
    """``bill_environment``: which BILL environment the default base URL points at."""

    PRODUCTION = 0
    SANDBOX = 1


class RefreshMode(enum.IntEnum):
    """``bill_refresh_mode``: what happens as a session nears its idle timeout."""

    RELOGIN = 0
    KEEPALIVE = 1
    LAZY = 2


class SignInKind(enum.IntEnum):
    """``bill_sign_in_kind``: password or AP & AR sync-token sign-in."""

    PASSWORD = 0
    SYNC_TOKEN = 1


@dataclass(frozen=True)
class Event:
    """One session event, as passed to ``on_event``.

    ``kind`` is an :class:`EventKind` (a plain int if a newer libbill sends a
    kind this package does not know), ``status`` the related status
    (``Status.OK`` unless the event reports a failure), ``detail`` libbill's
    explanation ("" when there is no error). Never contains a secret.
    """

    kind: EventKind | int
    status: Status | int
    detail: str


def _enum_or_int(cls: type[enum.IntEnum], value: int) -> int:
    try:
        return cls(value)
    except ValueError:
        return value
