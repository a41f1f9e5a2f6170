"""The schedule engine: a background task that fires every due schedule within a second or so.

It only decides *when*; ``Schedules.fire`` posts and advances each schedule in one transaction
with a compare-and-set on its due time, so a tick that races another engine on the same database
(a restart at the due second, a second process) or a person's edit fires nothing twice. The first
tick runs at start-up: a schedule that came due while the server was down fires once, and its next
run is counted from now. The clock is injectable, so tests move time instead of sleeping.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Callable

from backchannel.schedules import Schedules
from backchannel.store.schedules import Schedule

logger = logging.getLogger("backchannel.scheduler")

TICK = 1.0  # seconds between checks: a schedule fires within about a second of its due time


class Scheduler:
    def __init__(
        self, schedules: Schedules, *, clock: Callable[[], float] = time.time, interval: float = TICK
    ) -> None:
        self.schedules = schedules
        self.clock = clock
        self.interval = interval

    async def tick(self) -> list[Schedule]:
        """Fire every schedule due by the clock's now, each at most once; returns those fired."""
        now = self.clock()
        fired: list[Schedule] = []
        for schedule in await self.schedules.due(now):
            try:
                if await self.schedules.fire(schedule, now):
                    fired.append(schedule)
            except Exception:  # one broken schedule must not stop the others
                logger.exception("schedule %s failed to fire", schedule.id)
        return fired

    async def run(self) -> None:
        """Tick at start-up (catch-up), then every ``interval`` seconds until cancelled."""
        while True:
            try:
                await self.tick()
            except Exception:  # e.g. the database busy for a moment: try again next tick
                logger.exception("scheduler tick failed")
            await asyncio.sleep(self.interval)
