"""Issue 8 item 1: a deleted (or edited) message is gone everywhere the real server can hand it out.

Every surface is checked against one real server: the REST event log, a WebSocket resume with
``?since=``, search, history, the message itself, and the uploaded image on disk.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import anyio
import httpx
import pytest
from websockets.asyncio.client import connect

from tests.conftest import RunningServer, module_server

pytestmark = pytest.mark.anyio

PNG = b"\x89PNG\r\n\x1a\n" + b"\0" * 64


@pytest.fixture(scope="module")
def shared_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[RunningServer]:
    with module_server(tmp_path_factory, "scrub") as running:
        yield running


async def upload(human: httpx.AsyncClient) -> dict[str, Any]:
    response = await human.post("/api/uploads", content=PNG, headers={"Content-Type": "image/png"})
    assert response.status_code == 201, response.text
    return response.json()


async def post(human: httpx.AsyncClient, text: str, attachments: list[dict[str, Any]] | None = None) -> int:
    body = {"text": text, "sender": "ben", "attachments": attachments or []}
    response = await human.post("/api/channels/general/messages", json=body)
    assert response.status_code == 201, response.text
    return int(response.json()["id"])


async def replay_until(server: RunningServer, human: httpx.AsyncClient, kind: str, message_id: int) -> str:
    """Everything a WebSocket resuming from seq 0 replays, up to the event ``kind`` of ``message_id``."""
    cookie = (await human.get("/")).cookies[server.session_cookie]
    url = server.url.replace("http://", "ws://") + "/ws?since=0"
    frames: list[str] = []
    headers = {"Cookie": f"{server.session_cookie}={cookie}", "Origin": server.url}
    async with connect(url, additional_headers=headers) as ws:
        with anyio.fail_after(5):
            while True:
                raw = str(await ws.recv())
                frames.append(raw)
                frame = json.loads(raw)
                if frame["kind"] == kind and frame["message"]["id"] == message_id:
                    return "\n".join(frames)


async def everything_served(server: RunningServer, human: httpx.AsyncClient, word: str) -> str:
    """The event log, history, search and a WebSocket replay, as one text to search for leftovers."""
    log = (await human.get("/api/events", params={"since": 0})).text
    history = (await human.get("/api/channels/general/messages", params={"limit": 200})).text
    found = (await human.get("/api/search", params={"q": word})).json()["messages"]
    return "\n".join([log, history, json.dumps(found)])


async def test_delete_scrubs_log_resume_search_history_and_the_unshared_upload(
    shared_server: RunningServer,
) -> None:
    server = shared_server
    uploads_dir: Path = server.settings.uploads_dir
    async with server.human() as human:
        own, shared = await upload(human), await upload(human)
        doomed = await post(human, "launch code zebra4417", [own, shared])
        keeper = await post(human, "same picture, kept", [shared])
        before = await everything_served(server, human, "zebra4417")
        assert "zebra4417" in before and own["url"] in before  # the probe does see live content

        deleted = await human.delete(f"/api/messages/{doomed}")
        assert deleted.status_code == 200 and deleted.json()["deleted"]

        served = await everything_served(server, human, "zebra4417")
        served += await replay_until(server, human, "message_deleted", doomed)
        served += (await human.get(f"/api/messages/{doomed}")).text
        assert "zebra4417" not in served
        assert own["url"] not in served
        assert (await human.get("/api/search", params={"q": "zebra4417"})).json()["messages"] == []
        # The image only the deleted message used is gone from disk; the shared one stays.
        own_file, shared_file = (uploads_dir / m["url"].removeprefix("/uploads/") for m in (own, shared))
        assert not own_file.exists() and (await human.get(own["url"])).status_code == 404
        assert shared_file.exists() and (await human.get(shared["url"])).status_code == 200
        await human.delete(f"/api/messages/{keeper}")
        assert not shared_file.exists()


async def test_edit_leaves_no_copy_of_the_old_text(shared_server: RunningServer) -> None:
    server = shared_server
    async with server.human() as human:
        message_id = await post(human, "password is walrus9931")
        edited = await human.patch(f"/api/messages/{message_id}", json={"text": "oops, nothing to see"})
        assert edited.status_code == 200
        again = await human.patch(f"/api/messages/{message_id}", json={"text": "final words"})
        assert again.status_code == 200

        served = await everything_served(server, human, "walrus9931")
        served += await replay_until(server, human, "message_edited", message_id)
        assert "walrus9931" not in served and "oops, nothing to see" not in served
        log = (await human.get("/api/events", params={"since": 0})).json()["events"]
        copies = [e["message"]["text"] for e in log if e.get("message", {}).get("id") == message_id]
        assert copies == ["final words"] * 3  # the post and both edits all carry the current text
        found = (await human.get("/api/search", params={"q": "final"})).json()["messages"]
        assert [m["id"] for m in found] == [message_id]
