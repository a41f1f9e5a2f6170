"""chat_image: the images people post, as MCP image content, so any agent (remote too) can see them."""

from __future__ import annotations

import base64
from typing import Any

import anyio

from backchannel import agent_images, uploads
from backchannel.errors import InvalidInput, NotFound
from backchannel.mcp_tools._base import caller, ok
from backchannel.mcp_tools._toolkit import ToolContext, ToolResult, Toolset, image_block, text_block
from backchannel.registry import Registry
from backchannel.room import DEFAULT_CHANNEL, Room, validate_channel

MAX_IMAGES = 4  # one call returns at most this many (a message holds up to 8 attachments)


def _read(path: Any) -> tuple[bytes, str]:
    data = path.read_bytes()
    mime, _ = uploads.sniff(data[:16])
    return data, mime


def register(tools: Toolset, room: Room, registry: Registry) -> None:
    @tools.tool()
    async def chat_image(
        ctx: ToolContext, message_id: int = 0, name: str = "", channel: str = ""
    ) -> ToolResult:
        """See the images of a message (`message_id`), one stored image (`name`, as in an attachment's
        url `/uploads/<name>`), or, with neither, the newest image posted in `channel`."""
        agent = await caller(ctx, registry)
        settings = room.settings
        if name:
            names = [name.removeprefix("/uploads/")]
            source = name
        else:
            if message_id:
                if message_id < 0:
                    raise InvalidInput("message_id must be a positive message id")
                msg = await room.message(message_id)
            else:
                place = validate_channel(channel) if channel else (agent.last_channel or DEFAULT_CHANNEL)
                found = await room.store.db.read(lambda c: agent_images.newest_with_image(c, place))
                if found is None:
                    return ok(f"No images in the latest messages of #{place}.", {"images": []})
                msg = found
            shown: list[dict[str, Any]] = [] if msg.deleted else msg.attachments
            names = [n for a in shown if (n := agent_images.upload_name(a))]
            if not names:
                return ok(f"Message {msg.id} has no images.", {"message_id": msg.id, "images": []})
            source = f"message {msg.id} from {msg.sender}"
        content: list[dict[str, Any]] = []
        listed: list[dict[str, Any]] = []
        for stored in names[:MAX_IMAGES]:
            path = uploads.resolve(settings.uploads_dir, stored)
            if path is None:
                raise NotFound(f"no stored image named {stored[:80]!r}")
            data, mime = await anyio.to_thread.run_sync(_read, path)
            content.append(image_block(base64.b64encode(data).decode(), mime))
            listed.append({"name": stored, "type": mime, "size": len(data)})
        more = f" ({len(names) - MAX_IMAGES} more not shown)" if len(names) > MAX_IMAGES else ""
        content.insert(0, text_block(f"{len(listed)} image(s) of {source}{more}."))
        return ToolResult(content, {"images": listed})
