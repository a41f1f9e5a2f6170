"""The client-side Markdown renderer (web/static/js/markdown.js), run in chromium on exact inputs.

It builds DOM nodes and never parses message text as HTML, so these tests pin both what is rendered
and that hostile input stays text.
"""

from __future__ import annotations

import pytest
from playwright.async_api import Browser, Page

from tests.conftest import RunningServer
from tests.e2e.ui_support import UI, _chromium, browser  # noqa: F401  # `browser` is a fixture

pytestmark = pytest.mark.anyio

RENDER_JS = """async (cases) => {
    const { renderMarkdown } = await import("/static/js/markdown.js");
    const mention = (name) => name === "claude"
        ? Object.assign(document.createElement("span"), { className: "mention", textContent: "@" + name })
        : null;
    return cases.map((text) => {
        const box = document.createElement("div");
        box.append(renderMarkdown(text, { mention }));
        box.querySelectorAll(".code-bar").forEach((bar) => bar.remove());  // buttons are tested elsewhere
        return box.innerHTML;
    });
}"""
LINK = 'target="_blank" rel="noopener noreferrer nofollow"'


async def render(page: Page, cases: dict[str, str]) -> None:
    got = await page.evaluate(RENDER_JS, list(cases))
    assert dict(zip(cases, got, strict=True)) == cases


async def test_inline_markup_links_and_mentions(
    server: RunningServer,
    browser: Browser,  # noqa: F811  # pytest fixture
) -> None:
    page = await UI(browser, server.url).open()
    await render(
        page,
        {
            "**bold** _it_ *it* ~~gone~~": (
                "<p><strong>bold</strong> <em>it</em> <em>it</em> <del>gone</del></p>"
            ),
            "snake_case_name stays": "<p>snake_case_name stays</p>",
            "`a **b** @claude`": "<p><code>a **b** @claude</code></p>",
            "``code with ` tick``": "<p><code>code with ` tick</code></p>",
            "hi @claude and @nobody, me@example.com": (
                '<p>hi <span class="mention">@claude</span> and @nobody, me@example.com</p>'
            ),
            "see https://example.com/a_(b). next": (
                f'<p>see <a href="https://example.com/a_(b)" {LINK}>https://example.com/a_(b)</a>. next</p>'
            ),
            "(at https://example.com/x)": f'<p>(at <a href="https://example.com/x" {LINK}>https://example.com/x</a>)</p>',
            "[the **guide**](https://example.org/g)": (
                f'<p><a href="https://example.org/g" {LINK}>the <strong>guide</strong></a></p>'
            ),
            "www.example.com": f'<p><a href="https://www.example.com/" {LINK}>www.example.com</a></p>',
            r"\*not em\*": "<p>*not em*</p>",
            "line one\nline two": "<p>line one<br>line two</p>",
        },
    )


async def test_blocks_code_lists_quotes_and_tables(
    server: RunningServer,
    browser: Browser,  # noqa: F811  # pytest fixture
) -> None:
    page = await UI(browser, server.url).open()
    await render(
        page,
        {
            "```py\nx = '<b>'\n  @claude\n```": (
                '<div class="code-block"><pre tabindex="0"><code data-lang="py">x = \'&lt;b&gt;\'\n'
                "  @claude</code></pre></div>"
            ),
            "```\nnever closed": (
                '<div class="code-block"><pre tabindex="0"><code>never closed</code></pre></div>'
            ),
            "- a\n- b\n  more\n\n1. one\n2. two": (
                "<ul><li>a</li><li><p>b<br>more</p></li></ul><ol><li>one</li><li>two</li></ol>"
            ),
            "3. three": '<ol start="3"><li>three</li></ol>',
            "- [x] done\n- [ ] todo": (
                '<ul><li><input type="checkbox" disabled=""> done</li><li><input type="checkbox" disabled="">'
                " todo</li></ul>"
            ),
            "> quoted\n> **twice**\n\nafter": (
                "<blockquote><p>quoted<br><strong>twice</strong></p></blockquote><p>after</p>"
            ),
            "## Title": '<div class="md-h md-h2" role="heading" aria-level="4">Title</div>',
            "| a | b |\n|---|:-:|\n| 1 | `\\|` |": (
                '<div class="md-table"><table><thead><tr><th>a</th><th>b</th></tr></thead>'
                "<tbody><tr><td>1</td><td><code>|</code></td></tr></tbody></table></div>"
            ),
            "---": "<hr>",
            "a | b\n---": "<p>a | b</p><hr>",
        },
    )


async def test_hostile_input_stays_text(
    server: RunningServer,
    browser: Browser,  # noqa: F811  # pytest fixture
) -> None:
    page = await UI(browser, server.url).open()
    await render(
        page,
        {
            "<img src=x onerror=alert(1)>": "<p>&lt;img src=x onerror=alert(1)&gt;</p>",
            "[x](javascript:alert(1))": "<p>[x](javascript:alert(1))</p>",
            "[x](JaVaScRiPt:alert(1))": "<p>[x](JaVaScRiPt:alert(1))</p>",
            "[x](data:text/html,hi)": "<p>[x](data:text/html,hi)</p>",
            "[x](vbscript:msgbox)": "<p>[x](vbscript:msgbox)</p>",
            "<javascript:alert(1)>": "<p>&lt;javascript:alert(1)&gt;</p>",
            '[x](https://e.com/"onmouseover="alert(1))': (
                f'<p><a href="https://e.com/%22onmouseover=%22alert(1" {LINK}>x</a>)</p>'
            ),
            "![img](https://tracker.example/p.gif)": (
                f'<p><a href="https://tracker.example/p.gif" {LINK}>img</a></p>'
            ),
        },
    )
    assert await page.evaluate("document.querySelectorAll('img').length") == 0
