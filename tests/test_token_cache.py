"""The token cache (issue 14): one store read per identity, and never a stale answer.

Any committed change to the agents table empties it, so a rotated token is refused on the very
next call and a renamed agent acts under its new name at once.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from pathlib import Path

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
