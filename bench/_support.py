"""Shared by the benchmark scripts: a real ``backchannel serve`` child process on a free port."""

from __future__ import annotations

import os
import re
import subprocess
import sys
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

# The machine's proxy settings must never reroute loopback benchmark traffic.
PROXY_VARS = ("HTTP_PROXY", "HTTPS_PROXY", "ALL_PROXY", "NO_PROXY")


@contextmanager
def running_server(data_dir: Path) -> Iterator[str]:
    """``python -m backchannel serve --port 0`` in a child process; yields its base URL."""
    env = {k: v for k, v in os.environ.items() if k.upper() not in PROXY_VARS}
    proc = subprocess.Popen(
        [sys.executable, "-m", "backchannel", "serve", "--port", "0", "--data-dir", str(data_dir)],
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
        env=env,
    )
    try:
        assert proc.stdout is not None
        url = ""
        for line in proc.stdout:  # bounded: the server prints its URL or exits
            match = re.search(r"serving on (http://\S+)", line)
            if match:
                url = match.group(1)
                break
        if not url:
            raise SystemExit(f"server exited with {proc.wait()} before printing its URL")
        threading.Thread(target=_drain, args=(proc,), daemon=True).start()  # a full pipe would block it
        yield url
    finally:
        proc.terminate()
        try:
            proc.wait(10)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait(10)


def _drain(proc: subprocess.Popen[str]) -> None:
    for _ in proc.stdout or ():
        pass
