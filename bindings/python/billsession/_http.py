"""What the httpx and requests integrations share: signing, and spotting a refused session."""

from __future__ import annotations

import time
from collections.abc import MutableMapping
from typing import Union

from ._async import AsyncSession
from ._errors import ClosedError, SessionExpiredError
from ._session import Session, log

__all__ = ["AnySession", "as_session", "is_session_invalid", "record_use", "sign"]

AnySession = Union[Session, AsyncSession]

#: How much of a 4xx reply is looked at for BDC_1109.
PEEK_LIMIT = 64 * 1024


def as_session(session: AnySession) -> Session:
    if isinstance(session, AsyncSession):
        return session.session
    if not isinstance(session, Session):
        raise TypeError("Auth takes a billsession.Session or AsyncSession")
    return session


def sign(session: Session, headers: MutableMapping[str, str]) -> float:
    """Sets devKey and sessionId; returns when (time.monotonic) the request goes out.

    A session that idled out is renewed first (that blocks: the async flows
    call it on a worker thread).
    """
    try:
        auth = session.auth_headers()
    except SessionExpiredError:
        log.debug("session idled out; signing in again before the request")
        session.renew()
        auth = session.auth_headers()
    headers.update(auth)
    return time.monotonic()


def is_session_invalid(status: int, body: bytes | None) -> bool:
    """HTTP 401, or a 4xx reply carrying BDC_1109 (Session is invalid)."""
    if status == 401:
        return True
    return 400 <= status < 500 and body is not None and b'"BDC_1109"' in body[:PEEK_LIMIT]


def record_use(session: Session, status: int, sent: float) -> None:
    """Records the use after a reply BILL accepted (BILL's idle timer restarts only for those)."""
    if status < 400:
        try:
            session.touch_sent(time.monotonic() - sent)
        except (SessionExpiredError, ClosedError):
            pass  # it ended meanwhile: the reply is still good; the next request renews or fails
