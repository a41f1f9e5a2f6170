"""Benchmark the web UI with 10,000 messages in a channel, in Debian's chromium via Playwright.

Prints how long the page takes to open (navigation to the newest message on screen, live feed
connected) and how smoothly the timeline scrolls back through history (frame intervals while
scrolling up continuously, which also pages older messages in). Every loop is bounded.

    .venv/bin/python bench/bench_ui.py              # 10,000 messages, 10 page opens, 600 scroll frames
    .venv/bin/python bench/bench_ui.py --messages 2000 --opens 3 --frames 200   # a quick smoke run
"""

from __future__ import annotations

import argparse
import statistics
import tempfile
import time
from pathlib import Path
from typing import Any

import anyio
from _support import running_server  # bench/ is on sys.path when a script here runs
from playwright.async_api import Browser, async_playwright

from backchannel.models import SenderKind
from backchannel.store import Store

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
CHANNEL = "bench"
SAMPLES = [
    "Looked at the failing job: the cache key ignores the lock file. Fixing now.",
    "@claude can you check whether `test_resume` still flakes on the 2-core runner?",
    "**Done.** Summary:\n- moved the writer to its own thread\n- added `BEGIN IMMEDIATE`\n- 212 tests pass",
    "Patch:\n```python\nasync def handler(request):\n    body = await request.json()\n"
    "    return JSONResponse(body)\n```\nwith",
    "See https://example.com/issues/42 for the discussion, and the [design note](https://example.com/d).",
    "ok",
    "I disagree with the retry budget: 5 attempts at 2x backoff is 31 s before we give up. "
    "That is longer than the crash timeout, so the roster would show the agent offline meanwhile.",
]


def seed(data_dir: Path, count: int) -> str:
    """``count`` varied messages (people and agents, markdown, code, links) through the store API."""

    async def run() -> str:
        store = Store(data_dir / "backchannel.db")
        try:
            await store.create_channel(CHANNEL, 64)
            last = ""
            for i in range(count):
                kind: SenderKind = "human" if i % 3 == 0 else "agent"
                sender = "maya" if kind == "human" else ("claude", "codex")[i % 2]
                last = f"(#{i})"  # the rendered text of every sample ends with its number
                text = f"{SAMPLES[i % len(SAMPLES)]} {last}"
                await store.post(channel=CHANNEL, sender=sender, kind=kind, text=text)
            return last
        finally:
            store.close()

    return anyio.run(run)


async def open_once(browser: Browser, url: str, last_text: str) -> dict[str, float]:
    """One cold page open (fresh context: no cache, no storage) timed from the page's own clock."""
    context = await browser.new_context(viewport={"width": 1280, "height": 800})
    await context.add_init_script(
        f"localStorage.setItem('bc.name', '\"maya\"'); localStorage.setItem('bc.channel', '\"{CHANNEL}\"')"
    )
    page = await context.new_page()
    await page.goto(url)
    ready = await page.wait_for_function(
        """(text) => {
            const live = document.getElementById("conn").dataset.state === "live";
            const msgs = document.querySelectorAll("#messages .msg");
            const last = msgs[msgs.length - 1];
            if (!live || !last || !last.textContent.includes(text)) return false;
            const box = last.getBoundingClientRect();
            return box.bottom <= window.innerHeight && box.top >= 0 ? performance.now() : false;
        }""",
        arg=last_text,
        polling="raf",
        timeout=10_000,
    )
    ready_ms = float(await ready.json_value())
    nav = await page.evaluate(
        "(() => { const n = performance.getEntriesByType('navigation')[0];"
        " return {dcl: n.domContentLoadedEventEnd, load: n.loadEventEnd}; })()"
    )
    await context.close()
    return {"ready": ready_ms, **nav}


SCROLL_JS = """
async ({frames, step}) => {
    const timeline = document.getElementById("timeline");
    const longTasks = [];
    const observer = new PerformanceObserver((list) => {
        for (const entry of list.getEntries()) longTasks.push(entry.duration);
    });
    observer.observe({type: "longtask"});
    const intervals = [];
    let last = performance.now();
    for (let i = 0; i < frames; i++) {
        timeline.scrollTop = Math.max(0, timeline.scrollTop - step);
        await new Promise((resolve) => requestAnimationFrame(resolve));
        const now = performance.now();
        intervals.push(now - last);
        last = now;
    }
    observer.disconnect();
    const pages = performance.getEntriesByType("resource")
        .filter((e) => e.name.includes("/messages?") && e.name.includes("before="))
        .map((e) => e.duration);
    return {intervals, longTasks, pages, loaded: document.querySelectorAll("#messages .msg").length,
            nodes: document.getElementsByTagName("*").length};
}
"""


def pct(values: list[float], p: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, round(p / 100 * (len(ordered) - 1)))]


async def measure(url: str, last_text: str, opens: int, frames: int, step: int) -> dict[str, Any]:
    async with async_playwright() as pw:
        browser = await pw.chromium.launch(executable_path=CHROMIUM, headless=True, args=CHROMIUM_ARGS)
        await open_once(browser, url, last_text)  # warm-up: server caches, chromium start-up
        runs = [await open_once(browser, url, last_text) for _ in range(opens)]
        context = await browser.new_context(viewport={"width": 1280, "height": 800})
        await context.add_init_script(f"localStorage.setItem('bc.channel', '\"{CHANNEL}\"')")
        page = await context.new_page()
        await page.goto(url)
        await page.wait_for_function("() => document.getElementById('conn').dataset.state === 'live'")
        await page.wait_for_selector("#messages .msg")
        scroll = await page.evaluate(SCROLL_JS, {"frames": frames, "step": step})
        await browser.close()
    return {"runs": runs, "scroll": scroll}


def report(count: int, result: dict[str, Any], frames: int, step: int) -> None:
    ready = [r["ready"] for r in result["runs"]]
    dcl = [r["dcl"] for r in result["runs"]]
    s = result["scroll"]
    iv = s["intervals"]
    print(f"web UI with {count:,} messages in #{CHANNEL} (chromium headless, 1280x800)")
    print(
        f"  page open -> newest message on screen, live: median {statistics.median(ready):.0f} ms, "
        f"p90 {pct(ready, 90):.0f} ms, max {max(ready):.0f} ms  ({len(ready)} cold opens)"
    )
    print(f"  DOMContentLoaded: median {statistics.median(dcl):.0f} ms")
    fps = 1000 / statistics.mean(iv)
    print(
        f"  scroll back {frames} frames at {step} px/frame: {fps:.0f} fps mean, frame interval "
        f"p50 {pct(iv, 50):.1f} ms, p95 {pct(iv, 95):.1f} ms, p99 {pct(iv, 99):.1f} ms, "
        f"max {max(iv):.1f} ms"
    )
    janky = sum(1 for v in iv if v > 50)
    print(
        f"  frames over 50 ms: {janky} of {len(iv)}; long tasks: {len(s['longTasks'])}"
        + (f" (max {max(s['longTasks']):.0f} ms)" if s["longTasks"] else "")
    )
    if s["pages"]:
        print(
            f"  history pages fetched while scrolling: {len(s['pages'])}, "
            f"fetch median {statistics.median(s['pages']):.1f} ms"
        )
    print(f"  messages in the DOM after scrolling: {s['loaded']:,} (elements: {s['nodes']:,})")


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--messages", type=int, default=10_000)
    parser.add_argument("--opens", type=int, default=10)
    parser.add_argument("--frames", type=int, default=600)
    parser.add_argument("--step", type=int, default=120, help="pixels scrolled up per frame")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory(prefix="bc-bench-ui-") as tmp:
        data_dir = Path(tmp)
        started = time.perf_counter()
        last_text = seed(data_dir, args.messages)
        print(f"seeded {args.messages:,} messages in {time.perf_counter() - started:.1f} s")
        with running_server(data_dir) as url:
            result = anyio.run(measure, url, last_text, args.opens, args.frames, args.step)
    report(args.messages, result, args.frames, args.step)


if __name__ == "__main__":
    main()
