"""End-to-end plumbing for wrapper tests: the room's live feed, and a real wrapper process."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import uuid
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import anyio
import anyio.abc
import websockets

from backchannel.server.security import SESSION_HEADER, read_or_create_secret
from backchannel.wrapper.tmux import Tmux

FAKE_CLI = Path(__file__).with_name("fake_cli.py")
Event = dict[str, Any]


class Feed:
    """The room's WebSocket feed as a list we can wait on; survives server restarts (``?since=``)."""

    def __init__(self, url: str, data_dir: Path) -> None:
        self.ws_url = url.replace("http://", "ws://") + "/ws"
        self.data_dir = data_dir
        self.events: list[Event] = []
        self.seq = 0
        self._changed = anyio.Event()

    async def run(self, *, task_status: anyio.abc.TaskStatus[None] = anyio.TASK_STATUS_IGNORED) -> None:
        started = False
        while True:
            try:
                headers = {SESSION_HEADER: read_or_create_secret(self.data_dir)}
                url = f"{self.ws_url}?since={self.seq}"
                async with websockets.connect(url, additional_headers=headers) as ws:
                    async for raw in ws:
                        event = json.loads(raw)
                        if event.get("kind") == "hello":
                            if not started:
                                started = True
                                self.seq = event["seq"]
                                task_status.started()
                            continue
                        if isinstance(event.get("seq"), int):
                            self.seq = max(self.seq, event["seq"])
                        self.events.append(event)
                        self._changed.set()
                        self._changed = anyio.Event()
            except (OSError, websockets.WebSocketException):
                await anyio.sleep(0.05)  # the server is restarting: reconnect, replaying from seq

    async def wait(
        self, what: str, pred: Callable[[Event], bool], timeout: float = 15, start: int = 0
    ) -> Event:
        """The first event from index ``start`` matching ``pred``; fails with ``what`` after ``timeout``."""
        try:
            with anyio.fail_after(timeout):
                index = start
                while True:
                    changed = self._changed
                    while index < len(self.events):
                        if pred(self.events[index]):
                            return self.events[index]
                        index += 1
                    await changed.wait()
        except TimeoutError:
            kinds = [(e.get("kind"), e.get("message", e.get("agent", {}))) for e in self.events[-8:]]
            msg = f"timed out after {timeout}s waiting for {what}; last events: {kinds}"
            raise AssertionError(msg) from None

    def messages(self, sender: str | None = None) -> list[Event]:
        found = [e["message"] for e in self.events if e.get("kind") == "message"]
        return [m for m in found if sender is None or m["sender"] == sender]

    async def reply_to(self, text: str, sender: str = "fake", timeout: float = 20) -> Event:
        """The agent's echo of a message whose text is exactly ``text``."""
        needle = f"read={json.dumps(text)}"

        def match(e: Event) -> bool:
            return (
                e.get("kind") == "message"
                and e["message"]["sender"] == sender
                and needle in e["message"]["text"]
            )

        return (await self.wait(f"{sender}'s reply to {text!r}", match, timeout))["message"]

    async def joined(self, name: str) -> Event:
        return await self.wait(
            f"{name} to join", lambda e: e.get("kind") == "presence" and e["agent"]["name"] == name
        )


async def wait_log(log: Path, what: str, pred: Callable[[Event], bool], timeout: float = 15) -> Event:
    """The first line of the fake CLI's JSON log matching ``pred``.

    A file written by another process gives us no event to await, so this looks every 20 ms.
    """
    with anyio.move_on_after(timeout):
        while True:
            lines = log.read_text().splitlines() if log.exists() else []
            for line in lines:
                event = json.loads(line)
                if pred(event):
                    return event
            await anyio.sleep(0.02)
    raise AssertionError(f"timed out after {timeout}s waiting for {what} in {log}")


def write_fake_agent(
    repo: Path,
    *,
    log: Path,
    gate: Path | None = None,
    strip_env: list[str] | None = None,
    exit_code: int | None = None,
) -> Path:
    """A ``backchannel.toml`` declaring agent ``fake``: our test CLI, configured like Claude (proxy_file).

    ``exit_code``: the CLI exits with it right after connecting (a CLI that keeps crashing).
    """
    args = [str(FAKE_CLI), "--log", str(log)] + (["--gate", str(gate)] if gate else [])
    args += ["--exit", str(exit_code)] if exit_code is not None else []
    table = {
        "command": sys.executable,
        "args": args,
        "mcp_inject": "proxy_file",
        "mcp_flag": "--mcp-config",
        "idle_pattern": r"ready>\s*$",
        "inject_delay": 0.05,
        "strip_env": strip_env or [],
    }
    lines = ["[agents.fake]"] + [f"{key} = {json.dumps(value)}" for key, value in table.items()]
    path = repo / "backchannel.toml"
    path.write_text("\n".join(lines) + "\n")
    return path


@dataclass
class Wrapper:
    """``python -m backchannel run <agent>`` as a real process, in its own session, on a private tmux."""

    repo: Path
    url: str
    data_dir: Path
    extra_env: dict[str, str] = field(default_factory=dict[str, str])
    agent: str = "fake"
    cli_args: tuple[str, ...] = ()
    run_args: tuple[str, ...] = ()  # options of ``backchannel run`` itself
    tmux_socket: str = field(default_factory=lambda: f"bc-e2e-{uuid.uuid4().hex[:10]}")
    proc: subprocess.Popen[bytes] | None = None

    @property
    def output(self) -> str:
        path = self.repo / "wrapper.out"
        return path.read_text(errors="replace") if path.exists() else ""

    def argv(self) -> list[str]:
        argv = [sys.executable, "-m", "backchannel", "run", self.agent, "--server", self.url]
        argv += ["--data-dir", str(self.data_dir), *self.run_args]
        if (self.repo / "backchannel.toml").exists():
            argv += ["--config", str(self.repo / "backchannel.toml")]
        if self.cli_args:
            argv += ["--", *self.cli_args]
        return argv

    def start(self) -> Wrapper:
        env = {
            **os.environ,
            "BACKCHANNEL_TMUX_SOCKET": self.tmux_socket,
            "BACKCHANNEL_HEARTBEAT_INTERVAL": "0.3",
            "BACKCHANNEL_RESTART_DELAY": "0.1",
            "BACKCHANNEL_WRAPPER_LOG": "info",
            **self.extra_env,
        }
        with (self.repo / "wrapper.out").open("ab") as out:
            self.proc = subprocess.Popen(
                self.argv(),
                cwd=self.repo,
                env=env,
                stdout=out,
                stderr=subprocess.STDOUT,
                start_new_session=True,
            )
        return self

    def tmux(self, *args: str) -> str:
        cmd = ["tmux", "-L", self.tmux_socket, *args]
        return subprocess.run(cmd, capture_output=True, text=True, check=False).stdout

    def signal(self, sig: signal.Signals) -> None:
        assert self.proc is not None
        self.proc.send_signal(sig)

    def wait(self, timeout: float = 15) -> int:
        assert self.proc is not None
        try:
            return self.proc.wait(timeout)
        except subprocess.TimeoutExpired:
            raise AssertionError(f"wrapper still running after {timeout}s; output:\n{self.output}") from None

    def stop(self) -> None:
        if self.proc is not None and self.proc.poll() is None:
            self.proc.send_signal(signal.SIGCONT)
            self.proc.terminate()
            try:
                self.proc.wait(10)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait(5)
        anyio.run(Tmux(self.tmux_socket).kill_server)
