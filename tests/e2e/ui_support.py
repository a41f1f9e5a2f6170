"""Shared pieces for the browser tests: Debian's chromium via Playwright, and a page on the UI.

Not a conftest: the UI test modules import the fixtures they use, so the rest of the suite never
starts a browser.
"""

from __future__ import annotations

import re
import tempfile
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import asynccontextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any
from weakref import WeakKeyDictionary, WeakSet

import anyio
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
        try:
            yield launched
        finally:
            _POOLS.pop(id(launched), None)


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
    """The module's browser. After each test every page is closed, so no page of an earlier test
    keeps reconnecting to a server that is gone; the contexts :meth:`UI.open` made go back to the
    module's pool for the next test, the others are closed."""
    yield _chromium
    await release_contexts(_chromium)


_PoolKey = tuple[int, int, str]


@dataclass
class _ContextPool:
    """Browser contexts, each with one tab, that a module's tests hand on to each other.

    Opening the UI in a new tab of a new context costs about twice the CPU of navigating a used
    tab to it again: a new renderer process, and empty HTTP and code caches for the UI's ~30 scripts
    and stylesheets. So a context goes back to the pool after a test (or :meth:`UI.close`), reused
    only with the same viewport and colour scheme: its other tabs closed, its cookies, permissions and
    routes cleared, and its tab parked on about:blank (the page and its WebSocket are gone). Before a
    tab loads the UI again, :meth:`UI.open` wipes the origin's localStorage and sessionStorage and
    seeds them, so every test still starts from a browser that remembers nothing. Tabs with an init
    script and contexts with Playwright's fake clock are never reused.
    """

    idle: dict[_PoolKey, list[BrowserContext]] = field(default_factory=dict[_PoolKey, list[BrowserContext]])
    keys: WeakKeyDictionary[BrowserContext, _PoolKey] = field(
        default_factory=WeakKeyDictionary[BrowserContext, _PoolKey]
    )  # every pooled context (idle or in use) -> its key
    clean: WeakSet[Page] = field(default_factory=WeakSet[Page])  # tabs without an init script
    listeners: WeakKeyDictionary[Page, list[tuple[str, Any]]] = field(
        default_factory=WeakKeyDictionary[Page, list[tuple[str, Any]]]
    )  # what UI.open hung on a tab, taken off before the tab is handed on


_POOLS: dict[int, _ContextPool] = {}  # id(browser) -> its pool


def _pool(browser: Browser) -> _ContextPool:
    return _POOLS.setdefault(id(browser), _ContextPool())


async def _hand_back(browser: Browser, context: BrowserContext) -> None:
    """Reset the context and return it to the pool with one parked tab; close it if it is not pooled."""
    pool = _pool(browser)
    key = pool.keys.get(context)
    if key is None:
        await context.close()
        return
    try:
        keep = next((p for p in context.pages if p in pool.clean and not p.is_closed()), None)
        for page in list(context.pages):
            if page is not keep:
                await page.close()
        await context.unroute_all(behavior="ignoreErrors")
        await context.clear_permissions()
        await context.clear_cookies()
        if keep is not None:
            for event, handler in pool.listeners.pop(keep, []):
                keep.remove_listener(event, handler)
            await keep.unroute_all(behavior="ignoreErrors")
            await keep.goto("about:blank")
    except Exception:  # a context that cannot be reset cleanly is not handed on
        del pool.keys[context]
        await context.close()
        return
    pool.idle.setdefault(key, []).append(context)


async def release_contexts(browser: Browser) -> None:
    """Park or close every tab; pooled contexts go back to the pool, any other context is closed."""
    for context in list(browser.contexts):
        await _hand_back(browser, context)


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
        size: ViewportSize = viewport or {"width": 1200, "height": 800}
        key: _PoolKey = (size["width"], size["height"], str(color_scheme))
        pool = _pool(self.browser)
        idle = [] if fake_clock else pool.idle.get(key, [])
        if idle:
            context = idle.pop()
        else:
            context = await self.browser.new_context(viewport=size, color_scheme=color_scheme)
            if not fake_clock:  # the fake clock stays installed in its context: never handed on
                pool.keys[context] = key
        self.contexts.append(context)
        page = None if init_script else next((p for p in context.pages if p in pool.clean), None)
        if page is None:
            page = await context.new_page()
            if not init_script:
                pool.clean.add(page)
        if init_script:
            await page.add_init_script(init_script)
        if fake_clock:
            await page.clock.install()

        def on_error(exc: Any) -> None:
            self.errors.append(f"pageerror: {exc}")

        def on_console(msg: Any) -> None:
            if msg.type == "error" and "Content Security Policy" in msg.text:
                self.errors.append(f"console: {msg.text}")

        page.on("pageerror", on_error)
        page.on("console", on_console)
        pool.listeners[page] = [("pageerror", on_error), ("console", on_console)]
        values: dict[str, Any] = {"name": name} if name else {}
        values["helpSeen"] = True  # no first-visit tour over the page (storage={"helpSeen": False} shows it)
        values.update(storage or {})
        # The browser remembers nothing but ``values`` (a pooled tab may have held an earlier test's
        # page of this origin): set on a plain file of the origin, before the UI's scripts run.
        await page.goto(f"{self.url}/static/app.css")
        await page.evaluate(
            """(values) => {
              localStorage.clear();
              sessionStorage.clear();
              for (const [k, v] of Object.entries(values)) localStorage.setItem(`bc.${k}`, JSON.stringify(v));
            }""",
            values,
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

    async def close(self, page: Page) -> None:
        """Done with ``page``: its context goes back to the pool, so a later :meth:`open` in the same
        test gets a warm one (a page of the same size and scheme loads from its cache)."""
        context = page.context
        if context in self.contexts:
            self.contexts.remove(context)
        await _hand_back(self.browser, context)


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


async def hold_response(page: Page, url: re.Pattern[str]) -> tuple[anyio.Event, anyio.Event]:
    """The page's next request to ``url`` is answered by the server at once, but the answer reaches
    the page only when ``release`` is set: (held, release); ``held`` is set once it was fetched."""
    held, release = anyio.Event(), anyio.Event()

    async def hold(route: Any) -> None:
        response = await route.fetch()
        held.set()
        await release.wait()
        await route.fulfill(response=response)

    await page.route(url, hold, times=1)
    return held, release
