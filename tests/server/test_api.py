"""REST for people, against the real server: channels, messages, search, uploads."""

from __future__ import annotations

import json

import httpx
import pytest

from tests.conftest import RunningServer

pytestmark = pytest.mark.anyio
PNG = b"\x89PNG\r\n\x1a\n" + b"\0" * 64


async def test_channel_lifecycle_and_limits(server_factory) -> None:
    server = server_factory(max_channels=3)
    async with server.human() as human:
        assert (await human.post("/api/channels", json={"name": "dev"})).status_code == 201
        assert (await human.post("/api/channels", json={"name": "dev"})).status_code == 409
        for bad in ("../x", "A B", "x" * 33, "-x"):
            response = await human.post("/api/channels", json={"name": bad})
            assert response.status_code in (400, 422) and response.json()["error"] == "invalid_input", bad
        await human.post("/api/channels/dev/messages", json={"text": "kept", "sender": "ben"})
        renamed = await human.patch("/api/channels/dev", json={"name": "backend"})
        assert renamed.json()["name"] == "backend"
        history = (await human.get("/api/channels/backend/messages")).json()["messages"]
        assert [m["text"] for m in history] == ["kept"]
        assert (await human.post("/api/channels", json={"name": "three"})).status_code == 201
        full = await human.post("/api/channels", json={"name": "four"})
        assert full.status_code == 429 and "at most 3" in full.json()["detail"]
        assert (await human.delete("/api/channels/general")).status_code == 400
        assert (await human.delete("/api/channels/backend")).status_code == 204
        assert (await human.get("/api/channels/backend/messages")).status_code == 404
        assert [c["name"] for c in (await human.get("/api/channels")).json()] == ["general", "three"]


async def test_edit_delete_reply_and_pagination(server: RunningServer) -> None:
    async with server.human() as human:
        ids = []
        for i in range(12):
            r = await human.post("/api/channels/general/messages", json={"text": f"m{i}", "sender": "ben"})
            ids.append(r.json()["id"])
        reply = await human.post(
            "/api/channels/general/messages", json={"text": "re", "sender": "ann", "reply_to": ids[0]}
        )
        assert reply.json()["reply_to"] == ids[0]
        edited = (await human.patch(f"/api/messages/{ids[1]}", json={"text": "m1 (fixed)"})).json()
        assert edited["text"] == "m1 (fixed)" and edited["edited_at"] is not None
        deleted = (await human.delete(f"/api/messages/{ids[2]}")).json()
        assert deleted["deleted"] and deleted["text"] == ""
        assert (await human.patch(f"/api/messages/{ids[2]}", json={"text": "zombie"})).status_code == 400
        page = (await human.get("/api/channels/general/messages", params={"limit": 5})).json()
        assert [m["text"] for m in page["messages"]] == ["m8", "m9", "m10", "m11", "re"] and page["has_more"]
        older = (
            await human.get("/api/channels/general/messages", params={"limit": 5, "before": ids[8]})
        ).json()
        assert [m["text"] for m in older["messages"]] == ["m3", "m4", "m5", "m6", "m7"]
        newer = (await human.get("/api/channels/general/messages", params={"after": ids[10]})).json()
        assert [m["text"] for m in newer["messages"]] == ["m11", "re"]
        assert (
            await human.post("/api/channels/general/messages", json={"text": "x", "reply_to": 10**9})
        ).status_code == 400
        assert (await human.get("/api/messages/999999")).status_code == 404


async def test_full_text_search_finds_words_not_deleted_and_survives_syntax(server: RunningServer) -> None:
    async with server.human() as human:
        await human.post("/api/channels", json={"name": "dev"})
        await human.post(
            "/api/channels/general/messages", json={"text": "the deploy failed", "sender": "ben"}
        )
        gone = await human.post("/api/channels/dev/messages", json={"text": "deploy secret", "sender": "ben"})
        await human.post("/api/channels/dev/messages", json={"text": "deploy fixed", "sender": "ben"})
        await human.delete(f"/api/messages/{gone.json()['id']}")
        found = (await human.get("/api/search", params={"q": "deploy"})).json()["messages"]
        assert [m["text"] for m in found] == ["deploy fixed", "the deploy failed"]
        scoped = (await human.get("/api/search", params={"q": "deploy", "channel": "dev"})).json()["messages"]
        assert [m["text"] for m in scoped] == ["deploy fixed"]
        for nasty in ('"', "a OR", "NEAR(", "*", "col:x", "-x"):
            assert (await human.get("/api/search", params={"q": nasty})).status_code == 200, nasty


async def test_upload_checks_type_and_size_and_serves_safely(server_factory) -> None:
    server = server_factory(max_upload_bytes=1024)
    async with server.human() as human:
        ok = await human.post(
            "/api/uploads", content=PNG, headers={"Content-Type": "image/png", "X-Filename": "../a.png"}
        )
        assert ok.status_code == 201
        meta = ok.json()
        assert meta["type"] == "image/png" and meta["name"] == "a.png" and meta["url"].startswith("/uploads/")
        served = await human.get(meta["url"])
        assert served.content == PNG and served.headers["x-content-type-options"] == "nosniff"
        svg = b'<svg xmlns="http://www.w3.org/2000/svg"><script>alert(1)</script></svg>'
        assert (
            await human.post("/api/uploads", content=svg, headers={"Content-Type": "image/svg+xml"})
        ).status_code == 400
        big = await human.post(
            "/api/uploads", content=PNG + b"\0" * 2000, headers={"Content-Type": "image/png"}
        )
        assert big.status_code == 413
        assert (await human.get("/uploads/../../etc/passwd")).status_code == 404
        assert (await human.get("/uploads/nothere.png")).status_code == 404
        sent = await human.post(
            "/api/channels/general/messages", json={"text": "", "sender": "ben", "attachments": [meta]}
        )
        assert sent.status_code == 201 and sent.json()["attachments"][0]["url"] == meta["url"]
        forged = await human.post(
            "/api/channels/general/messages",
            json={"text": "x", "sender": "ben", "attachments": [{"url": "javascript:alert(1)"}]},
        )
        assert forged.status_code == 400


async def test_oversized_and_empty_messages_get_clear_errors(server_factory) -> None:
    server = server_factory(max_message_chars=100)
    async with server.human() as human:
        big = await human.post("/api/channels/general/messages", json={"text": "x" * 101, "sender": "ben"})
        assert big.status_code == 400 and "limit is 100" in big.json()["detail"]
        empty = await human.post("/api/channels/general/messages", json={"text": "   ", "sender": "ben"})
        assert empty.status_code == 400 and "empty" in empty.json()["detail"]
        bad_json = await human.post(
            "/api/channels/general/messages",
            content=b"{not json",
            headers={"Content-Type": "application/json"},
        )
        assert bad_json.status_code == 422 and bad_json.json()["error"] == "invalid_input"


async def test_openapi_docs_are_served(server: RunningServer) -> None:
    async with server.human() as human:
        page = await human.get("/docs")
        assert (
            page.status_code == 200
            and "cdn" not in page.text
            and "/docs-assets/swagger-ui-bundle.js" in page.text
        )
        assert (
            await human.get("/docs-assets/swagger-ui-bundle.js")
        ).status_code == 200  # shipped, works offline
        spec = (await human.get("/openapi.json")).json()
    assert "/api/agents/register" in spec["paths"] and "/api/channels/{name}/messages" in spec["paths"]


async def test_person_renames_an_agent_and_sets_its_role(server: RunningServer) -> None:
    from tests.conftest import mcp_client, register, text_of

    agent = await register(server.url)
    async with mcp_client(server.url, agent["token"]) as client:
        await client.call_tool("chat_send", {"message": "hello"})
    async with server.human() as human:
        renamed = await human.patch(
            "/api/agents/claude", json={"name": "architect", "role": "Review designs."}
        )
        assert renamed.status_code == 200 and renamed.json()["name"] == "architect"
        assert (await human.patch("/api/agents/architect", json={"name": "Bad Name"})).status_code == 400
        history = (await human.get("/api/channels/general/messages")).json()["messages"]
        assert [m["sender"] for m in history if m["kind"] != "system"] == ["architect"]
    # The token still works: the wrapper's heartbeat under the old name learns the new one.
    async with httpx.AsyncClient(base_url=server.url) as wrapper:
        beat = await wrapper.post(
            "/api/agents/claude/heartbeat", headers={"Authorization": f"Bearer {agent['token']}"}
        )
        assert beat.json() == {"name": "architect"}
    async with mcp_client(server.url, agent["token"]) as client:
        claimed = await client.call_tool("chat_claim", {})
        assert json.loads(text_of(claimed))["confirmed_name"] == "architect"


async def test_continue_accepts_a_channel_name_as_people_type_it(server: RunningServer) -> None:
    async with server.human() as human:
        response = await human.post("/api/channels/General/continue", params={"sender": "ben"})
        assert response.status_code == 200 and response.json()["channel"] == "general"
        # The name comes from the person's identity: a sender parameter is ignored.
        ignored = await human.post("/api/channels/general/continue", params={"sender": "a\x00b"})
        assert ignored.status_code == 200 and "a\x00b" not in ignored.json()["text"]
