"""Agent-token reads that wrappers need besides MCP: a channel's recent context, and stored images.

Both are for agents' own processes, never for browsers: any ``Origin`` is refused, and no CORS
header is ever sent, so a page on another origin can neither send the token nor read the answer.
"""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import APIRouter, Depends, Query, Request
from fastapi.responses import FileResponse

from backchannel import agent_images, uploads
from backchannel.errors import NotFound
from backchannel.room import validate_channel
from backchannel.server.deps import bearer_token, services

router = APIRouter(tags=["agent protocol"])
Token = Annotated[str, Depends(bearer_token)]


@router.get("/api/agents/{name}/context")
async def context(
    request: Request,
    name: str,
    token: Token,
    channel: Annotated[str, Query(max_length=64)] = "general",
    job_id: Annotated[int, Query(ge=0, le=2**62)] = 0,
    limit: Annotated[int, Query(ge=1, le=10_000)] = 20,
) -> dict[str, Any]:
    """The newest ``limit`` messages of a channel or job thread, oldest first, in ``chat_read``'s
    shape. Unlike ``chat_read`` it moves no read position: an API agent's wrapper shows the model
    the recent conversation, and the model's own ``chat_read`` still returns what is new."""
    svc = services(request)
    svc.guard.require_agent_origin(request)
    await svc.registry.authenticate_as(token, name)
    place = validate_channel(channel)
    count = svc.room.clamp_limit(limit, 20)
    batch = await svc.store.db.read(lambda c: agent_images.latest_context(c, place, job_id, count))
    return {"messages": [m.for_agent() for m in batch]}


@router.get("/api/uploads/{name}")
async def agent_upload(request: Request, name: str, token: Token) -> FileResponse:
    """A stored image for an agent token (people's pages use ``/uploads/<name>``)."""
    svc = services(request)
    svc.guard.require_agent_origin(request)
    await svc.registry.authenticate(token)
    path = uploads.resolve(svc.settings.uploads_dir, name)
    if path is None:
        raise NotFound("no such upload")
    return uploads.file_response(path, "private, no-store")
