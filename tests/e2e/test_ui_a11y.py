"""Accessibility and first-run in the browser: names, keyboard use, contrast, the display name."""

from __future__ import annotations

import re

import pytest
from playwright.async_api import Browser, Page, expect

from tests.conftest import RunningServer, mcp_client, register
from tests.e2e.ui_support import UI, _chromium, browser, say  # noqa: F401  # `browser` is a fixture

pytestmark = pytest.mark.anyio

# Every visible control must have an accessible name; every visible text must reach WCAG AA (4.5:1).
UNNAMED_JS = """() => [...document.querySelectorAll("button, input, textarea, select, a[href]")]
    .filter((el) => el.getClientRects().length && getComputedStyle(el).visibility !== "hidden")
    .filter((el) => el.type !== "file")
    .filter((el) => !(el.getAttribute("aria-label") || el.textContent.trim() || el.title
                      || el.labels?.length))
    .map((el) => el.outerHTML.slice(0, 120))"""

CONTRAST_JS = """() => {
    const parse = (value) => {
        const nums = value.match(/[\\d.]+/g).map(Number);
        if (value.startsWith("color(")) return [nums[0] * 255, nums[1] * 255, nums[2] * 255, nums[3] ?? 1];
        return [nums[0], nums[1], nums[2], nums[3] ?? 1];
    };
    const over = (top, under) => top.slice(0, 3).map((c, i) => c * top[3] + under[i] * (1 - top[3]));
    const background = (el) => {
        const layers = [];
        for (let node = el; node; node = node.parentElement) {
            const bg = parse(getComputedStyle(node).backgroundColor);
            if (bg[3] > 0) layers.push(bg);
            if (bg[3] >= 1) break;
        }
        let base = [255, 255, 255];
        if (layers.length && layers.at(-1)[3] >= 1) base = layers.pop().slice(0, 3);
        for (const layer of layers.reverse()) base = over(layer, base);
        return base;
    };
    const lum = (rgb) => {
        const [r, g, b] = rgb.map((c) => {
            const s = c / 255;
            return s <= 0.03928 ? s / 12.92 : ((s + 0.055) / 1.055) ** 2.4;
        });
        return 0.2126 * r + 0.7152 * g + 0.0722 * b;
    };
    const failures = [];
    const walker = document.createTreeWalker(document.body, NodeFilter.SHOW_TEXT);
    for (let text = walker.nextNode(); text; text = walker.nextNode()) {
        const el = text.parentElement;
        if (!text.textContent.trim() || !el.getClientRects().length) continue;
        if (el.closest("[hidden], dialog:not([open]), .sr-only, .avatar, .skip-link")) continue;
        const bg = background(el);
        const fg = over(parse(getComputedStyle(el).color), bg);
        const [hi, lo] = [lum(fg), lum(bg)].sort((a, b) => b - a);
        const ratio = (hi + 0.05) / (lo + 0.05);
        const where = `${el.className || el.tagName}: ${text.textContent.trim().slice(0, 30)}`;
        if (ratio < 4.5) failures.push(`${ratio.toFixed(2)} ${where}`);
    }
    return failures;
}"""


async def busy_room(server: RunningServer) -> None:
    kilo = await register(server.url, "kilo", instance_id="k")  # the palette's lightest colour
    await register(server.url, "claude", instance_id="c")
    say(server.url, server.secret, "@kilo please check `build.py` and https://example.com, thanks @claude")
    async with mcp_client(server.url, kilo["token"]) as client:
        await client.call_tool(
            "chat_send", {"message": "Done, **@ben**. Pick one:", "choices": ["ship", "wait"]}
        )


async def check_page(page: Page) -> None:
    assert await page.evaluate(UNNAMED_JS) == []
    assert await page.evaluate(CONTRAST_JS) == []


async def test_controls_are_named_and_readable_in_both_schemes_and_the_room_works_by_keyboard(
    server: RunningServer,
    browser: Browser,  # noqa: F811  # pytest fixture
) -> None:
    """One room for both checks: names and contrast (light, then dark) before anyone answers the
    decision card, then the keyboard walk, which answers it."""
    await busy_room(server)
    ui = UI(browser, server.url)
    for scheme in ("light", "dark"):
        page = await ui.open(color_scheme=scheme)
        await expect(page.locator(".msg.agent .choices button")).to_have_count(2)
        await expect(page.locator("#roster .agent")).to_have_count(2)
        await check_page(page)
        await page.get_by_role("button", name="Create channel").click()
        await check_page(page)
        assert ui.errors == [], scheme
        await ui.close(page)

    page = await ui.open()
    await page.keyboard.press("Tab")
    await expect(page.get_by_role("link", name="Skip to message box")).to_be_focused()
    await page.keyboard.press("Enter")
    box = page.get_by_label("Message #general")
    await expect(box).to_be_focused()

    # from the timeline, arrows walk the messages; a focused message shows its actions
    await page.locator("#timeline").focus()
    await page.keyboard.press("ArrowUp")
    decision = page.locator(".msg.agent")
    await expect(decision).to_be_focused()
    await expect(decision.get_by_role("button", name="Reply")).to_be_visible()
    await page.keyboard.press("Tab")
    await expect(decision.get_by_role("button", name="ship")).to_be_focused()
    await page.keyboard.press("Enter")  # answering a decision card resolves it and wakes the agent
    await expect(decision.locator(".choice-receipt")).to_have_text(re.compile(r"^\S+ chose ship$"))
    await expect(decision.locator(".choices")).to_have_count(0)
    await expect(decision).to_be_focused()  # the re-rendered card keeps the focus

    await page.locator("#timeline").focus()
    await page.keyboard.press("ArrowUp")
    await expect(decision).to_be_focused()
    await page.keyboard.press("Escape")
    await expect(box).to_be_focused()

    # dialogs trap focus and close with Escape
    await page.get_by_role("button", name="Create channel").focus()
    await page.keyboard.press("Enter")
    await expect(page.get_by_role("textbox", name="Name")).to_be_focused()
    await page.keyboard.press("Escape")
    await expect(page.locator("#dialog")).to_be_hidden()
    assert ui.errors == []


async def test_first_visit_asks_for_a_display_name_once_and_posts_under_it(
    server: RunningServer,
    browser: Browser,  # noqa: F811  # pytest fixture
) -> None:
    ui = UI(browser, server.url)
    page = await ui.open(name="")
    # The server names the local person (its login name), so the page does not ask; the name
    # button changes it for the CLI and every browser of this machine at once.
    await expect(page.locator("#dialog")).to_be_hidden()
    await register(server.url, "kilo")
    await expect(page.locator("#roster .agent")).to_have_count(1)
    await page.get_by_role("button", name="Change your display name").click()
    await expect(page.locator("#dialog-title")).to_have_text("Your display name")
    field = page.get_by_role("textbox", name="Display name")
    await field.fill("kilo")
    await page.get_by_role("button", name="Save").click()  # a person may not take an agent's name
    await expect(page.locator("#dialog-error")).to_contain_text("agent")
    await page.get_by_role("textbox", name="Display name").fill("Robin")
    await page.get_by_role("button", name="Save").click()
    await expect(page.locator("#me-name")).to_have_text("Robin")
    box = page.get_by_label("Message #general")
    await box.fill("hello from Robin")
    await box.press("Enter")
    await expect(page.locator(".msg.mine .sender")).to_have_text("Robin")
    await page.reload()
    await expect(page.locator("#conn")).to_have_attribute("data-state", "live")
    await expect(page.locator("#dialog")).to_be_hidden()
    await expect(page.locator("#me-name")).to_have_text("Robin")

    await page.get_by_role("button", name="Sound").click()
    await expect(page.get_by_role("button", name="Sound")).to_have_attribute("aria-pressed", "true")
    await page.reload()
    await expect(page.get_by_role("button", name="Sound")).to_have_attribute("aria-pressed", "true")
    assert ui.errors == []
