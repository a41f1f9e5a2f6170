"""The server's runtime (issue 14): uvloop and the httptools parser, with the same guards h11 had.

The protocol tests run uvicorn in a thread with a tiny ASGI app and speak raw HTTP over a socket, for
both parsers: the guards must behave alike, whichever parses.
"""

from __future__ import annotations

import json
import socket
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import uvicorn

from backchannel.server import limits
from tests.server.test_limits import read_until_closed

TIMEOUT = 0.4  # request_timeout of the protocol under test
IDLE = 1  # its idle timeout (uvicorn's timeout_keep_alive, whole seconds as serve.py passes it)


async def echo_app(scope: dict[str, Any], receive: Any, send: Any) -> None:
    """Answers every request with the size of the body it read; a WebSocket gets its texts back."""
    if scope["type"] == "websocket":
        while (message := await receive())["type"] != "websocket.disconnect":
            if message["type"] == "websocket.connect":
                await send({"type": "websocket.accept"})
            else:
                await send({"type": "websocket.send", "text": message.get("text") or ""})
        return
    if scope["type"] != "http":
        return
    size, more = 0, True
    while more:
        message = await receive()
        size += len(message.get("body", b""))
        more = message.get("more_body", False)
    body = json.dumps({"read": size}).encode()
    headers = [(b"content-type", b"application/json"), (b"content-length", str(len(body)).encode())]
    await send({"type": "http.response.start", "status": 200, "headers": headers})
    await send({"type": "http.response.body", "body": body})


@pytest.fixture(params=["httptools", "h11"])
def address(request: pytest.FixtureRequest) -> Iterator[tuple[str, int]]:
    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM, socket.IPPROTO_TCP)
    sock.bind(("127.0.0.1", 0))
    sock.listen(16)
    protocol = limits.protocol_for(16, TIMEOUT, parser=request.param)
    config = uvicorn.Config(
        echo_app,
        http=protocol,
        loop="uvloop",
        lifespan="off",
        log_level="critical",
        timeout_keep_alive=IDLE,
    )
    server = uvicorn.Server(config)
    thread = threading.Thread(target=server.run, kwargs={"sockets": [sock]}, daemon=True)
    thread.start()
    deadline = time.monotonic() + 10
    while not server.started and thread.is_alive() and time.monotonic() < deadline:
        time.sleep(0.005)
    assert server.started
    yield sock.getsockname()
    server.should_exit = True
    thread.join(10)
    sock.close()


def test_an_endless_request_head_is_refused_and_the_server_keeps_serving(address: tuple[str, int]) -> None:
    """llhttp keeps no limit of its own: without ours, one request could hold any amount of memory."""
    with socket.create_connection(address) as sock:
        sock.sendall(b"GET / HTTP/1.1\r\nHost: x\r\nX-Big: " + b"a" * 100_000)  # and the end never comes
        assert read_until_closed(sock, 5).startswith(b"HTTP/1.1 400")
    with socket.create_connection(address) as sock:
        sock.sendall(b"POST / HTTP/1.1\r\nHost: x\r\nContent-Length: 3\r\nConnection: close\r\n\r\nabc")
        reply = read_until_closed(sock, 5)
    assert reply.startswith(b"HTTP/1.1 200") and reply.endswith(b'{"read": 3}'), reply


def test_a_half_sent_head_gets_408_and_a_slow_but_steady_body_is_served(address: tuple[str, int]) -> None:
    started = time.monotonic()
    with socket.create_connection(address) as sock:
        sock.sendall(b"GET / HTTP/1.1\r\nHost: x\r\nX-Slow: ")
        reply = read_until_closed(sock, 5)
    assert reply.startswith(b"HTTP/1.1 408") and time.monotonic() - started < 3, reply
    assert json.loads(reply.split(b"\r\n\r\n", 1)[1])["error"] == "request_timeout"
    # Four chunks, each well inside the timeout but longer than it in total: the deadline is per chunk.
    with socket.create_connection(address) as sock:
        sock.sendall(b"POST / HTTP/1.1\r\nHost: x\r\nContent-Length: 4\r\nConnection: close\r\n\r\n")
        for _ in range(4):
            time.sleep(TIMEOUT / 2)
            sock.sendall(b"x")
        reply = read_until_closed(sock, 5)
    assert reply.startswith(b"HTTP/1.1 200") and reply.endswith(b'{"read": 4}'), reply


def _masked_text_frame(text: str) -> bytes:
    """A client's WebSocket text frame (clients must mask; a zero key keeps the bytes as they are)."""
    payload = text.encode()
    assert len(payload) < 126
    return bytes([0x81, 0x80 | len(payload)]) + b"\0\0\0\0" + payload


def test_a_websocket_outlives_the_request_and_idle_timeouts(address: tuple[str, int]) -> None:
    """The upgrade ends the HTTP request: no head, body or idle deadline may close the socket after it
    (the page's live updates run on one WebSocket for hours)."""
    with socket.create_connection(address) as sock:
        # The head in two reads, as a slow link sends it: the first arms the head deadline.
        sock.sendall(b"GET /ws HTTP/1.1\r\nHost: x\r\nUpgrade: websocket\r\n")
        time.sleep(TIMEOUT / 4)
        sock.sendall(
            b"Connection: Upgrade\r\nSec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\n"
            b"Sec-WebSocket-Version: 13\r\n\r\n"
        )
        sock.settimeout(5)
        head = b""
        while b"\r\n\r\n" not in head:
            chunk = sock.recv(4096)
            assert chunk, head
            head += chunk
        assert head.startswith(b"HTTP/1.1 101"), head
        # Longer than both timeouts: a live deadline would close the socket (recv gives b"") or
        # write a 408 into it.
        sock.settimeout(max(3 * TIMEOUT, IDLE + TIMEOUT))
        with pytest.raises(TimeoutError):
            got = sock.recv(4096)
            pytest.fail(f"the server spoke or closed the WebSocket: {got!r}")
        sock.settimeout(5)
        sock.sendall(_masked_text_frame("still here"))
        assert sock.recv(4096) == b"\x81\x0astill here"


# Modules a started server must not have loaded: each is start-up time and memory for nothing
# (the MCP SDK, the CLI, the rarely used archive code, the h11 parser that httptools replaced).
# FastAPI, pydantic and the REST routers come later, built in a thread once the server listens
# (server/boot.py): an agent's first MCP call must not wait for them.
NOT_ON_THE_SERVE_PATH = (
    "fastapi",
    "pydantic",
    "pydantic_core",
    "backchannel.server.app",
    "backchannel.server.api",
    "backchannel.server.deps",
    "mcp",
    "mcp_types",
    "openai",
    "typer",
    "rich",
    "httpx",
    "h11",
    "backchannel.cli",
    "backchannel.wrapper",
    "backchannel.archive",
    "backchannel.archive_agentchattr",
)


def test_serve_runs_uvloop_and_httptools_and_loads_nothing_it_does_not_need(tmp_path: Path) -> None:
    """Checked in a child, just before uvicorn runs: ``serve`` also replaces the root log handlers,
    which a test process must keep."""
    code = (
        "import json, sys\n"
        "from pathlib import Path\n"
        "from backchannel import serve\n"
        "from backchannel.config import Settings\n"
        "def run(self, sockets=None):\n"
        "    loaded = sorted(m for m in sys.modules if m.startswith(tuple(sys.argv[1:])))\n"
        "    print(json.dumps({'loop': self.config.loop, 'loaded': loaded,\n"
        "                      'http': [c.__name__ for c in self.config.http.__mro__]}))\n"
        "serve._Server.run = run\n"
        f"serve.serve(Settings(host='127.0.0.1', port=0, data_dir=Path({str(tmp_path / 'data')!r})))\n"
    )
    result = subprocess.run(
        [sys.executable, "-c", code, *NOT_ON_THE_SERVE_PATH], capture_output=True, text=True, timeout=60
    )
    assert result.returncode == 0, result.stderr
    chosen = json.loads(result.stdout.strip().splitlines()[-1])
    assert chosen["loop"] == "uvloop"
    assert "GuardedHttpToolsProtocol" in chosen["http"] and "HttpToolsProtocol" in chosen["http"]
    loaded = [
        m for m in chosen["loaded"] if m in NOT_ON_THE_SERVE_PATH or m.startswith(NOT_ON_THE_SERVE_PATH_PKGS)
    ]
    assert loaded == [], loaded


NOT_ON_THE_SERVE_PATH_PKGS = tuple(f"{m}." for m in NOT_ON_THE_SERVE_PATH)
