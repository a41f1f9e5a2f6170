"""What agents see of images: local file paths in reads, and the stored images themselves.

An attachment is stored as ``/uploads/<generated name>``. A local agent (a loopback-only server,
so every agent runs on this machine) also gets ``file_path``, the absolute path it can open itself,
as agentchattr gives; any agent can fetch the bytes with its own token (``GET /api/uploads/<name>``
or the ``chat_image`` tool), so remote agents and vision models see them too.
"""

from __future__ import annotations

import sqlite3
from pathlib import Path
from typing import Any

from backchannel import uploads
from backchannel.models import Message
from backchannel.store import channels, jobs, messages

IMAGE_SCAN = 50  # chat_image without an id looks this far back for the newest image


def upload_name(attachment: dict[str, Any]) -> str | None:
    """The generated file name an attachment points at, or None for anything else."""
    url = attachment.get("url")
    if isinstance(url, str) and url.startswith("/uploads/"):
        return url.removeprefix("/uploads/")
    return None


def with_file_paths(entry: dict[str, Any], uploads_dir: Path | None) -> dict[str, Any]:
    """``entry`` (a message's agent shape) with ``file_path`` on each attachment still on disk.

    ``uploads_dir`` is None when the server listens beyond loopback: an agent may be on another
    machine, and a path on ours would mean nothing there (it fetches the image instead).
    """
    items = entry.get("attachments")
    if uploads_dir is None or not isinstance(items, list):
        return entry
    out: list[dict[str, Any]] = []
    for item in items:  # pyright: ignore[reportUnknownVariableType]  # JSON from the store
        att: dict[str, Any] = dict(item)  # pyright: ignore[reportUnknownArgumentType]
        name = upload_name(att)
        path = uploads.resolve(uploads_dir, name) if name else None
        if path is not None:
            att["file_path"] = str(path.resolve())
        out.append(att)
    return {**entry, "attachments": out}


def latest_context(conn: sqlite3.Connection, channel: str, job_id: int, limit: int) -> list[Message]:
    """The newest ``limit`` messages of a channel (or a job's thread), oldest first; no cursor moves."""
    if job_id:
        job = jobs.get(conn, job_id)
        ch = channels.get(conn, job.channel)
        return messages.latest(conn, ch.id, limit, agent_view=True, job_id=job_id)
    return messages.latest(conn, channels.get(conn, channel).id, limit, agent_view=True)


def newest_with_image(conn: sqlite3.Connection, channel: str) -> Message | None:
    """The newest message of ``channel``'s timeline that carries an image, within IMAGE_SCAN."""
    batch = messages.latest(conn, channels.get(conn, channel).id, IMAGE_SCAN, agent_view=True)
    return next((m for m in reversed(batch) if m.attachments and not m.deleted), None)
