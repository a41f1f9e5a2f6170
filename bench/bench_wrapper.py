"""Wrapper benchmarks: mention-to-injection latency, and the identity proxy's cost per MCP call.

Run: ``.venv/bin/python bench/bench_wrapper.py [--mentions 40] [--calls 200]``

* Mention -> injection: a person posts ``@bench ...`` over REST; we time until the wrapper has the
  wake-up prompt on the CLI's input line (tmux, private socket), and until Enter was sent. The CLI
  is a trivial prompt loop, so this is the wrapper's own latency (push stream + pane check + typing).
* Proxy overhead: the same MCP tool call (``chat_who``) from the real MCP client straight to the
  server and through the proxy, interleaved in blocks within one run, so the ratio is fair.

Everything is real: a ``backchannel serve`` child process, uvicorn, the MCP SDK client, tmux.
"""

from __future__ import annotations

import argparse
import os
import re
import statistics
import subprocess
import sys
import tempfile
import threading
import time
import uuid
from pathlib import Path

import anyio
import httpx
import httpx2
from mcp import Client
from mcp.client.streamable_http import streamable_http_client

from backchannel.server.security import SESSION_HEADER, read_or_create_secret
from backchannel.wrapper.profiles import load_profile
from backchannel.wrapper.proxy import IdentityProxy
from backchannel.wrapper.runner import Runner, RunOptions
from backchannel.wrapper.serving import serve
from backchannel.wrapper.tmux import Tmux

PROMPT_LOOP = "while True:\n    input('ready> ')\n"


def pct(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, round(q * (len(ordered) - 1)))]


def start_server(data_dir: Path) -> tuple[subprocess.Popen[str], str]:
    proc = subprocess.Popen(
        [sys.executable, "-m", "backchannel", "serve", "--port", "0", "--data-dir", str(data_dir)],
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
    )
    assert proc.stdout is not None
    for line in proc.stdout:  # bounded: the server prints its URL or exits
        match = re.search(r"serving on (http://\S+)", line)
        if match:
            threading.Thread(target=_drain, args=(proc,), daemon=True).start()  # a full pipe would block it
            return proc, match.group(1)
    raise SystemExit(f"server exited with {proc.wait()} before printing its URL")


def _drain(proc: subprocess.Popen[str]) -> None:
    for _ in proc.stdout or ():
        pass


async def bench_mentions(url: str, data_dir: Path, work: Path, count: int) -> dict[str, list[float]]:
    table = {
        "command": sys.executable,
        "args": ["-c", PROMPT_LOOP],
        "idle_pattern": r"ready>\s*$",
        "inject_delay": 0.05,
    }
    profile = load_profile("bench", {"agents": {"bench": table}}, env={}, config_path=None, cwd=work)
    socket_name = f"bc-bench-{uuid.uuid4().hex[:8]}"
    opts = RunOptions(
        server_url=url, data_dir=data_dir, env=dict(os.environ), tmux_socket=socket_name, say=lambda _: None
    )
    runner = Runner(profile, opts)
    typed: list[float] = []
    entered: list[float] = []
    headers = {SESSION_HEADER: read_or_create_secret(data_dir)}
    try:
        async with anyio.create_task_group() as tg, httpx.AsyncClient(base_url=url, headers=headers) as human:
            tg.start_soon(runner.run)
            with anyio.fail_after(30):
                await runner.ready.wait()
                assert runner.injector is not None
                await runner.injector.wait_idle()
            for i in range(count):
                done = len(runner.delivered)
                t0 = time.monotonic()
                response = await human.post(
                    "/api/channels/general/messages", json={"text": f"@bench ping {i}"}
                )
                response.raise_for_status()
                with anyio.fail_after(10):
                    while len(runner.delivered) == done:
                        await anyio.sleep(0.001)  # bench only: sample the runner's delivery log
                    typed.append(runner.delivered[-1][1] - t0)
                    entered.append(typed[-1] + profile.inject_delay)
                    await runner.injector.wait_idle(poll=0.01)
            tg.cancel_scope.cancel()
    finally:
        await Tmux(socket_name).kill_server()
    return {"typed": typed, "entered": entered}


async def bench_proxy(url: str, calls: int, block: int = 20) -> dict[str, list[float]]:
    async with httpx.AsyncClient(base_url=url) as http:
        reg = (await http.post("/api/agents/register", json={"base": "probe", "instance_id": "bench"})).json()
    token = reg["token"]
    timings: dict[str, list[float]] = {"direct": [], "proxy": []}
    proxy = IdentityProxy(url, token)
    async with serve(proxy) as proxy_url:
        auth = {"Authorization": f"Bearer {token}"}
        direct_http = httpx2.AsyncClient(headers=auth, timeout=httpx2.Timeout(10, read=60))
        proxy_http = httpx2.AsyncClient(timeout=httpx2.Timeout(10, read=60))
        direct = Client(streamable_http_client(f"{url}/mcp", http_client=direct_http), mode="legacy")
        proxied = Client(streamable_http_client(f"{proxy_url}/mcp", http_client=proxy_http), mode="legacy")
        async with direct_http, proxy_http, direct, proxied:
            for client in (direct, proxied):  # warm up both paths
                for _ in range(5):
                    await client.call_tool("chat_who", {})
            done = 0
            while done < calls:  # interleave blocks so drift hits both sides alike
                for name, client in (("direct", direct), ("proxy", proxied)):
                    for _ in range(block):
                        t0 = time.perf_counter()
                        result = await client.call_tool("chat_who", {})
                        timings[name].append(time.perf_counter() - t0)
                        assert not result.is_error, result
                done += block
    await proxy.aclose()
    return timings


def report(label: str, values: list[float]) -> str:
    ms = [v * 1000 for v in values]
    stats = f"p50={pct(ms, 0.5):7.2f} ms  p99={pct(ms, 0.99):7.2f} ms  mean={statistics.fmean(ms):7.2f} ms"
    return f"{label:<37} n={len(ms):<4} {stats}"


async def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--mentions", type=int, default=40)
    parser.add_argument("--calls", type=int, default=200)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory(prefix="bc-bench-") as tmp:
        work = Path(tmp)
        proc, url = start_server(work / "data")
        try:
            mentions = await bench_mentions(url, work / "data", work, args.mentions)
            calls = await bench_proxy(url, args.calls)
        finally:
            proc.terminate()
            proc.wait(10)
    print(report("mention -> prompt on input line", mentions["typed"]))
    print(report("mention -> Enter sent (+settle 50ms)", mentions["entered"]))
    print(report("MCP chat_who direct", calls["direct"]))
    print(report("MCP chat_who through the proxy", calls["proxy"]))
    d50, p50 = pct(calls["direct"], 0.5), pct(calls["proxy"], 0.5)
    print(f"proxy/direct p50 ratio: {p50 / d50:.2f}x  (+{(p50 - d50) * 1000:.2f} ms per call)")


if __name__ == "__main__":
    anyio.run(main)
