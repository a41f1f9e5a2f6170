"""Agents in the browser: roster presence and delivery, mentions, renames, menus, the loop guard."""

from __future__ import annotations

import re
from collections.abc import Callable

import httpx
import pytest
from playwright.async_api import Browser, expect

from tests.conftest import RunningServer, mcp_client, register
from tests.e2e.ui_support import UI, _chromium, browser, say  # noqa: F401  # `browser` is a fixture

pytestmark = pytest.mark.anyio


async def test_roster_shows_presence_and_delivery_and_a_click_mentions_the_agent(
    server: RunningServer,
    browser: Browser,  # noqa: F811  # pytest fixture
) -> None:
    agent = await register(server.url, "claude")
    ui = UI(browser, server.url)
    page = await ui.open()
    row = page.locator("#roster .agent[data-agent=claude]")
    await expect(row).to_have_class(re.compile("state-idle|state-online"))

    auth = {"Authorization": f"Bearer {agent['token']}"}
    async with httpx.AsyncClient(base_url=server.url, headers=auth) as client:
        r = await client.post("/api/agents/claude/heartbeat", json={"activity": "busy"})
        assert r.status_code == 200, r.text
        await expect(row).to_have_class(re.compile("state-busy"))
        await expect(row.locator(".state")).to_have_text("working")

        say(server.url, server.secret, "@claude please look")
        await expect(row.locator(".delivery")).to_have_text("queued")
        trigger = 0
        async with client.stream("GET", "/api/agents/claude/triggers") as stream:
            async for line in stream.aiter_lines():  # bounded: the queued trigger is replayed first
                if line.startswith("id: "):
                    trigger = int(line[4:])
                    break
        assert trigger, "the queued trigger was not replayed"
        r = await client.post(f"/api/agents/claude/triggers/{trigger}", json={"state": "injected"})
        assert r.status_code == 200, r.text
        await expect(row.locator(".delivery")).to_have_text("delivered")

    await row.get_by_role("button", name=re.compile("Mention")).click()
    await expect(page.get_by_label("Message #general")).to_have_value("@claude ")
    assert ui.errors == []


async def test_renaming_an_agent_and_answering_its_decision_card_show_on_every_page(
    server: RunningServer,
    browser: Browser,  # noqa: F811  # pytest fixture
) -> None:
    """Two browsers: a rename from one page's roster, then a decision card answered once."""
    await register(server.url, "codex")
    agent = await register(server.url, "gemini")
    ui = UI(browser, server.url)
    page = await ui.open()
    other = await ui.open("carol")
    row = page.locator("#roster .agent[data-agent=codex]")
    await row.hover()
    await row.get_by_role("button", name="Rename codex").click()
    await page.get_by_role("textbox", name="Label").fill("Reviewer")
    await page.get_by_role("textbox", name="Handle").fill("reviewer")
    await page.get_by_role("button", name="Save").click()
    await expect(page.locator("#dialog")).to_be_hidden()
    await expect(other.locator("#roster .agent[data-agent=reviewer] .label")).to_have_text("Reviewer")
    await expect(other.locator("#roster .agent[data-agent=codex]")).to_have_count(0)

    async with mcp_client(server.url, agent["token"]) as client:
        await client.call_tool("chat_send", {"message": "Which database?", "choices": ["sqlite", "postgres"]})
    card, seen = (p.locator(".msg.agent", has_text="Which database?") for p in (page, other))
    await expect(seen.locator(".choices button")).to_have_count(2)
    await card.get_by_role("button", name="postgres").click()
    for c in (card, seen):
        await expect(c.locator(".choice-receipt")).to_have_text(re.compile(r"^\S+ chose postgres$"))
        await expect(c.locator(".choices button")).to_have_count(0)
    assert ui.errors == []


async def test_mention_autocomplete_lists_online_agents_first_and_slash_opens_the_command_menu(
    server: RunningServer,
    browser: Browser,  # noqa: F811  # pytest fixture
) -> None:
    first = await register(server.url, "claude", instance_id="a")
    await register(server.url, "claude", instance_id="b")  # claude-2
    async with httpx.AsyncClient(base_url=server.url) as client:  # claude leaves: offline
        r = await client.delete("/api/agents/claude", headers={"Authorization": f"Bearer {first['token']}"})
        assert r.status_code == 204, r.text
    say(server.url, server.secret, "hello from a person")  # the local person: never offered to itself
    ui = UI(browser, server.url)
    page = await ui.open()
    await expect(page.locator("#roster .agent[data-agent=claude]")).to_have_class(re.compile("state-offline"))
    box = page.get_by_label("Message #general")
    await box.type("ping @")
    options = page.locator("#suggest [role=option]")
    await expect(options.locator(".name")).to_have_text(["@claude-2", "@claude", "@all"])
    await box.type("cl")
    await expect(options).to_have_count(2)
    await box.press("ArrowDown")
    await box.press("Enter")
    await expect(box).to_have_value("ping @claude ")
    await expect(page.locator("#suggest")).to_be_hidden()

    await box.fill("")
    await box.type("/")
    await expect(options.locator(".cmd")).to_contain_text(["/continue", "/search"])
    await box.type("sea")
    await box.press("Tab")
    await expect(box).to_have_value("/search ")
    await box.type("hello")
    await box.press("Enter")
    await expect(page.locator("#search-results .search-hit")).to_have_count(1)
    assert ui.errors == []


async def test_loop_guard_notice_offers_continue_which_resumes_routing(
    server_factory: Callable[..., RunningServer],
    browser: Browser,  # noqa: F811  # pytest fixture
) -> None:
    server = server_factory(loop_guard_hops=1)
    claude = await register(server.url, "claude", instance_id="a")
    codex = await register(server.url, "codex", instance_id="b")
    ui = UI(browser, server.url)
    page = await ui.open()
    async with mcp_client(server.url, claude["token"]) as a, mcp_client(server.url, codex["token"]) as b:
        await a.call_tool("chat_send", {"message": "@codex your turn"})
        await b.call_tool("chat_send", {"message": "@claude back to you"})
    notice = page.locator(".msg.loop-guard")
    await expect(notice).to_contain_text("Loop guard")
    await expect(page.locator("#paused-banner")).to_be_visible()
    await expect(page.locator("#channel-list .channel[data-channel=general] .paused-dot")).to_be_visible()
    await notice.get_by_role("button", name="Continue").click()
    await expect(page.locator(".msg.system", has_text="ben resumed agent routing")).to_be_visible()
    await expect(page.locator("#paused-banner")).to_be_hidden()
    assert ui.errors == []


async def test_a_hidden_tab_is_notified_when_an_agent_answers(
    server: RunningServer,
    browser: Browser,  # noqa: F811  # pytest fixture
) -> None:
    agent = await register(server.url, "claude")
    ui = UI(browser, server.url)
    page = await ui.open()
    await page.context.grant_permissions(["notifications"], origin=server.url)
    toggle = page.get_by_role("button", name="Browser notifications")
    await toggle.click()
    await expect(toggle).to_have_attribute("aria-pressed", "true")
    # Headless chromium never hides a tab by itself: make this one report hidden, and record what
    # the page hands to the real Notification constructor.
    await page.evaluate(
        """() => {
            Object.defineProperty(document, "hidden", { get: () => true });
            Object.defineProperty(document, "visibilityState", { get: () => "hidden" });
            document.dispatchEvent(new Event("visibilitychange"));
            const Real = window.Notification;
            window.shown = [];
            window.Notification = class extends Real {
                constructor(title, options) {
                    window.shown.push([title, options.body]);
                    super(title, options);
                }
            };
            Object.defineProperty(window.Notification, "permission", { get: () => Real.permission });
        }"""
    )
    async with mcp_client(server.url, agent["token"]) as client:
        await client.call_tool("chat_send", {"message": "The **build** is green."})
    await page.wait_for_function("() => window.shown.length === 1")
    assert await page.evaluate("window.shown") == [["claude in #general", "The build is green."]]
    await expect(page).to_have_title("(1) #general · backchannel")
    assert ui.errors == []
