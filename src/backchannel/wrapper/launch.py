"""Process image that tmux starts: read the launch file, delete it, run the CLI.

tmux gives a new pane the tmux *server's* environment, which may be hours old and lack the user's
``ANTHROPIC_API_KEY``. The wrapper writes the exact environment, argv and cwd to a 0600 file and
tmux runs ``python -m backchannel.wrapper.launch FILE``, so nothing secret is on a command line.

With ``status_file`` in the spec the launcher stays as the CLI's parent and writes its exit status
there (0600) before exiting with it: tmux's own ``pane_dead_status`` is sometimes never set (when
it sees the pty close before it reaps the process), and the wrapper needs the status to report a
crash or to leave with the CLI's exit code. Otherwise it execs the CLI.
"""

from __future__ import annotations

import contextlib
import json
import os
import signal
import subprocess
import sys
from pathlib import Path
from types import FrameType


def main(argv: list[str]) -> int:
    if len(argv) != 2:
        print("usage: python -m backchannel.wrapper.launch LAUNCH_FILE", file=sys.stderr)
        return 2
    path = Path(argv[1])
    spec = json.loads(path.read_text(encoding="utf-8"))
    path.unlink(missing_ok=True)
    command: list[str] = spec["argv"]
    status_file: str | None = spec.get("status_file")
    try:
        os.chdir(spec["cwd"])
        if status_file is None:
            os.execvpe(command[0], command, spec["env"])
        status = _run_child(command, spec["env"])
    except OSError as exc:
        print(f"backchannel: cannot start {command[0]!r}: {exc}", file=sys.stderr)
        status = 127
    if status_file is not None:
        fd = os.open(status_file, os.O_WRONLY | os.O_CREAT | os.O_TRUNC | os.O_NOFOLLOW, 0o600)
        with os.fdopen(fd, "w") as fh:
            fh.write(f"{status}\n")
    return status


def _run_child(command: list[str], env: dict[str, str]) -> int:
    """Run the CLI, passing on termination signals sent to us alone; its status, shell-style."""
    children: list[subprocess.Popen[bytes]] = []

    def forward(signum: int, _frame: FrameType | None) -> None:
        for child in children:
            with contextlib.suppress(ProcessLookupError):
                child.send_signal(signum)

    def ignore(_signum: int, _frame: FrameType | None) -> None:
        pass  # Ctrl-C and friends reach the CLI directly (same process group); we stay for its status

    # Handlers, not SIG_IGN: an ignored signal would stay ignored in the CLI.
    for sig in (signal.SIGTERM, signal.SIGHUP):
        signal.signal(sig, forward)
    for sig in (signal.SIGINT, signal.SIGQUIT):
        signal.signal(sig, ignore)
    children.append(subprocess.Popen(command, env=env))
    code = children[0].wait()
    return 128 - code if code < 0 else code


if __name__ == "__main__":
    raise SystemExit(main(sys.argv))
