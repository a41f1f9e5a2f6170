"""What people set on an agent over real REST: role (presets, custom roles saved, the 20 limit),
colour, label, removing a hat, forgetting an offline agent; and second instances' colours."""

from __future__ import annotations

import json
import sqlite3
from collections.abc import Iterator
from typing import Any

import anyio
import httpx
import pytest
from websockets.asyncio.client import ClientConnection, connect

from backchannel.registry import color_for, shifted
from tests.conftest import RunningServer, mcp_client, module_server, ok, pending, refused, register, text_of

pytestmark = pytest.mark.anyio
SECRET = "s" * 40


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[RunningServer]:
    with module_server(tmp_path_factory, "agent-settings", agent_colors=(("qwen", "#336699"),)) as running:
        yield running


def bearer(token: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {token}"}


async def next_kind(ws: ClientConnection, kind: str) -> dict[str, Any]:
    with anyio.fail_after(5):
        while True:
            frame = json.loads(await ws.recv())
            if frame["kind"] == kind:
                return frame


async def events_since(human: httpx.AsyncClient, seq: int) -> list[dict[str, Any]]:
    return ok(await human.get("/api/events", params={"since": seq}))["events"]


async def last_seq(human: httpx.AsyncClient) -> int:
    return ok(await human.get("/api/events", params={"since": 0, "limit": 1}))["last_seq"]


async def test_roles_presets_stay_presets_new_ones_are_saved_and_the_limits_hold(
    server: RunningServer,
) -> None:
    agent = await register(server.url, "alpha", "roles-1")
    name = agent["name"]
    async with server.human() as human:
        since = await last_seq(human)
        assert (
            ok(await human.patch(f"/api/agents/{name}", json={"role": "  Reviewer "}))["role"] == "Reviewer"
        )
        assert ok(await human.get("/api/settings"))["custom_roles"] == []  # a preset is not saved again
        saved = ok(await human.patch(f"/api/agents/{name}", json={"role": "security auditor"}))
        assert saved["role"] == "security auditor"
        assert ok(await human.get("/api/settings"))["custom_roles"] == ["security auditor"]
        ok(await human.patch(f"/api/agents/{name}", json={"role": "Security Auditor"}))  # known: not twice
        logged = [e for e in await events_since(human, since) if e["kind"] == "settings"]
        assert [e["settings"]["custom_roles"] for e in logged] == [["security auditor"]]
        refused(await human.patch(f"/api/agents/{name}", json={"role": "r" * 21}), 400, "the limit is 20")
        assert ok(await human.patch(f"/api/agents/{name}", json={"role": ""}))["role"] == ""

        # 20 saved: a 21st new role is a 409 that changes nothing; saved and preset roles still work.
        full = [f"role {n}" for n in range(20)]
        ok(await human.patch("/api/settings", json={"custom_roles": full}))
        response = await human.patch(f"/api/agents/{name}", json={"role": "one too many", "label": "Nope"})
        refused(response, 409, "20 custom roles are saved already")
        after = next(a for a in ok(await human.get("/api/agents")) if a["name"] == name)
        assert (after["role"], after["label"]) == ("", "Alpha")
        assert ok(await human.patch(f"/api/agents/{name}", json={"role": "role 7"}))["role"] == "role 7"
        assert ok(await human.patch(f"/api/agents/{name}", json={"role": "critic"}))["role"] == "critic"
        assert ok(await human.get("/api/settings"))["custom_roles"] == full
        ok(await human.patch("/api/settings", json={"custom_roles": []}))  # leave the room as it was


async def test_colour_and_label_are_validated_together_and_colour_resets(server: RunningServer) -> None:
    agent = await register(server.url, "claude", "colour-1")
    name = agent["name"]
    async with server.human() as human:
        response = await human.patch(
            f"/api/agents/{name}", json={"role": "x" * 21, "color": "red", "label": "L" * 25}
        )
        refused(response, 400, "the limit is 20")
        for words in ('color must be "#rrggbb"', "label is 25 characters; the limit is 24"):
            assert words in response.json()["detail"]
        refused(await human.patch(f"/api/agents/{name}", json={"color": "#abc"}), 400, "#rrggbb")
        changed = ok(
            await human.patch(f"/api/agents/{name}", json={"color": "#12AB34", "label": " Lead  dev "})
        )
        assert (changed["color"], changed["label"]) == ("#12ab34", "Lead dev")
        listed = next(a for a in ok(await human.get("/api/agents")) if a["name"] == name)
        assert (listed["color"], listed["label"]) == ("#12ab34", "Lead dev")
        reset = ok(await human.patch(f"/api/agents/{name}", json={"color": "", "label": ""}))
        assert (reset["color"], reset["label"]) == ("#d97757", "Claude")  # built-in colour, default label


async def test_a_chosen_colour_outlives_the_config_colour_when_the_agent_comes_back(
    server: RunningServer,
) -> None:
    first = await register(server.url, "qwen", "cfg-1", reclaim_secret=SECRET)
    assert first["color"] == "#336699"  # [agents.qwen].color
    second = await register(server.url, "qwen", "cfg-2")
    assert second["color"] == shifted("#336699", 2) != first["color"]
    async with server.human() as human:
        ok(await human.patch(f"/api/agents/{first['name']}", json={"color": "#aa0000"}))
    again = await register(server.url, "qwen", "cfg-1", reclaim_secret=SECRET)
    assert again["color"] == "#aa0000"


async def test_second_instance_colours_differ_and_are_deterministic(server: RunningServer) -> None:
    one = await register(server.url, "codex", "inst-1")
    two = await register(server.url, "codex", "inst-2")
    three = await register(server.url, "codex", "inst-3")
    assert [a["slot"] for a in (one, two, three)] == [1, 2, 3]
    colours = [a["color"] for a in (one, two, three)]
    assert colours[0] == "#10a37f" and len(set(colours)) == 3
    assert colours[1:] == [color_for("codex", None, 2), color_for("codex", None, 3)]


async def test_removing_a_hat_is_live(server: RunningServer) -> None:
    agent = await register(server.url, "beta", "hat-1")
    store = server.app.state.services.store
    await store.update_agent((await store.agent(agent["name"])).id, hat="<svg></svg>")
    async with server.human() as human:
        cookie = (await human.get("/")).cookies[server.session_cookie]
        headers = {"Cookie": f"{server.session_cookie}={cookie}", "Origin": server.url}
        async with connect(server.url.replace("http://", "ws://") + "/ws", additional_headers=headers) as ws:
            await next_kind(ws, "hello")
            gone = ok(await human.delete(f"/api/agents/{agent['name']}/hat"))
            presence = await next_kind(ws, "presence")
        assert gone["hat"] == "" and presence["agent"]["name"] == agent["name"]
        assert presence["agent"]["hat"] == ""
        refused(await human.delete("/api/agents/nobody-here/hat"), 404, "nobody-here")


async def test_forget_an_offline_agent_keeps_its_messages_and_its_base_starts_fresh(
    server: RunningServer,
) -> None:
    old = await register(server.url, "gamma", "forget-1", reclaim_secret=SECRET)
    name = old["name"]
    store = server.app.state.services.store
    old_id = (await store.agent(name)).id
    async with mcp_client(server.url, old["token"]) as client:
        sent = await client.call_tool(
            "chat_send", {"message": "kept after I am forgotten", "channel": "general"}
        )
        assert not sent.is_error, text_of(sent)
    async with server.human() as human:
        ok(await human.patch(f"/api/agents/{name}", json={"role": "planner", "color": "#101010"}))
        refused(await human.post(f"/api/agents/{name}/forget"), 409, "is online")
        async with httpx.AsyncClient(base_url=server.url, timeout=10) as client:
            assert (
                await client.delete(f"/api/agents/{name}", headers=bearer(old["token"]))
            ).status_code == 204
        since = await last_seq(human)
        assert ok(await human.post(f"/api/agents/{name}/forget")) == {"name": name, "forgotten": True}
        assert name not in [a["name"] for a in ok(await human.get("/api/agents"))]
        forgotten = [e for e in await events_since(human, since) if e["kind"] == "agent_forgotten"]
        assert [{k: v for k, v in e.items() if k != "seq"} for e in forgotten] == [
            {"kind": "agent_forgotten", "name": name}
        ]
        refused(await human.post(f"/api/agents/{name}/forget"), 404, name)
        history = ok(await human.get("/api/channels/general/messages", params={"limit": 200}))["messages"]
        assert [m["sender"] for m in history if m["text"] == "kept after I am forgotten"] == [name]

        # The same instance, even with its reclaim secret, gets a fresh identity: nothing carried.
        fresh = await register(server.url, "gamma", "forget-1", reclaim_secret=SECRET)
        assert fresh["name"] == name and fresh["token"] != old["token"]
        assert (await store.agent(name)).id != old_id
        roster = next(a for a in ok(await human.get("/api/agents")) if a["name"] == name)
        assert (roster["role"], roster["color"]) == ("", color_for("gamma"))
        joined = ok(await human.get("/api/channels/general/messages", params={"limit": 5}))["messages"]
        assert joined[-1]["type"] == "join" and joined[-1]["text"] == f"{name} joined."
        async with httpx.AsyncClient(base_url=server.url, timeout=10) as client:
            stale = await client.post(f"/api/agents/{name}/heartbeat", headers=bearer(old["token"]))
            assert stale.status_code == 401


async def test_people_only_routes_refuse_an_agent_token(server: RunningServer) -> None:
    agent = await register(server.url, "delta", "token-1")
    auth = bearer(agent["token"])
    async with httpx.AsyncClient(base_url=server.url, timeout=10) as client:
        for method, path, body in (
            ("PATCH", f"/api/agents/{agent['name']}", {"role": "builder"}),
            ("DELETE", f"/api/agents/{agent['name']}/hat", None),
            ("POST", f"/api/agents/{agent['name']}/forget", None),
        ):
            response = await client.request(method, path, json=body, headers=auth)
            assert response.status_code in (401, 403), (method, path, response.text)
    async with server.human() as human:
        listed = next(a for a in ok(await human.get("/api/agents")) if a["name"] == agent["name"])
        assert listed["role"] == ""


async def test_every_kind_of_wake_prompt_carries_the_role(server: RunningServer) -> None:
    """Channel mention, job-thread mention, summary request and decision answer all name the role."""
    agent = await register(server.url, "epsilon", "wake-1")
    name = agent["name"]
    async with mcp_client(server.url, agent["token"]) as client:
        card = await client.call_tool(
            "chat_send", {"message": "Which one?", "channel": "general", "choices": ["a", "b"]}
        )
        assert not card.is_error, text_of(card)
    async with server.human() as human:
        ok(await human.patch(f"/api/agents/{name}", json={"role": "security auditor"}))
        ok(await human.post("/api/channels/general/messages", json={"text": f"@{name} look"}), 201)
        job = ok(await human.post("/api/jobs", json={"title": "Audit"}), 201)
        ok(await human.post(f"/api/jobs/{job['id']}/messages", json={"text": f"@{name} here"}), 201)
        ok(await human.post("/api/channels/general/summary-request", json={"agent": name}))
        ok(await human.post(f"/api/messages/{card.structured_content['id']}/decide", json={"choice": "a"}))
    prompts = [t.prompt for t in await pending(server, name)]
    assert len(prompts) == 4, prompts
    assert all(p.endswith(" Your role: security auditor.") for p in prompts), prompts


async def test_a_refused_patch_changes_nothing_not_even_the_name(server: RunningServer) -> None:
    """Name and role in one PATCH are one transaction: when the role is refused (here a concurrent
    change saved the 20th custom role behind the check), the rename is not applied either."""
    agent = await register(server.url, "zeta", "atomic-1")
    name = agent["name"]
    roles = [f"role {n}" for n in range(20)]
    with sqlite3.connect(server.app.state.services.settings.db_path) as conn:  # the concurrent PATCH
        conn.execute(
            "INSERT INTO settings(key, value) VALUES ('room.custom_roles', ?)"
            " ON CONFLICT(key) DO UPDATE SET value = excluded.value",
            (json.dumps(roles),),
        )
    async with server.human() as human:
        try:
            answer = await human.patch(
                f"/api/agents/{name}", json={"name": "zeta-renamed", "role": "one more"}
            )
            refused(answer, 409, "20 custom roles are saved already")
            (listed,) = [a for a in ok(await human.get("/api/agents")) if a["base"] == "zeta"]
            assert (listed["name"], listed["role"]) == (name, "")
        finally:
            ok(await human.patch("/api/settings", json={"custom_roles": []}))


async def test_labels_must_be_printable(server: RunningServer) -> None:
    agent = await register(server.url, "eta", "label-1")
    async with server.human() as human:
        for label in ("a\u0000b", "evil \u202egnp.exe", "bell\u0007"):
            refused(
                await human.patch(f"/api/agents/{agent['name']}", json={"label": label}), 400, "printable"
            )
        assert (
            ok(await human.patch(f"/api/agents/{agent['name']}", json={"label": "Eta \u00e9"}))["label"]
            == "Eta \u00e9"
        )
