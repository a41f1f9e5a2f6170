"""REST routes of the jobs board for people (the web UI and local scripts): thin over ``JobBoard``.

Who acts is the person behind the credential, never a field. Limits and statuses are checked by
the service, so REST and MCP give the same errors.
"""

from __future__ import annotations

import json
from typing import Annotated, Any, Literal

from fastapi import APIRouter, Query, Request
from fastapi.responses import JSONResponse
from pydantic import BaseModel, Field

from backchannel import uploads
from backchannel.server.api import Me, MessageId, Reader, RowId, Writer
from backchannel.server.deps import services

router = APIRouter(tags=["jobs"])
# Bounds far above the settings' limits: the service answers with the setting's clear message.
LongText = Annotated[str, Field(max_length=100_000)]
Name = Annotated[str, Field(max_length=64)]


class JobIn(BaseModel):
    # Both may be left out when accepting a proposal card: the card's title and brief are used.
    title: LongText = ""
    body: LongText | None = None
    channel: Name | None = None
    assignee: Name = ""
    anchor_msg_id: MessageId | None = None
    status: Name | None = None


class JobPatch(BaseModel):
    status: Name | None = None
    title: LongText | None = None
    body: LongText | None = None
    assignee: Name | None = None


class ReorderIn(BaseModel):
    status: Name
    ordered_ids: list[MessageId] = Field(max_length=10_000)


class ThreadMessageIn(BaseModel):
    text: LongText = ""
    reply_to: MessageId | None = None
    attachments: list[dict[str, Any]] = Field(default_factory=list[dict[str, Any]], max_length=8)


class ResolveIn(BaseModel):
    resolution: Literal["accepted", "dismissed"]


class ProposalDecision(BaseModel):
    decision: Literal["dismiss", "changes"]
    note: LongText = ""


class ConvertIn(BaseModel):
    agent: Name | None = None


class FastJSON(JSONResponse):
    """Big lists (a 1,000-job board) skip FastAPI's per-item response validation: the shapes are
    built by ``public()``; this only renders them."""

    def render(self, content: Any) -> bytes:
        return json.dumps(content, ensure_ascii=False, separators=(",", ":")).encode()


@router.get("/api/jobs", dependencies=Reader, response_class=FastJSON)
async def list_jobs(
    request: Request,
    status: Annotated[str | None, Query(max_length=32)] = None,
    channel: Annotated[str | None, Query(max_length=64)] = None,
) -> FastJSON:
    """The board (a list of jobs): by status group (todo, active, closed), then ``sort_order``."""
    return FastJSON([j.public() for j in await services(request).jobs.list(status, channel)])


@router.post("/api/jobs", status_code=201, dependencies=Writer)
async def create_job(request: Request, body: JobIn, me: Me) -> dict[str, Any]:
    """Create a job; with ``anchor_msg_id`` of a proposal card this accepts it (once: 409 after)."""
    job = await services(request).jobs.create(
        title=body.title,
        body=body.body,
        channel=body.channel,
        status=body.status,
        assignee=body.assignee,
        anchor_msg_id=body.anchor_msg_id,
        by=me,
    )
    return job.public()


@router.post("/api/jobs/reorder", dependencies=Writer)
async def reorder_jobs(request: Request, body: ReorderIn, me: Me) -> list[dict[str, Any]]:
    """The listed jobs first, in that order; the rest of that status keep their order after them.
    A listed job of another status moves into ``status`` at its place (one drag, one call)."""
    return [j.public() for j in await services(request).jobs.reorder(body.status, body.ordered_ids, me)]


@router.post("/api/jobs/proposals/{message_id}", dependencies=Writer)
async def decide_proposal(
    request: Request, message_id: RowId, body: ProposalDecision, me: Me
) -> dict[str, Any]:
    """Dismiss a proposal card, or ask its proposer for changes (accept = ``POST /api/jobs``)."""
    card = await services(request).jobs.decide_proposal(message_id, body.decision, me, body.note)
    return card.public()


@router.get("/api/jobs/{job_id}", dependencies=Reader)
async def get_job(request: Request, job_id: RowId) -> dict[str, Any]:
    return (await services(request).jobs.get(job_id)).public()


@router.patch("/api/jobs/{job_id}", dependencies=Writer)
async def update_job(request: Request, job_id: RowId, body: JobPatch, me: Me) -> dict[str, Any]:
    job = await services(request).jobs.update(
        job_id, by=me, status=body.status, title=body.title, body=body.body, assignee=body.assignee
    )
    return job.public()


@router.delete("/api/jobs/{job_id}", dependencies=Writer)
async def delete_job(request: Request, job_id: RowId, me: Me, permanent: bool = False) -> dict[str, Any]:
    """Close the job; ``?permanent=true`` deletes it and its thread for good (returns it as it was)."""
    board = services(request).jobs
    job = await (board.delete(job_id, me) if permanent else board.close(job_id, me))
    return job.public()


@router.get("/api/jobs/{job_id}/messages", dependencies=Reader, response_class=FastJSON)
async def thread(
    request: Request,
    job_id: RowId,
    limit: Annotated[int, Query(ge=1, le=1000)] = 50,
    before: Annotated[int | None, Query(ge=1, le=2**62)] = None,
    after: Annotated[int | None, Query(ge=0, le=2**62)] = None,
) -> FastJSON:
    """The thread (a list of messages), oldest first: the newest ``limit`` (before ``before``), or
    those after ``after``."""
    return FastJSON([m.public() for m in await services(request).jobs.thread(job_id, limit, before, after)])


@router.post("/api/jobs/{job_id}/messages", status_code=201, dependencies=Writer)
async def post_in_thread(request: Request, job_id: RowId, body: ThreadMessageIn, me: Me) -> dict[str, Any]:
    """Post in the thread; mentions wake agents with a prompt naming the job."""
    svc = services(request)
    await svc.jobs.get(job_id)  # a clear 404 before an attachment is looked at
    attachments = [uploads.attachment(svc.settings.uploads_dir, a) for a in body.attachments]
    msg = await svc.jobs.post(job_id, body.text, person=me, reply_to=body.reply_to, attachments=attachments)
    return msg.public()


@router.delete("/api/jobs/{job_id}/messages/{message_id}", dependencies=Writer)
async def delete_thread_message(request: Request, job_id: RowId, message_id: RowId, me: Me) -> dict[str, Any]:
    return (await services(request).jobs.delete_message(job_id, message_id, person=me)).public()


@router.post("/api/jobs/{job_id}/messages/{message_id}/resolve", dependencies=Writer)
async def resolve_suggestion(
    request: Request, job_id: RowId, message_id: RowId, body: ResolveIn, me: Me
) -> dict[str, Any]:
    """Accept or dismiss a suggestion card once (409 after); accepting wakes the agent."""
    msg = await services(request).jobs.resolve_suggestion(job_id, message_id, body.resolution, me)
    return msg.public()


@router.post("/api/messages/{message_id}/job", dependencies=Writer)
async def convert_to_job(
    request: Request, message_id: RowId, me: Me, body: ConvertIn | None = None
) -> dict[str, Any]:
    """Ask an agent (default: the message's author, if an agent) to propose a job from this message."""
    return await services(request).jobs.convert(message_id, body.agent if body else None, me)
