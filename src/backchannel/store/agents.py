"""Agent rows: the registry's storage side. Tokens and reclaim secrets are stored only as SHA-256 hashes."""

from __future__ import annotations

import hmac
import math
import sqlite3
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass, replace
from typing import cast

from backchannel.errors import Conflict, NotFound
from backchannel.models import Activity, Agent
from backchannel.store import messages, persons
from backchannel.store._db import Database, Volatile
from backchannel.store.triggers import PENDING_STATES


class NameHeld(Conflict):
    """A live session holds this instance's name and the caller did not prove it is that session."""

    code = "name_held"


@dataclass(frozen=True, slots=True)
class TakeOver:
    """What a new instance inherited from the offline identity whose name it took."""

    previous_id: int
    mentions: int
    channels: int
    role: str


@dataclass(frozen=True, slots=True)
class Registration:
    agent: Agent
    is_new: bool  # a new identity, not a reclaim of this instance's own
    took_over: TakeOver | None = None


def row_to_agent(row: sqlite3.Row) -> Agent:
    return Agent(
        id=row["id"],
        name=row["name"],
        base=row["base"],
        instance_id=row["instance_id"],
        slot=row["slot"],
        label=row["label"],
        color=row["color"],
        activity=row["activity"],
        last_seen=row["last_seen"],
        left=row["left_at"] is not None,
        retired=bool(row["retired"]),
        last_channel=row["last_channel"],
        role=row["role"],
        hat=row["hat"],
        created_at=row["created_at"],
        rules_seen=row["rules_seen"],
    )


def live(conn: sqlite3.Connection) -> list[Agent]:
    """Every identity that still owns its name (online or not)."""
    return [row_to_agent(r) for r in conn.execute("SELECT * FROM agents WHERE retired = 0 ORDER BY id")]


def with_volatile(agent: Agent, volatile: Mapping[int, Volatile]) -> Agent:
    """``agent`` (a cached copy) with its current ``last_seen``, ``activity`` and ``last_channel``.

    ``volatile`` is ``Database.agents_volatile``: the committed values of every agent that had
    one of them change since start (such writes do not move the agents generation).
    """
    now = volatile.get(agent.id)
    if now is None or now == (agent.last_seen, agent.activity, agent.last_channel):
        return agent
    return replace(agent, last_seen=now[0], activity=cast(Activity, now[1]), last_channel=now[2])


class Roster:
    """The live agents a post routes to, kept between commits that change none of them.

    Read on the writer thread only, inside a write transaction: the generation moves on that
    thread after each commit, so it cannot move between the check here and the use of the list.
    A transaction that changed cached columns of ``agents`` reads the rows (they show its change);
    its own liveness writes are laid over the cached list.
    """

    def __init__(self, db: Database) -> None:
        self._db = db
        self._generation = -1
        self._volatile_version = -1
        self._agents: list[Agent] = []

    def live(self, conn: sqlite3.Connection) -> list[Agent]:
        db = self._db
        pending = db.volatile_pending()
        if db.agents_dirty() or (pending and self._generation != db.agents_generation):
            return live(conn)  # rows with this transaction's changes in them: never cached
        if self._generation != db.agents_generation:
            self._agents, self._generation = live(conn), db.agents_generation
            self._volatile_version = db.volatile_version
        elif self._volatile_version != db.volatile_version:
            # Only after a commit that changed some agent's liveness, activity or last channel (a
            # liveness write is at most once a second per agent), not on every post.
            volatile = db.agents_volatile
            self._agents = [with_volatile(a, volatile) for a in self._agents]
            self._volatile_version = db.volatile_version
        if pending:  # this transaction's own liveness writes, not committed yet
            return [with_volatile(a, pending) for a in self._agents]
        return list(self._agents)  # the caller's own list: the cached one never changes under it


def by_name(conn: sqlite3.Connection, name: str) -> Agent | None:
    row = conn.execute("SELECT * FROM agents WHERE name = ? AND retired = 0", (name,)).fetchone()
    return None if row is None else row_to_agent(row)


def by_id(conn: sqlite3.Connection, agent_id: int) -> Agent:
    row = conn.execute("SELECT * FROM agents WHERE id = ?", (agent_id,)).fetchone()
    if row is None:
        raise NotFound(f"no agent with id {agent_id}")
    return row_to_agent(row)


def by_instance(conn: sqlite3.Connection, base: str, instance_id: str) -> Agent | None:
    row = conn.execute(
        "SELECT * FROM agents WHERE base = ? AND instance_id = ? AND retired = 0", (base, instance_id)
    ).fetchone()
    return None if row is None else row_to_agent(row)


def by_token_hash(conn: sqlite3.Connection, token_hash: str) -> Agent | None:
    row = conn.execute("SELECT * FROM agents WHERE token_hash = ? AND retired = 0", (token_hash,)).fetchone()
    return None if row is None else row_to_agent(row)


def insert(
    conn: sqlite3.Connection,
    *,
    name: str,
    base: str,
    instance_id: str,
    slot: int,
    label: str,
    color: str,
    token_hash: str,
    reclaim_hash: str | None = None,
) -> Agent:
    now = time.time()
    cur = conn.execute(
        "INSERT INTO agents(name, base, instance_id, slot, label, color, token_hash, reclaim_hash,"
        " last_seen, created_at) VALUES (?,?,?,?,?,?,?,?,?,?)",
        (name, base, instance_id, slot, label, color, token_hash, reclaim_hash, now, now),
    )
    assert cur.lastrowid is not None
    return by_id(conn, cur.lastrowid)


def reclaim(
    conn: sqlite3.Connection,
    agent_id: int,
    token_hash: str,
    label: str | None,
    reclaim_hash: str | None = None,
) -> Agent:
    """Give an identity a fresh token and bring it back online, keeping name, cursors and role.

    A stored reclaim proof is never replaced (whoever reclaims an offline identity must not lock
    its owner out); an identity without one takes the given ``reclaim_hash`` as its proof.
    """
    conn.execute(
        "UPDATE agents SET token_hash = ?, left_at = NULL, last_seen = ?, activity = '',"
        " label = coalesce(?, label), reclaim_hash = coalesce(reclaim_hash, ?) WHERE id = ?",
        (token_hash, time.time(), label, reclaim_hash, agent_id),
    )
    return by_id(conn, agent_id)


def _credentials(conn: sqlite3.Connection, agent_id: int) -> tuple[bool, str | None]:
    """Whether the identity holds a usable token, and its stored reclaim-secret hash."""
    row = conn.execute("SELECT token_hash, reclaim_hash FROM agents WHERE id = ?", (agent_id,)).fetchone()
    return row["token_hash"] is not None, row["reclaim_hash"]


def _check_reclaim(
    conn: sqlite3.Connection, mine: Agent, reclaim_hash: str | None, now: float, crash_timeout: float
) -> None:
    """Refuse to hand a live identity to a caller that only knows its ``instance_id``.

    With the right reclaim secret the caller is that instance (a restarted wrapper): always allowed.
    Without it the name is free only when no live session can be holding it: the identity is
    offline (crash timeout, deliberate leave), or its token was revoked and it never set a secret
    (the protocol's rotation path for wrappers that keep no secret).
    """
    token_held, stored = _credentials(conn, mine.id)
    if stored is not None and reclaim_hash is not None and hmac.compare_digest(stored, reclaim_hash):
        return
    if not mine.is_online(now, crash_timeout):
        return
    if not token_held and stored is None:
        return
    wait = max(1, math.ceil(crash_timeout - (now - mine.last_seen)))
    raise NameHeld(
        f"{mine.name!r} is in use by a live session of this instance. Send the reclaim_secret it"
        f" registered with to take it back, or retry in {wait} s (once it has been silent for the"
        f" {crash_timeout:g} s crash timeout)."
    )


def register(
    conn: sqlite3.Connection,
    *,
    base: str,
    instance_id: str,
    label: str | None,
    token_hash: str,
    reclaim_hash: str | None,
    crash_timeout: float,
    color: Callable[[int], str],
    override_color: bool = False,
) -> Registration:
    """Reclaim this instance's identity, or take the lowest free slot (see docs/protocol.md).

    A slot whose name a person holds is skipped: ``@maya`` must never wake an agent. ``color(slot)``
    is a new identity's colour; with ``override_color`` (the config file sets it) it also replaces
    the colour of a reclaimed or taken-over identity, unless a person chose that one.
    """
    now = time.time()
    mine = by_instance(conn, base, instance_id)
    if mine is not None:
        _check_reclaim(conn, mine, reclaim_hash, now, crash_timeout)
        back = reclaim(conn, mine.id, token_hash, label, reclaim_hash)
        return Registration(_recolor(conn, back, color(back.slot), override_color), is_new=False)
    slot = 1
    previous: Agent | None = None
    while True:
        name = base if slot == 1 else f"{base}-{slot}"
        held = persons.holder_of(conn, name)
        if held is not None and held.kind == "person":
            slot += 1
            continue
        holder = by_name(conn, name)
        if holder is None:
            break
        if not holder.is_online(now, crash_timeout):
            retire(conn, holder.id)
            previous = holder
            break
        slot += 1
    default_label = base.capitalize() if slot == 1 else f"{base.capitalize()} {slot}"
    new = insert(
        conn,
        name=name,
        base=base,
        instance_id=instance_id,
        slot=slot,
        label=label or default_label,
        color=color(slot),
        token_hash=token_hash,
        reclaim_hash=reclaim_hash,
    )
    if previous is None:
        from backchannel.store.archive import take_pending_role  # an imported room's roles (issue 12)

        take_pending_role(conn, new.id, name)
        return Registration(by_id(conn, new.id), is_new=True)
    took = carry_over(conn, previous, new.id)
    taken = _recolor(conn, by_id(conn, new.id), color(slot), override_color)
    return Registration(taken, is_new=True, took_over=took)


def _recolor(conn: sqlite3.Connection, agent: Agent, color: str, override: bool) -> Agent:
    if not override or agent.color == color:
        return agent
    chosen = conn.execute("SELECT color_set FROM agents WHERE id = ?", (agent.id,)).fetchone()[0]
    if chosen:  # a person picked this colour in the UI: it stays
        return agent
    conn.execute("UPDATE agents SET color = ? WHERE id = ?", (color, agent.id))
    return by_id(conn, agent.id)


def carry_over(conn: sqlite3.Connection, previous: Agent, new_id: int) -> TakeOver:
    """Hand what the room gave a name to the next holder of that name, so nothing is lost silently.

    Mentions were written to the name, a role was given to it and read positions say where it is
    in each channel: the new holder answers as that name, so it gets all three (and the colour and
    hat people chose for it). The previous identity keeps its own messages.
    """
    moved = conn.execute(
        "UPDATE triggers SET agent_id = ?,"
        " state = CASE WHEN state = 'waiting' THEN 'queued' ELSE state END,"
        " detail = CASE WHEN state = 'waiting' THEN '' ELSE detail END"
        f" WHERE agent_id = ? AND state IN {PENDING_STATES}",
        (new_id, previous.id),
    ).rowcount
    channels = conn.execute(
        "INSERT OR REPLACE INTO cursors(agent_id, channel_id, last_id)"
        " SELECT ?, channel_id, last_id FROM cursors WHERE agent_id = ?",
        (new_id, previous.id),
    ).rowcount
    conn.execute(  # read positions in job threads too
        "INSERT OR REPLACE INTO job_cursors(agent_id, job_id, last_id)"
        " SELECT ?, job_id, last_id FROM job_cursors WHERE agent_id = ?",
        (new_id, previous.id),
    )
    conn.execute(
        "UPDATE agents SET role = ?, hat = ?, color = ?, last_channel = ? WHERE id = ?",
        (previous.role, previous.hat, previous.color, previous.last_channel, new_id),
    )
    conn.execute(  # a colour a person chose stays chosen
        "UPDATE agents SET color_set = (SELECT color_set FROM agents WHERE id = ?) WHERE id = ?",
        (previous.id, new_id),
    )
    return TakeOver(previous_id=previous.id, mentions=moved, channels=channels, role=previous.role)


def retire(conn: sqlite3.Connection, agent_id: int) -> None:
    conn.execute("UPDATE agents SET retired = 1, token_hash = NULL WHERE id = ?", (agent_id,))


def revoke_token(conn: sqlite3.Connection, agent_id: int) -> None:
    conn.execute("UPDATE agents SET token_hash = NULL WHERE id = ?", (agent_id,))


def mark_left(conn: sqlite3.Connection, agent_id: int) -> None:
    conn.execute("UPDATE agents SET left_at = ?, token_hash = NULL WHERE id = ?", (time.time(), agent_id))


def touch(conn: sqlite3.Connection, agent_id: int, when: float, activity: str | None) -> None:
    conn.execute(
        "UPDATE agents SET last_seen = max(last_seen, ?), activity = coalesce(?, activity) WHERE id = ?",
        (when, activity, agent_id),
    )


def set_last_channel(conn: sqlite3.Connection, agent_id: int, channel: str) -> None:
    """Remember the channel an agent read last; no write at all when it is the same one again."""
    conn.execute(
        "UPDATE agents SET last_channel = ? WHERE id = ? AND last_channel IS NOT ?",
        (channel, agent_id, channel),
    )


def update(conn: sqlite3.Connection, agent_id: int, **values: str) -> Agent:
    """Set plain attributes; a new name goes through ``rename`` (it rewrites history and logs it)."""
    allowed = {"label", "last_channel", "role", "hat", "color"}
    for key, value in values.items():
        if key not in allowed:
            raise ValueError(key)
        conn.execute(f"UPDATE agents SET {key} = ? WHERE id = ?", (value, agent_id))
    return by_id(conn, agent_id)


def rename(conn: sqlite3.Connection, agent_id: int, new_name: str) -> tuple[Agent, str]:
    """Give an identity a new name; returns it and the old name (``renames.follow`` carries what
    else names it).

    History follows the identity, not the name: every message it wrote, the event log live views
    resume from and the wake-ups it caused show the new name from now on.
    """
    old = by_id(conn, agent_id)
    holder = persons.holder_of(conn, new_name)
    if holder is not None and holder.kind == "person":
        raise Conflict(f"the name {new_name!r} is taken: a person's name in this room; pick another")
    if holder is not None and holder.id != agent_id:
        raise Conflict(f"the name {new_name!r} is taken by another agent; pick another")
    conn.execute("UPDATE agents SET name = ? WHERE id = ?", (new_name, agent_id))
    messages.rename_sender(conn, "agent_id", agent_id, new_name)
    return by_id(conn, agent_id), old.name


def expire_tokens(conn: sqlite3.Connection, seen_before: float) -> None:
    conn.execute(
        "UPDATE agents SET token_hash = NULL WHERE token_hash IS NOT NULL AND last_seen < ?", (seen_before,)
    )
