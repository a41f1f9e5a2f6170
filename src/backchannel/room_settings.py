"""Room settings people change at runtime (title, loop guard, rules refresh, sounds, custom roles).

They live in the database and apply at once: the loop guard and the rules delivery read
``RoomSettings.current`` on every use, so a change needs no restart. The server's flag / env / TOML
value is the default for a setting until a person changes it (only changed keys are stored).
"""

from __future__ import annotations

import sqlite3
from collections.abc import Mapping
from dataclasses import dataclass, replace
from typing import Any, cast

from backchannel.bus import ROOM, EventBus
from backchannel.config import Settings
from backchannel.errors import Conflict, InvalidInput
from backchannel.models import Event
from backchannel.store import Store
from backchannel.store import room_settings as rows
from backchannel.text import has_control

PRESET_ROLES: tuple[str, ...] = (
    "builder",
    "reviewer",
    "planner",
    "tester",
    "researcher",
    "designer",
    "writer",
    "debugger",
    "architect",
    "critic",
)
DEFAULT_TITLE = "backchannel"
TITLE_MAX = 40
HOPS_MIN, HOPS_MAX = 1, 50
REFRESH_MIN, REFRESH_MAX = 0, 100
ROLE_MAX = 20
CUSTOM_ROLES_MAX = 20
ROLES_FULL = (
    f"{CUSTOM_ROLES_MAX} custom roles are saved already; remove one in the room settings"
    " or pick a saved or preset role"
)
KEYS = ("title", "loop_guard_hops", "rules_refresh_every", "sounds", "custom_roles")


@dataclass(frozen=True, slots=True)
class RoomConfig:
    """The settings in force now (defaults merged with what people changed)."""

    title: str
    loop_guard_hops: int
    rules_refresh_every: int
    sounds: bool
    custom_roles: tuple[str, ...]

    def public(self) -> dict[str, Any]:
        """``GET /api/settings`` and the ``settings`` event: the same object."""
        return {
            "title": self.title,
            "loop_guard_hops": self.loop_guard_hops,
            "rules_refresh_every": self.rules_refresh_every,
            "sounds": self.sounds,
            "custom_roles": list(self.custom_roles),
            "preset_roles": list(PRESET_ROLES),
        }

    def knows_role(self, role: str) -> bool:
        """A preset or a saved custom role (case-insensitive: "Reviewer" is the preset)."""
        folded = role.casefold()
        return any(r.casefold() == folded for r in (*PRESET_ROLES, *self.custom_roles))


def defaults(settings: Settings) -> RoomConfig:
    return RoomConfig(
        title=DEFAULT_TITLE,
        loop_guard_hops=min(max(settings.loop_guard_hops, HOPS_MIN), HOPS_MAX),
        rules_refresh_every=min(max(settings.rules_refresh_every, REFRESH_MIN), REFRESH_MAX),
        sounds=True,
        custom_roles=(),
    )


def clean_role(raw: Any, what: str = "role") -> str:
    """A role as stored: trimmed, at most 20 characters, one line ("" clears)."""
    problem = _role_problem(raw, what)
    if problem:
        raise InvalidInput(problem)
    return cast(str, raw).strip()


def _role_problem(raw: Any, what: str) -> str | None:
    if not isinstance(raw, str):
        return f"{what} must be a string"
    role = raw.strip()
    if len(role) > ROLE_MAX:
        return f"{what} {role[:30]!r} is {len(role)} characters; the limit is {ROLE_MAX}"
    if has_control(role):
        return f"{what} must be one line of printable text"
    return None


def _int_problem(raw: Any, name: str, low: int, high: int) -> str | None:
    if isinstance(raw, bool) or not isinstance(raw, int) or not low <= raw <= high:
        return f"{name} must be a whole number from {low} to {high}, not {raw!r}"
    return None


def validate(patch: Mapping[str, Any]) -> dict[str, Any]:
    """The cleaned values of a PATCH; every problem (unknown keys too) in one InvalidInput."""
    problems: list[str] = []
    values: dict[str, Any] = {}
    unknown = sorted(k for k in patch if k not in KEYS)
    if unknown:
        problems.append(f"unknown setting(s) {', '.join(unknown)}; known: {', '.join(KEYS)}")
    if "title" in patch:
        title = patch["title"]
        if not isinstance(title, str) or not 1 <= len(title.strip()) <= TITLE_MAX or has_control(title):
            problems.append(f"title must be 1 to {TITLE_MAX} characters of one-line text")
        else:
            values["title"] = title.strip()
    for name, low, high in (
        ("loop_guard_hops", HOPS_MIN, HOPS_MAX),
        ("rules_refresh_every", REFRESH_MIN, REFRESH_MAX),
    ):
        if name in patch:
            problem = _int_problem(patch[name], name, low, high)
            if problem:
                problems.append(problem)
            else:
                values[name] = patch[name]
    if "sounds" in patch:
        if not isinstance(patch["sounds"], bool):
            problems.append(f"sounds must be true or false, not {patch['sounds']!r}")
        else:
            values["sounds"] = patch["sounds"]
    if "custom_roles" in patch:
        roles = _roles_of(patch["custom_roles"], problems)
        if roles is not None:
            values["custom_roles"] = roles
    if problems:
        raise InvalidInput("; ".join(problems))
    return values


def _roles_of(raw: Any, problems: list[str]) -> list[str] | None:
    if not isinstance(raw, list):
        problems.append("custom_roles must be a list of role names")
        return None
    items = cast(list[Any], raw)
    before = len(problems)
    if len(items) > CUSTOM_ROLES_MAX:
        problems.append(f"custom_roles has {len(items)} roles; at most {CUSTOM_ROLES_MAX} can be saved")
    roles: list[str] = []
    seen: set[str] = set()
    for n, item in enumerate(items):
        problem = _role_problem(item, f"custom_roles[{n}]")
        if problem is None and not cast(str, item).strip():
            problem = f"custom_roles[{n}] is empty"
        if problem:
            problems.append(problem)
            continue
        role = cast(str, item).strip()
        if role.casefold() in seen:
            problems.append(f"custom_roles lists {role!r} twice")
            continue
        seen.add(role.casefold())
        roles.append(role)
    return roles if len(problems) == before else None


def _merge(base: RoomConfig, stored: Mapping[str, Any]) -> RoomConfig:
    """Defaults overlaid with stored values; a stored value that no longer validates is ignored."""
    config = base
    for key in KEYS:
        if key not in stored:
            continue
        try:
            value = validate({key: stored[key]})[key]
        except InvalidInput:
            continue
        config = replace(config, **{key: tuple(value) if key == "custom_roles" else value})
    return config


class RoomSettings:
    """The room's runtime settings: loaded once at start-up, changed by people, read everywhere."""

    def __init__(self, store: Store, bus: EventBus, settings: Settings) -> None:
        self.store = store
        self.bus = bus
        self.defaults = defaults(settings)
        self.current: RoomConfig = _merge(self.defaults, store.db.read_sync(rows.load))
        self._seq = 0  # the event that produced ``current``: a slower, older change never wins

    def public(self) -> dict[str, Any]:
        return self.current.public()

    async def update(self, patch: Mapping[str, Any]) -> RoomConfig:
        """Validate and store a PATCH in one transaction, then apply and publish it."""
        values = validate(patch)

        def tx(conn: sqlite3.Connection) -> tuple[RoomConfig, Event]:
            rows.save(conn, values)
            config = _merge(self.defaults, rows.load(conn))
            return config, rows.log_change(conn, config.public())

        config, event = await self.store.db.write(tx)
        return self.applied(config, event)

    def remember_role(self, conn: sqlite3.Connection, role: str) -> tuple[RoomConfig, Event] | None:
        """Inside the caller's transaction: save ``role`` as a custom role unless it is a preset or
        saved already (None then); a 21st custom role is a Conflict. Call ``applied`` after commit."""
        config = _merge(self.defaults, rows.load(conn))
        if not role or config.knows_role(role):
            return None
        if len(config.custom_roles) >= CUSTOM_ROLES_MAX:
            raise Conflict(ROLES_FULL)
        roles = [*config.custom_roles, role]
        rows.save(conn, {"custom_roles": roles})
        config = replace(config, custom_roles=tuple(roles))
        return config, rows.log_change(conn, config.public())

    def applied(self, config: RoomConfig, event: Event) -> RoomConfig:
        """After the commit: make ``config`` current (unless a newer change already is) and publish."""
        if event.seq > self._seq:
            self.current, self._seq = config, event.seq
        self.bus.publish(ROOM, event.public())
        return config
