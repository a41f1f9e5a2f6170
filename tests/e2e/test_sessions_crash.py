"""A session survives ``kill -9`` of the real server process at its turn, waking the agent exactly once.

The next turn's wake-up is a trigger row written in the transaction that started the session (or
stored the message that ended the previous turn), and the wrapper protocol replays unacknowledged
triggers: after a crash before the agent acknowledged, its wake-up comes back once; after it
acknowledged, never again. Nothing runs at start-up to "resume" a session, so nothing can double.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import pytest

from tests.conftest import ServerProcess, mcp_client, register, text_of
from tests.e2e.test_crash import restart
from tests.e2e.test_routing import ack, triggers

pytestmark = pytest.mark.anyio


async def replayed(url: str, agent: dict[str, Any]) -> list[dict[str, Any]]:
    """What the agent's wrapper gets on (re)connecting: every unacknowledged wake-up, oldest first."""
    async with triggers(url, agent) as stream:
        return await stream.replay()


async def test_kill_9_mid_session_resumes_at_the_same_turn_and_wakes_the_agent_once(
    server_process: Callable[..., ServerProcess],
) -> None:
    """Lean on purpose (one channel, one MCP client): the snapshot of a draft's run is covered by
    tests/test_sessions.py, and a restart keeping saved templates by the templates' tests."""
    proc = server_process()
    planner, challenger = [await register(proc.url, "claude", f"crash-{n}") for n in range(2)]
    cast = {"planner": planner["name"], "challenger": challenger["name"], "synthesiser": planner["name"]}
    async with proc.human() as human:
        assert (await human.post("/api/channels", json={"name": "plan"})).status_code == 201
        body = {"template_id": "planning", "channel": "plan", "cast": cast, "goal": "Q3"}
        started = await human.post("/api/sessions", json=body)
        assert started.status_code == 201, started.text
        session_id = started.json()["id"]

    # The planner's wrapper got its wake-up and acknowledged it; its answer ends the turn, and the
    # challenger's wake-up (written with that message) is not acknowledged before the crash.
    (acked,) = await replayed(proc.url, planner)
    await ack(proc.url, planner, acked["id"])
    async with mcp_client(proc.url, planner["token"]) as client:
        result = await client.call_tool("chat_send", {"message": "Framed.", "channel": "plan"})
        assert text_of(result).startswith("Sent (id="), text_of(result)
    (unacked,) = await replayed(proc.url, challenger)
    assert unacked["prompt"].startswith('Session "Planning" in #plan, phase 2/3')

    proc.kill()  # SIGKILL: no shutdown hook runs
    proc = restart(proc)
    try:
        assert [t["id"] for t in await replayed(proc.url, challenger)] == [unacked["id"]]  # once, the same
        assert await replayed(proc.url, planner) == []  # acknowledged: never again
        async with proc.human() as human:
            same = (await human.get(f"/api/sessions/{session_id}")).json()
            assert (same["state"], same["phase"], same["current_agent"], len(same["turn_messages"])) == (
                "active",
                1,
                challenger["name"],
                1,
            )
    finally:
        proc.kill()
