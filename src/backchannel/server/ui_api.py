"""Routes that exist only for the web UI's convenience (the agent protocol and REST live elsewhere)."""

from __future__ import annotations

from fastapi import APIRouter

router = APIRouter(tags=["ui"])
