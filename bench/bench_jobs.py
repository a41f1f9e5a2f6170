"""Benchmark the jobs board and job threads on a real ``backchannel serve`` process.

Opens the board with 1,000 jobs and a thread with 5,000 messages, over REST (as the UI does) and
over the real MCP client (``chat_read(job_id=...)``, as agents do), and times the channel timeline
of a channel holding 5,000 thread messages against one holding none. Every figure is printed with
its ratio to a baseline measured in the same run: the board with 10 jobs, a thread of 100 messages,
the timeline of a channel without thread messages. Absolute numbers depend on the machine.

    .venv/bin/python bench/bench_jobs.py            # 200 calls per figure, about a minute
    .venv/bin/python bench/bench_jobs.py --quick    # 40 calls per figure: a smoke run
"""

from __future__ import annotations

import argparse
import sqlite3
import tempfile
import time
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any

import anyio
import httpx
from _support import agent, pct, running_server  # bench/ is on sys.path when a script here runs

from backchannel.server.security import SESSION_HEADER, read_or_create_secret

BOARD_SMALL, BOARD_BIG = 10, 1_000  # jobs on the board
THREAD_SMALL, THREAD_BIG = 100, 5_000  # messages in one job's thread (the small one: one page)
TIMELINE = 1_000  # channel messages in each of the two timeline channels
THREAD_PAGE = 100  # what the UI asks for when it opens a thread (web/static/js/jobs.js)
PAGE = 50  # what the UI asks for when it opens a channel (web/static/js/timeline.js)
READ_LIMIT = 20  # what an agent's chat_read asks for


# -- the server ---------------------------------------------------------------------------------------


def ok(response: httpx.Response) -> Any:
    if response.is_error:
        raise SystemExit(
            f"{response.request.method} {response.request.url}: {response.status_code} {response.text}"
        )
    return response.json()


async def create_jobs(human: httpx.AsyncClient, channel: str, count: int, start: int = 0) -> list[int]:
    """Jobs through the public API (status spread over the three groups, as on a used board)."""
    ids = []
    for i in range(start, start + count):
        job = ok(
            await human.post(
                "/api/jobs",
                json={
                    "title": f"Job {i}: make the flaky upload test pass on the 2-core runner",
                    "body": "The retry path times out under load; find why and fix it.",
                    "channel": channel,
                    "status": ("todo", "active", "closed")[i % 3],
                    "assignee": ("claude", "codex", "")[i % 3],
                },
            )
        )
        ids.append(int(job["id"]))
    return ids


def seed_messages(db_path: Path, channel: str, count: int, job_id: int | None = None) -> int:
    """Bulk-insert ``count`` messages into ``channel`` (or into job ``job_id``'s thread there).

    Straight into SQLite in one transaction (the FTS triggers still fire): 5,000 posts through the
    API would only time the writer. Reads are then measured through the server. Returns the newest id.
    """
    conn = sqlite3.connect(db_path, timeout=60, isolation_level=None)
    try:
        (channel_id,) = conn.execute("SELECT id FROM channels WHERE name = ?", (channel,)).fetchone()
        now = time.time()
        rows = (
            (
                channel_id,
                job_id,
                ("maya", "claude", "codex")[i % 3],
                ("human", "agent", "agent")[i % 3],
                f"seeded message {i}: checked the retry budget, the quick brown fox",
                now,
            )
            for i in range(count)
        )
        conn.execute("BEGIN IMMEDIATE")
        conn.executemany(
            "INSERT INTO messages(channel_id, job_id, sender, kind, type, text, created_at)"
            " VALUES (?, ?, ?, ?, 'chat', ?, ?)",
            rows,
        )
        (newest,) = conn.execute("SELECT max(id) FROM messages").fetchone()
        conn.execute("COMMIT")
        conn.execute("PRAGMA wal_checkpoint(TRUNCATE)")
        return int(newest)
    finally:
        conn.close()


# -- measuring ------------------------------------------------------------------------------------------


Call = Callable[[], Awaitable[Any]]


async def checked(call: Call) -> None:
    """One call; an HTTP error or a failed tool call stops the run (a fast error is no result)."""
    result = await call()
    if isinstance(result, httpx.Response):
        if result.is_error:  # the body is not parsed: the time is the server's answer, not our JSON parse
            ok(result)
    elif getattr(result, "is_error", False):
        raise SystemExit(f"tool call failed: {result.content}")


async def timed(call: Call, times: int, warmup: int = 5) -> list[float]:
    """Per-call wall time of ``times`` calls, after ``warmup`` untimed ones (caches, first connection)."""
    for _ in range(warmup):
        await checked(call)
    samples = []
    for _ in range(times):
        start = time.perf_counter()
        await checked(call)
        samples.append(time.perf_counter() - start)
    return samples


async def timed_pair(base: Call, case: Call, times: int) -> tuple[list[float], list[float]]:
    """Baseline and case called alternately, so a change in machine load hits both alike."""
    for _ in range(5):
        await checked(base)
        await checked(case)
    pair: tuple[list[float], list[float]] = ([], [])
    for _ in range(times):
        for call, samples in ((base, pair[0]), (case, pair[1])):
            start = time.perf_counter()
            await checked(call)
            samples.append(time.perf_counter() - start)
    return pair


Row = tuple[str, list[float], list[float]]  # label, baseline samples, samples


def table(rows: list[Row]) -> None:
    print(f"{'':<52} {'baseline':^19}   {'measured':^19}")
    print(f"{'operation':<52} {'p50':>9} {'p95':>9}   {'p50':>9} {'p95':>9}   {'p50 ratio':>9}")
    for label, base, samples in rows:
        cells = [pct(base, 50), pct(base, 95), pct(samples, 50), pct(samples, 95)]
        b50, b95, s50, s95 = (f"{c * 1000:6.2f} ms" for c in cells)
        print(f"{label:<52} {b50} {b95}   {s50} {s95}   {cells[2] / cells[0]:9.2f}")


async def bench(calls: int, data_dir: Path) -> None:
    started = time.perf_counter()
    db = data_dir / "backchannel.db"
    with running_server(data_dir) as url:
        human = httpx.AsyncClient(
            base_url=url,
            headers={SESSION_HEADER: read_or_create_secret(data_dir)},
            timeout=60,
            trust_env=False,
        )
        async with human:
            reg = ok(await human.post("/api/agents/register", json={"base": "bench", "instance_id": "jobs"}))
            for name in ("few", "board", "quiet", "busy"):
                ok(await human.post("/api/channels", json={"name": name}))
            print(f"server {url}, data dir {data_dir}; {calls} calls per figure after a warm-up\n")

            async with agent(url, reg["token"]) as mcp:

                def rest(path: str, **params: Any) -> Call:
                    return lambda: human.get(path, params=params)

                def read(newest: int, **where: Any) -> Call:
                    args = {**where, "since_id": newest - READ_LIMIT, "limit": READ_LIMIT}
                    return lambda: mcp.call_tool("chat_read", args)

                # The baseline board: 10 jobs, 9 in #few and one in #busy (it gets the big thread).
                s0 = time.perf_counter()
                big_job = (await create_jobs(human, "busy", 1))[0]
                few = await create_jobs(human, "few", BOARD_SMALL - 1, start=1)
                small_job = few[0]
                small_newest = seed_messages(db, "few", THREAD_SMALL, job_id=small_job)
                quiet_newest = seed_messages(db, "quiet", TIMELINE)
                busy_newest = seed_messages(db, "busy", TIMELINE)
                small_board = await timed(rest("/api/jobs"), calls)

                # Then 1,000 jobs, and 5,000 thread messages in #busy, newer than every channel
                # message there: the worst case for a timeline query that would have to skip them.
                big_newest = seed_messages(db, "busy", THREAD_BIG, job_id=big_job)
                await create_jobs(human, "board", BOARD_BIG - BOARD_SMALL, start=BOARD_SMALL)
                seeded = time.perf_counter() - s0
                jobs = ok(await human.get("/api/jobs"))
                counted = {j["id"]: j["message_count"] for j in jobs}
                if len(jobs) != BOARD_BIG or counted[big_job] != THREAD_BIG:
                    raise SystemExit(
                        f"seeding failed: {len(jobs)} jobs, job {big_job} has {counted[big_job]}"
                    )
                print(
                    f"seeded {len(jobs):,} jobs (through the API), a {THREAD_BIG:,}-message and a"
                    f" {THREAD_SMALL}-message thread, 2 x {TIMELINE:,} channel messages in {seeded:.1f} s\n"
                )

                big_board = await timed(rest("/api/jobs"), calls)
                rows: list[Row] = [
                    (f"GET /api/jobs: {len(jobs):,} jobs vs {BOARD_SMALL}", small_board, big_board)
                ]
                pairs: list[tuple[str, Call, Call]] = [
                    (
                        f"  same time: GET /api/jobs vs ?channel=few ({len(few)} jobs)",
                        rest("/api/jobs", channel="few"),
                        rest("/api/jobs"),
                    ),
                    (
                        f"GET /api/jobs/{{id}}/messages?limit={THREAD_PAGE}: {THREAD_BIG:,}"
                        f" vs {THREAD_SMALL}",
                        rest(f"/api/jobs/{small_job}/messages", limit=THREAD_PAGE),
                        rest(f"/api/jobs/{big_job}/messages", limit=THREAD_PAGE),
                    ),
                    (
                        f"MCP chat_read(job_id, since_id): {THREAD_BIG:,} vs {THREAD_SMALL}",
                        read(small_newest, job_id=small_job),
                        read(big_newest, job_id=big_job),
                    ),
                    (
                        f"GET /api/channels/{{name}}/messages?limit={PAGE}: timeline",
                        rest("/api/channels/quiet/messages", limit=PAGE),
                        rest("/api/channels/busy/messages", limit=PAGE),
                    ),
                    (
                        "MCP chat_read(channel, since_id): timeline",
                        read(quiet_newest, channel="quiet"),
                        read(busy_newest, channel="busy"),
                    ),
                ]
                for label, base, case in pairs:
                    rows.append((label, *await timed_pair(base, case, calls)))
                table(rows)
                print(
                    "\nbaseline: the same call on the 10-job board, on the 100-message thread, or on a"
                    " channel\nwith no thread messages (each timeline channel holds"
                    f" {TIMELINE:,} channel messages; the measured one\nalso {THREAD_BIG:,} thread"
                    " messages, all newer). Pairs are called alternately. Ratio 1.0 = no\nslowdown;"
                    f" the big board returns {len(jobs) // BOARD_SMALL}x the jobs, so its ratio is"
                    " the cost of that bigger answer.\nThe board's first row compares it with the"
                    " same board before the other jobs existed; the\nsecond, with a 9-job list"
                    " (the channel filter) called alternately with it."
                )
    print(f"\ntotal {time.perf_counter() - started:.0f} s")


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--quick", action="store_true", help="40 calls per figure instead of 200")
    parser.add_argument("--data-dir", type=Path, help="keep the database here instead of a temp dir")
    args = parser.parse_args()
    calls = 40 if args.quick else 200
    if args.data_dir is not None:
        args.data_dir.mkdir(parents=True, exist_ok=True)
        anyio.run(bench, calls, args.data_dir)
        return
    with tempfile.TemporaryDirectory(prefix="backchannel-bench-") as tmp:
        anyio.run(bench, calls, Path(tmp) / "data")


if __name__ == "__main__":
    main()
