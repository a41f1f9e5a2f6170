"""Shared pieces for the browser tests: Debian's chromium via Playwright, and a page on the UI.

Not a conftest: the UI test modules import the fixtures they use, so the rest of the suite never
starts a browser.
"""

from __future__ import annotations

import json
import tempfile
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import asynccontextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx
import pytest
from playwright.async_api import Browser, BrowserContext, Page, ViewportSize, async_playwright, expect

from backchannel.config import Settings
from backchannel.server.security import SESSION_HEADER
from backchannel.store import Store
from tests.conftest import RunningServer

CHROMIUM = "/usr/bin/chromium"
CHROMIUM_ARGS = [
    "--no-sandbox",
    "--disable-gpu",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--no-first-run",
    "--disable-quic",
]
# One PNG pixel, enough for the server's type sniffing and for the browser to decode.
PNG_PIXEL = bytes.fromhex(
    "89504e470d0a1a0a0000000d4948445200000001000000010806000000"
    "1f15c4890000000d49444154789c6360f8cfc0f01f0005000201e5273de40000000049454e44ae426082"
)

# Generous: the whole suite runs in parallel on small CI machines; passing tests never wait this long.
expect.set_options(timeout=10_000)


@asynccontextmanager
async def chromium() -> AsyncIterator[Browser]:
    """Debian's Chromium, headless, closed on the way out."""
    async with async_playwright() as pw:
        launched = await pw.chromium.launch(executable_path=CHROMIUM, headless=True, args=CHROMIUM_ARGS)
        try:
            yield launched
        finally:
            await launched.close()


@pytest.fixture(scope="module")
async def _chromium() -> AsyncIterator[Browser]:
    """One Chromium per test module: a launch (driver + browser) costs more CPU than most tests."""
    async with chromium() as launched:
        yield launched


@asynccontextmanager
async def scratch_room(
    build: Callable[[RunningServer], Awaitable[object]],
) -> AsyncIterator[tuple[RunningServer, Browser]]:
    """For the screenshot scripts: a server in a temporary directory, set up by ``build``, and a
    Chromium; both gone afterwards."""
    with tempfile.TemporaryDirectory() as tmp:
        server = RunningServer(Settings(host="127.0.0.1", port=0, data_dir=Path(tmp))).start()
        try:
            await build(server)
            async with chromium() as browser:
                yield server, browser
        finally:
            server.stop()


@pytest.fixture
async def browser(_chromium: Browser) -> AsyncIterator[Browser]:
    """The module's browser; every context a test opened is closed after it, so no page of an
    earlier test keeps reconnecting to a server that is gone."""
    yield _chromium
    for context in list(_chromium.contexts):
        await context.close()


@dataclass
class UI:
    """A browser context on one server, with the page errors it saw (tests assert there are none)."""

    browser: Browser
    url: str
    errors: list[str] = field(default_factory=list[str])
    contexts: list[BrowserContext] = field(default_factory=list[BrowserContext])
    named: bool = False  # the server's local person has been given the first page's name

    async def open(
        self,
        name: str = "ben",
        *,
        color_scheme: Any = "light",
        viewport: ViewportSize | None = None,
        storage: dict[str, Any] | None = None,
        init_script: str = "",
        fake_clock: bool = False,
    ) -> Page:
        """``storage``: extra ``bc.*`` localStorage values; ``fake_clock``: Playwright's clock, so a
        test can move time forward instead of waiting."""
        context = await self.browser.new_context(
            viewport=viewport or {"width": 1200, "height": 800},
            color_scheme=color_scheme,
        )
        self.contexts.append(context)
        values: dict[str, Any] = {"name": name} if name else {}
        values["helpSeen"] = True  # no first-visit tour over the page (storage={"helpSeen": False} shows it)
        values.update(storage or {})
        if values:
            await context.add_init_script(
                f"if (!sessionStorage.getItem('bc.seeded')) {{ sessionStorage.setItem('bc.seeded', '1');"
                f" for (const [k, v] of Object.entries({json.dumps(values)}))"
                " localStorage.setItem(`bc.${k}`, JSON.stringify(v)); }"
            )
        if init_script:
            await context.add_init_script(init_script)
        page = await context.new_page()
        if fake_clock:
            await page.clock.install()
        page.on("pageerror", lambda exc: self.errors.append(f"pageerror: {exc}"))
        page.on(
            "console",
            lambda msg: (
                self.errors.append(f"console: {msg.text}")
                if msg.type == "error" and "Content Security Policy" in msg.text
                else None
            ),
        )
        await page.goto(self.url)
        await expect(page.locator("#conn")).to_have_attribute("data-state", "live")
        await expect(page.locator("#messages")).to_be_attached()
        if name and not self.named:
            # Every browser of a loopback server is the one local person (so is the CLI): the
            # first page names it, through the page itself (PUT /api/me), as a person would.
            self.named = True
            await page.evaluate(
                """async (name) => {
                  const app = window.backchannel;
                  await app.loadMe();
                  if (app.whoami && app.whoami.name !== name) await app.setName(name);
                }""",
                name,
            )
            await expect(page.locator("#me-name")).to_have_text(name)
        return page


def human(url: str, secret: str) -> httpx.Client:
    """A person's REST client (the CLI's local secret works like the browser's session header)."""
    return httpx.Client(base_url=url, headers={SESSION_HEADER: secret}, timeout=10)


def rest(server: RunningServer, method: str, path: str, **kwargs: Any) -> Any:
    """A person's REST call that must succeed; its JSON (None for a 204)."""
    with human(server.url, server.secret) as client:
        response = client.request(method, path, **kwargs)
        assert response.status_code < 300, response.text
        return response.json() if response.status_code != 204 else None


def say(
    url: str, secret: str, text: str, channel: str = "general", sender: str = "ann", **extra: Any
) -> dict[str, Any]:
    with human(url, secret) as client:
        response = client.post(
            f"/api/channels/{channel}/messages", json={"text": text, "sender": sender, **extra}
        )
        assert response.status_code == 201, response.text
        return response.json()


async def seed(db_path: Path, texts: list[str], channel: str = "general", sender: str = "ann") -> list[int]:
    """Write history straight into the server's database (fast; no live events, so seed before opening)."""
    store = Store(db_path)
    try:
        return [
            (await store.post(channel=channel, sender=sender, kind="human", text=text)).message.id
            for text in texts
        ]
    finally:
        store.close()
