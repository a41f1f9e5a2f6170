"""Shared by the benchmark scripts: a real ``backchannel serve`` child process on a free port, an
MCP client as an agent, percentiles."""

from __future__ import annotations

import math
import os
import re
import subprocess
import sys
import threading
from collections.abc import AsyncIterator, Iterator
from contextlib import asynccontextmanager, contextmanager
from pathlib import Path

import httpx2
from mcp import Client
from mcp.client.streamable_http import streamable_http_client

# The machine's proxy settings must never reroute loopback benchmark traffic.
PROXY_VARS = ("HTTP_PROXY", "HTTPS_PROXY", "ALL_PROXY", "NO_PROXY")


@contextmanager
def running_server(data_dir: Path) -> Iterator[str]:
    """``python -m backchannel serve --port 0`` in a child process; yields its base URL."""
    with running_server_process(data_dir) as (url, _):
        yield url


def cpu_seconds(pid: int) -> float:
    """User + system CPU time a process has used so far (Linux ``/proc``)."""
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


@contextmanager
def running_server_process(data_dir: Path) -> Iterator[tuple[str, int]]:
    """Like :func:`running_server`, also yielding the server's pid (for its CPU time)."""
    env = {k: v for k, v in os.environ.items() if k.upper() not in PROXY_VARS}
    proc = subprocess.Popen(
        [
            sys.executable,
            # Extra interpreter arguments, e.g. a script that patches the server for an A/B run.
            *os.environ.get("BENCH_SERVER_PYTHON_ARGS", "").split(),
            *("-m", "backchannel", "serve", "--port", "0", "--data-dir", str(data_dir)),
        ],
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
        yield url, proc.pid
    finally:
        stop(proc)


def stop(proc: subprocess.Popen[str]) -> None:
    """SIGTERM, then SIGKILL if the process has not gone within 10 s."""
    proc.terminate()
    try:
        proc.wait(10)
    except subprocess.TimeoutExpired:
        proc.kill()
        proc.wait(10)


def _drain(proc: subprocess.Popen[str]) -> None:
    for _ in proc.stdout or ():
        pass


@asynccontextmanager
async def agent(url: str, token: str) -> AsyncIterator[Client]:
    """An MCP client over streamable HTTP as the agent of ``token``."""
    http = httpx2.AsyncClient(
        headers={"Authorization": f"Bearer {token}"}, timeout=httpx2.Timeout(30, read=120), trust_env=False
    )
    async with http, Client(streamable_http_client(f"{url}/mcp", http_client=http)) as client:
        yield client


def pct(samples: list[float], p: float) -> float:
    """The nearest-rank ``p``-th percentile."""
    ordered = sorted(samples)
    return ordered[max(0, math.ceil(p / 100 * len(ordered)) - 1)]
