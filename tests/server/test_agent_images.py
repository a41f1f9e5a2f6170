"""Agents see the images people post: a local file path in reads, the bytes with their own token
(REST and the chat_image tool), and a read of recent context that moves no cursor. Browsers from
another origin get none of it."""

from __future__ import annotations

import base64
import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest

from tests.conftest import RunningServer, mcp_client, module_server, ok, refused, register, text_of

pytestmark = pytest.mark.anyio

PNG = b"\x89PNG\r\n\x1a\n" + bytes(range(64))
EVIL = "http://evil.example"


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[RunningServer]:
    with module_server(tmp_path_factory, "agent_images") as running:
        yield running


async def _post_image(server: RunningServer, channel: str, text: str) -> tuple[str, int]:
    """A person uploads PNG and posts it: the stored name and the message id."""
    async with server.human() as human:
        if channel != "general":
            await human.post("/api/channels", json={"name": channel})
        up = ok(await human.post("/api/uploads", content=PNG, headers={"Content-Type": "image/png"}), 201)
        msg = ok(
            await human.post(
                f"/api/channels/{channel}/messages", json={"text": text, "attachments": [{"url": up["url"]}]}
            ),
            201,
        )
    return up["url"].removeprefix("/uploads/"), msg["id"]


async def test_an_agent_token_fetches_an_image_and_another_origin_cannot(server: RunningServer) -> None:
    name, _ = await _post_image(server, "general", "a screenshot")
    me = await register(server.url, "viewer", "img-1")
    bearer = {"Authorization": f"Bearer {me['token']}"}
    async with httpx.AsyncClient(base_url=server.url, timeout=10) as client:
        got = await client.get(f"/api/uploads/{name}", headers=bearer)
        assert got.status_code == 200 and got.content == PNG
        assert got.headers["content-type"] == "image/png"
        assert "access-control-allow-origin" not in got.headers
        # No token, a wrong token, or a browser page of another origin (even one holding the token).
        refused(await client.get(f"/api/uploads/{name}"), 401, "agent token")
        refused(await client.get(f"/api/uploads/{name}", headers={"Authorization": "Bearer nope"}), 401, "")
        foreign = await client.get(f"/api/uploads/{name}", headers={**bearer, "Origin": EVIL})
        refused(foreign, 403, "browser")
        assert "access-control-allow-origin" not in foreign.headers
        # The people's route is no way round: a cross-site page sends no (SameSite=strict) cookie.
        refused(await client.get(f"/uploads/{name}", headers={"Origin": EVIL}), 401, "session")
        refused(await client.get("/api/uploads/not-ours.png", headers=bearer), 404, "no such upload")
        refused(await client.get("/api/uploads/..%2Fdb.sqlite3", headers=bearer), 404, "")


async def test_chat_read_gives_a_local_file_path_and_chat_image_the_image(server: RunningServer) -> None:
    name, msg_id = await _post_image(server, "shots", "look at this")
    me = await register(server.url, "looker", "img-2")
    async with mcp_client(server.url, me["token"]) as client:
        read = await client.call_tool("chat_read", {"channel": "shots"})
        entries: list[dict[str, Any]] = json.loads(text_of(read).split("\n(")[0])
        [attachment] = next(e for e in entries if e["id"] == msg_id)["attachments"]
        path = Path(attachment["file_path"])
        assert path.is_absolute() and path.read_bytes() == PNG
        assert path == (server.settings.uploads_dir / name).resolve()

        for args in (
            {"message_id": msg_id},
            {"name": name},
            {"name": f"/uploads/{name}"},
            {"channel": "shots"},
        ):
            shown = await client.call_tool("chat_image", args)
            assert not shown.is_error, (args, text_of(shown))
            [image] = [b for b in shown.content if b.type == "image"]
            assert image.mime_type == "image/png" and base64.b64decode(image.data) == PNG, args

        missing = await client.call_tool("chat_image", {"name": "0" * 32 + ".png"})
        assert missing.is_error and "no stored image" in text_of(missing)
        plain = await client.call_tool("chat_send", {"message": "no picture here", "channel": "shots"})
        plain_id = plain.structured_content["id"] if plain.structured_content else 0
        none = await client.call_tool("chat_image", {"message_id": plain_id})
        assert not none.is_error and "has no images" in text_of(none)


async def test_context_read_shows_recent_messages_without_moving_the_cursor(server: RunningServer) -> None:
    me = await register(server.url, "reader", "img-3")
    async with server.human() as human:
        await human.post("/api/channels", json={"name": "ctx"})
        for i in range(3):
            await human.post("/api/channels/ctx/messages", json={"text": f"line {i}"})
    async with httpx.AsyncClient(base_url=server.url, timeout=10) as client:
        auth = {"Authorization": f"Bearer {me['token']}"}
        url = f"/api/agents/{me['name']}/context"
        got = ok(await client.get(url, params={"channel": "ctx", "limit": 2}, headers=auth))
        assert [m["text"] for m in got["messages"]] == ["line 1", "line 2"]
        refused(
            await client.get(url, params={"channel": "ctx"}, headers={**auth, "Origin": EVIL}), 403, "browser"
        )
        refused(await client.get("/api/agents/someone-else/context", headers=auth), 401, "")
        refused(await client.get(url, params={"channel": "no such"}, headers=auth), 400, "")
    async with mcp_client(server.url, me["token"]) as mcp:
        read = await mcp.call_tool("chat_read", {"channel": "ctx"})
        assert "line 0" in text_of(read) and "line 2" in text_of(read), "the cursor must not have moved"


async def test_a_network_server_gives_no_file_path_but_the_image_by_token(server_factory: Any) -> None:
    """Beyond loopback an agent may be on another machine: no path on our disk, the bytes by token."""
    server: RunningServer = server_factory(allow_network=True)
    name, msg_id = await _post_image(server, "general", "from afar")
    key = server.app.state.services.guard.secrets.join_key
    async with httpx.AsyncClient(base_url=server.url, timeout=10) as client:
        body = {"base": "remote", "instance_id": "img-4"}
        me = ok(await client.post("/api/agents/register", json=body, headers={"X-Join-Key": key}))
        got = await client.get(f"/api/uploads/{name}", headers={"Authorization": f"Bearer {me['token']}"})
        assert got.status_code == 200 and got.content == PNG
    async with mcp_client(server.url, me["token"]) as mcp:
        read = await mcp.call_tool("chat_read", {"channel": "general"})
        assert read.structured_content is not None
        [entry] = [m for m in read.structured_content["messages"] if m["id"] == msg_id]
        assert entry["attachments"][0]["url"] == f"/uploads/{name}"
        assert "file_path" not in entry["attachments"][0]
        shown = await mcp.call_tool("chat_image", {"message_id": msg_id})
        assert [b.type for b in shown.content] == ["text", "image"]
