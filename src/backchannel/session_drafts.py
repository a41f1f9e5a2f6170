"""Session drafts: an agent designs a session as a ```` ```session ```` JSON block in a chat
message, and the message becomes a ``session_draft`` card people Run, Save or Dismiss; plus the
people's side of templates (list, create, delete) over REST.

The card is the agent's own message (its text kept) with ``metadata`` saying what the block holds:
``{draft_id, revision, proposed_by, template, valid, errors, status}``. A revision keeps the draft id
and supersedes the older open cards of it in the transaction that stores the new one, so two cards
of one draft are never both open. Status changes are ``message_edited`` events of the card.
"""

from __future__ import annotations

import json
import math
import re
import secrets
import sqlite3
from collections.abc import Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, cast

from backchannel.errors import Conflict, InvalidInput, NotFound
from backchannel.models import Event, Message, Person
from backchannel.router import mention_tokens
from backchannel.session_templates import (
    MAX_DESCRIPTION,
    MAX_NAME,
    MAX_PARTICIPANTS,
    MAX_PHASE_NAME,
    MAX_PHASES,
    MAX_PROMPT,
    MAX_ROLES,
    Template,
    show,
    validate,
)
from backchannel.store import channels, events, messages
from backchannel.store import session_templates as sql
from backchannel.store.sessions import TOOL_MARK
from backchannel.text import has_control

if TYPE_CHECKING:
    from backchannel.room import Room
    from backchannel.store import Store

DRAFT_TYPE = "session_draft"
STATUSES = ("open", "superseded", "dismissed", "saved", "run")
MAX_REQUEST = 500
MAX_DEPTH = 20  # a template nests 4 deep; SQLite's JSON functions stop at 1000
DESIGN_REQUEST = "Please design a session for:"  # the request's words: a fresh design, not a revision
REVISE_LOOKBACK = 20  # messages of the channel searched for "revise session draft <id>"
DRAFT_ID_RE = re.compile(r"^[0-9a-f]{8}$")
_OPEN_FENCE = re.compile(r"^[ \t]*```session[ \t]*\r?$", re.MULTILINE)
_CLOSE_FENCE = re.compile(r"^[ \t]*```[ \t]*\r?$", re.MULTILINE)
_REVISE = re.compile(r"\brevise session draft \[?([0-9a-f]{8})\b", re.IGNORECASE)


class InvalidTemplate(InvalidInput):
    """A template with problems: REST answers 400 with all of them in ``problems``."""

    code = "invalid_template"

    def __init__(self, problems: list[str]) -> None:
        super().__init__(f"the template has {len(problems)} problem(s): " + "; ".join(problems))
        self.problems = problems


# -- parsing an agent's message ------------------------------------------------------------------
def has_block(text: str) -> bool:
    """True when ``text`` opens a ```` ```session ```` fenced block (on a line of its own)."""
    return _OPEN_FENCE.search(text) is not None


@dataclass(frozen=True, slots=True)
class Parsed:
    template: dict[str, Any] | None  # what the card shows: the normalized template, or the raw object
    valid: bool
    errors: list[str]
    draft_id: str | None  # the block's own "draft_id", when it gives a well-formed one


def _depth(value: Any) -> int:
    """How deeply lists and objects nest in a parsed JSON value (iterative: no recursion limit)."""
    deepest, todo = 0, [(value, 1)]
    while todo:
        item, level = todo.pop()
        if isinstance(item, dict | list):
            deepest = max(deepest, level)
            children = (
                cast(dict[str, Any], item).values() if isinstance(item, dict) else cast(list[Any], item)
            )
            todo.extend((child, level + 1) for child in children)
    return deepest


def _not_json(word: str) -> Any:
    raise ValueError(f"{word} is not a JSON value")


def _finite(text: str) -> float:
    """Python reads 1e999 as infinity, which JSON (and SQLite's JSON functions) cannot hold."""
    value = float(text)
    if not math.isfinite(value):
        raise ValueError(f"{text[:20]} is too large a number")
    return value


def parse(text: str) -> Parsed:
    """The first ```` ```session ```` block of ``text``: its template, or every problem with it."""
    opened = _OPEN_FENCE.search(text)
    if opened is None:
        return Parsed(None, False, ["no ```session block"], None)
    rest = text[opened.end() :]
    closed = _CLOSE_FENCE.search(rest)
    body = rest[: closed.start()] if closed else rest
    try:
        data: Any = json.loads(body, parse_constant=_not_json, parse_float=_finite)
    except (ValueError, RecursionError) as exc:
        reason = str(exc) if isinstance(exc, ValueError) else "nested too deeply"
        return Parsed(None, False, [f"session block: not valid JSON ({reason})"], None)
    if not isinstance(data, dict):
        return Parsed(None, False, [f"session block: must hold one JSON object, not {show(data)}"], None)
    if _depth(data) > MAX_DEPTH:
        return Parsed(None, False, [f"session block: nested deeper than {MAX_DEPTH} levels"], None)
    obj = dict(cast(dict[str, Any], data))
    hint_value = obj.pop("draft_id", None)
    hint = (
        hint_value.lower()
        if isinstance(hint_value, str) and DRAFT_ID_RE.fullmatch(hint_value.lower())
        else None
    )
    template, problems = validate(obj)
    if template is None:
        return Parsed(obj, False, problems, hint)
    shown = template.public()
    del shown["builtin"]
    if obj.get("id") is None:
        del shown["id"]  # the id is chosen when it is saved
    return Parsed(shown, True, [], hint)


def prepare(
    agent_name: str, channel: str, text: str, metadata: dict[str, Any] | None
) -> tuple[str, dict[str, Any], Callable[[sqlite3.Connection], list[Event]]]:
    """For ``Room.post_agent``: the card's type, its metadata, and the step that runs first in the
    post's transaction. That step fills ``draft_id`` and ``revision`` into the metadata (they depend
    on the cards already stored) and supersedes the draft's older open cards."""
    parsed = parse(text)
    meta: dict[str, Any] = {
        **(metadata or {}),
        "draft_id": "",
        "revision": 1,
        "proposed_by": agent_name,
        "template": parsed.template,
        "valid": parsed.valid,
        "errors": parsed.errors,
        "status": "open",
    }

    def in_tx(conn: sqlite3.Connection) -> list[Event]:
        channel_id = channels.get(conn, channel).id
        hint = parsed.draft_id
        draft_id = hint if hint and _proposed_by(conn, channel_id, hint, agent_name) else None
        draft_id = draft_id or _revise_target(conn, channel_id, agent_name) or _fresh_id(conn, channel_id)
        meta["draft_id"] = draft_id
        meta["revision"] = _max_revision(conn, channel_id, draft_id) + 1
        return [
            set_status(conn, card.id, "superseded")
            for card in _cards(conn, channel_id, draft_id)
            if card.metadata.get("status") == "open"
        ]

    return DRAFT_TYPE, meta, in_tx


_CARDS = (
    "SELECT id FROM messages WHERE channel_id = ? AND type = 'session_draft'"
    " AND json_extract(metadata, '$.draft_id') = ? AND deleted = 0 ORDER BY id"
)


def _cards(conn: sqlite3.Connection, channel_id: int, draft_id: str) -> list[Message]:
    return [messages.get(conn, r["id"]) for r in conn.execute(_CARDS, (channel_id, draft_id))]


def _exists(conn: sqlite3.Connection, channel_id: int, draft_id: str) -> bool:
    return conn.execute(_CARDS, (channel_id, draft_id)).fetchone() is not None


def _proposed_by(conn: sqlite3.Connection, channel_id: int, draft_id: str, agent_name: str) -> bool:
    """True when the draft exists and this agent proposed it: an agent revises its own drafts only
    (naming another agent's draft id would supersede that agent's card)."""
    cards = _cards(conn, channel_id, draft_id)
    return bool(cards) and all(c.metadata.get("proposed_by") == agent_name for c in cards)


def _max_revision(conn: sqlite3.Connection, channel_id: int, draft_id: str) -> int:
    found = 0
    for card in _cards(conn, channel_id, draft_id):
        revision = card.metadata.get("revision")
        if isinstance(revision, int) and not isinstance(revision, bool):
            found = max(found, revision)
    return found


def _revise_target(conn: sqlite3.Connection, channel_id: int, agent_name: str) -> str | None:
    """The draft id of the newest "revise session draft <id>" message that mentions this agent and
    that it has not answered yet, among the channel's last messages: the scan stops at this agent's
    own newer card (the request was answered) or a newer "Please design a session for:" request to
    it (a fresh design wins). Only this agent's own drafts are revised."""
    rows = conn.execute(
        "SELECT text, type, sender FROM messages WHERE channel_id = ? AND job_id IS NULL AND deleted = 0"
        " ORDER BY id DESC LIMIT ?",
        (channel_id, REVISE_LOOKBACK),
    )
    me = agent_name.lower()
    for row in rows:
        text = str(row["text"])
        if row["type"] == DRAFT_TYPE and str(row["sender"]).lower() == me:
            return None
        if me not in mention_tokens(text):
            continue
        if DESIGN_REQUEST in text:
            return None
        found = _REVISE.search(text)
        if found:
            draft_id = found.group(1).lower()
            return draft_id if _proposed_by(conn, channel_id, draft_id, agent_name) else None
    return None


def _fresh_id(conn: sqlite3.Connection, channel_id: int) -> str:
    while True:
        draft_id = secrets.token_hex(4)
        if not _exists(conn, channel_id, draft_id):
            return draft_id


# -- cards people act on -------------------------------------------------------------------------
def card(conn: sqlite3.Connection, message_id: int) -> Message:
    """The draft card ``message_id`` (404 when there is none)."""
    try:
        found = messages.get(conn, message_id)
    except NotFound:
        found = None
    if found is None or found.type != DRAFT_TYPE or found.deleted:
        raise NotFound(f"no session draft {message_id}")
    return found


def set_status(conn: sqlite3.Connection, message_id: int, status: str, **extra: Any) -> Event:
    """Change a card's status (and any ``extra`` metadata); the ``message_edited`` event to publish."""
    assert status in STATUSES
    current = messages.get(conn, message_id)
    updated = messages.set_metadata(conn, message_id, {**current.metadata, **extra, "status": status})
    events.rewrite_message(conn, updated.public())
    return events.append(conn, "message_edited", {"message": updated.public()})


def runnable(conn: sqlite3.Connection, message_id: int) -> Template:
    """The template of an open, valid draft card, checked again (for Save and for Run)."""
    draft = card(conn, message_id)
    status = draft.metadata.get("status")
    if status != "open":
        raise Conflict(f"session draft {message_id} is {status}; only an open draft can be used")
    template, problems = validate(draft.metadata.get("template"))
    if template is None or not draft.metadata.get("valid"):
        raise InvalidTemplate(problems or [str(e) for e in draft.metadata.get("errors") or ["invalid draft"]])
    return template


def request_text(agent_name: str, description: str) -> str:
    """The visible message asking an agent to design a session: the JSON shape and every limit."""
    shape = (
        '{"name": "...", "description": "...", "roles": ["role_a", "role_b"], "phases": [{"name": "...", '
        '"participants": ["role_a"], "prompt": "...", "is_output": false}]}'
    )
    return (
        f"@{agent_name} {DESIGN_REQUEST} {description}. Answer with one ```session block "
        f"holding JSON {shape}. Limits: name 1-{MAX_NAME} characters, description up to "
        f"{MAX_DESCRIPTION}; 1-{MAX_ROLES} distinct roles, each 1-20 lower-case letters, digits or _ "
        f"starting with a letter; 1-{MAX_PHASES} phases, each with a name up to {MAX_PHASE_NAME} "
        f"characters, 1-{MAX_PARTICIPANTS} participants taken from the roles (they speak in that "
        f"order) and a one-line prompt up to {MAX_PROMPT} characters; exactly one phase has "
        '"is_output": true (its message is the result of the session).'
    )


def check_description(value: Any) -> str:
    if not isinstance(value, str):
        raise InvalidInput("description must be a string")
    text = " ".join(value.split())
    if not text:
        raise InvalidInput(
            f"description is empty: say in 1 to {MAX_REQUEST} characters what the session is for"
        )
    if len(text) > MAX_REQUEST:
        raise InvalidInput(f"description is {len(text)} characters; the limit is {MAX_REQUEST}")
    if has_control(text):
        raise InvalidInput("description contains a control character")
    return text


class SessionDrafts:
    """Templates and drafts for people: one transaction per change, published after the commit."""

    def __init__(self, room: Room, store: Store) -> None:
        self.room = room
        self.store = store

    # -- templates ---------------------------------------------------------------------------------
    async def templates(self) -> list[Template]:
        return await self.store.db.read(sql.list_all)

    async def create_template(self, body: Any, by: Person) -> Template:
        template, problems = validate(body)
        if template is None:
            raise InvalidTemplate(problems)

        def tx(c: sqlite3.Connection) -> tuple[Template, Event]:
            saved = sql.save(c, template, by.name, self.room.settings.max_session_templates)
            return saved, events.append(
                c, "session_template", {"action": "saved", "template": saved.public()}
            )

        saved, event = await self.store.db.write(tx)
        self.room.publish(event)
        return saved

    async def delete_template(self, template_id: str) -> None:
        def tx(c: sqlite3.Connection) -> Event:
            sql.delete(c, template_id)
            return events.append(
                c, "session_template", {"action": "deleted", "template": {"id": template_id}}
            )

        self.room.publish(await self.store.db.write(tx))

    # -- drafts ------------------------------------------------------------------------------------
    async def request_draft(self, person: Person, agent: Any, channel: Any, description: Any) -> Message:
        """Ask ``agent`` for a draft with a normal message from ``person``: it routes and wakes the
        agent like any mention, and everyone sees what was asked. It is marked as a tool message,
        so a session running in the channel neither pauses nor counts it as the person's turn."""
        text = check_description(description)
        if not isinstance(agent, str) or not agent.strip():
            raise InvalidInput("agent must name an agent")
        name = agent.strip().lstrip("@").lower()
        known = sorted(a.name for a in await self.store.agents())
        if name not in known:
            listed = ", ".join(known) or "none registered yet"
            raise InvalidInput(f"no agent named {show(name)}; agents: {listed}")
        from backchannel.room import validate_channel  # room imports this module

        posted = await self.room.post(
            channel=validate_channel(channel),
            text=self.room.check_text(request_text(name, text)),
            sender=person.name,
            kind="human",
            person_id=person.id,
            metadata={TOOL_MARK: "request_draft"},  # a running session's turn is not taken by it
        )
        return posted.message

    async def save_draft(self, message_id: int, by: Person) -> Template:
        """Save an open, valid draft as a custom template; the card says "saved"."""

        def tx(c: sqlite3.Connection) -> tuple[Template, list[Event]]:
            saved = sql.save(c, runnable(c, message_id), by.name, self.room.settings.max_session_templates)
            edited = set_status(c, message_id, "saved", template_id=saved.id)
            event = events.append(c, "session_template", {"action": "saved", "template": saved.public()})
            return saved, [edited, event]

        saved, published = await self.store.db.write(tx)
        self.room.publish(*published)
        return saved

    async def dismiss_draft(self, message_id: int) -> Message:
        """Dismiss an open draft (a dismissed one stays dismissed: answering again is harmless)."""

        def tx(c: sqlite3.Connection) -> tuple[Message, list[Event]]:
            draft = card(c, message_id)
            status = draft.metadata.get("status")
            if status == "dismissed":
                return draft, []
            if status != "open":
                raise Conflict(f"session draft {message_id} is {status}; only an open draft can be dismissed")
            edited = set_status(c, message_id, "dismissed")
            return messages.get(c, message_id), [edited]

        message, published = await self.store.db.write(tx)
        self.room.publish(*published)
        return message
