"""Schedule specs: parsing every accepted form and computing due times in the server's local time.

Forms: ``every N minutes|hours|days`` (and agentchattr's ``every 30m`` / ``every 2h`` / ``every 1d``,
at least 60 s), ``daily at HH:MM`` and 5-field cron (both in the server's local time zone, read
from ``TZ`` / the system at each computation), and a one-shot ``send_at`` (ISO 8601 with offset).
Cron field parsing is croniter's; this module only walks local wall-clock times and maps each to
a real instant, so daylight-saving changes neither double a run (a repeated hour fires once) nor
lose one (a time inside the spring-forward gap fires at the first instant after it).
"""

from __future__ import annotations

import datetime as dt
import re
import time
from dataclasses import dataclass
from typing import Literal

from backchannel.errors import InvalidInput

MIN_INTERVAL = 60
MAX_INTERVAL = 366 * 86_400
# How far ahead a one-shot may be set, and how late (clock skew, a slow request) it may still be.
MAX_AHEAD = 10 * 366 * 86_400
SEND_AT_GRACE = 60

ACCEPTED = (
    "'every N minutes|hours|days' (also 'every 30m', 'every 2h', 'every 1d'; at least 60 seconds), "
    "'daily at HH:MM' (server local time), a 5-field cron expression such as '0 9 * * 1-5' "
    "(server local time), or send_at (ISO 8601 with offset, e.g. 2026-12-02T09:00:00+01:00) for a one-shot"
)

_UNITS: dict[str, tuple[int, str]] = {}
for _names, _seconds, _word in (
    (("m", "min", "mins", "minute", "minutes"), 60, "minute"),
    (("h", "hr", "hrs", "hour", "hours"), 3_600, "hour"),
    (("d", "day", "days"), 86_400, "day"),
):
    for _name in _names:
        _UNITS[_name] = (_seconds, _word)

_EVERY = re.compile(r"every\s*(\d{1,7})?\s*([a-z]+)")
_IN = re.compile(r"in\s*(\d{1,7})\s*([a-z]+)")
_DAILY = re.compile(r"daily\s+at\s+(\d{1,2}):(\d{2})")
_CRON_FIELD = re.compile(r"[0-9A-Za-z*/,\-?LW#]+")


@dataclass(frozen=True, slots=True)
class Spec:
    """A parsed recurrence: ``text`` is its canonical form (what is stored and shown)."""

    kind: Literal["interval", "daily", "cron"]
    text: str
    seconds: int = 0  # interval only
    cron: str = ""  # daily (as its cron equivalent) and cron


def invalid(what: str) -> InvalidInput:
    return InvalidInput(f"{what}; accepted forms: {ACCEPTED}")


def parse(value: object) -> Spec:
    """The spec a person or agent typed, or a 400 that names every accepted form."""
    if not isinstance(value, str):
        raise invalid("spec must be a string")
    raw = " ".join(value.split())
    if not raw:
        raise invalid("spec is empty")
    if len(raw) > 200:
        raise invalid("spec is longer than 200 characters")
    low = raw.lower()
    if low.startswith("every"):
        return _every(raw, low)
    if low.startswith("daily"):
        return _daily(raw, low)
    return _cron(raw)


def _every(raw: str, low: str) -> Spec:
    match = _EVERY.fullmatch(low)
    if match is None or match.group(2) not in _UNITS:
        raise invalid(f"invalid spec {raw!r}")
    count = int(match.group(1) or "1")
    unit, word = _UNITS[match.group(2)]
    seconds = count * unit
    if seconds < MIN_INTERVAL:
        raise invalid(f"spec {raw!r} repeats too often: the minimum is 60 seconds")
    if seconds > MAX_INTERVAL:
        raise invalid(f"spec {raw!r} repeats too rarely: the maximum is 366 days")
    return Spec("interval", f"every {count} {word}{'' if count == 1 else 's'}", seconds=seconds)


def _daily(raw: str, low: str) -> Spec:
    match = _DAILY.fullmatch(low)
    if match is None:
        raise invalid(f"invalid spec {raw!r}")
    hour, minute = int(match.group(1)), int(match.group(2))
    if hour > 23 or minute > 59:
        raise invalid(f"spec {raw!r} is not a time of day (00:00 to 23:59)")
    return Spec("daily", f"daily at {hour:02d}:{minute:02d}", cron=f"{minute} {hour} * * *")


def _cron(raw: str) -> Spec:
    fields = raw.split(" ")
    if len(fields) != 5 or not all(_CRON_FIELD.fullmatch(f) for f in fields):
        raise invalid(f"invalid spec {raw!r}")
    # Imported when first needed: the store imports this module for iso(), and croniter with
    # dateutil is ~50 ms of every server start.
    from croniter import croniter  # pyright: ignore[reportMissingTypeStubs]  # ships no type hints

    if not croniter.is_valid(raw):  # pyright: ignore[reportUnknownMemberType]
        raise invalid(f"invalid cron expression {raw!r}")
    spec = Spec("cron", raw, cron=raw)
    try:
        _next_wall(spec.cron, dt.datetime(2000, 1, 1))
    except ValueError:
        raise invalid(f"cron expression {raw!r} never matches a date") from None
    return spec


def parse_send_at(value: object, now: float) -> float:
    """A one-shot's time (epoch seconds) from ISO 8601 with an offset, not in the past; or
    ``in N minutes|hours|days`` from now (an agent need not know the server's clock)."""
    if not isinstance(value, str) or not value.strip():
        raise InvalidInput(
            "send_at must be an ISO 8601 date and time with an offset, e.g. 2026-12-02T09:00+01:00"
        )
    relative = _IN.fullmatch(" ".join(value.lower().split()))
    if relative is not None and relative.group(2) in _UNITS:
        delay = int(relative.group(1)) * _UNITS[relative.group(2)][0]
        if not 0 < delay <= MAX_AHEAD:
            raise InvalidInput(f"send_at {value!r} must be 1 minute to 10 years from now")
        return now + delay
    try:
        when = dt.datetime.fromisoformat(value.strip())
    except ValueError:
        raise InvalidInput(
            f"send_at {value!r} is not ISO 8601; give a date, a time and an offset, "
            "e.g. 2026-12-02T09:00+01:00"
        ) from None
    if when.tzinfo is None or when.utcoffset() is None:
        raise InvalidInput(f"send_at {value!r} has no offset; add one (e.g. +01:00 or Z)")
    epoch = when.timestamp()
    if epoch < now - SEND_AT_GRACE:
        raise InvalidInput(f"send_at {value!r} is in the past")
    if epoch > now + MAX_AHEAD:
        raise InvalidInput(f"send_at {value!r} is more than 10 years ahead")
    return epoch


# -- due times -------------------------------------------------------------------------------------
def first_run(spec: Spec, now: float) -> float:
    """When a new (or changed, or resumed) schedule is first due."""
    if spec.kind == "interval":
        return now + spec.seconds
    return _next_local(spec.cron, now)


def next_run(spec: Spec, due: float, now: float) -> float:
    """The due time after a run that was due at ``due`` and fired at ``now`` (strictly after ``now``).

    An interval keeps its rhythm (``due + interval``) unless runs were missed while the server was
    down: then it continues from now. Calendar specs take their next local time after now, so any
    runs missed while down collapse into the one that just fired.
    """
    if spec.kind == "interval":
        following = due + spec.seconds
        return following if following > now else now + spec.seconds
    return _next_local(spec.cron, now)


def _next_wall(expr: str, start: dt.datetime) -> dt.datetime:
    """The first wall-clock time after ``start`` that the cron expression matches."""
    from croniter import croniter  # pyright: ignore[reportMissingTypeStubs]

    try:
        it = croniter(expr, start, max_years_between_matches=10)
        found: dt.datetime = it.get_next(dt.datetime)  # pyright: ignore[reportUnknownMemberType]
    except Exception as exc:  # croniter's errors (bad date, bad cron) share no useful base
        raise ValueError(str(exc)) from exc
    return found


def _instants(wall: dt.datetime) -> list[float]:
    """The real instants showing ``wall`` on the local clock: one normally, two in the hour that is
    repeated when clocks go back, none in the hour skipped when they go forward (then the instant
    ``mktime`` moves it to, just after the gap)."""
    fields = (wall.year, wall.month, wall.day, wall.hour, wall.minute, wall.second)
    found: set[float] = set()
    for isdst in (0, 1):
        try:
            epoch = time.mktime((*fields, 0, 0, isdst))
        except (OverflowError, ValueError):
            continue
        if time.localtime(epoch)[:6] == fields:
            found.add(epoch)
    if not found:
        found.add(time.mktime((*fields, 0, 0, -1)))
    return sorted(found)


def _next_local(expr: str, after: float) -> float:
    """The first instant after ``after`` whose local wall-clock time the expression matches."""
    wall = dt.datetime.fromtimestamp(after).replace(microsecond=0)
    for _ in range(10_000):  # bounded: leaving a repeated hour takes at most 60 minute steps
        wall = _next_wall(expr, wall)
        for epoch in _instants(wall):
            if epoch > after:
                return epoch
    raise ValueError(f"cron expression {expr!r} found no time after {after}")


def iso(epoch: float | None) -> str | None:
    """ISO 8601 in the server's local time with its offset at that instant (None stays None)."""
    if epoch is None:
        return None
    return dt.datetime.fromtimestamp(epoch, tz=dt.UTC).astimezone().isoformat(timespec="seconds")
