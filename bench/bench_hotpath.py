"""In-process benchmark of the store hot path (issue 14): what one chat_send and one chat_read cost
below the MCP layer, in CPU time and in SQL statements, with 8 and 50 registered agents.

Each figure comes from a fresh child process on a fresh database, so variants do not share warm
caches; the variants run interleaved (A, B, C, A, B, C, ...) because the machine is shared:

- ``now``: this tree as it is;
- ``no-caches``: this tree with the token cache and the routing roster defeated the old way
  (every UPDATE of ``agents`` moves the generation, and each post reads every live agent);
- ``before``: another source tree (``--before-src``, e.g. ``git archive HEAD src | tar -x``).

A "call" does what the tool does below MCP: the endpoint's token check (``touch=False``), the
tool's (a liveness write at most once a second), then ``Room.post_agent`` or ``Room.agent_read``.
Every agent runs as its own task, alternating send and read, all at once. Read CPU per call and
statements per call; the statement counts do not depend on the machine's load.

    .venv/bin/python bench/bench_hotpath.py [--calls 3000] [--reps 3] [--before-src /tmp/head/src]
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

AGENT_COUNTS = (8, 50)
ROOT = Path(__file__).resolve().parent.parent


async def worker(agents: int, calls: int, mode: str) -> dict[str, Any]:
    """One measurement in this process; imports happen here so ``PYTHONPATH`` picks the tree."""
    import sqlite3

    from backchannel.bus import InMemoryEventBus
    from backchannel.config import Settings
    from backchannel.registry import Registry, hash_token
    from backchannel.room import Room
    from backchannel.room_settings import RoomSettings
    from backchannel.store import Store, _db
    from backchannel.store import agents as agent_rows

    counted = [0]
    last = [""]
    connections: list[sqlite3.Connection] = []
    connect = _db._connect  # pyright: ignore[reportPrivateUsage]

    def tracing_connect(path: Path) -> sqlite3.Connection:
        conn = connect(path)
        connections.append(conn)
        conn.set_trace_callback(count)
        return conn

    def count(sql: str) -> None:
        # Trigger bodies show as "-- ..." lines or as their statement again: neither is a round trip.
        if not sql.startswith("--") and sql != last[0]:
            counted[0] += 1
        last[0] = sql

    _db._connect = tracing_connect  # pyright: ignore[reportPrivateUsage]
    data = Path(tempfile.mkdtemp(prefix="bench-hotpath-"))
    store = Store(data / "db.sqlite")
    bus = InMemoryEventBus()
    settings = Settings(data_dir=data)
    registry = Registry(store, bus, settings)
    room = Room(store, bus, registry, settings, RoomSettings(store, bus, settings))
    if mode == "no-caches":
        old_style(store)
    await room.create_channel("bench")
    tokens = [(await registry.register("codex", f"i-{i}", None)).token for i in range(agents)]

    async def one_agent(token: str, rounds: int, tag: int) -> None:
        for i in range(rounds):
            for op in ("send", "read"):
                await registry.authenticate(token, touch=False)  # the endpoint's gate
                me = await registry.authenticate(token)  # the tool's caller()
                if op == "send":
                    await room.post_agent(me, channel="bench", text=f"m {tag}.{i}")
                else:
                    await room.agent_read(me, "bench", 20, None)

    async def run(total_calls: int) -> tuple[float, float]:
        rounds = max(1, total_calls // (2 * agents))
        wall, cpu = time.perf_counter(), time.process_time()
        await asyncio.gather(*(one_agent(t, rounds, n) for n, t in enumerate(tokens)))
        done = rounds * 2 * agents
        return (time.process_time() - cpu) / done, (time.perf_counter() - wall) / done

    await run(4 * agents)  # warm-up: first reads, first cursors, code paths
    # Statements per call, one call at a time so each is counted against its own kind.
    per_op = {"send": 0, "read": 0}
    rounds = max(1, 200 // agents)
    for i in range(rounds):
        for n, token in enumerate(tokens):
            for op in ("send", "read"):
                before = counted[0]
                await registry.authenticate(token, touch=False)
                me = await registry.authenticate(token)
                if op == "send":
                    await room.post_agent(me, channel="bench", text=f"counted {n}.{i}")
                else:
                    await room.agent_read(me, "bench", 20, None)
                per_op[op] += counted[0] - before
    for conn in connections:
        conn.set_trace_callback(None)
    connections.clear()
    _db._connect = connect  # pyright: ignore[reportPrivateUsage]
    cpu, wall = await run(calls)

    # Micro: one token check served from memory vs the store lookup a miss costs.
    token_hash = hash_token(tokens[0])
    n = 2000
    cpu0 = time.process_time()
    for _ in range(n):
        await registry.authenticate(tokens[0], touch=False)
    auth = (time.process_time() - cpu0) / n
    cpu0 = time.process_time()
    for _ in range(n):
        await store.agent_by_token_hash(token_hash)
    lookup = (time.process_time() - cpu0) / n
    # Micro: an empty write transaction (what group commit could share between writers).
    cpu0 = time.process_time()
    for _ in range(n):
        await store.db.write(lambda c: None)
    empty_tx = (time.process_time() - cpu0) / n
    # The same on this thread (the writer is idle): BEGIN IMMEDIATE + COMMIT alone, no thread hop.
    cpu0 = time.process_time()
    for _ in range(n):
        store.db._run_write(lambda c: None)  # pyright: ignore[reportPrivateUsage]
    commit_only = (time.process_time() - cpu0) / n
    # Micro: the roster a post routes with.
    cpu0 = time.process_time()
    roster = getattr(store, "roster", None)
    if roster is not None and mode == "now":
        store.db.write_sync(lambda c: [roster.live(c) for _ in range(n)])
    else:
        store.db.write_sync(lambda c: [agent_rows.live(c) for _ in range(n)])
    live = (time.process_time() - cpu0) / n
    store.close()
    shutil.rmtree(data, ignore_errors=True)
    return {
        "cpu": cpu,
        "wall": wall,
        "send_statements": per_op["send"] / (rounds * agents),
        "read_statements": per_op["read"] / (rounds * agents),
        "auth": auth,
        "lookup": lookup,
        "empty_tx": empty_tx,
        "commit_only": commit_only,
        "live": live,
    }


def old_style(store: Any) -> None:
    """Defeat both caches as they were before: any UPDATE of agents moves the generation, every
    post reads all live agents."""
    from backchannel.store import agents as agent_rows

    def install(conn: Any) -> None:
        conn.execute("DROP TRIGGER IF EXISTS temp.track_agents_volatile")
        conn.execute("DROP TRIGGER IF EXISTS temp.track_agents_update")
        conn.execute(
            "CREATE TEMP TRIGGER track_agents_update AFTER UPDATE ON main.agents"
            " BEGIN SELECT backchannel_agents_changed(); END"
        )

    store.db.on_writer(install).result()

    class Uncached:
        def live(self, conn: Any) -> Any:
            return agent_rows.live(conn)

    store.roster = Uncached()


def child(variant: str, src: str | None, agents: int, calls: int) -> dict[str, Any]:
    env = dict(os.environ)
    if src is not None:
        env["PYTHONPATH"] = src
    mode = "no-caches" if variant == "no-caches" else "now"
    args = [sys.executable, __file__, "--worker", mode, "--agents", str(agents), "--calls", str(calls)]
    out = subprocess.run(args, env=env, capture_output=True, text=True, check=False, cwd=ROOT)
    if out.returncode:
        raise SystemExit(f"{variant} worker failed:\n{out.stderr[-3000:]}")
    return json.loads(out.stdout.strip().splitlines()[-1])


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--calls", type=int, default=3000)
    parser.add_argument("--reps", type=int, default=3)
    parser.add_argument("--before-src", default=None, help="a source tree to compare with (its src/ dir)")
    parser.add_argument("--worker", default=None, help=argparse.SUPPRESS)
    parser.add_argument("--agents", type=int, default=8, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.worker:
        print(json.dumps(asyncio.run(worker(args.agents, args.calls, args.worker))))
        return
    variants: list[tuple[str, str | None]] = [("now", None), ("no-caches", None)]
    if args.before_src:
        variants.append(("before", args.before_src))
    results: dict[tuple[str, int], list[dict[str, Any]]] = {}
    for rep in range(args.reps):
        for agents in AGENT_COUNTS:
            for name, src in variants:
                results.setdefault((name, agents), []).append(child(name, src, agents, args.calls))
        print(f"rep {rep + 1}/{args.reps} done", file=sys.stderr)

    def med(name: str, agents: int, key: str) -> float:
        return statistics.median(r[key] for r in results[(name, agents)])

    us = 1e6
    print(
        f"store hot path, {args.calls} calls per run (half chat_send, half chat_read), medians of {args.reps}"
    )
    print(
        f"{'variant':>10} {'agents':>6} {'CPU/call':>10} {'SQL/send':>9} {'SQL/read':>9} {'auth hit':>9}"
        f" {'lookup':>8} {'roster':>8} {'empty tx':>9} {'no hop':>7}"
    )
    for agents in AGENT_COUNTS:
        for name, _ in variants:
            print(
                f"{name:>10} {agents:>6} {med(name, agents, 'cpu') * us:>8.0f}us"
                f" {med(name, agents, 'send_statements'):>9.1f} {med(name, agents, 'read_statements'):>9.1f}"
                f" {med(name, agents, 'auth') * us:>7.1f}us"
                f" {med(name, agents, 'lookup') * us:>6.0f}us {med(name, agents, 'live') * us:>6.1f}us"
                f" {med(name, agents, 'empty_tx') * us:>7.0f}us"
                f" {med(name, agents, 'commit_only') * us:>5.0f}us"
            )
    print("\nratios (CPU per call, median):")
    for agents in AGENT_COUNTS:
        line = f"  {agents:>2} agents:"
        for name, _ in variants[1:]:
            line += f"  now : {name} = {med('now', agents, 'cpu') / med(name, agents, 'cpu'):.2f}"
        print(line)


if __name__ == "__main__":
    main()
