"""The token cache (issue 14): one store read per identity, and never a stale answer.

A committed change to anything a cached Agent holds empties it, so a rotated token is refused on
the very next call and a renamed agent acts under its new name at once. What calls write
(liveness, read positions, the channel read last) leaves it in place, and those values are served
as committed.
"""

from __future__ import annotations

import asyncio
import threading
import time
from collections.abc import AsyncIterator
from pathlib import Path

import anyio.to_thread
import httpx
import pytest

from backchannel.bus import InMemoryEventBus
from backchannel.config import Settings
from backchannel.errors import StaleToken
from backchannel.models import Agent
from backchannel.registry import Registry
from backchannel.server.security import SESSION_HEADER
from backchannel.store import Store
from tests.conftest import RunningServer, mcp_client, register, text_of

pytestmark = pytest.mark.anyio


@pytest.fixture
async def registry(tmp_path: Path) -> AsyncIterator[Registry]:
    store = Store(tmp_path / "db.sqlite")
    try:
        yield Registry(store, InMemoryEventBus(), Settings(data_dir=tmp_path))
    finally:
        store.close()


def count_lookups(registry: Registry) -> list[str]:
    seen: list[str] = []
    lookup = registry.store.agent_by_token_hash

    async def counted(token_hash: str) -> Agent | None:
        seen.append(token_hash)
        return await lookup(token_hash)

    registry.store.agent_by_token_hash = counted  # type: ignore[method-assign]
    return seen


async def test_a_known_token_is_read_from_the_store_once(registry: Registry) -> None:
    token = (await registry.register("codex", "one", None)).token
    lookups = count_lookups(registry)
    for _ in range(3):
        assert (await registry.authenticate(token, touch=False)).name == "codex"
    assert len(lookups) == 1


async def test_a_rotated_token_is_refused_on_the_very_next_call(registry: Registry) -> None:
    token = (await registry.register("codex", "one", None)).token
    await registry.authenticate(token, touch=False)  # cached
    await registry.rotate("codex")
    with pytest.raises(StaleToken):
        await registry.authenticate(token, touch=False)


async def test_a_rename_is_seen_on_the_very_next_call(registry: Registry) -> None:
    token = (await registry.register("codex", "one", None)).token
    await registry.authenticate(token, touch=False)
    await registry.rename("codex", "reviewer")
    assert (await registry.authenticate(token, touch=False)).name == "reviewer"


async def test_a_change_written_by_any_store_module_empties_the_cache(registry: Registry) -> None:
    """No list of token-changing functions to keep in step: the writer connection counts every
    committed change to the agents table, whichever module's SQL made it."""
    token = (await registry.register("codex", "one", None)).token
    await registry.authenticate(token, touch=False)
    await registry.store.db.write(lambda c: c.execute("UPDATE agents SET token_hash = NULL"))
    with pytest.raises(StaleToken):
        await registry.authenticate(token, touch=False)


async def test_a_lookup_that_raced_a_rotation_is_not_served_again(registry: Registry) -> None:
    token = (await registry.register("codex", "one", None)).token
    lookup = registry.store.agent_by_token_hash

    async def read_then_rotate(token_hash: str) -> Agent | None:
        found = await lookup(token_hash)  # the old answer, read before the rotation commits
        registry.store.agent_by_token_hash = lookup  # type: ignore[method-assign]
        await registry.rotate("codex")
        return found

    registry.store.agent_by_token_hash = read_then_rotate  # type: ignore[method-assign]
    assert (await registry.authenticate(token, touch=False)).name == "codex"  # served once, as read
    with pytest.raises(StaleToken):
        await registry.authenticate(token, touch=False)


async def test_over_mcp_and_rest_a_rotated_token_gets_stale_on_the_next_call(server: RunningServer) -> None:
    agent = await register(server.url, "claude", "i-1")
    secret = server.app.state.services.guard.secrets.session
    async with mcp_client(server.url, agent["token"]) as client:
        sent = await client.call_tool("chat_send", {"message": "before", "channel": "general"})
        assert not sent.is_error, text_of(sent)
        async with httpx.AsyncClient(base_url=server.url, headers={SESSION_HEADER: secret}) as human:
            assert (await human.post("/api/agents/claude/rotate")).status_code == 200
            beat = await human.post(
                "/api/agents/claude/heartbeat", headers={"Authorization": f"Bearer {agent['token']}"}
            )
        assert beat.status_code == 401, beat.text
        after = await client.call_tool("chat_send", {"message": "after", "channel": "general"})
        assert after.is_error and "stale" in text_of(after).lower(), text_of(after)


async def test_what_every_call_writes_keeps_the_cache(registry: Registry) -> None:
    """Liveness, read positions, messages, wake-up counters: none of it is what the cache holds."""
    store = registry.store
    token = (await registry.register("codex", "one", None)).token
    me = await registry.authenticate(token, touch=False)
    await store.read_for_agent(me.id, "general", 20, None)  # its first read sets its last channel
    await registry.authenticate(token, touch=False)
    lookups = count_lookups(registry)
    later = time.time() + 5
    await store.touch_agent(me.id, later, None)  # a call's liveness write
    await registry.heartbeat(token, "codex", None)  # a plain heartbeat
    await store.read_for_agent(me.id, "general", 20, None)  # its read position; the same channel
    await store.post(channel="general", sender="codex", kind="agent", text="hi", agent_id=me.id)
    await store.db.write(lambda c: c.execute("UPDATE agents SET wakes_since_rules = wakes_since_rules + 1"))
    again = await registry.authenticate(token, touch=False)
    assert lookups == []
    assert again.last_seen == later  # the committed liveness, not the cached one


async def test_a_new_last_channel_is_seen_by_the_next_call_without_a_lookup(registry: Registry) -> None:
    """Agents hop between channels all the time: that must neither go unseen nor flush the cache."""
    store = registry.store
    token = (await registry.register("codex", "one", None)).token
    me = await registry.authenticate(token, touch=False)
    await store.create_channel("ops", 10)
    lookups = count_lookups(registry)
    await store.read_for_agent(me.id, "ops", 20, None)
    assert (await registry.authenticate(token, touch=False)).last_channel == "ops"
    await store.update_agent(me.id, last_channel="general")  # chat_join
    assert (await registry.authenticate(token, touch=False)).last_channel == "general"
    await store.rename_channel("general", "main")  # moves every agent's last channel with it
    assert (await registry.authenticate(token, touch=False)).last_channel == "main"
    assert lookups == []


async def test_activity_and_liveness_are_served_as_committed_without_a_lookup(registry: Registry) -> None:
    token = (await registry.register("codex", "one", None)).token
    await registry.authenticate(token, touch=False)
    lookups = count_lookups(registry)
    await registry.heartbeat(token, "codex", "busy")
    assert (await registry.authenticate(token, touch=False)).activity == "busy"
    await registry.store.db.write(lambda c: c.execute("UPDATE agents SET activity = 'idle', last_seen = 1"))
    me = await registry.authenticate(token, touch=False)
    assert (me.activity, me.last_seen) == ("idle", 1)
    assert lookups == []


async def test_a_busy_agent_is_touched_once_not_on_every_call(registry: Registry) -> None:
    """The served last_seen follows each liveness write, so the one-second throttle holds."""
    token = (await registry.register("codex", "one", None)).token
    await registry.authenticate(token, touch=False)
    await registry.store.db.write(lambda c: c.execute("UPDATE agents SET last_seen = ?", (time.time() - 2,)))
    touches: list[int] = []
    touch = registry.store.touch_agent

    async def counted(agent_id: int, when: float, activity: str | None) -> None:
        touches.append(agent_id)
        await touch(agent_id, when, activity)

    registry.store.touch_agent = counted  # type: ignore[method-assign]
    for _ in range(5):
        await registry.authenticate(token)
    assert len(touches) == 1


async def test_a_column_any_module_sets_is_seen_on_the_next_call(registry: Registry) -> None:
    token = (await registry.register("codex", "one", None)).token
    await registry.authenticate(token, touch=False)
    await registry.store.db.write(lambda c: c.execute("UPDATE agents SET role = 'reviewer', rules_seen = 3"))
    me = await registry.authenticate(token, touch=False)
    assert (me.role, me.rules_seen) == ("reviewer", 3)


async def test_a_row_read_before_its_commit_is_published_is_served_as_read(registry: Registry) -> None:
    """After COMMIT the writer thread still has to put the new values into agents_volatile; a token
    lookup (a second session's first call) that reads the row in between is served what it read,
    not the older value agents_volatile still holds."""
    store, db = registry.store, registry.store.db
    registered = await registry.register("codex", "one", None)
    await store.create_channel("ops", 10)
    await store.read_for_agent(registered.agent.id, "general", 20, None)
    landed, publish = threading.Event(), threading.Event()
    after_commit = db._after_commit

    def held(committed: bool | None) -> None:  # the writer thread, right after the next COMMIT
        if committed:
            db._after_commit = after_commit  # type: ignore[method-assign]
            landed.set()
            publish.wait(10)
        after_commit(committed)

    db._after_commit = held  # type: ignore[method-assign]
    moving = asyncio.ensure_future(store.read_for_agent(registered.agent.id, "ops", 20, None))
    try:
        assert await anyio.to_thread.run_sync(landed.wait, 10)
        assert db.agents_volatile[registered.agent.id][2] == "general"  # not published yet
        assert (await registry.authenticate(registered.token, touch=False)).last_channel == "ops"
    finally:
        publish.set()
        await moving
    assert (await registry.authenticate(registered.token, touch=False)).last_channel == "ops"
