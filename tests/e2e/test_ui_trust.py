"""Issue 8, items 12-19: the composer and timeline a new user trusts (real server, real chromium).

Few tests, many checks each: a page load is the expensive part.
"""

from __future__ import annotations

import re
from collections.abc import Callable

import anyio
import httpx
import pytest
from playwright.async_api import Browser, Page, expect

from tests.conftest import RunningServer, mcp_client, register
from tests.e2e.ui_support import UI, _chromium, browser, human, say, seed  # noqa: F401  # `browser` is a fixture

pytestmark = pytest.mark.anyio

# Counts beeps and notifications instead of making them (the page's alert path runs unchanged).
ALERT_SPY = """
window.__alerts = [];
class FakeAudio {
  constructor() { this.currentTime = 0; this.destination = {}; }
  createOscillator() {
    return { frequency: {}, connect: (g) => g, start: () => window.__alerts.push('beep'), stop() {} };
  }
  createGain() {
    return { gain: { setValueAtTime() {}, exponentialRampToValueAtTime() {} }, connect: (d) => d };
  }
}
window.AudioContext = FakeAudio;
"""


def texts(url: str, secret: str, channel: str) -> list[str]:
    with human(url, secret) as client:
        return [m["text"] for m in client.get(f"/api/channels/{channel}/messages").json()["messages"]]


def call_me(url: str, secret: str, name: str) -> None:
    """Name the local person (the server names people now; a page's stored name is only a fallback)."""
    with human(url, secret) as client:
        r = client.put("/api/me", json={"name": name})
        assert r.status_code in (200, 404, 405), r.text


async def channel(page: Page, name: str) -> None:
    await page.locator(f"#channel-list .channel[data-channel={name}]").click()
    await expect(page.locator("#channel-title")).to_contain_text(name)


async def test_composer_state_stays_in_its_channel_toolbar_unclipped_unknown_commands_refused(
    server: RunningServer,
    browser: Browser,  # noqa: F811  # pytest fixture
) -> None:
    with human(server.url, server.secret) as client:
        assert client.post("/api/channels", json={"name": "review"}).status_code == 201
    agent = await register(server.url, "codex")
    async with mcp_client(server.url, agent["token"]) as mcp:
        await mcp.call_tool("chat_send", {"message": "from the agent"})
    ui = UI(browser, server.url)
    page = await ui.open("ben")
    box = page.locator("#composer-input")
    for text in ("first of mine", "second of mine"):
        await box.fill(text)
        await box.press("Enter")
        await expect(page.locator(".msg", has_text=text)).to_have_count(1)
    second = page.locator(".msg", has_text="second of mine")
    await expect(second).to_have_class(re.compile("grouped"))

    # Item 12: Up edits in #general; in #review that edit is not in force and Enter posts there.
    await box.press("ArrowUp")
    await expect(page.locator("#composer-context")).to_be_visible()
    await expect(box).to_have_value("second of mine")
    await channel(page, "review")
    await expect(page.locator("#composer-context")).to_be_hidden()
    await expect(box).to_have_value("")
    await box.fill("posted in review")
    await box.press("Enter")
    await expect(page.locator(".msg", has_text="posted in review")).to_have_count(1)
    assert texts(server.url, server.secret, "general")[-1] == "second of mine"
    # Back in #general the edit is where it was left; finishing it edits the right message.
    await channel(page, "general")
    await expect(page.locator("#composer-context")).to_be_visible()
    await expect(box).to_have_value("second of mine")
    await box.fill("second of mine, fixed")
    await box.press("Enter")
    await expect(second).to_contain_text("second of mine, fixed")
    # Item 15: "(edited)" shows on a grouped follow-up too.
    await expect(second).to_have_class(re.compile("grouped"))
    await expect(second.locator(".edited:visible")).to_have_count(1)

    # Reply mode and a draft stay in #general as well.
    await page.locator(".msg", has_text="from the agent").hover()
    await page.locator(".msg", has_text="from the agent").get_by_role("button", name="Reply").click()
    await box.fill("draft reply")
    await channel(page, "review")
    await expect(page.locator("#composer-context")).to_be_hidden()
    await expect(box).to_have_value("")
    await box.fill("plain in review")
    await box.press("Enter")
    await expect(page.locator(".msg", has_text="plain in review")).to_have_count(1)
    await expect(page.locator(".msg", has_text="plain in review").locator(".quote")).to_have_count(0)
    await channel(page, "general")
    await expect(page.locator("#composer-context")).to_contain_text("Replying to codex")
    await expect(box).to_have_value("draft reply")
    await box.press("Enter")
    await expect(page.locator(".msg", has_text="draft reply").locator(".quote")).to_contain_text("codex")

    # Item 13: the hover toolbar is painted whole: its top edge is hit by the pointer, not the row above.
    target = page.locator(".msg", has_text="draft reply")
    await target.hover()
    reply = target.get_by_role("button", name="Reply", exact=True)
    box_ = await reply.bounding_box()
    assert box_ is not None
    hit = await page.evaluate(
        "([x, y]) => document.elementFromPoint(x, y)?.closest('.actions') !== null",
        [box_["x"] + box_["width"] / 2, box_["y"] + 2],
    )
    assert hit, "the top of the toolbar is clipped"

    # Item 16: an unknown command is refused, kept in the box, and never posted.
    await box.fill("/nosuchcommand")
    await box.press("Enter")
    await expect(page.locator("#toast")).to_contain_text("Unknown command /nosuchcommand")
    await expect(box).to_have_value("/nosuchcommand")
    assert "/nosuchcommand" not in texts(server.url, server.secret, "general")

    # Edit and Delete only on your own messages once the server says who you are.
    with human(server.url, server.secret) as client:
        has_me = client.get("/api/me").status_code == 200
    theirs = page.locator(".msg.agent", has_text="from the agent")
    await theirs.hover()
    await expect(theirs.get_by_role("button", name="Reply")).to_be_visible()
    await expect(theirs.get_by_role("button", name="Edit")).to_have_count(0)
    if has_me:
        await expect(theirs.get_by_role("button", name="Delete")).to_have_count(0)
    mine = page.locator(".msg", has_text="first of mine")
    await mine.hover()
    await expect(mine.get_by_role("button", name="Delete")).to_be_visible()
    assert ui.errors == []


async def test_long_unread_history_follow_mode_and_the_start_of_the_channel(
    server: RunningServer,
    browser: Browser,  # noqa: F811  # pytest fixture
) -> None:
    ids = await seed(server.settings.db_path, [f"old {i}" for i in range(120)])
    ui = UI(browser, server.url)
    # Read up to "old 9": 110 unread, more than one page.
    page = await ui.open("ben", storage={"read": {"general": ids[9]}})
    await expect(page.locator(".msg", has_text="old 119")).to_be_visible()
    # Item 15: the "New" divider is not put on the oldest loaded message; a bar offers the way back.
    bar = page.locator("#unread-bar")
    await expect(bar).to_be_visible()
    await expect(page.locator(".unread-divider")).to_have_count(0)
    await bar.get_by_role("button", name="Jump to first unread").click()
    divider = page.locator(".unread-divider")
    await expect(divider).to_be_visible()
    assert await divider.evaluate("d => d.nextElementSibling.id") == f"m-{ids[10]}"
    await bar.get_by_role("button", name="Mark read").click()
    await expect(bar).to_be_hidden()
    await expect(divider).to_have_count(0)

    # Item 14: at the bottom, 40 messages in a burst keep the view at the bottom.
    await page.locator("#new-anchor").click()
    await expect(page.locator(".msg", has_text="old 119")).to_be_in_viewport()
    async with server.human() as client:
        for i in range(40):
            r = await client.post(
                "/api/channels/general/messages", json={"text": f"burst {i}", "sender": "ann"}
            )
            assert r.status_code == 201
    await expect(page.locator(".msg", has_text="burst 39")).to_be_in_viewport()
    await expect(page.locator("#new-anchor")).to_be_hidden()
    gap = await page.locator("#timeline").evaluate("s => s.scrollHeight - s.scrollTop - s.clientHeight")
    assert gap < 40

    # Item 15: scrolled to the very start, the channel intro sits above the first date divider.
    start = page.locator(".channel-start")
    with anyio.fail_after(20):
        while not await start.is_visible():
            await page.locator("#timeline").evaluate("s => { s.scrollTop = 0; }")
            await anyio.sleep(0.05)  # polling: older pages load as the view reaches the top
    intro = await start.bounding_box()
    first_day = await page.locator(".day-divider").first.bounding_box()
    assert intro is not None and first_day is not None
    assert intro["y"] + intro["height"] <= first_day["y"] + 1, (intro, first_day)
    assert ui.errors == []


async def test_delivery_per_message_with_waiting_and_retry_rename_and_roster_time(
    server_factory: Callable[..., RunningServer],
    browser: Browser,  # noqa: F811  # pytest fixture
) -> None:
    server = server_factory(crash_timeout=0.5)
    call_me(server.url, server.secret, "ben")
    agent = await register(server.url, "claude")
    auth = {"Authorization": f"Bearer {agent['token']}"}
    async with mcp_client(server.url, agent["token"]) as client:
        await client.call_tool("chat_send", {"message": "hello from the agent"})
    ui = UI(browser, server.url)
    page = await ui.open("ben", fake_clock=True)
    row = page.locator("#roster .agent[data-agent=claude]")
    await expect(row).to_have_class(re.compile("state-offline"))

    box = page.locator("#composer-input")
    await box.fill("@claude please look")
    await box.press("Enter")
    asked = page.locator(".msg", has_text="please look")
    chip = asked.locator(".delivery-chip[data-agent=claude]")
    # Item 18: queued while the agent is offline, said so next to the message.
    await expect(chip).to_contain_text("queued")
    await expect(chip).to_contain_text("agent offline")
    # Roster "x min ago" moves on by itself.
    await expect(row.locator(".agent-status")).to_contain_text("just now")
    await page.clock.fast_forward("03:00")
    await expect(row.locator(".agent-status")).to_contain_text("3 min ago")

    trigger = int(await chip.get_attribute("data-trigger") or 0)
    async with httpx.AsyncClient(base_url=server.url, headers=auth) as agent_http:
        report = f"/api/agents/claude/triggers/{trigger}"
        dialog = 'Allow execution of MCP tool "chat_read"?'
        assert (await agent_http.post(report, json={"state": "waiting", "detail": dialog})).status_code == 200
        await expect(chip).to_contain_text("waiting for approval")
        await expect(chip).to_contain_text(dialog)
        assert (
            await agent_http.post(report, json={"state": "failed", "detail": "no input line"})
        ).status_code == 200
        await expect(chip).to_contain_text("failed")
        await chip.get_by_role("button", name="Retry").click()
        await expect(chip).to_contain_text("queued")
        fresh = int(await chip.get_attribute("data-trigger") or 0)
        assert fresh and fresh != trigger
        done = f"/api/agents/claude/triggers/{fresh}"
        assert (await agent_http.post(done, json={"state": "injected"})).status_code == 200
        await expect(chip).to_contain_text("delivered")

    # Item 17: after a rename the agent's old message shows the new name in the agent's colour.
    async with server.human() as client:
        r = await client.patch("/api/agents/claude", json={"name": "claudia"})
        assert r.status_code == 200, r.text
    said = page.locator(".msg.agent", has_text="hello from the agent")
    await expect(said.locator(".sender")).to_have_text("claudia")
    assert await said.evaluate("el => el.style.getPropertyValue('--c')") == agent["color"]
    await expect(asked.locator(".delivery-chip[data-agent=claudia]")).to_contain_text("delivered")
    assert ui.errors == []


async def test_notification_level_and_channel_mute_are_kept(
    server: RunningServer,
    browser: Browser,  # noqa: F811  # pytest fixture
) -> None:
    with human(server.url, server.secret) as client:
        assert client.post("/api/channels", json={"name": "ops"}).status_code == 201
    call_me(server.url, server.secret, "ben")
    agent = await register(server.url, "gemini")
    ui = UI(browser, server.url)
    page = await ui.open("ben", storage={"sound": True}, init_script=ALERT_SPY)

    async def alerts() -> int:
        return int(await page.evaluate("window.__alerts.length"))

    async with mcp_client(server.url, agent["token"]) as mcp:

        async def post(text: str, channel: str) -> None:
            await mcp.call_tool("chat_send", {"message": text, "channel": channel})

        async def alerts_become(n: int) -> None:
            with anyio.fail_after(5):
                while await alerts() != n:
                    await anyio.sleep(0.05)

        level = page.get_by_label("Notify me about")
        await expect(level).to_have_value("all")
        await post("anything in ops", "ops")
        await alerts_become(1)
        await level.select_option("mentions")
        await post("more chatter in ops", "ops")
        await post("@ben look at ops", "ops")
        await alerts_become(2)
        # Muting #ops silences it; other channels still alert.
        await channel(page, "ops")
        await page.get_by_role("button", name="Mute #ops").click()
        await channel(page, "general")
        await post("@ben again in ops", "ops")
        await post("@ben in general", "general")
        await expect(page.locator(".msg", has_text="@ben in general")).to_be_visible()  # events come in order
        assert await alerts() == 3
        await level.select_option("off")
        await post("@ben while off", "general")
        await expect(page.locator(".msg", has_text="while off")).to_be_visible()
        assert await alerts() == 3

    await page.reload()
    await expect(page.get_by_label("Notify me about")).to_have_value("off")
    await channel(page, "ops")
    await expect(page.get_by_role("button", name="Unmute #ops")).to_have_attribute("aria-pressed", "true")
    assert ui.errors == []
