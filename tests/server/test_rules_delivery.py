"""Room rules inside wake-ups, over the real trigger stream a wrapper reads (issue 10, rules).

The first wake-up after a rule change carries the active rules, the next does not; a reminder
and every ``rules_refresh_every``-th wake-up carry them again; a replay of an unacknowledged
wake-up carries what it carried; the roster's ``rules_fresh`` follows.
"""

from __future__ import annotations

import json
from collections.abc import AsyncIterator, Iterator
from contextlib import asynccontextmanager
from typing import Any

import anyio
import httpx
import pytest
from websockets.asyncio.client import ClientConnection, connect

from backchannel.wrapper.agent_client import Trigger
from backchannel.wrapper.runner import group_prompt
from tests.conftest import RunningServer, module_server, ok, register

pytestmark = pytest.mark.anyio
RULES = " Room rules (follow them): "


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[RunningServer]:
    with module_server(tmp_path_factory, "rules-delivery", rules_refresh_every=3) as running:
        yield running


class Wrapper:
    """The wrapper's side of the agent protocol: a live trigger stream, reports."""

    def __init__(self, server: RunningServer, agent: dict[str, Any]) -> None:
        self.server, self.name = server, agent["name"]
        self.http = httpx.AsyncClient(
            base_url=server.url,
            headers={"Authorization": f"Bearer {agent['token']}"},
            timeout=httpx.Timeout(10, read=30),
        )

    @asynccontextmanager
    async def stream(self) -> AsyncIterator[AsyncIterator[dict[str, Any]]]:
        async with self.http.stream("GET", f"/api/agents/{self.name}/triggers") as response:
            assert response.status_code == 200

            async def data() -> AsyncIterator[dict[str, Any]]:
                async for line in response.aiter_lines():
                    if line.startswith("data: "):
                        yield json.loads(line[6:])

            yield data()

    async def injected(self, trigger: dict[str, Any]) -> None:
        ok(
            await self.http.post(
                f"/api/agents/{self.name}/triggers/{trigger['id']}", json={"state": "injected"}
            )
        )


async def wake(
    human: httpx.AsyncClient, stream: AsyncIterator[dict[str, Any]], who: str, channel: str
) -> tuple[str, dict[str, Any]]:
    """Mention the agent; the prompt its wrapper is sent, and the whole trigger."""
    ok(await human.post(f"/api/channels/{channel}/messages", json={"text": f"@{who} next"}), 201)
    with anyio.fail_after(5):
        trigger = await anext(stream)
    assert trigger["channel"] == channel
    return trigger["prompt"], trigger


async def fresh(human: httpx.AsyncClient, name: str) -> bool:
    (agent,) = [a for a in ok(await human.get("/api/agents")) if a["name"] == name]
    return agent["rules_fresh"]


def rules_of(prompt: str) -> str | None:
    return prompt[prompt.index(RULES) + len(RULES) :] if RULES in prompt else None


async def test_rules_ride_on_the_first_wake_up_after_a_change_a_reminder_and_every_nth(
    server: RunningServer,
) -> None:
    agent = await register(server.url, "claude", "rules-1")
    me, wrapper = agent["name"], Wrapper(server, agent)
    async with server.human() as human, wrapper.http, wrapper.stream() as stream:
        ok(await human.post("/api/channels", json={"name": "ops"}), 201)
        assert await fresh(human, me), "no rule was ever active: nothing to be stale about"
        ok(await human.post("/api/rules", json={"text": "Run the tests first", "status": "active"}), 201)
        ok(
            await human.post("/api/rules", json={"text": "Ops only", "status": "active", "channel": "ops"}),
            201,
        )
        ok(await human.post("/api/rules", json={"text": "A draft is not delivered"}), 201)
        assert not await fresh(human, me)

        async def next_rules(channel: str = "general") -> str | None:
            prompt, trigger = await wake(human, stream, me, channel)
            await wrapper.injected(trigger)
            return rules_of(prompt)

        assert await next_rules() == "1) Run the tests first."
        assert await fresh(human, me)
        assert await next_rules() is None  # 1 wake-up since
        assert await next_rules() is None  # 2
        assert await next_rules() == "1) Run the tests first."  # the 3rd: refreshed
        assert await next_rules() is None
        ok(await human.post("/api/rules/remind"))
        assert not await fresh(human, me)
        assert await next_rules("ops") == "1) Run the tests first; 2) Ops only."
        assert await fresh(human, me)
        assert await next_rules("ops") is None
        # A reason is not delivered: editing it changes nothing an agent sees.
        rules = ok(await human.get("/api/rules"))
        first = next(r for r in rules if r["text"] == "Run the tests first")
        ok(await human.patch(f"/api/rules/{first['id']}", json={"reason": "CI is slow"}))
        assert await fresh(human, me)
        for rule in rules:
            ok(await human.patch(f"/api/rules/{rule['id']}", json={"status": "archived"}))
        prompt, trigger = await wake(human, stream, me, "general")
        await wrapper.injected(trigger)
        assert prompt.endswith(" Room rules: none are active now.")
        for _ in range(4):  # past the refresh count: a room without rules is not told so again
            prompt, trigger = await wake(human, stream, me, "general")
            await wrapper.injected(trigger)
            assert "Room rules" not in prompt and "rules" not in trigger


async def test_a_replay_carries_the_same_rules_and_a_plain_replay_none(server: RunningServer) -> None:
    agent = await register(server.url, "codex", "rules-2")
    me, wrapper = agent["name"], Wrapper(server, agent)
    async with server.human() as human, wrapper.http:
        ok(await human.post("/api/rules", json={"text": "Replay me", "status": "active"}), 201)
        async with wrapper.stream() as stream:
            carried, trigger = await wake(human, stream, me, "general")
        assert rules_of(carried) == "1) Replay me." and trigger["rules"] == f"{RULES}1) Replay me."
        async with wrapper.stream() as stream:  # never acknowledged: the reconnect replays it
            with anyio.fail_after(5):
                replay = await anext(stream)
            assert (replay["id"], replay["prompt"]) == (trigger["id"], carried)
            await wrapper.injected(replay)
            plain, trigger = await wake(human, stream, me, "general")
        assert rules_of(plain) is None
        async with wrapper.stream() as stream:
            with anyio.fail_after(5):
                replay = await anext(stream)
            assert (replay["id"], replay["prompt"]) == (trigger["id"], plain)
            await wrapper.injected(replay)
            # Replays are not wake-ups: the count to the refresh goes on from 1.
            assert rules_of((await wake(human, stream, me, "general"))[0]) is None
            assert rules_of((await wake(human, stream, me, "general"))[0]) is not None


def test_a_wrapper_typing_several_wake_ups_at_once_keeps_the_rules_an_earlier_one_carried() -> None:
    """The wrapper types one prompt per channel for a batch: the newest. Rules an earlier one
    carried (the server has counted them as seen) must not be lost with it."""
    rules = f"{RULES}1) Be brief."

    def trigger(n: int, prompt: str, **raw: Any) -> Trigger:
        return Trigger(id=n, channel="general", prompt=prompt, sender="ben", raw={"id": n, **raw})

    assert group_prompt([trigger(1, f"a{rules}", rules=rules), trigger(2, "b")]) == f"b{rules}"
    assert group_prompt([trigger(1, "a"), trigger(2, f"b{rules}", rules=rules)]) == f"b{rules}"
    assert (
        group_prompt([trigger(1, f"a{rules}", rules=rules), trigger(2, f"b{rules}", rules=rules)])
        == f"b{rules}"
    )
    assert group_prompt([trigger(1, "a"), trigger(2, "b")]) == "b"


async def next_presence(ws: ClientConnection, name: str, rules_fresh: bool) -> None:
    with anyio.fail_after(5):
        while True:
            frame = json.loads(await ws.recv())
            if frame["kind"] == "presence" and frame["agent"]["name"] == name:
                if frame["agent"]["rules_fresh"] is rules_fresh:
                    return


async def test_presence_goes_stale_on_a_change_and_fresh_when_a_wake_up_carries_it(
    server: RunningServer,
) -> None:
    agent = await register(server.url, "gemini", "rules-3")
    me, wrapper = agent["name"], Wrapper(server, agent)
    async with server.human() as human:
        cookie = (await human.get("/")).cookies[server.session_cookie]
        headers = {"Cookie": f"{server.session_cookie}={cookie}", "Origin": server.url}
        ws_url = server.url.replace("http://", "ws://") + "/ws"
        async with (
            connect(ws_url, additional_headers=headers) as ws,
            wrapper.http,
            wrapper.stream() as stream,
        ):
            ok(await human.post("/api/rules/remind"))
            await next_presence(ws, me, rules_fresh=False)
            _, trigger = await wake(human, stream, me, "general")
            await next_presence(ws, me, rules_fresh=True)
            await wrapper.injected(trigger)


async def failed(wrapper: Wrapper, trigger: dict[str, Any]) -> None:
    """The wrapper could not type it (tmux not ready, a dialog on screen...)."""
    path = f"/api/agents/{wrapper.name}/triggers/{trigger['id']}"
    ok(await wrapper.http.post(path, json={"state": "failed", "detail": "pane busy"}))


async def test_rules_a_failed_wake_up_carried_ride_on_the_next_one_and_on_a_retry(
    server: RunningServer,
) -> None:
    """A failed wake-up never reached the agent, rules included: the roster says stale, and the
    wake-up that replaces it (the next mention, or a person's Retry) carries them."""
    agent = await register(server.url, "qwen", "rules-4")
    me, wrapper = agent["name"], Wrapper(server, agent)
    async with server.human() as human, wrapper.http, wrapper.stream() as stream:
        rule = ok(
            await human.post("/api/rules", json={"text": "Never push to main", "status": "active"}), 201
        )
        prompt, trigger = await wake(human, stream, me, "general")
        assert "Never push to main" in (rules_of(prompt) or "") and await fresh(human, me)
        await failed(wrapper, trigger)
        assert not await fresh(human, me), "the rules never reached the agent"
        prompt, trigger = await wake(human, stream, me, "general")  # supersedes the failed one
        assert "Never push to main" in (rules_of(prompt) or "")
        assert await fresh(human, me)
        await failed(wrapper, trigger)
        assert not await fresh(human, me)
        retried = ok(await human.post(f"/api/triggers/{trigger['id']}/retry"))
        with anyio.fail_after(5):
            again = await anext(stream)
        assert again["id"] != trigger["id"] and retried
        assert "Never push to main" in (rules_of(again["prompt"]) or "")
        await wrapper.injected(again)
        assert await fresh(human, me)
        # A failure of a wake-up without rules changes nothing.
        prompt, trigger = await wake(human, stream, me, "general")
        assert rules_of(prompt) is None
        await failed(wrapper, trigger)
        assert await fresh(human, me)
        assert (await human.delete(f"/api/rules/{rule['id']}")).status_code == 204


async def test_the_role_and_the_rules_are_separate_sentences(server: RunningServer) -> None:
    agent = await register(server.url, "kimi", "rules-5")
    me, wrapper = agent["name"], Wrapper(server, agent)
    async with server.human() as human, wrapper.http, wrapper.stream() as stream:
        ok(await human.patch(f"/api/agents/{me}", json={"role": "code reviewer"}))
        ok(await human.post("/api/rules/remind"))
        prompt, trigger = await wake(human, stream, me, "general")
        await wrapper.injected(trigger)
    assert " Your role: code reviewer. Room rules" in prompt, prompt
