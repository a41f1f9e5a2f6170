"""Room settings over real REST, the real WebSocket and the real MCP client: read, change (every
problem in one 400), applied at once to the loop guard of channels and job threads, kept across a
restart of the server on the same data dir."""

from __future__ import annotations

import json
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import anyio
import httpx
import pytest
from websockets.asyncio.client import ClientConnection, connect

from backchannel.config import load_settings
from backchannel.room_settings import PRESET_ROLES
from tests.conftest import RunningServer, mcp_client, module_server, ok, refused, register, text_of

pytestmark = pytest.mark.anyio


@pytest.fixture(scope="module")
def shared(tmp_path_factory: pytest.TempPathFactory) -> Iterator[RunningServer]:
    with module_server(
        tmp_path_factory, "room-settings", loop_guard_hops=6, rules_refresh_every=7
    ) as running:
        yield running


async def next_kind(ws: ClientConnection, kind: str) -> dict[str, Any]:
    with anyio.fail_after(5):
        while True:
            frame = json.loads(await ws.recv())
            if frame["kind"] == kind:
                return frame


def test_rules_refresh_every_comes_from_toml_env_and_flag(tmp_path: Path) -> None:
    toml = tmp_path / "backchannel.toml"
    toml.write_text("[rules]\nrefresh_every = 3\n")
    assert load_settings({}, env={}, config_file=toml).rules_refresh_every == 3
    env = {"BACKCHANNEL_RULES_REFRESH_EVERY": "0"}
    assert load_settings({}, env=env, config_file=toml).rules_refresh_every == 0
    assert load_settings({}, env={}, config_file=None).rules_refresh_every == 10


async def test_defaults_come_from_the_server_settings_and_a_patch_is_live_and_logged(
    shared: RunningServer,
) -> None:
    async with shared.human() as human:
        start = ok(await human.get("/api/settings"))
        assert start == {
            "title": "backchannel",
            "loop_guard_hops": 6,
            "rules_refresh_every": 7,
            "sounds": True,
            "custom_roles": [],
            "preset_roles": list(PRESET_ROLES),
        }
        cookie = (await human.get("/")).cookies[shared.session_cookie]
        headers = {"Cookie": f"{shared.session_cookie}={cookie}", "Origin": shared.url}
        ws_url = shared.url.replace("http://", "ws://") + "/ws"
        async with connect(ws_url, additional_headers=headers) as ws:
            await next_kind(ws, "hello")
            patch = {"title": "  Team room ", "rules_refresh_every": 0, "sounds": False}
            changed = ok(await human.patch("/api/settings", json=patch))
            assert changed == {**start, "title": "Team room", "rules_refresh_every": 0, "sounds": False}
            live = await next_kind(ws, "settings")
        assert live["settings"] == changed
        assert ok(await human.get("/api/settings")) == changed
        logged = ok(await human.get("/api/events", params={"since": live["seq"] - 1}))["events"]
        assert logged[0] == live  # in the event log too: a page that reconnects catches up
        # A patch of some keys keeps the others.
        roles = ok(await human.patch("/api/settings", json={"custom_roles": [" security ", "ops lead"]}))
        assert (roles["custom_roles"], roles["title"]) == (["security", "ops lead"], "Team room")
        assert shared.app.state.services.room_settings.current.custom_roles == ("security", "ops lead")


async def test_every_problem_is_listed_in_one_400_and_nothing_changes(shared: RunningServer) -> None:
    async with shared.human() as human:
        before = ok(await human.get("/api/settings"))
        bad = {
            "title": "x" * 41,
            "loop_guard_hops": 0,
            "rules_refresh_every": 101,
            "sounds": "yes",
            "custom_roles": ["r" * 21, "dup", "Dup", ""],
            "colour": "red",
        }
        response = await human.patch("/api/settings", json=bad)
        refused(response, 400, "title must be 1 to 40 characters")
        detail = response.json()["detail"]
        for words in (
            "loop_guard_hops must be a whole number from 1 to 50",
            "rules_refresh_every must be a whole number from 0 to 100",
            "sounds must be true or false",
            "custom_roles[0] 'rrrrrrrrrrrrrrrrrrrrr' is 21 characters; the limit is 20",
            "custom_roles lists 'Dup' twice",
            "custom_roles[3] is empty",
            "unknown setting(s) colour",
        ):
            assert words in detail, (words, detail)
        refused(await human.patch("/api/settings", json={"max_hops": 3}), 400, "unknown setting(s) max_hops")
        refused(await human.patch("/api/settings", json={"loop_guard_hops": True}), 400, "whole number")
        refused(await human.patch("/api/settings", json={"title": "   "}), 400, "title")
        too_many = {"custom_roles": [f"role {n}" for n in range(21)]}
        refused(await human.patch("/api/settings", json=too_many), 400, "at most 20 can be saved")
        assert ok(await human.get("/api/settings")) == before


async def test_people_only_an_agent_token_is_refused(shared: RunningServer) -> None:
    agent = await register(shared.url, "kimi", "settings-1")
    auth = {"Authorization": f"Bearer {agent['token']}"}
    async with httpx.AsyncClient(base_url=shared.url, timeout=10) as client:
        assert (await client.get("/api/settings", headers=auth)).status_code in (401, 403)
        patched = await client.patch("/api/settings", json={"title": "mine"}, headers=auth)
        assert patched.status_code in (401, 403)
    async with shared.human() as human:
        assert ok(await human.get("/api/settings"))["title"] != "mine"


async def send(client: Any, message: str, **where: Any) -> None:
    sent = await client.call_tool("chat_send", {"message": message, **where})
    assert not sent.is_error, text_of(sent)


async def texts(human: httpx.AsyncClient, path: str) -> list[str]:
    body = ok(await human.get(path, params={"limit": 200}))
    return [m["text"] for m in (body["messages"] if isinstance(body, dict) else body)]


async def test_a_loop_guard_change_applies_at_once_to_channels_and_jobs_and_survives_a_restart(
    server_factory: Callable[..., RunningServer],
) -> None:
    first = server_factory()  # loop_guard_hops defaults to 4
    one = await register(first.url, "gemini", "guard-1")
    two = await register(first.url, "gemini", "guard-2")
    async with first.human() as human:
        ok(await human.post("/api/channels", json={"name": "ping"}), 201)
        job = ok(await human.post("/api/jobs", json={"title": "Ping pong", "channel": "ping"}), 201)
        async with mcp_client(first.url, one["token"]) as client:
            await send(client, f"@{two['name']} a", channel="ping")  # hop 1 of 4
            await send(client, f"@{two['name']} a", job_id=job["id"])
            assert ok(await human.patch("/api/settings", json={"loop_guard_hops": 1}))["loop_guard_hops"] == 1
            # No restart: the very next agent-to-agent mention is past the new limit, in both places.
            await send(client, f"@{two['name']} b", channel="ping")
            await send(client, f"@{two['name']} b", job_id=job["id"])
        assert (await texts(human, "/api/channels/ping/messages"))[-1].startswith(
            "Loop guard: 1 agent-to-agent hops in #ping without"
        )
        assert (await texts(human, f"/api/jobs/{job['id']}/messages"))[-1].startswith(
            f"Loop guard: 1 agent-to-agent hops in job #{job['id']} without"
        )
    first.stop()

    again = server_factory()  # same data dir, new process state
    assert again.app.state.services.room_settings.current.loop_guard_hops == 1
    async with again.human() as human:
        assert ok(await human.get("/api/settings"))["loop_guard_hops"] == 1
        ok(await human.post("/api/channels", json={"name": "pong"}), 201)
        async with mcp_client(again.url, one["token"]) as client:
            await send(client, f"@{two['name']} c", channel="pong")  # hop 1 of 1 routes
            await send(client, f"@{two['name']} d", channel="pong")  # past the kept limit
        pong = await texts(human, "/api/channels/pong/messages")
        assert pong[-1].startswith("Loop guard: 1 agent-to-agent hops in #pong")
        assert sum(t.startswith("Loop guard") for t in pong) == 1
