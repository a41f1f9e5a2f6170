"""``--allow-network``: every registration needs the join key, MCP needs a token, people the login.

Behind a same-host forwarder (stunnel, socat, ``ssh -L``, a TLS terminator) every client's address
is 127.0.0.1, so the tests that matter go through a real TCP forwarder, as docs/network.md sets up.
"""

from __future__ import annotations

import contextlib
import stat
from collections.abc import AsyncIterator
from typing import Any

import anyio
import httpx
import pytest
from anyio.abc import SocketAttribute, SocketStream
from starlette.requests import Request

from backchannel.errors import Forbidden
from tests.conftest import RunningServer, mcp_client

pytestmark = pytest.mark.anyio
JOIN_KEY_FILE = "join_key"  # the name local wrappers read (interface with the wrapper)


def request_from(ip: str, headers: dict[str, str] | None = None) -> Request:
    raw = [(k.lower().encode(), v.encode()) for k, v in (headers or {}).items()]
    return Request({"type": "http", "method": "POST", "path": "/", "headers": raw, "client": (ip, 5000)})


async def test_every_registration_needs_the_join_key_loopback_included(server_factory) -> None:
    server: RunningServer = server_factory(allow_network=True)
    guard = server.app.state.services.guard
    for ip in ("127.0.0.1", "::1"):  # what a forwarded client looks like
        with pytest.raises(Forbidden):
            guard.require_registration_allowed(request_from(ip))
        guard.require_registration_allowed(request_from(ip, {"X-Join-Key": guard.secrets.join_key}))
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
        assert right.status_code == 303 and server.session_cookie in right.cookies
        assert 'name="bc-session"' in (await browser.get("/")).text


async def test_join_key_file_is_0600_and_survives_a_restart(server_factory, tmp_path) -> None:
    server: RunningServer = server_factory(allow_network=True)
    path = server.settings.data_dir / JOIN_KEY_FILE
    key = server.app.state.services.guard.secrets.join_key
    assert path.read_text().strip() == key and len(key) >= 32
    assert stat.S_IMODE(path.stat().st_mode) == 0o600
    server.stop()
    again: RunningServer = server_factory(allow_network=True)
    assert again.app.state.services.guard.secrets.join_key == key  # configured remote agents keep working
    loopback: RunningServer = server_factory(data_dir=tmp_path / "loopback")
    assert not (loopback.settings.data_dir / JOIN_KEY_FILE).exists()


@contextlib.asynccontextmanager
async def tcp_forwarder(target_port: int) -> AsyncIterator[str]:
    """A same-host TCP forwarder (what socat, stunnel or ``ssh -L`` do): the server sees 127.0.0.1."""

    async def pipe(src: SocketStream, dst: SocketStream) -> None:
        with contextlib.suppress(anyio.EndOfStream, anyio.BrokenResourceError, anyio.ClosedResourceError):
            async for chunk in src:
                await dst.send(chunk)
        with contextlib.suppress(Exception):
            await dst.send_eof()

    async def handle(client: SocketStream) -> None:
        async with client, await anyio.connect_tcp("127.0.0.1", target_port) as upstream:
            async with anyio.create_task_group() as tg:
                tg.start_soon(pipe, client, upstream)
                tg.start_soon(pipe, upstream, client)

    listener = await anyio.create_tcp_listener(local_host="127.0.0.1")
    port = listener.extra(SocketAttribute.local_port)
    async with anyio.create_task_group() as tg:
        tg.start_soon(listener.serve, handle)
        try:
            yield f"http://127.0.0.1:{port}"
        finally:
            tg.cancel_scope.cancel()


async def test_forwarded_clients_need_the_join_key_and_a_token_for_mcp(server_factory) -> None:
    server: RunningServer = server_factory(allow_network=True)
    app: Any = server.app
    key = app.state.services.guard.secrets.join_key
    sse_sessions = app.mcp.sse_sessions  # the only state an MCP client can make the server hold
    body = {"base": "claude", "instance_id": "remote-1"}
    async with (
        tcp_forwarder(server.settings.port) as url,
        httpx.AsyncClient(base_url=url, timeout=10) as client,
    ):
        refused = await client.post("/api/agents/register", json=body)
        assert refused.status_code == 403 and "join key" in refused.json()["detail"]
        wrong = await client.post("/api/agents/register", json=body, headers={"X-Join-Key": "guess"})
        assert wrong.status_code == 403

        # No token, no MCP at all: refused before the endpoint reads the body or opens a stream.
        init = {"jsonrpc": "2.0", "id": 1, "method": "initialize", "params": {}}
        accept = {"Accept": "application/json, text/event-stream"}
        anonymous = await client.post("/mcp", json=init, headers=accept)
        assert anonymous.status_code == 401 and anonymous.json()["error"] == "stale_token"
        bad_token = await client.post("/mcp", json=init, headers={**accept, "Authorization": "Bearer nope"})
        assert bad_token.status_code == 401
        assert (await client.get("/sse")).status_code == 401
        assert (await client.post("/messages/?session_id=0", json=init)).status_code == 401
        assert sse_sessions == {}

        joined = await client.post("/api/agents/register", json=body, headers={"X-Join-Key": key})
        assert joined.status_code == 200, joined.text
        token = joined.json()["token"]
        for transport in ("http", "sse"):
            async with mcp_client(url, token, transport=transport) as mcp:
                result = await mcp.call_tool("chat_who", {})
                assert "claude" in "".join(getattr(block, "text", "") for block in result.content)
