"""Render docs/decision-and-summary-{light,dark}.png: a summary in the channel header and as a card,
and a decision card whose long choice wraps inside its button.

Run: ``.venv/bin/python -m tests.web.screenshots_decision`` (needs /usr/bin/chromium). Not a test: a
person looks at the pictures before committing.
"""

from __future__ import annotations

import tempfile
from pathlib import Path

import anyio
from playwright.async_api import async_playwright, expect

from backchannel.config import Settings
from tests.conftest import RunningServer, mcp_client, register
from tests.e2e.ui_support import CHROMIUM, CHROMIUM_ARGS

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


async def main() -> None:
    with tempfile.TemporaryDirectory() as tmp:
        server = RunningServer(Settings(host="127.0.0.1", port=0, data_dir=Path(tmp))).start()
        try:
            claude = await register(server.url, "claude", instance_id="laptop-1")
            async with mcp_client(server.url, claude["token"]) as agent:
                await agent.call_tool("chat_summary", {"action": "write", "text": SUMMARY})
                await agent.call_tool("chat_send", {"message": "How should we roll out?", "choices": CHOICES})
            async with async_playwright() as pw:
                browser = await pw.chromium.launch(
                    executable_path=CHROMIUM, headless=True, args=CHROMIUM_ARGS
                )
                for scheme in ("light", "dark"):
                    context = await browser.new_context(
                        viewport={"width": 1200, "height": 760}, color_scheme=scheme, device_scale_factor=1
                    )
                    await context.add_init_script(
                        "localStorage.setItem('bc.name', JSON.stringify('maya'));"
                        " localStorage.setItem('bc.helpSeen', 'true')"
                    )
                    page = await context.new_page()
                    await page.goto(server.url)
                    await expect(page.locator("#conn")).to_have_attribute("data-state", "live")
                    await expect(page.locator("#channel-summary")).to_be_visible()
                    await expect(page.locator(".msg", has_text="How should we roll out?")).to_be_visible()
                    await page.screenshot(path=str(DOCS / f"decision-and-summary-{scheme}.png"))
                    await context.close()
                await browser.close()
        finally:
            server.stop()


if __name__ == "__main__":
    anyio.run(main)
