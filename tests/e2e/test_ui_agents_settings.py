"""An agent's settings in the browser: the roster's popover sets a role (keyboard only), saves a
custom role that is offered again, changes the colour, removes a hat and forgets an offline agent;
every page sees each change live, on the roster and on the agent's messages.

One server for the module: each test registers and checks only its own agents.

``python -m tests.e2e.test_ui_agents_settings`` renders docs/agent-roles-{light,dark}.png (and a
phone picture in /tmp) from the same kind of room: a person looks at them before committing.
"""

from __future__ import annotations

import re
import tempfile
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import anyio
import httpx
import pytest
from playwright.async_api import Browser, Locator, Page, ViewportSize, expect

from tests.conftest import RunningServer, mcp_client, module_server, register
from tests.e2e.test_ui_a11y import CONTRAST_JS, UNNAMED_JS
from tests.e2e.ui_support import UI, _chromium, browser, human, rest, scratch_room  # noqa: F401

pytestmark = pytest.mark.anyio
DOCS = Path(__file__).resolve().parents[2] / "docs"
HAT = (
    '<svg xmlns="http://www.w3.org/2000/svg" viewBox="0 0 20 12">'
    '<path d="M2 11h16L10 1z" fill="#e11d48"/></svg>'
)


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[RunningServer]:
    with module_server(tmp_path_factory, "ui-agents-settings") as running:
        yield running


async def agent_says(server: RunningServer, base: str, text: str, **extra: Any) -> dict[str, Any]:
    """Register ``base`` (its own instance) and post ``text`` as it over MCP; returns its registration."""
    agent = await register(server.url, base, instance_id=f"{base}-ui", **extra)
    async with mcp_client(server.url, agent["token"]) as client:
        await client.call_tool("chat_send", {"message": text})
    return agent


async def wake(server: RunningServer, agent: dict[str, Any], text: str) -> None:
    """Mention the agent and take the wake-up from its trigger stream, as its wrapper would."""
    rest(server, "POST", "/api/channels/general/messages", json={"text": text, "sender": "ben"})
    auth = {"Authorization": f"Bearer {agent['token']}"}
    async with httpx.AsyncClient(base_url=server.url, headers=auth, timeout=10) as client:
        trigger = 0
        async with client.stream("GET", f"/api/agents/{agent['name']}/triggers") as stream:
            async for line in stream.aiter_lines():  # bounded: the queued trigger comes first
                if line.startswith("id: "):
                    trigger = int(line[4:])
                    break
        done = await client.post(
            f"/api/agents/{agent['name']}/triggers/{trigger}", json={"state": "injected"}
        )
        assert done.status_code == 200, done.text


def menu(page: Page) -> Locator:
    return page.locator("dialog.agent-menu")


async def readable(page: Page) -> None:
    """Every control named, every text at WCAG AA contrast, with the popover open."""
    assert await page.evaluate(UNNAMED_JS) == []
    assert await page.evaluate(CONTRAST_JS) == []


async def test_a_role_set_with_the_keyboard_shows_everywhere_and_a_custom_role_is_offered_again(
    server: RunningServer,
    browser: Browser,  # noqa: F811  # pytest fixture
) -> None:
    await agent_says(server, "claude", "I can take the review.")
    await register(server.url, "codex", instance_id="codex-ui")
    ui = UI(browser, server.url)
    page = await ui.open()
    other = await ui.open("carol", color_scheme="dark")

    # Keyboard only: the roster's "…" opens the popover on the first role; arrows move, Enter sets.
    opener = page.get_by_role("button", name="Settings for claude")
    await opener.focus()
    await page.keyboard.press("Enter")
    await expect(menu(page)).to_be_visible()
    await expect(menu(page).get_by_role("button", name="builder", exact=True)).to_be_focused()
    await page.keyboard.press("ArrowRight")
    await expect(menu(page).get_by_role("button", name="reviewer", exact=True)).to_be_focused()
    await page.keyboard.press("Enter")
    await expect(menu(page).get_by_role("button", name="reviewer", exact=True)).to_have_attribute(
        "aria-pressed", "true"
    )
    await expect(menu(page).get_by_role("button", name="reviewer", exact=True)).to_be_focused()
    await readable(page)
    # Tab stays inside the popover: Shift+Tab from the first control lands on the last one.
    await menu(page).get_by_role("button", name="Close").focus()
    await page.keyboard.press("Shift+Tab")
    await expect(menu(page).get_by_role("button", name="Rename…")).to_be_focused()
    await page.keyboard.press("Escape")
    await expect(menu(page)).to_be_hidden()
    await expect(opener).to_be_focused()

    roster_row = other.locator("#roster .agent[data-agent=claude]")
    await expect(roster_row.locator(".role-pill")).to_have_text("reviewer")
    said = other.locator(".msg.agent", has_text="I can take the review.")
    await expect(said.locator(".role-pill")).to_have_text("reviewer")

    # A person on the other page opens the same picker from the message's pill.
    await said.locator(".role-pill").click()
    await expect(menu(other).locator("#agent-menu-title")).to_have_text("Claude")
    await expect(menu(other).get_by_role("button", name="reviewer", exact=True)).to_have_attribute(
        "aria-pressed", "true"
    )
    await readable(other)
    await menu(other).get_by_role("textbox", name="Custom role").fill("release captain")
    await other.keyboard.press("Enter")
    await expect(menu(other).get_by_role("button", name="release captain", exact=True)).to_have_attribute(
        "aria-pressed", "true"
    )
    await expect(said.locator(".role-pill")).to_have_text("release captain")
    await other.keyboard.press("Escape")
    await expect(menu(other)).to_be_hidden()
    await expect(said.locator(".role-pill")).to_be_focused()  # back on the (re-rendered) pill
    await expect(
        page.locator(".msg.agent", has_text="I can take the review.").locator(".role-pill")
    ).to_have_text("release captain")
    assert "release captain" in rest(server, "GET", "/api/settings")["custom_roles"]

    # The saved role is offered for every agent from now on.
    await page.get_by_role("button", name="Settings for codex").click()
    await menu(page).get_by_role("button", name="release captain", exact=True).click()
    await expect(page.locator("#roster .agent[data-agent=codex] .role-pill")).to_have_text("release captain")
    await menu(page).get_by_role("button", name="Clear role").click()
    await expect(other.locator("#roster .agent[data-agent=codex] .role-pill")).to_have_count(0)

    # Rename… takes no more than the server does: labels are at most 24 characters.
    await menu(page).get_by_role("button", name="Rename…").click()
    label = page.locator("#dialog").get_by_role("textbox", name="Label")
    await expect(label).to_have_attribute("maxlength", "24")
    await page.keyboard.press("Escape")
    assert ui.errors == []


async def test_colour_and_hat_change_live_and_a_forgotten_agent_leaves_every_page(
    server: RunningServer,
    browser: Browser,  # noqa: F811  # pytest fixture
) -> None:
    gemini = await agent_says(server, "gemini", "Hat on.")
    async with mcp_client(server.url, gemini["token"]) as client:
        await client.call_tool("chat_set_hat", {"svg": HAT})
    ui = UI(browser, server.url)
    page = await ui.open()
    other = await ui.open("carol")
    row = other.locator("#roster .agent[data-agent=gemini]")
    said = other.locator(".msg.agent", has_text="Hat on.")
    await expect(row.locator(".avatar .hat")).to_have_count(1)

    # The rules marker: a new active rule is not seen yet; the next wake-up carries it.
    rest(server, "POST", "/api/rules", json={"text": "Run the tests before you push", "status": "active"})
    await expect(row.locator(".rules-mark")).to_have_attribute(
        "title", "Gemini gets the rules with its next wake-up"
    )
    await expect(row.get_by_role("button", name=re.compile("Mention"))).to_have_accessible_name(
        re.compile("gets the rules with its next wake-up")
    )
    await wake(server, gemini, "@gemini have a look")
    await expect(row.locator(".rules-mark")).to_have_attribute("title", "Gemini has the current rules")

    await page.get_by_role("button", name="Settings for gemini").click()
    await menu(page).get_by_role("button", name="Colour teal").click()
    await expect(menu(page).get_by_role("button", name="Colour teal")).to_have_attribute(
        "aria-pressed", "true"
    )
    teal = "rgb(15, 118, 110)"
    await expect(row.locator(".avatar")).to_have_css("background-color", teal)
    await expect(said.locator(".avatar")).to_have_css("background-color", teal)

    await menu(page).get_by_role("button", name="Remove hat").click()
    await expect(row.locator(".avatar .hat")).to_have_count(0)
    await expect(said.locator(".avatar .hat")).to_have_count(0)
    await expect(menu(page).get_by_role("button", name="Remove hat")).to_have_count(0)

    # Forget is offered only once it is offline, and asks first.
    await expect(menu(page).get_by_role("button", name="Forget agent…")).to_have_count(0)
    async with httpx.AsyncClient(base_url=server.url) as client:
        auth = {"Authorization": f"Bearer {gemini['token']}"}
        assert (await client.delete("/api/agents/gemini", headers=auth)).status_code == 204
    await menu(page).get_by_role("button", name="Forget agent…").click()
    confirm = page.locator("#dialog")
    await expect(confirm).to_contain_text("Its messages stay")
    await confirm.get_by_role("button", name="Forget agent").click()
    await expect(menu(page)).to_be_hidden()
    await expect(page.locator("#roster .agent[data-agent=gemini]")).to_have_count(0)
    await expect(row).to_have_count(0)
    await expect(said).to_be_visible()  # its messages stay
    assert "gemini" not in [a["name"] for a in rest(server, "GET", "/api/agents")]
    assert ui.errors == []


# -- pictures for docs/ (not a test) -----------------------------------------------------------------
async def build_scene(server: RunningServer) -> None:
    rest(server, "PUT", "/api/me", json={"name": "maya"})
    claude = await agent_says(server, "claude", "Reviewed: two nits, otherwise good to merge.")
    await agent_says(server, "codex", "Tests are green on my side.")
    async with mcp_client(server.url, claude["token"]) as client:
        await client.call_tool("chat_set_hat", {"svg": HAT})
    rest(server, "PATCH", "/api/agents/claude", json={"role": "reviewer"})
    rest(server, "PATCH", "/api/agents/codex", json={"role": "release captain", "color": "#0f766e"})
    # One active rule: claude's last wake-up carried it, codex gets it with its next one.
    rest(server, "POST", "/api/rules", json={"text": "Run the tests before you push", "status": "active"})
    await wake(server, claude, "@claude thanks, merging after lunch")


async def main() -> None:
    async with scratch_room(build_scene) as (server, chromium):
        wide: ViewportSize = {"width": 1200, "height": 760}
        phone: ViewportSize = {"width": 390, "height": 780}
        # Light: from the roster; dark: from the role pill on a message (the popover opens above it).
        shots = [
            (DOCS / "agent-roles-light.png", "light", wide, "roster"),
            (DOCS / "agent-roles-dark.png", "dark", wide, "message"),
            (Path(tempfile.gettempdir()) / "agent-roles-phone.png", "light", phone, "roster"),
        ]
        for path, scheme, viewport, where in shots:
            ui = UI(chromium, server.url)
            page = await ui.open("maya", color_scheme=scheme, viewport=viewport)
            if viewport is phone:
                await page.get_by_role("button", name="Show channels and agents").click()
            if where == "roster":
                await page.get_by_role("button", name="Settings for claude").click()
                await expect(menu(page).get_by_role("button", name="reviewer", exact=True)).to_be_focused()
            else:
                said = page.locator(".msg.agent", has_text="Tests are green")
                await said.locator(".role-pill").click()
                await expect(menu(page)).to_be_visible()
                await page.mouse.move(1, viewport["height"] - 1)
            await page.screenshot(path=str(path))
            print(path)
            assert ui.errors == [], ui.errors
            for context in ui.contexts:
                await context.close()


if __name__ == "__main__":
    anyio.run(main)
