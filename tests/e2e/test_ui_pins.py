"""Pins, /clear, the composer conveniences and the help tour in the browser, on one module server.

Each test works in its own channel (opened through the page's remembered channel), so the tests
share the server without seeing each other's messages.

``python -m tests.e2e.test_ui_pins`` saves screenshots of the pins panel and the help tour (light,
dark, phone) to a temporary directory and prints its path: a person looks at them.
"""

from __future__ import annotations

import re
import sys
import tempfile
from collections.abc import Iterator
from pathlib import Path

import anyio
import pytest
from playwright.async_api import Browser, Page, expect

from tests.conftest import RunningServer, mcp_client, module_server, pending, register, text_of
from tests.e2e.ui_support import UI, _chromium, browser, human, say, scratch_room  # noqa: F401

pytestmark = pytest.mark.anyio


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[RunningServer]:
    with module_server(tmp_path_factory, "ui-pins") as running:
        yield running


def channel(server: RunningServer, name: str, *texts: str) -> None:
    with human(server.url, server.secret) as client:
        assert client.post("/api/channels", json={"name": name}).status_code == 201
    for text in texts:
        say(server.url, server.secret, text, channel=name)


async def toolbar(page: Page, text: str, action: str) -> None:
    """Click ``action`` in the hover toolbar of the message showing ``text``."""
    msg = page.locator(".messages > li.msg", has_text=text)
    await msg.hover()
    await msg.get_by_role("button", name=action, exact=True).click()


async def test_pin_done_and_unpin_show_live_in_a_second_page_and_clear_empties_every_open_page(
    server: RunningServer,
    browser: Browser,  # noqa: F811  # pytest fixture
) -> None:
    """Two pages of #pin-ui: pin, done and unpin; then both move to #clear-ui and /clear it."""
    channel(server, "pin-ui", "Rotate the deploy keys on Friday", "just chatter")
    channel(server, "clear-ui", "one", "two", "three")
    ui = UI(browser, server.url)
    page = await ui.open(storage={"channel": "pin-ui"})
    other = await ui.open("carol", storage={"channel": "pin-ui"})
    await other.get_by_role("button", name=re.compile("^Pins")).click()
    panel = other.locator("#pins-panel")
    await expect(panel.locator(".pins-empty")).to_contain_text("Nothing is pinned in #pin-ui")

    await toolbar(page, "Rotate the deploy keys", "Pin")
    mine = page.locator(".messages > li.msg", has_text="Rotate the deploy keys")
    await expect(mine.locator(".pin-marker")).to_have_text("Pinned")
    await expect(page.get_by_role("button", name="Pins, 1 open")).to_be_visible()
    # The second page: the panel lists it, the timeline marks it, the button counts it.
    item = panel.locator(".pin-item", has_text="Rotate the deploy keys")
    await expect(item).to_be_visible()
    await expect(item.locator(".pin-by")).to_contain_text("pinned by ben")
    theirs = other.locator(".messages > li.msg", has_text="Rotate the deploy keys")
    await expect(theirs.locator(".pin-marker")).to_have_text("Pinned")
    await expect(other.locator("#pins-badge")).to_have_text("1")

    # Mark done from the panel, by keyboard: the first page sees it at once.
    await item.get_by_role("button", name=re.compile("^Mark done")).focus()
    await other.keyboard.press("Enter")
    await expect(item).to_have_class(re.compile(r"\bdone\b"))
    await expect(item.get_by_role("button", name=re.compile("^Mark not done"))).to_be_focused()
    await expect(mine.locator(".pin-marker")).to_have_text("Done")
    await expect(page.locator("#pins-badge")).to_be_hidden()
    # Jump from the panel closes it and focuses the message; Escape closes it too.
    await item.locator(".pin-jump").click()
    await expect(theirs).to_be_focused()
    await expect(panel).to_be_hidden()
    await other.get_by_role("button", name=re.compile("^Pins")).click()
    await expect(panel).to_be_visible()
    await other.keyboard.press("Escape")
    await expect(panel).to_be_hidden()
    await expect(other.get_by_role("button", name=re.compile("^Pins"))).to_be_focused()

    # Unpin from the toolbar: gone from the other page's marker and panel.
    await toolbar(page, "Rotate the deploy keys", "Unpin")
    await expect(mine.locator(".pin-marker")).to_have_count(0)
    await expect(theirs.locator(".pin-marker")).to_have_count(0)
    await other.get_by_role("button", name="Pins").click()
    await expect(panel.locator(".pin-item")).to_have_count(0)
    await other.keyboard.press("Escape")
    await expect(panel).to_be_hidden()

    # Both pages move to #clear-ui: /clear asks with the count, then empties every open page.
    for p in (page, other):
        await p.locator("#channel-list .channel[data-channel=clear-ui]").click()
        await expect(p.locator("#channel-title")).to_have_text("#clear-ui")
    await expect(other.locator(".messages > li.msg")).to_have_count(3)
    box = page.get_by_label("Message #clear-ui")
    await box.fill("/clear")
    await expect(page.locator("#suggest")).to_contain_text("/clear")
    await box.press("Enter")
    await expect(page.locator("#dialog-title")).to_have_text("Clear #clear-ui?")
    await expect(page.locator("#dialog-body")).to_contain_text("all 3 messages in #clear-ui")
    # Cancel first: nothing happens.
    await page.keyboard.press("Escape")
    await expect(page.locator("#dialog")).to_be_hidden()
    await expect(other.locator(".messages > li.msg")).to_have_count(3)
    await box.fill("/clear")
    await box.press("Enter")
    await page.get_by_role("button", name="Delete 3 messages").click()
    await expect(page.locator("#toast")).to_contain_text("Cleared #clear-ui: 3 messages deleted")
    await expect(page.locator(".messages > li.msg")).to_have_count(0)
    await expect(other.locator(".messages > li.msg")).to_have_count(0)
    say(server.url, server.secret, "after the clear", channel="clear-ui")
    await expect(other.locator(".messages > li.msg")).to_have_text([re.compile("after the clear")])
    assert ui.errors == []


async def test_replying_to_an_agent_mentions_it_and_copy_gives_markdown(
    server: RunningServer,
    browser: Browser,  # noqa: F811  # pytest fixture
) -> None:
    channel(server, "reply-ui")
    agent = await register(server.url, "gemini", "reply-ui")
    async with mcp_client(server.url, agent["token"]) as client:
        sent = await client.call_tool(
            "chat_send", {"message": "Done: **tests** pass.", "channel": "reply-ui"}
        )
        assert not sent.is_error, text_of(sent)
    ui = UI(browser, server.url)
    page = await ui.open(storage={"channel": "reply-ui"})
    await page.context.grant_permissions(["clipboard-read", "clipboard-write"], origin=server.url)
    await toolbar(page, "tests pass", "Reply")
    box = page.get_by_label("Message #reply-ui")
    await expect(box).to_be_focused()
    await expect(box).to_have_value(f"@{agent['name']} ")
    await box.press_sequentially("thanks!")
    await box.press("Enter")
    reply = page.locator(".messages > li.msg", has_text="thanks!")
    await expect(reply.locator(".quote")).to_contain_text(agent["name"])
    [woke] = await pending(server, agent["name"])  # the mention wakes the agent
    assert woke.channel == "reply-ui" and woke.sender == "ben"
    # Copy as Markdown: the raw text, with a quoted line for what it answers.
    await toolbar(page, "thanks!", "Copy as Markdown")
    await expect(page.locator("#toast")).to_have_text("Copied as Markdown.")
    copied = await page.evaluate("navigator.clipboard.readText()")
    assert copied == f"> {agent['name']}: Done: tests pass.\n\n@{agent['name']} thanks!"
    assert ui.errors == []


async def test_a_job_thread_message_is_pinned_from_its_toolbar_and_cards_follow_agent_colours(
    server: RunningServer,
    browser: Browser,  # noqa: F811  # pytest fixture
) -> None:
    channel(server, "job-pins")
    agent = await register(server.url, "codex", instance_id="job-pins")
    with human(server.url, server.secret) as client:
        job = client.post(
            "/api/jobs", json={"title": "Thread pin job", "channel": "job-pins", "assignee": agent["name"]}
        ).json()
        said = client.post(f"/api/jobs/{job['id']}/messages", json={"text": "Keep the rollback plan"})
        assert said.status_code == 201, said.text
    ui = UI(browser, server.url)
    page = await ui.open(storage={"channel": "job-pins"})
    await page.get_by_role("button", name=re.compile("^Jobs")).click()
    chip = page.locator(".job-card", has_text="Thread pin job").locator(".job-assignee-chip")
    # A colour picked elsewhere (a presence event) redraws the card at once.
    with human(server.url, server.secret) as client:
        assert client.patch(f"/api/agents/{agent['name']}", json={"color": "#0f766e"}).status_code == 200
    await expect(chip).to_have_attribute("style", re.compile("#0f766e"))

    await page.locator(".job-card", has_text="Thread pin job").locator(".job-open").click()
    msg = page.locator(".job-thread .msg", has_text="Keep the rollback plan")
    await msg.hover()
    await msg.get_by_role("button", name="Pin", exact=True).click()
    await expect(msg.locator(".pin-marker")).to_have_text("Pinned")
    await expect(page.locator("#pins-badge")).to_have_text("1")
    await msg.hover()
    await msg.get_by_role("button", name="Unpin", exact=True).click()
    await expect(msg.locator(".pin-marker")).to_have_count(0)
    assert ui.errors == []


async def test_help_tour_shows_once_on_the_first_visit_and_works_by_keyboard(
    server: RunningServer,
    browser: Browser,  # noqa: F811  # pytest fixture
) -> None:
    ui = UI(browser, server.url)
    page = await ui.open(storage={"helpSeen": False}, fake_clock=True)
    dialog = page.locator("#help-dialog")
    await page.clock.run_for(1000)
    await expect(dialog).to_be_visible()
    await expect(dialog.locator(".help-step")).to_have_text("1 of 5")
    await expect(dialog.locator(".help-point dt", has_text="Pins")).to_be_visible()
    await expect(page.get_by_role("button", name="Next")).to_be_focused()
    await page.keyboard.press("ArrowRight")
    await expect(dialog.locator("#help-title")).to_have_text(re.compile("^Jobs"))
    await page.keyboard.press("Enter")  # Next
    await expect(dialog.locator("#help-title")).to_have_text(re.compile("^Rules"))
    await page.keyboard.press("Escape")
    await expect(dialog).to_be_hidden()
    # Every way out counts as seen, stored by the dialog's close event, which runs a moment after
    # the dialog hides: a reload before it would show the tour again (the page clock is fake, so
    # poll from here rather than with the page's timers).
    for _ in range(200):
        if await page.evaluate("() => localStorage.getItem('bc.helpSeen')") == "true":
            break
        await anyio.sleep(0.02)
    assert await page.evaluate("() => localStorage.getItem('bc.helpSeen')") == "true"

    # Seen once: a reload does not show it again...
    await page.reload()
    await expect(page.locator("#conn")).to_have_attribute("data-state", "live")
    await page.clock.run_for(1000)
    await expect(dialog).to_be_hidden()
    # ...and "?" opens it from the keyboard, at the first screen; Escape gives the focus back.
    help_button = page.get_by_role("button", name="Help")
    await help_button.focus()
    await page.keyboard.press("Enter")
    await expect(dialog).to_be_visible()
    for title in ("Mention", "Jobs", "Rules", "Sessions", "Schedules"):
        await expect(dialog.locator("#help-title")).to_contain_text(title)
        await page.keyboard.press("ArrowRight")
    await expect(dialog.locator("#help-title")).to_contain_text("Schedules")  # the last screen
    await expect(page.get_by_role("button", name="Done")).to_be_visible()
    await page.keyboard.press("Escape")
    await expect(dialog).to_be_hidden()
    await expect(help_button).to_be_focused()
    assert ui.errors == []


# -- screenshots (not a test) -------------------------------------------------------------------------
async def _screenshots(out: Path) -> None:
    ids: list[int] = []

    async def build(server: RunningServer) -> None:
        codex = await register(server.url, "codex", "shots")
        say(server.url, server.secret, "Release plan: freeze on **Thursday**, ship Friday morning.")
        async with mcp_client(server.url, codex["token"]) as client:
            await client.call_tool("chat_send", {"message": "I'll draft the changelog and tag v0.5."})
        say(server.url, server.secret, "Remember: rotate the deploy keys before the release.")
        with human(server.url, server.secret) as c:
            ids.extend(m["id"] for m in c.get("/api/channels/general/messages").json()["messages"])
            for mid in ids:
                c.post(f"/api/messages/{mid}/pin")
            c.patch(f"/api/messages/{ids[0]}/pin", json={"done": True})

    async with scratch_room(build) as (server, chromium):
        ui = UI(chromium, server.url)
        for label, scheme, viewport in (
            ("light", "light", {"width": 1200, "height": 760}),
            ("dark", "dark", {"width": 1200, "height": 760}),
            ("phone", "light", {"width": 390, "height": 800}),
        ):
            page = await ui.open("maya", color_scheme=scheme, viewport=viewport)  # type: ignore[arg-type]
            await page.get_by_role("button", name=re.compile("^Pins")).click()
            await expect(page.locator(".pin-item")).to_have_count(len(ids))
            await page.screenshot(path=str(out / f"pins-{label}.png"))
            await page.keyboard.press("Escape")
            await page.get_by_role("button", name="Help").click()
            await page.keyboard.press("ArrowRight")
            await page.screenshot(path=str(out / f"help-{label}.png"))
            await page.keyboard.press("Escape")
            await page.locator(".messages > li.msg", has_text="rotate the deploy keys").hover()
            await page.screenshot(path=str(out / f"marker-{label}.png"))


if __name__ == "__main__":
    target = Path(sys.argv[1]) if len(sys.argv) > 1 else Path(tempfile.mkdtemp(prefix="pins-shots-"))
    target.mkdir(parents=True, exist_ok=True)
    anyio.run(_screenshots, target)
    print(target)
