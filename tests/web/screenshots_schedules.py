"""Render docs/schedules-{light,dark}.png: the schedule strip above the composer and the clock
popover scheduling the message being typed.

Run: ``.venv/bin/python -m tests.web.screenshots_schedules`` (needs /usr/bin/chromium); ``--phone
DIR`` also writes 390 px wide pictures to DIR for a person to look at. Not a test: a person looks at
the pictures before committing them.
"""

from __future__ import annotations

import sys
from pathlib import Path

import anyio
from playwright.async_api import ViewportSize, expect

from tests.conftest import RunningServer, mcp_client, register
from tests.e2e.ui_support import human, scratch_room
from tests.web.screenshots import open_page

DOCS = Path(__file__).resolve().parents[2] / "docs"


async def build_room(server: RunningServer) -> None:
    claude = await register(server.url, "claude", instance_id="laptop-1")
    await register(server.url, "codex", instance_id="laptop-2")
    with human(server.url, server.secret) as client:
        assert client.put("/api/me", json={"name": "maya"}).status_code == 200

        def say(text: str) -> None:
            sent = client.post("/api/channels/general/messages", json={"text": text, "sender": "maya"})
            assert sent.status_code == 201, sent.text

        def schedule(**body: object) -> int:
            made = client.post("/api/schedules", json={"channel": "general", **body})
            assert made.status_code == 201, made.text
            return int(made.json()["id"])

        say("@claude the reconnect fix is merged; CI is running now.")
        async with mcp_client(server.url, claude["token"]) as c:
            await c.call_tool(
                "chat_send",
                {"message": "Thanks. The suite takes about 20 minutes; I'll look at the result then."},
            )
        schedule(prompt="triage the new issues and label them", targets=["codex"], spec="daily at 09:00")
        paused = schedule(prompt="summarize the open PRs", targets=["claude", "codex"], spec="every 2 hours")
        assert client.patch(f"/api/schedules/{paused}", json={"active": False}).status_code == 200


async def main(phone_dir: Path | None) -> None:
    async with scratch_room(build_room) as (server, browser):
        for scheme in ("light", "dark"):
            sizes: list[tuple[Path, ViewportSize]] = [
                (DOCS / f"schedules-{scheme}.png", {"width": 1280, "height": 820})
            ]
            if phone_dir:
                sizes.append((phone_dir / f"schedules-{scheme}-phone.png", {"width": 390, "height": 844}))
            for path, viewport in sizes:
                page = await open_page(browser, server.url, scheme, viewport)
                await expect(page.locator("#schedule-strip .sched-item")).to_have_count(2)
                await page.locator("#composer-input").fill("@claude check CI on the reconnect branch")
                await page.get_by_role("button", name="Schedule this message").click()
                await expect(page.get_by_role("dialog", name="Schedule this message")).to_be_visible()
                await page.get_by_label("Minutes from now").fill("20")
                await page.screenshot(path=str(path))
                await page.context.close()


if __name__ == "__main__":
    anyio.run(main, Path(sys.argv[2]) if len(sys.argv) > 2 and sys.argv[1] == "--phone" else None)
