"""Rules: rows, their order, the room's rules version, proposal cards, and the delivery decision.

Every function runs inside the caller's transaction and returns what it wrote (``RuleChange``:
events to publish, whether the room's rules version moved) for the service to publish after the
commit. The version (``room_state.rules_version``) moves with every change an agent must hear
about: the active set, an active rule's text or channel, their order, and a person's reminder.
Each wake-up streamed to a wrapper (``deliver``) decides, in its own transaction, whether it
carries the active rules.
"""

from __future__ import annotations

import secrets
import sqlite3
import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any, Literal

from backchannel.errors import Conflict, InvalidInput, NotFound
from backchannel.models import Agent, Event, Message, Rule, RuleStatus, Trigger
from backchannel.store import events, messages, triggers
from backchannel.store.jobs import message_event

MAX_ACTIVE = 10
ACTIVE_FULL = f"{MAX_ACTIVE} rules are active; archive one first"
Decision = Literal["activate", "draft", "dismiss"]

_COLUMNS = "id, uid, text, reason, status, author, channel, sort_order, created_at, updated_at"
_GROUP = "CASE status WHEN 'active' THEN 0 WHEN 'draft' THEN 1 WHEN 'proposed' THEN 2 ELSE 3 END"
_CARD_STATUS: dict[Decision, str] = {"activate": "active", "draft": "draft", "dismiss": "dismissed"}


@dataclass(slots=True)
class RuleChange:
    """What one rules transaction wrote, for the service to publish after the commit."""

    rule: Rule | None = None
    message: Message | None = None
    events: list[Event] = field(default_factory=list[Event])
    version: int | None = None  # the room's new rules version, when this change moved it


@dataclass(frozen=True, slots=True)
class Delivered:
    """A wake-up as it leaves for the wrapper: its SSE data, and whether its agent's record of the
    rules it has seen moved (the roster's fresh/stale marker then changes)."""

    data: dict[str, Any]
    agent_id: int
    seen_changed: bool


def _rule(row: sqlite3.Row) -> Rule:
    return Rule(*tuple(row))


def find(conn: sqlite3.Connection, rule_id: int) -> Rule | None:
    row = conn.execute(f"SELECT {_COLUMNS} FROM rules WHERE id = ?", (rule_id,)).fetchone()
    return None if row is None else _rule(row)


def get(conn: sqlite3.Connection, rule_id: int) -> Rule:
    rule = find(conn, rule_id)
    if rule is None:
        raise NotFound(f"no rule {rule_id}")
    return rule


def list_rules(conn: sqlite3.Connection) -> list[Rule]:
    """Every rule: active, draft, proposed, archived, each group in the order people gave it."""
    sql = f"SELECT {_COLUMNS} FROM rules ORDER BY {_GROUP}, sort_order, id"
    return [_rule(r) for r in conn.execute(sql)]


def active_for(conn: sqlite3.Connection, channel: str) -> list[Rule]:
    """The active rules an agent in ``channel`` follows: room-wide ones and that channel's own."""
    sql = (
        f"SELECT {_COLUMNS} FROM rules WHERE status = 'active' AND channel IN ('', ?) ORDER BY sort_order, id"
    )
    return [_rule(r) for r in conn.execute(sql, (channel,))]


def version(conn: sqlite3.Connection) -> int:
    row = conn.execute("SELECT value FROM room_state WHERE key = 'rules_version'").fetchone()
    return 0 if row is None else int(row[0])


def _bump(conn: sqlite3.Connection, change: RuleChange) -> int:
    conn.execute(
        "INSERT INTO room_state(key, value) VALUES ('rules_version', 1)"
        " ON CONFLICT(key) DO UPDATE SET value = value + 1"
    )
    change.version = version(conn)
    return change.version


def _next_order(conn: sqlite3.Connection, status: str) -> int:
    row = conn.execute("SELECT max(sort_order) FROM rules WHERE status = ?", (status,)).fetchone()
    return int(row[0] or 0) + 1


def _check_room_for_active(conn: sqlite3.Connection) -> None:
    count = int(conn.execute("SELECT count(*) FROM rules WHERE status = 'active'").fetchone()[0])
    if count >= MAX_ACTIVE:
        raise Conflict(ACTIVE_FULL)


def _event(conn: sqlite3.Connection, change: RuleChange, action: str, rule: Rule) -> None:
    change.events.append(events.append(conn, "rule", {"action": action, "rule": rule.public()}))


def _gone(conn: sqlite3.Connection, change: RuleChange, rule: Rule) -> None:
    """A deleted rule leaves the log (its text was in every logged copy, as a job's title is); the
    ``deleted`` event names it by id and status only: a page drops it, the log keeps no text."""
    conn.execute(
        "DELETE FROM events WHERE kind = 'rule' AND json_extract(payload, '$.rule.id') = ?", (rule.id,)
    )
    payload = {"action": "deleted", "rule": {"id": rule.id, "status": rule.status}}
    change.events.append(events.append(conn, "rule", payload))


def _insert(
    conn: sqlite3.Connection, *, text: str, reason: str, status: RuleStatus, author: str, channel: str
) -> Rule:
    now = time.time()
    cur = conn.execute(
        "INSERT INTO rules(uid, text, reason, status, author, channel, sort_order, created_at, updated_at)"
        " VALUES (?,?,?,?,?,?,?,?,?)",
        (secrets.token_hex(16), text, reason, status, author, channel, _next_order(conn, status), now, now),
    )
    assert cur.lastrowid is not None
    return get(conn, cur.lastrowid)


def _check_channel(conn: sqlite3.Connection, channel: str) -> None:
    if channel and conn.execute("SELECT 1 FROM channels WHERE name = ?", (channel,)).fetchone() is None:
        raise NotFound(f"no channel #{channel}")


def create(
    conn: sqlite3.Connection, *, text: str, reason: str, status: RuleStatus, author: str, channel: str
) -> RuleChange:
    """A person's rule, straight to ``draft`` or ``active`` (409 when the active set is full)."""
    _check_channel(conn, channel)
    if status == "active":
        _check_room_for_active(conn)
    change = RuleChange()
    change.rule = _insert(conn, text=text, reason=reason, status=status, author=author, channel=channel)
    _event(conn, change, "created", change.rule)
    if status == "active":
        _bump(conn, change)
    return change


def propose(conn: sqlite3.Connection, *, text: str, reason: str, agent: Agent, channel: str) -> RuleChange:
    """An agent's proposal: a ``proposed`` rule and its ``rule_proposal`` card in ``channel``."""
    ch = conn.execute("SELECT id FROM channels WHERE name = ?", (channel,)).fetchone()
    if ch is None:
        raise NotFound(f"no channel #{channel}")
    change = RuleChange()
    rule = _insert(conn, text=text, reason=reason, status="proposed", author=agent.name, channel="")
    card = messages.insert(
        conn,
        channel_id=int(ch[0]),
        sender=agent.name,
        kind="agent",
        agent_id=agent.id,
        type="rule_proposal",
        text=f"Proposed rule: {text}",
        metadata={"rule_id": rule.id, "text": text, "reason": reason, "status": "proposed"},
    )
    # An agent that had read everything has also "read" its own card (as for its messages).
    cursor = messages.get_cursor(conn, agent.id, int(ch[0]))
    if cursor is not None and not messages.any_between(conn, int(ch[0]), cursor, card.id):
        messages.set_cursor(conn, agent.id, int(ch[0]), card.id)
    conn.execute("UPDATE rules SET message_id = ? WHERE id = ?", (card.id, rule.id))
    change.rule, change.message = rule, card
    change.events.append(events.append(conn, "message", {"message": card.public()}))
    _event(conn, change, "created", rule)
    return change


def _card(conn: sqlite3.Connection, rule_id: int) -> Message | None:
    """The live proposal card of a rule, if it still has one (/clear or a delete may remove it)."""
    row = conn.execute(
        "SELECT m.id FROM rules r JOIN messages m ON m.id = r.message_id"
        " WHERE r.id = ? AND m.type = 'rule_proposal' AND m.deleted = 0",
        (rule_id,),
    ).fetchone()
    return None if row is None else messages.get(conn, int(row[0]))


def _decided_card(conn: sqlite3.Connection, rule_id: int) -> Message | None:
    """The card of a rule that is gone (dismissed: the row went): only to tell a second decision
    (409) from an unknown id (404), so this rare error path may scan the cards."""
    row = conn.execute(
        "SELECT id FROM messages WHERE type = 'rule_proposal' AND deleted = 0"
        " AND json_extract(metadata, '$.rule_id') = ? ORDER BY id LIMIT 1",
        (rule_id,),
    ).fetchone()
    return None if row is None else messages.get(conn, int(row[0]))


def cards_removed(conn: sqlite3.Connection, where: str, params: Sequence[Any]) -> None:
    """Proposal cards removed (a message delete, /clear): their rules forget them. ``where`` is an
    SQL condition on ``message_id``; a rule without a card can still be decided."""
    conn.execute(f"UPDATE rules SET message_id = NULL WHERE message_id IS NOT NULL AND ({where})", params)


def _settle_card(
    conn: sqlite3.Connection, change: RuleChange, rule_id: int, status: str, by: str
) -> Message | None:
    """Record a decision on a still-open card and re-publish it (``message_edited``)."""
    card = _card(conn, rule_id)
    if card is None or card.metadata.get("status") != "proposed":
        return None
    card = messages.set_metadata(conn, card.id, {**card.metadata, "status": status, "decided_by": by})
    change.events.append(message_event(conn, "message_edited", card))
    change.message = card
    return card


def _reword_card(conn: sqlite3.Connection, change: RuleChange, rule: Rule) -> None:
    """A proposal edited before its decision: its open card shows the new wording, so whoever
    activates it from the timeline activates the text they read."""
    card = _card(conn, rule.id)
    if card is None or card.metadata.get("status") != "proposed":
        return
    if (card.metadata.get("text"), card.metadata.get("reason")) == (rule.text, rule.reason):
        return
    conn.execute("UPDATE messages SET text = ? WHERE id = ?", (f"Proposed rule: {rule.text}", card.id))
    card = messages.set_metadata(conn, card.id, {**card.metadata, "text": rule.text, "reason": rule.reason})
    change.events.append(message_event(conn, "message_edited", card))
    change.message = card


def _touches_active(old: Rule, new: Rule) -> bool:
    """Would an agent's copy of the active rules be out of date after this edit?"""
    if "active" not in (old.status, new.status):
        return False
    return (old.status, old.text, old.channel) != (new.status, new.text, new.channel)


def update(
    conn: sqlite3.Connection,
    rule_id: int,
    *,
    text: str | None,
    reason: str | None,
    status: RuleStatus | None,
    channel: str | None,
    by: str,
) -> RuleChange:
    """Edit a rule; a new status puts it at the end of that group. Settling a proposal this way
    settles its card too."""
    old = get(conn, rule_id)
    if channel is not None:
        _check_channel(conn, channel)
    if status == "active" and old.status != "active":
        _check_room_for_active(conn)
    new_status = status or old.status
    order = old.sort_order if new_status == old.status else _next_order(conn, new_status)
    conn.execute(
        "UPDATE rules SET text = ?, reason = ?, status = ?, channel = ?, sort_order = ?, updated_at = ?"
        " WHERE id = ?",
        (
            old.text if text is None else text,
            old.reason if reason is None else reason,
            new_status,
            old.channel if channel is None else channel,
            order,
            time.time(),
            rule_id,
        ),
    )
    rule = get(conn, rule_id)
    change = RuleChange(rule=rule)
    if old.status == "proposed" and new_status != "proposed":
        _settle_card(conn, change, rule_id, new_status if new_status != "archived" else "dismissed", by)
    elif new_status == "proposed":
        _reword_card(conn, change, rule)
    _event(conn, change, "updated", rule)
    if _touches_active(old, rule):
        _bump(conn, change)
    return change


def delete(conn: sqlite3.Connection, rule_id: int, by: str) -> RuleChange:
    """Delete a rule for good; an undecided proposal card says dismissed."""
    rule = get(conn, rule_id)
    change = RuleChange(rule=rule)
    if rule.status == "proposed":  # before the row goes: the row knows its card
        _settle_card(conn, change, rule_id, "dismissed", by)
    conn.execute("DELETE FROM rules WHERE id = ?", (rule_id,))
    _gone(conn, change, rule)
    if rule.status == "active":
        _bump(conn, change)
    return change


def delete_channel_rules(conn: sqlite3.Connection, channel: str, by: str) -> RuleChange:
    """A deleted channel takes its own rules with it (each as ``delete`` does: logged copies purged,
    the version moved when one was active), so a new channel of that name starts without them."""
    done = RuleChange()
    for (rule_id,) in conn.execute(
        "SELECT id FROM rules WHERE channel = ? ORDER BY id", (channel,)
    ).fetchall():
        change = delete(conn, int(rule_id), by)
        done.events += change.events
        done.version = change.version if change.version is not None else done.version
    return done


def channel_renamed(conn: sqlite3.Connection, new: str) -> list[Event]:
    """After ``channels.rename`` moved them: an ``updated`` event for each rule of the channel, so
    every open rules panel shows the new name."""
    change = RuleChange()
    for rule in [_rule(r) for r in conn.execute(f"SELECT {_COLUMNS} FROM rules WHERE channel = ?", (new,))]:
        _event(conn, change, "updated", rule)
    return change.events


def author_renamed(conn: sqlite3.Connection, old: str, new: str) -> list[Event]:
    """The rules an agent proposed or a person wrote name them by their new name (an ``updated``
    event each)."""
    conn.execute("UPDATE rules SET author = ? WHERE author = ?", (new, old))
    change = RuleChange()
    for rule in [_rule(r) for r in conn.execute(f"SELECT {_COLUMNS} FROM rules WHERE author = ?", (new,))]:
        _event(conn, change, "updated", rule)
    return change.events


def reorder(conn: sqlite3.Connection, ordered_ids: Sequence[int]) -> RuleChange:
    """The listed rules (all of one status) first, in that order; the rest of the group keep
    their order after them."""
    if not ordered_ids:
        raise InvalidInput("ordered_ids is empty: list the ids of one status group in their new order")
    if len(set(ordered_ids)) != len(ordered_ids):
        raise InvalidInput("ordered_ids lists a rule twice")
    listed = [get(conn, rule_id) for rule_id in ordered_ids]
    statuses = {r.status for r in listed}
    if len(statuses) != 1:
        raise InvalidInput(f"ordered_ids must all have one status; they have {', '.join(sorted(statuses))}")
    (status,) = statuses
    group = [
        int(r[0])
        for r in conn.execute("SELECT id FROM rules WHERE status = ? ORDER BY sort_order, id", (status,))
    ]
    order = [*ordered_ids, *(i for i in group if i not in set(ordered_ids))]
    change = RuleChange()
    conn.executemany("UPDATE rules SET sort_order = ? WHERE id = ?", [(n, i) for n, i in enumerate(order, 1)])
    change.events.append(
        events.append(conn, "rule", {"action": "reordered", "status": status, "ordered_ids": order})
    )
    if status == "active" and order != group:
        _bump(conn, change)
    return change


def remind(conn: sqlite3.Connection) -> RuleChange:
    """Every agent gets the active rules again on its next wake-up."""
    change = RuleChange()
    number = _bump(conn, change)
    change.events.append(events.append(conn, "rule", {"action": "remind", "version": number}))
    return change


def decide(conn: sqlite3.Connection, rule_id: int, decision: Decision, by: str) -> RuleChange:
    """Settle a proposal once: activate (409 when 10 are active), keep as a draft, or dismiss
    (the rule goes). A second decision is a 409."""
    rule = find(conn, rule_id)
    card = _card(conn, rule_id) if rule is not None else _decided_card(conn, rule_id)
    if card is not None and card.metadata.get("status") != "proposed":
        who = card.metadata.get("decided_by")
        raise Conflict(
            f"rule proposal {rule_id} was already decided: {card.metadata.get('status')}"
            + (f" by {who}" if who else "")
        )
    if rule is None:
        raise NotFound(f"no rule {rule_id}") if card is None else Conflict(f"rule {rule_id} was deleted")
    if rule.status != "proposed":
        raise Conflict(f"rule {rule_id} is not waiting for a decision; it is {rule.status}")
    change = RuleChange()
    if decision == "dismiss":
        change.rule = rule
        _settle_card(conn, change, rule_id, "dismissed", by)  # before the row goes: it knows its card
        conn.execute("DELETE FROM rules WHERE id = ?", (rule_id,))
        _gone(conn, change, rule)
        return change
    status: RuleStatus = "active" if decision == "activate" else "draft"
    if status == "active":
        _check_room_for_active(conn)
    conn.execute(
        "UPDATE rules SET status = ?, sort_order = ?, updated_at = ? WHERE id = ?",
        (status, _next_order(conn, status), time.time(), rule_id),
    )
    change.rule = get(conn, rule_id)
    _settle_card(conn, change, rule_id, _CARD_STATUS[decision], by)
    _event(conn, change, "updated", change.rule)
    if status == "active":
        _bump(conn, change)
    return change


def rules_line(texts: Sequence[str]) -> str:
    """The active rules as one line appended to a wake-up prompt."""
    if not texts:
        return " Room rules: none are active now."
    return " Room rules (follow them): " + "; ".join(f"{n}) {t}" for n, t in enumerate(texts, 1)) + "."


def deliver(conn: sqlite3.Connection, trigger_id: int, refresh_every: int) -> Delivered:
    """Mark a wake-up sent and decide whether it carries the active rules: a replay of one that
    carried them does again; otherwise it does when the agent has not seen the current version
    (then also to say none are active any more), or this is its ``refresh_every``-th wake-up since
    the last that carried them (0: never) and rules are active for its channel (a room without
    rules is not told so every few wake-ups)."""
    row = conn.execute(
        "SELECT t.sent_at, t.rules_version, a.rules_seen, a.wakes_since_rules"
        " FROM triggers t JOIN agents a ON a.id = t.agent_id WHERE t.id = ?",
        (trigger_id,),
    ).fetchone()
    if row is None:
        raise NotFound(f"no trigger {trigger_id}")
    trigger: Trigger = triggers.get(conn, trigger_id)
    first_send = row["sent_at"] is None
    triggers.mark_sent(conn, trigger_id)
    current = version(conn)
    seen, wakes = int(row["rules_seen"]), int(row["wakes_since_rules"])
    texts = [r.text for r in active_for(conn, trigger.channel)]
    carry = (
        int(row["rules_version"]) > 0
        or seen < current
        or (first_send and refresh_every > 0 and wakes + 1 >= refresh_every and bool(texts))
    )
    data = trigger.event_data()
    if carry:
        line = rules_line(texts)
        # ``rules`` separately too: a wrapper typing one prompt for several wake-ups keeps them.
        data["prompt"], data["rules"] = trigger.prompt + line, line
        conn.execute("UPDATE triggers SET rules_version = ? WHERE id = ?", (current, trigger_id))
        conn.execute(
            "UPDATE agents SET rules_seen = ?, wakes_since_rules = 0 WHERE id = ?",
            (current, trigger.agent_id),
        )
    elif first_send:
        conn.execute(
            "UPDATE agents SET wakes_since_rules = wakes_since_rules + 1 WHERE id = ?", (trigger.agent_id,)
        )
    return Delivered(data=data, agent_id=trigger.agent_id, seen_changed=carry and seen != current)


def undeliver(conn: sqlite3.Connection, trigger_id: int) -> int | None:
    """A wake-up that carried the rules was reported failed, so they never reached the agent: its
    record goes back below that version (unless a later wake-up carried a newer one), the next
    wake-up carries them again and the roster says stale meanwhile. Returns the agent's id when
    its record moved."""
    row = conn.execute("SELECT agent_id, rules_version FROM triggers WHERE id = ?", (trigger_id,)).fetchone()
    if row is None or int(row["rules_version"]) <= 0:
        return None
    carried, agent_id = int(row["rules_version"]), int(row["agent_id"])
    moved = conn.execute(
        "UPDATE agents SET rules_seen = ? WHERE id = ? AND rules_seen = ?", (carried - 1, agent_id, carried)
    ).rowcount
    return agent_id if moved else None
