"""The web UI in a real browser: loading, sending, live updates, editing, replies, rendering."""

from __future__ import annotations

import re

import httpx
import pytest
from playwright.async_api import Browser, expect

from tests.conftest import RunningServer, mcp_client, register
from tests.e2e.ui_support import UI, _chromium, browser, say, seed  # noqa: F401  # `browser` is a fixture

pytestmark = pytest.mark.anyio


async def test_page_loads_with_channel_list_composer_and_live_indicator(
    server: RunningServer,
    browser: Browser,  # noqa: F811  # pytest fixture
) -> None:
    ui = UI(browser, server.url)
    page = await ui.open()
    await expect(page.locator("#channel-list .channel[aria-current=page]")).to_have_text(
        re.compile("general")
    )
    await expect(page.locator("#conn")).to_contain_text("Live")
    await expect(page.get_by_label("Message #general")).to_be_visible()
    await expect(page.locator("#me-name")).to_have_text("ben")
    assert ui.errors == []


async def test_sent_message_appears_and_a_second_browser_sees_it_live(
    server: RunningServer,
    browser: Browser,  # noqa: F811  # pytest fixture
) -> None:
    ui = UI(browser, server.url)
    alice = await ui.open("alice")
    bob = await ui.open("bob")
    box = alice.get_by_label("Message #general")
    await box.fill("first line")
    await box.press("Shift+Enter")
    await box.type("second line")
    await box.press("Enter")
    mine = alice.locator(".msg", has_text="first line")
    await expect(mine).to_have_count(1)
    await expect(mine.locator(".text br")).to_have_count(1)
    await expect(box).to_have_value("")
    theirs = bob.locator(".msg", has_text="second line")
    await expect(theirs).to_have_count(1)
    await expect(theirs.locator(".sender")).to_have_text("alice")
    assert ui.errors == []


async def test_agent_message_over_mcp_appears_live_with_its_colour_and_highlights_my_mention(
    server: RunningServer,
    browser: Browser,  # noqa: F811  # pytest fixture
) -> None:
    agent = await register(server.url, "claude")
    ui = UI(browser, server.url)
    page = await ui.open("ben")
    await expect(page.locator("#roster .agent[data-agent=claude]")).to_be_visible()
    async with mcp_client(server.url, agent["token"]) as client:
        await client.call_tool("chat_send", {"message": "done, @ben: see `main.py`"})
    msg = page.locator(".msg.agent", has_text="done")
    await expect(msg).to_be_visible()
    await expect(msg.locator(".sender")).to_have_text("claude")
    await expect(msg).to_have_class(re.compile("mentions-me"))
    await expect(msg.locator(".mention.me")).to_have_text("@ben")
    colour = await msg.evaluate("el => el.style.getPropertyValue('--c')")
    assert colour == agent["color"]
    assert ui.errors == []


async def test_edit_last_message_with_up_arrow_then_delete_it_after_confirming(
    server: RunningServer,
    browser: Browser,  # noqa: F811  # pytest fixture
) -> None:
    ui = UI(browser, server.url)
    page = await ui.open()
    watcher = await ui.open("carol")
    box = page.get_by_label("Message #general")
    await box.fill("teh typo")
    await box.press("Enter")
    await expect(page.locator(".msg", has_text="teh typo")).to_be_visible()
    await box.press("ArrowUp")
    await expect(box).to_have_value("teh typo")
    await expect(page.locator("#composer-context")).to_contain_text("Editing")
    await box.fill("the fix")
    await box.press("Enter")
    edited = watcher.locator(".msg", has_text="the fix")
    await expect(edited.locator(".meta .edited")).to_have_text("(edited)")
    await expect(watcher.locator(".msg", has_text="teh typo")).to_have_count(0)

    mine = page.locator(".msg", has_text="the fix")
    await mine.hover()
    await mine.get_by_role("button", name="Delete").click()
    await expect(page.locator("#dialog")).to_be_visible()
    await page.get_by_role("button", name="Delete", exact=True).click()
    await expect(watcher.locator(".msg.deleted")).to_contain_text("This message was deleted.")
    await expect(watcher.locator(".msg", has_text="the fix")).to_have_count(0)
    assert ui.errors == []


async def test_reply_shows_a_quote_that_jumps_to_the_original(
    server: RunningServer,
    browser: Browser,  # noqa: F811  # pytest fixture
) -> None:
    # The original is older than the first page of history the page loads.
    [original, *_] = await seed(
        server.settings.db_path, ["the original question", *(f"filler {n}" for n in range(60))]
    )
    ui = UI(browser, server.url)
    page = await ui.open()
    await expect(page.locator(".msg", has_text="filler 59")).to_be_visible()
    last = page.locator(".msg", has_text="filler 59")
    await last.hover()
    await last.get_by_role("button", name="Reply").click()
    await expect(page.locator("#composer-context")).to_contain_text("Replying to ann")
    box = page.get_by_label("Message #general")
    await box.fill("an answer")
    await box.press("Enter")
    reply = page.locator(".msg", has_text="an answer")
    await expect(reply.locator(".quote")).to_contain_text("filler 59")

    say(server.url, server.secret, "answering the first", reply_to=original)
    quote = page.locator(".msg", has_text="answering the first").locator(".quote")
    await expect(quote).to_contain_text("the original question")
    await quote.click()
    target = page.locator(f"#m-{original}")
    await expect(target).to_be_in_viewport()
    await expect(target).to_be_focused()
    assert ui.errors == []


async def test_markdown_renders_code_with_copy_button_and_safe_links(
    server: RunningServer,
    browser: Browser,  # noqa: F811  # pytest fixture
) -> None:
    say(
        server.url,
        server.secret,
        "**bold** and _it_ see https://example.com/docs. and [the guide](https://example.org/g)\n\n"
        "```python\nprint('hi')\n```\n- one\n- two",
    )
    ui = UI(browser, server.url)
    page = await ui.open()
    await page.context.grant_permissions(["clipboard-read", "clipboard-write"])
    msg = page.locator(".msg").first
    await expect(msg.locator("strong")).to_have_text("bold")
    await expect(msg.locator("em")).to_have_text("it")
    await expect(msg.locator("li")).to_have_count(2)
    links = msg.locator(".text a")
    await expect(links).to_have_count(2)
    for i in range(2):
        await expect(links.nth(i)).to_have_attribute("rel", "noopener noreferrer nofollow")
        await expect(links.nth(i)).to_have_attribute("target", "_blank")
    await expect(links.first).to_have_attribute("href", "https://example.com/docs")
    await expect(msg.locator("pre code")).to_have_text("print('hi')")
    await msg.get_by_role("button", name="Copy code").click()
    await expect(msg.locator(".copy-btn")).to_contain_text("Copied")
    assert await page.evaluate("navigator.clipboard.readText()") == "print('hi')"
    assert ui.errors == []


async def test_scrolling_up_loads_older_history_and_new_messages_show_an_anchor(
    server: RunningServer,
    browser: Browser,  # noqa: F811  # pytest fixture
) -> None:
    await seed(server.settings.db_path, [f"history {n}" for n in range(130)])
    ui = UI(browser, server.url)
    page = await ui.open()
    await expect(page.locator(".msg", has_text="history 129")).to_be_visible()
    assert await page.locator(".msg").count() == 50  # only the latest page is loaded at first
    timeline = page.locator("#timeline")
    for _ in range(4):  # bounded: each scroll to the top loads at least one more page
        loaded = await page.locator(".msg").count()
        if loaded == 130:
            break
        await timeline.evaluate("el => el.scrollTop = 0")
        await expect(page.locator(".msg")).not_to_have_count(loaded)
    await expect(page.locator(".msg .text", has_text=re.compile(r"^history 0$"))).to_be_attached()
    await expect(page.locator(".channel-start")).to_be_visible()
    await expect(page.locator(".msg")).to_have_count(130)

    say(server.url, server.secret, "fresh news")
    anchor = page.locator("#new-anchor")
    await expect(anchor).to_have_text("1 new message")
    await anchor.click()
    await expect(page.locator(".msg", has_text="fresh news")).to_be_in_viewport()
    await expect(anchor).to_be_hidden()
    assert ui.errors == []


async def test_phone_width_hides_the_sidebar_behind_a_menu_button(
    server: RunningServer,
    browser: Browser,  # noqa: F811  # pytest fixture
) -> None:
    ui = UI(browser, server.url)
    page = await ui.open(viewport={"width": 390, "height": 800})
    sidebar = page.locator("#sidebar")
    await expect(sidebar).not_to_be_in_viewport()
    menu = page.get_by_role("button", name="Show channels and agents")
    await menu.click()
    await expect(menu).to_have_attribute("aria-expanded", "true")
    await expect(sidebar).to_be_in_viewport()
    await page.locator("#scrim").click(position={"x": 370, "y": 400})
    await expect(sidebar).not_to_be_in_viewport()
    width = await page.evaluate("document.documentElement.scrollWidth")
    assert width <= 390
    assert ui.errors == []


async def test_page_loads_nothing_from_other_origins(
    server: RunningServer,
    browser: Browser,  # noqa: F811  # pytest fixture
) -> None:
    ui = UI(browser, server.url)
    context = await browser.new_context()
    ui.contexts.append(context)
    page = await context.new_page()
    foreign: list[str] = []
    page.on("request", lambda req: foreign.append(req.url) if not req.url.startswith(server.url) else None)
    await page.goto(server.url)
    await expect(page.locator("#conn")).to_have_attribute("data-state", "live")
    assert foreign == []
    async with httpx.AsyncClient(base_url=server.url) as client:
        for path in ("/static/app.css", "/static/js/app.js", "/static/js/markdown.js"):
            assert (await client.get(path)).status_code == 200
