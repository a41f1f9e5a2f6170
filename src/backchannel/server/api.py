"""REST routes for people (the web UI and local scripts). Thin: validate, call the room, respond."""

from __future__ import annotations

from typing import Annotated, Any, Literal

from fastapi import APIRouter, Depends, Path, Query, Request, Response
from fastapi.responses import FileResponse
from pydantic import BaseModel, Field
from starlette.requests import ClientDisconnect

from backchannel import __version__, uploads
from backchannel.bus import ROOM, agent_topic
from backchannel.errors import InvalidInput, NotFound, PayloadTooLarge
from backchannel.models import Person
from backchannel.server.deps import current_person, human_reader, human_writer, services
from backchannel.store.triggers import delivery_event
from backchannel.store.triggers import public as public_delivery

router = APIRouter()
Reader = [Depends(human_reader)]
Writer = [Depends(human_writer)]
# Who is acting (after Reader/Writer checked the credential): the person, never a name in the body.
Me = Annotated[Person, Depends(current_person)]
MessageId = Annotated[int, Field(ge=1, le=2**62)]
# Path ids are bounded too: SQLite integers are 64-bit, and a bigger one must be a 4xx, not a 500.
RowId = Annotated[int, Path(ge=1, le=2**62)]


class Health(BaseModel):
    status: Literal["ok"]
    version: str


class ChannelIn(BaseModel):
    name: str = Field(min_length=1, max_length=64)


class MessageIn(BaseModel):
    text: str = Field(default="", max_length=100_000)
    # Ignored (kept so older pages and scripts still work): people post under their identity's name.
    sender: str | None = Field(default=None, max_length=64)
    reply_to: MessageId | None = None
    attachments: list[dict[str, Any]] = Field(default_factory=list[dict[str, Any]], max_length=8)


class EditIn(BaseModel):
    text: str = Field(max_length=100_000)


class MeIn(BaseModel):
    name: str = Field(min_length=1, max_length=64)


class DecideIn(BaseModel):
    choice: str = Field(min_length=1, max_length=1000)


class SummaryRequestIn(BaseModel):
    agent: str = Field(min_length=1, max_length=64)


@router.get("/api/health", response_model=Health, tags=["meta"])
async def health() -> dict[str, str]:
    return {"status": "ok", "version": __version__}


@router.get("/api/limits", dependencies=Reader, tags=["meta"])
async def limits(request: Request) -> dict[str, int]:
    """The server's limits, so a page checks input against them instead of numbers of its own."""
    settings = services(request).settings
    return {
        "max_message_chars": settings.max_message_chars,
        "job_title_max": settings.job_title_max,
        "job_body_max": settings.job_body_max,
        "read_limit_max": settings.read_limit_max,
    }


@router.get("/api/channels", dependencies=Reader, tags=["channels"])
async def list_channels(request: Request) -> list[dict[str, Any]]:
    room = services(request).room
    return [c.public() for c in await room.channels()]


@router.get("/api/channels/{name}", dependencies=Reader, tags=["channels"])
async def get_channel(request: Request, name: str) -> dict[str, Any]:
    """One channel, with its summary (``summary``, ``summary_by``, ``summary_at``)."""
    return (await services(request).room.channel(name)).public()


@router.post("/api/channels", status_code=201, dependencies=Writer, tags=["channels"])
async def create_channel(request: Request, body: ChannelIn) -> dict[str, Any]:
    return (await services(request).room.create_channel(body.name)).public()


@router.patch("/api/channels/{name}", dependencies=Writer, tags=["channels"])
async def rename_channel(request: Request, name: str, body: ChannelIn) -> dict[str, Any]:
    return (await services(request).room.rename_channel(name, body.name)).public()


@router.delete("/api/channels/{name}", status_code=204, dependencies=Writer, tags=["channels"])
async def delete_channel(request: Request, name: str) -> Response:
    await services(request).room.delete_channel(name)
    return Response(status_code=204)


@router.get("/api/me", dependencies=Reader, tags=["people"])
async def get_me(me: Me) -> dict[str, Any]:
    """Who this browser (or the local CLI) is: a stable person id and the current display name."""
    return {"person_id": me.id, "name": me.name}


@router.put("/api/me", dependencies=Writer, tags=["people"])
async def set_my_name(request: Request, me: Me, body: MeIn) -> dict[str, Any]:
    """Change the display name (refused if it is reserved, an agent's or another person's)."""
    renamed = await services(request).people.rename(me, body.name)
    return {"person_id": renamed.id, "name": renamed.name}


@router.post("/api/channels/{name}/continue", dependencies=Writer, tags=["channels"])
async def continue_routing(request: Request, name: str, me: Me) -> dict[str, Any]:
    return (await services(request).room.resume(name, me.name)).public()


@router.post("/api/channels/{name}/summary-request", dependencies=Writer, tags=["channels"])
async def request_summary(request: Request, name: str, body: SummaryRequestIn, me: Me) -> dict[str, Any]:
    """Ask an agent to read the channel and write its summary (``/summary @agent``)."""
    return await services(request).summaries.request(name, body.agent, me)


@router.get("/api/channels/{name}/messages", dependencies=Reader, tags=["messages"])
async def history(
    request: Request,
    name: str,
    limit: Annotated[int, Query(ge=1, le=1000)] = 50,
    before: Annotated[int | None, Query(ge=1, le=2**62)] = None,
    after: Annotated[int | None, Query(ge=0, le=2**62)] = None,
) -> dict[str, Any]:
    room = services(request).room
    batch = await room.history(name, limit, before, after)
    deliveries = await services(request).store.deliveries([m.id for m in batch])
    return {
        "messages": [m.public() for m in batch],
        "has_more": len(batch) == room.clamp_limit(limit),
        # message id -> [{trigger, agent, state, detail, updated_at}]: what became of each mention
        "deliveries": {str(k): v for k, v in deliveries.items()},
    }


@router.post("/api/channels/{name}/messages", status_code=201, dependencies=Writer, tags=["messages"])
async def send(request: Request, name: str, body: MessageIn, me: Me) -> dict[str, Any]:
    room = services(request).room
    uploads_dir = services(request).settings.uploads_dir
    attachments = [uploads.attachment(uploads_dir, a) for a in body.attachments]
    msg = await room.post_human(
        channel=name, text=body.text, person=me, reply_to=body.reply_to, attachments=attachments
    )
    return msg.public()


@router.get("/api/messages/{message_id}", dependencies=Reader, tags=["messages"])
async def get_message(request: Request, message_id: RowId) -> dict[str, Any]:
    return (await services(request).room.message(message_id)).public()


@router.patch("/api/messages/{message_id}", dependencies=Writer, tags=["messages"])
async def edit_message(request: Request, message_id: RowId, body: EditIn, me: Me) -> dict[str, Any]:
    return (await services(request).room.edit(message_id, body.text, by_person=me)).public()


@router.delete("/api/messages/{message_id}", dependencies=Writer, tags=["messages"])
async def delete_message(request: Request, message_id: RowId, me: Me) -> dict[str, Any]:
    return (await services(request).room.delete(message_id, by_person=me)).public()


@router.post("/api/messages/{message_id}/decide", dependencies=Writer, tags=["messages"])
async def decide(request: Request, message_id: RowId, body: DecideIn, me: Me) -> dict[str, Any]:
    """Answer a decision card once (409 after): the card records who chose what, the agent wakes."""
    return (await services(request).decisions.decide(message_id, body.choice, me)).public()


@router.get("/api/deliveries", dependencies=Reader, tags=["messages"])
async def deliveries(
    request: Request, ids: Annotated[str, Query(max_length=4000, pattern=r"^\d{1,18}(,\d{1,18})*$")]
) -> dict[str, Any]:
    """What became of the wake-ups the given messages caused (``ids=1,2,3``), per agent."""
    wanted = [int(i) for i in ids.split(",")]
    if len(wanted) > 200:
        raise InvalidInput("ask for at most 200 message ids at once")
    found = await services(request).store.deliveries(wanted)
    return {"deliveries": {str(k): v for k, v in found.items()}}


@router.post("/api/triggers/{trigger_id}/retry", dependencies=Writer, tags=["messages"])
async def retry_delivery(request: Request, trigger_id: RowId) -> dict[str, Any]:
    """Queue a failed wake-up again and wake the agent; every open page sees the new state."""
    svc = services(request)
    old = await svc.store.trigger(trigger_id)
    agent = await svc.store.agent_by_id(old.agent_id)
    trigger, is_new = await svc.store.retry_trigger(trigger_id)
    if is_new:
        svc.bus.publish(agent_topic(agent.id), {"kind": "trigger", "trigger": trigger.event_data()})
    carried = await svc.store.trigger_message_ids(trigger.id)
    svc.bus.publish(ROOM, delivery_event(trigger, agent.name, carried))
    return public_delivery(trigger, agent.name)


@router.get("/api/search", dependencies=Reader, tags=["messages"])
async def search(
    request: Request,
    q: Annotated[str, Query(min_length=1, max_length=200)],
    channel: str | None = None,
    limit: Annotated[int, Query(ge=1, le=200)] = 50,
) -> dict[str, Any]:
    found = await services(request).room.search(q, channel, limit)
    return {"messages": [m.public() for m in found]}


@router.post("/api/uploads", status_code=201, dependencies=Writer, tags=["uploads"])
async def upload(request: Request) -> dict[str, Any]:
    """Raw image body (``Content-Type: image/*``, optional ``X-Filename``); size checked while reading."""
    svc = services(request)
    limit = svc.settings.max_upload_bytes
    declared = request.headers.get("content-length")
    if declared is not None and declared.isdigit() and int(declared) > limit:
        raise PayloadTooLarge(f"image is larger than {limit} bytes")
    data = bytearray()
    try:
        async for chunk in request.stream():
            data.extend(chunk)
            if len(data) > limit:
                raise PayloadTooLarge(f"image is larger than {limit} bytes")
            if len(data) >= 16 and len(data) - len(chunk) < 16:
                uploads.sniff(bytes(data[:16]))  # refuse a non-image before reading the rest
    except ClientDisconnect:
        raise InvalidInput("the upload was interrupted") from None
    return uploads.save(svc.settings.uploads_dir, bytes(data), limit, request.headers.get("x-filename", ""))


@router.get("/uploads/{name}", dependencies=Reader, tags=["uploads"], include_in_schema=False)
async def serve_upload(request: Request, name: str) -> FileResponse:
    path = uploads.resolve(services(request).settings.uploads_dir, name)
    if path is None:
        raise NotFound("no such upload")
    return uploads.file_response(path, "private, max-age=86400")


@router.get("/api/agents", dependencies=Reader, tags=["agents"])
async def list_agents(request: Request) -> list[dict[str, Any]]:
    return await services(request).registry.list()


# PATCH /api/agents/{name} (role, colour, label, name) lives in agents_people_api.py.


@router.post("/api/agents/{name}/rotate", dependencies=Writer, tags=["agents"])
async def rotate_agent(request: Request, name: str) -> dict[str, Any]:
    agent = await services(request).registry.rotate(name)
    return {"name": agent.name, "rotated": True}


@router.get("/api/events", dependencies=Reader, tags=["events"])
async def events(
    request: Request,
    since: Annotated[int, Query(ge=0, le=2**62)] = 0,
    limit: Annotated[int, Query(ge=1, le=1000)] = 500,
) -> dict[str, Any]:
    """The event log after ``since``: what a live view missed while it was away."""
    store = services(request).store
    batch = await store.events_since(since, limit)
    return {"events": [e.public() for e in batch], "last_seq": await store.last_event_seq()}
