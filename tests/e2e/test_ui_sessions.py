"""Sessions in the browser: the launcher starts one, the session bar and the banners follow the
turns live in a second browser as agents answer over MCP, End (with its inline confirm) ends it
everywhere; a session_draft card's buttons; the launcher and the bar in light, dark and at phone
width.

``python -m tests.e2e.test_ui_sessions`` renders docs/sessions-*.png from the same kind of room (not
a test: a person looks at the pictures before committing them).
"""

from __future__ import annotations

import json
import re
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import anyio
import httpx
import pytest
from playwright.async_api import Browser, Page, ViewportSize, expect

from tests.conftest import RunningServer, mcp_client, module_server, register
from tests.e2e.test_ui_a11y import CONTRAST_JS, UNNAMED_JS
from tests.e2e.ui_support import UI, _chromium, browser, human, rest, scratch_room  # noqa: F401

pytestmark = pytest.mark.anyio
DOCS = Path(__file__).resolve().parents[2] / "docs"
OVERFLOW_JS = "() => document.documentElement.scrollWidth - document.documentElement.clientWidth"
# The selectors of sessions.css that reach past the sessions' own classes (shared dialogs, the topbar).
FOREIGN_RULES_JS = """() => {
  const walk = (r) => (r.cssRules ? [...r.cssRules].flatMap(walk) : [r]);
  const sheets = [...document.styleSheets].filter((s) => s.href && s.href.endsWith("/sessions.css"));
  if (!sheets.length) return ["sessions.css is not loaded"];
  return sheets
    .flatMap((sheet) => [...sheet.cssRules].flatMap(walk))
    .flatMap((r) => (r.selectorText ? r.selectorText.split(",") : []))
    .filter((part) => !/session|launcher/.test(part));
}"""
DRAFT: dict[str, Any] = {
    "name": "Security pass",
    "description": "An attacker looks for holes, a defender answers.",
    "roles": ["attacker", "defender"],
    "phases": [
        {
            "name": "Attack",
            "participants": ["attacker"],
            "prompt": "Find the weakest spot.",
            "is_output": False,
        },
        {"name": "Defend", "participants": ["defender"], "prompt": "Answer each finding.", "is_output": True},
    ],
}


@pytest.fixture(scope="module")
async def server(tmp_path_factory: pytest.TempPathFactory) -> AsyncIterator[RunningServer]:
    # Agents stay online for the whole module (they are cast from the online ones).
    with module_server(tmp_path_factory, "ui-sessions", crash_timeout=600.0) as running:
        yield running


@pytest.fixture(scope="module")
async def agents(server: RunningServer) -> dict[str, dict[str, Any]]:
    """claude and codex, registered (online) for the whole module: their tokens for MCP."""
    return {
        "claude": await register(server.url, "claude", instance_id="sess-1"),
        "codex": await register(server.url, "codex", instance_id="sess-2"),
    }


def channel(server: RunningServer, name: str) -> None:
    with human(server.url, server.secret) as client:
        assert client.post("/api/channels", json={"name": name}).status_code == 201


async def launch(page: Page, template: str, goal: str, cast: dict[str, str]) -> None:
    """Start a session from the launcher, by the names a screen reader hears."""
    await page.get_by_role("button", name="Sessions", exact=True).click()
    dialog = page.get_by_role("dialog", name=re.compile("^Start a session in #"))
    await expect(dialog.get_by_role("textbox", name="Goal")).to_be_focused()
    await dialog.get_by_role("textbox", name="Goal").fill(goal)
    await dialog.get_by_role("radio", name=re.compile(f"^{template}")).click()
    await expect(dialog.get_by_role("radio", name=re.compile(f"^{template}"))).to_have_attribute(
        "aria-checked", "true"
    )
    for role, who in cast.items():
        await dialog.get_by_role("combobox", name=f"Who plays {role}").select_option(who)
    await dialog.get_by_role("button", name="Start").click()
    await expect(dialog).to_be_hidden()


async def test_launch_follow_the_turns_live_and_end_with_the_inline_confirm(
    server: RunningServer,
    agents: dict[str, dict[str, Any]],
    browser: Browser,  # noqa: F811  # pytest fixture
) -> None:
    channel(server, "sess-run")
    ui = UI(browser, server.url)
    page = await ui.open(storage={"channel": "sess-run"})
    other = await ui.open("carol", storage={"channel": "sess-run"})
    await expect(page.locator("#session-bar")).to_be_hidden()

    await launch(
        page,
        "Design critique",
        "Judge the new onboarding flow",
        {"presenter": "claude", "critic": "codex", "synthesiser": "claude"},
    )
    for p in (page, other):
        bar = p.locator("#session-bar")
        await expect(bar.locator(".session-name")).to_have_text("Design critique")
        await expect(bar.locator(".session-phase")).to_have_text("Phase 1/3: Present")
        await expect(bar.locator(".session-turn")).to_have_text("Waiting for claude")
        start = p.locator(".session-banner.session-start")
        await expect(start).to_contain_text("Goal: Judge the new onboarding flow")
        await expect(start).to_contain_text("presenter: claude")
        await expect(p.locator(".session-banner.session-phase")).to_contain_text("Phase 1/3: Present")
    [running] = rest(server, "GET", "/api/sessions?state=active")
    assert (running["channel"], running["cast"]["critic"]) == ("sess-run", "codex")
    assert isinstance(running["version"], int)
    # The turn's live region is one element that stays: a screen reader announces its new text.
    turn = await page.locator("#session-bar [role=status]").element_handle()

    # claude answers its turn over MCP: the bar moves to codex's turn, the next banner appears.
    async with mcp_client(server.url, agents["claude"]["token"]) as claude:
        await claude.call_tool(
            "chat_send", {"message": "Here is the flow: three screens.", "channel": "sess-run"}
        )
    for p in (page, other):
        bar = p.locator("#session-bar")
        await expect(bar.locator(".session-phase")).to_have_text("Phase 2/3: Critique")
        await expect(bar.locator(".session-turn")).to_have_text("Waiting for codex")
        await expect(p.locator(".session-banner.session-phase").last).to_contain_text("critic (codex)")
    await expect(page.locator("#session-bar [role=status]")).to_have_count(1)
    assert await turn.evaluate("(n) => n.isConnected && n.matches('#session-bar .session-turn')")

    # codex leaves while it is on turn: the bar says so; back again, it does not.
    async with httpx.AsyncClient(base_url=server.url) as client:
        gone = await client.delete(
            "/api/agents/codex", headers={"Authorization": f"Bearer {agents['codex']['token']}"}
        )
        assert gone.status_code == 204, gone.text
    for p in (page, other):
        await expect(p.locator("#session-bar .session-turn")).to_have_text("Waiting for codex (offline)")
    agents["codex"] = await register(server.url, "codex", instance_id="sess-2")
    assert agents["codex"]["name"] == "codex"
    await expect(page.locator("#session-bar .session-turn")).to_have_text("Waiting for codex")

    # A copy that arrives late (same second, lower version) does not roll the bar back a turn.
    phase = await page.evaluate(
        """() => {
            const sessions = window.backchannel.sessions;
            const now = sessions.inChannel("sess-run");
            const v = Number.isInteger(now.version) ? now.version : 0;
            const copy = (version, phase_name) =>
                ({ action: "updated", session: { ...now, version, phase_name } });
            sessions.onEvent(copy(v + 1, "Newer"), false);
            sessions.onEvent(copy(v, "Older"), false);
            const shown = document.querySelector("#session-bar .session-phase").textContent;
            sessions.onEvent(copy(v + 1, now.phase_name), false);
            return shown;
        }"""
    )
    assert phase == "Phase 2/3: Newer"
    await expect(page.locator("#session-bar .session-phase")).to_have_text("Phase 2/3: Critique")

    # A person speaking on an agent's turn pauses it (the other page shows it too).
    await page.get_by_label("Message #sess-run").fill("Hold on, one more screen is coming.")
    await page.get_by_label("Message #sess-run").press("Enter")
    await expect(other.locator("#session-bar .session-turn")).to_have_text(
        "Paused: waiting for codex to answer"
    )

    # End, with the keyboard, from the other page: an inline confirm that Escape takes back...
    end = other.get_by_role("button", name="End session Design critique")
    await end.focus()
    await other.keyboard.press("Enter")
    keep = other.get_by_role("button", name="Keep going")
    await expect(keep).to_be_focused()
    await other.keyboard.press("Escape")
    await expect(end).to_be_focused()
    assert await other.evaluate(UNNAMED_JS) == []
    # ...then for real: the bar leaves both pages and the end banner names who ended it.
    await other.keyboard.press("Enter")
    await other.get_by_role("button", name="End session", exact=True).click()
    for p in (page, other):
        await expect(p.locator("#session-bar")).to_be_hidden()
        await expect(p.locator(".session-banner.session-end")).to_contain_text(
            re.compile(r"Session Design critique ended by \w+")
        )
    assert rest(server, "GET", "/api/sessions?state=active") == []
    assert ui.errors == []


async def test_a_draft_card_offers_its_actions_and_dismiss_collapses_it_live(
    server: RunningServer,
    agents: dict[str, dict[str, Any]],
    browser: Browser,  # noqa: F811  # pytest fixture
) -> None:
    channel(server, "sess-draft")
    ui = UI(browser, server.url)
    page = await ui.open(storage={"channel": "sess-draft"})
    other = await ui.open("carol", storage={"channel": "sess-draft"})
    # "Design a session" in the launcher asks an agent, with a visible message from this person.
    await page.get_by_role("button", name="Sessions", exact=True).click()
    await page.get_by_text("Design a session with an agent").click()
    await page.get_by_role("combobox", name="Agent").select_option("claude")
    await page.get_by_role("textbox", name="What should the session do?").fill("a security pass")
    await page.get_by_role("button", name="Ask for a draft").click()
    await expect(page.locator(".launcher-design-status")).to_have_text(re.compile("^Asked @claude"))
    await page.get_by_role("button", name="Cancel").click()
    ask = other.locator(".messages > li.msg.human", has_text="Please design a session for: a security pass")
    await expect(ask).to_contain_text("@claude")
    block = f"My proposal:\n```session\n{json.dumps(DRAFT)}\n```"
    async with mcp_client(server.url, agents["claude"]["token"]) as claude:
        await claude.call_tool("chat_send", {"message": block, "channel": "sess-draft"})
        bad = {**DRAFT, "phases": [{**DRAFT["phases"][0], "participants": ["judge"], "is_output": True}]}
        await claude.call_tool(
            "chat_send", {"message": f"```session\n{json.dumps(bad)}\n```", "channel": "sess-draft"}
        )
    card = page.locator(".session-draft.open.valid")
    await expect(card.locator(".session-draft-name")).to_have_text("Security pass")
    await expect(card.locator(".session-draft-phases > li")).to_have_count(2)
    actions = card.get_by_role("group", name=re.compile("^Session draft Security pass, rev 1"))
    for name in ("Run", "Save as template", "Request changes", "Dismiss"):
        await expect(actions.get_by_role("button", name=name, exact=True)).to_be_visible()
    invalid = page.locator(".session-draft.open.invalid")
    await expect(invalid.locator(".session-draft-errors li").first).to_contain_text('"judge"')
    await expect(invalid.get_by_role("button", name="Run")).to_have_count(0)

    # Run opens the launcher on that draft: its roles get a cast (the agents online).
    await actions.get_by_role("button", name="Run").click()
    dialog = page.get_by_role("dialog", name="Run the draft in #sess-draft")
    await expect(dialog.get_by_role("combobox", name="Who plays attacker")).to_be_visible()
    await expect(dialog.get_by_role("combobox", name="Who plays defender")).to_be_visible()
    await dialog.get_by_role("button", name="Cancel").click()

    # Request changes posts the revise message as this person, a normal message that wakes claude.
    await invalid.get_by_role("button", name="Request changes").click()
    await page.get_by_role("textbox", name="Note").fill("judge is not a role; use defender")
    await page.get_by_role("button", name="Send note").click()
    asked = other.locator(".messages > li.msg.human", has_text="Please revise session draft")
    await expect(asked).to_contain_text(re.compile(r"@claude Please revise session draft [0-9a-f]{8}: judge"))

    # Dismiss on the other page: the card collapses to one line on both.
    await other.locator(".session-draft.open.valid").get_by_role("button", name="Dismiss").click()
    for p in (page, other):
        await expect(p.locator(".session-draft.dismissed")).to_contain_text(
            "Security pass · rev 1 · dismissed"
        )
        await expect(p.locator(".session-draft.open.valid")).to_have_count(0)
    assert await page.evaluate(UNNAMED_JS) == []

    # claude answers the revise message: a new revision of that draft, the old card collapses.
    fixed = {**DRAFT, "name": "Security pass two"}
    async with mcp_client(server.url, agents["claude"]["token"]) as claude:
        await claude.call_tool(
            "chat_send", {"message": f"```session\n{json.dumps(fixed)}\n```", "channel": "sess-draft"}
        )
    await expect(other.locator(".session-draft.superseded")).to_contain_text("rev 1 · superseded")
    revised = page.locator(".session-draft.open.valid")
    await expect(revised.locator(".session-draft-head .tag")).to_have_text("rev 2")

    # Save as template: the card collapses, the launcher lists it, deletable with an inline confirm.
    await revised.get_by_role("button", name="Save as template").click()
    await expect(other.locator(".session-draft.saved")).to_contain_text("Security pass two · rev 2 · saved")
    await other.get_by_role("button", name="Sessions", exact=True).click()
    mine = other.locator(".launcher-template", has_text="Security pass two")
    await mine.get_by_role("button", name="Delete template Security pass two").click()
    await expect(mine.get_by_role("button", name="Keep")).to_be_focused()
    await mine.get_by_role("button", name="Delete", exact=True).click()
    await expect(other.locator(".launcher-template")).to_have_count(4)
    assert [t["id"] for t in rest(server, "GET", "/api/sessions/templates") if not t["builtin"]] == []
    assert ui.errors == []


async def test_your_own_turns_complete_a_session_and_view_output_jumps_to_the_marked_message(
    server: RunningServer,
    agents: dict[str, dict[str, Any]],
    browser: Browser,  # noqa: F811  # pytest fixture
) -> None:
    channel(server, "sess-mine")
    ui = UI(browser, server.url)
    page = await ui.open(storage={"channel": "sess-mine"})
    cast = {"planner": "ben", "challenger": "ben", "synthesiser": "ben"}
    await launch(page, "Planning", "Plan the release", cast)
    bar = page.locator("#session-bar")
    box = page.get_by_label("Message #sess-mine")
    for phase, text in (("Phase 1/3: Frame", "Scope: v0.4"), ("Phase 2/3: Challenge", "Too big?")):
        await expect(bar.locator(".session-phase")).to_have_text(phase)
        await expect(bar.locator(".session-turn")).to_have_text("Your turn")
        await box.fill(text)
        await box.press("Enter")
    await expect(bar.locator(".session-phase")).to_have_text("Phase 3/3: Plan")
    await box.fill("The plan: ship the fix, then the docs.")
    await box.press("Enter")
    await expect(bar).to_be_hidden()
    output = page.locator(".msg.session-output")
    await expect(output).to_contain_text("The plan: ship the fix")
    await expect(output.locator(".tag.type-session-output")).to_have_text("Session output")
    end = page.locator(".session-banner.session-end")
    await expect(end).to_contain_text("Session Planning complete")
    await end.get_by_role("button", name="View output").click()
    await expect(output).to_be_focused()
    await expect(output).to_have_class(re.compile(r"\bflash\b"))
    assert ui.errors == []


async def test_launcher_and_bar_are_named_readable_and_fit_a_phone(
    server: RunningServer,
    agents: dict[str, dict[str, Any]],
    browser: Browser,  # noqa: F811  # pytest fixture
) -> None:
    """One running session looked at in light and dark on a desktop, and in light on a phone."""
    name = "sess-look"
    channel(server, name)
    rest(
        server,
        "POST",
        "/api/sessions",
        json={"template_id": "code-review", "channel": name, "goal": "Ship it"},
    )
    ui = UI(browser, server.url)
    desktop: ViewportSize = {"width": 1200, "height": 800}
    phone: ViewportSize = {"width": 390, "height": 780}  # nothing may overflow its width
    looks: list[tuple[str, ViewportSize]] = [("light", desktop), ("light", phone), ("dark", desktop)]
    for scheme, viewport in looks:
        page = await ui.open(color_scheme=scheme, viewport=viewport, storage={"channel": name})
        await expect(page.locator("#session-bar .session-phase")).to_have_text("Phase 1/4: Submit")
        assert await page.evaluate(FOREIGN_RULES_JS) == []
        assert await page.evaluate(OVERFLOW_JS) == 0
        assert await page.evaluate(UNNAMED_JS) == []
        assert await page.evaluate(CONTRAST_JS) == []
        await page.get_by_role("button", name="End session Code review").click()
        await expect(page.get_by_role("button", name="Keep going")).to_be_focused()
        assert await page.evaluate(OVERFLOW_JS) == 0
        assert await page.evaluate(CONTRAST_JS) == []
        await page.get_by_role("button", name="Keep going").click()
        if viewport["width"] < 500:
            # On a phone the launcher is one of the channel's actions, folded behind "…".
            await page.get_by_role("button", name="Channel actions").click()
        await page.get_by_role("button", name="Sessions", exact=True).click()
        await expect(page.locator(".launcher-template")).to_have_count(4)
        await page.locator(".launcher-design summary").click()
        assert await page.evaluate(OVERFLOW_JS) == 0
        dialog = await page.locator("#dialog").bounding_box()
        assert dialog is not None and dialog["x"] >= 0 and dialog["x"] + dialog["width"] <= viewport["width"]
        assert await page.evaluate(UNNAMED_JS) == []
        assert await page.evaluate(CONTRAST_JS) == []
        await page.keyboard.press("Escape")
        if viewport["width"] > 1000:
            # From another channel: a compact link back to the one that runs a session.
            await page.evaluate("() => window.backchannel.open('general')")
            link = page.get_by_role(
                "button", name=f"Session Code review running in #{name}: open the channel"
            )
            await expect(link).to_have_text(f"Session in #{name}")
            await link.click()
            await expect(page.locator("#session-bar .session-phase")).to_have_text("Phase 1/4: Submit")
        assert ui.errors == [], (scheme, viewport)
        await ui.close(page)
    [running] = rest(server, "GET", f"/api/sessions?channel={name}")
    rest(server, "POST", f"/api/sessions/{running['id']}/end")
    assert ui.errors == []


# -- screenshots for docs/ ----------------------------------------------------------------------------
async def build_scene(server: RunningServer) -> None:
    claude = await register(server.url, "claude", instance_id="shot-1")
    await register(server.url, "codex", instance_id="shot-2")
    with human(server.url, server.secret) as client:
        assert client.put("/api/me", json={"name": "maya"}).status_code == 200
        client.post(
            "/api/channels/general/messages",
            json={"text": "Let's review the reconnect fix before the release.", "sender": "maya"},
        )
        started = client.post(
            "/api/sessions",
            json={
                "template_id": "code-review",
                "channel": "general",
                "goal": "Decide whether the reconnect fix is ready for v0.4",
                "cast": {
                    "builder": "claude",
                    "reviewer": "codex",
                    "red_team": "codex",
                    "synthesiser": "claude",
                },
            },
        )
        assert started.status_code == 201, started.text
    async with mcp_client(server.url, claude["token"]) as agent:
        await agent.call_tool(
            "chat_send",
            {
                "message": "The fix commits each event before it is published, so a reconnect never "
                "misses one. Risky part: the shutdown path in `live.py`.",
                "channel": "general",
            },
        )


async def main() -> None:
    async with scratch_room(build_scene) as (server, chromium):
        wide: ViewportSize = {"width": 1280, "height": 820}
        phone: ViewportSize = {"width": 390, "height": 780}
        shots = [
            ("sessions-light", "light", False, wide),
            ("sessions-dark", "dark", False, wide),
            ("sessions-launcher-light", "light", True, wide),
            ("sessions-launcher-dark", "dark", True, wide),
            ("sessions-phone", "light", False, phone),
            ("sessions-launcher-phone", "light", True, phone),
        ]
        for name, scheme, launcher, viewport in shots:
            ui = UI(chromium, server.url)
            page = await ui.open("maya", color_scheme=scheme, viewport=viewport)
            await expect(page.locator("#session-bar .session-phase")).to_have_text("Phase 2/4: Review")
            await expect(page.locator(".session-banner.session-phase")).to_have_count(2)
            if launcher:
                if viewport["width"] < 500:
                    await page.get_by_role("button", name="Channel actions").click()
                await page.get_by_role("button", name="Sessions", exact=True).click()
                await expect(page.locator(".launcher-template")).to_have_count(4)
            await page.mouse.move(1, viewport["height"] - 1)
            await page.screenshot(path=str(DOCS / f"{name}.png"))
            assert ui.errors == [], ui.errors
            for context in ui.contexts:
                await context.close()


if __name__ == "__main__":
    anyio.run(main)
