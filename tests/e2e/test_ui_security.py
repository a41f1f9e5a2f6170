"""Hostile input in the browser: script in messages and labels, bad links, SVG, foreign origins."""

from __future__ import annotations

import json

import httpx
import pytest
from playwright.async_api import Browser, expect

from tests.conftest import RunningServer, register
from tests.e2e.ui_support import PNG_PIXEL, UI, _chromium, browser, human, say  # noqa: F401  # `browser` is a fixture

pytestmark = pytest.mark.anyio

PAYLOADS = [
    '<img src=x onerror="window.__xss = 1">',
    "<script>window.__xss = 2</script>",
    "[click me](javascript:window.__xss=3)",
    '<a href="javascript:window.__xss=4">raw link</a>',
    "[data](data:text/html,<script>window.__xss=5</script>)",
    '<svg onload="window.__xss = 6"><circle r=5 /></svg>',
    "<iframe src=javascript:window.__xss=7>",
    "```\n</code><img src=x onerror=window.__xss=8>\n```",
]
EVIL_SVG = (
    b'<svg xmlns="http://www.w3.org/2000/svg" onload="window.__xss=9"><script>window.__xss=10</script></svg>'
)


async def test_xss_payloads_in_messages_labels_and_search_are_rendered_as_inert_text(
    server: RunningServer,
    browser: Browser,  # noqa: F811  # pytest fixture
) -> None:
    for text in PAYLOADS:
        say(server.url, server.secret, text)
    # Registered after the payloads, so its join line comes last.
    await register(server.url, "claude", label='<img src=x onerror="window.__xss=11">')
    ui = UI(browser, server.url)
    page = await ui.open()
    await expect(page.locator(".msg")).to_have_count(len(PAYLOADS) + 1)
    await expect(page.locator(".msg").first.locator(".text")).to_have_text(PAYLOADS[0])
    await expect(page.locator("#roster .label")).to_have_text('<img src=x onerror="window.__xss=11">')
    await page.get_by_role("searchbox", name="Search all channels").fill("onerror")
    await page.get_by_role("searchbox", name="Search all channels").press("Enter")
    await expect(page.locator("#search-results .search-hit").first).to_contain_text("onerror")

    # the page's own markup has no image, frame, script or svg that came from a message
    for selector in ("#messages img", "#messages iframe", "#messages script", "#search-results img"):
        assert await page.locator(selector).count() == 0, selector
    assert await page.locator("#messages svg:not(.icon)").count() == 0
    hrefs = await page.eval_on_selector_all("a[href]", "els => els.map(a => a.getAttribute('href'))")
    assert not [h for h in hrefs if not h.startswith(("http:", "https:", "#", "/"))], hrefs
    await expect(page.locator(".msg", has_text="click me").locator("a")).to_have_count(0)
    assert await page.evaluate("window.__xss") is None
    assert ui.errors == []


async def test_svg_uploads_are_refused_images_served_sandboxed_and_another_origin_cannot_post_or_listen(
    server: RunningServer,
    browser: Browser,  # noqa: F811  # pytest fixture
) -> None:
    """One open page (so the browser holds the person's cookie): uploads it must refuse, then a page
    on another origin in the same browser tries to post and listen."""
    ui = UI(browser, server.url)
    page = await ui.open()
    picker = page.locator("#file-input")
    await picker.set_input_files({"name": "evil.svg", "mimeType": "image/svg+xml", "buffer": EVIL_SVG})
    await expect(page.locator("#toast")).to_contain_text("only PNG, JPEG, GIF and WebP")
    await picker.set_input_files({"name": "evil.png", "mimeType": "image/png", "buffer": EVIL_SVG})
    await expect(page.locator("#toast")).to_contain_text("Upload failed")
    await expect(page.locator("#attachment-previews .preview")).to_have_count(0)

    with human(server.url, server.secret) as client:
        refused = client.post("/api/uploads", content=EVIL_SVG, headers={"Content-Type": "image/svg+xml"})
        assert 400 <= refused.status_code < 500
        stored = client.post("/api/uploads", content=PNG_PIXEL, headers={"Content-Type": "image/png"}).json()
        served = client.get(stored["url"])
        assert "sandbox" in served.headers["content-security-policy"]
        assert served.headers["x-content-type-options"] == "nosniff"
        forged = client.post(
            "/api/channels/general/messages",
            json={"text": "x", "sender": "ann", "attachments": [{"url": "javascript:alert(1)"}]},
        )
        assert 400 <= forged.status_code < 500
    assert await page.evaluate("window.__xss") is None

    evil = await page.context.new_page()
    await evil.route(
        "http://attacker.test/**", lambda route: route.fulfill(body="<h1>hi</h1>", content_type="text/html")
    )
    await evil.goto("http://attacker.test/")
    target = f"{server.url}/api/channels/general/messages"
    body = json.dumps({"text": "forged by attacker", "sender": "mallory"})
    outcome = await evil.evaluate(
        """async ([target, body, wsUrl]) => {
            const results = [];
            const attempt = async (init) => {
                try { const r = await fetch(target, init); results.push(r.type + ":" + r.status); }
                catch (e) { results.push("blocked"); }
            };
            await attempt({method: "POST", mode: "no-cors", credentials: "include",
                           headers: {"Content-Type": "text/plain"}, body});
            const json = {"Content-Type": "application/json", "X-Backchannel-Session": "guess"};
            await attempt({method: "POST", credentials: "include", headers: json, body});
            const form = Object.assign(document.createElement("form"),
                {method: "POST", action: target, enctype: "text/plain", target: "sink"});
            const frame = Object.assign(document.createElement("iframe"), {name: "sink"});
            document.body.append(frame, form);
            const loaded = new Promise((ok) => frame.addEventListener("load", ok, {once: true}));
            form.submit();
            await loaded;
            results.push(await new Promise((ok) => {
                const ws = new WebSocket(wsUrl);
                ws.onmessage = (e) => { ok("ws-message:" + e.data); ws.close(); };
                ws.onclose = () => ok("ws-closed");
            }));
            return results;
        }""",
        [target, body, server.url.replace("http", "ws") + "/ws"],
    )
    # Chromium may already refuse the simple request (private network access); either way nothing lands
    assert outcome[0] in ("opaque:0", "blocked")
    assert outcome[1] == "blocked"  # the preflight for the custom header is never granted
    assert outcome[2] == "ws-closed"
    # and what a browser would send if it did let the request through is refused by the server
    session = server.app.state.services.guard.secrets.session
    with httpx.Client(base_url=server.url, timeout=10) as raw:
        foreign = {"Origin": "http://attacker.test", "Content-Type": "text/plain"}
        cookie_only = raw.post(
            target, content=body, headers={**foreign, "Cookie": f"{server.session_cookie}={session}"}
        )
        assert cookie_only.status_code in (401, 403)
        with_header = raw.post(target, content=body, headers={**foreign, "X-Backchannel-Session": session})
        assert with_header.status_code == 403
    with human(server.url, server.secret) as client:
        texts = [m["text"] for m in client.get("/api/channels/general/messages").json()["messages"]]
    assert not [t for t in texts if "forged" in t]
    await expect(page.locator(".msg")).to_have_count(0)
    assert ui.errors == []
