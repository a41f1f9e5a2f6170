"""Image attachments: type sniffed from the bytes, size capped, stored under generated names.

Only raster formats are accepted. SVG is refused because it is a document that can carry script;
the name the client sent is never used on disk.
"""

from __future__ import annotations

import contextlib
import os
import secrets
from pathlib import Path
from typing import TYPE_CHECKING, Any

from backchannel.errors import InvalidInput, PayloadTooLarge

if TYPE_CHECKING:  # fastapi only where a route serves a file
    from fastapi.responses import FileResponse

_SIGNATURES: list[tuple[bytes, str, str]] = [
    (b"\x89PNG\r\n\x1a\n", "image/png", ".png"),
    (b"\xff\xd8\xff", "image/jpeg", ".jpg"),
    (b"GIF87a", "image/gif", ".gif"),
    (b"GIF89a", "image/gif", ".gif"),
]
ALLOWED_TYPES = frozenset({"image/png", "image/jpeg", "image/gif", "image/webp"})
NAME_LENGTH = 32


def sniff(head: bytes) -> tuple[str, str]:
    for magic, mime, ext in _SIGNATURES:
        if head.startswith(magic):
            return mime, ext
    if head[:4] == b"RIFF" and head[8:12] == b"WEBP":
        return "image/webp", ".webp"
    raise InvalidInput("only PNG, JPEG, GIF and WebP images can be uploaded")


def save(uploads_dir: Path, data: bytes, max_bytes: int, original_name: str = "") -> dict[str, Any]:
    if len(data) > max_bytes:
        raise PayloadTooLarge(f"image is larger than {max_bytes} bytes")
    if not data:
        raise InvalidInput("the upload is empty")
    mime, ext = sniff(data[:16])
    uploads_dir.mkdir(parents=True, exist_ok=True)
    name = secrets.token_hex(NAME_LENGTH // 2) + ext
    path = uploads_dir / name
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    with os.fdopen(fd, "wb") as fh:
        fh.write(data)
    label = os.path.basename(original_name)[:100] if original_name else name
    return {"url": f"/uploads/{name}", "name": label, "type": mime, "size": len(data)}


def from_local_path(uploads_dir: Path, path: str, max_bytes: int) -> dict[str, Any]:
    """An agent's ``image_path``: copy a local image in, refusing anything that is not an image."""
    source = Path(os.path.expanduser(path))
    try:
        if not source.is_file():
            raise InvalidInput(f"image_path: no such file: {path}")
        if source.stat().st_size > max_bytes:
            raise PayloadTooLarge(f"image_path: file is larger than {max_bytes} bytes")
        with source.open("rb") as fh:  # bounded: /proc files claim size 0 and can be endless
            data = fh.read(max_bytes + 1)
    except OSError as exc:  # name too long, permission denied, ...: the agent's mistake, not ours
        raise InvalidInput(f"image_path: cannot read {path[:200]}: {exc.strerror}") from None
    return save(uploads_dir, data, max_bytes, source.name)


def resolve(uploads_dir: Path, name: str) -> Path | None:
    """The stored file for a generated name, or None; rejects anything that is not one of ours."""
    stem, _, ext = name.partition(".")
    if len(stem) != NAME_LENGTH or not all(c in "0123456789abcdef" for c in stem):
        return None
    if f".{ext}" not in {e for _, _, e in _SIGNATURES} | {".webp"}:
        return None
    path = uploads_dir / name
    return path if path.is_file() else None


def file_response(path: Path, cache: str) -> FileResponse:
    """A stored image as a ``FileResponse`` with the headers every upload route sends: never sniffed,
    never run as a page (people's pages and agents' reads differ only in ``cache``)."""
    from fastapi.responses import FileResponse  # noqa: PLC0415

    return FileResponse(
        path,
        headers={
            "X-Content-Type-Options": "nosniff",
            "Content-Security-Policy": "default-src 'none'; sandbox",
            "Cache-Control": cache,
        },
    )


def remove(uploads_dir: Path, names: list[str]) -> None:
    """Delete stored files by generated name (a deleted message's images); never anything else."""
    for name in names:
        path = resolve(uploads_dir, name)
        if path is not None:
            with contextlib.suppress(FileNotFoundError):
                path.unlink()


def attachment(uploads_dir: Path, item: dict[str, Any]) -> dict[str, Any]:
    """A client's reference to an upload, rebuilt from the stored file so nothing else gets through."""
    url = item.get("url")
    name = url.removeprefix("/uploads/") if isinstance(url, str) and url.startswith("/uploads/") else ""
    path = resolve(uploads_dir, name) if name else None
    if path is None:
        raise InvalidInput("attachments must reference an image stored by POST /api/uploads")
    with path.open("rb") as fh:
        mime, _ = sniff(fh.read(16))
    label = item.get("name")
    return {
        "url": f"/uploads/{name}",
        "name": label[:100] if isinstance(label, str) and label else name,
        "type": mime,
        "size": path.stat().st_size,
    }
