"""Sessions (issue 11) over real MCP: agents are woken for their turns (the wake-ups a wrapper would
stream), acknowledge them and answer with ``chat_send``; people use the REST routes.

Each built-in template runs end to end; the turn rules (pause and resume, outsiders ignored,
mention gating, people in the cast), ending, one running session per channel, casting from online
agents, and a channel's rename and deletion. One server for the module: each test makes its own
channel and agents.
"""

from __future__ import annotations

import itertools
import json
import re
import sqlite3
import time
from collections.abc import AsyncGenerator, Iterator
from contextlib import AsyncExitStack, asynccontextmanager
from dataclasses import dataclass
from typing import Any

import anyio
import httpx
import pytest
from mcp import Client

from backchannel.models import Trigger
from backchannel.session_templates import BUILTIN
from tests.conftest import RunningServer, mcp_client, module_server, ok, pending, register, text_of

pytestmark = pytest.mark.anyio

SEQ = itertools.count(1)
SENT = re.compile(r"^Sent \(id=(\d+)\)$")


@pytest.fixture(scope="module")
def srv(tmp_path_factory: pytest.TempPathFactory) -> Iterator[RunningServer]:
    with module_server(tmp_path_factory, "sessions") as running:
        yield running


@dataclass
class Bot:
    """An agent as its wrapper and CLI would be: a token, and an MCP client to answer with."""

    name: str
    token: str
    client: Client


@asynccontextmanager
async def bots(server: RunningServer, count: int) -> AsyncGenerator[list[Bot]]:
    async with AsyncExitStack() as stack:
        made: list[Bot] = []
        for _ in range(count):
            info = await register(server.url, "claude", f"sess-{next(SEQ)}")
            client = await stack.enter_async_context(mcp_client(server.url, info["token"]))
            made.append(Bot(info["name"], info["token"], client))
        yield made


async def new_channel(human: httpx.AsyncClient) -> str:
    name = f"s{next(SEQ)}"
    ok(await human.post("/api/channels", json={"name": name}), 201)
    return name


async def me(human: httpx.AsyncClient) -> str:
    return str(ok(await human.get("/api/me"))["name"])


async def wakeups(server: RunningServer, bot: Bot) -> list[Trigger]:
    """The bot's pending session wake-ups (not its mention wake-ups)."""
    return [t for t in await pending(server, bot.name) if t.prompt.startswith("Session ")]


async def ack(server: RunningServer, bot: Bot, trigger_id: int, state: str = "injected") -> None:
    """What the wrapper reports once it typed the prompt: the wake-up is never replayed again."""
    async with httpx.AsyncClient(base_url=server.url, timeout=10) as client:
        response = await client.post(
            f"/api/agents/{bot.name}/triggers/{trigger_id}",
            json={"state": state},
            headers={"Authorization": f"Bearer {bot.token}"},
        )
        assert response.status_code == 200, response.text


async def send(bot: Bot, channel: str, text: str) -> int:
    result = await bot.client.call_tool("chat_send", {"message": text, "channel": channel})
    match = SENT.match(text_of(result))
    assert match and not result.is_error, text_of(result)
    return int(match.group(1))


async def take_turn(server: RunningServer, bot: Bot, channel: str, text: str) -> tuple[int, str]:
    """The bot is woken exactly once for its turn, acknowledges it and answers; (message id, prompt)."""
    woken = await wakeups(server, bot)
    assert len(woken) == 1, woken
    await ack(server, bot, woken[0].id)
    return await send(bot, channel, text), woken[0].prompt


async def start(human: httpx.AsyncClient, status: int = 201, **body: Any) -> dict[str, Any]:
    return ok(await human.post("/api/sessions", json=body), status)


async def session(human: httpx.AsyncClient, session_id: int) -> dict[str, Any]:
    return ok(await human.get(f"/api/sessions/{session_id}"))


async def all_events(human: httpx.AsyncClient) -> list[dict[str, Any]]:
    found: list[dict[str, Any]] = []
    while True:
        since = found[-1]["seq"] if found else 0
        page = ok(await human.get("/api/events", params={"since": since}))["events"]
        if not page:
            return found
        found += page


async def timeline(human: httpx.AsyncClient, channel: str) -> list[dict[str, Any]]:
    return ok(await human.get(f"/api/channels/{channel}/messages", params={"limit": 200}))["messages"]


@pytest.mark.parametrize("template_id", sorted(BUILTIN))
async def test_each_builtin_template_runs_end_to_end_over_mcp(srv: RunningServer, template_id: str) -> None:
    template = BUILTIN[template_id]
    total = len(template.phases)
    async with srv.human() as human, bots(srv, len(template.roles)) as team:
        channel = await new_channel(human)
        cast = {role: bot.name for role, bot in zip(template.roles, team, strict=True)}
        by_name = {bot.name: bot for bot in team}
        since = ok(await human.get("/api/events", params={"since": 0, "limit": 1}))["last_seq"]
        started = await start(
            human, template_id=template_id, channel=channel, cast=cast, goal="Ship the new parser."
        )
        assert (started["state"], started["phase"], started["total_phases"]) == ("active", 0, total)
        assert started["template"]["phases"][0]["name"] == template.phases[0].name
        assert (started["channel"], started["cast"], started["template_name"]) == (
            channel,
            cast,
            template.name,
        )

        turns: list[int] = []
        for p, phase in enumerate(template.phases):
            for role in phase.participants:
                now = await session(human, started["id"])
                assert (now["phase"], now["phase_name"], now["current_role"]) == (p, phase.name, role)
                assert now["current_agent"] == cast[role] and not now["waiting_on_person"]
                bot = by_name[cast[role]]
                sent, prompt = await take_turn(srv, bot, channel, f"{role} speaks in {phase.name}")
                assert "\n" not in prompt
                assert f'phase {p + 1}/{total} "{phase.name}": it is your turn as {role}.' in prompt
                assert "Goal: Ship the new parser." in prompt and phase.prompt in prompt
                assert f"Previous turns: messages {', '.join(map(str, turns)) or 'none yet'}." in prompt
                assert f'chat_read(channel="{channel}")' in prompt
                assert (
                    f'chat_send(channel="{channel}"): your next message in #{channel} is your turn' in prompt
                )
                turns.append(sent)

        done = await session(human, started["id"])
        assert (done["state"], done["end_reason"], done["current_agent"]) == ("complete", "complete", None)
        assert done["turn_messages"] == turns and done["output_message_id"] == turns[-1]
        assert done["ended_at"] is not None
        output = ok(await human.get(f"/api/messages/{turns[-1]}"))
        assert output["metadata"] == {"session_output": True, "session_id": started["id"]}
        assert all([await wakeups(srv, bot) == [] for bot in team])

        banners = [m for m in await timeline(human, channel) if m["type"].startswith("session_")]
        assert [m["type"] for m in banners] == ["session_start", *["session_phase"] * total, "session_end"]
        assert all(m["sender"] == "system" and m["kind"] == "system" for m in banners)
        assert (
            banners[0]["metadata"]["cast"] == cast
            and banners[0]["metadata"]["goal"] == "Ship the new parser."
        )
        assert [m["metadata"]["phase"] for m in banners[1:-1]] == list(range(total))
        assert banners[1]["metadata"]["participants"] == list(template.phases[0].participants)
        end = banners[-1]["metadata"]
        assert end == {"session_id": started["id"], "output_message_id": turns[-1], "reason": "complete"}

        log = ok(await human.get("/api/events", params={"since": since, "limit": 1000}))["events"]
        mine = [e for e in log if e["kind"] == "session" and e["session"]["id"] == started["id"]]
        turn_count = sum(len(p.participants) for p in template.phases)
        assert [e["action"] for e in mine] == ["started", *["updated"] * (turn_count - 1), "complete"]
        edited = [e for e in log if e["kind"] == "message_edited" and e["message"]["id"] == turns[-1]]
        assert edited and edited[0]["message"]["metadata"]["session_output"] is True


async def test_a_person_on_an_agents_turn_pauses_it_and_the_agents_message_resumes_and_counts(
    srv: RunningServer,
) -> None:
    async with srv.human() as human, bots(srv, 2) as (planner, other):
        channel = await new_channel(human)
        cast = {"planner": planner.name, "challenger": other.name, "synthesiser": other.name}
        started = await start(human, template_id="planning", channel=channel, cast=cast)
        ok(
            await human.post(f"/api/channels/{channel}/messages", json={"text": "Wait: mind the budget."}),
            201,
        )
        paused = await session(human, started["id"])
        assert (paused["state"], paused["current_agent"], paused["phase"]) == ("paused", planner.name, 0)
        ok(await human.post(f"/api/channels/{channel}/messages", json={"text": "And the deadline."}), 201)
        assert (await session(human, started["id"]))["state"] == "paused"
        active = ok(await human.get("/api/sessions", params={"state": "paused", "channel": channel}))
        assert [s["id"] for s in active] == [started["id"]]

        sent, _ = await take_turn(srv, planner, channel, "Frame: budget and deadline included.")
        resumed = await session(human, started["id"])
        assert (resumed["state"], resumed["phase"], resumed["current_agent"]) == ("active", 1, other.name)
        assert resumed["turn_messages"] == [sent]
        assert len(await wakeups(srv, other)) == 1
        # Every change of the row has a higher version (pages keep the newest copy by it).
        assert started["version"] < paused["version"] < resumed["version"]


async def test_agents_outside_the_cast_or_off_turn_change_nothing(srv: RunningServer) -> None:
    async with srv.human() as human, bots(srv, 3) as (presenter, critic, outsider):
        channel = await new_channel(human)
        cast = {"presenter": presenter.name, "critic": critic.name, "synthesiser": critic.name}
        started = await start(human, template_id="design-critique", channel=channel, cast=cast)
        before = await session(human, started["id"])
        await send(outsider, channel, "I have opinions too.")
        await send(critic, channel, "Not my turn, but here is a critique.")
        after = await session(human, started["id"])
        assert after == before  # same turn, same state, not even updated_at moved
        assert await wakeups(srv, critic) == [] and await wakeups(srv, outsider) == []
        assert len(await wakeups(srv, presenter)) == 1
        await take_turn(srv, presenter, channel, "Here is the design.")
        assert (await session(human, started["id"]))["current_agent"] == critic.name


async def test_mentions_while_a_session_runs_wake_only_the_agent_on_turn(srv: RunningServer) -> None:
    async with srv.human() as human, bots(srv, 3) as (planner, challenger, outsider):
        channel = await new_channel(human)
        cast = {"planner": planner.name, "challenger": challenger.name, "synthesiser": planner.name}
        started = await start(human, template_id="planning", channel=channel, cast=cast)

        # Agents' mentions wake only the agent on turn, and that one rides on its turn's wake-up
        # (not acknowledged yet) instead of waking it twice.
        mention = await send(challenger, channel, f"@{outsider.name} @{planner.name} thoughts?")
        await send(outsider, channel, f"@{challenger.name} you next?")
        assert await pending(srv, outsider.name) == [] and await pending(srv, challenger.name) == []
        [turn] = await pending(srv, planner.name)
        assert turn.prompt.startswith("Session ")
        carried = ok(await human.get("/api/deliveries", params={"ids": str(mention)}))["deliveries"]
        assert [d["trigger"] for d in carried[str(mention)]] == [turn.id]
        for n in range(5):  # mentions dropped by the gate are no agent-to-agent hops: no loop guard
            await send(challenger, channel, f"@{outsider.name} ping {n}")
        assert not [m for m in await timeline(human, channel) if "Loop guard" in m["text"]]
        assert ok(await human.get(f"/api/channels/{channel}"))["paused"] is False

        # The planner ends its turn handing over by name: the challenger is woken once, by the session.
        await take_turn(srv, planner, channel, f"Framed. @{challenger.name} over to you.")
        assert [t.prompt.startswith("Session ") for t in await pending(srv, challenger.name)] == [True]

        # A person's mention always routes (and pauses the session: it is an agent's turn).
        ok(
            await human.post(f"/api/channels/{channel}/messages", json={"text": f"@{outsider.name} look"}),
            201,
        )
        woken = await pending(srv, outsider.name)
        assert len(woken) == 1 and not woken[0].prompt.startswith("Session ")
        assert (await session(human, started["id"]))["state"] == "paused"


async def test_one_running_session_per_channel_and_ending_it(srv: RunningServer) -> None:
    async with srv.human() as human, bots(srv, 1) as (solo,):
        channel = await new_channel(human)
        person = await me(human)
        cast = {"presenter": solo.name, "critic": solo.name, "synthesiser": solo.name}
        first = await start(human, template_id="design-critique", channel=channel, cast=cast)
        again = await human.post(
            "/api/sessions",
            json={"template_id": "planning", "channel": channel, "cast": {"planner": solo.name}},
        )
        assert again.status_code == 409 and again.json()["error"] == "session_running", again.text
        assert str(first["id"]) in again.json()["detail"]
        (woken,) = await wakeups(srv, solo)
        await ack(srv, solo, woken.id, "failed")  # the wrapper could not type it; a person retries
        ok(await human.post(f"/api/triggers/{woken.id}/retry"))
        (retried,) = await wakeups(srv, solo)
        assert retried.id != woken.id

        ended = ok(await human.post(f"/api/sessions/{first['id']}/end"))
        assert (ended["state"], ended["end_reason"], ended["current_agent"]) == (
            "ended",
            f"ended by {person}",
            None,
        )
        assert await wakeups(srv, solo) == []  # the pending (retried) wake-up is superseded: never delivered
        last = (await timeline(human, channel))[-1]
        assert last["type"] == "session_end" and last["metadata"]["reason"] == f"ended by {person}"
        assert last["metadata"]["output_message_id"] is None
        twice = await human.post(f"/api/sessions/{first['id']}/end")
        assert twice.status_code == 409 and "not running" in twice.json()["detail"]

        await send(solo, channel, "Too late for the presentation.")
        assert (await session(human, first["id"]))["turn_messages"] == []
        second = await start(human, template_id="design-critique", channel=channel, cast=cast)
        listed = ok(await human.get("/api/sessions", params={"channel": channel}))
        assert [s["id"] for s in listed] == [second["id"], first["id"]]  # newest first
        page = ok(await human.get("/api/sessions", params={"channel": channel, "limit": 1}))
        assert [s["id"] for s in page] == [second["id"]]
        older = {"channel": channel, "limit": 1, "before_id": second["id"]}
        assert [s["id"] for s in ok(await human.get("/api/sessions", params=older))] == [first["id"]]
        for limit in (0, 501):
            assert (await human.get("/api/sessions", params={"limit": limit})).status_code in (400, 422)
        ok(await human.post(f"/api/sessions/{second['id']}/end"))


async def test_a_person_in_the_cast_gets_no_wake_up_and_their_message_takes_the_turn(
    srv: RunningServer,
) -> None:
    async with srv.human() as human, bots(srv, 1) as (agent,):
        channel = await new_channel(human)
        person = await me(human)
        # One agent may play several roles; a person may play one.
        cast = {"presenter": person, "critic": agent.name, "synthesiser": agent.name}
        started = await start(human, template_id="design-critique", channel=channel, cast=cast)
        assert started["waiting_on_person"] and started["current_agent"] == person
        assert started["people"] == ["presenter"]
        assert await pending(srv, agent.name) == []
        await send(agent, channel, "Can I start?")  # not its turn: nothing moves
        assert (await session(human, started["id"]))["turn_messages"] == []

        mine = ok(
            await human.post(f"/api/channels/{channel}/messages", json={"text": "The design: ..."}), 201
        )
        now = await session(human, started["id"])
        assert (now["state"], now["phase"], now["current_agent"], now["waiting_on_person"]) == (
            "active",
            1,
            agent.name,
            False,
        )
        assert now["turn_messages"] == [mine["id"]]
        critique, _ = await take_turn(srv, agent, channel, "Critique.")
        _, prompt = await take_turn(srv, agent, channel, "Synthesis.")  # a fresh wake-up for its next role
        assert f"messages {mine['id']}, {critique}." in prompt and "as synthesiser" in prompt
        assert (await session(human, started["id"]))["state"] == "complete"


async def test_a_channel_rename_carries_the_session_and_a_delete_removes_it(srv: RunningServer) -> None:
    async with srv.human() as human, bots(srv, 1) as (solo,):
        channel = await new_channel(human)
        cast = {"planner": solo.name, "challenger": solo.name, "synthesiser": solo.name}
        started = await start(
            human, template_id="planning", channel=channel, cast=cast, goal="Plan 42 quietly"
        )
        (failed,) = await wakeups(srv, solo)
        await ack(srv, solo, failed.id, "failed")  # retried: the live wake-up is a new row
        ok(await human.post(f"/api/triggers/{failed.id}/retry"))
        renamed = f"{channel}-new"
        ok(await human.patch(f"/api/channels/{channel}", json={"name": renamed}))
        moved = await session(human, started["id"])
        assert (moved["channel"], moved["state"]) == (renamed, "active")
        (woken,) = await wakeups(srv, solo)
        assert woken.channel == renamed and f'chat_send(channel="{renamed}")' in woken.prompt
        await take_turn(srv, solo, renamed, "Framed in the renamed channel.")
        assert (await session(human, started["id"]))["phase"] == 1

        assert (await human.delete(f"/api/channels/{renamed}")).status_code == 204
        assert (await human.get(f"/api/sessions/{started['id']}")).status_code == 404
        assert await wakeups(srv, solo) == []  # the pending turn went with it
        assert started["id"] not in [s["id"] for s in ok(await human.get("/api/sessions"))]
        log = await all_events(human)
        assert "Plan 42 quietly" not in json.dumps(log)  # its goal left the event log with the channel
        ended = [e for e in log if e["kind"] == "session"][-1]
        assert (ended["action"], ended["session"]["id"], ended["session"]["state"]) == (
            "ended",
            started["id"],
            "ended",
        )


async def test_bad_requests_get_clear_errors(srv: RunningServer) -> None:
    async with srv.human() as human, bots(srv, 1) as (solo,):
        channel = await new_channel(human)

        async def refused(status: int, words: str, **body: Any) -> None:
            response = await human.post("/api/sessions", json={"channel": channel, **body})
            assert response.status_code == status and words in response.json()["detail"], response.text

        await refused(400, "give template_id or draft_message_id")
        await refused(400, "give template_id or draft_message_id", template_id="planning", draft_message_id=1)
        await refused(404, "no session template 'nope'", template_id="nope")
        await refused(
            400, "'judge', not roles of Planning", template_id="planning", cast={"judge": solo.name}
        )
        await refused(
            400, "no agent or person named 'nobody'", template_id="planning", cast={"planner": "nobody"}
        )
        await refused(400, "goal is 501 characters", template_id="planning", goal="g" * 501)
        await refused(400, "control character", template_id="planning", goal="bell \x07")
        await refused(404, "no channel", template_id="planning", channel="missing")
        await refused(404, "no session draft 1", draft_message_id=1)
        assert (await human.get("/api/sessions", params={"state": "odd"})).status_code == 400
        assert (await human.get("/api/sessions/999999")).status_code == 404
        assert (await human.post("/api/sessions/999999/end")).status_code == 404
        assert ok(await human.get("/api/sessions", params={"channel": channel})) == []


async def test_the_cast_is_filled_from_online_agents_and_none_online_is_a_400(server: RunningServer) -> None:
    async with server.human() as human:
        refused = await human.post("/api/sessions", json={"template_id": "planning", "channel": "general"})
        assert refused.status_code == 400, refused.text
        assert "no online agent to cast as planner, challenger, synthesiser" in refused.json()["detail"]
        async with bots(server, 2) as (one, two):
            cast = {"planner": f"@{two.name.upper()}"}  # "@" and case do not matter
            started = await start(human, template_id="planning", channel="general", cast=cast)
            assert started["cast"] == {"planner": two.name, "challenger": one.name, "synthesiser": two.name}
            assert len(await wakeups(server, two)) == 1


DRAFT = {
    "name": "Pair check",
    "description": "One agent proposes, the other checks.",
    "roles": ["author", "checker"],
    "phases": [
        {"name": "Propose", "participants": ["author"], "prompt": "Propose a fix.", "is_output": False},
        {"name": "Check", "participants": ["checker"], "prompt": "Check the fix.", "is_output": True},
    ],
}


def draft_text(template: dict[str, Any]) -> str:
    return f"Here is my design:\n```session\n{json.dumps(template)}\n```"


async def test_a_draft_card_runs_as_a_session_of_its_snapshot(srv: RunningServer) -> None:
    async with srv.human() as human, bots(srv, 2) as (author, checker):
        channel = await new_channel(human)
        card = await send(author, channel, draft_text(DRAFT))
        assert ok(await human.get(f"/api/messages/{card}"))["type"] == "session_draft"
        cast = {"author": author.name, "checker": checker.name}
        started = await start(human, draft_message_id=card, channel=channel, cast=cast)
        assert started["template_name"] == "Pair check" and started["template"]["roles"] == [
            "author",
            "checker",
        ]
        assert ok(await human.get(f"/api/messages/{card}"))["metadata"]["status"] == "run"
        # A draft's run names no template (no made-up id): the snapshot carries its name.
        assert started["template_id"] is None and "id" not in started["template"]
        again = await human.post("/api/sessions", json={"draft_message_id": card, "channel": "general"})
        assert again.status_code == 409, again.text

        _, prompt = await take_turn(srv, author, channel, "The fix.")
        assert prompt.startswith(f'Session "Pair check" in #{channel}, phase 1/2 "Propose"')
        fix_checked, _ = await take_turn(srv, checker, channel, "Checked.")
        done = await session(human, started["id"])
        assert (done["state"], done["output_message_id"]) == ("complete", fix_checked)


async def test_clearing_the_channel_ends_its_running_session(srv: RunningServer) -> None:
    async with srv.human() as human, bots(srv, 1) as (solo,):
        channel = await new_channel(human)
        cast = {"planner": solo.name, "challenger": solo.name, "synthesiser": solo.name}
        started = await start(human, template_id="planning", channel=channel, cast=cast, goal="Clear me")
        await take_turn(srv, solo, channel, "Framed.")
        ok(await human.delete(f"/api/channels/{channel}/messages"))
        ended = await session(human, started["id"])
        assert (ended["state"], ended["end_reason"]) == ("ended", "channel cleared")
        assert await wakeups(srv, solo) == []  # the next turn is never delivered
        [banner] = await timeline(human, channel)  # only the end banner is left, saying why
        assert banner["type"] == "session_end" and banner["metadata"]["reason"] == "channel cleared"
        # The channel is free for a new session at once.
        again = await start(human, template_id="planning", channel=channel, cast=cast)
        assert again["state"] == "active"
        ok(await human.post(f"/api/sessions/{again['id']}/end"))


async def test_a_participant_renamed_mid_session_keeps_their_turn(srv: RunningServer) -> None:
    async with srv.human() as human, bots(srv, 1) as (solo,):
        channel = await new_channel(human)
        cast = {"planner": solo.name, "challenger": solo.name, "synthesiser": solo.name}
        started = await start(human, template_id="planning", channel=channel, cast=cast)
        new_name = f"claude-renamed-{next(SEQ)}"
        since = ok(await human.get("/api/events", params={"since": 0, "limit": 1}))["last_seq"]
        ok(await human.patch(f"/api/agents/{solo.name}", json={"name": new_name}))
        assert set((await session(human, started["id"]))["cast"].values()) == {new_name}
        # Open pages learn it at once: the bar says "Waiting for <new name>".
        log = ok(await human.get("/api/events", params={"since": since}))["events"]
        [moved] = [e for e in log if e["kind"] == "session" and e["session"]["id"] == started["id"]]
        assert moved["action"] == "updated" and moved["session"]["current_agent"] == new_name
        assert moved["session"]["version"] > started["version"]
        renamed = Bot(new_name, solo.token, solo.client)
        await take_turn(srv, renamed, channel, "Framed under my new name.")
        assert (await session(human, started["id"]))["phase"] == 1
        ok(await human.post(f"/api/sessions/{started['id']}/end"))


async def test_a_fired_schedule_never_takes_nor_pauses_a_turn(srv: RunningServer) -> None:
    """A schedule fires as its creator, but what it says is no turn (finding 1)."""
    schedules = srv.app.state.services.schedules
    async with srv.human() as human, bots(srv, 2) as (planner, other):
        channel = await new_channel(human)
        cast = {"planner": planner.name, "challenger": other.name, "synthesiser": other.name}
        started = await start(human, template_id="planning", channel=channel, cast=cast)
        made = await planner.client.call_tool(
            "chat_schedule",
            {
                "action": "create",
                "prompt": "check CI",
                "targets": [other.name],
                "channel": channel,
                "spec": "every 1 day",
            },
        )
        assert not made.is_error, text_of(made)
        body = {"prompt": "standup", "targets": [planner.name], "channel": channel, "spec": "every 1 day"}
        ok(await human.post("/api/schedules", json=body), 201)
        for listed in ok(await human.get("/api/schedules", params={"channel": channel})):
            assert await schedules.fire(await schedules.get(listed["id"]), time.time())
        fired = [m for m in await timeline(human, channel) if m["metadata"].get("schedule_id")]
        assert len(fired) == 2
        now = await session(human, started["id"])
        assert (now["state"], now["turn_messages"], now["phase"]) == ("active", [], 0)
        assert len(await wakeups(srv, planner)) == 1  # the turn's wake-up is still the one owed
        await take_turn(srv, planner, channel, "Framed.")
        assert (await session(human, started["id"]))["phase"] == 1


async def test_peoples_tool_messages_never_pause_nor_take_a_turn(srv: RunningServer) -> None:
    """A draft request and the UI's "Request changes" message are no turn (finding 13)."""
    async with srv.human() as human, bots(srv, 1) as (solo,):
        channel = await new_channel(human)
        person = await me(human)
        cast = {"presenter": solo.name, "critic": person, "synthesiser": solo.name}
        started = await start(human, template_id="design-critique", channel=channel, cast=cast)
        asked = {"agent": solo.name, "channel": channel, "description": "a review"}
        ok(await human.post("/api/sessions/request-draft", json=asked), 201)
        revise = {"text": f"@{solo.name} Please revise session draft 0123abcd: shorter"}
        ok(await human.post(f"/api/channels/{channel}/messages", json=revise), 201)
        assert (await session(human, started["id"]))["state"] == "active"
        await take_turn(srv, solo, channel, "The design.")  # now it is the person's turn
        ok(await human.post("/api/sessions/request-draft", json=asked), 201)
        ok(await human.post(f"/api/channels/{channel}/messages", json=revise), 201)
        now = await session(human, started["id"])
        assert (now["state"], now["current_agent"], len(now["turn_messages"])) == ("active", person, 1)


async def test_a_person_handing_over_by_name_wakes_the_next_agent_once(srv: RunningServer) -> None:
    """The session's wake-up carries the person's mention of the next agent (finding 2)."""
    async with srv.human() as human, bots(srv, 1) as (solo,):
        channel = await new_channel(human)
        person = await me(human)
        cast = {"presenter": person, "critic": solo.name, "synthesiser": solo.name}
        await start(human, template_id="design-critique", channel=channel, cast=cast)
        text = {"text": f"The design. @{solo.name} over to you"}
        mine = ok(await human.post(f"/api/channels/{channel}/messages", json=text), 201)
        [woken] = await pending(srv, solo.name)
        assert woken.prompt.startswith("Session ")
        carried = ok(await human.get("/api/deliveries", params={"ids": str(mine["id"])}))["deliveries"]
        assert [d["trigger"] for d in carried[str(mine["id"])]] == [woken.id]


async def test_a_long_goal_reaches_the_wake_up_whole(srv: RunningServer) -> None:
    async with srv.human() as human, bots(srv, 1) as (solo,):
        channel = await new_channel(human)
        goal = "g" * 489 + " lastword42"
        assert len(goal) == 500
        cast = {"planner": solo.name, "challenger": solo.name, "synthesiser": solo.name}
        started = await start(human, template_id="planning", channel=channel, cast=cast, goal=goal)
        [woken] = await wakeups(srv, solo)
        assert f"Goal: {goal}." in woken.prompt
        ok(await human.post(f"/api/sessions/{started['id']}/end"))


async def test_running_an_invalid_draft_lists_its_problems(srv: RunningServer) -> None:
    async with srv.human() as human, bots(srv, 1) as (author,):
        channel = await new_channel(human)
        card = await send(author, channel, draft_text({**DRAFT, "roles": []}))
        refused = await human.post("/api/sessions", json={"draft_message_id": card, "channel": channel})
        assert refused.status_code == 400 and refused.json()["error"] == "invalid_template", refused.text
        problems = refused.json()["problems"]
        assert isinstance(problems, list) and problems and all(isinstance(p, str) for p in problems)


async def test_a_stale_revise_request_does_not_take_a_fresh_design(srv: RunningServer) -> None:
    """Finding 3: an answered revise request, or another agent's draft id, is no revision target."""
    async with srv.human() as human, bots(srv, 2) as (author, other):
        channel = await new_channel(human)

        async def meta(message_id: int) -> dict[str, Any]:
            return ok(await human.get(f"/api/messages/{message_id}"))["metadata"]

        first = await send(author, channel, draft_text(DRAFT))
        draft_id = (await meta(first))["draft_id"]
        revise = {"text": f"@{author.name} Please revise session draft {draft_id}: shorter"}
        ok(await human.post(f"/api/channels/{channel}/messages", json=revise), 201)
        second = await send(author, channel, draft_text({**DRAFT, "name": "Rev two"}))
        assert ((await meta(second))["draft_id"], (await meta(second))["revision"]) == (draft_id, 2)
        asked = {"agent": author.name, "channel": channel, "description": "something else"}
        ok(await human.post("/api/sessions/request-draft", json=asked), 201)
        third = await send(author, channel, draft_text({**DRAFT, "name": "Brand new"}))
        assert (await meta(third))["draft_id"] != draft_id and (await meta(third))["revision"] == 1
        assert (await meta(second))["status"] == "open"
        # Another agent naming this draft's id starts a draft of its own.
        hijack = await send(other, channel, draft_text({**DRAFT, "draft_id": draft_id}))
        assert (await meta(hijack))["draft_id"] != draft_id
        assert (await meta(second))["status"] == "open"


async def test_an_offline_agent_on_turn_gets_its_wake_up_once_when_it_returns(srv: RunningServer) -> None:
    """Finding 6: the turn waits (queued, current_agent shown) and is delivered when the stream opens."""
    store = srv.app.state.services.store
    async with srv.human() as human, bots(srv, 1) as (solo,):
        channel = await new_channel(human)

        def lapse(c: sqlite3.Connection) -> None:  # its heartbeat stopped long ago
            c.execute("UPDATE agents SET last_seen = 0 WHERE name = ?", (solo.name,))

        await store.db.write(lapse)
        roster = {a["name"]: a for a in ok(await human.get("/api/agents"))}
        assert roster[solo.name]["online"] is False, roster[solo.name]
        cast = {"planner": solo.name, "challenger": solo.name, "synthesiser": solo.name}
        started = await start(human, template_id="planning", channel=channel, cast=cast)
        assert started["current_agent"] == solo.name and started["state"] == "active"
        [woken] = await wakeups(srv, solo)
        assert woken.state == "queued"
        headers = {"Authorization": f"Bearer {solo.token}"}
        async with (
            httpx.AsyncClient(base_url=srv.url, timeout=10, headers=headers) as agent_http,
            agent_http.stream("GET", f"/api/agents/{solo.name}/triggers") as stream,
        ):
            got: list[int] = []
            with anyio.fail_after(5):
                async for line in stream.aiter_lines():
                    if line.startswith("data: "):
                        got.append(int(json.loads(line[6:])["id"]))
                    if line == ": ready":
                        break
        assert got == [woken.id]
        assert (await session(human, started["id"]))["current_agent"] == solo.name
        ok(await human.post(f"/api/sessions/{started['id']}/end"))


async def test_agents_cannot_use_the_session_routes(srv: RunningServer) -> None:
    """Agents take part by answering their wake-ups; the routes are people's (identity from the token)."""
    async with bots(srv, 1) as (solo,):
        headers = {"Authorization": f"Bearer {solo.token}"}
        async with httpx.AsyncClient(base_url=srv.url, timeout=10, headers=headers) as agent_http:
            listed = await agent_http.get("/api/sessions")
            body = {"template_id": "planning", "channel": "general", "cast": {"planner": solo.name}}
            started = await agent_http.post("/api/sessions", json=body)
        assert (listed.status_code, started.status_code) == (401, 401), (listed.text, started.text)
