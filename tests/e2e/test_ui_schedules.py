"""Schedules in the browser: the clock popover on the composer and the strip above it, on one
module server.

Each test works in its own channel (opened through the page's remembered channel), so the tests
share the server without seeing each other's schedules. Nothing here waits for a schedule to fire:
the one firing moves the running engine's injectable clock ten minutes on.
"""

from __future__ import annotations

import re
import time
from collections.abc import AsyncIterator
from typing import Any

import pytest
from playwright.async_api import Browser, Locator, Page, expect

from tests.conftest import RunningServer, module_server, register
from tests.e2e.test_ui_a11y import CONTRAST_JS, UNNAMED_JS
from tests.e2e.ui_support import UI, _chromium, browser, human, rest  # noqa: F401

pytestmark = pytest.mark.anyio
DAILY = "daily at 09:00"


@pytest.fixture(scope="module")
async def server(tmp_path_factory: pytest.TempPathFactory) -> AsyncIterator[RunningServer]:
    with module_server(tmp_path_factory, "ui-schedules") as running:
        await register(running.url, "claude", instance_id="sched-1")
        await register(running.url, "codex", instance_id="sched-2")
        yield running


def channel(server: RunningServer, name: str) -> None:
    with human(server.url, server.secret) as client:
        assert client.post("/api/channels", json={"name": name}).status_code == 201


def schedules(server: RunningServer, name: str) -> list[dict[str, Any]]:
    return rest(server, "GET", f"/api/schedules?channel={name}")


def strip_item(page: Page, text: str) -> Locator:
    return page.locator("#schedule-strip .sched-item", has_text=text)


async def test_schedule_from_the_clock_live_on_a_second_page_then_pause_edit_delete_in_the_strip(
    server: RunningServer,
    browser: Browser,  # noqa: F811  # pytest fixture
) -> None:
    """Two pages of #sched-pop schedule from the clock and see it fire; then both move to
    #sched-strip for pause, resume, edit, delete and the collapsed strip."""
    channel(server, "sched-pop")
    channel(server, "sched-strip")
    ui = UI(browser, server.url)
    page = await ui.open(storage={"channel": "sched-pop"})
    other = await ui.open("carol", storage={"channel": "sched-pop"})
    await expect(other.locator("#schedule-strip")).to_be_hidden()  # nothing scheduled here yet

    box = page.get_by_label("Message #sched-pop")
    await box.fill("@claude check CI")
    clock = page.get_by_role("button", name="Schedule this message")
    await clock.click()
    popover = page.get_by_role("dialog", name="Schedule this message")
    await expect(popover).to_be_visible()
    await expect(clock).to_have_attribute("aria-expanded", "true")
    await expect(popover.locator(".sched-preview")).to_have_text("To @claude: check CI")
    # Escape closes it and gives the focus back to the clock.
    await expect(popover.get_by_role("radio", name="In some minutes")).to_be_focused()
    await page.keyboard.press("Escape")
    await expect(popover).to_be_hidden()
    await expect(clock).to_be_focused()

    # A cron line the server refuses: its words show inline, nothing is scheduled, the text stays.
    await clock.press("Enter")
    await popover.get_by_role("radio", name="Cron line").check()
    await popover.get_by_label("Cron line (minute hour day month weekday)").fill("61 * * * *")
    await popover.get_by_role("button", name="Schedule", exact=True).click()
    error = popover.get_by_role("alert")
    await expect(error).to_contain_text("daily at HH:MM")
    await expect(popover).to_be_visible()
    await expect(box).to_have_value("@claude check CI")
    assert schedules(server, "sched-pop") == []
    assert await page.evaluate(UNNAMED_JS) == []
    assert await page.evaluate(CONTRAST_JS) == []

    # "In 10 minutes" (the default row): scheduled, the box is free, both pages list it live.
    await popover.get_by_role("radio", name="In some minutes").check()
    await expect(popover.get_by_label("Minutes from now")).to_have_value("10")
    await popover.get_by_role("button", name="Schedule", exact=True).click()
    await expect(popover).to_be_hidden()
    await expect(box).to_have_value("")
    await expect(box).to_be_focused()
    for p in (page, other):
        item = strip_item(p, "check CI")
        await expect(item).to_be_visible()
        await expect(item.locator(".sched-targets")).to_have_text("@claude")
        await expect(item.locator(".sched-when")).to_have_text("next in 10 min")
        await expect(item.locator(".sched-repeat")).to_have_text("once")
    [made] = schedules(server, "sched-pop")
    assert (made["prompt"], made["targets"], made["one_shot"]) == ("check CI", ["claude"], True)

    # Ten minutes later (the running engine's clock moved on, nobody waits): it fires as ben, live
    # in both timelines, and the one-shot leaves both strips.
    scheduler = server.app.state.services.scheduler
    scheduler.clock = lambda: time.time() + 11 * 60
    try:
        for p in (page, other):
            fired = p.locator(".messages > li.msg", has_text="check CI")
            await expect(fired).to_contain_text("@claude check CI")
            await expect(fired.locator(".sender")).to_have_text("ben")
            await expect(p.locator("#schedule-strip")).to_be_hidden()
    finally:
        scheduler.clock = time.time
    [done] = schedules(server, "sched-pop")
    assert (done["run_count"], done["next_run"], done["active"]) == (1, None, False)

    for p in (page, other):
        await p.locator("#channel-list .channel[data-channel=sched-strip]").click()
        await expect(p.locator("#channel-title")).to_have_text("#sched-strip")
    rest(
        server,
        "POST",
        "/api/schedules",
        json={"prompt": "triage new issues", "targets": ["codex"], "channel": "sched-strip", "spec": DAILY},
    )
    item = strip_item(page, "triage new issues")
    await expect(item.locator(".sched-repeat")).to_have_text(DAILY)
    await expect(item.locator(".sched-when")).to_have_text(re.compile(r"^next "))

    # Pause with the keyboard: the focus stays on the (renamed) button; the other page sees it.
    pause = item.get_by_role("button", name="Pause schedule: triage new issues")
    await pause.focus()
    await page.keyboard.press("Enter")
    resume = item.get_by_role("button", name="Resume schedule: triage new issues")
    await expect(resume).to_be_focused()
    await expect(item.locator(".sched-when")).to_have_text("paused")
    theirs = strip_item(other, "triage new issues")
    await expect(theirs).to_have_class(re.compile(r"\bpaused\b"))
    assert [s["active"] for s in schedules(server, "sched-strip")] == [False]
    await page.keyboard.press("Enter")
    await expect(item.get_by_role("button", name="Pause schedule: triage new issues")).to_be_focused()
    await expect(theirs).not_to_have_class(re.compile(r"\bpaused\b"))

    # More than two: one summary line that opens the list (and Escape folds it again).
    for prompt in ("summarize the open PRs", "rotate the logs"):
        rest(
            server,
            "POST",
            "/api/schedules",
            json={"prompt": prompt, "targets": ["claude"], "channel": "sched-strip", "spec": "every 2 hours"},
        )
    summary = other.locator("#schedule-strip .sched-summary")
    await expect(summary).to_contain_text("3 schedules")
    await expect(theirs).to_be_hidden()
    await summary.click()
    await expect(summary).to_have_attribute("aria-expanded", "true")
    await expect(theirs).to_be_visible()
    await theirs.get_by_role("button", name=re.compile("^Pause")).focus()
    await other.keyboard.press("Escape")
    await expect(theirs).to_be_hidden()
    await expect(summary).to_be_focused()

    # Edit: a dialog with the message, the agents and the repeat; the other page shows the change.
    await (
        strip_item(page, "rotate the logs")
        .get_by_role("button", name="Edit schedule: rotate the logs")
        .click()
    )
    await expect(page.locator("#dialog-title")).to_have_text("Edit schedule")
    dialog = page.get_by_role("dialog", name="Edit schedule")
    await dialog.get_by_role("textbox", name="Message").fill("rotate and compress the logs")
    await dialog.get_by_role("textbox", name=re.compile("^Repeat")).fill("every 3 hours")
    await dialog.get_by_role("button", name="Save").click()
    edited = strip_item(other, "rotate and compress the logs")
    await expect(edited.locator(".sched-repeat")).to_have_text("every 3 hours")

    # Delete asks first; then it is gone on both pages (the list is down to two: no summary line).
    # The first page kept its list open: the focus was on a schedule's button when it grew.
    await expect(page.locator("#schedule-strip .sched-summary")).to_have_attribute("aria-expanded", "true")
    await item.get_by_role("button", name="Delete schedule: triage new issues").click()
    await expect(page.locator("#dialog-title")).to_have_text("Delete this schedule?")
    await page.get_by_role("dialog").get_by_role("button", name="Delete schedule", exact=True).click()
    await expect(item).to_have_count(0)
    await expect(summary).to_be_hidden()
    await expect(other.locator("#schedule-strip .sched-item")).to_have_count(2)
    left = sorted(s["prompt"] for s in schedules(server, "sched-strip"))
    assert left == ["rotate and compress the logs", "summarize the open PRs"]
    assert ui.errors == []
