"""Session rows, their JSON, and the turn step; every function runs inside the caller's transaction.

A session stores a snapshot of its template (a run from an unsaved draft survives a restart) and
belongs to its channel by id (a rename carries it, a delete removes it). A turn ends in the very
transaction that stores the expected participant's message (:func:`step`, called by
``Store.post``): the turn is recorded, the next agent's wake-up is a durable trigger row created
right there, and the wake-up of the turn that ended is superseded if it was still pending. So a
crash at any point either loses the whole message with its step or keeps both, and an
acknowledged wake-up is never replayed: nothing is left to redo at start-up.
"""

from __future__ import annotations

import json
import re
import secrets
import sqlite3
import time
from dataclasses import dataclass, field
from typing import Any, cast

from backchannel.errors import Conflict, NotFound
from backchannel.models import Agent, Channel, Event, Message, Trigger
from backchannel.router import one_line, with_role
from backchannel.schedule_spec import iso
from backchannel.store import agents, events, messages, triggers

RUNNING = ("active", "paused")
MAX_GOAL = 500
# A person's tool message (``metadata.session_tool``: request-draft) and the UI's "Request changes"
# message are not what the person says in the session: they never take nor pause a turn.
TOOL_MARK = "session_tool"
_REVISE_REQUEST = re.compile(r"^@\S+ Please revise session draft ")
# Roles whose job is to disagree get a nudge to think for themselves.
DISSENT_ROLES = frozenset({"reviewer", "red_team", "critic", "challenger", "against"})

_SELECT = (
    'SELECT s.*, s."cast" AS cast_json, c.name AS channel FROM sessions s'
    " JOIN channels c ON c.id = s.channel_id"
)


class SessionRunning(Conflict):
    """A channel runs at most one session at a time."""

    code = "session_running"


@dataclass(frozen=True, slots=True)
class Session:
    id: int
    uid: str
    channel: str
    channel_id: int
    template_id: str | None
    template: dict[str, Any]  # the snapshot: {id, name, description, roles, phases: [...]}
    cast: dict[str, str]  # role -> agent or person name
    people: frozenset[str]  # the roles a person plays (no wake-up; their message ends the turn)
    goal: str
    state: str  # active | paused | complete | ended
    phase: int
    turn: int
    turn_messages: list[int]
    output_message_id: int | None
    end_reason: str | None
    wake_trigger_id: int | None
    started_by: str
    started_at: float
    updated_at: float
    ended_at: float | None
    version: int = 0  # bumped on every change of the row: pages keep the copy with the highest

    @property
    def phases(self) -> list[dict[str, Any]]:
        return cast(list[dict[str, Any]], self.template.get("phases", []))

    @property
    def name(self) -> str:
        return str(self.template.get("name", self.template_id or "session"))

    @property
    def running(self) -> bool:
        return self.state in RUNNING

    def participants(self, phase: int) -> list[str]:
        return [str(p) for p in self.phases[phase].get("participants", [])]

    @property
    def current_role(self) -> str | None:
        if not self.running or self.phase >= len(self.phases):
            return None
        roles = self.participants(self.phase)
        return roles[self.turn] if self.turn < len(roles) else None

    @property
    def current_agent(self) -> str | None:
        role = self.current_role
        return None if role is None else self.cast.get(role)

    @property
    def waiting_on_person(self) -> bool:
        role = self.current_role
        return role is not None and role in self.people

    def public(self) -> dict[str, Any]:
        """The JSON of REST and ``session`` events (times ISO 8601 with offset)."""
        phase_name = None
        if self.phase < len(self.phases):
            phase_name = str(self.phases[self.phase].get("name", ""))
        return {
            "id": self.id,
            "uid": self.uid,
            "template_id": self.template_id,
            "template_name": self.name,
            "template": self.template,
            "channel": self.channel,
            "cast": dict(self.cast),
            "people": sorted(self.people),
            "goal": self.goal,
            "state": self.state,
            "phase": self.phase,
            "phase_name": phase_name,
            "total_phases": len(self.phases),
            "turn": self.turn,
            "current_role": self.current_role,
            "current_agent": self.current_agent,
            "waiting_on_person": self.waiting_on_person,
            "turn_messages": list(self.turn_messages),
            "output_message_id": self.output_message_id,
            "end_reason": self.end_reason,
            "started_by": self.started_by,
            "started_at": iso(self.started_at),
            "updated_at": iso(self.updated_at),
            "ended_at": iso(self.ended_at),
            "version": self.version,
        }


@dataclass(slots=True)
class Change:
    """What one transaction wrote, for the caller to publish after the commit."""

    session: Session | None = None
    events: list[Event] = field(default_factory=list[Event])
    triggers: list[tuple[Agent, Trigger]] = field(default_factory=list[tuple[Agent, Trigger]])


@dataclass(slots=True)
class Step:
    """What storing one message did to its channel's running session (see ``Store.post``)."""

    targets: list[Agent]  # the mention targets left after gating
    message: Message  # the stored message, marked when it is the session's output
    triggers: list[tuple[Agent, Trigger]]
    events: list[Event]


def _row(row: sqlite3.Row) -> Session:
    return Session(
        id=row["id"],
        uid=row["uid"],
        channel=row["channel"],
        channel_id=row["channel_id"],
        template_id=row["template_id"],
        template=json.loads(row["template"]),
        cast={str(k): str(v) for k, v in json.loads(row["cast_json"]).items()},
        people=frozenset(str(r) for r in json.loads(row["people"])),
        goal=row["goal"] or "",
        state=row["state"],
        phase=row["phase"],
        turn=row["turn"],
        turn_messages=[int(i) for i in json.loads(row["turn_messages"])],
        output_message_id=row["output_message_id"],
        end_reason=row["end_reason"],
        wake_trigger_id=row["wake_trigger_id"],
        started_by=row["started_by"] or "",
        started_at=row["started_at"],
        updated_at=row["updated_at"],
        ended_at=row["ended_at"],
        version=row["version"],
    )


# -- reading ---------------------------------------------------------------------------------------
def find(conn: sqlite3.Connection, session_id: int) -> Session | None:
    row = conn.execute(f"{_SELECT} WHERE s.id = ?", (session_id,)).fetchone()
    return None if row is None else _row(row)


def get(conn: sqlite3.Connection, session_id: int) -> Session:
    found = find(conn, session_id)
    if found is None:
        raise NotFound(f"no session {session_id}")
    return found


def running_in(conn: sqlite3.Connection, channel_id: int) -> Session | None:
    row = conn.execute(
        f"{_SELECT} WHERE s.channel_id = ? AND s.state IN ('active', 'paused')", (channel_id,)
    ).fetchone()
    return None if row is None else _row(row)


def list_sessions(
    conn: sqlite3.Connection,
    state: str | None = None,
    channel_id: int | None = None,
    limit: int = 200,
    before_id: int | None = None,
) -> list[Session]:
    """Newest first; ``before_id`` pages back to older ones."""
    where: list[str] = []
    params: list[Any] = []
    if before_id is not None:
        where.append("s.id < ?")
        params.append(before_id)
    if state:
        where.append("s.state = ?")
        params.append(state)
    if channel_id is not None:
        where.append("s.channel_id = ?")
        params.append(channel_id)
    clause = f" WHERE {' AND '.join(where)}" if where else ""
    rows = conn.execute(f"{_SELECT}{clause} ORDER BY s.id DESC LIMIT ?", (*params, limit))
    return [_row(r) for r in rows]


# -- the wake-up -----------------------------------------------------------------------------------
def wake_prompt(agent: Agent, session: Session) -> str:
    """The one-line prompt that tells an agent it is its turn, with what it needs to take it."""
    where = session.channel
    phase = session.phases[session.phase]
    role = session.current_role or ""
    earlier = ", ".join(str(i) for i in session.turn_messages) or "none yet"
    goal = f" Goal: {one_line(session.goal, MAX_GOAL).rstrip('.')}." if session.goal else ""
    dissent = (
        " Give your own independent view; disagree where you have reason to." if role in DISSENT_ROLES else ""
    )
    text = (
        f'Session "{one_line(session.name, 60)}" in #{where}, phase {session.phase + 1}/'
        f'{len(session.phases)} "{one_line(str(phase.get("name", "")), 40)}": it is your turn as {role}.'
        f"{goal} {one_line(str(phase.get('prompt', '')), 200)}{dissent} Previous turns: messages {earlier}."
        f' Use chat_read(channel="{where}") to read them, then post your turn with'
        f' chat_send(channel="{where}"): your next message in #{where} is your turn.'
    )
    return with_role(agent, one_line(text, 2000))


# The live row of a turn's wake-up: the row itself or a retry of it (a failed wake-up retried is a
# new row for the same agent, place and message), while the wrapper has not acknowledged it.
_LIVE = (
    f" state IN {triggers.PENDING_STATES} AND (id = :t OR id IN ("
    " SELECT r.id FROM triggers r JOIN triggers t ON t.id = :t WHERE r.folds = 0 AND r.job_id = 0"
    " AND r.agent_id = t.agent_id AND r.channel = t.channel AND r.message_id = t.message_id))"
)


def _live_wake(conn: sqlite3.Connection, trigger_id: int | None) -> Trigger | None:
    """The turn's wake-up (or its retry) that the wrapper has not acknowledged yet, if any."""
    if trigger_id is None:
        return None
    row = conn.execute(f"SELECT * FROM triggers WHERE {_LIVE} ORDER BY id DESC LIMIT 1", {"t": trigger_id})
    found = row.fetchone()
    return None if found is None else triggers.row_to_trigger(found)


def _supersede(conn: sqlite3.Connection, trigger_id: int | None) -> None:
    """A turn's wake-up that is still pending when the turn is over is never delivered (nor a
    retry of it: a failed wake-up retried is a new row for the same agent, place and message)."""
    if trigger_id is None:
        return
    conn.execute(
        f"UPDATE triggers SET state = 'superseded', updated_at = :now WHERE {_LIVE}",
        {"now": time.time(), "t": trigger_id},
    )


def _wake(conn: sqlite3.Connection, session: Session, message_id: int, change: Change) -> int | None:
    """Queue the wake-up of whoever is on turn now (an agent; a person gets none); its trigger id."""
    role = session.current_role
    if role is None or role in session.people:
        return None
    agent = agents.by_name(conn, session.cast[role])
    if agent is None:  # forgotten since it was cast: the session waits, its bar says for whom
        return None
    trig = triggers.insert(
        conn,
        agent_id=agent.id,
        channel=session.channel,
        message_id=message_id,
        job_id=0,
        sender="system",
        prompt=wake_prompt(agent, session),
        fold=False,
    )
    assert trig is not None  # fold=False always makes one
    change.triggers.append((agent, trig))
    return trig.id


def _save(conn: sqlite3.Connection, session_id: int, **values: Any) -> Session:
    allowed = {
        "state",
        "phase",
        "turn",
        "turn_messages",
        "output_message_id",
        "end_reason",
        "wake_trigger_id",
        "updated_at",
        "ended_at",
    }
    sets: list[str] = []
    params: list[Any] = []
    for key, value in values.items():
        if key not in allowed:
            raise ValueError(key)
        sets.append(f"{key} = ?")
        params.append(json.dumps(value) if key == "turn_messages" else value)
    sets.append("version = version + 1")
    conn.execute(f"UPDATE sessions SET {', '.join(sets)} WHERE id = ?", (*params, session_id))
    return get(conn, session_id)


def _event(conn: sqlite3.Connection, change: Change, action: str, session: Session) -> None:
    change.session = session
    change.events.append(events.append(conn, "session", {"action": action, "session": session.public()}))


def _banner(
    conn: sqlite3.Connection, change: Change, session: Session, type: str, text: str, meta: dict[str, Any]
) -> Message:
    banner = messages.insert(
        conn,
        channel_id=session.channel_id,
        sender="system",
        kind="system",
        text=text,
        type=type,
        metadata={"session_id": session.id, **meta},
    )
    change.events.append(events.append(conn, "message", {"message": banner.public()}))
    return banner


def _phase_banner(conn: sqlite3.Connection, change: Change, session: Session) -> Message:
    roles = session.participants(session.phase)
    name = str(session.phases[session.phase].get("name", ""))
    who = ", ".join(f"{r} ({session.cast.get(r, '?')})" for r in roles)
    return _banner(
        conn,
        change,
        session,
        "session_phase",
        f"Phase {session.phase + 1}/{len(session.phases)}: {name} — {who}",
        {
            "phase": session.phase,
            "phase_name": name,
            "participants": roles,
            "total_phases": len(session.phases),
        },
    )


def _end_banner(conn: sqlite3.Connection, change: Change, session: Session, reason: str) -> None:
    said = (
        f"Session {session.name} complete." if reason == "complete" else f"Session {session.name} {reason}."
    )
    _banner(
        conn,
        change,
        session,
        "session_end",
        said,
        {"output_message_id": session.output_message_id, "reason": reason},
    )


# -- changes ---------------------------------------------------------------------------------------
def start(
    conn: sqlite3.Connection,
    *,
    channel: Channel,
    template: dict[str, Any],
    template_id: str | None,
    cast: dict[str, str],
    people: set[str],
    goal: str,
    started_by: str,
    now: float,
) -> Change:
    """Insert a running session, post its start and first phase banners, wake the first agent."""
    running = running_in(conn, channel.id)
    if running is not None:
        raise SessionRunning(
            f"#{channel.name} already runs session {running.id} ({running.name}); end it first"
        )
    try:
        cur = conn.execute(
            'INSERT INTO sessions(uid, channel_id, template_id, template, "cast", people, goal, state,'
            " phase, turn, turn_messages, started_by, started_at, updated_at)"
            " VALUES (?, ?, ?, ?, ?, ?, ?, 'active', 0, 0, '[]', ?, ?, ?)",
            (
                secrets.token_hex(16),
                channel.id,
                template_id,
                json.dumps(template),
                json.dumps(cast),
                json.dumps(sorted(people)),
                goal,
                started_by,
                now,
                now,
            ),
        )
    except sqlite3.IntegrityError:  # the partial unique index: belt and braces for the check above
        raise SessionRunning(f"#{channel.name} already runs a session; end it first") from None
    assert cur.lastrowid is not None
    session = get(conn, cur.lastrowid)
    change = Change(session=session)
    cast_text = ", ".join(f"{role}: {name}" for role, name in cast.items())
    goal_text = f" Goal: {one_line(goal, 500)}" if goal else ""
    _banner(
        conn,
        change,
        session,
        "session_start",
        f"Session {session.name} started by {started_by}.{goal_text} Cast: {cast_text}.",
        {
            "template_id": template_id,
            "template_name": session.name,
            "goal": goal,
            "cast": dict(cast),
        },
    )
    banner = _phase_banner(conn, change, session)
    session = _save(conn, session.id, wake_trigger_id=_wake(conn, session, banner.id, change))
    _event(conn, change, "started", session)
    return change


def end(conn: sqlite3.Connection, session_id: int, reason: str, now: float) -> Change:
    """End a running session (a person's End): its pending wake-up is never delivered."""
    session = get(conn, session_id)
    if not session.running:
        raise Conflict(f"session {session_id} is not running (it is {session.state})")
    _supersede(conn, session.wake_trigger_id)
    session = _save(
        conn, session_id, state="ended", end_reason=reason, wake_trigger_id=None, updated_at=now, ended_at=now
    )
    change = Change(session=session)
    _end_banner(conn, change, session, reason)
    _event(conn, change, "ended", session)
    return change


def _mark_output(conn: sqlite3.Connection, change: Change, session: Session, message: Message) -> Message:
    marked = messages.set_metadata(
        conn, message.id, {**message.metadata, "session_output": True, "session_id": session.id}
    )
    events.rewrite_message(conn, marked.public())
    change.events.append(events.append(conn, "message_edited", {"message": marked.public()}))
    return marked


def _advance(
    conn: sqlite3.Connection, session: Session, message: Message, change: Change, now: float
) -> Message:
    """The message ends the current turn: record it and move on (next turn, phase, or the end)."""
    _supersede(conn, session.wake_trigger_id)
    done = [*session.turn_messages, message.id]
    phase, turn, output = session.phase, session.turn + 1, session.output_message_id
    if turn >= len(session.participants(phase)):
        if session.phases[phase].get("is_output"):
            message = _mark_output(conn, change, session, message)
            output = message.id
        phase, turn = phase + 1, 0
    if phase >= len(session.phases):
        session = _save(
            conn,
            session.id,
            state="complete",
            phase=len(session.phases) - 1,
            turn=max(0, len(session.participants(len(session.phases) - 1)) - 1),
            turn_messages=done,
            output_message_id=output,
            end_reason="complete",
            wake_trigger_id=None,
            updated_at=now,
            ended_at=now,
        )
        _end_banner(conn, change, session, "complete")
        _event(conn, change, "complete", session)
        return message
    session = _save(
        conn,
        session.id,
        state="active",
        phase=phase,
        turn=turn,
        turn_messages=done,
        output_message_id=output,
        updated_at=now,
    )
    woken_by = message.id
    if turn == 0:
        woken_by = _phase_banner(conn, change, session).id
    session = _save(conn, session.id, wake_trigger_id=_wake(conn, session, woken_by, change))
    _event(conn, change, "updated", session)
    return message


def _counts(message: Message) -> bool:
    """Only what a participant says takes (or pauses) a turn: not a schedule firing in their name,
    nor a person's tool message (a draft request, a "Please revise session draft" request)."""
    meta = message.metadata
    if meta.get("schedule_id") is not None or meta.get(TOOL_MARK):
        return False
    return not (message.kind == "human" and _REVISE_REQUEST.match(message.text))


def _link(conn: sqlite3.Connection, trigger_id: int, message_id: int) -> None:
    """The message rides on the turn's wake-up: its delivery is that wake-up's."""
    conn.execute(
        "INSERT OR IGNORE INTO trigger_messages(message_id, trigger_id) VALUES (?, ?)",
        (message_id, trigger_id),
    )


def step(
    conn: sqlite3.Connection,
    channel: Channel,
    message: Message,
    targets: list[Agent],
    now: float | None = None,
) -> Step | None:
    """Apply the turn rules to a message just stored in ``channel``'s timeline (None: no session).

    Only ``chat`` messages a participant typed count (not a schedule's, not a person's tool
    message): the expected participant's ends the turn (an agent's also resumes a paused session);
    a person speaking on an agent's turn pauses it; anyone else changes nothing. An agent's mentions
    wake only the agent on turn; a mention of the agent on turn whose turn's wake-up is not
    acknowledged yet rides on that wake-up instead of waking it twice (whoever sent it).
    """
    session = running_in(conn, channel.id)
    if session is None or message.job_id is not None:
        return None
    now = time.time() if now is None else now
    change = Change()
    role = session.current_role
    if message.type == "chat" and role is not None and _counts(message):
        expected = session.cast.get(role)
        person_turn = role in session.people
        if message.kind == "human" and person_turn and message.sender == expected:
            message = _advance(conn, session, message, change, now)
        elif message.kind == "agent" and not person_turn and message.sender == expected:
            message = _advance(conn, session, message, change, now)
        elif message.kind == "human" and not person_turn and session.state == "active":
            paused = _save(conn, session.id, state="paused", updated_at=now)
            _event(conn, change, "updated", paused)
    now_on = running_in(conn, channel.id)
    if message.kind == "agent":
        allowed = now_on.current_agent if now_on is not None and not now_on.waiting_on_person else None
        targets = [t for t in targets if t.name == allowed]
    live = _live_wake(conn, now_on.wake_trigger_id) if now_on is not None else None
    if live is not None and live.state != "failed" and any(t.id == live.agent_id for t in targets):
        # (a failed one wakes nobody until retried: a mention then gets its own wake-up)
        _link(conn, live.id, message.id)
        targets = [t for t in targets if t.id != live.agent_id]
    return Step(targets=targets, message=message, triggers=change.triggers, events=change.events)


def channel_renamed(conn: sqlite3.Connection, channel_id: int) -> list[Event]:
    """After a rename: the running session's pending wake-up names the new channel, and open pages
    get an ``updated`` event with it."""
    session = running_in(conn, channel_id)
    if session is None:
        return []
    live = _live_wake(conn, session.wake_trigger_id)
    if live is not None:  # the row or its retry (matched by the old channel, before it changes)
        agent = agents.by_id(conn, live.agent_id)
        conn.execute(
            f"UPDATE triggers SET channel = :channel, prompt = :prompt WHERE {_LIVE}",
            {"channel": session.channel, "prompt": wake_prompt(agent, session), "t": session.wake_trigger_id},
        )
    change = Change()
    _event(conn, change, "updated", _save(conn, session.id))  # the JSON changed: a new version
    return change.events


def participant_renamed(conn: sqlite3.Connection, old: str, new: str) -> list[Event]:
    """An agent or person in a cast got a new name: the cast follows, so their next message still
    takes their turn (history follows the identity, as for their messages). Returns the ``updated``
    events of the running sessions it touched, for the caller to publish after the commit."""
    if old == new:
        return []
    touched = [
        int(r["id"])
        for r in conn.execute(
            "SELECT id FROM sessions WHERE state IN ('active', 'paused')"
            ' AND EXISTS (SELECT 1 FROM json_each(sessions."cast") WHERE value = ?)',
            (old,),
        )
    ]
    conn.execute(
        'UPDATE sessions SET "cast" = (SELECT json_group_object(key, CASE WHEN value = :old THEN :new'
        ' ELSE value END) FROM json_each(sessions."cast")), version = version + 1'
        ' WHERE EXISTS (SELECT 1 FROM json_each(sessions."cast") WHERE value = :old)',
        {"old": old, "new": new},
    )
    change = Change()
    for session_id in touched:
        _event(conn, change, "updated", get(conn, session_id))
    return change.events


def channel_deleted(conn: sqlite3.Connection, channel_id: int) -> list[Event]:
    """Before a channel's row goes (its sessions go with it by the foreign key): a running session's
    pending wake-up is superseded, the sessions' logged events (their goals) leave the log like the
    channel's messages, and open pages learn that a running one ended."""
    session = running_in(conn, channel_id)
    conn.execute(
        "DELETE FROM events WHERE kind = 'session' AND json_extract(payload, '$.session.id')"
        " IN (SELECT id FROM sessions WHERE channel_id = ?)",
        (channel_id,),
    )
    if session is None:
        return []
    _supersede(conn, session.wake_trigger_id)
    now = time.time()
    gone = _save(conn, session.id, state="ended", end_reason="channel deleted", updated_at=now, ended_at=now)
    payload = {"action": "ended", "session": {**gone.public(), "goal": ""}}
    return [events.append(conn, "session", payload)]
