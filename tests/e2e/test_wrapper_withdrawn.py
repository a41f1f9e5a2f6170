"""A wake-up the wrapper holds while the CLI is busy, then withdrawn by the server, is never typed.

Real server, real wrapper process, real tmux and the fake CLI held busy on a FIFO gate. The
withdrawal is the cheapest real one: ``/clear`` of the channel supersedes its pending wake-ups
(ending a session or deleting a job goes through the same trigger state).
"""

from __future__ import annotations

import json
import os
from collections.abc import Callable
from pathlib import Path

import anyio
import pytest

from tests.conftest import ServerProcess
from tests.wrapper.wrapper_harness import Feed, Wrapper, wait_log, write_fake_agent

pytestmark = pytest.mark.anyio


async def send(server: ServerProcess, text: str) -> None:
    async with server.human() as human:
        response = await human.post("/api/channels/general/messages", json={"text": text})
        assert response.status_code == 201, response.text


async def wait_output(wrapper: Wrapper, what: str, pred: Callable[[str], bool], timeout: float = 10) -> None:
    """The wrapper's own log (another process's file: looked at every 20 ms)."""
    with anyio.move_on_after(timeout):
        while not pred(wrapper.output):
            await anyio.sleep(0.02)
        return
    raise AssertionError(f"timed out after {timeout}s waiting for {what}; wrapper output:\n{wrapper.output}")


async def test_a_held_wake_up_superseded_meanwhile_is_never_typed(
    server_process: Callable[..., ServerProcess], tmp_path: Path, wrappers: list[Wrapper]
) -> None:
    server = server_process()
    repo = tmp_path / "repo"
    repo.mkdir()
    gate, log = repo / "gate", repo / "fake.jsonl"
    os.mkfifo(gate)
    write_fake_agent(repo, log=log, gate=gate)
    wrapper = Wrapper(repo, server.url, server.data_dir).start()
    wrappers.append(wrapper)
    feed = Feed(server.url, server.data_dir)

    def events(kind: str) -> list[dict[str, object]]:
        return [e for e in map(json.loads, log.read_text().splitlines()) if e["event"] == kind]

    async with anyio.create_task_group() as tg:
        await tg.start(feed.run)
        await feed.joined("fake")
        await send(server, "@fake first")
        await wait_log(log, "the first chat_read", lambda e: e["event"] == "read")  # now held busy
        await send(server, "@fake second")
        await wait_output(
            wrapper, "the second wake-up held", lambda out: out.count("for #general queued") >= 2
        )
        async with server.human() as human:  # /clear: the channel's pending wake-ups are superseded
            cleared = await human.delete("/api/channels/general/messages")
            assert cleared.status_code == 200, cleared.text
        await anyio.to_thread.run_sync(gate.write_text, "go\n")  # the first turn ends: the CLI is idle
        await wait_output(  # dropped (the fix), or typed: the CLI reads once more (the bug)
            wrapper,
            "the withdrawn wake-up dropped",
            lambda out: "withdrawn by the server" in out or len(events("read")) > 1,
        )
        assert len(events("read")) == 1, "the withdrawn wake-up was typed"

        await send(server, "@fake third")  # a new mention after that is typed as usual
        await anyio.to_thread.run_sync(gate.write_text, "go\n")
        await wait_log(log, "the third turn", lambda e: e["event"] == "turn" and e["newest"] == "@fake third")
        assert [e["saw"] for e in events("read")] == ["@fake first", "@fake third"]
        assert len(events("turn")) == 2
        tg.cancel_scope.cancel()
