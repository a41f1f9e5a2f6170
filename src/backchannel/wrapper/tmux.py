"""The only module that talks to tmux: a thin async wrapper over the ``tmux`` command.

We call the binary directly instead of going through libtmux: every operation we need is one tmux
command, and ``-L <socket>`` keeps tests (and concurrent wrappers, if asked) on private servers.
"""

from __future__ import annotations

import os
import shutil
import subprocess
from collections.abc import Sequence
from pathlib import Path

import anyio


class TmuxError(RuntimeError):
    """A tmux command failed; the message carries tmux's own stderr."""


def available(binary: str = "tmux") -> bool:
    return shutil.which(binary) is not None


class Tmux:
    """A tmux server, the default one or a private one named by ``socket_name`` (``tmux -L``)."""

    def __init__(self, socket_name: str | None = None, binary: str = "tmux") -> None:
        self.socket_name = socket_name
        self.binary = binary

    def argv(self, *args: str) -> list[str]:
        prefix = [self.binary] + (["-L", self.socket_name] if self.socket_name else [])
        return [*prefix, *args]

    async def run(self, *args: str, stdin: bytes | None = None, check: bool = True) -> str:
        result = await anyio.run_process(self.argv(*args), input=stdin, check=False)
        if check and result.returncode != 0:
            stderr = result.stderr.decode(errors="replace").strip()
            raise TmuxError(f"tmux {args[0]} failed ({result.returncode}): {stderr}")
        return result.stdout.decode(errors="replace")

    @staticmethod
    def target(session: str) -> str:
        return f"={session}:"  # '=' asks for this exact session, never a prefix match

    async def has_session(self, session: str) -> bool:
        result = await anyio.run_process(self.argv("has-session", "-t", f"={session}"), check=False)
        return result.returncode == 0

    async def new_session(
        self,
        session: str,
        argv: Sequence[str],
        *,
        cwd: Path,
        width: int = 200,
        height: int = 50,
        remain_on_exit: bool = False,
    ) -> None:
        """Start ``argv`` (exec'd directly, several args so no shell) in a detached session.

        ``remain_on_exit`` keeps the pane (and its exit status) when the program ends, so it can be
        restarted in place; it is set in the same tmux command, before the program can exit.
        """
        args = ["new-session", "-d", "-s", session, "-x", str(width), "-y", str(height)]
        args += ["-c", str(cwd), "--", *argv]
        if remain_on_exit:
            args += [";", "set-option", "-w", "-t", self.target(session), "remain-on-exit", "on"]
        await self.run(*args)

    async def respawn(self, session: str, argv: Sequence[str], *, cwd: Path) -> None:
        """Run ``argv`` again in the session's (dead) pane; an attached client sees it come back."""
        await self.run("respawn-pane", "-k", "-t", self.target(session), "-c", str(cwd), "--", *argv)

    async def dead_status(self, session: str) -> int | None:
        """The exit status of the session's pane once its program ended; None if the session is gone.

        tmux may mark the pane dead (its pty closed) before it has reaped the process, and then
        sometimes never records the status: this waits for it at most 1 s, then reports status 1.
        (The wrapper's launcher writes the exact status; this is the fallback.)
        """
        dead = False
        with anyio.move_on_after(1):
            while True:
                if not await self.has_session(session):
                    return None
                try:
                    out = await self.display(session, "#{pane_dead},#{pane_dead_status},#{pane_dead_signal}")
                except TmuxError:
                    return None
                flag, status, signum = (out.split(",") + ["", ""])[:3]
                dead = flag == "1"
                if dead and status.lstrip("-").isdigit():
                    return int(status)
                if dead and signum.isdigit() and int(signum) > 0:
                    return 128 + int(signum)
                await anyio.sleep(0.02)  # not dead yet, or its status not collected yet
        return 1 if dead else None

    async def kill_session(self, session: str) -> None:
        await self.run("kill-session", "-t", f"={session}", check=False)

    async def kill_server(self) -> None:
        """Stop this tmux server; for a private ``-L`` server also remove the socket file it leaves."""
        await self.run("kill-server", check=False)
        if self.socket_name:
            base = Path(os.environ.get("TMUX_TMPDIR") or "/tmp") / f"tmux-{os.getuid()}"
            (base / self.socket_name).unlink(missing_ok=True)

    async def send_literal(self, session: str, text: str) -> None:
        """Type ``text`` as-is: ``-l`` stops tmux from reading words like ``Enter`` or ``C-c`` as keys."""
        for start in range(0, len(text), 1024):  # keep each command line modest
            await self.run("send-keys", "-t", self.target(session), "-l", "--", text[start : start + 1024])

    async def send_key(self, session: str, key: str) -> None:
        await self.run("send-keys", "-t", self.target(session), key)

    async def capture(self, session: str) -> list[str]:
        """The visible screen of the session's active pane, one string per row."""
        out = await self.run("capture-pane", "-p", "-t", self.target(session))
        return out.split("\n")[:-1] if out.endswith("\n") else out.split("\n")

    async def snapshot(self, session: str) -> tuple[list[str], int]:
        """The visible rows and the cursor row, from one tmux process (this runs in polling loops)."""
        target = self.target(session)
        out = await self.run(
            "capture-pane", "-p", "-t", target, ";", "display-message", "-p", "-t", target, "#{cursor_y}"
        )
        lines = out.rstrip("\n").split("\n")
        return lines[:-1], int(lines[-1])

    def show_message(self, session: str, text: str, ms: int = 6000) -> bool:
        """Show ``text`` on the status line of the clients attached to ``session``; False if none is.

        Synchronous (short tmux calls), so it can be used where the caller cannot await. ``#`` is
        doubled: display-message would otherwise expand ``#{...}`` formats in our text.
        """

        def call(*args: str) -> str | None:
            try:
                done = subprocess.run(self.argv(*args), capture_output=True, check=False, timeout=2)
            except (OSError, subprocess.TimeoutExpired):
                return None
            return done.stdout.decode(errors="replace") if done.returncode == 0 else None

        clients = (call("list-clients", "-t", f"={session}", "-F", "#{client_name}") or "").split()
        shown = [
            call("display-message", "-c", client, "-d", str(ms), text.replace("#", "##"))
            for client in clients
        ]
        return any(out is not None for out in shown)

    async def display(self, session: str, fmt: str) -> str:
        return (await self.run("display-message", "-p", "-t", self.target(session), fmt)).strip()

    async def cursor_row(self, session: str) -> int:
        return int(await self.display(session, "#{cursor_y}"))

    async def pane_pid(self, session: str) -> int:
        return int(await self.display(session, "#{pane_pid}"))


def attach_hint(session: str, socket_name: str | None) -> str:
    sock = f" -L {socket_name}" if socket_name else ""
    return f"tmux{sock} attach -t {session}"


def run_sync(tmux: Tmux, *args: str) -> None:
    """Best-effort synchronous call, for cleanup paths that may run without an event loop."""
    subprocess.run(tmux.argv(*args), capture_output=True, check=False)
