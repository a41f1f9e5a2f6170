"""``--allow-network``: agents from other hosts need the join key, people need the login secret."""

from __future__ import annotations

import httpx
import pytest
from starlette.requests import Request

from backchannel.errors import Forbidden
from tests.conftest import RunningServer

pytestmark = pytest.mark.anyio


def request_from(ip: str, headers: dict[str, str] | None = None) -> Request:
    raw = [(k.lower().encode(), v.encode()) for k, v in (headers or {}).items()]
    return Request({"type": "http", "method": "POST", "path": "/", "headers": raw, "client": (ip, 5000)})


async def test_remote_registration_needs_the_join_key(server_factory) -> None:
    server: RunningServer = server_factory(allow_network=True)
    guard = server.app.state.services.guard
    guard.require_registration_allowed(request_from("127.0.0.1"))
    with pytest.raises(Forbidden):
        guard.require_registration_allowed(request_from("192.0.2.7"))
    with pytest.raises(Forbidden):
        guard.require_registration_allowed(request_from("192.0.2.7", {"X-Join-Key": "wrong"}))
    guard.require_registration_allowed(request_from("192.0.2.7", {"X-Join-Key": guard.secrets.join_key}))


async def test_loopback_mode_never_accepts_remote_registration(server: RunningServer) -> None:
    guard = server.app.state.services.guard
    with pytest.raises(Forbidden):
        guard.require_registration_allowed(request_from("192.0.2.7", {"X-Join-Key": guard.secrets.join_key}))


async def test_ui_asks_for_the_login_secret(server_factory) -> None:
    server: RunningServer = server_factory(allow_network=True)
    login = server.app.state.services.guard.secrets.login
    async with httpx.AsyncClient(base_url=server.url) as browser:
        page = await browser.get("/")
        assert "Login secret" in page.text and "bc-session" not in page.text
        wrong = await browser.post("/login", data={"secret": "nope"})
        assert wrong.status_code == 401
        right = await browser.post("/login", data={"secret": login})
        assert right.status_code == 303 and "bc_session" in right.cookies
        assert 'name="bc-session"' in (await browser.get("/")).text
