"""Archive SQL: the rows an export reads and the rows an import writes (issue 12).

Every record carries a stable uid so importing an archive twice creates nothing the second time.
Jobs, rules and schedules have a uid column; a message's ``uid`` column is NULL for a message made
here (its uid is then ``<room uid>:m<id>``, derived, so old rooms need no backfill) and holds the
origin uid for an imported one. Export functions read inside the caller's read transaction (one
snapshot); import functions run inside the caller's single write transaction.
"""

from __future__ import annotations

import json
import sqlite3
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from typing import Any, cast

from backchannel.store import channels, events
from backchannel.store.rules import MAX_ACTIVE
from backchannel.store.session_templates import MAX_CUSTOM

ROOM_UID_KEY = "archive.room_uid"
PENDING_ROLES_KEY = "archive.pending_roles"  # {agent name: role} from an import, given at first join
SECTIONS = ("messages", "jobs", "rules", "summaries", "schedules", "templates")
# Metadata naming this room's agents: meaningless in another room, so never exported.
_LOCAL_METADATA = ("proposer_id",)

_MESSAGE_SELECT = (
    "SELECT m.id, m.uid, m.sender, m.kind, m.type, m.text, m.reply_to, m.attachments, m.metadata,"
    " m.created_at, m.edited_at, m.deleted, c.name AS channel_name,"
    " r.uid AS reply_uid, p.pinned_by, p.done AS pin_done, p.pinned_at,"
    " j.uid AS job_uid, ru.uid AS rule_uid"
    " FROM messages m JOIN channels c ON c.id = m.channel_id"
    " LEFT JOIN messages r ON r.id = m.reply_to"
    " LEFT JOIN pins p ON p.message_id = m.id"
    " LEFT JOIN jobs j ON m.type IN ('job_created', 'job_proposal')"
    "  AND j.id = json_extract(m.metadata, '$.job_id')"
    " LEFT JOIN rules ru ON m.type = 'rule_proposal' AND ru.id = json_extract(m.metadata, '$.rule_id')"
)


def room_uid(conn: sqlite3.Connection) -> str:
    """This room's uid (made by the migration; made here if a hand-edited table lost it)."""
    row = conn.execute("SELECT value FROM settings WHERE key = ?", (ROOM_UID_KEY,)).fetchone()
    if row is not None:
        return str(row[0])
    made = conn.execute("SELECT lower(hex(randomblob(16)))").fetchone()[0]
    if not conn.in_transaction:  # a reader cannot write; its derived uids use the value it will get
        return str(made)
    conn.execute("INSERT INTO settings(key, value) VALUES (?, ?)", (ROOM_UID_KEY, made))
    return str(made)


def message_uid(room: str, stored: str | None, message_id: int) -> str:
    return stored if stored else f"{room}:m{message_id}"


def _message_record(room: str, row: sqlite3.Row) -> dict[str, Any]:
    metadata = cast(dict[str, Any], json.loads(row["metadata"]))
    for key in _LOCAL_METADATA:
        metadata.pop(key, None)
    record: dict[str, Any] = {
        "uid": message_uid(room, row["uid"], row["id"]),
        "id": row["id"],
        "channel": row["channel_name"],
        "sender": row["sender"],
        "kind": row["kind"],
        "type": row["type"],
        "text": row["text"],
        "reply_to": row["reply_to"],
        "reply_to_uid": None
        if row["reply_to"] is None
        else message_uid(room, row["reply_uid"], row["reply_to"]),
        "attachments": json.loads(row["attachments"]),
        "metadata": metadata,
        "created_at": row["created_at"],
        "edited_at": row["edited_at"],
        "deleted": bool(row["deleted"]),
    }
    if row["pinned_at"] is not None:
        record["pin"] = {
            "pinned_by": row["pinned_by"],
            "done": bool(row["pin_done"]),
            "pinned_at": row["pinned_at"],
        }
    if row["job_uid"] is not None:
        record["job_uid"] = row["job_uid"]
    if row["rule_uid"] is not None:
        record["rule_uid"] = row["rule_uid"]
    return record


def iter_messages(conn: sqlite3.Connection, room: str, channel_id: int | None) -> Iterator[dict[str, Any]]:
    """Channel timelines (never job threads), oldest first, one row at a time."""
    where = " WHERE m.job_id IS NULL" + (" AND m.channel_id = ?" if channel_id is not None else "")
    params = (channel_id,) if channel_id is not None else ()
    for row in conn.execute(f"{_MESSAGE_SELECT}{where} ORDER BY m.id", params):
        yield _message_record(room, row)


def _uid_of_message(conn: sqlite3.Connection, room: str, message_id: int | None) -> str | None:
    if message_id is None:
        return None
    row = conn.execute("SELECT uid FROM messages WHERE id = ?", (message_id,)).fetchone()
    return None if row is None else message_uid(room, row["uid"], message_id)


def iter_jobs(conn: sqlite3.Connection, room: str, channel_id: int | None) -> Iterator[dict[str, Any]]:
    """Jobs with their thread messages, in board order."""
    where = " WHERE j.channel_id = ?" if channel_id is not None else ""
    params = (channel_id,) if channel_id is not None else ()
    rows = conn.execute(
        "SELECT j.*, c.name AS channel_name FROM jobs j JOIN channels c ON c.id = j.channel_id"
        f"{where} ORDER BY j.id",
        params,
    ).fetchall()
    for row in rows:
        thread = conn.execute(f"{_MESSAGE_SELECT} WHERE m.job_id = ? ORDER BY m.id", (row["id"],))
        yield {
            "uid": row["uid"],
            "id": row["id"],
            "channel": row["channel_name"],
            "title": row["title"],
            "body": row["body"],
            "status": row["status"],
            "created_by": row["created_by"],
            "assignee": row["assignee"],
            "anchor_message_uid": _uid_of_message(conn, room, row["anchor_msg_id"]),
            "sort_order": row["sort_order"],
            "created_at": row["created_at"],
            "updated_at": row["updated_at"],
            "messages": [_message_record(room, m) for m in thread],
        }


def list_rules(conn: sqlite3.Connection, room: str, channel: str | None) -> list[dict[str, Any]]:
    where = " WHERE channel = ?" if channel is not None else ""
    rows = conn.execute(f"SELECT * FROM rules{where} ORDER BY id", (channel,) if channel is not None else ())
    return [
        {
            "uid": r["uid"],
            "id": r["id"],
            "text": r["text"],
            "reason": r["reason"],
            "status": r["status"],
            "author": r["author"],
            "channel": r["channel"],
            "sort_order": r["sort_order"],
            "message_uid": _uid_of_message(conn, room, r["message_id"]),
            "created_at": r["created_at"],
            "updated_at": r["updated_at"],
        }
        for r in rows.fetchall()
    ]


def list_summaries(conn: sqlite3.Connection, channel_id: int | None) -> list[dict[str, Any]]:
    where = " AND id = ?" if channel_id is not None else ""
    rows = conn.execute(
        f"SELECT name, summary, summary_by, summary_at FROM channels WHERE summary != ''{where} ORDER BY id",
        (channel_id,) if channel_id is not None else (),
    )
    return [
        {"channel": r["name"], "text": r["summary"], "author": r["summary_by"], "updated_at": r["summary_at"]}
        for r in rows
    ]


def list_schedules(conn: sqlite3.Connection, channel_id: int | None) -> list[dict[str, Any]]:
    where = " WHERE s.channel_id = ?" if channel_id is not None else ""
    rows = conn.execute(
        "SELECT s.*, c.name AS channel_name FROM schedules s JOIN channels c ON c.id = s.channel_id"
        f"{where} ORDER BY s.id",
        (channel_id,) if channel_id is not None else (),
    )
    return [
        {
            "uid": r["uid"],
            "channel": r["channel_name"],
            "prompt": r["prompt"],
            "targets": json.loads(r["targets"]),
            "spec": r["spec"],
            "one_shot": bool(r["one_shot"]),
            "active": bool(r["active"]),
            "next_run": r["next_run"],
            "last_run": r["last_run"],
            "run_count": r["run_count"],
            "created_by": r["created_by"],
            "creator_kind": r["creator_kind"],
            "created_at": r["created_at"],
            "updated_at": r["updated_at"],
        }
        for r in rows
    ]


def _template_columns(conn: sqlite3.Connection) -> list[str]:
    """The custom session templates table's columns; [] where it does not exist yet."""
    return [str(r["name"]) for r in conn.execute("PRAGMA table_info(session_templates)")]


def list_templates(conn: sqlite3.Connection) -> list[dict[str, Any]]:
    """Custom session templates, every column as stored (their shape belongs to sessions)."""
    if "uid" not in _template_columns(conn):
        return []
    return [dict(r) for r in conn.execute("SELECT * FROM session_templates ORDER BY rowid")]


# -- import ------------------------------------------------------------------------------------


@dataclass(slots=True)
class Counts:
    created: int = 0
    duplicates: int = 0
    skipped: int = 0

    def public(self) -> dict[str, int]:
        return {"created": self.created, "duplicates": self.duplicates, "skipped": self.skipped}


@dataclass(slots=True)
class Report:
    """What an import did; ``public()`` is the spec's report."""

    sections: dict[str, Counts] = field(default_factory=lambda: {name: Counts() for name in SECTIONS})
    channels_created: list[str] = field(default_factory=list[str])
    channels_remapped: dict[str, str] = field(default_factory=dict[str, str])
    warnings: list[str] = field(default_factory=list[str])
    uploads: int = 0
    room_settings: dict[str, Any] = field(default_factory=dict[str, Any])  # applied after the merge
    event: Any = None  # the ``reset`` event pages reload on (None when nothing was written)

    def warn(self, text: str) -> None:
        if len(self.warnings) < 200:  # a broken archive must not make a megabyte report
            self.warnings.append(text)
        elif len(self.warnings) == 200:
            self.warnings.append("more warnings were left out")

    def public(self) -> dict[str, Any]:
        return {
            "sections": {name: c.public() for name, c in self.sections.items()},
            "channels": {"created": self.channels_created, "remapped": self.channels_remapped},
            "warnings": self.warnings,
        }


class Importer:
    """One import inside one write transaction: records are inserted as they are (times, authors,
    status), never through the routing planner, so nothing here wakes an agent."""

    def __init__(
        self,
        conn: sqlite3.Connection,
        report: Report,
        *,
        max_channels: int,
        max_schedules: int,
        max_templates: int = MAX_CUSTOM,
        channel_ok: Callable[[str], bool],
    ) -> None:
        self.conn = conn
        self.report = report
        self.max_channels = max_channels
        self.max_schedules = max_schedules
        self.max_templates = max_templates
        self.channel_ok = channel_ok  # name -> bool: the room's channel name rule
        self.room = room_uid(conn)
        self.channel_ids: dict[str, int] = {}
        self.message_ids: dict[str, int] = {}  # archive uid -> local id (new or already here)
        self.job_ids: dict[str, int] = {}
        self.rule_ids: dict[str, int] = {}
        # created messages whose reply, card reference or pin is settled once everything is in
        self._pending: list[tuple[int, dict[str, Any], int | None]] = []
        self.wrote = False
        self._bases: dict[tuple[str, str], int] = {}
        # per place (channel id, job id or 0) the import wrote into: its last id before the import,
        # the newest created_at of a channel timeline then, how many created rows are older, the top id
        self._places: dict[tuple[int, int], list[float]] = {}

    def _base(self, table: str, status: str) -> int:
        """Where imported records start in a status group's order: after the room's own (as they
        were before the import), keeping the archive's order among themselves."""
        key = (table, status)
        if key not in self._bases:
            (top,) = self.conn.execute(
                f"SELECT coalesce(max(sort_order), 0) FROM {table} WHERE status = ?", (status,)
            ).fetchone()
            self._bases[key] = int(top)
        return self._bases[key]

    # channels
    def channel_id(self, name: str) -> int:
        if name in self.channel_ids:
            return self.channel_ids[name]
        found = channels.find(self.conn, name)
        if found is None:
            (count,) = self.conn.execute("SELECT count(*) FROM channels").fetchone()
            if self.channel_ok(name) and count < self.max_channels:
                self.conn.execute("INSERT INTO channels(name, created_at) VALUES (?, ?)", (name, time.time()))
                found = channels.get(self.conn, name)
                self.report.channels_created.append(name)
            else:
                why = (
                    "is not a valid channel name"
                    if not self.channel_ok(name)
                    else "would pass the channel limit"
                )
                self.report.channels_remapped[name] = "general"
                self.report.warn(f"channel #{name} {why}: its records go to #general")
                found = channels.ensure(self.conn, "general")
        self.channel_ids[name] = found.id
        return found.id

    # messages
    def existing_message(self, uid: str) -> int | None:
        row = self.conn.execute("SELECT id FROM messages WHERE uid = ?", (uid,)).fetchone()
        if row is not None:
            return int(row[0])
        prefix = f"{self.room}:m"
        if uid.startswith(prefix) and uid[len(prefix) :].isdigit():
            row = self.conn.execute(
                "SELECT id FROM messages WHERE id = ? AND uid IS NULL", (int(uid[len(prefix) :]),)
            ).fetchone()
            if row is not None:
                return int(row[0])
        return None

    def message(
        self, record: dict[str, Any], *, job_id: int | None = None, channel_id: int | None = None
    ) -> None:
        counts = self.report.sections["messages"]
        uid = str(record["uid"])
        found = self.existing_message(uid)
        if found is not None:
            self.message_ids[uid] = found
            counts.duplicates += 1
            return
        if channel_id is None:
            channel_id = self.channel_id(str(record["channel"]))
        cur = self.conn.execute(
            "INSERT INTO messages(channel_id, sender, kind, type, text, attachments, metadata, created_at,"
            " edited_at, deleted, job_id, uid) VALUES (?,?,?,?,?,?,?,?,?,?,?,?)",
            (
                channel_id,
                record["sender"],
                record["kind"],
                record["type"],
                "" if record["deleted"] else record["text"],
                "[]" if record["deleted"] else json.dumps(record["attachments"]),
                "{}" if record["deleted"] else json.dumps(record["metadata"]),
                record["created_at"],
                record["edited_at"],
                int(record["deleted"]),
                job_id,
                uid,
            ),
        )
        new_id = cur.lastrowid
        assert new_id is not None
        self.message_ids[uid] = new_id
        self._note_place(channel_id, job_id or 0, new_id, float(record["created_at"]))
        if not record["deleted"]:
            names = sorted(
                {
                    a["url"].removeprefix("/uploads/")
                    for a in record["attachments"]
                    if str(a.get("url", "")).startswith("/uploads/")
                }
            )
            self.conn.executemany(
                "INSERT OR IGNORE INTO message_uploads(name, message_id) VALUES (?,?)",
                [(n, new_id) for n in names],
            )
        self._pending.append((new_id, record, job_id))
        counts.created += 1
        self.wrote = True

    def _note_place(self, channel_id: int, job_id: int, new_id: int, created_at: float) -> None:
        key = (channel_id, job_id)
        place = self._places.get(key)
        if place is None:
            where = "job_id = ?" if job_id else "channel_id = ? AND job_id IS NULL"
            (last, newest) = self.conn.execute(
                f"SELECT coalesce(max(id), 0), max(created_at) FROM messages WHERE {where} AND id < ?",
                (job_id or channel_id, new_id),
            ).fetchone()
            place = self._places[key] = [
                float(last),
                float("-inf") if newest is None else float(newest),
                0,
                0,
            ]
        if created_at < place[1]:
            place[2] += 1
        place[3] = new_id

    def move_cursors(self) -> None:
        """Agents that had read everything before the import stay caught up: the imported history
        is old, never news. Only cursors at the place's last id move (a cursor behind it would
        skip live unread messages); display order stays by id, which the report says."""
        for (channel_id, job_id), (last, _, older, top) in self._places.items():
            table, column = ("job_cursors", "job_id") if job_id else ("cursors", "channel_id")
            key = job_id or channel_id
            self.conn.execute(
                f"UPDATE {table} SET last_id = ? WHERE {column} = ? AND last_id >= ? AND last_id < ?",
                (int(top), key, int(last), int(top)),
            )
            (behind,) = self.conn.execute(
                f"SELECT count(*) FROM {table} WHERE {column} = ? AND last_id < ?", (key, int(last))
            ).fetchone()
            (name,) = self.conn.execute("SELECT name FROM channels WHERE id = ?", (channel_id,)).fetchone()
            where = f"a job thread in #{name}" if job_id else f"#{name}"
            if behind:
                self.report.warn(
                    f"{behind} agent(s) had unread messages in {where}: they will read the imported"
                    " history after them"
                )
            if older and not job_id:
                self.report.warn(
                    f"{int(older)} imported messages are older than messages already in {where}:"
                    " they appear after them"
                )

    def settle_messages(self) -> None:
        """Replies, card references and pins of the created messages, now that every id is known."""
        for new_id, record, job_id in self._pending:
            reply_uid = record.get("reply_to_uid")
            if isinstance(reply_uid, str) and reply_uid in self.message_ids:
                target = self.conn.execute(
                    "SELECT channel_id, job_id FROM messages WHERE id = ?", (self.message_ids[reply_uid],)
                ).fetchone()
                mine = self.conn.execute("SELECT channel_id FROM messages WHERE id = ?", (new_id,)).fetchone()
                if (
                    target is not None
                    and target["channel_id"] == mine["channel_id"]
                    and target["job_id"] == job_id
                ):
                    self.conn.execute(
                        "UPDATE messages SET reply_to = ? WHERE id = ?", (self.message_ids[reply_uid], new_id)
                    )
            if record["deleted"]:
                continue
            metadata = cast(dict[str, Any], record["metadata"])
            changed = dict(metadata)
            for key, uid_key, ids in (
                ("job_id", "job_uid", self.job_ids),
                ("rule_id", "rule_uid", self.rule_ids),
            ):
                if key not in metadata:
                    continue
                ref = record.get(uid_key)
                if isinstance(ref, str) and ref in ids:
                    changed[key] = ids[ref]
                else:
                    changed.pop(key)  # a card about a record this archive does not carry
            if changed != metadata:
                self.conn.execute(
                    "UPDATE messages SET metadata = ? WHERE id = ?", (json.dumps(changed), new_id)
                )
            pin = record.get("pin")
            if isinstance(pin, dict):
                pin = cast(dict[str, Any], pin)
                self.conn.execute(
                    "INSERT OR IGNORE INTO pins(message_id, pinned_by, done, pinned_at) VALUES (?,?,?,?)",
                    (
                        new_id,
                        str(pin.get("pinned_by", "")),
                        int(bool(pin.get("done"))),
                        pin.get("pinned_at") or record["created_at"],
                    ),
                )
        self._pending.clear()

    # jobs
    def job(self, record: dict[str, Any]) -> None:
        counts = self.report.sections["jobs"]
        uid = str(record["uid"])
        row = self.conn.execute("SELECT id, channel_id FROM jobs WHERE uid = ?", (uid,)).fetchone()
        if row is not None:
            counts.duplicates += 1
            job_id, channel_id = int(row["id"]), int(row["channel_id"])
        else:
            channel_id = self.channel_id(str(record["channel"]))
            status = record["status"]
            base = self._base("jobs", status)
            anchor = record.get("anchor_message_uid")
            cur = self.conn.execute(
                "INSERT INTO jobs(uid, channel_id, title, body, status, created_by, assignee, anchor_msg_id,"
                " sort_order, created_at, updated_at) VALUES (?,?,?,?,?,?,?,?,?,?,?)",
                (
                    uid,
                    channel_id,
                    record["title"],
                    record["body"],
                    status,
                    record["created_by"],
                    record["assignee"],
                    self.message_ids.get(anchor) if isinstance(anchor, str) else None,
                    int(base) + int(record["sort_order"]),
                    record["created_at"],
                    record["updated_at"],
                ),
            )
            assert cur.lastrowid is not None
            job_id = cur.lastrowid
            counts.created += 1
            self.wrote = True
        self.job_ids[uid] = job_id
        for message in record["messages"]:
            self.message(message, job_id=job_id, channel_id=channel_id)

    # rules
    def rule(self, record: dict[str, Any]) -> None:
        counts = self.report.sections["rules"]
        uid = str(record["uid"])
        row = self.conn.execute("SELECT id FROM rules WHERE uid = ?", (uid,)).fetchone()
        if row is not None:
            self.rule_ids[uid] = int(row[0])
            counts.duplicates += 1
            return
        channel = str(record["channel"])
        if channel:
            self.channel_id(channel)
            channel = self.report.channels_remapped.get(channel, channel)
        status = str(record["status"])
        if status == "active":
            (active,) = self.conn.execute("SELECT count(*) FROM rules WHERE status = 'active'").fetchone()
            if active >= MAX_ACTIVE:
                status = "archived"
                self.report.warn(f"{MAX_ACTIVE} rules are already active: rule {uid} was imported archived")
        base = self._base("rules", status)
        card = record.get("message_uid")
        cur = self.conn.execute(
            "INSERT INTO rules(uid, text, reason, status, author, channel, sort_order, message_id,"
            " created_at, updated_at) VALUES (?,?,?,?,?,?,?,?,?,?)",
            (
                uid,
                record["text"],
                record["reason"],
                status,
                record["author"],
                channel,
                int(base) + int(record["sort_order"]),
                self.message_ids.get(card) if isinstance(card, str) else None,
                record["created_at"],
                record["updated_at"],
            ),
        )
        assert cur.lastrowid is not None
        self.rule_ids[uid] = cur.lastrowid
        counts.created += 1
        self.wrote = True
        if status == "active":
            self.conn.execute(
                "INSERT INTO room_state(key, value) VALUES ('rules_version', 1)"
                " ON CONFLICT(key) DO UPDATE SET value = value + 1"
            )

    # summaries
    def summary(self, record: dict[str, Any]) -> None:
        counts = self.report.sections["summaries"]
        name = str(record["channel"])
        channel_id = self.channel_id(name)
        if name in self.report.channels_remapped:
            counts.skipped += 1  # another channel's summary would say the wrong thing
            return
        row = self.conn.execute(
            "SELECT summary, summary_at FROM channels WHERE id = ?", (channel_id,)
        ).fetchone()
        at = record["updated_at"]
        if row["summary_at"] is not None and (at is None or float(row["summary_at"]) >= float(at)):
            counts.duplicates += 1  # the newer summary wins
            return
        self.conn.execute(
            "UPDATE channels SET summary = ?, summary_by = ?, summary_at = ? WHERE id = ?",
            (record["text"], record["author"], at, channel_id),
        )
        counts.created += 1
        self.wrote = True

    # schedules
    def schedule(self, record: dict[str, Any]) -> bool:
        """Import one schedule paused; True when it was created."""
        counts = self.report.sections["schedules"]
        uid = str(record["uid"])
        if self.conn.execute("SELECT 1 FROM schedules WHERE uid = ?", (uid,)).fetchone() is not None:
            counts.duplicates += 1
            return False
        (count,) = self.conn.execute("SELECT count(*) FROM schedules").fetchone()
        if count >= self.max_schedules:
            counts.skipped += 1
            self.report.warn(f"at most {self.max_schedules} schedules: schedule {uid} was left out")
            return False
        channel_id = self.channel_id(str(record["channel"]))
        self.conn.execute(
            "INSERT INTO schedules(uid, channel_id, prompt, targets, spec, one_shot, active, next_run,"
            " last_run, run_count, created_by, creator_kind, created_at, updated_at)"
            " VALUES (?,?,?,?,?,?,0,?,?,?,?,?,?,?)",
            (
                uid,
                channel_id,
                record["prompt"],
                json.dumps(record["targets"]),
                record["spec"],
                int(record["one_shot"]),
                record["next_run"],
                record["last_run"],
                record["run_count"],
                record["created_by"],
                record["creator_kind"],
                record["created_at"],
                record["updated_at"],
            ),
        )
        counts.created += 1
        self.wrote = True
        return bool(record["active"])

    # templates
    def template(self, record: dict[str, Any]) -> None:
        counts = self.report.sections["templates"]
        columns = _template_columns(self.conn)
        if "uid" not in columns:
            counts.skipped += 1
            self.report.warn("this room has no custom session templates yet: a template was left out")
            return
        uid = str(record["uid"])
        if self.conn.execute("SELECT 1 FROM session_templates WHERE uid = ?", (uid,)).fetchone() is not None:
            counts.duplicates += 1
            return
        (custom,) = self.conn.execute("SELECT count(*) FROM session_templates").fetchone()
        if custom >= self.max_templates:
            counts.skipped += 1
            self.report.warn(f"at most {self.max_templates} custom templates: template {uid} was left out")
            return
        values = {
            k: v
            for k, v in record.items()
            if k in columns and (v is None or isinstance(v, str | int | float))
        }
        names = list(values)
        try:
            self.conn.execute("SAVEPOINT template")
            self.conn.execute(
                f"INSERT INTO session_templates({', '.join(names)}) VALUES ({', '.join('?' for _ in names)})",
                [values[n] for n in names],
            )
            self.conn.execute("RELEASE template")
        except sqlite3.IntegrityError as exc:
            self.conn.execute("ROLLBACK TO template")
            self.conn.execute("RELEASE template")
            counts.skipped += 1
            self.report.warn(f"template {uid} was left out: {exc}")
            return
        counts.created += 1
        self.wrote = True

    def finish(self) -> None:
        """Settle references and log one ``reset`` event: every open page reloads the room."""
        self.settle_messages()
        self.move_cursors()
        if self.wrote or self.report.channels_created:
            self.report.event = events.append(self.conn, "reset", {"reason": "import"})


def save_pending_roles(conn: sqlite3.Connection, roles: dict[str, str]) -> None:
    """Imported agents' roles: an agent already here without a role gets its role now; the others
    are kept until an agent of that name first registers (``take_pending_role``)."""
    row = conn.execute("SELECT value FROM settings WHERE key = ?", (PENDING_ROLES_KEY,)).fetchone()
    pending = cast(dict[str, str], json.loads(row[0])) if row is not None else {}
    for name, role in roles.items():
        done = conn.execute("UPDATE agents SET role = ? WHERE name = ? AND role = ''", (role, name)).rowcount
        if not done and conn.execute("SELECT 1 FROM agents WHERE name = ?", (name,)).fetchone() is None:
            pending.setdefault(name, role)
    conn.execute(
        "INSERT INTO settings(key, value) VALUES (?, ?)"
        " ON CONFLICT(key) DO UPDATE SET value = excluded.value",
        (PENDING_ROLES_KEY, json.dumps(pending)),
    )


def take_pending_role(conn: sqlite3.Connection, agent_id: int, name: str) -> None:
    """Give a newly registered agent the role an import kept for its name (once)."""
    row = conn.execute("SELECT value FROM settings WHERE key = ?", (PENDING_ROLES_KEY,)).fetchone()
    if row is None:
        return
    pending = cast(dict[str, str], json.loads(row[0]))
    role = pending.pop(name, None)
    if role is None:
        return
    conn.execute("UPDATE agents SET role = ? WHERE id = ? AND role = ''", (role, agent_id))
    conn.execute("UPDATE settings SET value = ? WHERE key = ?", (json.dumps(pending), PENDING_ROLES_KEY))
