"""``httpx.Auth`` that signs requests to BILL's v3 API with a billsession Session.

    import httpx, billsession
    from billsession.httpx import Auth

    with billsession.login(...) as s, httpx.Client(auth=Auth(s), base_url=BASE + "/v3/") as client:
        client.get("vendors", params={"max": 20}).json()

Needs httpx (``pip install billsession[httpx]``).
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncGenerator, Generator

import httpx

from ._async import _cancellable, _workers
from ._http import AnySession, as_session, is_session_invalid, record_use, renew_unless_replaced, sign
from ._session import log

__all__ = ["Auth"]


class Auth(httpx.Auth):
    """Signs requests with the session's devKey and sessionId headers; works with Client and AsyncClient.

    Only requests to the origin (scheme, host, port) of the session's base URL
    are signed; others go out untouched. On HTTP 401 or BDC_1109 it signs in
    again (shared with concurrent callers) and resends the request once (httpx
    keeps the body, so every request can be resent). After each reply BILL
    accepted it records the use with libbill. With an AsyncClient, sign-ins
    run on a worker thread and are cancelled with their task.

    Keep ``follow_redirects`` off (httpx's default) for clients using it: httpx
    carries custom headers along on a redirect to another host.
    """

    requires_request_body = True

    def __init__(self, session: AnySession) -> None:
        self._session = as_session(session)

    def sync_auth_flow(self, request: httpx.Request) -> Generator[httpx.Request, httpx.Response, None]:
        s = self._session
        if not s._same_origin(str(request.url)):
            yield request
            return
        for attempt in range(2):
            signed = sign(s, request.headers)
            response = yield request
            body = response.read() if 400 <= response.status_code < 500 else None
            if attempt == 0 and is_session_invalid(response.status_code, body):
                log.debug("BILL refused the session (HTTP %d); signing in again and resending", response.status_code)
                renew_unless_replaced(s, signed)
                continue
            record_use(s, response.status_code, signed)
            return

    async def async_auth_flow(self, request: httpx.Request) -> AsyncGenerator[httpx.Request, httpx.Response]:
        s = self._session
        if not s._same_origin(str(request.url)):
            yield request
            return
        for attempt in range(2):
            signed = await asyncio.get_running_loop().run_in_executor(_workers(), sign, s, request.headers)
            response = yield request
            body = await response.aread() if 400 <= response.status_code < 500 else None
            if attempt == 0 and is_session_invalid(response.status_code, body):
                log.debug("BILL refused the session (HTTP %d); signing in again and resending", response.status_code)
                refused = signed
                await _cancellable(lambda token: renew_unless_replaced(s, refused, cancel=token))
                continue
            record_use(s, response.status_code, signed)
            return
