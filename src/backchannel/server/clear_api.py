"""``/clear`` over REST (people only): remove a channel's timeline for everyone, and the count
the confirmation names first."""

from __future__ import annotations

from fastapi import APIRouter, Request

from backchannel.server.api import Reader, Writer
from backchannel.server.deps import services

router = APIRouter(tags=["channels"])


@router.get("/api/channels/{name}/messages/count", dependencies=Reader)
async def count_messages(request: Request, name: str) -> dict[str, int]:
    """How many messages the channel's timeline holds (what ``DELETE .../messages`` would remove)."""
    return {"count": await services(request).clearing.count(name)}


@router.delete("/api/channels/{name}/messages", dependencies=Writer)
async def clear_channel(request: Request, name: str) -> dict[str, int]:
    """Delete every message of the channel's timeline for good (job threads stay): ``{"deleted": n}``."""
    return {"deleted": await services(request).clearing.clear(name)}
