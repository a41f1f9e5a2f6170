"""REST routes for pins (people only): pin, unpin, mark done, and a channel's pins for the panel."""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import APIRouter, Query, Request, Response
from pydantic import BaseModel, StrictBool

from backchannel.server.api import Me, Reader, RowId, Writer
from backchannel.server.deps import services

router = APIRouter(tags=["pins"])


class PinPatch(BaseModel):
    done: StrictBool


@router.post("/api/messages/{message_id}/pin", dependencies=Writer)
async def pin(request: Request, message_id: RowId, me: Me) -> dict[str, Any]:
    """Pin a message (pinning a pinned one returns it unchanged): the message with its ``pin``."""
    return (await services(request).pins.pin(message_id, me)).public()


@router.delete("/api/messages/{message_id}/pin", status_code=204, dependencies=Writer)
async def unpin(request: Request, message_id: RowId) -> Response:
    await services(request).pins.unpin(message_id)
    return Response(status_code=204)


@router.patch("/api/messages/{message_id}/pin", dependencies=Writer)
async def update_pin(request: Request, message_id: RowId, body: PinPatch) -> dict[str, Any]:
    """Mark a pin done (or not done again)."""
    return (await services(request).pins.set_done(message_id, body.done)).public()


@router.get("/api/pins", dependencies=Reader)
async def list_pins(
    request: Request, channel: Annotated[str, Query(min_length=1, max_length=64)]
) -> list[dict[str, Any]]:
    """A channel's pinned messages, each with ``pin: {pinned_by, done, pinned_at}``, newest pin first."""
    return [p.public() for p in await services(request).pins.list(channel)]
