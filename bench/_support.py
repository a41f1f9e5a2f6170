"""Shared by the benchmark scripts: a real ``backchannel serve`` child process on a free port, an
MCP client as an agent (the SDK's, or a lean raw one that costs the load generator little CPU),
percentiles."""

from __future__ import annotations

import asyncio
import itertools
import json
import math
import os
import re
import subprocess
import sys
import threading
from collections.abc import AsyncIterator, Callable, Iterator
from contextlib import AbstractAsyncContextManager, asynccontextmanager, contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

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


# -- a lean MCP client: the load generator must cost less than the server it measures ----------------


@dataclass(frozen=True)
class RawText:
    text: str


@dataclass(frozen=True)
class RawResult:
    """The shape the benchmarks read from the SDK's ``CallToolResult``: ``is_error`` and text blocks."""

    is_error: bool
    content: list[RawText] = field(default_factory=list[RawText])


class RawAgent:
    """One agent on one keep-alive HTTP/1.1 connection (asyncio streams, no httpx, no SDK).

    The SDK client spends 1.3-2.3 ms of CPU per call (anyio memory streams, pydantic models,
    httpx), two to three times what our server spends; on two cores that client, not the server,
    capped throughput and the 50-agent latency. This one writes the JSON-RPC POST by hand and reads
    either answer a streamable-HTTP server may give: a JSON body (Content-Length or chunked) or an
    SSE stream whose one event carries the response on its ``data:`` line."""

    PROTOCOL = "2025-06-18"

    def __init__(self, url: str, token: str) -> None:
        parts = urlsplit(url)
        self.host, self.port = parts.hostname or "127.0.0.1", parts.port or 80
        self.path = parts.path or "/"
        self.base_headers = (
            f"Host: {self.host}:{self.port}\r\nAuthorization: Bearer {token}\r\n"
            "Content-Type: application/json\r\nAccept: application/json, text/event-stream\r\n"
        )
        self.ids = itertools.count(1)
        self.lock = asyncio.Lock()  # one request at a time on the connection
        self.reader: asyncio.StreamReader | None = None
        self.writer: asyncio.StreamWriter | None = None
        self.reconnects = 0  # idle keep-alive connections the server closed

    async def _connect(self) -> None:
        await self.close()
        self.reader, self.writer = await asyncio.open_connection(self.host, self.port)

    async def open(self) -> None:
        """Connect, then the MCP handshake: initialize (keeping Mcp-Session-Id if one is given),
        notifications/initialized."""
        await self._connect()
        init = {
            "protocolVersion": self.PROTOCOL,
            "capabilities": {},
            "clientInfo": {"name": "backchannel-bench-raw", "version": "1"},
        }
        status, headers, body = await self._post(
            {"jsonrpc": "2.0", "id": next(self.ids), "method": "initialize", "params": init}
        )
        answer = self._answer(status, headers, body)
        if session := headers.get("mcp-session-id"):
            self.base_headers += f"Mcp-Session-Id: {session}\r\n"
        version = answer.get("result", {}).get("protocolVersion", self.PROTOCOL)
        self.base_headers += f"MCP-Protocol-Version: {version}\r\n"
        status, _, _ = await self._post({"jsonrpc": "2.0", "method": "notifications/initialized"})
        if status >= 300:
            raise SystemExit(f"notifications/initialized answered HTTP {status}")

    async def close(self) -> None:
        if self.writer is not None:
            writer, self.writer = self.writer, None
            writer.close()
            try:
                await writer.wait_closed()
            except OSError:
                pass

    async def call_tool(self, name: str, arguments: dict[str, Any]) -> RawResult:
        async with self.lock:
            msg = {
                "jsonrpc": "2.0",
                "id": next(self.ids),
                "method": "tools/call",
                "params": {"name": name, "arguments": arguments},
            }
            status, headers, body = await self._post(msg)
        result = self._answer(status, headers, body).get("result")
        if not isinstance(result, dict):
            raise SystemExit(f"tools/call {name}: no result in the answer: {body[:300]!r}")
        blocks = [RawText(str(b.get("text", ""))) for b in result.get("content", ()) if isinstance(b, dict)]
        return RawResult(bool(result.get("isError")), blocks)

    async def _post(self, msg: dict[str, Any]) -> tuple[int, dict[str, str], bytes]:
        body = _dumps(msg)
        request = (
            f"POST {self.path} HTTP/1.1\r\n{self.base_headers}Content-Length: {len(body)}\r\n\r\n".encode()
            + body
        )
        for attempt in (1, 2):
            assert self.reader is not None and self.writer is not None, "open() first"
            if self.reader.at_eof():
                self.reconnects += 1
                await self._connect()
                assert self.reader is not None and self.writer is not None
            self.writer.write(request)
            try:
                head = await self.reader.readuntil(b"\r\n\r\n")
            except (asyncio.IncompleteReadError, ConnectionError) as exc:
                # uvicorn closes a keep-alive connection after 5 s idle (agentchattr's 50 agents
                # wait that long between phases). Nothing of an answer came back, so the request
                # was not taken: reconnect and send it again, once, as httpx would.
                if attempt == 2 or (isinstance(exc, asyncio.IncompleteReadError) and exc.partial):
                    raise
                self.reconnects += 1
                await self._connect()
                continue
            answer = await self._read_answer(self.reader, head)
            if answer[1].get("connection", "").lower() == "close":
                await self._connect()  # the server will not take another request on this one
            return answer
        raise AssertionError("unreachable")

    async def _read_answer(
        self, reader: asyncio.StreamReader, head: bytes
    ) -> tuple[int, dict[str, str], bytes]:
        status_line, *lines = head.decode("latin-1").split("\r\n")
        status = int(status_line.split(" ", 2)[1])
        headers: dict[str, str] = {}
        for header in lines:
            if header:
                key, _, value = header.partition(":")
                headers[key.strip().lower()] = value.strip()
        if "content-length" in headers:
            data = await reader.readexactly(int(headers["content-length"]))
        elif headers.get("transfer-encoding", "").lower() == "chunked":
            chunks: list[bytes] = []
            while True:  # an SSE answer to a POST ends after its one event (the last chunk)
                size = int((await reader.readuntil(b"\r\n")).split(b";", 1)[0], 16)
                if size == 0:
                    await reader.readuntil(b"\r\n")  # no trailers expected
                    break
                chunks.append(await reader.readexactly(size))
                await reader.readexactly(2)
            data = b"".join(chunks)
        else:
            data = b""  # 202 Accepted and the like
        return status, headers, data

    @staticmethod
    def _answer(status: int, headers: dict[str, str], body: bytes) -> dict[str, Any]:
        """The JSON-RPC response in a JSON body or in the ``data:`` line of an SSE event."""
        if status != 200:
            raise SystemExit(f"MCP POST answered HTTP {status}: {body[:300]!r}")
        if headers.get("content-type", "").startswith("text/event-stream"):
            for line in body.splitlines():
                if line.startswith(b"data:") and line[5:].strip():
                    answer = _loads(line[5:])
                    if isinstance(answer, dict) and ("result" in answer or "error" in answer):
                        body = line[5:]
                        break
            else:
                raise SystemExit(f"no JSON-RPC response in the SSE answer: {body[:300]!r}")
        answer = _loads(body)
        if not isinstance(answer, dict) or "error" in answer:
            raise SystemExit(f"JSON-RPC error: {body[:300]!r}")
        return answer


try:
    import orjson

    _dumps: Callable[[Any], bytes] = orjson.dumps
    _loads: Callable[[bytes], Any] = orjson.loads
except ImportError:  # pragma: no cover - orjson is a server dependency
    _dumps = lambda obj: json.dumps(obj, separators=(",", ":")).encode()  # noqa: E731
    _loads = json.loads


@asynccontextmanager
async def raw_agent(url: str, token: str) -> AsyncIterator[RawAgent]:
    """A :class:`RawAgent` on ``{url}/mcp`` as the agent of ``token``, handshake done."""
    client = RawAgent(f"{url}/mcp", token)
    try:
        await client.open()
        yield client
    finally:
        await client.close()


# ``--client`` of the benchmark scripts: which MCP client plays the agents.
CLIENTS: dict[str, Callable[[str, str], AbstractAsyncContextManager[Any]]] = {"raw": raw_agent, "sdk": agent}
CLIENT_HELP = (
    "raw (default): one keep-alive connection per agent, hand-written JSON-RPC, ~0.1-0.2 ms of client"
    " CPU per call; sdk: the MCP SDK client (1.3-2.3 ms per call, which caps throughput on 2 cores)"
)


def pct(samples: list[float], p: float) -> float:
    """The nearest-rank ``p``-th percentile."""
    ordered = sorted(samples)
    return ordered[max(0, math.ceil(p / 100 * len(ordered)) - 1)]
