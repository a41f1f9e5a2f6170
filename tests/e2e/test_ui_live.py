"""The live page over time: a server restart, images arriving by picker, paste and drop, and
events that arrive while a channel is loading."""

from __future__ import annotations

import os
import re
from collections.abc import Callable
from pathlib import Path

import pytest
from playwright.async_api import Browser, expect

from tests.conftest import RunningServer, ServerProcess
from tests.e2e.ui_support import PNG_PIXEL, UI, _chromium, browser, hold_response, human, say  # noqa: F401  # `browser` is a fixture

pytestmark = pytest.mark.anyio


async def test_page_recovers_by_itself_after_the_server_restarts_and_misses_nothing(
    server_process: Callable[..., ServerProcess],
    browser: Browser,  # noqa: F811  # pytest fixture
    tmp_path: Path,
) -> None:
    first = server_process()
    ui = UI(browser, first.url)
    page = await ui.open()
    box = page.get_by_label("Message #general")
    await box.fill("before the restart")
    await box.press("Enter")
    await expect(page.locator(".msg", has_text="before the restart")).to_be_visible()

    first.terminate()
    await expect(page.locator("#conn")).to_have_attribute("data-state", "reconnecting")
    second = ServerProcess(tmp_path / "data", dict(os.environ), port=first.port).start()
    try:
        # Posted right away, so it may land before the page reconnects: catch-up must bring it.
        say(second.url, second.secret, "said while you were away")
        await expect(page.locator("#conn")).to_have_attribute("data-state", "live", timeout=15000)
        await expect(page.locator(".msg", has_text="said while you were away")).to_have_count(1)
        # The new server has a new session secret: sending must still work without a reload.
        await box.fill("after the restart")
        await box.press("Enter")
        await expect(page.locator(".msg", has_text="after the restart")).to_have_count(1)
        await expect(page.locator("#toast")).to_be_hidden()
        say(second.url, second.secret, "live again")
        await expect(page.locator(".msg", has_text="live again")).to_have_count(1)
        await expect(page.locator(".msg", has_text="before the restart")).to_have_count(1)
    finally:
        second.kill()
    assert ui.errors == []


async def test_images_attach_by_picker_paste_and_drop_with_a_preview_before_sending(
    server: RunningServer,
    browser: Browser,  # noqa: F811  # pytest fixture
) -> None:
    ui = UI(browser, server.url)
    page = await ui.open()
    other = await ui.open("carol")
    await page.locator("#file-input").set_input_files(
        {"name": "diagram.png", "mimeType": "image/png", "buffer": PNG_PIXEL}
    )
    preview = page.locator("#attachment-previews .preview")
    await expect(preview).to_have_count(1)
    await expect(preview).not_to_have_class(re.compile("uploading"))
    box = page.get_by_label("Message #general")
    await box.fill("here is the diagram")
    await box.press("Enter")
    image = other.locator(".msg", has_text="here is the diagram").locator(".attachments img")
    await expect(image).to_have_attribute("src", re.compile(r"^/uploads/[0-9a-f]{32}\.png$"))
    await expect(image).to_have_attribute("alt", "diagram.png")
    await other.wait_for_function(
        "img => img.complete && img.naturalWidth === 1", arg=await image.element_handle()
    )
    await expect(preview).to_have_count(0)

    pixel = list(PNG_PIXEL)
    await box.evaluate(
        """(box, bytes) => {
            const data = new DataTransfer();
            data.items.add(new File([new Uint8Array(bytes)], "pasted.png", {type: "image/png"}));
            const init = {clipboardData: data, bubbles: true, cancelable: true};
            box.dispatchEvent(new ClipboardEvent("paste", init));
        }""",
        pixel,
    )
    await page.locator("#main").evaluate(
        """(main, bytes) => {
            const data = new DataTransfer();
            data.items.add(new File([new Uint8Array(bytes)], "dropped.png", {type: "image/png"}));
            for (const type of ["dragover", "drop"]) {
                const init = {dataTransfer: data, bubbles: true, cancelable: true};
                main.dispatchEvent(new DragEvent(type, init));
            }
        }""",
        pixel,
    )
    await expect(preview).to_have_count(2)
    await expect(page.locator("#attachment-previews .preview.uploading")).to_have_count(0)
    await box.press("Enter")  # images alone are a message
    sent = other.locator(".msg .attachments").last.locator("img")
    await expect(sent).to_have_count(2)
    assert sorted(await sent.evaluate_all("imgs => imgs.map(i => i.alt)")) == ["dropped.png", "pasted.png"]
    with human(server.url, server.secret) as client:
        last = client.get("/api/channels/general/messages").json()["messages"][-1]
    assert sorted(a["name"] for a in last["attachments"]) == ["dropped.png", "pasted.png"]
    assert ui.errors == []


async def test_an_edit_made_while_the_channel_loads_is_not_undone_by_the_page_that_arrives(
    server: RunningServer,
    browser: Browser,  # noqa: F811  # pytest fixture
) -> None:
    with human(server.url, server.secret) as client:
        assert client.post("/api/channels", json={"name": "review"}).status_code == 201
    ui = UI(browser, server.url)
    page = await ui.open()
    box = page.locator("#composer-input")
    await box.fill("typo heer")
    await box.press("Enter")
    await expect(page.locator(".msg", has_text="typo heer")).to_have_count(1)
    await box.press("ArrowUp")  # edit mode, kept in #general while we look at #review
    await page.locator("#channel-list .channel[data-channel=review]").click()
    await expect(page.locator("#channel-title")).to_contain_text("review")

    # Back to #general, with its page read now but delivered only after the edit is answered.
    held, release = await hold_response(page, re.compile(r"/api/channels/general/messages\?"))
    await page.locator("#channel-list .channel[data-channel=general]").click()
    await held.wait()
    await expect(box).to_have_value("typo heer")
    await box.fill("typo here")
    await box.press("Enter")
    await expect(page.locator("#composer-context")).to_be_hidden()  # the edit was answered
    say(server.url, server.secret, "after the edit")  # its event comes after the edit's event
    await expect(page.locator(".msg", has_text="after the edit")).to_have_count(1)
    release.set()
    await expect(page.locator(".msg", has_text="typo here")).to_have_count(1)
    await expect(page.locator(".msg", has_text="typo heer")).to_have_count(0)
    await expect(page.locator(".msg", has_text="typo here").locator(".edited:visible")).to_have_count(1)
    assert ui.errors == []
