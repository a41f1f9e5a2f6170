"""``GET /api/agents/{name}/triggers/states``: what a wrapper asks right before typing held wake-ups,
and a late report on a superseded wake-up that must not make it pending again. Real server."""

from __future__ import annotations

import httpx
import pytest

from tests.conftest import RunningServer, register

pytestmark = pytest.mark.anyio


async def test_states_of_held_wake_ups_and_a_late_report_on_a_superseded_one(server: RunningServer) -> None:
    claude = await register(server.url, "claude")
    codex = await register(server.url, "codex", instance_id="i-2")
    async with (
        server.human() as human,
        httpx.AsyncClient(base_url=server.url, headers={"Authorization": f"Bearer {claude['token']}"}) as me,
        httpx.AsyncClient(
            base_url=server.url, headers={"Authorization": f"Bearer {codex['token']}"}
        ) as other,
    ):
        posted = (await human.post("/api/channels/general/messages", json={"text": "@claude look"})).json()
        page = (await human.get("/api/channels/general/messages")).json()
        trigger = page["deliveries"][str(posted["id"])][0]["trigger"]
        url = "/api/agents/claude/triggers/states"

        asked = await me.get(url, params={"ids": f"{trigger},999999"})
        assert asked.status_code == 200, asked.text
        assert asked.json() == {"states": {str(trigger): "queued"}}  # an unknown id is left out
        theirs = await other.get("/api/agents/codex/triggers/states", params={"ids": str(trigger)})
        assert theirs.json() == {"states": {}}  # never another agent's
        assert (await other.get(url, params={"ids": str(trigger)})).status_code == 401
        assert (await me.get(url, params={"ids": "1,x"})).status_code == 422
        too_many = await me.get(url, params={"ids": ",".join(str(i) for i in range(1, 502))})
        assert too_many.status_code == 400 and "500" in too_many.json()["detail"]

        # /clear withdraws the wake-up while the wrapper holds it
        assert (await human.delete("/api/channels/general/messages")).status_code == 200
        assert (await me.get(url, params={"ids": str(trigger)})).json()["states"] == {
            str(trigger): "superseded"
        }
        # A wrapper that reports on it late (a dialog came up) is answered, but it stays withdrawn.
        late = await me.post(
            f"/api/agents/claude/triggers/{trigger}", json={"state": "waiting", "detail": "?"}
        )
        assert late.status_code == 200 and late.json()["state"] == "superseded"
        failed = await me.post(f"/api/agents/claude/triggers/{trigger}", json={"state": "failed"})
        assert failed.status_code == 200 and failed.json()["state"] == "superseded"
        assert (await me.get(url, params={"ids": str(trigger)})).json()["states"] == {
            str(trigger): "superseded"
        }
