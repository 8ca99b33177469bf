"""billsession.httpx and billsession.requests against the emulator, recovery after a server-side expiry included."""

from __future__ import annotations

import asyncio
import http.server
import threading
import time
from collections.abc import Iterator

import pytest

import billsession

from conftest import Emulator, creds, run_in_threads

httpx = pytest.importorskip("httpx", reason="httpx is not installed (make test-python installs it)")
requests = pytest.importorskip("requests", reason="requests is not installed (make test-python installs it)")

from billsession.httpx import Auth as HttpxAuth  # noqa: E402
from billsession.requests import Auth as RequestsAuth  # noqa: E402


def expect_one_recovery(emu: Emulator, s: billsession.Session, before: dict[str, int], old_id: str) -> None:
    after = emu.stats()
    assert after["logins"] - before["logins"] == 1, "one sign-in to recover"
    assert after["rejected_1109"] - before["rejected_1109"] == 1, "one request refused with BDC_1109"
    assert s.id != old_id


def test_httpx_client_recovers_after_server_expiry(emu: Emulator) -> None:
    with billsession.login(**creds(emu)) as s, httpx.Client(auth=HttpxAuth(s), base_url=emu.v3 + "/v3/") as client:
        r = client.get("vendors", params={"max": 20})
        assert r.status_code == 200 and r.json()["path"] == "/connect/v3/vendors"
        old = s.id
        before = emu.stats()
        emu.expire(old)
        r = client.post("vendors", json={"name": "Acme"})
        assert r.status_code == 200 and r.json()["echo"] == {"name": "Acme"}
        expect_one_recovery(emu, s, before, old)
        assert "sessionId" not in client.headers and "devKey" not in client.headers


def test_httpx_async_client_recovers_after_server_expiry(emu: Emulator) -> None:
    async def main() -> None:
        async with await billsession.alogin(**creds(emu)) as s:
            async with httpx.AsyncClient(auth=HttpxAuth(s), base_url=emu.v3 + "/v3/") as client:
                r = await client.get("vendors")
                assert r.status_code == 200
                old = s.id
                before = emu.stats()
                emu.expire(old)
                r = await client.post("vendors", json={"name": "Async"})
                assert r.status_code == 200 and r.json()["echo"] == {"name": "Async"}
                expect_one_recovery(emu, s.session, before, old)

    asyncio.run(main())


def test_requests_session_recovers_after_server_expiry(emu: Emulator) -> None:
    with billsession.login(**creds(emu)) as s, requests.Session() as http_session:
        http_session.auth = RequestsAuth(s)
        r = http_session.get(emu.v3 + "/v3/vendors", params={"max": 20})
        assert r.status_code == 200 and r.json()["path"] == "/connect/v3/vendors"
        old = s.id
        before = emu.stats()
        emu.expire(old)
        r = http_session.post(emu.v3 + "/v3/vendors", json={"name": "Acme"})
        assert r.status_code == 200 and r.json()["echo"] == {"name": "Acme"}
        assert [h.status_code for h in r.history] == [401]
        expect_one_recovery(emu, s, before, old)


def test_refused_requests_share_their_sign_ins(emu: Emulator) -> None:
    with billsession.login(**creds(emu)) as s, httpx.Client(auth=HttpxAuth(s), base_url=emu.v3 + "/v3/") as client:
        before = emu.stats()["logins"]
        emu.expire(s.id)
        statuses: list[int] = []

        def get() -> None:
            statuses.append(client.get("vendors").status_code)

        errors = run_in_threads(8, get)
        assert not errors and statuses == [200] * 8
        assert 1 <= emu.stats()["logins"] - before < 8


def test_requests_does_not_replay_a_generator_body(emu: Emulator) -> None:
    with billsession.login(**creds(emu)) as s:
        emu.expire(s.id)
        r = requests.post(
            emu.v3 + "/v3/vendors",
            data=(chunk for chunk in [b'{"name":', b'"Once"}']),
            headers={"Content-Type": "application/json"},
            auth=RequestsAuth(s),
        )
        assert r.status_code == 401 and "BDC_1109" in r.text
        # The next request renews and works.
        assert requests.get(emu.v3 + "/v3/vendors", auth=RequestsAuth(s)).status_code == 200


class _Recorder(http.server.BaseHTTPRequestHandler):
    seen: list[dict[str, str]] = []

    def do_GET(self) -> None:  # noqa: N802 (http.server's name)
        _Recorder.seen.append({k.lower(): v for k, v in self.headers.items()})
        self.send_response(200)
        self.send_header("Content-Length", "2")
        self.end_headers()
        self.wfile.write(b"{}")

    def log_message(self, format: str, *args: object) -> None:
        pass


@pytest.fixture
def other_origin() -> Iterator[str]:
    server = http.server.HTTPServer(("127.0.0.1", 0), _Recorder)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    try:
        yield f"http://127.0.0.1:{server.server_address[1]}"
    finally:
        server.shutdown()
        server.server_close()


def test_other_origins_get_no_secrets(emu: Emulator, other_origin: str) -> None:
    _Recorder.seen.clear()
    with billsession.login(**creds(emu)) as s:
        httpx.get(other_origin + "/v3/vendors", auth=HttpxAuth(s))
        requests.get(other_origin + "/v3/vendors", auth=RequestsAuth(s))
        headers = s.auth_headers()
        assert set(headers) == {"devKey", "sessionId"} and headers["sessionId"] == s.id
    assert len(_Recorder.seen) == 2
    for seen in _Recorder.seen:
        assert "devkey" not in seen and "sessionid" not in seen


def test_auth_headers_refused_on_v2(emu: Emulator) -> None:
    with billsession.login(**creds(emu, api=2)) as s:
        with pytest.raises(billsession.InvalidArgError):
            s.auth_headers()


@pytest.mark.parametrize("client_kind", ["httpx", "requests"])
def test_uses_are_recorded(emu: Emulator, client_kind: str) -> None:
    """A session used all the time never idles out in libbill.

    With refresh="lazy" nothing renews in the background, so without the
    recorded uses libbill would stop handing out the id after about 2.6 s and
    the integration would have to sign in again.
    """
    with billsession.login(**creds(emu, refresh="lazy", idle_timeout=3, renew_margin=1)) as s:
        before = emu.stats()["logins"]
        url = emu.v3 + "/v3/vendors"
        end = time.monotonic() + 4.5
        with httpx.Client(auth=HttpxAuth(s)) as hc, requests.Session() as rs:
            rs.auth = RequestsAuth(s)
            while time.monotonic() < end:
                status = hc.get(url).status_code if client_kind == "httpx" else rs.get(url).status_code
                assert status == 200
                time.sleep(0.1)
        assert emu.stats()["logins"] == before
