"""Render docs/rules-panel-{light,dark}.png and docs/settings-{light,dark}.png from a seeded room.

Run: ``.venv/bin/python -m tests.web.screenshots_rules`` (needs /usr/bin/chromium); ``--phone DIR``
also writes 390 px wide pictures to DIR for a person to look at. Not a test: a person looks at the
pictures before committing them.
"""

from __future__ import annotations

import sys
from pathlib import Path

import anyio
from playwright.async_api import Page, ViewportSize, expect

from tests.conftest import RunningServer, mcp_client, register
from tests.e2e.ui_support import human, scratch_room
from tests.web.screenshots import open_page

DOCS = Path(__file__).resolve().parents[2] / "docs"


async def build_room(server: RunningServer) -> None:
    claude = await register(server.url, "claude", instance_id="laptop-1")
    codex = await register(server.url, "codex", instance_id="laptop-2")
    with human(server.url, server.secret) as client:
        assert client.put("/api/me", json={"name": "maya"}).status_code == 200
        client.patch(
            "/api/settings",
            json={"title": "acme backend", "custom_roles": ["security", "docs", "release"]},
        )

        def rule(text: str, status: str = "draft", reason: str = "") -> None:
            payload = {"text": text, "status": "draft" if status == "archived" else status}
            made = client.post("/api/rules", json={**payload, **({"reason": reason} if reason else {})})
            assert made.status_code == 201, made.text
            if status == "archived":  # people create drafts or active rules; archiving is a change
                client.patch(f"/api/rules/{made.json()['id']}", json={"status": "archived"})

        rule(
            "Run the full test suite before saying a change is done.",
            "active",
            "CI takes 20 min; catch it locally.",
        )
        rule("Never push to main: open a PR and ask @codex for review.", "active")
        rule("Keep replies in the channel under ten lines; put long output in a job thread.", "active")
        rule("Ask before adding a dependency.", "draft", "Supply chain: every package is reviewed.")
        rule("Write the changelog entry in the same PR.")
        rule("Use tabs for indentation.", "archived")
        client.post(
            "/api/channels/general/messages",
            json={
                "text": "@claude @codex new rules are up, please follow them from now on.",
                "sender": "maya",
            },
        )
        async with mcp_client(server.url, claude["token"]) as c, mcp_client(server.url, codex["token"]) as x:
            await c.call_tool(
                "chat_rules",
                {
                    "action": "propose",
                    "rule": "Pin the Python version in CI.",
                    "reason": "3.13 broke the build twice.",
                },
            )
            await x.call_tool(
                "chat_rules",
                {"action": "propose", "rule": "Add a test for every bug fix, failing before the fix."},
            )
        first = client.get("/api/rules").json()
        proposed = [r for r in first if r["status"] == "proposed"]
        client.post(f"/api/rules/{proposed[0]['id']}/decide", json={"decision": "activate"})


async def shoot(page: Page, path: Path, scene: str) -> None:
    if scene == "rules":
        await page.locator("#rules-toggle").click()
        await expect(page.locator("#rules-panel .rule-card").first).to_be_visible()
        await expect(page.locator(".rule-proposal .outcome")).to_be_visible()
        await page.locator("#rules-panel h2").focus()
    else:
        if (page.viewport_size or {"width": 1280})["width"] <= 760:
            pass  # the gear stays in the topbar on phones too
        await page.get_by_role("button", name="Room settings").click()
        await expect(page.get_by_role("dialog", name="Room settings")).to_be_visible()
        await page.locator(".settings-dialog h2").click()
    await page.screenshot(path=str(path))
    await page.keyboard.press("Escape")


async def main(phone_dir: Path | None) -> None:
    async with scratch_room(build_room) as (server, browser):
        for scheme in ("light", "dark"):
            sizes: list[tuple[str, ViewportSize, Path]] = [("docs", {"width": 1280, "height": 820}, DOCS)]
            if phone_dir:
                sizes.append(("phone", {"width": 390, "height": 844}, phone_dir))
            for kind, viewport, folder in sizes:
                page = await open_page(browser, server.url, scheme, viewport)
                await expect(page.locator(".brand-name")).to_have_text("acme backend")
                if kind == "phone":
                    await page.screenshot(path=str(folder / f"room-{scheme}-phone.png"))
                for scene, name in (("rules", "rules-panel"), ("settings", "settings")):
                    suffix = "" if kind == "docs" else "-phone"
                    await shoot(page, folder / f"{name}-{scheme}{suffix}.png", scene)
                await page.context.close()


if __name__ == "__main__":
    anyio.run(main, Path(sys.argv[2]) if len(sys.argv) > 2 and sys.argv[1] == "--phone" else None)
