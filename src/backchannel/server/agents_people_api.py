"""People's routes for agent settings: role, colour, label and name; remove a hat; forget.

People only (session secret + same Origin); an agent token is no credential here.
"""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter, Request
from pydantic import BaseModel, Field

from backchannel.agent_settings import AgentPatch, AgentSettings
from backchannel.server.api import Writer
from backchannel.server.deps import services

router = APIRouter(tags=["agents"])


class AgentPatchIn(BaseModel):
    # Generous bounds here; the real limits (role 20, label 24, "#rrggbb") are checked by the service,
    # which lists every problem in one 400.
    name: str | None = Field(default=None, max_length=64)
    label: str | None = Field(default=None, max_length=200)
    role: str | None = Field(default=None, max_length=500)
    color: str | None = Field(default=None, max_length=64)


def _service(request: Request) -> AgentSettings:
    svc = services(request)
    return AgentSettings(svc.registry, svc.room_settings)


@router.patch("/api/agents/{name}", dependencies=Writer)
async def update_agent(request: Request, name: str, body: AgentPatchIn) -> dict[str, Any]:
    """Rename, relabel, recolour ("" = default colour) or give a role ("" clears; a new one is saved)."""
    agents = _service(request)
    patch = AgentPatch(name=body.name, label=body.label, role=body.role, color=body.color)
    return agents.public(await agents.update(name, patch))


@router.delete("/api/agents/{name}/hat", dependencies=Writer)
async def remove_hat(request: Request, name: str) -> dict[str, Any]:
    agents = _service(request)
    return agents.public(await agents.remove_hat(name))


@router.post("/api/agents/{name}/forget", dependencies=Writer)
async def forget_agent(request: Request, name: str) -> dict[str, Any]:
    """Forget an offline agent: gone from the roster, its messages stay; 409 while it is online."""
    await _service(request).forget(name)
    return {"name": name, "forgotten": True}
