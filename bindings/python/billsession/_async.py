"""asyncio API: the blocking C calls run on worker threads, cancellation reaches libbill.

Each call gets a CancelToken. Cancelling the awaiting task (``task.cancel()``,
``asyncio.wait_for``, ``asyncio.timeout``) triggers it, which makes libbill
abort the HTTP exchange; the task then waits for the worker to return before
it raises CancelledError, so no call outlives its task.
"""

from __future__ import annotations

import asyncio
import threading
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from types import TracebackType
from typing import Any, TypeVar

from ._errors import BillError
from ._session import Body, CancelToken, Duration, Params, Response, Session, Settings, _login
from ._types import Api, State

__all__ = ["AsyncSession", "alogin"]

T = TypeVar("T")

# libbill queues calls beyond max_in_flight (at most 64), so more workers than
# that would only wait there.
_MAX_WORKERS = 64
_executor: ThreadPoolExecutor | None = None
_executor_lock = threading.Lock()


def _workers() -> ThreadPoolExecutor:
    global _executor
    with _executor_lock:
        if _executor is None:
            _executor = ThreadPoolExecutor(max_workers=_MAX_WORKERS, thread_name_prefix="billsession")
        return _executor


def _retrieve(fut: asyncio.Future[Any]) -> None:
    if not fut.cancelled():
        fut.exception()  # a result nobody awaits any more: keep asyncio from warning about it


async def _cancellable(fn: Callable[[CancelToken], T]) -> T:
    """Runs ``fn(token)`` on a worker thread; cancelling the caller's task triggers the token."""
    loop = asyncio.get_running_loop()
    token = CancelToken()
    fut = loop.run_in_executor(_workers(), fn, token)
    fut.add_done_callback(_retrieve)
    try:
        return await asyncio.shield(fut)
    except asyncio.CancelledError:
        token.cancel()
        # libbill gives the call up promptly; wait for that, so the call ends with its task.
        await asyncio.wait([fut])
        raise


async def _blocking(fn: Callable[[], T]) -> T:
    """Runs ``fn()`` (which cannot be cancelled in C) on a worker thread."""
    return await asyncio.get_running_loop().run_in_executor(_workers(), fn)


async def alogin(settings: Settings | None = None, /, **kwargs: Any) -> AsyncSession:
    """Signs in on a worker thread and returns an :class:`AsyncSession`.

    Takes what :func:`billsession.login` takes. Cancelling the task aborts the sign-in.
    """
    if settings is None:
        settings = Settings(**kwargs)
    elif kwargs:
        raise TypeError("alogin() takes either a Settings object or keyword arguments, not both")
    elif not isinstance(settings, Settings):
        raise TypeError("alogin() takes a billsession.Settings object")
    s = settings
    return AsyncSession(await _cancellable(lambda token: _login(s, token)))


class AsyncSession:
    """The asyncio face of a :class:`Session`: the same session, with coroutine methods.

    Calls run on worker threads, so the event loop never waits on the
    network. Cancelling a task that awaits ``call()``/``renew()``/``alogin()``
    aborts libbill's HTTP exchange, and the session stays usable. ``id``,
    ``state``, ``touch()`` and the like never block and stay plain.
    """

    def __init__(self, session: Session) -> None:
        if not isinstance(session, Session):
            raise TypeError("AsyncSession wraps a billsession.Session")
        self._session = session

    @property
    def session(self) -> Session:
        """The underlying synchronous :class:`Session`."""
        return self._session

    @property
    def api(self) -> Api:
        return self._session.api

    @property
    def closed(self) -> bool:
        return self._session.closed

    @property
    def id(self) -> str:
        """The current session id (a secret); never waits on the network."""
        return self._session.id

    @property
    def state(self) -> State:
        return self._session.state

    @property
    def trusted(self) -> bool:
        return self._session.trusted

    @property
    def last_renew_error(self) -> BillError | None:
        return self._session.last_renew_error

    def touch(self) -> None:
        self._session.touch()

    def auth_headers(self) -> dict[str, str]:
        return self._session.auth_headers()

    def touch_sent(self, ago: float) -> None:
        self._session.touch_sent(ago)

    async def call(
        self,
        method: str | None,
        path: str,
        body: Body = None,
        *,
        params: Params | None = None,
        json: Any = None,
        timeout: Duration | None = None,
    ) -> Response:
        """:meth:`Session.call` on a worker thread; cancelling the task cancels the call."""
        s = self._session
        m, p, data, timeout_ms = s._prepare(method, path, body, params, json, timeout)

        def run(token: CancelToken) -> Response:
            status, reply = s._call(m, p, data, timeout_ms, token)
            return Response(status, reply)

        return await _cancellable(run)

    async def call_json(
        self,
        method: str | None,
        path: str,
        body: Body = None,
        *,
        params: Params | None = None,
        json: Any = None,
        timeout: Duration | None = None,
    ) -> Any:
        """Like :meth:`call`, but returns the reply parsed as JSON (None for an empty reply)."""
        return (await self.call(method, path, body, params=params, json=json, timeout=timeout)).json()

    async def renew(self, *, timeout: Duration | None = None) -> None:
        """Signs in again now; cancelling the task cancels the sign-in."""
        s = self._session
        await _cancellable(lambda token: s.renew(timeout=timeout, cancel=token))

    async def logout(self) -> None:
        """Signs out on BILL's side (on a worker thread)."""
        await _blocking(self._session.logout)

    async def close(self) -> None:
        """Frees the session (on a worker thread: it may wait for calls in progress)."""
        await _blocking(self._session.close)

    async def __aenter__(self) -> AsyncSession:
        return self

    async def __aexit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        await self.close()

    def __repr__(self) -> str:
        return "<billsession.AsyncSession of " + repr(self._session)[1:]
