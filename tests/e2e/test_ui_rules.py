"""Rules and room settings in the browser: a rule proposed over MCP and activated from its card,
the rules panel driven by the keyboard only, the 10-active limit shown before it bites, and room
settings reaching a second page live and surviving a reload.

One server for the module: each test makes and checks only its own rules.
"""

from __future__ import annotations

import re
from collections.abc import Iterator
from typing import Any

import pytest
from playwright.async_api import Browser, Page, expect

from tests.conftest import RunningServer, mcp_client, module_server, register
from tests.e2e.test_ui_a11y import CONTRAST_JS, UNNAMED_JS
from tests.e2e.ui_support import UI, _chromium, browser, human, rest  # noqa: F401

pytestmark = pytest.mark.anyio
SEEN = {"helpSeen": True}  # no first-visit tour over the page
COUNT_BEEPS = """
window.beeps = 0;
const Real = window.AudioContext;
window.AudioContext = class extends Real {
  createOscillator() { window.beeps += 1; return super.createOscillator(); }
};
"""


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[RunningServer]:
    with module_server(tmp_path_factory, "ui-rules") as running:
        yield running


def rules(server: RunningServer, status: str) -> list[dict[str, Any]]:
    return [r for r in rest(server, "GET", "/api/rules") if r["status"] == status]


async def open_rules(page: Page) -> None:
    if await page.locator("#rules-panel").is_visible():
        return
    await page.locator("#rules-toggle").click()
    await expect(page.locator("#rules-panel")).to_be_visible()


async def test_a_rule_proposed_over_mcp_is_activated_from_its_card_and_every_page_sees_it(
    server: RunningServer,
    browser: Browser,  # noqa: F811  # pytest fixture
) -> None:
    claude = await register(server.url, "claude")
    ui = UI(browser, server.url)
    page = await ui.open("ben", storage=SEEN)
    other = await ui.open("ben", storage=SEEN)
    async with mcp_client(server.url, claude["token"]) as agent:
        await agent.call_tool(
            "chat_rules",
            {"action": "propose", "rule": "Run the tests before saying done", "reason": "CI is slow"},
        )
        await agent.call_tool("chat_rules", {"action": "propose", "rule": "Keep replies under ten lines"})
    card = page.locator(".rule-proposal", has_text="Run the tests before saying done")
    await expect(card.locator(".rule-why")).to_have_text("Why: CI is slow")
    for name in ("Activate", "Add to drafts", "Dismiss"):
        await expect(card.get_by_role("button", name=name)).to_be_visible()
    await card.get_by_role("button", name="Activate").click()

    mirror = other.locator(".rule-proposal", has_text="Run the tests before saying done")
    await expect(mirror.locator(".outcome")).to_have_text("ben activated it")
    await expect(mirror.get_by_role("button")).to_have_count(0)
    await expect(card.get_by_role("button")).to_have_count(0)
    await open_rules(other)
    await expect(other.locator("#rule-list-active .rule-card", has_text="Run the tests")).to_be_visible()
    await expect(other.locator("#rules-toggle")).to_have_accessible_name(
        re.compile(r"^Rules, \d+ of 10 active$")
    )

    # The second card goes to drafts from the other page; the first page sees the receipt.
    await (
        other.locator(".rule-proposal", has_text="ten lines")
        .get_by_role("button", name="Add to drafts")
        .click()
    )
    receipt = page.locator(".rule-proposal", has_text="ten lines").locator(".outcome")
    await expect(receipt).to_have_text("ben added it to drafts")
    assert "Keep replies under ten lines" in [r["text"] for r in rules(server, "draft")]
    await open_rules(page)
    await expect(page.locator("#rule-list-draft .rule-card", has_text="ten lines")).to_be_visible()
    assert await page.evaluate(UNNAMED_JS) == []
    assert await page.evaluate(CONTRAST_JS) == []
    assert not ui.errors


async def test_the_rules_panel_creates_edits_and_reorders_by_keyboard_only_and_by_drag(
    server: RunningServer,
    browser: Browser,  # noqa: F811  # pytest fixture
) -> None:
    ui = UI(browser, server.url)
    page = await ui.open("ben", storage=SEEN)
    kb = page.keyboard
    await page.locator("#rules-toggle").focus()
    await kb.press("Enter")
    await expect(page.locator("#rules-panel")).to_be_visible()
    await page.get_by_role("button", name="New rule").focus()
    await kb.press("Enter")
    text = page.get_by_role("textbox", name="Rule", exact=True)
    await expect(text).to_be_focused()
    await kb.type("Write docstrings that say why")
    await expect(page.locator(".rule-create .counter").first).to_have_text("29/160")
    await kb.press("Enter")  # Enter adds it as a draft, and the box is ready for the next one
    await expect(text).to_have_value("")
    await kb.type("Small commits")
    await kb.press("Enter")
    drafts = page.locator("#rule-list-draft .rule-card .rule-text")
    await expect(drafts.filter(has_text="Small commits")).to_be_visible()
    await kb.press("Escape")
    await expect(page.locator(".rule-create")).to_be_hidden()

    # Alt+ArrowUp moves the focused rule up its group; the server keeps the order.
    def draft_texts() -> list[str]:
        mine = ("Small commits", "Small, focused commits", "Write docstrings that say why")
        return [r["text"] for r in rules(server, "draft") if r["text"] in mine]

    assert draft_texts() == ["Write docstrings that say why", "Small commits"]
    small = page.locator("#rule-list-draft .rule-card", has_text="Small commits").locator(".rule-main")
    await small.focus()
    async with page.expect_response(lambda r: r.url.endswith("/api/rules/reorder")) as moved:
        await kb.press("Alt+ArrowUp")
    assert (await moved.value).ok
    await expect(small).to_be_focused()
    assert draft_texts() == ["Small commits", "Write docstrings that say why"]

    # Enter edits inline; Enter saves, and focus comes back to the rule.
    await kb.press("Enter")
    editor = page.locator(".rule-edit textarea")
    await expect(editor).to_be_focused()
    await kb.press("ControlOrMeta+a")
    await kb.type("Small, focused commits")
    await kb.press("Enter")
    saved = page.locator("#rule-list-draft .rule-card", has_text="Small, focused commits")
    await expect(saved.locator(".rule-main")).to_be_focused()
    assert "Small, focused commits" in [r["text"] for r in rules(server, "draft")]

    # A mouse drags a rule to another place in its group, in one call.
    docs = page.locator("#rule-list-draft .rule-card", has_text="Write docstrings")
    async with page.expect_response(lambda r: r.url.endswith("/api/rules/reorder")) as dragged:
        await docs.drag_to(saved, target_position={"x": 40, "y": 4})
    assert (await dragged.value).ok
    assert draft_texts()[:1] == ["Write docstrings that say why"]
    await saved.locator(".rule-main").focus()

    # Tab reaches its buttons: Activate moves it to Active, with focus kept on it.
    await kb.press("Tab")
    await expect(saved.get_by_role("button", name="Activate")).to_be_focused()
    await kb.press("Enter")
    await expect(
        page.locator("#rule-list-active .rule-card", has_text="Small, focused commits")
    ).to_be_visible()
    assert "Small, focused commits" in [r["text"] for r in rules(server, "active")]

    # Delete asks first (the safe button has the focus); confirming removes it everywhere.
    await docs.get_by_role("button", name="Delete").focus()
    await kb.press("Enter")
    confirm = page.get_by_role("dialog", name="Delete this rule?")
    await expect(confirm.get_by_role("button", name="Cancel")).to_be_focused()
    await kb.press("Tab")
    await kb.press("Enter")
    await expect(docs).to_have_count(0)
    assert "Write docstrings that say why" not in [r["text"] for r in rest(server, "GET", "/api/rules")]
    assert not ui.errors


async def test_the_ten_active_limit_is_shown_before_it_bites(
    server: RunningServer,
    browser: Browser,  # noqa: F811  # pytest fixture
) -> None:
    have = len(rules(server, "active"))
    made = [
        rest(server, "POST", "/api/rules", json={"text": f"Limit rule {i}", "status": "active"})["id"]
        for i in range(10 - have)
    ]
    spare = rest(server, "POST", "/api/rules", json={"text": "Limit spare draft"})["id"]
    try:
        ui = UI(browser, server.url)
        page = await ui.open("ben", storage=SEEN, color_scheme="dark")
        await expect(page.locator("#rules-toggle .rules-count")).to_have_text("10/10")
        await open_rules(page)
        note = page.locator("#rule-limit-note")
        await expect(note).to_have_text(re.compile("^10 rules are active"))
        activate = page.locator("#rule-list-draft .rule-card", has_text="Limit spare draft").get_by_role(
            "button", name="Activate"
        )
        await expect(activate).to_have_attribute("aria-disabled", "true")
        await expect(activate).to_have_accessible_description(re.compile("^10 rules are active"))
        await activate.focus()  # still focusable, so its reason is read out; pressing it explains
        await page.keyboard.press("Enter")
        await expect(page.locator("#toast")).to_have_text(re.compile("^10 rules are active"))
        assert await page.evaluate(UNNAMED_JS) == []
        assert await page.evaluate(CONTRAST_JS) == []
        assert rest(server, "GET", "/api/rules") and len(rules(server, "active")) == 10
        # One archived elsewhere: this page can activate again, live.
        rest(
            server,
            "PATCH",
            f"/api/rules/{made[0] if made else rules(server, 'active')[0]['id']}",
            json={"status": "archived"},
        )
        await expect(page.locator("#rules-toggle .rules-count")).to_have_text("9/10")
        await expect(activate).not_to_have_attribute("aria-disabled", "true")
        await expect(note).to_have_text("1 more can be active.")
        async with page.expect_response(lambda r: r.url.endswith("/api/rules/remind")) as reminded:
            await page.get_by_role("button", name="Remind agents").click()
        assert (await reminded.value).ok
        await expect(page.locator("#toast")).to_have_text(
            re.compile("^Every agent gets the active rules again")
        )
        assert not ui.errors
    finally:
        for rid in [*made, spare]:
            with human(server.url, server.secret) as client:
                client.delete(f"/api/rules/{rid}")


async def test_room_settings_apply_live_survive_a_reload_and_a_save_sends_only_this_persons_edits(
    server: RunningServer,
    browser: Browser,  # noqa: F811  # pytest fixture
) -> None:
    """Settings saved on one page reach the other live and survive its reload; then the first page
    saves again while someone else changes settings, and sends only its own edits."""
    codex = await register(server.url, "codex")
    ui = UI(browser, server.url)
    page = await ui.open("ben", storage=SEEN)
    # The other page has its alert sound on; count the beeps it makes.
    other = await ui.open("ben", storage={**SEEN, "sound": True}, init_script=COUNT_BEEPS)
    mention = other.locator(".msg", has_text="sound check")

    async def ping(text: str) -> None:
        async with mcp_client(server.url, codex["token"]) as agent:
            await agent.call_tool("chat_send", {"message": f"@ben {text}"})
        await expect(mention.filter(has_text=text)).to_be_visible()

    await ping("sound check one")
    assert await other.evaluate("window.beeps") == 1
    await page.get_by_role("button", name="Room settings").click()
    dialog = page.get_by_role("dialog", name="Room settings")
    await expect(dialog).to_be_visible()
    await dialog.get_by_label("Room title").fill("Ops room")
    hops = dialog.get_by_role("spinbutton", name="Loop guard hops")
    await hops.fill("99")
    await dialog.get_by_label("New custom role").fill("security")
    await dialog.get_by_label("New custom role").press("Enter")
    await expect(dialog.get_by_role("button", name="Remove role security")).to_be_visible()
    assert await page.evaluate(UNNAMED_JS) == []
    assert await page.evaluate(CONTRAST_JS) == []
    await dialog.get_by_role("button", name="Save").click()
    # The server refuses 99; its message sits under the field, and nothing was saved.
    await expect(hops).to_have_attribute("aria-invalid", "true")
    await expect(dialog.locator("#setting-loop_guard_hops-error")).to_have_text(re.compile(r"\S"))
    assert rest(server, "GET", "/api/settings")["title"] != "Ops room"
    await hops.fill("7")
    await dialog.get_by_label("Alert sounds").uncheck()
    await dialog.get_by_role("button", name="Save").click()
    await expect(dialog).to_be_hidden()

    await expect(other.locator(".brand-name")).to_have_text("Ops room")
    await expect(other).to_have_title(re.compile(r"· Ops room$"))
    await expect(other.locator("#sound-toggle")).to_have_attribute("title", re.compile("off for this room"))
    await ping("sound check two")  # sounds are off for the room: this page stays silent
    assert await other.evaluate("window.beeps") == 1
    saved = rest(server, "GET", "/api/settings")
    assert (saved["title"], saved["loop_guard_hops"], saved["sounds"]) == ("Ops room", 7, False)
    assert saved["custom_roles"] == ["security"]

    await other.reload()
    await expect(other.locator(".brand-name")).to_have_text("Ops room")
    await other.get_by_role("button", name="Room settings").click()
    again = other.get_by_role("dialog", name="Room settings")
    await expect(again.get_by_role("spinbutton", name="Loop guard hops")).to_have_value("7")
    await expect(again.get_by_role("button", name="Remove role security")).to_be_visible()
    await expect(again.get_by_label("Alert sounds")).not_to_be_checked()

    # The first page, still open, saves again: only this person's edits are sent.
    start = {"title": "Room A", "loop_guard_hops": 4, "custom_roles": ["scribe"], "sounds": True}
    rest(server, "PATCH", "/api/settings", json=start)
    await expect(page.locator(".brand-name")).to_have_text("Room A")  # the page has the new settings
    await page.get_by_role("button", name="Room settings").click()
    dialog = page.get_by_role("dialog", name="Room settings")
    await expect(dialog.get_by_role("button", name="Remove role scribe")).to_be_visible()
    # Meanwhile someone else (or an agent's role picker) saves a role and changes the loop guard.
    rest(server, "PATCH", "/api/settings", json={"custom_roles": ["scribe", "oncall"], "loop_guard_hops": 9})
    await expect(dialog.get_by_role("button", name="Remove role oncall")).to_be_visible()
    await expect(dialog.get_by_role("spinbutton", name="Loop guard hops")).to_have_value("9")
    # This person edits the title and the roles they saw: removes scribe, adds qa.
    await dialog.get_by_label("Room title").fill("Room B")
    await dialog.get_by_role("button", name="Remove role scribe").click()
    await dialog.get_by_label("New custom role").fill("qa")
    await dialog.get_by_label("New custom role").press("Enter")
    async with page.expect_request(lambda r: r.url.endswith("/api/settings") and r.method == "PATCH") as sent:
        await dialog.get_by_role("button", name="Save").click()
    await expect(dialog).to_be_hidden()
    assert (await sent.value).post_data_json == {"title": "Room B", "custom_roles": ["oncall", "qa"]}
    saved = rest(server, "GET", "/api/settings")
    assert (saved["title"], saved["loop_guard_hops"], saved["custom_roles"]) == (
        "Room B",
        9,
        ["oncall", "qa"],
    )
    assert not ui.errors


async def test_channel_rules_follow_a_channel_rename_in_the_open_panel(
    server: RunningServer,
    browser: Browser,  # noqa: F811  # pytest fixture
) -> None:
    rest(server, "POST", "/api/channels", json={"name": "rename-me"})
    made = rest(server, "POST", "/api/rules", json={"text": "Only here: be brief", "channel": "rename-me"})
    try:
        ui = UI(browser, server.url)
        page = await ui.open("ben", storage=SEEN)
        await open_rules(page)
        card = page.locator("#rules-panel .rule-card", has_text="Only here: be brief")
        await expect(card).to_contain_text("#rename-me only")
        rest(server, "PATCH", "/api/channels/rename-me", json={"name": "renamed"})
        await expect(card).to_contain_text("#renamed only")
        assert not ui.errors
    finally:
        with human(server.url, server.secret) as client:
            client.delete(f"/api/rules/{made['id']}")


TOPBAR_JS = """() => {
  const box = (id) => { const r = document.getElementById(id).getBoundingClientRect();
    return {x: r.left, right: r.right, y: r.top + r.height / 2, w: r.width}; };
  const title = document.getElementById('channel-title');
  return {
    buttons: ['pins-toggle', 'rules-toggle', 'jobs-toggle', 'settings-toggle', 'help-toggle'].map(box),
    title: {...box('channel-title'), truncated: title.scrollWidth > title.clientWidth,
            ellipsis: getComputedStyle(title).textOverflow},
    search: box('search-form'),
    width: document.documentElement.clientWidth,
  };
}"""


async def test_the_topbar_is_one_row_in_order_on_a_phone_and_says_rules_on_desktop(
    server: RunningServer,
    browser: Browser,  # noqa: F811  # pytest fixture
) -> None:
    long = "a-long-channel-name-on-a-phone"
    rest(server, "POST", "/api/channels", json={"name": long})
    ui = UI(browser, server.url)
    phone = await ui.open(
        "ben", storage={**SEEN, "channel": long}, viewport={"width": 390, "height": 700}, color_scheme="dark"
    )
    await expect(phone.locator("#channel-title")).to_contain_text(long)
    bar = await phone.evaluate(TOPBAR_JS)
    buttons = bar["buttons"]
    # Pins, Rules, Jobs, gear, ?: one row, left to right, all inside the screen
    assert all(abs(b["y"] - buttons[0]["y"]) < 2 for b in buttons), buttons
    assert all(a["right"] <= b["x"] for a, b in zip(buttons, buttons[1:], strict=False)), buttons
    assert buttons[-1]["right"] <= bar["width"]
    # the channel's name keeps a readable width and truncates with an ellipsis
    assert abs(bar["title"]["y"] - buttons[0]["y"]) < 2 and bar["title"]["w"] >= 70, bar["title"]
    assert bar["title"]["truncated"] and bar["title"]["ellipsis"] == "ellipsis"
    # search is an icon that opens over the bar when focused
    assert bar["search"]["w"] <= 40 and bar["search"]["right"] <= buttons[0]["x"], bar["search"]
    search = phone.get_by_role("searchbox", name="Search all channels")
    await search.click()
    assert (await search.bounding_box() or {"width": 0})["width"] > 300
    await phone.keyboard.press("Escape")
    # the channel's mute / rename / delete fold behind one "…" button
    more = phone.get_by_role("button", name="Channel actions")
    await more.click()
    await expect(phone.get_by_role("button", name=f"Mute #{long}")).to_be_focused()
    await expect(phone.get_by_role("button", name="Rename channel")).to_be_visible()
    await phone.keyboard.press("Escape")
    await expect(phone.get_by_role("button", name="Rename channel")).to_be_hidden()
    await expect(more).to_be_focused()
    for name in ("Pins", "Rules", "Jobs", "Room settings", "Help"):
        await expect(phone.get_by_role("button", name=re.compile(f"^{name}"))).to_be_visible()
    assert await phone.evaluate(CONTRAST_JS) == []

    # Desktop, with the rules panel open: the word "Rules" and its n/10 badge both show, and the
    # button's accessible name starts with what it shows.
    desk = await ui.open("ben", storage=SEEN, viewport={"width": 1280, "height": 700})
    await open_rules(desk)
    toggle = desk.locator("#rules-toggle")
    await expect(toggle.locator(".rules-toggle-text")).to_have_text("Rules")
    assert (await toggle.locator(".rules-toggle-text").bounding_box() or {"width": 0})["width"] > 20
    await expect(toggle.locator(".rules-count")).to_have_text(re.compile(r"^\d+/10$"))
    await expect(toggle).to_have_accessible_name(re.compile(r"^Rules, \d+ of 10 active$"))
    bar = await desk.evaluate(TOPBAR_JS)
    assert all(abs(b["y"] - bar["buttons"][0]["y"]) < 2 for b in bar["buttons"]), bar["buttons"]
    assert not ui.errors
