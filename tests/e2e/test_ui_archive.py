"""Export / Import in the browser (issue 12): a room exported from one server's settings dialog and
imported into another's shows the report, and the imported messages appear on the open page."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest
from playwright.async_api import Browser, expect

from tests.conftest import RunningServer, module_server
from tests.e2e.ui_support import UI, _chromium, browser, human  # noqa: F401

pytestmark = pytest.mark.anyio


@pytest.fixture(scope="module")
def servers(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[RunningServer, RunningServer]]:
    with (
        module_server(tmp_path_factory, "ui-archive-a") as a,
        module_server(tmp_path_factory, "ui-archive-b") as b,
    ):
        with human(a.url, a.secret) as client:
            assert (
                client.post("/api/channels/general/messages", json={"text": "moved along"}).status_code == 201
            )
        yield a, b


async def test_export_then_import_shows_the_report_and_the_messages(
    servers: tuple[RunningServer, RunningServer],
    browser: Browser,  # noqa: F811  # pytest fixture
    tmp_path: Path,
) -> None:
    source, target = servers
    ui = UI(browser, source.url)
    page = await ui.open()
    await page.get_by_role("button", name="Room settings").click()
    dialog = page.get_by_role("dialog", name="Room settings")
    async with page.expect_download() as info:
        await dialog.get_by_role("button", name="Export room").click()
    download = await info.value
    saved = tmp_path / download.suggested_filename
    await download.save_as(saved)
    assert saved.name.startswith("backchannel-export-") and saved.stat().st_size > 0
    await expect(dialog.get_by_role("status")).to_contain_text("Exported")

    there = UI(browser, target.url)
    other = await there.open()
    await expect(other.locator(".msg", has_text="moved along")).to_have_count(0)
    await other.get_by_role("button", name="Room settings").click()
    box = other.get_by_role("dialog", name="Room settings")
    await box.get_by_label("Archive to import").set_input_files(saved)
    report = box.get_by_role("table", name="Import report")
    await expect(report.get_by_role("row", name="messages")).to_contain_text("1")
    await expect(box.get_by_role("status")).to_contain_text("Imported")
    await box.get_by_role("button", name="Cancel").click()
    await expect(other.get_by_text("moved along")).to_be_visible()  # the page reloaded the room
    assert not ui.errors and not there.errors
