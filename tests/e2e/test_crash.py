"""Durability with the real ``backchannel serve`` process: ``kill -9`` mid-stream, restarts, identities.

An acknowledged message (HTTP 201, or ``Sent (id=N)`` from ``chat_send``) was committed before the
answer left the server, so it must be there, with the same id and text, after a crash and restart.
"""

from __future__ import annotations

import re
from collections.abc import Awaitable, Callable
from typing import Any

import anyio
import anyio.to_thread
import httpx
import pytest

from backchannel.errors import STALE_TOKEN_TEXT
from tests.conftest import ServerProcess, mcp_client, register, text_of

pytestmark = pytest.mark.anyio

KILL_AFTER_ACKS = 80  # acknowledged messages before the kill; every sender is still mid-stream then
MAX_PER_SENDER = 2_000  # a bound, never reached: the kill ends every loop long before
HUMANS = ("ann", "bob")
SENT_RE = re.compile(r"^Sent \(id=(\d+)\)$")


def restart(old: ServerProcess) -> ServerProcess:
    """A new server process on the same data dir and port, as after a crash or an upgrade."""
    return ServerProcess(old.data_dir, old.env, port=old.port).start()


async def all_messages(human: httpx.AsyncClient, channel: str) -> list[dict[str, Any]]:
    """Every message of a channel, oldest first, paging forward with ``after``."""
    found: list[dict[str, Any]] = []
    while True:
        after = found[-1]["id"] if found else 0
        response = await human.get(f"/api/channels/{channel}/messages", params={"after": after, "limit": 200})
        assert response.status_code == 200, response.text
        page = response.json()["messages"]
        if not page:
            return found
        found.extend(page)


async def test_every_acknowledged_message_survives_kill_9_mid_stream(
    server_process: Callable[..., ServerProcess],
) -> None:
    proc = server_process()
    agents = [await register(proc.url, "claude", f"crash-{i}") for i in range(2)]
    assert [a["name"] for a in agents] == ["claude", "claude-2"]

    acked: dict[int, tuple[str, str]] = {}  # message id -> (sender, text), as acknowledged
    enough = anyio.Event()
    killed = anyio.Event()

    def ack(message_id: int, sender: str, text: str) -> None:
        assert message_id not in acked, f"id {message_id} acknowledged twice"
        acked[message_id] = (sender, text)
        if len(acked) >= KILL_AFTER_ACKS:
            enough.set()

    async def survive_the_kill(send: Callable[[], Awaitable[None]]) -> None:
        """Run one sender; a failure is only expected (and ends it) once the server is dead."""
        try:
            await send()
        except Exception:
            if not killed.is_set():
                raise
        finally:
            running.remove(send)
            if not running:
                all_stopped.set()

    async def human_sends(name: str) -> None:
        async with proc.human() as human:
            for seq in range(MAX_PER_SENDER):
                text = f"{name} #{seq} ünïcødé ✓"
                response = await human.post(
                    "/api/channels/general/messages", json={"text": text, "sender": name}
                )
                assert response.status_code == 201, response.text
                # People post under the local person's name (the sender field is ignored).
                ack(response.json()["id"], response.json()["sender"], text)

    async def agent_sends(agent: dict[str, Any], transport: str) -> None:
        async with mcp_client(proc.url, agent["token"], transport=transport) as client:
            for seq in range(MAX_PER_SENDER):
                text = f"{agent['name']} #{seq} via mcp"
                result = await client.call_tool("chat_send", {"message": text, "channel": "general"})
                match = SENT_RE.match(text_of(result))
                assert not result.is_error and match, text_of(result)
                ack(int(match.group(1)), agent["name"], text)

    async def kill_when_enough(cancel: anyio.CancelScope) -> None:
        await enough.wait()
        killed.set()  # before the signal: a sender may see the dead socket before kill() returns
        await anyio.to_thread.run_sync(proc.kill)  # SIGKILL: no shutdown hook, no flush, nothing
        # Senders fail fast on a dead socket; one still hung after this is cut off, unacknowledged.
        with anyio.move_on_after(10):
            await all_stopped.wait()
        cancel.cancel()

    senders: list[Callable[[], Awaitable[None]]] = [
        *(lambda name=name: human_sends(name) for name in HUMANS),
        *(
            lambda agent=agent, transport=transport: agent_sends(agent, transport)
            for agent, transport in zip(agents, ("http", "sse"), strict=True)
        ),
    ]
    running = senders.copy()
    all_stopped = anyio.Event()
    with anyio.fail_after(60):
        async with anyio.create_task_group() as tg:
            for send in senders:
                tg.start_soon(survive_the_kill, send)
            tg.start_soon(kill_when_enough, tg.cancel_scope)
    assert killed.is_set() and len(acked) >= KILL_AFTER_ACKS

    restarted = restart(proc)
    try:
        async with restarted.human() as human:
            stored = {m["id"]: (m["sender"], m["text"]) for m in await all_messages(human, "general")}
            missing = {i: acked[i] for i in acked if stored.get(i) != acked[i]}
            assert missing == {}, f"{len(missing)} acknowledged messages lost or changed: {missing}"

            # Each sender sends strictly one after another, so what survived of it is a gap-free
            # prefix: everything acknowledged, plus at most the one message in flight at the kill.
            for sender in (*HUMANS, *(a["name"] for a in agents)):
                mine = f"{sender} #"  # by the text: people share the local person's name
                texts = [text for _, text in stored.values() if text.startswith(mine)]
                seqs = [int(text.split("#")[1].split()[0]) for text in texts]
                acked_count = sum(1 for _, text in acked.values() if text.startswith(mine))
                assert seqs == list(range(len(seqs))), (sender, seqs)
                assert acked_count <= len(seqs) <= acked_count + 1, (sender, acked_count, len(seqs))

            # Live views resume from the event log, written in the same transaction as each message.
            logged: set[int] = set()
            since = 0
            while True:
                page = (await human.get("/api/events", params={"since": since, "limit": 1000})).json()
                if not page["events"]:
                    break
                logged |= {e["message"]["id"] for e in page["events"] if e["kind"] == "message"}
                since = page["events"][-1]["seq"]
            assert set(acked) <= logged == set(stored)

            # The restarted server carries on numbering after the survivors, never reusing an id.
            after = await human.post("/api/channels/general/messages", json={"text": "after the crash"})
            assert after.status_code == 201 and after.json()["id"] > max(stored)

        async with mcp_client(restarted.url, agents[1]["token"]) as client:
            result = await client.call_tool(
                "chat_send", {"message": "claude-2 is back", "channel": "general"}
            )
        assert SENT_RE.match(text_of(result)), text_of(result)
    finally:
        restarted.kill()


@pytest.mark.parametrize("stop", ["terminate", "kill"])
async def test_restart_keeps_messages_channels_cursors_and_registry(
    server_process: Callable[..., ServerProcess], stop: str
) -> None:
    proc = server_process()
    secret = "keep-claude-reclaim-secret-" + "0" * 16
    claude = await register(proc.url, "claude", "keep-claude", reclaim_secret=secret)
    codex = await register(proc.url, "codex", "keep-codex")
    async with proc.human() as human:
        assert (await human.post("/api/channels", json={"name": "ops"})).status_code == 201
        for i in range(3):
            posted = await human.post(
                "/api/channels/ops/messages", json={"text": f"before {i}", "sender": "ann"}
            )
            assert posted.status_code == 201, posted.text

    async with mcp_client(proc.url, claude["token"]) as client:
        first = await client.call_tool("chat_read", {"channel": "ops"})
        assert first.structured_content is not None, text_of(first)
        assert [m["text"] for m in first.structured_content["messages"]] == [
            "before 0",
            "before 1",
            "before 2",
        ]
        sent = await client.call_tool("chat_send", {"message": "claude in general", "channel": "general"})
        assert SENT_RE.match(text_of(sent)), text_of(sent)
    async with proc.human() as human:
        unread = await human.post("/api/channels/ops/messages", json={"text": "while away", "sender": "ann"})
        history_before = {c: await all_messages(human, c) for c in ("general", "ops")}

    getattr(proc, stop)()
    restarted = restart(proc)
    try:
        async with restarted.human() as human:
            assert [c["name"] for c in (await human.get("/api/channels")).json()] == ["general", "ops"]
            assert {c: await all_messages(human, c) for c in ("general", "ops")} == history_before
            listed = {a["name"]: a for a in (await human.get("/api/agents")).json()}
            assert {"claude", "codex"} <= set(listed)
            assert all("token" not in a for a in listed.values())

        # Only token hashes are stored, so a token handed out before the restart still works after it,
        # and the cursor and last-read channel come back with it: chat_read gives only what is new.
        async with mcp_client(restarted.url, claude["token"]) as client:
            again = await client.call_tool("chat_read", {})
            assert again.structured_content is not None, text_of(again)
            assert again.structured_content["channel"] == "ops"
            assert [(m["id"], m["text"]) for m in again.structured_content["messages"]] == [
                (unread.json()["id"], "while away")
            ]
            assert "No new messages" in text_of(await client.call_tool("chat_read", {}))
        async with httpx.AsyncClient(base_url=restarted.url, timeout=10) as agent_http:
            beat = await agent_http.post(
                "/api/agents/codex/heartbeat", headers={"Authorization": f"Bearer {codex['token']}"}, json={}
            )
            assert beat.status_code == 200 and beat.json() == {"name": "codex"}, beat.text

        # The registry survived too: the same instance (proven by its reclaim secret, since it is
        # live) gets its name back with a fresh token, which retires the old one, and a new
        # instance of the same base does not take a live name.
        reclaimed = await register(restarted.url, "claude", "keep-claude", reclaim_secret=secret)
        assert reclaimed["name"] == "claude" and reclaimed["token"] != claude["token"]
        newcomer = await register(restarted.url, "claude", "someone-else")
        assert newcomer["name"] == "claude-2"
        async with mcp_client(restarted.url, claude["token"]) as client:
            stale = await client.call_tool("chat_read", {})
        assert stale.is_error and text_of(stale) == STALE_TOKEN_TEXT
        async with mcp_client(restarted.url, reclaimed["token"]) as client:
            assert "No new messages in #ops" in text_of(await client.call_tool("chat_read", {}))
    finally:
        restarted.kill()
