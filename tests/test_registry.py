"""Registry presence fan-out racing a rename: a page must never get the old name back."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import anyio
import pytest

from backchannel.bus import ROOM, InMemoryEventBus
from backchannel.config import Settings
from backchannel.models import Agent
from backchannel.registry import Registry
from backchannel.store import Store

pytestmark = pytest.mark.anyio


async def test_a_sweep_that_read_the_agents_before_a_rename_does_not_publish_the_old_name(
    tmp_path: Path,
) -> None:
    store = Store(tmp_path / "db.sqlite")
    bus = InMemoryEventBus()
    registry = Registry(store, bus, Settings(data_dir=tmp_path))
    try:
        await registry.register("codex", "one", None)
        read_agents = store.agents

        async def agents_then_rename() -> list[Agent]:
            """The sweep's read returns, then a person's rename commits before the sweep goes on."""
            found = await read_agents()
            store.agents = read_agents  # type: ignore[method-assign]  # only the first read races
            await registry.rename("codex", "reviewer")
            return found

        store.agents = agents_then_rename  # type: ignore[method-assign]
        async with bus.subscribe(ROOM) as sub:
            await registry.sweep()
            await registry.sweep()  # the next sweep publishes what changed, under the new name
            seen: list[dict[str, Any]] = []
            with anyio.move_on_after(0.2):
                while True:
                    seen.append(await sub.get())
        kinds = [(e["kind"], e.get("agent", {}).get("name") or e.get("new")) for e in seen]
        renamed_at = kinds.index(("agent_renamed", "reviewer"))
        assert ("presence", "codex") not in kinds[renamed_at:], kinds
    finally:
        store.close()
