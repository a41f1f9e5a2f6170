"""Process image that tmux starts: read the launch file, delete it, exec the CLI.

tmux gives a new pane the tmux *server's* environment, which may be hours old and lack the user's
``ANTHROPIC_API_KEY``. The wrapper writes the exact environment, argv and cwd to a 0600 file and
tmux runs ``python -m backchannel.wrapper.launch FILE``, so nothing secret is on a command line.
"""

from __future__ import annotations

import json
import os
import sys
from pathlib import Path


def main(argv: list[str]) -> int:
    if len(argv) != 2:
        print("usage: python -m backchannel.wrapper.launch LAUNCH_FILE", file=sys.stderr)
        return 2
    path = Path(argv[1])
    spec = json.loads(path.read_text(encoding="utf-8"))
    path.unlink(missing_ok=True)
    command: list[str] = spec["argv"]
    try:
        os.chdir(spec["cwd"])
        os.execvpe(command[0], command, spec["env"])
    except OSError as exc:
        print(f"backchannel: cannot start {command[0]!r}: {exc}", file=sys.stderr)
        return 127


if __name__ == "__main__":
    raise SystemExit(main(sys.argv))
