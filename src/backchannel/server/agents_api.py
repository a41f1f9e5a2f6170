"""The agent protocol (shared/spec/agent-protocol.md): register, heartbeat, leave, trigger stream."""

from __future__ import annotations

import json
from collections.abc import AsyncIterator
from typing import Annotated, Any, Literal

import anyio
from fastapi import APIRouter, Depends, Path, Query, Request, Response
from fastapi.responses import StreamingResponse
from pydantic import BaseModel, Field

from backchannel.bus import agent_topic
from backchannel.errors import InvalidInput, StaleToken
from backchannel.registry import Registered
from backchannel.room import DEFAULT_CHANNEL
from backchannel.server.deps import bearer_token, services
from backchannel.store.triggers import delivery_event
from backchannel.store.triggers import states as trigger_states_of

router = APIRouter(tags=["agent protocol"])
Token = Annotated[str, Depends(bearer_token)]
KEEPALIVE_SECONDS = 15.0
MAX_STATE_IDS = 500  # trigger ids per state query (the wrapper asks in chunks)


class RegisterIn(BaseModel):
    base: str = Field(min_length=1, max_length=32)
    instance_id: str = Field(min_length=1, max_length=64)
    label: str | None = Field(default=None, max_length=64)
    # Proof that a later registration is this same instance (a restarted wrapper): set at first
    # registration, stored hashed; without it a live identity is never handed over.
    reclaim_secret: str | None = Field(default=None, min_length=32, max_length=128)


class RegisterOut(BaseModel):
    name: str
    token: str
    base: str
    slot: int
    label: str
    color: str


class HeartbeatIn(BaseModel):
    activity: Literal["busy", "idle"] | None = None


class TriggerReport(BaseModel):
    # "waiting": the wrapper holds the mention while the CLI shows an approval dialog (detail = its text).
    state: Literal["injected", "failed", "waiting"]
    detail: str = Field(default="", max_length=2000)


@router.post("/api/agents/register", response_model=RegisterOut)
async def register(request: Request, body: RegisterIn) -> dict[str, Any]:
    svc = services(request)
    svc.guard.require_registration_allowed(request)
    done = await svc.registry.register(body.base, body.instance_id, body.label, body.reclaim_secret)
    agent, token = done.agent, done.token
    if done.is_new:  # a reclaim after a crash or rotation is the same agent, not news
        await svc.room.post_system(DEFAULT_CHANNEL, _joined_text(done), type="join")
    return {
        "name": agent.name,
        "token": token,
        "base": agent.base,
        "slot": agent.slot,
        "label": agent.label,
        "color": agent.color,
    }


def _joined_text(done: Registered) -> str:
    """The join line; a take-over says what the new holder inherited, so nothing moves silently."""
    name = done.agent.name
    took = done.took_over
    if took is None:
        return f"{name} joined."
    kept = [f"{took.mentions} queued mention{'' if took.mentions == 1 else 's'}"]
    if took.role:
        kept.append(f"the role {took.role!r}")
    kept.append(f"read positions in {took.channels} channel{'' if took.channels == 1 else 's'}")
    return (
        f"{name} joined: a new instance took the name over from the offline {name}"
        f" and carries on with its {', '.join(kept[:-1])} and {kept[-1]}."
    )


@router.post("/api/agents/{name}/heartbeat")
async def heartbeat(
    request: Request, name: str, token: Token, body: HeartbeatIn | None = None
) -> dict[str, str]:
    svc = services(request)
    svc.guard.require_agent_origin(request)
    agent = await svc.registry.heartbeat(token, name, body.activity if body else None)
    return {"name": agent.name}


@router.delete("/api/agents/{name}", status_code=204)
async def leave(request: Request, name: str, token: Token) -> Response:
    svc = services(request)
    svc.guard.require_agent_origin(request)
    await svc.registry.leave(token, name)
    await svc.room.post_system(DEFAULT_CHANNEL, f"{name} left.", type="leave")
    return Response(status_code=204)


@router.post("/api/agents/{name}/triggers/{trigger_id}")
async def report_trigger(
    request: Request,
    name: str,
    trigger_id: Annotated[int, Path(ge=1, le=2**62)],
    token: Token,
    body: TriggerReport,
) -> dict[str, Any]:
    svc = services(request)
    svc.guard.require_agent_origin(request)
    # Only heartbeats and MCP calls count as liveness (agent-protocol.md), not delivery reports.
    agent = await svc.registry.authenticate_as(token, name, touch=False)
    trigger = await svc.rules.report(trigger_id, agent.id, body.state, body.detail)
    if trigger.state != "superseded":  # a superseded one stays so (the report changed nothing)
        carried = await svc.store.trigger_message_ids(trigger.id)
        svc.bus.publish("room", delivery_event(trigger, agent.name, carried))
    return {"id": trigger.id, "state": trigger.state}


@router.get("/api/agents/{name}/triggers/states")
async def trigger_states(
    request: Request,
    name: str,
    token: Token,
    ids: Annotated[str, Query(max_length=4000, pattern=r"^\d{1,18}(,\d{1,18})*$")],
) -> dict[str, dict[str, str]]:
    """The current state of wake-ups this agent holds (``ids=1,2,3``), asked right before typing
    them: one the server has superseded meanwhile (a session ended, the channel was cleared) is
    dropped, not typed. Ids that are not this agent's are left out (treat them as gone)."""
    svc = services(request)
    svc.guard.require_agent_origin(request)
    agent = await svc.registry.authenticate_as(token, name, touch=False)
    wanted = [int(i) for i in ids.split(",")]
    if len(wanted) > MAX_STATE_IDS:
        raise InvalidInput(f"ask for at most {MAX_STATE_IDS} trigger ids at once")
    found = await svc.store.db.read(lambda c: trigger_states_of(c, agent.id, wanted))
    return {"states": {str(k): v for k, v in found.items()}}


@router.get("/api/agents/{name}/triggers", response_class=StreamingResponse)
async def trigger_stream(request: Request, name: str, token: Token) -> StreamingResponse:
    """SSE: replay every unacknowledged trigger oldest first, then stream new ones as they happen."""
    svc = services(request)
    svc.guard.require_agent_origin(request)
    # An open stream proves nothing about the wrapper: a frozen one keeps its socket open (the
    # kernel answers for it), so neither the connect nor the keepalives below count as liveness.
    agent = await svc.registry.authenticate_as(token, name, touch=False)

    async def events() -> AsyncIterator[str]:
        async with svc.bus.subscribe(agent_topic(agent.id)) as sub:
            sent: set[int] = set()
            # Subscribe first, then replay: a trigger made in between arrives both ways and is deduplicated.
            for trigger in await svc.store.pending_triggers(agent.id):
                sent.add(trigger.id)
                # Marked sent, with the room rules when they are due (a replay carries them again).
                yield _sse(trigger.id, await svc.rules.deliver(trigger.id))
            yield ": ready\n\n"
            while True:
                item: dict[str, Any] | None = None
                with anyio.move_on_after(KEEPALIVE_SECONDS):
                    item = await sub.get()
                if sub.overflowed:
                    return  # we dropped wake-ups: end the stream; the reconnect replays them all
                if item is None:
                    try:  # a revoked token ends the stream, so the wrapper re-registers promptly
                        await svc.registry.authenticate_as(token, name, touch=False)
                    except StaleToken:
                        return
                    yield ": keepalive\n\n"
                    continue
                if item.get("kind") != "trigger":
                    try:  # the identity was rotated or re-registered: this stream's token may be dead
                        await svc.registry.authenticate_as(token, name, touch=False)
                    except StaleToken:
                        return
                    continue
                data = item["trigger"]
                if data["id"] not in sent:
                    sent.add(data["id"])
                    # Marked before it leaves: a mention from now on gets a trigger of its own
                    # instead of folding into one the wrapper may already be typing. The rules
                    # ride along when they are due.
                    yield _sse(data["id"], await svc.rules.deliver(data["id"], data))

    return StreamingResponse(
        events(),
        media_type="text/event-stream",
        headers={"Cache-Control": "no-cache", "X-Accel-Buffering": "no"},
    )


def _sse(event_id: int, data: dict[str, Any]) -> str:
    return f"id: {event_id}\ndata: {json.dumps(data, ensure_ascii=False)}\n\n"
