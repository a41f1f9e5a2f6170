"""The jobs board in the browser: proposal cards, a job's thread with an agent over MCP, drag and
keyboard moves, and every change reaching a second browser live.

``python -m tests.e2e.test_ui_jobs`` renders docs/jobs-*.png from the same kind of room (not a
test: a person looks at the pictures before committing them).
"""

from __future__ import annotations

import re
import sqlite3
import struct
import zlib
from pathlib import Path
from typing import Any

import anyio
import pytest
from playwright.async_api import Browser, Locator, Page, ViewportSize, expect

from backchannel.store import Store
from tests.conftest import RunningServer, mcp_client, register, text_of
from tests.e2e.test_ui_a11y import CONTRAST_JS, UNNAMED_JS
from tests.e2e.ui_support import PNG_PIXEL, UI, _chromium, browser, hold_response, human, say, scratch_room  # noqa: F401

pytestmark = pytest.mark.anyio
DOCS = Path(__file__).resolve().parents[2] / "docs"


def jobs(server: RunningServer) -> list[dict[str, Any]]:
    with human(server.url, server.secret) as client:
        response = client.get("/api/jobs")
        assert response.status_code == 200, response.text
        return response.json()


async def open_board(page: Page) -> None:
    if await page.locator("#jobs-panel").is_visible():
        return
    await page.get_by_role("button", name=re.compile("^Jobs")).click()
    await expect(page.locator("#jobs-panel")).to_be_visible()


def card(page: Page, title: str) -> Locator:
    return page.locator(".job-card", has_text=title)


def job_writes(page: Page) -> list[str]:
    """The board's writes from this page, e.g. ``POST jobs/reorder`` (a move must be one call)."""
    seen: list[str] = []

    def note(request: Any) -> None:
        if request.method != "GET" and "/api/jobs" in request.url:
            seen.append(f"{request.method} {request.url.split('/api/', 1)[1]}")

    page.on("request", note)
    return seen


async def test_a_proposal_becomes_a_job_worked_with_an_agent_and_closed_live_in_two_browsers(
    server: RunningServer,
    browser: Browser,  # noqa: F811  # pytest fixture
) -> None:
    claude = await register(server.url, "claude")
    ui = UI(browser, server.url)
    page = await ui.open()
    other = await ui.open("carol")
    await open_board(other)
    async with mcp_client(server.url, claude["token"]) as agent:
        await agent.call_tool(
            "chat_propose_job", {"title": "Fix the flaky build", "body": "CI fails on **Tuesdays**."}
        )
        proposal = page.locator(".proposal-card", has_text="Fix the flaky build")
        await expect(proposal.locator(".proposal-body strong")).to_have_text("Tuesdays")
        await proposal.get_by_role("button", name="Accept").click()

        # Accepting opens the job, assigned to the proposer, with the box ready to talk to it.
        box = page.get_by_label("Message job #1")
        await expect(box).to_be_focused()
        await expect(box).to_have_value("@claude ")
        await expect(page.locator(".job-view-name")).to_have_text("Fix the flaky build")
        await expect(page.locator(".seg-btn", has_text="Active")).to_have_attribute("aria-pressed", "true")
        # ...and the other browser sees the decision on the card and the job on its board.
        outcome = other.locator(".proposal-card", has_text="flaky").locator(".outcome")
        await expect(outcome).to_have_text(re.compile(r"Accepted by \w+ as job #1"))
        await expect(other.locator(".job-group.status-active .job-card")).to_have_text(
            re.compile("Fix the flaky build")
        )
        await expect(other.locator(".job-group.status-active .job-count")).to_have_text("1")
        await expect(other.locator(".job-created .job-link")).to_have_text("job #1: Fix the flaky build")

        # Another proposal: sent back with a note, then dismissed; both browsers see each step.
        await agent.call_tool("chat_propose_job", {"title": "Rewrite it in Rust"})
        rust = page.locator(".proposal-card", has_text="Rewrite it in Rust")
        await rust.get_by_role("button", name="Request changes").click()
        await page.get_by_role("textbox", name="Note").fill("Smaller, please: one module first.")
        await page.get_by_role("button", name="Send note").click()
        other_rust = other.locator(".proposal-card", has_text="Rewrite it in Rust")
        await expect(other_rust.locator(".outcome")).to_have_text(re.compile("^Changes requested by"))
        await other_rust.get_by_role("button", name="Dismiss").click()
        await expect(rust.locator(".outcome")).to_have_text(re.compile(r"^Dismissed by \w+"))
        await expect(rust.get_by_role("button", name="Accept")).to_have_count(0)
        await page.locator("#job-input").focus()

        await box.type("please look, the log is attached")
        await box.evaluate(
            """(box, bytes) => {
                const data = new DataTransfer();
                data.items.add(new File([new Uint8Array(bytes)], "log.png", {type: "image/png"}));
                const init = {clipboardData: data, bubbles: true, cancelable: true};
                box.dispatchEvent(new ClipboardEvent("paste", init));
            }""",
            list(PNG_PIXEL),
        )
        await expect(page.locator(".job-composer .preview:not(.uploading)")).to_have_count(1)
        await box.press("Enter")
        mine = page.locator(".job-thread .msg", has_text="please look")
        await expect(mine.locator(".attachments img")).to_have_attribute("alt", "log.png")

        # The other browser opens the job from the timeline's "job created" line. A message that
        # arrives live while the thread is being fetched is kept (the fetch's answer is held back).
        held, release = await hold_response(other, re.compile(r"/api/jobs/1/messages\?"))
        await other.locator(".job-created .job-link").click()
        await held.wait()
        read = text_of(await agent.call_tool("chat_read", {"job_id": 1}))
        assert "please look" in read
        await agent.call_tool("chat_send", {"job_id": 1, "message": "Found it: a **timezone** bug."})
        await expect(other.locator(".job-thread .msg", has_text="timezone")).to_be_visible()
        release.set()
        await expect(other.locator(".job-thread .msg", has_text="please look")).to_be_visible()
        await expect(other.locator(".job-thread .msg", has_text="timezone")).to_have_count(1)

        sent = await agent.call_tool(
            "chat_send", {"job_id": 1, "message": "[suggestion] Pin the runner to UTC."}
        )
        assert sent.structured_content is not None
        pinned = sent.structured_content["id"]
        for p in (page, other):
            await expect(p.locator(".job-thread .msg.agent .md strong")).to_have_text("timezone")
            await expect(p.locator(".job-thread .suggestion-card")).to_contain_text("Pin the runner to UTC.")
        await page.locator(".suggestion-card").get_by_role("button", name="Accept").click()
        await expect(other.locator(".suggestion-card .outcome")).to_have_text(re.compile("^Accepted by"))
        await agent.call_tool(
            "chat_send", {"job_id": 1, "message": "Merge now?", "choices": ["merge", "wait"]}
        )
        await page.locator(".job-thread .choices").get_by_role("button", name="merge").click()
        # The card is answered once, in place: both browsers see who chose what, and no buttons.
        for p in (page, other):
            decided = p.locator(".job-thread .msg.agent", has_text="Merge now?")
            await expect(decided.locator(".choice-receipt")).to_have_text(re.compile(r"^\S+ chose merge$"))
            await expect(decided.locator(".choices")).to_have_count(0)
        # Thread talk never lands in the channel timeline.
        for p in (page, other):
            await expect(p.locator("#messages .msg", has_text="timezone")).to_have_count(0)
            await expect(p.locator("#messages .msg", has_text="please look")).to_have_count(0)
        # People edit their own thread messages in the box (Esc would cancel) and delete them
        # (after confirming); everyone sees both.
        await mine.hover()
        await mine.get_by_role("button", name="Edit").click()
        await expect(box).to_have_value("@claude please look, the log is attached")
        await box.fill("please look, the CI log is attached")
        await box.press("Enter")
        edited = other.locator(".job-thread .msg", has_text="the CI log")
        await expect(edited.locator(".edited")).to_have_text("(edited)")
        await expect(box).to_have_value("")
        # "Convert to job" works on thread messages too.
        timezone = page.locator(".job-thread .msg", has_text="timezone")
        await timezone.hover()
        await timezone.get_by_role("button", name="Convert to job").click()
        await page.get_by_role("button", name="Ask agent").click()
        await expect(page.locator("#toast")).to_contain_text("Asked @claude to propose a job")
        await mine.hover()
        await mine.get_by_role("button", name="Delete").click()
        await page.locator("#dialog-ok").click()
        await expect(other.locator(".job-thread .msg.deleted")).to_have_text(re.compile("was deleted"))

        # The title is edited in place and the status toggled; the other page follows.
        await page.locator(".job-title-btn").click()
        await page.get_by_role("textbox", name="Job title").fill("Fix the flaky CI build")
        await page.keyboard.press("Enter")
        await expect(other.locator(".job-view-name")).to_have_text("Fix the flaky CI build")
        await expect(other.locator(".job-created .job-link")).to_have_text("job #1: Fix the flaky CI build")
        await other.get_by_role("button", name="To do", exact=True).click()
        await expect(page.locator(".seg-btn[aria-pressed=true]")).to_have_text("To do")

        # Back on the board, a new agent message shows as unread on the card and the badge; this
        # person's own words (from another of their browsers) never count, also after a reload.
        await other.get_by_role("button", name="Back to all jobs").click()
        before = jobs(server)[0]["message_count"]  # read before the post: after it, it may not be saved yet
        await box.fill("I will check the runner too")
        await box.press("Enter")
        await expect(card(other, "flaky CI build").locator(".job-msgs")).to_have_text(
            f"{before + 1} messages"
        )
        await agent.call_tool("chat_send", {"job_id": 1, "message": "Pushed the fix."})
        await expect(card(other, "flaky CI build").locator(".unread-dot")).to_have_text("1")
        await expect(other.locator("#jobs-badge")).to_have_text("1")
        await expect(card(other, "flaky CI build")).to_contain_text(
            f"{jobs(server)[0]['message_count']} messages"
        )
        await other.reload()
        await expect(other.locator("#jobs-panel")).to_be_visible()  # reopened as it was left
        await expect(card(other, "flaky CI build").locator(".unread-dot")).to_have_text("1")

        # The job's loop guard paused it: the thread says so, and Resume posts /continue there.
        with sqlite3.connect(server.settings.db_path) as db:
            db.execute("UPDATE jobs SET paused = 1 WHERE id = 1")
        with human(server.url, server.secret) as client:
            assert client.patch("/api/jobs/1", json={"body": "CI fails on Tuesdays."}).status_code == 200
            # A job started from a thread message links back to it, inside the thread.
            pin = client.post("/api/jobs", json={"title": "Pin the runner", "anchor_msg_id": pinned}).json()
        banner = page.locator(".job-paused")
        await expect(banner).to_contain_text("paused")
        await banner.get_by_role("button", name="Resume").click()
        await expect(banner).to_be_hidden()
        assert not jobs(server)[0]["paused"]
        await page.get_by_role("button", name="Back to all jobs").click()
        await card(page, "Pin the runner").locator(".job-open").click()
        await page.get_by_role("button", name=f"from message #{pinned}").click()
        await expect(page.locator(".job-view-name")).to_have_text("Fix the flaky CI build")
        await expect(page.locator(f'.job-thread > li[data-id="{pinned}"]')).to_be_focused()
        with human(server.url, server.secret) as client:
            assert client.delete(f"/api/jobs/{pin['id']}?permanent=true").status_code == 200

        # "Convert to job" on a channel message asks the agent; the wake-up shows on the message.
        say(server.url, server.secret, "the deploy script leaks temp files")
        leak = page.locator("#messages .msg", has_text="leaks temp files")
        await leak.hover()
        await leak.get_by_role("button", name="Convert to job").click()
        await expect(page.get_by_role("combobox", name="Ask")).to_have_value("claude")
        await page.get_by_role("button", name="Ask agent").click()
        await expect(leak.locator(".delivery-chip")).to_contain_text("@claude")

    # Drag to reorder within To do, then to Closed (collapsed: its header takes it); live elsewhere.
    await page.get_by_role("button", name="Back to all jobs").click()
    with human(server.url, server.secret) as client:
        assert client.post("/api/jobs", json={"title": "Update the docs"}).status_code == 201
    todo = other.locator(".job-group.status-todo .job-card-title")
    await expect(todo).to_have_text(["Fix the flaky CI build", "Update the docs"])
    await card(page, "Update the docs").drag_to(
        card(page, "flaky CI build"), target_position={"x": 40, "y": 4}
    )
    await expect(todo).to_have_text(["Update the docs", "Fix the flaky CI build"])
    writes = job_writes(page)
    await card(page, "flaky CI build").drag_to(page.locator(".job-group.status-closed .job-group-head"))
    await expect(other.locator(".job-group.status-closed .job-count")).to_have_text("1")
    await expect(todo).to_have_text(["Update the docs"])
    assert writes == ["POST jobs/reorder"]  # moved into Closed with one call
    assert [(j["title"], j["status"]) for j in jobs(server)] == [
        ("Update the docs", "todo"),
        ("Fix the flaky CI build", "closed"),
    ]

    # A page that reconnects reloads the board (and so catches up on whatever it missed).
    async with page.expect_request(re.compile(r"/api/jobs$")):
        await page.evaluate("window.backchannel.live.ws.close()")
    with human(server.url, server.secret) as client:
        assert client.patch("/api/jobs/1", json={"status": "active"}).status_code == 200
    await expect(card(page, "flaky CI build")).to_have_class(re.compile("status-active"))
    assert ui.errors == []


async def test_the_board_can_be_used_with_the_keyboard_alone(
    server: RunningServer,
    browser: Browser,  # noqa: F811  # pytest fixture
) -> None:
    claude = await register(server.url, "claude")
    ui = UI(browser, server.url)
    page = await ui.open()
    other = await ui.open("carol")
    await open_board(other)
    toggle = page.get_by_role("button", name=re.compile("^Jobs"))
    await toggle.focus()
    await page.keyboard.press("Enter")
    new = page.get_by_role("button", name="New job")
    await expect(new).to_be_focused()

    for title in ("Write the release notes", "Bump the version"):
        await page.keyboard.press("Enter")
        await expect(page.get_by_role("textbox", name="Title")).to_be_focused()
        await page.keyboard.type(title)
        await page.keyboard.press("Tab")
        await page.keyboard.type("Short and *friendly*.")
        await page.keyboard.press("Tab")
        await page.keyboard.press("ArrowDown")  # assignee: Unassigned -> @claude
        await page.keyboard.press("Tab")
        await page.keyboard.press("Tab")
        await expect(page.get_by_role("button", name="Create job")).to_be_focused()
        await page.keyboard.press("Enter")
        focused = page.locator(".job-card", has=page.locator(".job-open:focus"))
        await expect(focused).to_contain_text(title)
        await expect(focused).to_contain_text("@claude")
        if title != "Bump the version":
            await new.focus()
    todo = other.locator(".job-group.status-todo .job-card-title")
    await expect(todo).to_have_text(["Write the release notes", "Bump the version"])

    await page.keyboard.press("Alt+ArrowUp")  # reorder within To do
    await expect(todo).to_have_text(["Bump the version", "Write the release notes"])
    writes = job_writes(page)
    await page.keyboard.press("Alt+ArrowRight")  # and move to Active, in one call
    active = other.locator(".job-group.status-active .job-card-title")
    await expect(active).to_have_text(["Bump the version"])
    assert writes == ["POST jobs/reorder"]
    await expect(page.locator(".job-card", has=page.locator(".job-open:focus"))).to_contain_text("Bump")
    assert [(j["title"], j["status"]) for j in jobs(server)] == [
        ("Write the release notes", "todo"),
        ("Bump the version", "active"),
    ]

    await page.keyboard.press("Enter")  # open it and talk to the agent with @-completion
    box = page.get_by_label(re.compile(r"Message job #\d"))
    await expect(box).to_be_focused()
    await page.keyboard.press("Control+a")
    await page.keyboard.type("@cl")
    await expect(page.locator("#job-suggest [role=option]")).to_have_count(1)
    await page.keyboard.press("Enter")
    await page.keyboard.type("go ahead")
    await page.keyboard.press("Enter")
    await expect(page.locator(".job-thread .msg", has_text="go ahead")).to_be_visible()
    async with mcp_client(server.url, claude["token"]) as agent:
        job_id = next(j["id"] for j in jobs(server) if j["title"] == "Bump the version")
        assert "@claude go ahead" in text_of(await agent.call_tool("chat_read", {"job_id": job_id}))

    await page.keyboard.press("Escape")  # back to the board, on the same card
    await expect(page.locator(".job-open:focus")).to_contain_text("Bump the version")
    await page.keyboard.press("Tab")
    await page.keyboard.press("Enter")  # its menu
    await expect(page.get_by_role("menuitem", name="Open")).to_be_focused()
    await page.keyboard.press("End")
    await page.keyboard.press("Enter")
    await expect(page.locator("#dialog-title")).to_have_text(f"Delete job #{job_id} permanently?")
    await page.keyboard.press("Tab")
    await page.keyboard.press("Enter")
    await expect(other.locator(".job-card")).to_have_count(1)
    assert [j["title"] for j in jobs(server)] == ["Write the release notes"]
    assert ui.errors == []


# -- the board and a thread as pictures (and their names and contrast, as a test) --------------------
def chart_png(width: int = 320, height: int = 120) -> bytes:
    """A small real picture (a bar chart) for the screenshots; the 1-pixel PNG shows as a dot."""
    rows: list[bytes] = []
    bars = [30, 55, 42, 80, 64, 96, 72, 88]
    for y in range(height):
        row = bytearray([0])
        for x in range(width):
            bar = x * len(bars) // width
            inside = x % (width // len(bars)) > 6 and height - y < bars[bar]
            row += bytes((79, 70, 229) if inside else (236, 239, 244))
        rows.append(bytes(row))

    def chunk(kind: bytes, data: bytes) -> bytes:
        return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data))

    header = struct.pack(">IIBBBBB", width, height, 8, 2, 0, 0, 0)
    return (
        b"\x89PNG\r\n\x1a\n"
        + chunk(b"IHDR", header)
        + chunk(b"IDAT", zlib.compress(b"".join(rows)))
        + chunk(b"IEND", b"")
    )


async def build_scene(server: RunningServer) -> None:
    """A board with jobs in every group and a thread with a brief, talk, a suggestion and an image."""
    claude = await register(server.url, "claude", instance_id="laptop-1")
    codex = await register(server.url, "codex", instance_id="laptop-2")
    with human(server.url, server.secret) as client:
        assert client.put("/api/me", json={"name": "maya"}).status_code == 200

        def create(title: str, **extra: Any) -> int:
            response = client.post("/api/jobs", json={"title": title, **extra})
            assert response.status_code == 201, response.text
            return int(response.json()["id"])

        main = create(
            "Make reconnect catch up on missed job events",
            body="After a drop the board must refetch `/api/jobs` and the open thread.\n\n"
            "- keep scroll position\n- no duplicate messages",
            assignee="claude",
            status="active",
        )
        create("Review the upload size limit", assignee="codex", status="active")
        create("Write the v0.4 release notes", assignee="claude")
        create("Phone layout: composer hides behind the keyboard")
        create("Bench the board with 1,000 jobs", assignee="codex")
        done = create("Rename channel carries its jobs", status="active")
        client.patch(f"/api/jobs/{done}", json={"status": "closed"})
        upload = client.post(
            "/api/uploads",
            content=chart_png(),
            headers={"Content-Type": "image/png", "X-Filename": "trace.png"},
        ).json()
        posted = client.post(
            f"/api/jobs/{main}/messages",
            json={"text": "@claude can you take this? The trace from last night:", "attachments": [upload]},
        )
        assert posted.status_code == 201, posted.text
    async with mcp_client(server.url, claude["token"]) as c, mcp_client(server.url, codex["token"]) as x:
        await c.call_tool(
            "chat_send",
            {
                "job_id": main,
                "message": "On it. The page resumes from its last `seq`, but the board only reloads on "
                "a **fresh** connect. Fix: refetch on every hello.",
            },
        )
        await c.call_tool(
            "chat_send",
            {"job_id": main, "message": "[suggestion] Add a test that kills the socket mid-drag."},
        )
        await x.call_tool("chat_send", {"job_id": main, "message": "@claude I can review when it's up."})
        await x.call_tool("chat_send", {"job_id": 2, "message": "Limit holds at 10 MB."})
        await c.call_tool(
            "chat_propose_job",
            {"title": "Show unread counts per job", "body": "A dot on each card and a badge on the toggle."},
        )


async def show(page: Page, what: str) -> None:
    await open_board(page)
    await expect(page.locator(".job-list:not([hidden]) .job-card")).to_have_count(5)
    if what == "thread":
        await card(page, "Make reconnect").locator(".job-open").click()
        await expect(page.locator(".job-thread .suggestion-card")).to_be_visible()
        await page.wait_for_function(
            "() => [...document.querySelectorAll('.job-thread img')].every((i) => i.complete)"
        )
        await page.locator("#job-input").fill("@codex please pair on the test")
        await page.locator("#job-input").blur()


async def test_board_and_thread_controls_are_named_and_readable(
    server: RunningServer,
    browser: Browser,  # noqa: F811  # pytest fixture
) -> None:
    """One scene, looked at in light and dark; then (in light) a long thread and the phone sheet."""
    await build_scene(server)
    ui = UI(browser, server.url)
    for scheme in ("light", "dark"):
        page = await ui.open("maya", color_scheme=scheme)
        await show(page, "board")
        await expect(page.locator(".proposal-card")).to_be_visible()
        await card(page, "Bench the board").get_by_role("button", name=re.compile("Move or delete")).click()
        await expect(page.get_by_role("menuitem", name="Open")).to_be_focused()
        assert await page.evaluate(UNNAMED_JS) == [], scheme
        assert await page.evaluate(CONTRAST_JS) == [], scheme
        await page.keyboard.press("Escape")
        await show(page, "thread")
        assert await page.evaluate(UNNAMED_JS) == [], scheme
        assert await page.evaluate(CONTRAST_JS) == [], scheme
        await ui.close(page)
    # A long thread loads its newest page first and the rest as the reader scrolls up.
    with human(server.url, server.secret) as client:
        long = client.post("/api/jobs", json={"title": "A long thread"}).json()["id"]
    store = Store(server.settings.db_path)
    try:
        for i in range(130):
            await store.post(channel="general", sender="maya", kind="human", text=f"note {i}", job_id=long)
    finally:
        store.close()
    # At phone width the panel is a full-screen sheet. Limits come from the server (here a
    # stand-in), and a server that returns fewer messages than asked still pages back to the start.
    phone = await ui.open("maya", viewport={"width": 390, "height": 780})

    async def capped(route: Any) -> None:
        await route.continue_(url=route.request.url.replace("limit=100", "limit=60"))

    limits = {"max_message_chars": 500, "job_title_max": 64, "job_body_max": 300, "read_limit_max": 1000}

    async def stand_in(route: Any) -> None:
        await route.fulfill(json=limits)

    await phone.route("**/api/limits", stand_in)
    await phone.route(re.compile(r"/api/jobs/\d+/messages\?"), capped)
    await phone.reload()
    await open_board(phone)
    box = await phone.locator("#jobs-panel").bounding_box()
    assert box == {"x": 0, "y": 0, "width": 390, "height": 780}
    await card(phone, "A long thread").locator(".job-open").click()
    await expect(phone.locator("#job-input")).to_have_attribute("maxlength", "500")
    notes = phone.locator(".job-thread > li")
    await expect(notes).to_have_count(60)
    await expect(notes.last).to_have_text(re.compile("note 129"))
    for count in (120, 130):
        await phone.locator(".job-scroll").evaluate("s => { s.scrollTop = 0; }")
        await expect(notes).to_have_count(count)
    await expect(notes.first).to_have_text(re.compile("note 0"))
    await expect(phone.get_by_role("button", name="Load earlier messages")).to_be_hidden()
    await phone.get_by_role("button", name="Close jobs").click()
    await expect(phone.locator("#jobs-panel")).to_be_hidden()
    assert ui.errors == []


async def main() -> None:
    async with scratch_room(build_scene) as (server, chromium):
        wide: ViewportSize = {"width": 1280, "height": 860}
        phone: ViewportSize = {"width": 390, "height": 780}
        shots = [
            ("jobs-board-light", "light", "board", wide),
            ("jobs-board-dark", "dark", "board", wide),
            ("jobs-thread-light", "light", "thread", wide),
            ("jobs-thread-dark", "dark", "thread", wide),
            ("jobs-phone", "light", "board", phone),
        ]
        # Everything read on this browser but job #2's one message: a dot and a badge.
        seen = {j["id"]: j["last_message_id"] for j in jobs(server)}
        seen[2] = 0
        for name, scheme, what, viewport in shots:
            ui = UI(chromium, server.url)
            page = await ui.open("maya", color_scheme=scheme, viewport=viewport, storage={"jobsRead": seen})
            await show(page, what)
            await page.mouse.move(1, viewport["height"] - 1)
            await page.screenshot(path=str(DOCS / f"{name}.png"))
            assert ui.errors == [], ui.errors
            for context in ui.contexts:
                await context.close()


if __name__ == "__main__":
    anyio.run(main)
