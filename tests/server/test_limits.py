"""``backchannel serve`` as a real process under a low open-file limit: floods do not stop it.

Each test starts the server with ``RLIMIT_NOFILE`` lowered in the child (``preexec_fn``), opens more
connections than the limit from loopback, and checks the server keeps answering and closes slow
clients after the (here: one second) timeouts.
"""

from __future__ import annotations

import contextlib
import json
import os
import re
import resource
import socket
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

import httpx
import pytest

from tests.conftest import read_serving_url

FLOOD = 300  # more than the 256 descriptors the server gets


@dataclass
class LimitedServer:
    """The server process with its own open-file limit; its output is collected line by line."""

    data_dir: Path
    soft: int
    hard: int
    env: dict[str, str] = field(default_factory=dict)
    proc: subprocess.Popen[str] | None = None
    url: str = ""
    port: int = 0
    lines: list[str] = field(default_factory=list)

    def start(self) -> LimitedServer:
        def limit() -> None:
            resource.setrlimit(resource.RLIMIT_NOFILE, (self.soft, self.hard))

        self.proc = subprocess.Popen(
            [sys.executable, "-m", "backchannel", "serve", "--port", "0", "--data-dir", str(self.data_dir)],
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            text=True,
            env={**os.environ, **self.env},
            preexec_fn=limit,
        )
        self.url = read_serving_url(self.proc, self.lines)
        self.port = int(self.url.rsplit(":", 1)[1])
        threading.Thread(target=self._collect, daemon=True).start()
        return self

    def _collect(self) -> None:
        assert self.proc is not None and self.proc.stdout is not None
        for line in self.proc.stdout:
            self.lines.append(line.rstrip("\n"))

    def alive(self) -> bool:
        return self.proc is not None and self.proc.poll() is None

    def stop(self) -> None:
        if self.alive():
            assert self.proc is not None
            self.proc.kill()
            self.proc.wait(10)

    def healthy_within(self, seconds: float) -> bool:
        deadline = time.monotonic() + seconds
        while time.monotonic() < deadline and self.alive():
            with contextlib.suppress(httpx.HTTPError):
                if httpx.get(f"{self.url}/api/health", timeout=1).status_code == 200:
                    return True
            time.sleep(0.05)
        return False

    def wait_for_lines(self, pattern: str, count: int, seconds: float = 5.0) -> list[str]:
        deadline = time.monotonic() + seconds
        while time.monotonic() < deadline:
            if sum(pattern in line for line in list(self.lines)) >= count:
                break
            time.sleep(0.02)
        return list(self.lines)


@pytest.fixture
def limited(tmp_path: Path) -> Iterator[type[LimitedServer]]:
    started: list[LimitedServer] = []

    class Tracked(LimitedServer):
        def start(self) -> LimitedServer:
            started.append(self)
            return super().start()

    yield Tracked
    for server in started:
        server.stop()


def read_until_closed(sock: socket.socket, seconds: float) -> bytes:
    """Everything the server sends before it closes; raises TimeoutError if it keeps the socket open."""
    sock.settimeout(seconds)
    data = b""
    with contextlib.suppress(ConnectionResetError):
        while chunk := sock.recv(4096):
            data += chunk
    return data


def test_a_connection_flood_past_the_fd_limit_does_not_stop_the_server(limited, tmp_path: Path) -> None:
    server = limited(
        tmp_path / "data",
        soft=256,
        hard=256,  # nothing to raise to: the server must live with 256 descriptors
        env={"BACKCHANNEL_IDLE_TIMEOUT": "2", "BACKCHANNEL_REQUEST_TIMEOUT": "1"},
    ).start()
    address = ("127.0.0.1", server.port)
    flood: list[socket.socket] = []
    try:
        for i in range(FLOOD):
            try:
                sock = socket.create_connection(address, timeout=5)
            except OSError:
                break  # the server is gone; asserted below
            flood.append(sock)
            if i % 2:  # half of them start a request and never finish its headers
                sock.sendall(b"GET /api/health HTTP/1.1\r\nHost: 127.0.0.1\r\n")
        assert len(flood) == FLOOD and server.alive(), server.lines[-20:]
        # Capped below the limit, then the idle and half-sent ones time out: it answers again.
        assert server.healthy_within(10), server.lines[-20:]
        assert server.alive()
        # By now the server has closed every flood connection: past the cap with a 503 at once,
        # half-sent ones with a 408, silent ones without a word.
        replies = [read_until_closed(sock, 5) for sock in flood]
        assert {b"HTTP/1.1 503", b"HTTP/1.1 408", b""} <= {r[:12] for r in replies}, {r[:12] for r in replies}
        over_cap = next(r for r in replies if r.startswith(b"HTTP/1.1 503"))
        assert json.loads(over_cap.split(b"\r\n\r\n", 1)[1])["error"] == "too_many_connections"
    finally:
        for sock in flood:
            sock.close()

    # Each kind of slow client is closed after its timeout (1 s for requests, 2 s idle).
    half_headers = socket.create_connection(address)
    half_headers.sendall(b"GET /api/health HTTP/1.1\r\nHost: 127.0.0.1\r\nX-Slow: ")
    half_body = socket.create_connection(address)
    half_body.sendall(
        b"POST /api/channels/general/messages HTTP/1.1\r\nHost: 127.0.0.1\r\n"
        b'Content-Type: application/json\r\nContent-Length: 100\r\n\r\n{"text": '
    )
    silent = socket.create_connection(address)
    started = time.monotonic()
    try:
        replies = [read_until_closed(sock, 5) for sock in (half_headers, half_body, silent)]
    finally:
        for sock in (half_headers, half_body, silent):
            sock.close()
    assert time.monotonic() - started < 4.5
    assert replies[0].startswith(b"HTTP/1.1 408"), replies[0]
    head, body = replies[0].split(b"\r\n\r\n", 1)
    assert b"content-type: application/json" in head and json.loads(body) == {
        "error": "request_timeout",
        "detail": "the request was sent too slowly",
    }
    assert replies[2] == b""
    assert server.healthy_within(5) and server.alive()
    assert not any("Traceback" in line for line in server.lines), server.lines


def test_soft_fd_limit_is_raised_and_a_refused_sse_logs_one_line(limited, tmp_path: Path) -> None:
    server = limited(tmp_path / "data", soft=256, hard=1024).start()
    assert server.proc is not None
    limits = Path(f"/proc/{server.proc.pid}/limits").read_text()
    soft, hard = re.search(r"Max open files\s+(\d+)\s+(\d+)", limits).groups()  # type: ignore[union-attr]
    assert (soft, hard) == ("1024", "1024")

    for _ in range(2):  # a foreign page opening /sse, twice: the second line marks the end of the first
        refused = httpx.get(f"{server.url}/sse", headers={"Origin": "http://evil.example"}, timeout=5)
        assert refused.status_code == 403
        assert refused.json() == {"error": "forbidden", "detail": "Invalid Origin header"}
    logged = [line for line in server.wait_for_lines("Invalid Origin header", 2) if not line.startswith(" ")]
    logged = logged[1:]  # "backchannel serving on ..."; the rest of the banner is indented
    assert len(logged) == 2 and all(
        "Invalid Origin header: http://evil.example" in line for line in logged
    ), logged
    assert server.alive()
