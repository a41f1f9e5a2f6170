"""Benchmark a real ``backchannel serve`` process through the real MCP client.

Prints chat_send latency (p50/p99), throughput and the server's CPU time per call with 8 and 50
concurrent agents, and chat_read latency at 1k / 100k / 1M stored messages with the ratios against
the 1k baseline measured in the same run. Absolute numbers depend on the machine; the ratios are
what to watch (1M:1k should stay close to 1).

    .venv/bin/python bench/bench_server.py            # full run, a few minutes
    .venv/bin/python bench/bench_server.py --quick    # 1k / 10k / 100k, fewer calls: a smoke run
    .venv/bin/python bench/bench_server.py --calls    # only the concurrent-agent figures (no seeding)
    .venv/bin/python bench/bench_server.py --calls --client sdk   # agents on the MCP SDK client

The agents are played by a lean raw MCP client by default (``--client raw``, about 0.1 ms of CPU
per call), so that on a small machine the load generator does not cap the server's figures; the
MCP SDK client (``--client sdk``) costs 1.3-2.3 ms per call, more than the server. The load lines
show the client's CPU per call too.
"""

from __future__ import annotations

import argparse
import os
import sqlite3
import statistics
import tempfile
import time
from collections.abc import Awaitable, Callable
from contextlib import AsyncExitStack
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import anyio
import httpx
from _support import CLIENT_HELP, CLIENTS, cpu_seconds, pct, running_server_process  # bench/ is on sys.path

from backchannel.server.security import SESSION_HEADER, read_or_create_secret

AGENTS = 8
MANY_AGENTS = 50
SEED_BATCH = 50_000
READ_LIMIT = 20


@dataclass(frozen=True)
class Plan:
    sizes: tuple[int, ...]
    sends: int  # sequential chat_send calls for the latency figures
    per_agent: int  # chat_send calls per agent in the throughput run
    reads: int  # calls per read measurement and size
    many_rounds: int  # send + read rounds per agent in the 50-agent run


FULL = Plan(sizes=(1_000, 100_000, 1_000_000), sends=500, per_agent=150, reads=200, many_rounds=20)
QUICK = Plan(sizes=(1_000, 10_000, 100_000), sends=100, per_agent=30, reads=50, many_rounds=6)


# -- the server --------------------------------------------------------------------------------------


def seed(db_path: Path, channel: str, upto: int) -> int:
    """Bulk-insert messages into ``channel`` until it holds ``upto``; returns its newest id.

    Goes straight to SQLite in large transactions (the FTS triggers still fire), so a million rows
    take seconds rather than a million round trips; the read path is then measured through the server.
    """
    conn = sqlite3.connect(db_path, timeout=60, isolation_level=None)
    try:
        (channel_id,) = conn.execute("SELECT id FROM channels WHERE name = ?", (channel,)).fetchone()
        (have,) = conn.execute("SELECT count(*) FROM messages WHERE channel_id = ?", (channel_id,)).fetchone()
        now = time.time()
        while have < upto:
            n = min(SEED_BATCH, upto - have)
            rows = (
                (channel_id, f"seed-{(have + i) % 7}", f"seeded message {have + i}: the quick brown fox", now)
                for i in range(n)
            )
            conn.execute("BEGIN IMMEDIATE")
            conn.executemany(
                "INSERT INTO messages(channel_id, sender, kind, type, text, created_at)"
                " VALUES (?, ?, 'human', 'chat', ?, ?)",
                rows,
            )
            conn.execute("COMMIT")
            have += n
        conn.execute("PRAGMA wal_checkpoint(TRUNCATE)")
        (newest,) = conn.execute(
            "SELECT max(id) FROM messages WHERE channel_id = ?", (channel_id,)
        ).fetchone()
        return int(newest)
    finally:
        conn.close()


# -- measuring ---------------------------------------------------------------------------------------------


def ms(seconds: float) -> str:
    return f"{seconds * 1000:7.2f} ms"


async def timed(call: Callable[[], Awaitable[Any]], times: int, warmup: int = 5) -> list[float]:
    """Per-call wall time of ``times`` calls, after ``warmup`` untimed ones (caches, first connection)."""
    for _ in range(warmup):
        await call()
    samples = []
    for _ in range(times):
        start = time.perf_counter()
        result = await call()
        samples.append(time.perf_counter() - start)
        if getattr(result, "is_error", False):
            raise SystemExit(f"tool call failed: {result.content}")
    return samples


async def concurrently(
    clients: list[Any], calls: Callable[[Any], list[Callable[[], Awaitable[Any]]]], pid: int
) -> tuple[float, tuple[float, float], list[float]]:
    """Every client makes its calls in order, all clients at once: (calls/s, (server, client) CPU s
    per call, per-call wall times). The server's CPU time is read from /proc before and after, the
    client's (this process) from ``time.process_time``."""
    per_call: list[float] = []

    async def run(client: Any) -> None:
        for call in calls(client):
            start = time.perf_counter()
            result = await call()
            per_call.append(time.perf_counter() - start)
            if getattr(result, "is_error", False):
                raise SystemExit(f"tool call failed: {result.content}")

    cpu0, own0, t0 = cpu_seconds(pid), time.process_time(), time.perf_counter()
    async with anyio.create_task_group() as tg:
        for client in clients:
            tg.start_soon(run, client)
    elapsed, cpu, own = time.perf_counter() - t0, cpu_seconds(pid) - cpu0, time.process_time() - own0
    return len(per_call) / elapsed, (cpu / len(per_call), own / len(per_call)), per_call


def load_line(label: str, rate: float, cpu_per_call: tuple[float, float], per_call: list[float]) -> str:
    server, client = cpu_per_call
    return (
        f"  {label:<34} {rate:7.1f} calls/s   server CPU {server * 1000:5.2f} ms/call"
        f" (client {client * 1000:4.2f})   p50 {ms(pct(per_call, 50))}   p99 {ms(pct(per_call, 99))}"
        f"   max {ms(max(per_call))}"
    )


async def many_agents(plan: Plan, url: str, human: httpx.AsyncClient, pid: int, client: str) -> None:
    """50 agents, each with its own MCP session, alternate chat_send and chat_read at once."""
    async with AsyncExitStack() as stack:
        clients: list[Any] = []
        for i in range(MANY_AGENTS):
            reg = await human.post("/api/agents/register", json={"base": "many", "instance_id": f"m{i}"})
            reg.raise_for_status()
            clients.append(await stack.enter_async_context(CLIENTS[client](url, reg.json()["token"])))
        (await human.post("/api/channels", json={"name": "many"})).raise_for_status()
        counter = iter(range(10**9))

        def rounds(c: Any) -> list[Callable[[], Awaitable[Any]]]:
            send = lambda: c.call_tool("chat_send", {"message": f"m {next(counter)}", "channel": "many"})  # noqa: E731
            read = lambda: c.call_tool("chat_read", {"channel": "many", "limit": READ_LIMIT})  # noqa: E731
            return [send, read] * plan.many_rounds

        await concurrently(clients, lambda c: rounds(c)[:2], pid)  # warm-up: every session once
        rate, cpu, per_call = await concurrently(clients, rounds, pid)
        print(f"{MANY_AGENTS} concurrent agents x {plan.many_rounds} rounds of chat_send + chat_read")
        print(load_line("chat_send + chat_read", rate, cpu, per_call))
        print(f"  calls over 1 s: {sum(1 for t in per_call if t > 1)}\n")


async def first_mcp_answer(url: str) -> float:
    """When the server first answered an MCP ``ping`` (``perf_counter``), retried until it does."""
    ping = {"jsonrpc": "2.0", "id": 1, "method": "ping"}
    async with httpx.AsyncClient(timeout=10, trust_env=False) as http:
        for _ in range(1000):
            try:
                answer = await http.post(f"{url}/mcp", json=ping, headers={"accept": "application/json"})
            except httpx.TransportError:
                answer = None
            if answer is not None and answer.status_code == 200:
                return time.perf_counter()
            await anyio.sleep(0.001)
    raise SystemExit("the server never answered an MCP ping")


async def bench(plan: Plan, data_dir: Path, calls_only: bool = False, client: str = "raw") -> None:
    started = time.perf_counter()
    with running_server_process(data_dir) as (url, pid):
        listening = time.perf_counter() - started
        first_answer = await first_mcp_answer(url) - started
        human = httpx.AsyncClient(
            base_url=url,
            headers={SESSION_HEADER: read_or_create_secret(data_dir)},
            timeout=60,
            trust_env=False,
        )
        async with human, AsyncExitStack() as stack:
            clients: list[Any] = []
            for i in range(AGENTS):
                reg = await human.post("/api/agents/register", json={"base": "bench", "instance_id": f"b{i}"})
                reg.raise_for_status()
                clients.append(await stack.enter_async_context(CLIENTS[client](url, reg.json()["token"])))
            for name in ("latency", "throughput", "reads"):
                (await human.post("/api/channels", json={"name": name})).raise_for_status()
            print(
                f"server {url}, data dir {data_dir}, {AGENTS} agents over MCP streamable HTTP,"
                f" client: {client}, load average {' '.join(f'{x:.2f}' for x in os.getloadavg())}\n"
            )
            print(
                f"cold start (empty data dir): listening after {ms(listening)}, first MCP answer after"
                f" {ms(first_answer)} (bench_startup.py: medians, memory, 1M stored messages)\n"
            )

            # 1. chat_send latency, one agent, one call at a time (after a short warm-up).
            first = clients[0]
            counter = iter(range(10**9))

            def send(c: Any, channel: str) -> Callable[[], Awaitable[Any]]:
                return lambda: c.call_tool(
                    "chat_send", {"message": f"bench {next(counter)}", "channel": channel}
                )

            await timed(send(first, "latency"), 20)
            lat = await timed(send(first, "latency"), plan.sends)
            print(f"chat_send latency ({plan.sends} sequential calls, 1 agent)")
            print(f"  p50 {ms(pct(lat, 50))}   p99 {ms(pct(lat, 99))}   mean {ms(statistics.fmean(lat))}\n")

            # 2. Throughput: every agent sends as fast as it can, all at once; then reads the same way.
            #    The server's own CPU time per call is what limits throughput on a busy machine.
            rate, cpu, per_call = await concurrently(
                clients, lambda c: [send(c, "throughput")] * plan.per_agent, pid
            )
            print(f"throughput ({AGENTS} concurrent agents x {plan.per_agent} calls each)")
            print(load_line("chat_send", rate, cpu, per_call))
            rate, cpu, per_call = await concurrently(
                clients,
                lambda c: (
                    [lambda c=c: c.call_tool("chat_read", {"channel": "throughput", "limit": READ_LIMIT})]
                    * plan.per_agent
                ),
                pid,
            )
            print(load_line(f"chat_read (limit {READ_LIMIT})", rate, cpu, per_call) + "\n")
            await many_agents(plan, url, human, pid, client)
            if calls_only:
                return

            # 3. Reads as the store grows: the newest messages must cost the same at 1M as at 1k.
            reader = clients[1]
            rows: list[tuple[int, float, float, float, float, float]] = []
            print(f"chat_read latency vs stored messages ({plan.reads} calls each, limit {READ_LIMIT})")
            for size in plan.sizes:
                s0 = time.perf_counter()
                newest = seed(data_dir / "backchannel.db", "reads", size)
                seeded_in = time.perf_counter() - s0
                since = newest - READ_LIMIT
                new_msgs = await timed(
                    lambda since=since: reader.call_tool(
                        "chat_read", {"channel": "reads", "since_id": since, "limit": READ_LIMIT}
                    ),
                    plan.reads,
                )
                latest = await timed(
                    lambda: reader.call_tool("chat_resync", {"channel": "reads", "limit": READ_LIMIT}),
                    plan.reads,
                )
                rest = await timed(
                    lambda: human.get("/api/channels/reads/messages", params={"limit": 50}), plan.reads
                )
                rows.append(
                    (size, pct(new_msgs, 50), pct(new_msgs, 99), pct(latest, 50), pct(rest, 50), seeded_in)
                )
                print(
                    f"  {size:>9,} stored: chat_read(since_id) p50 {ms(pct(new_msgs, 50))} p99 "
                    f"{ms(pct(new_msgs, 99))} | chat_resync p50 {ms(pct(latest, 50))} | "
                    f"REST latest-50 p50 {ms(pct(rest, 50))}   (seeded in {seeded_in:.1f} s)"
                )

            base = rows[0]
            print(f"\nratios against the {base[0]:,}-message baseline (p50; 1.0 = no slowdown)")
            for size, new_p50, _new_p99, latest_p50, rest_p50, _ in rows[1:]:
                label = (
                    f"{size // 1000:,}k:{base[0] // 1000}k" if size < 1_000_000 else f"1M:{base[0] // 1000}k"
                )
                read_ratio, resync_ratio, rest_ratio = (
                    new_p50 / base[1],
                    latest_p50 / base[3],
                    rest_p50 / base[4],
                )
                print(
                    f"  {label:>10}  chat_read {read_ratio:.2f}   chat_resync {resync_ratio:.2f}"
                    f"   REST {rest_ratio:.2f}"
                )

            # Not the latest-N path: an agent whose cursor is far behind reads the oldest unread page,
            # and the reply says how many remain, which counts the whole backlog (an index range scan).
            backlog = await timed(
                lambda: reader.call_tool(
                    "chat_read", {"channel": "reads", "since_id": 0, "limit": READ_LIMIT}
                ),
                max(10, plan.reads // 10),
            )
            print(
                f"\nchat_read with the whole channel unread ({plan.sizes[-1]:,} behind, since_id=0): "
                f"p50 {ms(pct(backlog, 50))}   p99 {ms(pct(backlog, 99))}"
            )

            # 4. Writes at the largest size: appending must not slow down as the table grows either.
            big = await timed(send(first, "latency"), min(plan.sends, 200))
            print(
                f"chat_send at {plan.sizes[-1]:,} stored: p50 {ms(pct(big, 50))}   p99 {ms(pct(big, 99))}"
                f"   (p50 ratio to the empty store: {pct(big, 50) / pct(lat, 50):.2f})"
            )
    print(f"\ntotal {time.perf_counter() - started:.0f} s")


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--quick", action="store_true", help="1k/10k/100k and fewer calls (about 30 s)")
    parser.add_argument("--data-dir", type=Path, help="keep the database here instead of a temp dir")
    parser.add_argument("--calls", action="store_true", help="only latency and the concurrent-agent runs")
    parser.add_argument("--client", choices=sorted(CLIENTS), default="raw", help=CLIENT_HELP)
    args = parser.parse_args()
    plan = QUICK if args.quick else FULL
    if args.data_dir is not None:
        args.data_dir.mkdir(parents=True, exist_ok=True)
        anyio.run(bench, plan, args.data_dir, args.calls, args.client)
        return
    with tempfile.TemporaryDirectory(prefix="backchannel-bench-") as tmp:
        anyio.run(bench, plan, Path(tmp) / "data", args.calls, args.client)


if __name__ == "__main__":
    main()
