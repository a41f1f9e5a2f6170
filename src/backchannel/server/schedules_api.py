"""REST routes of schedules for people (the web UI and local scripts): thin over ``Schedules``.

People only: an agent token is refused by the same guard as every people route; agents use
``chat_schedule``. Specs, limits and targets are checked by the service, so REST and MCP give the
same errors (an invalid spec is a 400 that names every accepted form).
"""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import APIRouter, Request, Response
from pydantic import BaseModel, Field

from backchannel.server.api import Me, Reader, RowId, Writer
from backchannel.server.deps import services

router = APIRouter(tags=["schedules"])
# Bounds far above the limits: the service answers with the limit's clear message.
LongText = Annotated[str, Field(max_length=10_000)]
Word = Annotated[str, Field(max_length=256)]
Targets = Annotated[list[Annotated[str, Field(max_length=256)]], Field(max_length=100)]


class ScheduleIn(BaseModel):
    prompt: LongText
    targets: Targets
    channel: Word | None = None  # default #general
    spec: Word | None = None  # required unless send_at is given
    one_shot: bool = False
    send_at: Word | None = None  # ISO 8601 with offset: a one-shot at that instant


class SchedulePatch(BaseModel):
    active: bool | None = None
    prompt: LongText | None = None
    spec: Word | None = None
    targets: Targets | None = None
    send_at: Word | None = None


@router.get("/api/schedules", dependencies=Reader)
async def list_schedules(request: Request, channel: Word | None = None) -> list[dict[str, Any]]:
    """Every schedule (active, paused, fired one-shots), or one channel's."""
    return [s.public() for s in await services(request).schedules.list(channel)]


@router.post("/api/schedules", status_code=201, dependencies=Writer)
async def create_schedule(request: Request, body: ScheduleIn, me: Me) -> dict[str, Any]:
    """A person's schedule: it fires as them, ``@t1 @t2 <prompt>`` in the channel."""
    schedule = await services(request).schedules.create(
        by=me,
        prompt=body.prompt,
        targets=body.targets,
        channel=body.channel,
        spec=body.spec,
        one_shot=body.one_shot,
        send_at=body.send_at,
    )
    return schedule.public()


@router.patch("/api/schedules/{schedule_id}", dependencies=Writer)
async def update_schedule(request: Request, schedule_id: RowId, body: SchedulePatch) -> dict[str, Any]:
    """Pause (``active: false``), resume, or edit prompt, spec, targets or send_at."""
    schedule = await services(request).schedules.update(
        schedule_id,
        active=body.active,
        prompt=body.prompt,
        spec=body.spec,
        targets=body.targets,
        send_at=body.send_at,
    )
    return schedule.public()


@router.delete("/api/schedules/{schedule_id}", status_code=204, dependencies=Writer)
async def delete_schedule(request: Request, schedule_id: RowId) -> Response:
    await services(request).schedules.delete(schedule_id)
    return Response(status_code=204)
