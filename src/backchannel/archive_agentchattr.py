"""agentchattr in (issue 12): its data directory and its export zip become a backchannel archive.

Both are converted record by record into this project's archive format (the same members, uids
and references as ``backchannel export`` writes), then merged by the one import path, so every
safety check and the report are the same. Conversions follow agentchattr's file formats:

- uids: kept; a legacy record without one gets ``fp-`` + the first 16 hex digits of the SHA-256
  of ``sender|text|timestamp|channel|body``, so importing it twice still finds it;
- job statuses ``open``/``done``/``archived`` are backchannel's ``todo``/``active``/``closed``;
  rule status ``pending`` is ``proposed``; proposal cards' statuses likewise;
- ids that reference each other (replies, job anchors, ``job_created`` cards, rule cards, pins in
  ``todos.json``) become uid references, resolved to the new ids on import;
- images are renamed to content-derived names of the kind this server makes (same image, same name);
- message kinds (agentchattr has none): ``system`` for its system lines, ``agent`` for senders it
  knows as agents (``roles.json``, job assignees, names of agent CLIs), else ``human``.
"""

from __future__ import annotations

import datetime as dt
import hashlib
import io
import json
import re
import zipfile
from collections.abc import Callable, Iterable
from pathlib import Path
from typing import Any, cast

from backchannel import uploads
from backchannel.archive import MAX_LOCAL_BYTES, HostileJson, load_json  # it imports us lazily
from backchannel.errors import InvalidInput
from backchannel.schedule_spec import parse as parse_spec

LOG_FILES = ("agentchattr_log.jsonl", "room_log.jsonl")
JOB_STATUS = {"open": "todo", "done": "active", "archived": "closed"}
RULE_STATUS = {"pending": "proposed", "draft": "draft", "active": "active", "archived": "archived"}
CARD_STATUS = {"pending": "proposed", "activated": "active", "drafted": "draft", "dismissed": "dismissed"}
AGENT_BASES = ("claude", "codex", "gemini", "qwen", "kimi", "kilo", "copilot", "cursor", "aider", "opencode")
_SYSTEM_TYPES = {"system", "join", "leave", "session_request"}
MAX_FILE = 50 * 1024 * 1024
SCHEMA_VERSION = 1  # the newest agentchattr export schema this version reads


def fingerprint(sender: Any, text: Any, timestamp: Any, channel: Any, body: Any = "") -> str:
    """agentchattr's uid for a legacy record without one."""
    raw = f"{sender}|{text}|{timestamp}|{channel}|{body}"
    return "fp-" + hashlib.sha256(raw.encode()).hexdigest()[:16]


def _epoch(value: Any) -> float | None:
    if isinstance(value, bool):
        return None
    if isinstance(value, int | float):
        return float(value)
    if isinstance(value, str) and value:
        try:
            parsed = dt.datetime.fromisoformat(value.replace("Z", "+00:00"))
        except ValueError:
            return None
        if parsed.tzinfo is None:
            parsed = parsed.replace(tzinfo=dt.UTC)
        return parsed.timestamp()
    return None


def _dict(value: Any) -> dict[str, Any]:
    return cast(dict[str, Any], value) if isinstance(value, dict) else {}


def _list(value: Any) -> list[Any]:
    return cast(list[Any], value) if isinstance(value, list) else []


class Converter:
    """Turns agentchattr's records into archive records; ``images`` reads an upload by its name."""

    def __init__(
        self,
        read_image: Any,
        agents: Iterable[str] = (),
        human: str = "",
        locate: Callable[[str], Path | None] | None = None,
    ) -> None:
        self.read_image = read_image  # name -> bytes | None
        self.locate = locate  # name -> its file: the image stays on disk, only its name is kept
        self.paths: dict[str, Path] = {}  # new name -> file, when ``locate`` is given
        self.agents = {a.lower() for a in agents}
        self.human = human.lower()
        self.images: dict[str, bytes] = {}  # new name -> bytes
        self.message_uids: dict[int, str] = {}
        self.job_uids: dict[int, str] = {}
        self.rule_uids: dict[int, str] = {}
        self.rule_cards: dict[int, str] = {}  # agentchattr rule id -> its card's uid
        self.warnings: list[str] = []

    def kind(self, sender: str, type_: str) -> str:
        if sender == "system" or type_ in _SYSTEM_TYPES:
            return "system"
        name = sender.lower()
        if name == self.human:
            return "human"
        base = re.sub(r"-\d+$", "", name)
        return "agent" if name in self.agents or base in AGENT_BASES else "human"

    def attachments(self, raw: Any) -> list[dict[str, Any]]:
        kept: list[dict[str, Any]] = []
        for item in _list(raw):
            item = _dict(item)
            url = item.get("url")
            if not isinstance(url, str) or not url.startswith("/uploads/"):
                continue
            old = url.removeprefix("/uploads/")
            data = self.read_image(old) if "/" not in old and ".." not in old else None
            if not data:
                self.warnings.append(f"image {old} is missing: left out")
                continue
            try:
                mime, ext = uploads.sniff(data[:16])
            except InvalidInput:
                self.warnings.append(f"image {old} is not a PNG, JPEG, GIF or WebP image: left out")
                continue
            name = hashlib.sha256(data).hexdigest()[: uploads.NAME_LENGTH] + ext
            size = len(data)
            path = self.locate(old) if self.locate is not None else None
            if path is not None:
                self.paths[name] = path
            else:
                self.images[name] = data
            del data
            label = item.get("name")
            kept.append(
                {
                    "url": f"/uploads/{name}",
                    "name": label[:100] if isinstance(label, str) and label else name,
                    "type": mime,
                    "size": size,
                }
            )
        return kept

    def message(self, raw: dict[str, Any], line: int, todos: dict[str, Any]) -> dict[str, Any]:
        sender = str(raw.get("sender", ""))
        text = raw.get("text", "")
        channel = raw.get("channel") or "general"
        stamp = raw.get("timestamp")
        uid = raw.get("uid") or fingerprint(sender, text, stamp, channel)
        given = raw.get("id")
        mid: int = given if isinstance(given, int) else line  # lines without an id: their line number
        self.message_uids[mid] = uid
        type_ = str(raw.get("type") or "chat")
        metadata = dict(_dict(raw.get("metadata")))
        record: dict[str, Any] = {
            "uid": uid,
            "id": mid,
            "channel": channel,
            "sender": sender,
            "kind": self.kind(sender, type_),
            "type": type_,
            "text": text,
            "reply_to_uid": None,
            "_reply_to": raw.get("reply_to"),
            "attachments": self.attachments(raw.get("attachments")),
            "metadata": metadata,
            "created_at": _epoch(stamp),
            "edited_at": _epoch(raw.get("updated_at")),
            "deleted": bool(raw.get("deleted", False)),
        }
        if type_ in ("job_proposal", "rule_proposal") and isinstance(metadata.get("status"), str):
            metadata["status"] = CARD_STATUS.get(metadata["status"], metadata["status"])
        if type_ == "rule_proposal" and isinstance(metadata.get("rule_id"), int):
            self.rule_cards[metadata["rule_id"]] = uid
        pin = todos.get(str(mid))
        if pin in ("todo", "done"):
            record["pin"] = {"pinned_by": "", "done": pin == "done", "pinned_at": record["created_at"]}
        return record

    def settle(self, records: list[dict[str, Any]]) -> None:
        """Ids that name other records become uids (agentchattr's ids mean nothing here)."""
        for record in records:
            reply = record.pop("_reply_to", None)
            if isinstance(reply, int):
                record["reply_to_uid"] = self.message_uids.get(reply)
            metadata = record["metadata"]
            if record["type"] in ("job_created", "job_proposal") and isinstance(metadata.get("job_id"), int):
                record["job_uid"] = self.job_uids.get(metadata["job_id"])
            if record["type"] == "rule_proposal" and isinstance(metadata.get("rule_id"), int):
                record["rule_uid"] = self.rule_uids.get(metadata["rule_id"])

    def job(self, raw: dict[str, Any]) -> dict[str, Any]:
        channel = raw.get("channel") or "general"
        uid = raw.get("uid") or fingerprint(
            raw.get("created_by"), raw.get("title"), raw.get("created_at"), channel, raw.get("body", "")
        )
        if isinstance(raw.get("id"), int):
            self.job_uids[raw["id"]] = uid
        thread: list[dict[str, Any]] = []
        for n, m in enumerate(_list(raw.get("messages"))):
            m = _dict(m)
            sender = str(m.get("sender", ""))
            resolved = m.get("resolved")
            type_ = "suggestion" if m.get("type") == "suggestion" else str(m.get("type") or "chat")
            thread.append(
                {
                    "uid": m.get("uid")
                    or fingerprint(sender, m.get("text"), m.get("timestamp"), f"{uid}#{n}"),
                    "channel": channel,
                    "sender": sender,
                    "kind": self.kind(sender, type_),
                    "type": type_,
                    "text": m.get("text", ""),
                    "attachments": self.attachments(m.get("attachments")),
                    "metadata": {"resolution": resolved} if resolved in ("accepted", "dismissed") else {},
                    "created_at": _epoch(m.get("timestamp")),
                    "edited_at": _epoch(m.get("updated_at")),
                    "deleted": bool(m.get("deleted", False)),
                }
            )
        anchor = raw.get("anchor_msg_id")
        created = _epoch(raw.get("created_at"))
        return {
            "uid": uid,
            "channel": channel,
            "title": str(raw.get("title", ""))[:120],
            "body": raw.get("body", ""),
            "status": JOB_STATUS.get(str(raw.get("status")), "active"),
            "created_by": raw.get("created_by", ""),
            "assignee": raw.get("assignee") or "",
            "anchor_message_uid": self.message_uids.get(anchor) if isinstance(anchor, int) else None,
            "sort_order": raw.get("sort_order", 0) if isinstance(raw.get("sort_order"), int) else 0,
            "created_at": created,
            "updated_at": _epoch(raw.get("updated_at")) or created,
            "messages": thread,
        }

    def rule(self, raw: dict[str, Any], order: int) -> dict[str, Any]:
        uid = raw.get("uid") or fingerprint(
            raw.get("author"), raw.get("text"), raw.get("created_at"), "", raw.get("reason", "")
        )
        if isinstance(raw.get("id"), int):
            self.rule_uids[raw["id"]] = uid
        created = _epoch(raw.get("created_at"))
        return {
            "uid": uid,
            "text": raw.get("text"),
            "reason": raw.get("reason") or "",
            "status": RULE_STATUS.get(str(raw.get("status")), str(raw.get("status"))),
            "author": raw.get("author") or "",
            "channel": "",  # agentchattr's rules are room-wide
            "sort_order": order,
            "message_uid": self.rule_cards.get(raw["id"]) if isinstance(raw.get("id"), int) else None,
            "created_at": created,
            "updated_at": _epoch(raw.get("archived_at")) or created,
        }

    def schedule(self, raw: dict[str, Any]) -> dict[str, Any]:
        interval = raw.get("interval_seconds")
        daily = raw.get("daily_at")
        spec = ""
        try:
            if isinstance(daily, str) and daily:
                spec = parse_spec(f"daily at {daily}").text
            elif isinstance(interval, int) and not isinstance(interval, bool) and interval > 0:
                if interval % 60:
                    self.warnings.append(
                        f"schedule {raw.get('id')}: every {interval} seconds is rounded to whole minutes"
                    )
                unit = next((u for u, n in (("days", 86_400), ("hours", 3_600)) if interval % n == 0), "")
                count = interval // {"days": 86_400, "hours": 3_600}.get(unit, 60)
                spec = parse_spec(f"every {max(1, count)} {unit or 'minutes'}").text
        except InvalidInput as exc:
            self.warnings.append(f"schedule {raw.get('id')}: {exc.detail}")
        created_by = str(raw.get("created_by", ""))
        given = raw.get("id")
        uid = (
            f"agentchattr-schedule-{given}"
            if isinstance(given, str | int) and not isinstance(given, bool) and str(given)
            else fingerprint(created_by, raw.get("prompt"), raw.get("created_at"), raw.get("channel"), spec)
        )
        return {
            "uid": uid,
            "channel": raw.get("channel") or "general",
            "prompt": raw.get("prompt"),
            "targets": raw.get("targets", []),
            "spec": spec,
            "one_shot": bool(raw.get("one_shot", False)),
            "active": bool(raw.get("active", True)),
            "next_run": _epoch(raw.get("next_run")),
            "last_run": _epoch(raw.get("last_run")),
            "run_count": 0,
            "created_by": created_by,
            "creator_kind": "agent" if self.kind(created_by, "chat") == "agent" else "human",
            "created_at": _epoch(raw.get("created_at")),
            "updated_at": _epoch(raw.get("created_at")),
        }


def _read_json(data: bytes | None, name: str) -> Any:
    return None if data is None else load_json(data, name)  # one reader (and its refusals) for both


def convert(
    files: dict[str, bytes | None],
    read_image: Any,
    *,
    locate: Callable[[str], Path | None] | None = None,
    paths: dict[str, Path] | None = None,
) -> tuple[bytes, list[str]]:
    """agentchattr's files (by name; None = absent) as a backchannel archive, plus warnings. With
    ``locate``, images stay on disk: the archive names them and ``paths`` gets their files."""
    settings = _dict(_read_json(files.get("settings.json"), "settings.json"))
    roles = _dict(_read_json(files.get("roles.json"), "roles.json"))
    jobs_raw = [_dict(j) for j in _list(_read_json(files.get("jobs.json"), "jobs.json"))]
    assignees = {str(j.get("assignee")) for j in jobs_raw if j.get("assignee")}
    conv = Converter(
        read_image, agents=[*roles, *assignees], human=str(settings.get("username", "")), locate=locate
    )
    todos = _dict(_read_json(files.get("todos.json"), "todos.json"))
    log = files.get("messages.jsonl") or b""
    messages: list[dict[str, Any]] = []
    for n, line in enumerate(log.splitlines(), start=1):
        if not line.strip():
            continue
        try:
            raw = _read_json(line, f"log line {n}")
        except HostileJson:
            raise  # NaN, Infinity, hostile nesting: the whole log is refused
        except InvalidInput:
            conv.warnings.append(f"log line {n}: skipped: not JSON")
            continue
        if isinstance(raw, dict):
            messages.append(conv.message(cast(dict[str, Any], raw), n, todos))
    jobs = [conv.job(j) for j in jobs_raw]
    rules_file = _read_json(files.get("rules.json"), "rules.json")
    rules_raw = _list(_dict(rules_file).get("rules")) if isinstance(rules_file, dict) else _list(rules_file)
    rules = [conv.rule(_dict(r), n) for n, r in enumerate(rules_raw, start=1)]
    conv.settle(messages)
    for job in jobs:
        for m in job["messages"]:
            m.pop("_reply_to", None)
            m["reply_to_uid"] = None
    summaries_raw = _read_json(files.get("summaries.json"), "summaries.json")
    if isinstance(summaries_raw, dict):  # the data file: {channel: {...}}
        pairs = [(str(k), _dict(v)) for k, v in cast(dict[str, Any], summaries_raw).items()]
    else:  # the export: a list with a channel field
        pairs = [(str(_dict(v).get("channel")), _dict(v)) for v in _list(summaries_raw)]
    summaries = [
        {
            "channel": ch,
            "text": s.get("text"),
            "author": s.get("author") or "",
            "updated_at": _epoch(s.get("updated_at")),
        }
        for ch, s in pairs
    ]
    schedules = [
        conv.schedule(_dict(s)) for s in _list(_read_json(files.get("schedules.json"), "schedules.json"))
    ]
    seen: dict[str, int] = {}
    for schedule in schedules:  # two id-less copies of one schedule: distinct, and stable
        n = seen[schedule["uid"]] = seen.get(schedule["uid"], 0) + 1
        if n > 1:
            schedule["uid"] = f"{schedule['uid']}-{n}"
    room: dict[str, Any] = {}
    for ours, theirs in (
        ("title", "title"),
        ("loop_guard_hops", "max_agent_hops"),
        ("rules_refresh_every", "rules_refresh_interval"),
        ("custom_roles", "custom_roles"),
    ):
        if theirs in settings:
            room[ours] = settings[theirs]
    role_names = sorted({str(r) for r in roles.values() if isinstance(r, str) and r})
    if role_names:
        room["custom_roles"] = [*_list(room.get("custom_roles")), *role_names]
        conv.warnings.append(
            f"{len(roles)} agent role(s) in roles.json: each agent gets its role back when it first"
            " joins (the names are custom roles too)"
        )
    channels = [c for c in _list(settings.get("channels")) if isinstance(c, str)]
    out = io.BytesIO()
    with zipfile.ZipFile(out, "w", zipfile.ZIP_DEFLATED) as zf:
        manifest: dict[str, Any] = {
            "schema_version": 1,
            "product": "backchannel",
            "converted_from": "agentchattr",
            "counts": {},
        }
        zf.writestr("manifest.json", json.dumps(manifest))
        zf.writestr("messages.jsonl", "".join(json.dumps(m) + "\n" for m in messages))
        for name, value in (
            ("jobs.json", jobs),
            ("rules.json", rules),
            ("summaries.json", summaries),
            ("schedules.json", schedules),
            ("templates.json", []),
            ("settings.json", {"room": room, "channels": channels, "agent_roles": roles}),
        ):
            zf.writestr(name, json.dumps(value))
        for name, data in conv.images.items():
            zf.writestr(f"uploads/{name}", data, compress_type=zipfile.ZIP_STORED)
    if paths is not None:
        paths.update(conv.paths)
    return out.getvalue(), conv.warnings


def with_images(data: bytes, paths: dict[str, Path]) -> bytes:
    """A converted archive with its on-disk images packed in (to send it to a running server)."""
    out = io.BytesIO(data)
    with zipfile.ZipFile(out, "a") as zf:
        for name, path in paths.items():
            zf.write(path, f"uploads/{name}", compress_type=zipfile.ZIP_STORED)
    return out.getvalue()


def _file(path: Path, limit: int = MAX_FILE) -> bytes | None:
    if not path.is_file():
        return None
    if path.stat().st_size > limit:
        raise InvalidInput(f"{path.name} is larger than {limit} bytes")
    return path.read_bytes()


def from_data_dir(
    data_dir: Path, uploads_dir: Path | None = None
) -> tuple[bytes, list[str], dict[str, Path]]:
    """An agentchattr data directory (its uploads dir defaults to ``uploads`` beside or inside it):
    the converted records, warnings, and its images' files (read again, one at a time, on import).
    Local and trusted: its message log may pass the upload limit (``archive.MAX_LOCAL_BYTES``)."""

    if not data_dir.is_dir():
        raise InvalidInput(f"no such directory: {data_dir}")
    log = next((data_dir / n for n in LOG_FILES if (data_dir / n).is_file()), None)
    if log is None and not (data_dir / "settings.json").is_file():
        raise InvalidInput(f"{data_dir} does not look like an agentchattr data dir (no {LOG_FILES[0]})")
    candidates = [uploads_dir] if uploads_dir else [data_dir / "uploads", data_dir.parent / "uploads"]
    folder = next((c for c in candidates if c.is_dir()), None)

    def locate(name: str) -> Path | None:
        path = folder / name if folder is not None else None
        return path if path is not None and path.is_file() else None

    def read_image(name: str) -> bytes | None:
        path = locate(name)
        return _file(path) if path is not None else None

    names = (
        "settings.json",
        "roles.json",
        "jobs.json",
        "todos.json",
        "rules.json",
        "summaries.json",
        "schedules.json",
    )
    files: dict[str, bytes | None] = {n: _file(data_dir / n) for n in names}
    if files["rules.json"] is None:
        files["rules.json"] = _file(data_dir / "decisions.json")  # its legacy name
    if files["jobs.json"] is None:
        files["jobs.json"] = _file(data_dir / "activities.json")
    files["messages.jsonl"] = _file(log, MAX_LOCAL_BYTES) if log is not None else None
    paths: dict[str, Path] = {}
    data, warnings = convert(files, read_image, locate=locate, paths=paths)
    return data, warnings, paths


def from_export(zf: zipfile.ZipFile, read: Any) -> tuple[bytes, list[str]]:
    """agentchattr's export zip (its images are not in it: attachments are left out with a warning)."""
    files = {n: read(zf, n) for n in ("messages.jsonl", "jobs.json", "rules.json", "summaries.json")}
    return convert(files, _no_image)


def _no_image(name: str) -> bytes | None:
    return None
