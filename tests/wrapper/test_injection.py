"""Injection into a real tmux pane on a private server: literal text, one line, delivery checked,
and never a keystroke into a permission dialog (the mention waits, and the room is told why)."""

from __future__ import annotations

import json
import os
import sys
import uuid
from collections.abc import AsyncIterator, Callable
from pathlib import Path
from typing import Any

import anyio
import httpx
import pytest
from tests.conftest import RunningServer
from tests.wrapper.wrapper_harness import FAKE_CLI, Feed, Wrapper, wait_log

from backchannel.wrapper.agent_client import Identity, Trigger
from backchannel.wrapper.injection import (
    Delivery,
    Injector,
    classify,
    find_dialog,
    find_typed,
    flatten,
    on_input_line,
)
from backchannel.wrapper.profiles import DEFAULT_DIALOG, DIALOGS, load_profile
from backchannel.wrapper.runner import Runner, RunOptions
from backchannel.wrapper.tmux import Tmux

pytestmark = pytest.mark.anyio
READER = Path(__file__).with_name("line_reader.py")
SCREENS = Path(__file__).with_name("screens")  # captured from the real CLIs in tmux


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
        # Both (Qwen): busy while starting (no input line under the cursor) or while working.
        (["  .  Initializing..."], 0, r"esc to cancel", r"^>\s", "busy"),
        (["⠋ Thinking (esc to cancel, 2s)", ">   Type your message"], 1, r"esc to cancel", r"^>\s", "busy"),
        (["  ◆ done", ">   Type your message"], 1, r"esc to cancel", r"^>\s", "idle"),
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


async def test_no_enter_when_the_typed_text_does_not_show_on_the_input_line(
    tmux: Tmux, tmp_path: Path
) -> None:
    # A raw-mode program that shows a prompt, echoes nothing and records every key it gets.
    keys = tmp_path / "keys"
    script = (
        "import os, sys, tty; tty.setraw(0); sys.stdout.write('menu> '); sys.stdout.flush()\n"
        f"out = open({str(keys)!r}, 'ab', buffering=0)\n"
        "while True: out.write(os.read(0, 64))\n"
    )
    await tmux.new_session("noecho", [sys.executable, "-c", script], cwd=tmp_path)
    injector = Injector(tmux, "noecho", inject_delay=0, show_timeout=0.3, idle_pattern=r"menu>\s*$")
    with anyio.fail_after(10):
        await injector.wait_idle()
        delivery = await injector.inject("hello there")
    assert not delivery.ok and delivery.attempts == 0
    assert "never showed on the input line, so Enter was not pressed" in delivery.detail
    await wait_for(lambda: keys.read_bytes().endswith(b"\x7f"))
    assert keys.read_bytes() == b"hello there" + b"\x7f" * 11  # typed, erased, no Enter (b"\r")


async def test_session_helpers(tmux: Tmux, tmp_path: Path) -> None:
    await tmux.new_session("s-1", [sys.executable, "-c", "import time; time.sleep(30)"], cwd=tmp_path)
    assert await tmux.has_session("s-1")
    assert not await tmux.has_session("s")  # exact names, never a prefix match
    assert await tmux.pane_pid("s-1") > 0
    await tmux.kill_session("s-1")
    assert not await tmux.has_session("s-1")


@pytest.mark.parametrize(
    ("screen", "cli", "expected"),
    [
        (
            "qwen-0.24.4-mcp-tool-dialog.txt",
            "qwen",
            'Allow execution of MCP tool "chat_send" from server "backchannel"?\n› 1. Yes, allow once',
        ),
        (
            "qwen-0.24.4-untrusted-server-dialog.txt",
            "qwen",
            "Untrusted MCP server in .qwen/settings.json",
        ),
        ("claude-2.1.332-mcp-tool-dialog.txt", "claude", "Do you want to proceed?\n❯ 1. Yes"),
        ("copilot-1.0.102-mcp-tool-dialog.txt", "copilot", "Do you want to use this tool?\n❯ 1. Yes"),
        ("copilot-1.0.102-folder-trust-dialog.txt", "copilot", "Do you trust the files in this folder?"),
    ],
)
def test_real_permission_dialogs_are_recognised_with_their_text(screen: str, cli: str, expected: str) -> None:
    rows = (SCREENS / screen).read_text(encoding="utf-8").splitlines()
    for pattern in (DIALOGS[cli], DEFAULT_DIALOG):
        text = find_dialog(rows, pattern)
        assert text is not None and expected in text, text
        assert len(text) <= 500
    if screen.startswith("qwen-0.24.4-mcp-tool"):  # what is asked for comes with the question
        assert "Tool: chat_send" in (find_dialog(rows, DIALOGS["qwen"]) or "")


def test_no_dialog_on_an_idle_screen_or_in_old_history() -> None:
    idle = ["  > say hi please", "", "  ◆ ok", "", "─" * 40, ">   Type your message", "─" * 40, "  ➜ repo"]
    assert find_dialog(idle, DEFAULT_DIALOG) is None
    # The question scrolled up into history, with 15+ rows of newer output below it.
    history = [
        "Allow execution of MCP tool?",
        "› 1. Yes, allow once",
        *[f"line {i}" for i in range(20)],
        "> ",
    ]
    assert find_dialog(history, DEFAULT_DIALOG) is None
    assert find_dialog(history[:5], DEFAULT_DIALOG) is not None
    assert find_dialog(["Do you want to proceed?", "❯ 1. Yes"], None) is None  # "" turns it off
    # The model asking a question in its answer is no dialog: a dialog offers numbered choices.
    assert find_dialog(["● Done. Do you want to proceed?", "", "❯ "], DEFAULT_DIALOG) is None


def test_typed_text_is_seen_only_on_the_input_line() -> None:
    qwen = ["─" * 40, "> say hi please \u200b", "─" * 40]  # Qwen draws its own cursor (U+200B)
    assert on_input_line(qwen, 1, "hiplease")
    assert not on_input_line(qwen, 2, "hiplease")  # the cursor is elsewhere (e.g. in a dialog)
    wrapped = ["ready> a long prompt that wr", "aps here"]  # a hard wrap splits the tail
    assert on_input_line(wrapped, 1, "thatwraps")
    echoed = ["ready> say hi please", "ready> "]  # submitted: only the history row above has it
    assert not on_input_line(echoed, 1, "hiplease")


def write_dialog_agent(repo: Path, log: Path) -> None:
    """Agent ``fake``: the fake CLI whose first turn stops at a Qwen-like approval dialog.

    No ``idle_pattern``: like Qwen, the CLI looks idle to a busy-marker check while the dialog shows.
    After the answer it shows no busy marker for half a second, as Claude Code does.
    """
    args = [str(FAKE_CLI), "--log", str(log), "--dialog", "--dialog-gap", "0.5"]
    table = {"command": sys.executable, "args": args, "mcp_inject": "proxy_file", "inject_delay": 0.05}
    lines = ["[agents.fake]"] + [f"{key} = {json.dumps(value)}" for key, value in table.items()]
    (repo / "backchannel.toml").write_text("\n".join(lines) + "\n")


async def test_a_mention_waits_while_a_dialog_is_open_and_no_key_reaches_it(
    server: RunningServer, tmp_path: Path
) -> None:
    repo, log = tmp_path / "repo", tmp_path / "cli.log"
    repo.mkdir()
    write_dialog_agent(repo, log)
    data_dir = server.settings.data_dir
    feed = Feed(server.url, data_dir)
    wrapper = Wrapper(repo, server.url, data_dir)

    async def send(text: str) -> None:
        async with server.human() as human:
            response = await human.post("/api/channels/general/messages", json={"text": text})
            assert response.status_code == 201, response.text

    def delivery(state: str) -> Callable[[dict[str, Any]], bool]:
        return lambda e: e.get("kind") == "delivery" and e.get("agent") == "fake" and e["state"] == state

    try:
        async with anyio.create_task_group() as tg:
            await tg.start(feed.run)
            wrapper.start()
            await feed.joined("fake")
            await send("@fake first")
            await wait_log(log, "the approval dialog", lambda e: e["event"] == "dialog_open")
            first = await feed.wait("the first mention delivered", delivery("injected"))
            mark = len(feed.events)
            await send("@fake second")
            waiting = await feed.wait("the second mention held", delivery("waiting"), start=mark)
            assert waiting["trigger"] != first["trigger"]
            assert 'Allow execution of MCP tool "chat_read" from server "backchannel"?' in waiting["detail"]
            assert "1. Yes, allow once" in waiting["detail"]
            keys = [e for e in map(json.loads, log.read_text().splitlines()) if e["event"] == "dialog_key"]
            assert keys == [], f"the wrapper typed into the dialog: {keys}"

            wrapper.tmux("send-keys", "-t", "=backchannel-fake:", "1")  # a person allows it
            done = await feed.wait("the held mention delivered", delivery("injected"), start=mark, timeout=20)
            assert done["trigger"] == waiting["trigger"]
            await feed.wait("two answers", lambda _e: len(feed.messages("fake")) >= 2, timeout=20, start=0)
            # Typed once the first turn was over, not in the moment between the dialog closing and
            # the CLI showing it is busy (a CLI like Claude Code would fold it into that turn).
            first_answer = next(
                i
                for i, e in enumerate(feed.events)
                if e.get("kind") == "message" and e["message"]["sender"] == "fake"
            )
            assert feed.events.index(done) > first_answer, "the held prompt was typed into the running turn"
            tg.cancel_scope.cancel()
    finally:
        await anyio.to_thread.run_sync(wrapper.stop)
    events = [json.loads(line) for line in log.read_text().splitlines()]
    assert [e["key"] for e in events if e["event"] == "dialog_key"] == ["1"], "only the person's key"
    assert [e["answer"] for e in events if e["event"] == "dialog_closed"] == ["allowed"]
    turns = [e["prompt"] for e in events if e["event"] == "turn"]
    assert len(turns) == 2 and all("@" in t or "mentioned" in t for t in turns), turns


# A raw-mode TUI stand-in with a line editor (printable keys, BSpace, Enter). It parks its cursor
# on a status row below its input box, like TUIs that draw input elsewhere; with "hidden" it never
# draws what is typed. Its input box after each key goes to <out>.buffer, each submitted line to
# <out>.lines, every key byte to <out>.keys. An earlier identical prompt is in its history.
ELSEWHERE_TUI = r"""
import json, os, sys, tty
mode, out = sys.argv[1], sys.argv[2]
tty.setraw(0)
buf = ""
def draw():
    shown = "" if mode == "hidden" else buf
    sys.stdout.write("\x1b[2J\x1b[H> hello there\r\n(done)\r\n\r\n> " + shown + "\r\n\r\nstatus: ok\x1b[6;1H")
    sys.stdout.flush()
    with open(out + ".buffer", "w") as fh:
        fh.write(buf)
draw()
keys = open(out + ".keys", "ab", buffering=0)
while True:
    data = os.read(0, 64)
    keys.write(data)
    for c in data.decode():
        if c == "\r":
            with open(out + ".lines", "a") as fh:
                fh.write(json.dumps(buf) + "\n")
            buf = ""
        elif c == "\x7f":
            buf = buf[:-1]
        elif c >= " ":
            buf += c
    draw()
"""


async def start_tui(tmux: Tmux, tmp_path: Path, mode: str) -> Path:
    out = tmp_path / mode
    argv = [sys.executable, "-c", ELSEWHERE_TUI, mode, str(out)]
    await tmux.new_session(mode, argv, cwd=tmp_path, width=80, height=20)
    return out


def test_typed_text_is_found_near_the_bottom_only_where_it_is_new() -> None:
    before = ["> hello there", "(done)", "", "> ", "", "status: ok"]
    after = ["> hello there", "(done)", "", "> hello there", "", "status: ok"]
    assert find_typed(after, 5, "hellothere", before) == 3  # not the old copy in row 0
    assert find_typed(before, 5, "hellothere", before) is None  # only the history has it
    assert find_typed(after, 3, "hellothere", before) == 3  # the cursor row comes first


async def test_text_shown_off_the_cursor_row_is_still_submitted(tmux: Tmux, tmp_path: Path) -> None:
    out = await start_tui(tmux, tmp_path, "elsewhere")
    injector = Injector(tmux, "elsewhere", inject_delay=0, show_timeout=2, check_timeout=1)
    with anyio.fail_after(10):
        await injector.wait_drawn()
        delivery = await injector.inject("hello there")
    assert delivery.ok and delivery.attempts == 1, delivery.detail
    assert out.with_suffix(".lines").read_text().splitlines() == ['"hello there"']
    assert out.with_suffix(".buffer").read_text() == ""


async def test_text_that_never_shows_gets_no_enter_and_is_erased(tmux: Tmux, tmp_path: Path) -> None:
    out = await start_tui(tmux, tmp_path, "hidden")
    injector = Injector(tmux, "hidden", inject_delay=0, show_timeout=0.3)
    with anyio.fail_after(10):
        await injector.wait_drawn()
        for erased in (11, 22):  # a retry types it once more and erases it again: never twice
            delivery = await injector.inject("hello there")
            assert not delivery.ok and delivery.attempts == 0
            assert "never showed on the input line, so Enter was not pressed" in delivery.detail
            # The TUI logs each key before it redraws and saves its buffer: wait for both.
            await wait_for(
                lambda n=erased: (
                    out.with_suffix(".keys").read_bytes().count(b"\x7f") == n
                    and out.with_suffix(".buffer").read_text() == ""
                )
            )
    assert out.with_suffix(".keys").read_bytes() == (b"hello there" + b"\x7f" * 11) * 2
    assert not out.with_suffix(".lines").exists()  # no Enter ever reached it


async def wait_for(check: Callable[[], bool], timeout: float = 5) -> None:
    with anyio.fail_after(timeout):
        while not check():
            await anyio.sleep(0.02)


async def test_trigger_stream_reconnects_quickly_once_a_live_stream_drops(tmp_path: Path) -> None:
    """After a run of refused connects (backoff grew), a stream that was up and then dropped (the
    server restarted) is retried after the first short beat, not after the grown backoff."""
    repo = tmp_path / "repo"
    repo.mkdir()
    table = {"command": sys.executable, "args": ["-c", "pass"]}
    profile = load_profile("claude", {"agents": {"claude": table}}, env={}, config_path=None, cwd=repo)
    opts = RunOptions(server_url="http://127.0.0.1:9", data_dir=tmp_path, env={}, use_tmux=False)
    runner = Runner(profile, opts)
    runner.identity = Identity(name="claude", token="t", base="claude", label="Claude", color="#000")
    calls: list[float] = []
    done = anyio.Event()
    request = httpx.Request("GET", "http://127.0.0.1:9/")

    class Client:
        async def triggers(self, _me: Identity) -> AsyncIterator[Trigger]:
            calls.append(anyio.current_time())
            if len(calls) == 4:  # the stream was up; the server went away mid-stream
                raise httpx.RemoteProtocolError("peer closed connection", request=request)
            if len(calls) < 6:
                raise httpx.ConnectError("refused", request=request)
            done.set()
            await anyio.sleep_forever()
            yield  # an async generator, like the real one

    runner.client = Client()  # type: ignore[assignment]
    with anyio.fail_after(10):
        async with anyio.create_task_group() as tg:
            tg.start_soon(runner._trigger_loop)  # pyright: ignore[reportPrivateUsage]
            await done.wait()
            tg.cancel_scope.cancel()
    gaps = [b - a for a, b in zip(calls, calls[1:], strict=False)]
    assert gaps[2] >= 0.35, gaps  # backoff grew: 0.1, 0.2, 0.4
    assert gaps[3] < 0.3, gaps  # the drop of a live stream resets it (was 0.8)
