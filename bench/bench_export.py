"""Export memory at 100,000 messages: the streaming export against a buffered one, in the same run.

The streaming export (``backchannel.archive.stream_export``, what ``GET /api/export`` sends) writes
the zip on a worker thread through a small bounded pipe; the reader here drops the chunks as an
HTTP client would. The baseline builds the same archive in memory first (``write_archive`` into a
``BytesIO``), what an export that returns one blob would do. Memory is the process's resident set,
sampled every millisecond while each export runs; the figure is the peak rise above the resident
set just before it started. Read the ratios: streaming / buffered (well under 1), and streaming at
100,000 / at 1,000 messages (near 1: the streaming peak does not grow with the history; what rise
there is comes from SQLite's page cache, capped). Not a test (see bench/README.md).
"""

from __future__ import annotations

import argparse
import gc
import io
import json
import os
import random
import shutil
import tempfile
import threading
import time
from collections.abc import Callable
from pathlib import Path

from backchannel.archive import MAX_LOCAL_BYTES, Archives, stream_export, write_archive
from backchannel.store import Store

PAGE = os.sysconf("SC_PAGE_SIZE")


def rss() -> int:
    with open("/proc/self/statm") as fh:
        return int(fh.read().split()[1]) * PAGE


def seed(store: Store, count: int) -> None:
    """Bulk rows straight into SQLite (the FTS triggers still fire): 200-character texts of random
    words, so the archive compresses like real chat rather than to nothing."""
    rng = random.Random(count)
    words = [f"{rng.getrandbits(40):x}" for _ in range(5000)]
    meta = json.dumps({})

    def text() -> str:
        return " ".join(rng.choices(words, k=20))[:200]

    def fill(conn: object) -> None:
        rows = [(1, "ann", "human", "chat", text(), "[]", meta, time.time()) for _ in range(count)]
        conn.executemany(  # type: ignore[attr-defined]
            "INSERT INTO messages(channel_id, sender, kind, type, text, attachments, metadata, created_at)"
            " VALUES (?,?,?,?,?,?,?,?)",
            rows,
        )

    store.db.write_sync(fill)


def peak_rise(run: Callable[[], int]) -> tuple[int, int]:
    """(peak resident-set rise in bytes while ``run`` ran, what it returned)."""
    gc.collect()
    base = rss()
    peak = base
    done = threading.Event()

    def sample() -> None:
        nonlocal peak
        while not done.is_set():
            peak = max(peak, rss())
            time.sleep(0.001)

    sampler = threading.Thread(target=sample, daemon=True)
    sampler.start()
    try:
        result = run()
    finally:
        done.set()
        sampler.join()
    return max(0, peak - base), result


def import_stall(archive: bytes, root: Path) -> tuple[float, float, int]:
    """Import ``archive`` into an empty room while a heartbeat-sized write is issued every 50 ms;
    (import seconds, the longest wait of one heartbeat write, heartbeats done). The import holds
    the room's one writer for its whole merge (review finding 6): this is the pause agents see."""
    store = Store(root / "import" / "backchannel.db")
    archives = Archives(store, root / "import" / "uploads", 64, 10 * 2**20)
    waits: list[float] = []
    done = threading.Event()

    def heartbeat() -> None:
        while not done.is_set():
            start = time.perf_counter()
            store.db.write_sync(lambda c: c.execute("UPDATE settings SET value = value WHERE key = 'x'"))
            waits.append(time.perf_counter() - start)
            done.wait(0.05)

    beater = threading.Thread(target=heartbeat, daemon=True)
    beater.start()
    start = time.perf_counter()
    archives.import_sync(io.BytesIO(archive), max_bytes=MAX_LOCAL_BYTES)
    took = time.perf_counter() - start
    done.set()
    beater.join()
    store.close()
    return took, max(waits), len(waits)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--messages", type=int, default=100_000)
    args = parser.parse_args()
    root = Path(tempfile.mkdtemp(prefix="bc-bench-export-"))
    try:
        store = Store(root / "data" / "backchannel.db")
        uploads = root / "data" / "uploads"
        small = max(1, args.messages // 100)
        seed(store, small)

        def streamed() -> int:
            return sum(len(chunk) for chunk in stream_export(store, uploads, None))

        def buffered() -> int:
            out = io.BytesIO()
            store.db.read_sync(lambda c: write_archive(c, out, uploads_dir=uploads))
            return len(out.getvalue())

        streamed()  # warm up: imports, the reader connection, SQLite's page cache
        rise_small, _ = peak_rise(streamed)
        seed(store, args.messages - small)
        streamed()
        rise_stream, size = peak_rise(streamed)
        rise_buffer, _ = peak_rise(buffered)
        out = io.BytesIO()
        store.db.read_sync(lambda c: write_archive(c, out, uploads_dir=uploads))
        store.close()
        took, longest, beats = import_stall(out.getvalue(), root)
    finally:
        shutil.rmtree(root, ignore_errors=True)
    mb = 1024 * 1024
    print(f"archive of {args.messages:,} messages: {size / mb:.1f} MB zipped")
    print(f"streaming export, {small:,} messages:       peak RSS rise {rise_small / mb:6.1f} MB")
    print(f"streaming export, {args.messages:,} messages:  peak RSS rise {rise_stream / mb:6.1f} MB")
    print(f"buffered export (baseline), same room: peak RSS rise {rise_buffer / mb:6.1f} MB")
    print(f"ratio streaming / buffered: {rise_stream / max(rise_buffer, 1):.2f}")
    print(
        f"ratio streaming {args.messages:,} / {small:,} messages: {rise_stream / max(rise_small, PAGE):.2f}"
    )
    print(
        f"import of the same archive: {took:.1f} s; longest wait of a concurrent heartbeat write"
        f" {longest:.2f} s ({beats} heartbeats)"
    )


if __name__ == "__main__":
    main()
