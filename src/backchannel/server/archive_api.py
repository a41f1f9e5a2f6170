"""REST routes for archives (issue 12, people only): stream an export, merge an import."""

from __future__ import annotations

import time
from typing import TYPE_CHECKING, Annotated, Any

from fastapi import APIRouter, Query, Request
from fastapi.responses import StreamingResponse
from starlette.datastructures import UploadFile
from starlette.requests import ClientDisconnect
from starlette.types import Message

from backchannel.errors import InvalidInput, PayloadTooLarge
from backchannel.server.api import Reader, Writer
from backchannel.server.deps import services

if TYPE_CHECKING:  # imported on first use: export and import are rare, and start-up pays for every
    # module (backchannel.archive brings zipfile, the template checks and the import SQL; issue 14)
    from backchannel.archive import Archives

router = APIRouter(tags=["archives"])
# Room for the multipart envelope around a maximal archive.
_ENVELOPE = 64 * 1024


def archives(request: Request) -> Archives:
    """The app's one archive service (its lock makes imports one at a time)."""
    from backchannel.archive import Archives, Limits

    found: Archives | None = getattr(request.app.state, "archives", None)
    if found is None:
        svc = services(request)
        found = Archives(
            svc.store,
            svc.settings.uploads_dir,
            svc.settings.max_channels,
            svc.settings.max_upload_bytes,
            publish=svc.room.publish,
            room_settings=svc.room_settings,
            limits=Limits(
                svc.settings.max_message_chars,
                svc.settings.job_body_max,
                svc.settings.max_schedules,
                svc.settings.max_session_templates,
            ),
        )
        request.app.state.archives = found
    return found


@router.get("/api/export", dependencies=Reader)
async def export(
    request: Request, channel: Annotated[str | None, Query(min_length=1, max_length=64)] = None
) -> StreamingResponse:
    """The room (or one channel) as a zip, streamed as it is written."""
    from backchannel.archive import check_channel

    await check_channel(services(request).store, channel)
    stamp = time.strftime("%Y%m%d-%H%M%S", time.gmtime())
    name = f"backchannel-export-{channel + '-' if channel else ''}{stamp}.zip"
    return StreamingResponse(
        archives(request).export(channel),
        media_type="application/zip",
        headers={"Content-Disposition": f'attachment; filename="{name}"', "Cache-Control": "no-store"},
    )


def _limited(request: Request, limit: int) -> Request:
    """The same request whose body fails with 413 past ``limit`` bytes (however it is sent)."""
    from backchannel.archive import MAX_ARCHIVE_BYTES

    seen = 0
    receive = request.receive

    async def counted() -> Message:
        nonlocal seen
        message = await receive()
        if message["type"] == "http.request":
            seen += len(message.get("body", b""))
            if seen > limit:
                raise PayloadTooLarge(f"the archive is larger than {MAX_ARCHIVE_BYTES} bytes")
        return message

    return Request(request.scope, counted)


@router.post("/api/import", dependencies=Writer)
async def import_archive(request: Request) -> dict[str, Any]:
    """Merge an uploaded archive (multipart field ``file``, at most 50 MB packed and unpacked)."""
    from backchannel.archive import MAX_ARCHIVE_BYTES

    limit = MAX_ARCHIVE_BYTES + _ENVELOPE
    declared = request.headers.get("content-length", "")
    if declared.isdigit() and int(declared) > limit:
        raise PayloadTooLarge(f"the archive is larger than {MAX_ARCHIVE_BYTES} bytes")
    if not request.headers.get("content-type", "").startswith("multipart/form-data"):
        raise InvalidInput("send the archive as multipart/form-data with a `file` field")
    try:
        form = await _limited(request, limit).form(max_files=1, max_fields=4)
    except ClientDisconnect:
        raise InvalidInput("the upload was interrupted") from None
    except PayloadTooLarge:
        raise
    except Exception as exc:  # the multipart parser's own errors: a bad request, not ours
        raise InvalidInput(f"cannot read the upload: {exc}") from None
    try:
        upload = form.get("file")
        if not isinstance(upload, UploadFile):
            raise InvalidInput("the form has no `file` field with the archive")
        return await archives(request).import_file(upload.file)
    finally:
        await form.close()
