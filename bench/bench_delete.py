"""Edit/delete cost at 20k and 100k stored messages: the old inline scrub against the deferred one.

Removing a message's words from the bytes on disk means merging the full-text index (time linear
in its size) and emptying the WAL. The old code did that inside every edit's or delete's write
transaction; now the edit only records that a scrub is owed and a background run, coalesced and at
most once per few seconds, merges in small steps that let queued writes run between them. The
baseline ("inline") is measured in the same run: right after each delete it runs one full index
merge and the WAL checkpoint, the work the old transaction did.

This times the store in-process (no HTTP): the cost is all in the single SQLite writer, and every
API write (posts, reads that move cursors, edits) waits behind it. See bench/README.md.
"""

from __future__ import annotations

import argparse
import asyncio
import random
import shutil
import sqlite3
import statistics
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path

from backchannel.store import Store, scrub
from backchannel.store._db import truncate_wal

WORDS = [f"w{i:04x}" for i in range(6000)]  # a vocabulary big enough for a realistic index


@dataclass
class Run:
    delete_ms: list[float]  # per delete, as its caller waits for it
    posts: int = 0
    post_ms: list[float] | None = None
    seconds: float = 0.0
    scrubs: int = 0

    @property
    def throughput(self) -> float:
        return self.posts / self.seconds if self.seconds else 0.0


def pct(values: list[float], p: float) -> float:
    if not values:
        return 0.0
    if len(values) == 1:
        return values[0]
    return statistics.quantiles(values, n=100, method="inclusive")[int(p) - 1]


def seed(path: Path, count: int) -> None:
    """``count`` messages of 12 random words in #general, each with its logged event, as bulk inserts."""
    Store(path).close()  # schema and #general
    rng = random.Random(count)
    with sqlite3.connect(path) as conn:
        now = time.time()
        for start in range(0, count, 10_000):
            rows = [(" ".join(rng.choices(WORDS, k=12)), now) for _ in range(min(10_000, count - start))]
            conn.executemany(
                "INSERT INTO messages(channel_id, sender, kind, text, created_at)"
                " VALUES (1, 'ben', 'human', ?, ?)",
                rows,
            )
        conn.execute(
            "INSERT INTO events(kind, payload, created_at, message_id) SELECT 'message',"
            " json_object('message', json_object('id', id, 'text', text)), created_at, id FROM messages"
        )
    with sqlite3.connect(path) as conn:
        conn.execute("PRAGMA wal_checkpoint(TRUNCATE)")


async def measure(path: Path, count: int, mode: str, deletes: int, load_seconds: float) -> Run:
    """``mode``: "inline" (scrub inside each delete, the old path), "deferred" (now), "none" (no deletes)."""
    store = Store(path)
    if mode == "inline":
        store.scrubber.delay = 1e9  # only the explicit call below scrubs
    rng = random.Random(7)
    targets = rng.sample(range(1, count + 1), deletes + 400)

    inline_merges = [0]

    async def remove(message_id: int) -> float:
        started = time.perf_counter()
        await store.delete_message(message_id)
        if mode == "inline":  # what the old delete transaction did: one full merge, then the checkpoint
            await store.db.write(scrub.merge_index)
            await asyncio.wrap_future(store.db.on_writer(truncate_wal))
            await store.db.write(lambda c: c.execute("DELETE FROM scrub_owed"))
            inline_merges[0] += 1
        return (time.perf_counter() - started) * 1000

    run = Run(delete_ms=[])
    try:
        if mode != "none":
            # Sequential deletes, nothing else writing: what one delete costs its caller.
            for message_id in targets[:deletes]:
                run.delete_ms.append(await remove(message_id))
        # Write throughput while someone deletes 5 messages a second: 4 posters as fast as they can.
        stop = time.perf_counter() + load_seconds
        post_ms: list[float] = []
        queue = targets[deletes:]

        async def poster(n: int) -> None:
            i = 0
            while time.perf_counter() < stop:
                started = time.perf_counter()
                await store.post(channel="general", sender=f"p{n}", kind="human", text=f"load {n} {i}")
                post_ms.append((time.perf_counter() - started) * 1000)
                i += 1

        async def deleter() -> None:
            while time.perf_counter() < stop and queue and mode != "none":
                await remove(queue.pop())
                await asyncio.sleep(0.2)

        scrubs_before = store.scrubber.runs + inline_merges[0]
        started = time.perf_counter()
        await asyncio.gather(*(poster(n) for n in range(4)), deleter())
        run.seconds = time.perf_counter() - started
        run.posts, run.post_ms = len(post_ms), post_ms
        run.scrubs = store.scrubber.runs + inline_merges[0] - scrubs_before
    finally:
        store.close()
    return run


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="2k / 20k messages, shorter load: a smoke run")
    args = parser.parse_args()
    sizes = [2_000, 20_000] if args.quick else [20_000, 100_000]
    deletes, load_seconds = (5, 3.0) if args.quick else (15, 12.0)
    print(f"SQLite {sqlite3.sqlite_version}; {deletes} sequential deletes, then {load_seconds:.0f} s of")
    print("4 concurrent posters while one client deletes a message every 0.2 s\n")
    with tempfile.TemporaryDirectory(prefix="bc-bench-delete-") as tmp:
        for count in sizes:
            base = Path(tmp) / f"seed-{count}" / "bc.db"
            seeded = time.perf_counter()
            seed(base, count)
            print(f"{count:,} messages (seeded in {time.perf_counter() - seeded:.1f} s)")
            results: dict[str, Run] = {}
            for mode in ("inline", "deferred", "none"):
                path = Path(tmp) / f"{mode}-{count}" / "bc.db"
                path.parent.mkdir(mode=0o700)
                shutil.copy(base, path)
                results[mode] = asyncio.run(measure(path, count, mode, deletes, load_seconds))
            for mode, label in (("none", "no deletes"), ("inline", "inline (old)"), ("deferred", "deferred")):
                r = results[mode]
                deleted = (
                    f"delete p50 {pct(r.delete_ms, 50):8.2f} ms p99 {pct(r.delete_ms, 99):8.2f} ms"
                    if r.delete_ms
                    else " " * 40
                )
                posts = r.post_ms or []
                print(
                    f"  {label:13} {deleted} | posts {r.throughput:6.1f}/s p50 {pct(posts, 50):6.2f} ms"
                    f" p99 {pct(posts, 99):7.2f} ms max {max(posts, default=0):7.2f} ms | scrubs {r.scrubs}"
                )
            old, new, idle = results["inline"], results["deferred"], results["none"]
            ratios = {
                "delete p50 old:new": pct(old.delete_ms, 50) / max(pct(new.delete_ms, 50), 1e-9),
                "throughput new:old": new.throughput / max(old.throughput, 1e-9),
                "throughput new:no-deletes": new.throughput / max(idle.throughput, 1e-9),
                "post p99 old:new": pct(old.post_ms or [], 99) / max(pct(new.post_ms or [], 99), 1e-9),
            }
            print("  ratios  " + "   ".join(f"{k} {v:.2f}" for k, v in ratios.items()) + "\n")


if __name__ == "__main__":
    main()
