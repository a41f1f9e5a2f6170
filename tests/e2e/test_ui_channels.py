"""Channels in the browser: create, rename, delete, unread counts, the remembered channel, search."""

from __future__ import annotations

import re

import pytest
from playwright.async_api import Browser, expect

from tests.conftest import RunningServer, mcp_client, register
from tests.e2e.ui_support import UI, _chromium, browser, human, say, seed  # noqa: F401  # `browser` is a fixture

pytestmark = pytest.mark.anyio


async def test_channels_are_created_renamed_deleted_and_summarised_live_in_another_browser(
    server: RunningServer,
    browser: Browser,  # noqa: F811  # pytest fixture
) -> None:
    """Two browsers: one creates, renames and deletes a channel, then asks an agent for a summary
    of #general; the other sees each step live."""
    agent = await register(server.url, "claude")
    ui = UI(browser, server.url)
    page = await ui.open()
    other = await ui.open("carol")

    await page.get_by_role("button", name="Create channel").click()
    await page.get_by_role("textbox", name="Name").fill("frontend")
    await page.get_by_role("button", name="Create", exact=True).click()
    await expect(page.locator("#channel-title")).to_have_text("#frontend")
    await expect(page.get_by_label("Message #frontend")).to_be_focused()
    await expect(other.locator("#channel-list")).to_contain_text("frontend")

    await page.get_by_role("button", name="Rename channel").click()
    await page.get_by_role("textbox", name="New name").fill("Bad Name!")
    await page.get_by_role("button", name="Rename", exact=True).click()
    await expect(page.locator("#dialog-error")).to_contain_text("invalid channel name")
    await page.get_by_role("textbox", name="New name").fill("web")
    await page.get_by_role("button", name="Rename", exact=True).click()
    await expect(page.locator("#channel-title")).to_have_text("#web")
    await expect(other.locator("#channel-list .channel")).to_have_text(
        [re.compile("general"), re.compile("web")]
    )

    await page.get_by_role("button", name="Delete channel").click()
    await expect(page.locator("#dialog-title")).to_have_text("Delete #web?")
    await page.get_by_role("button", name="Cancel").click()
    await expect(page.locator("#channel-title")).to_have_text("#web")
    await page.get_by_role("button", name="Delete channel").click()
    await page.get_by_role("button", name="Delete channel", exact=True).last.click()
    await expect(page.locator("#channel-title")).to_have_text("#general")
    await expect(other.locator("#channel-list .channel")).to_have_count(1)
    with human(server.url, server.secret) as client:
        assert [c["name"] for c in client.get("/api/channels").json()] == ["general"]
    # general can be neither renamed nor deleted, so the page does not offer it
    await expect(page.get_by_role("button", name="Rename channel")).to_be_hidden()

    await expect(other.locator("#channel-summary")).to_be_hidden()

    # /summary @agent asks the agent: nothing but a one-line note is posted, on every page.
    box = page.get_by_label("Message #general")
    await box.fill(f"/summary @{agent['name']} ")  # the space closes the mention menu, as typing on does
    await box.press("Enter")
    note = f"asked @{agent['name']} for a summary"
    await expect(other.locator("#messages .msg.system", has_text=note)).to_have_count(1)
    await expect(box).to_have_value("")

    long = "We ship on Friday. " + "The release notes are in docs/release.md and need review. " * 4
    async with mcp_client(server.url, agent["token"]) as mcp:
        wrote = await mcp.call_tool("chat_summary", {"action": "write", "channel": "general", "text": long})
        assert not wrote.is_error
    # The header of the other browser shows it live, collapsed to one line, with who wrote it.
    summary = other.locator("#channel-summary")
    await expect(summary).to_be_visible()
    await expect(other.locator("#summary-text")).to_have_text(long.strip())
    await expect(other.locator("#summary-meta")).to_contain_text(agent["name"])
    toggle = other.get_by_role("button", name=re.compile("Summary"))
    await expect(toggle).to_have_attribute("aria-expanded", "false")
    await toggle.click()
    await expect(toggle).to_have_attribute("aria-expanded", "true")
    await expect(summary).to_have_class(re.compile("expanded"))
    # The timeline carries it as a summary card.
    card = other.locator("#messages .msg.summary-card")
    await expect(card).to_have_count(1)
    await expect(card.locator(".tag.type-summary")).to_have_text("Summary")
    await expect(card).to_contain_text("We ship on Friday.")
    assert ui.errors == []


async def test_unread_counts_and_the_active_channel_survive_a_reload(
    server: RunningServer,
    browser: Browser,  # noqa: F811  # pytest fixture
) -> None:
    with human(server.url, server.secret) as client:
        client.post("/api/channels", json={"name": "ops"})
    agent = await register(server.url, "codex")
    ui = UI(browser, server.url)
    page = await ui.open()
    ops = page.locator("#channel-list .channel[data-channel=ops]")
    await expect(ops.locator(".badge")).to_have_count(0)
    # Someone else writes (your own messages are never unread: every local browser is you).
    async with mcp_client(server.url, agent["token"]) as mcp:

        async def say_as_agent(text: str, channel: str = "general") -> None:
            await mcp.call_tool("chat_send", {"message": text, "channel": channel})

        await say_as_agent("deploy done", "ops")
        await say_as_agent("all green", "ops")
        await expect(ops.locator(".badge")).to_have_text("2")
        await expect(ops).to_have_attribute("aria-label", "ops, 2 unread")
        await ops.focus()  # live updates re-render the list; keyboard focus must survive them
        await say_as_agent("one more", "ops")
        await expect(ops.locator(".badge")).to_have_text("3")
        await expect(ops).to_be_focused()
        await ops.click()
        await expect(page.locator(".msg", has_text="one more")).to_be_visible()
        await expect(ops.locator(".badge")).to_have_count(0)
        await say_as_agent("meanwhile in general")
    general = page.locator("#channel-list .channel[data-channel=general]")
    await expect(general.locator(".badge")).to_have_text("1")
    await page.reload()
    await expect(page.locator("#channel-title")).to_have_text("#ops")
    await expect(general.locator(".badge")).to_have_text("1")
    await expect(ops.locator(".badge")).to_have_count(0)
    await general.click()  # what arrived since you last looked sits under a "New" divider
    await expect(page.locator("#messages > li.unread-divider + li.msg")).to_contain_text(
        "meanwhile in general"
    )
    assert ui.errors == []


async def test_search_finds_a_message_in_another_channel_and_jumps_to_it(
    server: RunningServer,
    browser: Browser,  # noqa: F811  # pytest fixture
) -> None:
    with human(server.url, server.secret) as client:
        client.post("/api/channels", json={"name": "archive"})
    [needle, *_] = await seed(
        server.settings.db_path,
        ["the flaky quokka test is fixed", *(f"later note {n}" for n in range(80))],
        channel="archive",
    )
    ui = UI(browser, server.url)
    page = await ui.open()
    search = page.get_by_role("searchbox", name="Search all channels")
    await search.fill("quokka")
    await search.press("Enter")
    hits = page.locator("#search-results .search-hit")
    await expect(hits).to_have_count(1)
    await expect(hits.first).to_contain_text("#archive")
    await expect(hits.first.locator("mark")).to_have_text("quokka")
    await hits.first.click()
    await expect(page.locator("#channel-title")).to_have_text("#archive")
    target = page.locator(f"#m-{needle}")
    await expect(target).to_be_in_viewport()
    await expect(target).to_be_focused()
    # the jump loaded a window of old history; the way back to the newest messages is offered
    await page.locator("#new-anchor").click()
    await expect(page.locator(".msg", has_text="later note 79")).to_be_in_viewport()
    assert ui.errors == []
