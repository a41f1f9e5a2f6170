"""REST routes of sessions, their templates and drafts, for people: thin over the services.

People only (the guard of every people route); agents take part by answering their wake-ups with
``chat_send``. Input is checked by the services, so every error is the one JSON shape.
The template and draft routes come first: ``/api/sessions/templates`` must not be taken for a
session id.
"""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import APIRouter, Body, Path, Query, Request, Response
from fastapi.responses import JSONResponse
from pydantic import BaseModel, Field

from backchannel.server.api import Me, MessageId, Reader, RowId, Writer
from backchannel.server.deps import services
from backchannel.session_drafts import InvalidTemplate

router = APIRouter(tags=["sessions"])
# Bounds far above the limits: the services answer with the limit's clear message.
LongText = Annotated[str, Field(max_length=10_000)]
Word = Annotated[str, Field(max_length=256)]


# -- templates and drafts (session_templates.py, session_drafts.py) ----------------------------------
def _problems(exc: InvalidTemplate) -> JSONResponse:
    """A template's 400 lists every problem, not only the first."""
    body = {"error": exc.code, "detail": exc.detail, "problems": exc.problems}
    return JSONResponse(body, status_code=400)


class DraftRequestIn(BaseModel):
    agent: Word
    channel: Word
    description: LongText


@router.get("/api/sessions/templates", dependencies=Reader)
async def list_templates(request: Request) -> list[dict[str, Any]]:
    """The built-in templates, then the custom ones (oldest first)."""
    return [t.public() for t in await services(request).session_drafts.templates()]


@router.post("/api/sessions/templates", status_code=201, dependencies=Writer)
async def create_template(request: Request, body: Annotated[Any, Body()], me: Me) -> Response:
    """Save a custom template; a 400 ``invalid_template`` lists every problem in ``problems``."""
    try:
        template = await services(request).session_drafts.create_template(body, me)
    except InvalidTemplate as exc:
        return _problems(exc)
    return JSONResponse(template.public(), status_code=201)


@router.delete("/api/sessions/templates/{template_id}", status_code=204, dependencies=Writer)
async def delete_template(request: Request, template_id: Annotated[str, Path(max_length=256)]) -> Response:
    """Delete a custom template (a built-in one is a 400)."""
    await services(request).session_drafts.delete_template(template_id)
    return Response(status_code=204)


@router.post("/api/sessions/request-draft", status_code=201, dependencies=Writer)
async def request_draft(request: Request, body: DraftRequestIn, me: Me) -> dict[str, Any]:
    """Ask an agent to design a session: a visible message from you that mentions it."""
    drafts = services(request).session_drafts
    return (await drafts.request_draft(me, body.agent, body.channel, body.description)).public()


@router.post("/api/sessions/drafts/{message_id}/save", status_code=201, dependencies=Writer)
async def save_draft(request: Request, message_id: RowId, me: Me) -> Response:
    """Save a valid, open draft card as a custom template (checked again; 400 lists problems)."""
    try:
        template = await services(request).session_drafts.save_draft(message_id, me)
    except InvalidTemplate as exc:
        return _problems(exc)
    return JSONResponse(template.public(), status_code=201)


@router.post("/api/sessions/drafts/{message_id}/dismiss", dependencies=Writer)
async def dismiss_draft(request: Request, message_id: RowId) -> dict[str, Any]:
    """Dismiss an open draft card; the card collapses for everyone (``message_edited``)."""
    return (await services(request).session_drafts.dismiss_draft(message_id)).public()


# -- sessions --------------------------------------------------------------------------------------
class SessionIn(BaseModel):
    template_id: Word | None = None
    draft_message_id: MessageId | None = None  # run a valid draft card (its template is snapshotted)
    channel: Word
    cast: Annotated[dict[Word, Word], Field(max_length=64)] | None = None  # role -> agent or person
    goal: LongText | None = None


@router.get("/api/sessions", dependencies=Reader)
async def list_sessions(
    request: Request,
    state: Word | None = None,
    channel: Word | None = None,
    limit: Annotated[int, Query(ge=1, le=500)] = 200,
    before_id: Annotated[int | None, Query(ge=1, le=2**62)] = None,
) -> list[dict[str, Any]]:
    """Sessions, newest first, ``limit`` (1..500) at a time, older than ``before_id`` when given;
    ``state`` (active, paused, complete, ended) and ``channel`` filter."""
    found = await services(request).sessions.list(state, channel, limit, before_id)
    return [s.public() for s in found]


@router.post("/api/sessions", status_code=201, dependencies=Writer)
async def start_session(request: Request, body: SessionIn, me: Me) -> Response:
    """Start a session in a channel (409 ``session_running`` when one runs there already); an
    invalid draft's 400 lists every problem in ``problems``."""
    try:
        session = await services(request).sessions.start(
            by=me,
            channel=body.channel,
            template_id=body.template_id,
            draft_message_id=body.draft_message_id,
            cast=body.cast,
            goal=body.goal,
        )
    except InvalidTemplate as exc:
        return _problems(exc)
    return JSONResponse(session.public(), status_code=201)


@router.get("/api/sessions/{session_id}", dependencies=Reader)
async def get_session(request: Request, session_id: RowId) -> dict[str, Any]:
    return (await services(request).sessions.get(session_id)).public()


@router.post("/api/sessions/{session_id}/end", dependencies=Writer)
async def end_session(request: Request, session_id: RowId, me: Me) -> dict[str, Any]:
    """End a running session (409 when it is not running): its pending wake-up is superseded."""
    return (await services(request).sessions.end(session_id, by=me)).public()
