"""Item 11: the identity proxy streams large request bodies (bounded memory) and caps them (413).

The proxy runs in a child process so its peak RSS (``VmHWM``) is its own, not pytest's.
"""

from __future__ import annotations

import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

CHILD = r"""
import sys, anyio
from backchannel.wrapper.proxy import IdentityProxy
from backchannel.wrapper.serving import serve

async def sink(scope, receive, send):  # counts the bytes it gets, holds none of them
    if scope["type"] != "http":
        return
    size = 0
    while True:
        message = await receive()
        size += len(message.get("body", b""))
        if not message.get("more_body"):
            break
    await send({"type": "http.response.start", "status": 200, "headers": [(b"content-type", b"text/plain")]})
    await send({"type": "http.response.body", "body": str(size).encode()})

async def main():
    async with serve(sink) as upstream:
        proxy = IdentityProxy(upstream, "t1", max_body=int(sys.argv[1]))
        async with serve(proxy) as url:
            print(url, flush=True)
            await anyio.sleep_forever()

anyio.run(main)
"""

MB = 1024 * 1024
CAP = 32 * MB


@pytest.fixture
def proxy_child() -> Iterator[tuple[str, int]]:
    proc = subprocess.Popen([sys.executable, "-c", CHILD, str(CAP)], stdout=subprocess.PIPE, text=True)
    try:
        assert proc.stdout is not None
        url = proc.stdout.readline().strip()
        assert url.startswith("http://127.0.0.1:"), url
        yield url, proc.pid
    finally:
        proc.kill()
        proc.wait(10)


def peak_rss(pid: int) -> int:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmHWM:"):
            return int(line.split()[1]) * 1024
    raise AssertionError("no VmHWM")


def body(size: int, chunk: int = 256 * 1024) -> Iterator[bytes]:
    block = b"x" * chunk
    sent = 0
    while sent < size:
        part = block[: min(chunk, size - sent)]
        sent += len(part)
        yield part


def test_large_bodies_stream_through_and_oversized_ones_get_413(proxy_child: tuple[str, int]) -> None:
    url, pid = proxy_child
    headers = {"content-type": "application/json", "accept": "application/json, text/event-stream"}
    with httpx.Client(timeout=30, trust_env=False) as client:
        small = client.post(url + "/mcp", content=b"{}", headers=headers)
        assert small.status_code == 200 and small.text == "2"
        baseline = peak_rss(pid)

        # 24 MB (under the cap) goes through whole, without the proxy ever holding it.
        through = client.post(url + "/mcp", content=body(24 * MB), headers=headers)
        assert through.status_code == 200 and through.text == str(24 * MB)

        # A declared length over the cap is refused before a byte of the body is read.
        declared = {**headers, "content-length": str(64 * MB)}
        refused = client.post(url + "/mcp", content=body(64 * MB), headers=declared)
        assert refused.status_code == 413
        assert refused.json()["error"] == "payload_too_large"
        assert f"over {CAP} bytes" in refused.json()["detail"]

    # Chunked (no length): refused once it passes the cap.
    with httpx.Client(timeout=30, trust_env=False) as client:
        try:
            chunked = client.post(url + "/mcp", content=body(64 * MB), headers=headers)
        except httpx.TransportError:
            chunked = None  # the proxy may close the connection while we are still sending
        assert chunked is None or chunked.status_code == 413
    grown = peak_rss(pid) - baseline
    assert grown < 16 * MB, f"peak RSS grew by {grown / MB:.1f} MB for 24 + 64 + 64 MB of bodies"
