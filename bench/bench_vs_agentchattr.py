"""Our server against agentchattr, same load, same run, over MCP streamable HTTP.

Issue 14 asks for 8-agent throughput >= 5x agentchattr *measured in the same run* (the machine is
shared, so absolute numbers drift; a ratio from one window holds). This script starts both servers
as child processes on free loopback ports, registers agents on each the way each one expects, and
drives the same calls over MCP streamable HTTP, alternating between the servers phase by phase:

1. 8 agents, each its own MCP session, ``--per-agent`` chat_send calls each, all at once;
2. the same 8 agents, the same number of chat_read calls (limit 20);
3. 50 agents, each ``--many-rounds`` rounds of chat_send then chat_read, all at once.

Each phase runs on ours, then on agentchattr (A, B, A, B ...), ``--rounds`` times. For every phase
and server it prints calls/s, per-call p50/p99/max, the server process's CPU time per call (from
/proc, the figure that a busy machine does not distort much) and the ratios ours:agentchattr.

Getting agentchattr (a baseline we run, never part of this repo):

    git clone https://github.com/bcurts/agentchattr /tmp/agentchattr
    #   (or from a bare mirror: git --git-dir=<mirror> archive HEAD | tar -x -C /tmp/agentchattr)
    python3 -m venv /tmp/agentchattr-venv
    /tmp/agentchattr-venv/bin/pip install "fastapi>=0.110" "uvicorn[standard]>=0.29" "mcp>=1.0,<2"

(``mcp<2``: agentchattr imports ``mcp.server.fastmcp``, which mcp 2 removed.) Then:

    .venv/bin/python bench/bench_vs_agentchattr.py \\
        --agentchattr /tmp/agentchattr --agentchattr-python /tmp/agentchattr-venv/bin/python

How each server is driven (its own conventions, nothing patched):
- ours: ``python -m backchannel serve --port 0`` with a temporary data dir (as bench_server.py);
  agents from ``POST /api/agents/register``, the token as ``Authorization: Bearer``.
- agentchattr: ``run.py`` with its own override flags (``--data-dir --upload-dir --port
  --mcp-http-port --mcp-sse-port``, all in a temporary dir / on free ports; it binds 127.0.0.1),
  its working directory the temporary dir; agents from ``POST /api/register {"base": ...}`` as its
  wrapper does, the token as ``Authorization: Bearer`` (so the registry name wins over ``sender``),
  and a heartbeat every 5 s per agent, as its wrapper sends (without it agentchattr drops an agent
  after 15 s). While agentchattr is measured, only idle agents get one, and only every 10 s, so
  normally none falls inside a measured window (a line says so when some did).
  Its tools take a ``sender`` argument; we pass the registered name.

A tool answer that is an error (``isError`` or a text starting with ``Error``) stops the run.

Which client plays the agents: ``--client raw`` (the default) is a lean MCP client (one
keep-alive HTTP/1.1 connection per agent, hand-written JSON-RPC; it reads a JSON answer or an SSE
one, as agentchattr's SDK server may give) that costs about 0.1 ms of CPU per call;
``--client sdk`` is the MCP SDK client, about 2 ms of CPU per call, more than our server spends,
so on a 2-core machine that client, not the server, caps our throughput. Both servers get the same
client in a run. Each line shows the client's CPU per call, and the ratios include "capacity"
(agentchattr's server CPU per call / ours).
"""

from __future__ import annotations

import argparse
import os
import re
import socket
import subprocess
import sys
import tempfile
import time
from collections.abc import AsyncIterator, Awaitable, Callable, Iterator
from contextlib import AsyncExitStack, ExitStack, asynccontextmanager, contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import anyio
import httpx
from _support import CLIENT_HELP, CLIENTS, PROXY_VARS, cpu_seconds, pct, stop  # bench/ is on sys.path

from backchannel.server.security import SESSION_HEADER, read_or_create_secret

AGENTS = 8
MANY_AGENTS = 50
READ_LIMIT = 20
CHANNEL = "general"  # exists from the start on both servers
HEARTBEAT_EVERY = 5.0  # agentchattr's wrapper heartbeats every 5 s; its crash timeout is 15 s
QUIET_HEARTBEAT_EVERY = 10.0  # idle agents while agentchattr is measured
START_TIMEOUT = 60.0

OURS = "ours"
THEIRS = "agentchattr"
PHASES = ("8 agents chat_send", f"8 agents chat_read({READ_LIMIT})", "50 agents send+read")


# -- agentchattr as a child process --------------------------------------------------------------------


def free_ports(n: int) -> list[int]:
    """``n`` distinct free loopback ports (held open together while the OS picks them)."""
    socks = [socket.socket() for _ in range(n)]
    try:
        for s in socks:
            s.bind(("127.0.0.1", 0))
        return [s.getsockname()[1] for s in socks]
    finally:
        for s in socks:
            s.close()


def _listening(port: int) -> bool:
    with socket.socket() as s:
        s.settimeout(0.2)
        return s.connect_ex(("127.0.0.1", port)) == 0


@dataclass
class Child:
    """A server child process; its output goes to ``log`` (shown if the run fails)."""

    name: str
    proc: subprocess.Popen[bytes]
    log: Path

    @property
    def pid(self) -> int:
        return self.proc.pid

    def output(self) -> str:
        return self.log.read_text(errors="replace")

    def postmortem(self) -> str:
        state = "still running" if self.proc.poll() is None else f"EXITED with {self.proc.returncode}"
        return f"--- {self.name} (pid {self.pid}) {state}; last output:\n{self.output()[-3000:]}"


@contextmanager
def child(name: str, cmd: list[str], cwd: Path, ready: Callable[[Child], str | None]) -> Iterator[Child]:
    """Start ``cmd`` (loopback only, no proxy variables), wait until ``ready`` returns something
    other than None, stop it on exit (terminate, then kill)."""
    env = {k: v for k, v in os.environ.items() if k.upper() not in PROXY_VARS}
    env["PYTHONUNBUFFERED"] = "1"
    log = cwd / f"{name}.log"
    with log.open("wb") as out:
        proc = subprocess.Popen(
            cmd, cwd=cwd, stdin=subprocess.DEVNULL, stdout=out, stderr=subprocess.STDOUT, env=env
        )
    c = Child(name, proc, log)
    try:
        deadline = time.monotonic() + START_TIMEOUT
        while ready(c) is None:
            if proc.poll() is not None or time.monotonic() > deadline:
                raise SystemExit(f"{name} did not start\n{c.postmortem()}")
            time.sleep(0.05)
        yield c
    finally:
        stop(proc)


@contextmanager
def running_ours(work: Path) -> Iterator[tuple[Child, str]]:
    """``python -m backchannel serve --port 0`` as bench/_support.py starts it (its
    ``BENCH_SERVER_PYTHON_ARGS`` too), data in ``work``; yields it and its base URL."""
    cmd = [
        sys.executable,
        *os.environ.get("BENCH_SERVER_PYTHON_ARGS", "").split(),
        *("-m", "backchannel", "serve", "--port", "0", "--data-dir", str(work)),
    ]

    def url(c: Child) -> str | None:
        match = re.search(r"serving on (http://\S+)", c.output())
        return match.group(1) if match else None

    with child(OURS, cmd, work, url) as c:
        yield c, url(c) or ""


@contextmanager
def running_agentchattr(checkout: Path, python: Path, work: Path) -> Iterator[tuple[Child, str, str]]:
    """agentchattr's ``run.py`` on free ports with its data under ``work`` (also its working
    directory, for whatever it writes relative to it); yields it, its web URL and MCP base URL."""
    web_port, http_port, sse_port = free_ports(3)
    cmd = [
        str(python),
        str(checkout / "run.py"),
        *("--data-dir", str(work / "data"), "--upload-dir", str(work / "uploads")),
        *("--port", str(web_port), "--mcp-http-port", str(http_port), "--mcp-sse-port", str(sse_port)),
    ]

    def up(_: Child) -> str | None:
        return "" if _listening(web_port) and _listening(http_port) else None

    with child(THEIRS, cmd, work, up) as c:
        yield c, f"http://127.0.0.1:{web_port}", f"http://127.0.0.1:{http_port}"


def rss_mb(pid: int) -> float:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) / 1024
    return float("nan")


# -- the two servers behind one shape ------------------------------------------------------------------


@dataclass
class Agent:
    client: Any  # an MCP SDK ``Client`` or a ``RawAgent``: both have ``call_tool(name, args)``
    name: str  # agentchattr's tools take it as ``sender`` (the token still decides who sends)
    token: str


@dataclass
class Target:
    label: str
    pid: int
    few: list[Agent]
    many: list[Agent]
    with_sender: bool  # agentchattr's tool signatures

    def send(self, a: Agent, text: str) -> Callable[[], Awaitable[Any]]:
        args: dict[str, Any] = {"message": text, "channel": CHANNEL}
        if self.with_sender:
            args |= {"sender": a.name, "choices": []}
        return lambda: a.client.call_tool("chat_send", args)

    def read(self, a: Agent) -> Callable[[], Awaitable[Any]]:
        args: dict[str, Any] = {"channel": CHANNEL, "limit": READ_LIMIT}
        if self.with_sender:
            args["sender"] = a.name
        return lambda: a.client.call_tool("chat_read", args)


def failure(result: Any) -> str | None:
    """The error text of a tool answer, or None. agentchattr reports errors as plain text."""
    texts = [getattr(block, "text", "") for block in getattr(result, "content", [])]
    if getattr(result, "is_error", False) or any(t.startswith("Error") for t in texts):
        return " ".join(texts)[:300] or "error without text"
    return None


@dataclass
class Totals:
    """One phase on one server, pooled over the rounds."""

    calls: int = 0
    elapsed: float = 0.0
    cpu: float = 0.0
    client_cpu: float = 0.0
    per_call: list[float] = field(default_factory=list[float])
    rates: list[float] = field(default_factory=list[float])  # calls/s of each round

    @property
    def rate(self) -> float:
        return self.calls / self.elapsed

    @property
    def cpu_per_call(self) -> float:
        return self.cpu / self.calls

    @property
    def client_cpu_per_call(self) -> float:
        return self.client_cpu / self.calls

    def add(self, elapsed: float, cpu: float, client_cpu: float, per_call: list[float]) -> None:
        self.calls += len(per_call)
        self.elapsed += elapsed
        self.cpu += cpu
        self.client_cpu += client_cpu
        self.per_call += per_call
        self.rates.append(len(per_call) / elapsed)


async def drive(
    target: Target, plans: list[list[Callable[[], Awaitable[Any]]]]
) -> tuple[float, float, float, list[float]]:
    """Every plan (one agent's calls, in order) runs at once: (elapsed s, server CPU s, this
    process's CPU s, per-call s). The client's CPU shows when the client, not the server, is the
    limit (one Python process drives every agent)."""
    per_call: list[float] = []

    async def run(calls: list[Callable[[], Awaitable[Any]]]) -> None:
        for call in calls:
            start = time.perf_counter()
            result = await call()
            per_call.append(time.perf_counter() - start)
            if err := failure(result):
                raise SystemExit(f"{target.label}: tool call failed: {err}")

    cpu0, own0, t0 = cpu_seconds(target.pid), time.process_time(), time.perf_counter()
    async with anyio.create_task_group() as tg:
        for calls in plans:
            tg.start_soon(run, calls)
    elapsed = time.perf_counter() - t0
    return elapsed, cpu_seconds(target.pid) - cpu0, time.process_time() - own0, per_call


# -- registering agents --------------------------------------------------------------------------------


async def our_agents(
    stack: AsyncExitStack, human: httpx.AsyncClient, url: str, base: str, n: int, client: str
) -> list[Agent]:
    out: list[Agent] = []
    for i in range(n):
        reg = await human.post("/api/agents/register", json={"base": base, "instance_id": f"{base}{i}"})
        reg.raise_for_status()
        body = reg.json()
        out.append(
            Agent(
                await stack.enter_async_context(CLIENTS[client](url, body["token"])),
                body["name"],
                body["token"],
            )
        )
    return out


async def their_agents(
    stack: AsyncExitStack,
    web: httpx.AsyncClient,
    mcp_url: str,
    base: str,
    n: int,
    tokens: dict[str, str],
    client: str,
) -> list[Agent]:
    """Registered as agentchattr's wrapper does (``POST /api/register``, one instance per call)."""
    out: list[Agent] = []
    for _ in range(n):
        reg = await web.post("/api/register", json={"base": base, "label": None})
        reg.raise_for_status()
        body = reg.json()
        tokens[body["token"]] = body["name"]
        out.append(
            Agent(
                await stack.enter_async_context(CLIENTS[client](mcp_url, body["token"])),
                body["name"],
                body["token"],
            )
        )
    return out


class Heartbeats:
    """agentchattr's wrapper heartbeat: ``POST /api/heartbeat/<name>`` with the Bearer token every
    5 s per agent (agentchattr drops an agent after 15 s without one).

    While agentchattr is measured (:meth:`quiet`) the agents making calls get none (their calls
    keep them present) and the idle ones get one only when 10 s have passed, so that on a normal
    machine no heartbeat falls inside a measured window; :attr:`inside` counts those that did."""

    def __init__(self, web: httpx.AsyncClient, tokens: dict[str, str]) -> None:
        self.web, self.tokens = web, tokens
        self.lock = anyio.Lock()
        self.last = time.monotonic()
        self.busy: set[str] | None = None  # tokens of the agents being measured, during quiet()
        self.inside = 0

    async def _beat(self, skip: set[str]) -> int:
        sent = 0
        for token, name in list(self.tokens.items()):
            if token in skip:
                continue
            # The name in the path may be stale after a slot-1 rename; the token decides.
            r = await self.web.post(f"/api/heartbeat/{name}", headers={"Authorization": f"Bearer {token}"})
            if r.status_code != 200:
                raise SystemExit(f"agentchattr heartbeat for {name}: {r.status_code} {r.text[:200]}")
            sent += 1
        self.last = time.monotonic()
        return sent

    async def run(self) -> None:
        while True:
            await anyio.sleep(0.5)
            async with self.lock:
                every = HEARTBEAT_EVERY if self.busy is None else QUIET_HEARTBEAT_EVERY
                if time.monotonic() - self.last >= every:
                    sent = await self._beat(self.busy or set())
                    self.inside += sent if self.busy is not None else 0

    @asynccontextmanager
    async def quiet(self, busy: list[Agent]) -> AsyncIterator[None]:
        async with self.lock:
            await self._beat(set())
            self.busy, self.inside = {a.token for a in busy}, 0
        try:
            yield
        finally:
            async with self.lock:
                self.busy = None
                await self._beat(set())


# -- reporting -----------------------------------------------------------------------------------------


def ms(seconds: float) -> str:
    return f"{seconds * 1000:7.2f} ms"


def line(label: str, rate: float, cpu: float, client_cpu: float, per_call: list[float]) -> str:
    return (
        f"  {label:<12} {rate:6.1f} calls/s  server CPU {cpu * 1000:5.2f} ms/call"
        f"  (client {client_cpu * 1000:4.2f})  p50 {ms(pct(per_call, 50))}  p99 {ms(pct(per_call, 99))}"
        f"  max {ms(max(per_call))}"
    )


def load() -> str:
    return " ".join(f"{x:.2f}" for x in os.getloadavg())


def report(totals: dict[tuple[str, str], Totals], rounds: int) -> None:
    """Pooled figures per phase, the ratios ours:agentchattr and issue 14's targets."""
    for phase in PHASES:
        a, b = totals[(OURS, phase)], totals[(THEIRS, phase)]
        print(f" {phase} ({a.calls} calls per server)")
        for label, t in ((OURS, a), (THEIRS, b)):
            print(line(label, t.rate, t.cpu_per_call, t.client_cpu_per_call, t.per_call))
        per_round = ", ".join(f"{x / y:.2f}" for x, y in zip(a.rates, b.rates, strict=True))
        print(
            f"  ours:agentchattr  throughput {a.rate / b.rate:5.2f}x (rounds: {per_round})"
            f"   server CPU/call {a.cpu_per_call / b.cpu_per_call:4.2f}"
            f" (capacity {b.cpu_per_call / a.cpu_per_call:4.1f}x)"
            f"   p50 {pct(a.per_call, 50) / pct(b.per_call, 50):4.2f}"
            f"   p99 {pct(a.per_call, 99) / pct(b.per_call, 99):4.2f}"
        )
    many = totals[(OURS, PHASES[2])].per_call
    send, read = (totals[(OURS, p)].rate / totals[(THEIRS, p)].rate for p in PHASES[:2])
    print(
        f"\nissue 14 targets, ours over {rounds} rounds: 8-agent throughput >= 5x agentchattr:"
        f" chat_send {send:.2f}x, chat_read {read:.2f}x;"
        f" 50 agents p50 {pct(many, 50) * 1000:.1f} ms (<= 30), calls over 1 s {sum(x > 1 for x in many)} (0)"
    )
    print(
        "(capacity = agentchattr's server CPU per call / ours: the throughput ratio a machine would see"
        " where the server, not one Python client process, is the limit)"
    )


# -- the run ------------------------------------------------------------------------------------------


async def measure(
    args: argparse.Namespace, ours: Target, theirs: Target, heartbeats: Heartbeats
) -> dict[tuple[str, str], Totals]:
    """Warm every session up, then run each phase on ours and on agentchattr in turn, ``rounds`` times."""
    counter = iter(range(10**9))

    def plans(t: Target, phase: str) -> list[list[Callable[[], Awaitable[Any]]]]:
        if phase == PHASES[0]:
            return [[t.send(a, f"bench {next(counter)}") for _ in range(args.per_agent)] for a in t.few]
        if phase == PHASES[1]:
            return [[t.read(a)] * args.per_agent for a in t.few]
        return [[t.send(a, f"bench {next(counter)}"), t.read(a)] * args.many_rounds for a in t.many]

    for t in (ours, theirs):  # untimed: every session sends and reads once on each server
        await drive(t, [[t.send(a, "warm-up"), t.read(a)] for a in t.few + t.many])
    print(f"registered {AGENTS} + {MANY_AGENTS} agents on each server, warmed up; load {load()}\n")

    totals = {(t.label, p): Totals() for t in (ours, theirs) for p in PHASES}
    for rnd in range(args.rounds):
        print(f"round {rnd + 1}/{args.rounds} (load {load()})")
        for phase in PHASES:
            print(f" {phase}")
            for t in (ours, theirs):
                note = ""
                if t is theirs:
                    async with heartbeats.quiet(t.many if phase == PHASES[2] else t.few):
                        elapsed, cpu, client_cpu, per_call = await drive(t, plans(t, phase))
                    if heartbeats.inside:
                        note = f"  ({heartbeats.inside} heartbeats inside: the phase took {elapsed:.0f} s)"
                else:
                    elapsed, cpu, client_cpu, per_call = await drive(t, plans(t, phase))
                totals[(t.label, phase)].add(elapsed, cpu, client_cpu, per_call)
                n = len(per_call)
                print(line(t.label, n / elapsed, cpu / n, client_cpu / n, per_call) + note)
        print()
    return totals


async def bench(args: argparse.Namespace, work: Path) -> None:
    checkout, python = Path(args.agentchattr).resolve(), Path(args.agentchattr_python)
    if not (checkout / "run.py").is_file():
        raise SystemExit(f"--agentchattr {checkout}: no run.py there (want a checkout of bcurts/agentchattr)")
    if not python.is_file():
        raise SystemExit(f"--agentchattr-python {python}: not a file (want its venv's python)")
    (work / "ours").mkdir()
    (work / "theirs").mkdir()
    print(f"load average at start: {load()} (1/5/15 min; {os.cpu_count()} CPUs); client: {args.client}")
    t_start = time.perf_counter()
    with ExitStack() as procs:
        ours_proc, our_url = procs.enter_context(running_ours(work / "ours"))
        their_proc, web_url, their_mcp = procs.enter_context(
            running_agentchattr(checkout, python, work / "theirs")
        )
        our_pid, their_pid = ours_proc.pid, their_proc.pid
        print(f"ours        {our_url}/mcp (pid {our_pid}, RSS {rss_mb(our_pid):.0f} MB after start)")
        print(f"agentchattr {their_mcp}/mcp (pid {their_pid}, RSS {rss_mb(their_pid):.0f} MB after start)")
        human = httpx.AsyncClient(
            base_url=our_url,
            headers={SESSION_HEADER: read_or_create_secret(work / "ours")},
            timeout=60,
            trust_env=False,
        )
        web = httpx.AsyncClient(base_url=web_url, timeout=60, trust_env=False)
        tokens: dict[str, str] = {}
        heartbeats = Heartbeats(web, tokens)
        totals: dict[tuple[str, str], Totals] = {}
        rss = (float("nan"), float("nan"))
        reconnects = [0, 0]
        try:
            async with human, web, anyio.create_task_group() as tg:
                tg.start_soon(heartbeats.run)
                async with AsyncExitStack() as stack:  # MCP sessions, closed before the heartbeats stop
                    ours = Target(
                        OURS,
                        our_pid,
                        await our_agents(stack, human, our_url, "bench", AGENTS, args.client),
                        await our_agents(stack, human, our_url, "many", MANY_AGENTS, args.client),
                        with_sender=False,
                    )
                    theirs = Target(
                        THEIRS,
                        their_pid,
                        await their_agents(stack, web, their_mcp, "codex", AGENTS, tokens, args.client),
                        await their_agents(stack, web, their_mcp, "claude", MANY_AGENTS, tokens, args.client),
                        with_sender=True,
                    )
                    totals = await measure(args, ours, theirs, heartbeats)
                    rss = (rss_mb(our_pid), rss_mb(their_pid))
                    reconnects = [
                        sum(getattr(a.client, "reconnects", 0) for a in t.few + t.many)
                        for t in (ours, theirs)
                    ]
                tg.cancel_scope.cancel()
        except BaseException:
            # A server that dies mid-run shows up as connection errors from every session; say which.
            print(f"\nthe run failed (load {load()}); the servers:", file=sys.stderr)
            for c in (ours_proc, their_proc):
                print(c.postmortem(), file=sys.stderr)
            raise

    wall = time.perf_counter() - t_start
    print(f"pooled over {args.rounds} rounds, client {args.client} (load at end {load()}, wall {wall:.0f} s)")
    report(totals, args.rounds)
    print(f"RSS after the run: ours {rss[0]:.0f} MB, agentchattr {rss[1]:.0f} MB")
    if args.client == "raw":
        print(
            f"idle keep-alive connections the server closed (raw client reconnected): ours {reconnects[0]},"
            f" agentchattr {reconnects[1]}"
        )


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--agentchattr", required=True, help="a checkout of bcurts/agentchattr (has run.py)")
    parser.add_argument("--agentchattr-python", required=True, help="python of a venv with its requirements")
    parser.add_argument("--per-agent", type=int, default=100, help="calls per agent, 8-agent phases")
    parser.add_argument("--many-rounds", type=int, default=6, help="send+read rounds per agent, 50 agents")
    parser.add_argument("--rounds", type=int, default=2, help="A/B repetitions of every phase")
    parser.add_argument("--client", choices=sorted(CLIENTS), default="raw", help=CLIENT_HELP)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory(prefix="bench-vs-agentchattr-") as tmp:
        anyio.run(bench, args, Path(tmp))


if __name__ == "__main__":
    main()
