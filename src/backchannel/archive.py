"""Room archives (issue 12): export a room or one channel as a zip, import one back, safely.

Export streams: members are written one record at a time into ``zipfile`` on a worker thread,
whose output goes through a small bounded pipe to the HTTP response (or straight into a file for
the CLI), so memory stays flat however long the history is. Import refuses hostile archives
before writing anything (sizes, member names, JSON types, duplicate uids), then merges every
section in ONE write transaction: an archive is imported whole or not at all. Imported messages
are inserted as records, never through the routing planner, so no agent is woken.
"""

from __future__ import annotations

import asyncio
import io
import json
import math
import os
import queue
import re
import sqlite3
import threading
import time
import uuid
import zipfile
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import IO, Any, cast

from backchannel import __version__, uploads
from backchannel.errors import Conflict, InvalidInput, PayloadTooLarge
from backchannel.models import Event
from backchannel.room_settings import ROLE_MAX, RoomSettings
from backchannel.rules import MAX_REASON, MAX_TEXT
from backchannel.schedule_spec import parse as parse_spec
from backchannel.session_templates import BUILTIN, validate
from backchannel.store import Store, channels
from backchannel.store import archive as sql
from backchannel.store import room_settings as room_rows
from backchannel.text import has_control

SCHEMA_VERSION = 1
MAX_ARCHIVE_BYTES = 50 * 1024 * 1024  # compressed upload, and the sum of uncompressed members
MAX_MEMBERS = 20_000
# A local, trusted source (an agentchattr data dir read by the CLI): its converted records may be
# larger than an upload; its images stay on disk and are read one at a time.
MAX_LOCAL_BYTES = 1024 * 1024 * 1024
JSON_MEMBERS = (
    "manifest.json",
    "jobs.json",
    "rules.json",
    "summaries.json",
    "schedules.json",
    "templates.json",
    "settings.json",
)
_UPLOAD_NAME = re.compile(r"^[0-9a-f]{32}\.(png|jpg|gif|webp)$")  # uploads.save names
_CHANNEL_RE = re.compile(r"^[a-z0-9][a-z0-9_-]{0,31}$")  # the room's rule (room.CHANNEL_RE)
_CHUNK = 64 * 1024
EXPORT_STALL_SECONDS = 60.0  # an export whose reader takes nothing for this long is given up
MAX_EXPORTS = 2  # exports running at once (each holds a read snapshot and a thread)


@dataclass(frozen=True, slots=True)
class Limits:
    """The room's own limits, which imported records must respect too."""

    message_chars: int = 16_000
    job_body: int = 1_000
    schedules: int = 100
    session_templates: int = 50


class HostileJson(InvalidInput):
    """JSON no honest exporter writes (NaN, Infinity, nesting past the parser): the archive is refused."""


class _Constant(ValueError):
    pass


def _constant(name: str) -> Any:
    raise _Constant(f"{name} is not a JSON number")


def load_json(data: bytes | str, name: str) -> Any:
    """The one JSON reader for archive members: a clear 400 for anything that is not plain JSON.

    Raises ``HostileJson`` (a refusal of the whole archive) for NaN/Infinity and for nesting deep
    enough to exhaust the parser, and plain ``InvalidInput`` for a syntax error.
    """
    try:
        return json.loads(data, parse_constant=_constant)
    except RecursionError:
        raise HostileJson(f"{name} is nested too deeply") from None
    except _Constant as exc:
        raise HostileJson(f"{name}: {exc}") from None
    except ValueError as exc:
        raise InvalidInput(f"{name} is not valid JSON: {exc}") from None


# -- export ------------------------------------------------------------------------------------


def _dump(value: Any) -> bytes:
    return json.dumps(value, ensure_ascii=False, separators=(",", ":")).encode()


def write_archive(
    conn: sqlite3.Connection, out: IO[bytes] | Any, *, uploads_dir: Path, channel: str | None = None
) -> dict[str, int]:
    """Write the whole archive into ``out`` (a file, or a pipe without seek) from one read snapshot."""
    conn.execute("BEGIN")
    try:
        return _write(conn, out, uploads_dir, channel)
    finally:
        conn.execute("COMMIT")


def _write(conn: sqlite3.Connection, out: Any, uploads_dir: Path, channel: str | None) -> dict[str, int]:
    room = sql.room_uid(conn)
    channel_id = None if channel is None else channels.get(conn, channel).id
    counts: dict[str, int] = dict.fromkeys(sql.SECTIONS, 0)
    images: set[str] = set()

    def note_images(record: dict[str, Any]) -> None:
        for a in cast(list[dict[str, Any]], record["attachments"]):
            url = a.get("url")
            if isinstance(url, str) and url.startswith("/uploads/"):
                images.add(url.removeprefix("/uploads/"))

    with zipfile.ZipFile(out, "w", compression=zipfile.ZIP_DEFLATED) as zf:
        with zf.open("messages.jsonl", "w", force_zip64=True) as member:
            for record in sql.iter_messages(conn, room, channel_id):
                note_images(record)
                member.write(_dump(record) + b"\n")
                counts["messages"] += 1
        with zf.open("jobs.json", "w", force_zip64=True) as member:
            member.write(b"[")
            for n, job in enumerate(sql.iter_jobs(conn, room, channel_id)):
                for m in job["messages"]:
                    note_images(m)
                member.write((b",\n" if n else b"\n") + _dump(job))
                counts["jobs"] += 1
            member.write(b"\n]\n")
        small = {
            "rules.json": sql.list_rules(conn, room, channel),
            "summaries.json": sql.list_summaries(conn, channel_id),
            "schedules.json": sql.list_schedules(conn, channel_id),
            "templates.json": sql.list_templates(conn),
        }
        for name, records in small.items():
            zf.writestr(name, _dump(records))
            counts[name.removesuffix(".json")] = len(records)
        if channel is None:  # a room moves with its settings and its channels, even empty ones
            names = [str(r[0]) for r in conn.execute("SELECT name FROM channels ORDER BY id")]
            roles = {
                str(r[0]): str(r[1]) for r in conn.execute("SELECT name, role FROM agents WHERE role != ''")
            }
            extra = {"room": room_rows.load(conn), "channels": names, "agent_roles": roles}
            zf.writestr("settings.json", _dump(extra))
        for name in sorted(images):
            path = uploads.resolve(uploads_dir, name) if _UPLOAD_NAME.fullmatch(name) else None
            if path is not None:
                zf.write(path, f"uploads/{name}", compress_type=zipfile.ZIP_STORED)
        manifest = {
            "schema_version": SCHEMA_VERSION,
            "archive_id": uuid.uuid4().hex,
            "created_at": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
            "product": "backchannel",
            "app_version": __version__,
            "room_uid": room,
            "channel": channel,
            "counts": counts,
        }
        zf.writestr("manifest.json", _dump(manifest))
    return counts


class _Pipe:
    """A write-only file for ``zipfile`` on a worker thread; the response reads bounded chunks.

    No ``tell``/``seek``: ``zipfile`` then writes data descriptors and never goes back.
    """

    def __init__(self, stall_seconds: float = EXPORT_STALL_SECONDS) -> None:
        self._queue: queue.Queue[bytes | BaseException | None] = queue.Queue(maxsize=8)
        self._buffer = bytearray()
        self.cancelled = threading.Event()
        self.stall_seconds = stall_seconds

    def write(self, data: bytes) -> int:
        if self.cancelled.is_set():
            raise OSError("the download was cancelled")
        self._buffer += data
        if len(self._buffer) >= _CHUNK:
            self._put(bytes(self._buffer))
            self._buffer.clear()
        return len(data)

    def flush(self) -> None:
        return None

    def _put(self, item: bytes | BaseException | None) -> None:
        """Hand one item to the reader; a reader that takes nothing for ``stall_seconds`` (gone,
        or a response never started) ends the export, so no snapshot or thread is held for ever."""
        deadline = time.monotonic() + self.stall_seconds
        while not self.cancelled.is_set():
            try:
                self._queue.put(item, timeout=min(0.2, self.stall_seconds))
                return
            except queue.Full:
                if time.monotonic() >= deadline:
                    self.cancelled.set()
                    break
        if item is not None and not isinstance(item, BaseException):
            raise OSError("the download was cancelled")

    def finish(self, error: BaseException | None) -> None:
        try:
            if error is None and self._buffer:
                self._put(bytes(self._buffer))
            self._put(error)
            self._put(None)
        except OSError:
            return  # the reader is gone or stalled: nobody is left to tell
        finally:
            self._buffer.clear()

    def get(self) -> bytes | BaseException | None:
        return self._queue.get()


def stream_export(
    store: Store,
    uploads_dir: Path,
    channel: str | None,
    *,
    stall_seconds: float = EXPORT_STALL_SECONDS,
    done: Callable[[], None] | None = None,
) -> Iterator[bytes]:
    """The archive's bytes as they are made (for a streaming response), from a worker thread;
    ``done`` is called when the worker ends, however it ends."""
    pipe = _Pipe(stall_seconds)

    def produce() -> None:
        error: BaseException | None = None
        try:
            store.db.read_sync(lambda c: write_archive(c, pipe, uploads_dir=uploads_dir, channel=channel))
        except BaseException as exc:  # handed to the reader, which fails the response
            error = exc
        finally:
            if done is not None:
                done()
        pipe.finish(None if pipe.cancelled.is_set() else error)

    worker = threading.Thread(target=produce, name="archive-export", daemon=True)
    worker.start()

    def chunks() -> Iterator[bytes]:
        try:
            while True:
                item = pipe.get()
                if item is None:
                    return
                if isinstance(item, BaseException):
                    raise item
                yield item
        finally:
            pipe.cancelled.set()

    return chunks()


async def check_channel(store: Store, channel: str | None) -> None:
    """A missing channel is a 404 before the streaming response has started."""
    if channel is not None:
        await store.channel(channel)


# -- import: reading and validating ----------------------------------------------------------


class _Bad(Exception):
    """One malformed record: skipped with a warning."""


def _str(raw: dict[str, Any], key: str, limit: int, default: str | None = None, *, empty: bool = True) -> str:
    value = raw.get(key, default)
    if not isinstance(value, str) or len(value) > limit or (not empty and not value):
        raise _Bad(f"{key} must be a string of at most {limit} characters")
    return value


def _num(raw: dict[str, Any], key: str, *, optional: bool = False) -> float | None:
    value = raw.get(key)
    if value is None and optional:
        return None
    if isinstance(value, int) and not isinstance(value, bool) and abs(value) > 2**53:
        raise _Bad(f"{key} must be a number a timestamp can be")
    if isinstance(value, bool) or not isinstance(value, int | float):
        raise _Bad(f"{key} must be a number")
    number = float(value)  # an int past a float's range raises OverflowError
    if not math.isfinite(number):
        raise _Bad(f"{key} must be a finite number")
    return number


def _int(raw: dict[str, Any], key: str, default: int = 0) -> int:
    value = raw.get(key, default)
    if isinstance(value, bool) or not isinstance(value, int) or abs(value) > 2**53:
        raise _Bad(f"{key} must be an integer")
    return value


def _bool(raw: dict[str, Any], key: str, default: bool = False) -> bool:
    value = raw.get(key, default)
    if not isinstance(value, bool):
        raise _Bad(f"{key} must be true or false")
    return value


def _opt_str(raw: dict[str, Any], key: str) -> str | None:
    value = raw.get(key)
    if value is None:
        return None
    if not isinstance(value, str) or len(value) > 200:
        raise _Bad(f"{key} must be a string")
    return value


def _attachment(raw: Any) -> dict[str, Any] | None:
    """An image reference of the kind this server makes, rebuilt field by field; else dropped."""
    if not isinstance(raw, dict):
        return None
    a = cast(dict[str, Any], raw)
    url, name, mime, size = a.get("url"), a.get("name"), a.get("type"), a.get("size")
    if not isinstance(url, str) or not url.startswith("/uploads/"):
        return None
    if not _UPLOAD_NAME.fullmatch(url.removeprefix("/uploads/")):
        return None
    return {
        "url": url,
        "name": name[:100] if isinstance(name, str) and name else url.removeprefix("/uploads/"),
        "type": mime if isinstance(mime, str) and mime in uploads.ALLOWED_TYPES else "",
        "size": size if isinstance(size, int) and not isinstance(size, bool) and size >= 0 else 0,
    }


def _pin(raw: dict[str, Any]) -> dict[str, Any]:
    return {
        "pinned_by": _str(raw, "pinned_by", 100, ""),
        "done": _bool(raw, "done"),
        "pinned_at": _num(raw, "pinned_at", optional=True),
    }


def _message(raw: Any, *, thread: bool = False, max_text: int = Limits.message_chars) -> dict[str, Any]:
    if not isinstance(raw, dict):
        raise _Bad("a message must be an object")
    r = cast(dict[str, Any], raw)
    kind = _str(r, "kind", 10, "human")
    if kind not in ("human", "agent", "system"):
        raise _Bad(f"unknown message kind {kind!r}")
    attachments = r.get("attachments", [])
    metadata = r.get("metadata", {})
    if not isinstance(attachments, list) or not isinstance(metadata, dict):
        raise _Bad("attachments must be a list and metadata an object")
    pin = r.get("pin")
    if pin is not None and not isinstance(pin, dict):
        raise _Bad("pin must be an object")
    return {
        "uid": _str(r, "uid", 200, empty=False),
        "channel": "" if thread else _str(r, "channel", 64, empty=False),
        "sender": _str(r, "sender", 100, empty=False),
        "kind": kind,
        "type": _str(r, "type", 40, "chat", empty=False),
        "text": _str(r, "text", max_text, ""),
        "reply_to_uid": _opt_str(r, "reply_to_uid"),
        "attachments": [a for a in map(_attachment, cast(list[Any], attachments)) if a is not None],
        "metadata": metadata,
        "created_at": _num(r, "created_at"),
        "edited_at": _num(r, "edited_at", optional=True),
        "deleted": _bool(r, "deleted"),
        "pin": None if pin is None else _pin(cast(dict[str, Any], pin)),
        "job_uid": _opt_str(r, "job_uid"),
        "rule_uid": _opt_str(r, "rule_uid"),
    }


def _job(raw: Any, *, max_body: int = Limits.job_body) -> dict[str, Any]:
    if not isinstance(raw, dict):
        raise _Bad("a job must be an object")
    r = cast(dict[str, Any], raw)
    status = _str(r, "status", 10, "todo")
    if status not in ("todo", "active", "closed"):
        raise _Bad(f"unknown job status {status!r}")
    thread = r.get("messages", [])
    if not isinstance(thread, list):
        raise _Bad("messages must be a list")
    return {
        "uid": _str(r, "uid", 200, empty=False),
        "channel": _str(r, "channel", 64, empty=False),
        "title": _str(r, "title", 120, empty=False),
        "body": _str(r, "body", max_body, ""),
        "status": status,
        "created_by": _str(r, "created_by", 100, ""),
        "assignee": _str(r, "assignee", 100, ""),
        "anchor_message_uid": _opt_str(r, "anchor_message_uid"),
        "sort_order": _int(r, "sort_order"),
        "created_at": _num(r, "created_at"),
        "updated_at": _num(r, "updated_at"),
        "messages": cast(list[Any], thread),
    }


def _rule(raw: Any) -> dict[str, Any]:
    if not isinstance(raw, dict):
        raise _Bad("a rule must be an object")
    r = cast(dict[str, Any], raw)
    status = _str(r, "status", 10, "proposed")
    if status not in ("proposed", "draft", "active", "archived"):
        raise _Bad(f"unknown rule status {status!r}")
    return {
        "uid": _str(r, "uid", 200, empty=False),
        "text": _str(r, "text", MAX_TEXT, empty=False),
        "reason": _str(r, "reason", MAX_REASON, ""),
        "status": status,
        "author": _str(r, "author", 100, ""),
        "channel": _str(r, "channel", 64, ""),
        "sort_order": _int(r, "sort_order"),
        "message_uid": _opt_str(r, "message_uid"),
        "created_at": _num(r, "created_at"),
        "updated_at": _num(r, "updated_at"),
    }


def _summary(raw: Any) -> dict[str, Any]:
    if not isinstance(raw, dict):
        raise _Bad("a summary must be an object")
    r = cast(dict[str, Any], raw)
    return {
        "channel": _str(r, "channel", 64, empty=False),
        "text": _str(r, "text", 100_000, empty=False),
        "author": _str(r, "author", 100, ""),
        "updated_at": _num(r, "updated_at"),
    }


def _schedule(raw: Any) -> dict[str, Any]:
    if not isinstance(raw, dict):
        raise _Bad("a schedule must be an object")
    r = cast(dict[str, Any], raw)
    targets = r.get("targets", [])
    if not isinstance(targets, list) or not all(isinstance(t, str) for t in cast(list[Any], targets)):
        raise _Bad("targets must be a list of names")
    creator_kind = _str(r, "creator_kind", 10, "human")
    if creator_kind not in ("human", "agent"):
        raise _Bad("creator_kind must be human or agent")
    spec, one_shot = _str(r, "spec", 200, ""), _bool(r, "one_shot")
    if spec:
        try:
            spec = parse_spec(spec).text  # the scheduler parses it again on every run
        except InvalidInput as exc:
            raise _Bad(f"spec: {exc.detail}") from None
    elif not one_shot:
        raise _Bad("a recurring schedule needs a spec")
    return {
        "uid": _str(r, "uid", 200, empty=False),
        "channel": _str(r, "channel", 64, empty=False),
        "prompt": _str(r, "prompt", 1000, empty=False),
        "targets": targets,
        "spec": spec,
        "one_shot": one_shot,
        "active": _bool(r, "active", True),
        "next_run": _num(r, "next_run", optional=True),
        "last_run": _num(r, "last_run", optional=True),
        "run_count": _int(r, "run_count"),
        "created_by": _str(r, "created_by", 100, ""),
        "creator_kind": creator_kind,
        "created_at": _num(r, "created_at"),
        "updated_at": _num(r, "updated_at"),
    }


def _template(raw: Any) -> dict[str, Any]:
    if not isinstance(raw, dict):
        raise _Bad("a template must be an object")
    r = cast(dict[str, Any], raw)
    uid, template_id, body = _str(r, "uid", 200, empty=False), _str(r, "id", 40, empty=False), r.get("body")
    if template_id in BUILTIN:
        raise _Bad(f"template id {template_id!r} is a built-in template here")
    try:
        data = load_json(body, "body") if isinstance(body, str) else None
    except InvalidInput as exc:
        raise _Bad(exc.detail) from None
    if isinstance(data, dict):
        data = {**cast(dict[str, Any], data), "id": template_id}
    template, problems = validate(data)
    if template is None:
        raise _Bad("body: " + "; ".join(problems[:3]))
    public = template.public()
    del public["builtin"]
    created_by = r.get("created_by")
    return {
        "uid": uid,
        "id": template_id,
        "body": json.dumps(public),
        "created_by": created_by if isinstance(created_by, str) and len(created_by) <= 100 else None,
        "created_at": _num(r, "created_at", optional=True) or time.time(),
    }


@dataclass(slots=True)
class Parsed:
    """A validated archive, ready to merge."""

    manifest: dict[str, Any]
    messages: list[dict[str, Any]] = field(default_factory=list[dict[str, Any]])
    jobs: list[dict[str, Any]] = field(default_factory=list[dict[str, Any]])
    rules: list[dict[str, Any]] = field(default_factory=list[dict[str, Any]])
    summaries: list[dict[str, Any]] = field(default_factory=list[dict[str, Any]])
    schedules: list[dict[str, Any]] = field(default_factory=list[dict[str, Any]])
    templates: list[dict[str, Any]] = field(default_factory=list[dict[str, Any]])
    images: dict[str, zipfile.ZipInfo] = field(default_factory=dict[str, zipfile.ZipInfo])
    report: sql.Report = field(default_factory=sql.Report)
    zip: zipfile.ZipFile | None = None
    room: dict[str, Any] = field(default_factory=dict[str, Any])  # room settings to apply where unset
    channels: list[str] = field(default_factory=list[str])  # channels to have, even without records
    files: dict[str, Path] = field(default_factory=dict[str, Path])  # images read from disk, by name
    agent_roles: dict[str, str] = field(default_factory=dict[str, str])  # given at each first join


def _safe_name(name: str) -> bool:
    parts = name.split("/")
    return not (
        name.startswith(("/", "\\"))
        or "\\" in name
        or "\x00" in name
        or any(p in ("..", ".") for p in parts)
        or re.match(r"^[A-Za-z]:", name)
    )


def open_archive(fp: IO[bytes], max_bytes: int = MAX_ARCHIVE_BYTES) -> zipfile.ZipFile:
    """Open an uploaded zip after the checks that need no member read: size, names, totals."""
    fp.seek(0, os.SEEK_END)
    size = fp.tell()
    fp.seek(0)
    if size > max_bytes:
        raise PayloadTooLarge(f"the archive is {size} bytes; the limit is {max_bytes}")
    try:
        zf = zipfile.ZipFile(fp)
    except (zipfile.BadZipFile, OSError, ValueError) as exc:
        raise InvalidInput(f"not a zip archive: {exc}") from None
    infos = zf.infolist()
    if len(infos) > MAX_MEMBERS:
        raise InvalidInput(f"the archive has {len(infos)} members; the limit is {MAX_MEMBERS}")
    for info in infos:
        if not _safe_name(info.filename):
            raise InvalidInput(f"refused a member with an unsafe path: {info.filename!r}")
    total = sum(i.file_size for i in infos)
    if total > max_bytes:
        raise PayloadTooLarge(f"the archive unpacks to {total} bytes; the limit is {max_bytes}")
    return zf


def _read(zf: zipfile.ZipFile, name: str) -> bytes | None:
    try:
        info = zf.getinfo(name)
    except KeyError:
        return None
    try:
        # zipfile never returns more than the declared (checked) size and fails a lying CRC
        with zf.open(info) as member:
            return member.read(info.file_size + 1)
    except (zipfile.BadZipFile, OSError, NotImplementedError, RuntimeError) as exc:
        raise InvalidInput(f"{name}: cannot be read: {exc}") from None


def _json(zf: zipfile.ZipFile, name: str, default: Any) -> Any:
    data = _read(zf, name)
    if data is None:
        return default
    return load_json(data, name)


def _records(
    parsed: Parsed, section: str, raws: Iterable[tuple[str, Any]], check: Callable[[Any], dict[str, Any]]
) -> list[dict[str, Any]]:
    kept: list[dict[str, Any]] = []
    seen: set[str] = set()
    for where, raw in raws:
        try:
            record = check(raw)
        except _Bad as exc:
            parsed.report.sections[section].skipped += 1
            parsed.report.warn(f"{where}: skipped: {exc}")
            continue
        uid = record.get("uid")
        if isinstance(uid, str):
            if uid in seen:
                raise InvalidInput(f"{where}: duplicate uid {uid!r}; the archive is inconsistent")
            seen.add(uid)
        kept.append(record)
    return kept


def _list(zf: zipfile.ZipFile, name: str) -> list[Any]:
    value = _json(zf, name, [])
    if not isinstance(value, list):
        raise InvalidInput(f"{name} must be a JSON list")
    return cast(list[Any], value)


def parse_archive(
    fp: IO[bytes],
    limits: Limits | None = None,
    *,
    max_bytes: int = MAX_ARCHIVE_BYTES,
    files: dict[str, Path] | None = None,
) -> Parsed:
    """Read and validate everything before anything is written. ``files``: images of a local
    source kept on disk (the archive then carries records only), and ``max_bytes`` its bound."""
    limits = limits or Limits()
    zf = open_archive(fp, max_bytes)
    manifest = _json(zf, "manifest.json", None)
    if not isinstance(manifest, dict):
        raise InvalidInput("manifest.json is missing or is not a JSON object")
    manifest = cast(dict[str, Any], manifest)
    product = manifest.get("product")
    version = manifest.get("schema_version")
    if product == "agentchattr":
        from backchannel.archive_agentchattr import SCHEMA_VERSION as THEIRS
        from backchannel.archive_agentchattr import from_export

        if not isinstance(version, int) or isinstance(version, bool) or not 1 <= version <= THEIRS:
            raise InvalidInput(
                f"agentchattr schema_version {version!r} is not one this version reads (1..{THEIRS})"
            )
        converted, warnings = from_export(zf, _read)
        parsed = parse_archive(io.BytesIO(converted), limits)
        for warning in warnings:
            parsed.report.warn(warning)
        return parsed
    if product != "backchannel":
        raise InvalidInput(f"not a backchannel or agentchattr archive (product {product!r})")
    if not isinstance(version, int) or isinstance(version, bool) or version > SCHEMA_VERSION or version < 1:
        raise InvalidInput(f"schema_version {version!r} is not one this version reads (1..{SCHEMA_VERSION})")
    parsed = Parsed(manifest=manifest, zip=zf, files=dict(files or {}))
    data = _read(zf, "messages.jsonl") or b""
    lines: list[tuple[str, Any]] = []
    for n, line in enumerate(data.splitlines(), start=1):
        if not line.strip():
            continue
        try:
            lines.append((f"messages.jsonl line {n}", load_json(line, f"messages.jsonl line {n}")))
        except HostileJson:
            raise
        except InvalidInput:
            parsed.report.sections["messages"].skipped += 1
            parsed.report.warn(f"messages.jsonl line {n}: skipped: not JSON")
    del data
    parsed.messages = _records(
        parsed, "messages", lines, lambda raw: _message(raw, max_text=limits.message_chars)
    )
    del lines
    seen_messages = {m["uid"] for m in parsed.messages}
    parsed.jobs = _records(
        parsed,
        "jobs",
        ((f"jobs.json #{i}", r) for i, r in enumerate(_list(zf, "jobs.json"))),
        lambda raw: _job(raw, max_body=limits.job_body),
    )
    for job in parsed.jobs:
        thread = _records(
            parsed,
            "messages",
            ((f"job {job['uid']} message #{i}", r) for i, r in enumerate(job["messages"])),
            lambda raw: _message(raw, thread=True, max_text=limits.message_chars),
        )
        for m in thread:
            if m["uid"] in seen_messages:
                raise InvalidInput(f"job {job['uid']}: duplicate message uid {m['uid']!r}")
            seen_messages.add(m["uid"])
        job["messages"] = thread
    sections = (
        ("rules", _rule),
        ("summaries", _summary),
        ("schedules", _schedule),
        ("templates", _template),
    )
    for section, check in sections:
        name = f"{section}.json"
        raws = ((f"{name} #{i}", r) for i, r in enumerate(_list(zf, name)))
        setattr(parsed, section, _records(parsed, section, raws, check))
    extra = _json(zf, "settings.json", {})
    if not isinstance(extra, dict):
        raise InvalidInput("settings.json must be a JSON object")
    extra = cast(dict[str, Any], extra)
    room, names = extra.get("room", {}), extra.get("channels", [])
    parsed.room = cast(dict[str, Any], room) if isinstance(room, dict) else {}
    parsed.channels = (
        [n for n in cast(list[Any], names) if isinstance(n, str)] if isinstance(names, list) else []
    )
    parsed.agent_roles = _agent_roles(parsed, extra.get("agent_roles", {}))
    for info in zf.infolist():
        name = info.filename
        if name.startswith("uploads/") and not info.is_dir():
            base = name.removeprefix("uploads/")
            if _UPLOAD_NAME.fullmatch(base):
                parsed.images[base] = info
            else:
                parsed.report.warn(f"{name}: skipped: not an image name this room makes")
        elif name not in (*JSON_MEMBERS, "messages.jsonl") and not info.is_dir():
            parsed.report.warn(f"{name}: ignored: not part of the archive format")
    return parsed


def _agent_roles(parsed: Parsed, raw: Any) -> dict[str, str]:
    """Agents' roles by name, each one line of at most ``ROLE_MAX`` characters; others skipped."""
    roles: dict[str, str] = {}
    for name, role in cast(dict[Any, Any], raw).items() if isinstance(raw, dict) else ():
        text = role.strip() if isinstance(role, str) else ""
        if (
            isinstance(name, str)
            and 0 < len(name) <= 100
            and 0 < len(text) <= ROLE_MAX
            and not has_control(text)
        ):
            roles[name] = text
        else:
            parsed.report.warn(f"settings.json: the role of agent {str(name)[:40]!r} was left out")
    return roles


# -- import: merging ----------------------------------------------------------------------------


def _channel_ok(name: str) -> bool:
    return bool(_CHANNEL_RE.fullmatch(name))


def _unset_settings(conn: sqlite3.Connection, parsed: Parsed) -> dict[str, Any]:
    """The archive's room settings this room has not set itself, each checked on its own."""
    from backchannel import room_settings
    from backchannel.store import room_settings as rows

    stored = rows.load(conn)
    values: dict[str, Any] = {}
    presets = {r.casefold() for r in room_settings.PRESET_ROLES}
    for key, value in parsed.room.items():
        if key in stored:
            continue
        if key == "custom_roles" and isinstance(value, list):  # a preset is no custom role
            value = [
                r for r in cast(list[Any], value) if not (isinstance(r, str) and r.casefold() in presets)
            ]
        try:
            values.update(room_settings.validate({key: value}))
        except InvalidInput as exc:
            parsed.report.warn(f"room setting {key} left out: {exc.detail}")
    return values


def merge(
    conn: sqlite3.Connection, parsed: Parsed, *, max_channels: int, limits: Limits | None = None
) -> sql.Report:
    """Every section in the caller's one write transaction; the order settles references. A record
    the database refuses fails the whole import with a 400 (the caller's transaction rolls back)."""
    try:
        return _merge(conn, parsed, max_channels=max_channels, limits=limits or Limits())
    except (sqlite3.Error, OverflowError, ValueError, TypeError, RecursionError) as exc:
        detail = str(exc)[:200] or type(exc).__name__
        raise InvalidInput(f"the archive has a record this room cannot store: {detail}") from None


def _merge(conn: sqlite3.Connection, parsed: Parsed, *, max_channels: int, limits: Limits) -> sql.Report:
    importer = sql.Importer(
        conn,
        parsed.report,
        max_channels=max_channels,
        max_schedules=limits.schedules,
        max_templates=limits.session_templates,
        channel_ok=_channel_ok,
    )
    for name in parsed.channels:
        importer.channel_id(name)
    parsed.report.room_settings = _unset_settings(conn, parsed)
    for record in parsed.messages:
        importer.message(record)
    for record in parsed.jobs:
        importer.job(record)
    for record in parsed.rules:
        importer.rule(record)
    for record in parsed.summaries:
        importer.summary(record)
    paused = sum(importer.schedule(record) for record in parsed.schedules)
    if paused:
        parsed.report.warn(f"{paused} imported schedule(s) are paused: resume them in the schedules panel")
    for record in parsed.templates:
        importer.template(record)
    if parsed.agent_roles:
        sql.save_pending_roles(conn, parsed.agent_roles)
    importer.finish()
    return parsed.report


def referenced_images(parsed: Parsed) -> set[str]:
    """Upload names the archive's messages (timelines and job threads) point at."""
    names: set[str] = set()
    for m in (*parsed.messages, *(t for j in parsed.jobs for t in j["messages"])):
        if not m["deleted"]:
            names.update(str(a["url"]).removeprefix("/uploads/") for a in m["attachments"])
    return names


def _torn(target: Path, data: bytes) -> bool:
    """An existing file that is a strict prefix of the image: a write cut short, to repair."""
    try:
        size = target.stat().st_size
        if size >= len(data):
            return False
        with target.open("rb") as fh:
            return fh.read(size) == data[:size]
    except OSError:
        return False


def write_image(uploads_dir: Path, name: str, data: bytes) -> bool:
    """Write one image atomically (temp file, fsync, rename): a crash leaves no torn file under its
    name. A file already there is kept unless it is a torn copy of this very image. True if written."""
    target = uploads_dir / name
    if target.exists() and not _torn(target, data):
        return False
    tmp = uploads_dir / f".{name}.{uuid.uuid4().hex}.tmp"
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    try:
        with os.fdopen(fd, "wb") as fh:
            fh.write(data)
            fh.flush()
            os.fsync(fh.fileno())
        os.replace(tmp, target)
    finally:
        tmp.unlink(missing_ok=True)
    return True


def save_images(parsed: Parsed, uploads_dir: Path, max_bytes: int) -> None:
    """Write the archive's images its messages use that the room does not have yet (same
    generated name, same image); images no message references are left out."""
    zf = parsed.zip
    if zf is None:
        return
    uploads_dir.mkdir(parents=True, exist_ok=True)
    wanted = referenced_images(parsed)
    for name in sorted(wanted & ({*parsed.images} | {*parsed.files})):
        if name in parsed.images:
            data = _read(zf, parsed.images[name].filename) or b""
        else:
            try:
                with parsed.files[name].open("rb") as fh:  # one image in memory at a time
                    data = fh.read(max_bytes + 1)
            except OSError as exc:
                parsed.report.warn(f"uploads/{name}: skipped: {exc.strerror}")
                continue
        try:
            if len(data) > max_bytes:
                raise PayloadTooLarge(f"larger than {max_bytes} bytes")
            uploads.sniff(data[:16])
        except (InvalidInput, PayloadTooLarge) as exc:
            parsed.report.warn(f"uploads/{name}: skipped: {exc.detail}")
            continue
        if write_image(uploads_dir, name, data):
            parsed.report.uploads += 1


class Archives:
    """Export and import for one store; one import at a time (a second one is a 409)."""

    def __init__(
        self,
        store: Store,
        uploads_dir: Path,
        max_channels: int,
        max_upload_bytes: int,
        publish: Callable[[Event], None] | None = None,
        room_settings: RoomSettings | None = None,
        limits: Limits | None = None,
        stall_seconds: float = EXPORT_STALL_SECONDS,
    ) -> None:
        self.room_settings = room_settings  # the server's: settings an import brings apply live
        self.store = store
        self.uploads_dir = uploads_dir
        self.max_channels = max_channels
        self.max_upload_bytes = max_upload_bytes
        self.publish = publish
        self.limits = limits or Limits()
        self.stall_seconds = stall_seconds
        self._busy = threading.Lock()  # threads too: the CLI and the server may share a process in tests
        self._exports = threading.BoundedSemaphore(MAX_EXPORTS)

    def export(self, channel: str | None) -> Iterator[bytes]:
        """Start a streamed export (409 when ``MAX_EXPORTS`` are already running)."""
        if not self._exports.acquire(blocking=False):
            raise Conflict(f"{MAX_EXPORTS} exports are already running; try again when one has finished")
        return stream_export(
            self.store,
            self.uploads_dir,
            channel,
            stall_seconds=self.stall_seconds,
            done=self._exports.release,
        )

    async def import_file(self, fp: IO[bytes]) -> dict[str, Any]:
        if not self._busy.acquire(blocking=False):
            raise Conflict("an import is already running; try again when it has finished")
        try:
            parsed = await asyncio.to_thread(parse_archive, fp, self.limits)
            report = await self.store.db.write(
                lambda c: merge(c, parsed, max_channels=self.max_channels, limits=self.limits), alone=True
            )
            await asyncio.to_thread(save_images, parsed, self.uploads_dir, self.max_upload_bytes)
            if report.room_settings and self.room_settings is not None:
                await self.room_settings.update(report.room_settings)
        finally:
            self._busy.release()
        if report.event is not None and self.publish is not None:
            self.publish(report.event)
        return report.public()

    def import_sync(
        self, fp: IO[bytes], *, max_bytes: int = MAX_ARCHIVE_BYTES, files: dict[str, Path] | None = None
    ) -> dict[str, Any]:
        """The CLI's import into a data dir no server has open (``files``: images on disk)."""
        parsed = parse_archive(fp, self.limits, max_bytes=max_bytes, files=files)
        report = self.store.db.write_sync(
            lambda c: merge(c, parsed, max_channels=self.max_channels, limits=self.limits)
        )
        save_images(parsed, self.uploads_dir, self.max_upload_bytes)
        if report.room_settings:
            from backchannel.store import room_settings as rows

            values = report.room_settings
            self.store.db.write_sync(lambda c: (rows.save(c, values), rows.log_change(c, values)))
        return report.public()

    def export_to(self, out: IO[bytes], channel: str | None) -> dict[str, int]:
        """The CLI's export into a file."""
        return self.store.db.read_sync(
            lambda c: write_archive(c, out, uploads_dir=self.uploads_dir, channel=channel)
        )
