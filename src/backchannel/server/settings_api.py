"""REST routes for the room settings (people only): ``GET`` / ``PATCH /api/settings``.

The body is checked by ``room_settings.validate`` rather than by pydantic, so a person gets every
problem (unknown keys included) in one 400 instead of the first type error.
"""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter, Request
from pydantic import BaseModel, ConfigDict, Field

from backchannel.room_settings import CUSTOM_ROLES_MAX, HOPS_MAX, HOPS_MIN, REFRESH_MAX, ROLE_MAX, TITLE_MAX
from backchannel.server.api import Reader, Writer
from backchannel.server.deps import services

router = APIRouter(tags=["settings"])


class SettingsPatch(BaseModel):
    """Documented shape of the PATCH body; values are validated by the service (400 lists all)."""

    model_config = ConfigDict(extra="allow")

    title: Any = Field(
        default=None, json_schema_extra={"type": "string", "minLength": 1, "maxLength": TITLE_MAX}
    )
    loop_guard_hops: Any = Field(
        default=None, json_schema_extra={"type": "integer", "minimum": HOPS_MIN, "maximum": HOPS_MAX}
    )
    rules_refresh_every: Any = Field(
        default=None, json_schema_extra={"type": "integer", "minimum": 0, "maximum": REFRESH_MAX}
    )
    sounds: Any = Field(default=None, json_schema_extra={"type": "boolean"})
    custom_roles: Any = Field(
        default=None,
        json_schema_extra={
            "type": "array",
            "maxItems": CUSTOM_ROLES_MAX,
            "items": {"type": "string", "minLength": 1, "maxLength": ROLE_MAX},
        },
    )


@router.get("/api/settings", dependencies=Reader)
async def get_settings(request: Request) -> dict[str, Any]:
    """The room settings in force now, with the preset roles."""
    return services(request).room_settings.public()


@router.patch("/api/settings", dependencies=Writer)
async def patch_settings(request: Request, body: SettingsPatch) -> dict[str, Any]:
    """Change some settings; they apply at once and every open page gets a ``settings`` event."""
    given = {name: getattr(body, name) for name in body.model_fields_set if name in type(body).model_fields}
    given.update(body.model_extra or {})
    return (await services(request).room_settings.update(given)).public()
