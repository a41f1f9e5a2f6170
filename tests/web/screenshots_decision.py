"""Render docs/decision-and-summary-{light,dark}.png: a summary in the channel header and as a card,
and a decision card whose long choice wraps inside its button.

Run: ``.venv/bin/python -m tests.web.screenshots_decision`` (needs /usr/bin/chromium). Not a test: a
person looks at the pictures before committing.
"""

from __future__ import annotations

from pathlib import Path

import anyio
from playwright.async_api import expect

from tests.conftest import RunningServer, mcp_client, register
from tests.e2e.ui_support import scratch_room
from tests.web.screenshots import open_page

DOCS = Path(__file__).resolve().parents[2] / "docs"
SUMMARY = (
    "We ship the jobs board behind a flag this week; the migration keeps old proposals. "
    "Open question: paging the Closed group."
)
CHOICES = [
    "5% then 50% then 100% over three days with automatic rollback on error budget burn",
    "all at once",
    "canary",
]


async def build_room(server: RunningServer) -> None:
    claude = await register(server.url, "claude", instance_id="laptop-1")
    async with mcp_client(server.url, claude["token"]) as agent:
        await agent.call_tool("chat_summary", {"action": "write", "text": SUMMARY})
        await agent.call_tool("chat_send", {"message": "How should we roll out?", "choices": CHOICES})


async def main() -> None:
    async with scratch_room(build_room) as (server, browser):
        for scheme in ("light", "dark"):
            page = await open_page(browser, server.url, scheme, {"width": 1200, "height": 760})
            await expect(page.locator("#channel-summary")).to_be_visible()
            await expect(page.locator(".msg", has_text="How should we roll out?")).to_be_visible()
            await page.screenshot(path=str(DOCS / f"decision-and-summary-{scheme}.png"))
            await page.context.close()


if __name__ == "__main__":
    anyio.run(main)
