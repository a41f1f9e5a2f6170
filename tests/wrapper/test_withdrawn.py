"""The wrapper's check right before typing held wake-ups (the end-to-end story is in
tests/e2e/test_wrapper_withdrawn.py): what it keeps, and that it fails open."""

from __future__ import annotations

import sys
from pathlib import Path

import httpx
import pytest

from backchannel.wrapper.agent_client import Identity, Trigger
from backchannel.wrapper.profiles import load_profile
from backchannel.wrapper.runner import Runner, RunOptions, group_prompt

pytestmark = pytest.mark.anyio
RULES = " Room rules (follow them): 1) be kind."


def runner(tmp_path: Path, answer: httpx.Response, asked: list[str]) -> Runner:
    def server(request: httpx.Request) -> httpx.Response:
        asked.append(str(request.url))
        return answer

    profile = load_profile(
        "claude", {"agents": {"claude": {"command": sys.executable}}}, env={}, config_path=None, cwd=tmp_path
    )
    opts = RunOptions(
        server_url="http://127.0.0.1:9", data_dir=tmp_path, env={}, use_tmux=False,
        say=lambda _: None, transport=httpx.MockTransport(server),
    )  # fmt: skip
    run = Runner(profile, opts)
    run.identity = Identity("claude", "t0k", "claude", "", "")
    return run


def wake(trigger_id: int, rules: str = "") -> Trigger:
    prompt = f"wake {trigger_id}.{rules}"
    return Trigger(trigger_id, "general", prompt, "ben", {"id": trigger_id, "rules": rules} if rules else {})


async def test_only_pending_wake_ups_are_kept_with_one_call_and_the_rules_ride_along(tmp_path: Path) -> None:
    asked: list[str] = []
    states = {"1": "superseded", "2": "queued", "3": "waiting", "4": "injected"}  # 5: not ours
    run = runner(tmp_path, httpx.Response(200, json={"states": states}), asked)
    live = await run._still_pending([wake(1, RULES), wake(2), wake(3), wake(4), wake(5)])  # pyright: ignore[reportPrivateUsage]
    assert [t.id for t in live] == [2, 3]
    assert asked == ["http://127.0.0.1:9/api/agents/claude/triggers/states?ids=1%2C2%2C3%2C4%2C5"]
    assert group_prompt(live) == "wake 3." + RULES  # the rules a dropped one carried are still typed
    asked.clear()
    assert await run._still_pending([wake(1, RULES)]) == []  # pyright: ignore[reportPrivateUsage]
    # Nothing left to carry the rules: the server hears they were not seen (so it sends them again).
    assert asked[1:] == ["http://127.0.0.1:9/api/agents/claude/triggers/1"]
    await run.client.aclose()


async def test_when_the_server_cannot_say_every_wake_up_is_typed(tmp_path: Path) -> None:
    run = runner(tmp_path, httpx.Response(404, json={"detail": "Not Found"}), [])  # an older server
    group = [wake(1), wake(2)]
    assert await run._still_pending(group) == group  # pyright: ignore[reportPrivateUsage]
    await run.client.aclose()
