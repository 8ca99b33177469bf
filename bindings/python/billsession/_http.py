"""What the httpx and requests integrations share: signing, and spotting a refused session."""

from __future__ import annotations

import time
from collections.abc import MutableMapping
from typing import NamedTuple, Union

from ._async import AsyncSession
from ._errors import ClosedError, SessionExpiredError
from ._session import CancelToken, Session, log

__all__ = ["AnySession", "Signed", "as_session", "is_session_invalid", "record_use", "renew_unless_replaced", "sign"]

AnySession = Union[Session, AsyncSession]

#: How much of a 4xx reply is looked at for BDC_1109.
PEEK_LIMIT = 64 * 1024


def as_session(session: AnySession) -> Session:
    if isinstance(session, AsyncSession):
        return session.session
    if not isinstance(session, Session):
        raise TypeError("Auth takes a billsession.Session or AsyncSession")
    return session


class Signed(NamedTuple):
    """When (time.monotonic) a signed request went out, and which session id it carried."""

    sent: float
    session_id: str


def sign(session: Session, headers: MutableMapping[str, str]) -> Signed:
    """Sets devKey and sessionId; returns when the request goes out and the id it carries.

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
    return Signed(time.monotonic(), auth.get("sessionId", ""))


def renew_unless_replaced(session: Session, signed: Signed, cancel: CancelToken | None = None) -> None:
    """Signs in again after BILL refused ``signed``'s id, unless another request already replaced it.

    Requests refused one after the other then share one sign-in, as concurrent ones do in libbill.
    """
    try:
        if session.auth_headers().get("sessionId", signed.session_id) != signed.session_id:
            return
    except SessionExpiredError:
        pass
    session.renew(cancel=cancel)


def is_session_invalid(status: int, body: bytes | None) -> bool:
    """HTTP 401, or a 4xx reply carrying BDC_1109 (Session is invalid)."""
    if status == 401:
        return True
    return 400 <= status < 500 and body is not None and b'"BDC_1109"' in body[:PEEK_LIMIT]


def record_use(session: Session, status: int, signed: Signed) -> None:
    """Records the use after a reply BILL accepted (BILL's idle timer restarts only for those)."""
    if status < 400:
        try:
            session.touch_sent(time.monotonic() - signed.sent)
        except (SessionExpiredError, ClosedError):
            pass  # it ended meanwhile: the reply is still good; the next request renews or fails
