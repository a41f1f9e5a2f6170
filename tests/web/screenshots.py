"""Render docs/screenshot-light.png and docs/screenshot-dark.png from a realistic seeded room.

Run: ``.venv/bin/python -m tests.web.screenshots`` (needs /usr/bin/chromium). Not a test: the
pictures are for the README, and a person should look at them before committing.
"""

from __future__ import annotations

import sqlite3
import time
from pathlib import Path
from typing import Any

import anyio
import httpx
from playwright.async_api import Browser, Page, ViewportSize, expect

from tests.conftest import RunningServer, mcp_client, register
from tests.e2e.ui_support import human, scratch_room

DOCS = Path(__file__).resolve().parents[2] / "docs"
HOUR = 3600.0


async def build_room(server: RunningServer) -> None:
    claude = await register(server.url, "claude", instance_id="laptop-1")
    codex = await register(server.url, "codex", instance_id="laptop-2")
    gemini = await register(server.url, "gemini", instance_id="laptop-3")
    with human(server.url, server.secret) as client:
        # The server names people (the local person here): the page shows this name.
        assert client.put("/api/me", json={"name": "maya"}).status_code == 200
        for name in ("frontend", "ops"):
            client.post("/api/channels", json={"name": name})
        client.put("/api/me", json={"name": "maya"})  # people post under their identity's name

        def say(text: str, channel: str = "general", **extra: object) -> int:
            payload = {"text": text, "sender": "maya", **extra}
            r = client.post(f"/api/channels/{channel}/messages", json=payload)
            assert r.status_code == 201, r.text
            return int(r.json()["id"])

        first = say(
            "Morning! Today: ship the reconnect fix and cut **v0.4**. @claude can you take the flaky one?"
        )
        async with mcp_client(server.url, claude["token"]) as c, mcp_client(server.url, codex["token"]) as x:
            await c.call_tool(
                "chat_send",
                {
                    "message": "On it. `test_resume_after_restart` races the shutdown: the socket closes "
                    "before the last event is committed. Fix:\n\n```python\nasync with store.transaction():\n"
                    "    seq = await store.append(event)\nawait bus.publish(seq, event)\n```",
                    "reply_to": first,
                },
            )
            await x.call_tool("chat_send", {"message": "I'll review when it's up. @claude ping me."})
            ask = say("Nice. @codex also check the upload size limit, please: https://example.com/issues/42")
            await x.call_tool(
                "chat_send",
                {
                    "message": "Checked: the limit holds while streaming, so a 2 GB body stops at 10 MB.\n"
                    "- accepted: PNG, JPEG, GIF, WebP\n- refused: SVG (it can carry script)",
                    "reply_to": ask,
                },
            )
            await c.call_tool("chat_send", {"message": "PR is up: all 212 tests pass. @maya ready."})
            await x.call_tool("chat_send", {"message": "Phone layout looks off.", "channel": "frontend"})
            await c.call_tool("chat_send", {"message": "Nightly deploy finished.", "channel": "ops"})
        say("@claude thanks! Merging after lunch.")
        # Leave claude "working" on a delivered wake-up, codex idle, gemini gone.
        async with httpx.AsyncClient(base_url=server.url, timeout=10) as agent_http:
            auth = {"Authorization": f"Bearer {claude['token']}"}
            await agent_http.post("/api/agents/claude/heartbeat", json={"activity": "busy"}, headers=auth)
            trigger = 0
            async with agent_http.stream("GET", "/api/agents/claude/triggers", headers=auth) as stream:
                async for line in stream.aiter_lines():
                    if line.startswith("id: "):
                        trigger = int(line[4:])
                        break
            done = {"state": "injected"}
            await agent_http.post(f"/api/agents/claude/triggers/{trigger}", json=done, headers=auth)
            cx = {"Authorization": f"Bearer {codex['token']}"}
            await agent_http.post("/api/agents/codex/heartbeat", json={"activity": "idle"}, headers=cx)
            gx = {"Authorization": f"Bearer {gemini['token']}"}
            await agent_http.delete("/api/agents/gemini", headers=gx)
    # Spread the conversation over yesterday evening and this morning so dividers show.
    db = sqlite3.connect(server.settings.db_path)
    now = time.time()
    rows = db.execute("SELECT id FROM messages WHERE channel_id = 1 ORDER BY id").fetchall()
    stamps = [now - 15 * HOUR, now - 14.8 * HOUR, now - 14.7 * HOUR] + [
        now - (len(rows) - i) * 300 for i in range(3, len(rows))
    ]
    for (mid,), ts in zip(rows, stamps, strict=True):
        db.execute("UPDATE messages SET created_at = ? WHERE id = ?", (ts, mid))
    db.commit()
    db.close()


async def open_page(browser: Browser, url: str, scheme: Any, viewport: ViewportSize) -> Page:
    """A page of the UI in a fresh context, as maya, with no first-visit tour in the picture, once live.
    Close it with ``page.context.close()``."""
    context = await browser.new_context(viewport=viewport, color_scheme=scheme, device_scale_factor=1)
    await context.add_init_script(
        "localStorage.setItem('bc.name', JSON.stringify('maya')); localStorage.setItem('bc.helpSeen', 'true')"
    )
    page = await context.new_page()
    await page.goto(url)
    await expect(page.locator("#conn")).to_have_attribute("data-state", "live")
    return page


async def main() -> None:
    async with scratch_room(build_room) as (server, browser):
        for scheme in ("light", "dark"):
            page = await open_page(browser, server.url, scheme, {"width": 1280, "height": 860})
            await expect(page.locator(".msg", has_text="Merging after lunch")).to_be_visible()
            await page.locator("#composer-input").fill("@codex can you pair with claude on it?")
            await page.locator("#composer-input").blur()
            await page.screenshot(path=str(DOCS / f"screenshot-{scheme}.png"))
            await page.context.close()


if __name__ == "__main__":
    anyio.run(main)
