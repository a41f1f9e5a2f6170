"""Cold start and memory of a real ``backchannel serve`` process, against baselines from the same run.

For each cold start it measures, from the moment the process is spawned:
  listening   the server printed its URL (the socket is bound)
  first MCP   an agent's ``initialize`` and then a ``chat_read`` tool call over ``/mcp`` both answered
  RSS, CPU    the server's resident memory right after that answer (``VmRSS``, peak ``VmHWM``) and
              the CPU time it used to get there
  health      then the first ``GET /api/health`` answered 200: ``serve`` builds the web API (FastAPI
              and the REST routes) after the socket listens, so this is when the UI can load

Baselines, measured in the same run so that the machine's load affects both alike:
  interpreter   ``python -c pass``
  bare FastAPI  the smallest uvicorn + FastAPI app answering one route (imports included)
  full CLI      the same server started through the typer CLI (``backchannel.cli``), as ``serve``
                started before the fast path in ``backchannel/entry.py``

    .venv/bin/python bench/bench_startup.py                      # 7 cold starts, empty store
    .venv/bin/python bench/bench_startup.py --messages 1000000   # with 1M stored messages (seeding ~20 s)

``BENCH_SERVER_PYTHON_ARGS`` adds interpreter arguments to our server's start (not the baselines'),
e.g. a script that patches it for a before/after run in the same window.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
import textwrap
import time
from pathlib import Path
from typing import NamedTuple

import httpx
from _support import cpu_seconds, stop  # bench/ is on sys.path when a script here runs

BARE_APP = textwrap.dedent(
    """
    import socket, sys
    import uvicorn
    from fastapi import FastAPI
    app = FastAPI()
    @app.get("/api/health")
    async def health() -> dict[str, str]:
        return {"status": "ok"}
    sock = socket.socket(); sock.bind(("127.0.0.1", 0)); sock.listen(64)
    print(f"serving on http://127.0.0.1:{sock.getsockname()[1]}", flush=True)
    uvicorn.Server(uvicorn.Config(app, log_level="warning")).run(sockets=[sock])
    """
)
PROXY_VARS = ("HTTP_PROXY", "HTTPS_PROXY", "ALL_PROXY", "NO_PROXY")
ENV = {k: v for k, v in os.environ.items() if k.upper() not in PROXY_VARS}


class Start(NamedTuple):
    listening: float
    health: float
    mcp: float
    rss: int  # kB, right after the first MCP answer
    hwm: int
    cpu: float  # process CPU seconds at the first MCP answer
    web_rss: int  # kB, once /api/health answered
    web_cpu: float


MCP_HEADERS = {"Accept": "application/json, text/event-stream", "Content-Type": "application/json"}


def _rss_kb(pid: int) -> tuple[int, int]:
    fields = dict(
        line.split(":", 1) for line in Path(f"/proc/{pid}/status").read_text().splitlines() if ":" in line
    )
    return int(fields["VmRSS"].split()[0]), int(fields["VmHWM"].split()[0])


def _wait_url(proc: subprocess.Popen[str]) -> str:
    assert proc.stdout is not None
    for line in proc.stdout:
        if "serving on " in line:
            return line.split("serving on ", 1)[1].strip()
    raise SystemExit(f"server exited with {proc.wait()} before printing its URL")


def _poll(client: httpx.Client, url: str) -> None:
    while True:
        try:
            if client.get(url).status_code == 200:
                return
        except httpx.TransportError:
            pass
        time.sleep(0.002)


def _rpc(method: str, params: dict[str, object], id_: int | None) -> dict[str, object]:
    body: dict[str, object] = {"jsonrpc": "2.0", "method": method, "params": params}
    if id_ is not None:
        body["id"] = id_
    return body


def _answer(response: httpx.Response) -> dict[str, object]:
    """The JSON-RPC answer of a POST to /mcp, sent as JSON or as one SSE event."""
    response.raise_for_status()
    if response.headers.get("content-type", "").startswith("application/json"):
        return response.json()
    for line in response.text.splitlines():
        if line.startswith("data:") and line[5:].strip():
            return json.loads(line[5:])
    raise SystemExit(f"no answer in {response.text!r}")


def first_mcp_answer(client: httpx.Client, url: str, token: str) -> None:
    headers = {**MCP_HEADERS, "Authorization": f"Bearer {token}"}
    init = client.post(
        f"{url}/mcp",
        headers=headers,
        json=_rpc(
            "initialize",
            {
                "protocolVersion": "2025-06-18",
                "capabilities": {},
                "clientInfo": {"name": "bench", "version": "0"},
            },
            1,
        ),
    )
    _answer(init)
    session = init.headers.get("mcp-session-id")
    if session:
        headers["mcp-session-id"] = session
    headers["mcp-protocol-version"] = "2025-06-18"
    client.post(f"{url}/mcp", headers=headers, json=_rpc("notifications/initialized", {}, None))
    call = _answer(
        client.post(
            f"{url}/mcp",
            headers=headers,
            json=_rpc(
                "tools/call", {"name": "chat_read", "arguments": {"channel": "general", "limit": 5}}, 2
            ),
        )
    )
    result = call.get("result")
    if not isinstance(result, dict) or result.get("isError"):
        raise SystemExit(f"chat_read failed: {call}")


def prepare(data_dir: Path, messages: int) -> str:
    """Start the server once to create the store, register an agent, seed; returns its token."""
    from bench_server import seed  # bench/ is on sys.path when a script here runs

    from backchannel.server.security import SESSION_HEADER, read_or_create_secret

    proc = _spawn(data_dir)
    try:
        url = _wait_url(proc)
        with httpx.Client(timeout=30, trust_env=False) as client:
            _poll(client, f"{url}/api/health")
            reg = client.post(
                f"{url}/api/agents/register",
                json={"base": "bench", "instance_id": "startup"},
                headers={SESSION_HEADER: read_or_create_secret(data_dir)},
            )
            reg.raise_for_status()
            token = str(reg.json()["token"])
    finally:
        stop(proc)
    if messages:
        t0 = time.perf_counter()
        seed(data_dir / "backchannel.db", "general", messages)
        print(f"seeded {messages:,} messages in {time.perf_counter() - t0:.1f} s")
    return token


FAST = ["-m", "backchannel"]
FULL_CLI = ["-c", "from backchannel.cli import main; main()"]


def _spawn(data_dir: Path, how: list[str] = FAST) -> subprocess.Popen[str]:
    # Extra interpreter arguments for our own start only, e.g. a script that patches the server for an
    # A/B run (as in bench_server.py): BENCH_SERVER_PYTHON_ARGS=bench/_issue14_runtime_before.py
    extra = os.environ.get("BENCH_SERVER_PYTHON_ARGS", "").split() if how is FAST else []
    return subprocess.Popen(
        [sys.executable, *extra, *how, "serve", "--port", "0", "--data-dir", str(data_dir)],
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
        env=ENV,
    )


def cold_start(data_dir: Path, token: str, how: list[str] = FAST) -> Start:
    """One cold start: an agent's first MCP answer first (what agents wait for), then the web API."""
    with httpx.Client(timeout=30, trust_env=False) as client:
        t0 = time.perf_counter()
        proc = _spawn(data_dir, how)
        try:
            url = _wait_url(proc)
            listening = time.perf_counter() - t0
            first_mcp_answer(client, url, token)
            mcp = time.perf_counter() - t0
            rss, hwm = _rss_kb(proc.pid)
            cpu = cpu_seconds(proc.pid)
            # The web API (FastAPI and the REST routes) is built after the socket listens.
            _poll(client, f"{url}/api/health")
            health = time.perf_counter() - t0
            web_rss, _ = _rss_kb(proc.pid)
            web_cpu = cpu_seconds(proc.pid)
        finally:
            stop(proc)
    return Start(listening, health, mcp, rss, hwm, cpu, web_rss, web_cpu)


def interpreter() -> float:
    t0 = time.perf_counter()
    subprocess.run([sys.executable, "-c", "pass"], check=True, env=ENV)
    return time.perf_counter() - t0


def bare_fastapi() -> tuple[float, int, float]:
    with httpx.Client(timeout=30, trust_env=False) as client:
        t0 = time.perf_counter()
        proc = subprocess.Popen(
            [sys.executable, "-c", BARE_APP],
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            text=True,
            env=ENV,
        )
        try:
            _poll(client, f"{_wait_url(proc)}/api/health")
            took = time.perf_counter() - t0
            rss, _ = _rss_kb(proc.pid)
            cpu = cpu_seconds(proc.pid)
        finally:
            stop(proc)
    return took, rss, cpu


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--runs", type=int, default=7, help="cold starts of each kind (medians are shown)")
    parser.add_argument("--messages", type=int, default=0, help="messages stored before the cold starts")
    parser.add_argument("--data-dir", type=Path, help="use (and keep) this data dir")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory(prefix="backchannel-startup-") as tmp:
        data_dir = args.data_dir or Path(tmp) / "data"
        data_dir.mkdir(parents=True, exist_ok=True)
        token = prepare(data_dir, args.messages)
        ours: list[Start] = []
        via_cli: list[Start] = []
        interp: list[float] = []
        bare: list[tuple[float, int, float]] = []
        for _ in range(args.runs):  # interleaved, so a change in load hits every kind alike
            interp.append(interpreter())
            bare.append(bare_fastapi())
            ours.append(cold_start(data_dir, token))
            via_cli.append(cold_start(data_dir, token, FULL_CLI))

    def med(values: list[float]) -> float:
        return statistics.median(values)

    py = med(interp)
    bare_s = med([b[0] for b in bare])
    bare_rss = med([float(b[1]) for b in bare]) / 1024
    bare_cpu = med([b[2] for b in bare])
    cpu = med([o.cpu for o in ours])
    listening, health, mcp = (med([o[i] for o in ours]) for i in range(3))
    rss, hwm = (med([float(o[i]) for o in ours]) / 1024 for i in (3, 4))
    web_rss, web_cpu = med([o.web_rss / 1024 for o in ours]), med([o.web_cpu for o in ours])
    print(f"{args.runs} cold starts each, {args.messages:,} stored messages (medians)")
    print(f"  interpreter (python -c pass)        {py * 1000:7.0f} ms")
    print(
        f"  bare FastAPI app, first answer       {bare_s * 1000:7.0f} ms   RSS {bare_rss:5.1f} MB"
        f"   CPU {bare_cpu * 1000:5.0f} ms"
    )
    print(f"  backchannel listening                {listening * 1000:7.0f} ms")
    print(
        f"  backchannel first MCP answer         {mcp * 1000:7.0f} ms   RSS {rss:5.1f} MB"
        f"   CPU {cpu * 1000:5.0f} ms   (peak RSS {hwm:5.1f} MB)"
    )
    print(
        f"  backchannel /api/health (web built)  {health * 1000:7.0f} ms   RSS {web_rss:5.1f} MB"
        f"   CPU {web_cpu * 1000:5.0f} ms"
    )
    cli_mcp, cli_cpu, cli_rss = (
        med([o.mcp for o in via_cli]),
        med([o.cpu for o in via_cli]),
        med([float(o.rss) for o in via_cli]) / 1024,
    )
    print(
        f"  same, started through the full CLI    {cli_mcp * 1000:7.0f} ms   RSS {cli_rss:5.1f} MB"
        f"   CPU {cli_cpu * 1000:5.0f} ms"
    )
    print(
        f"ratios to the full-CLI start: first MCP {mcp / cli_mcp:.2f}   CPU {cpu / cli_cpu:.2f}"
        f"   RSS {rss / cli_rss:.2f}"
    )
    print(
        f"ratios to the bare FastAPI app: first MCP {mcp / bare_s:.2f}   health {health / bare_s:.2f}"
        f"   CPU {cpu / bare_cpu:.2f}   RSS {rss / bare_rss:.2f};   first MCP : interpreter {mcp / py:.1f}"
    )


if __name__ == "__main__":
    main()
