"""Injection into a real tmux pane on a private server: literal text, one line, delivery checked."""

from __future__ import annotations

import json
import os
import sys
import uuid
from collections.abc import AsyncIterator
from pathlib import Path

import anyio
import pytest

from backchannel.wrapper.injection import Delivery, Injector, classify, flatten
from backchannel.wrapper.tmux import Tmux

pytestmark = pytest.mark.anyio
READER = Path(__file__).with_name("line_reader.py")


@pytest.fixture
async def tmux() -> AsyncIterator[Tmux]:
    server = Tmux(socket_name=f"bc-test-{uuid.uuid4().hex[:10]}")
    yield server
    await server.kill_server()


async def start_reader(tmux: Tmux, tmp_path: Path) -> tuple[str, Path]:
    fifo = tmp_path / "lines"
    os.mkfifo(fifo)
    await tmux.new_session("reader", [sys.executable, str(READER), str(fifo)], cwd=tmp_path, width=120)
    return "reader", fifo


async def read_line(fifo: Path) -> str:
    def blocking() -> str:
        with fifo.open(encoding="utf-8") as fh:
            return json.loads(fh.readline())

    with anyio.fail_after(10, shield=False):
        return await anyio.to_thread.run_sync(blocking, abandon_on_cancel=True)


def test_flatten_keeps_every_character_but_line_breaks() -> None:
    text = "say \"hi\" & 'bye'; echo $HOME `whoami` \\n C-c Enter\r\nline2\nline3\ttab\x07"
    assert flatten(text) == "say \"hi\" & 'bye'; echo $HOME `whoami` \\n C-c Enter line2 line3 tab"


@pytest.mark.parametrize(
    ("rows", "cursor", "busy", "idle", "expected"),
    [
        (["ready> "], 0, None, r"ready>\s*$", "idle"),
        (["ready> half typed"], 0, None, r"ready>\s*$", "busy"),
        (["thinking", "esc to interrupt", "> "], 2, r"esc to interrupt", None, "busy"),
        (["done", "> "], 1, r"esc to interrupt", None, "idle"),
    ],
)
def test_activity_is_read_from_the_pane(
    rows: list[str], cursor: int, busy: str | None, idle: str | None, expected: str
) -> None:
    assert classify(rows, cursor, busy_pattern=busy, idle_pattern=idle) == expected


async def inject_and_read(injector: Injector, fifo: Path, prompt: str) -> tuple[Delivery, str]:
    """Inject ``prompt`` and return the delivery and the line the program actually received."""
    received: list[str] = []
    delivered: list[Delivery] = []

    async def collect() -> None:
        received.append(await read_line(fifo))

    await injector.wait_idle()
    async with anyio.create_task_group() as tg:
        tg.start_soon(collect)
        delivered.append(await injector.inject(prompt))
    return delivered[0], received[0]


async def test_tricky_prompt_arrives_intact_as_one_line(tmux: Tmux, tmp_path: Path) -> None:
    session, fifo = await start_reader(tmux, tmp_path)
    injector = Injector(tmux, session, inject_delay=0.05, idle_pattern=r"ready>\s*$")
    prompt = "quote \" single ' dollar $HOME backtick `id` semi ; amp && Enter C-c\nsecond line"
    with anyio.fail_after(10):
        delivery, line = await inject_and_read(injector, fifo, prompt)
    assert delivery.ok, delivery.detail
    assert line == flatten(prompt)
    assert delivery.attempts == 1


async def test_long_prompt_is_delivered_in_full(tmux: Tmux, tmp_path: Path) -> None:
    session, fifo = await start_reader(tmux, tmp_path)
    injector = Injector(tmux, session, inject_delay=0.0, idle_pattern=r"ready>\s*$")
    # Many wrapped rows; under the 4 KB line limit of a cooked-mode tty (TUIs read raw, no limit).
    prompt = " ".join(f"word{i}" for i in range(400))
    with anyio.fail_after(15):
        delivery, line = await inject_and_read(injector, fifo, prompt)
    assert delivery.ok, delivery.detail
    assert line == prompt


async def test_undelivered_prompt_is_reported_failed(tmux: Tmux, tmp_path: Path) -> None:
    # A raw-mode pane that echoes what is typed and ignores Enter, like a hung TUI.
    script = (
        "import sys, tty; tty.setraw(0); sys.stdout.write('raw> '); sys.stdout.flush()\n"
        "for c in iter(lambda: sys.stdin.read(1), ''):\n"
        "    sys.stdout.write('' if c == '\\r' else c); sys.stdout.flush()\n"
    )
    await tmux.new_session("raw", [sys.executable, "-c", script], cwd=tmp_path)
    ready = r"raw>\s*$"
    injector = Injector(tmux, "raw", inject_delay=0, enter_retries=2, check_timeout=0.2, idle_pattern=ready)
    with anyio.fail_after(10):
        await injector.wait_idle()  # raw mode is on: Enter can no longer reach a line discipline
    with anyio.fail_after(10):
        delivery = await injector.inject("never submitted")
    assert not delivery.ok
    assert "still on the input line after 2 Enter" in delivery.detail


async def test_session_helpers(tmux: Tmux, tmp_path: Path) -> None:
    await tmux.new_session("s-1", [sys.executable, "-c", "import time; time.sleep(30)"], cwd=tmp_path)
    assert await tmux.has_session("s-1")
    assert not await tmux.has_session("s")  # exact names, never a prefix match
    assert await tmux.pane_pid("s-1") > 0
    await tmux.kill_session("s-1")
    assert not await tmux.has_session("s-1")
