"""``requests`` authentication that signs requests to BILL's v3 API with a billsession Session.

    import requests, billsession
    from billsession.requests import Auth

    with billsession.login(...) as s:
        http = requests.Session()
        http.auth = Auth(s)
        http.get(BASE + "/v3/vendors", params={"max": 20}).json()

Needs requests (``pip install billsession[requests]``).
"""

from __future__ import annotations

from typing import Any

import requests
import requests.auth

from ._http import AnySession, Signed, as_session, is_session_invalid, record_use, renew_unless_replaced, sign
from ._session import _origin_of, log

__all__ = ["Auth"]

_SENT = "_billsession_sent"
_RETRIED = "_billsession_retried"
_HEADERS = ("devKey", "sessionId")


class Auth(requests.auth.AuthBase):
    """Signs requests with the session's devKey and sessionId headers.

    Only requests to the origin (scheme, host, port) of the session's base URL
    are signed, and the headers are taken off before a redirect to another
    origin. On HTTP 401 or BDC_1109 it signs in again (shared with concurrent
    callers) and resends the request once, if its body can be resent (none,
    bytes or str; not a file or generator). After each reply BILL accepted it
    records the use with libbill.
    """

    def __init__(self, session: AnySession) -> None:
        self._session = as_session(session)

    def __call__(self, r: requests.PreparedRequest) -> requests.PreparedRequest:
        if r.url is None or not self._session._same_origin(r.url):
            return r
        setattr(r, _SENT, sign(self._session, r.headers))
        r.register_hook("response", self._on_response)  # type: ignore[no-untyped-call]
        return r

    def _on_response(self, r: requests.Response, **kwargs: Any) -> requests.Response:
        s = self._session
        req = r.request
        signed: Signed | None = getattr(req, _SENT, None)
        if signed is None:
            return r
        body = r.content if 400 <= r.status_code < 500 else None
        if is_session_invalid(r.status_code, body) and not getattr(req, _RETRIED, False) and _replayable(req):
            log.debug("BILL refused the session (HTTP %d); signing in again and resending", r.status_code)
            renew_unless_replaced(s, signed)
            r.close()
            again = req.copy()
            setattr(again, _RETRIED, True)
            signed = sign(s, again.headers)
            retried: requests.Response = r.connection.send(again, **kwargs)
            retried.history.append(r)
            retried.request = again
            record_use(s, retried.status_code, signed)
            return retried
        record_use(s, r.status_code, signed)
        if r.is_redirect:
            target = requests.compat.urljoin(req.url or "", r.headers.get("location", ""))
            if _origin_of(target) != _origin_of(req.url or ""):
                for name in _HEADERS:
                    req.headers.pop(name, None)
        return r


def _replayable(req: requests.PreparedRequest) -> bool:
    return req.body is None or isinstance(req.body, (bytes, str))
