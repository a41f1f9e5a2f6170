"""The schedule engine on an injected clock (issue 11): each due time fires once; runs missed while
the server was down fire once on start and the schedule continues from now; two engines on one
data dir racing the same due second (a restart, a second process) post one message; the fired
message routes like its creator's (wake-ups, the loop guard), also an agent's reminder to itself;
pause / resume; and a daily schedule across a DST change.

Apps are built with ``create_app`` and never served (no background engine), so the test owns the
clock; the real SQLite store, room, router and registry do the work.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import pytest

from backchannel.config import Settings
from backchannel.models import Agent, Message
from backchannel.server.app import create_app
from backchannel.server.deps import Services
from backchannel.store.schedules import Schedule
from tests.test_schedules import ny, wall

pytestmark = pytest.mark.anyio

T0 = 1_800_000_000.0  # 2027-01-15: an arbitrary fixed "now"


class Clock:
    def __init__(self, now: float) -> None:
        self.now = now

    def __call__(self) -> float:
        return self.now


@contextmanager
def room(data_dir: Path, clock: Clock) -> Iterator[Services]:
    """One server's services on ``data_dir`` (not served: the test ticks the engine itself)."""
    services: Services = create_app(Settings(host="127.0.0.1", port=0, data_dir=data_dir)).state.services
    services.schedules.clock = clock
    services.scheduler.clock = clock
    try:
        yield services
    finally:
        services.store.close()


async def agent(services: Services, base: str = "claude") -> Agent:
    return (await services.registry.register(base, f"{base}-1", None)).agent


async def schedule(services: Services, targets: list[str], by: Any = None, **kw: Any) -> Schedule:
    who = by if by is not None else await services.people.local()
    return await services.schedules.create(by=who, targets=targets, prompt=kw.pop("prompt", "check CI"), **kw)


async def fired_messages(services: Services, channel: str = "general") -> list[Message]:
    return [m for m in await services.store.history(channel, 200) if m.metadata.get("schedule_id")]


async def test_each_due_time_fires_once(tmp_path: Path) -> None:
    clock = Clock(T0)
    with room(tmp_path, clock) as services:
        claude = await agent(services)
        made = await schedule(services, [claude.name], spec="every 10 minutes")
        assert made.next_run == T0 + 600
        engine = services.scheduler
        clock.now = T0 + 599
        assert await engine.tick() == []
        clock.now = T0 + 600.4
        assert [s.id for s in await engine.tick()] == [made.id]
        assert await engine.tick() == [], "the same due time never fires twice"
        clock.now = T0 + 1199
        assert await engine.tick() == []
        clock.now = T0 + 1200.9
        assert len(await engine.tick()) == 1
        posted = await fired_messages(services)
        assert [m.text for m in posted] == [f"@{claude.name} check CI"] * 2
        after = await services.schedules.get(made.id)
        assert (after.run_count, after.last_run, after.next_run) == (2, T0 + 1200.9, T0 + 1800)


async def test_runs_missed_while_down_fire_once_on_start_then_continue_from_now(tmp_path: Path) -> None:
    clock = Clock(T0)
    with room(tmp_path, clock) as services:
        claude = await agent(services)
        every = await schedule(services, [claude.name], spec="every 10m", prompt="interval")
        daily = await schedule(services, [claude.name], spec="0 9 * * *", prompt="calendar")
    clock.now = T0 + 3 * 86_400 + 17  # three days down: 400+ ten-minute runs and 3 daily ones missed
    with room(tmp_path, clock) as services:
        fired = await services.scheduler.tick()
        assert sorted(s.id for s in fired) == [every.id, daily.id]
        assert sorted(m.text.split()[-1] for m in await fired_messages(services)) == ["calendar", "interval"]
        again = await services.schedules.get(every.id)
        assert again.next_run == clock.now + 600, "continues from now"
        next_daily = await services.schedules.get(daily.id)
        assert next_daily.next_run is not None and clock.now < next_daily.next_run <= clock.now + 86_400
        assert await services.scheduler.tick() == []
        clock.now += 600
        assert [s.id for s in await services.scheduler.tick()] == [every.id]
        assert len(await fired_messages(services)) == 3


async def test_two_engines_on_one_data_dir_racing_the_due_second_post_once(tmp_path: Path) -> None:
    clock = Clock(T0)
    with room(tmp_path, clock) as first, room(tmp_path, clock) as second:
        claude = await agent(first)
        made = await schedule(first, [claude.name], spec="every 1 minute")
        for run in range(1, 6):
            clock.now = T0 + 60 * run
            fired = await asyncio.gather(first.scheduler.tick(), second.scheduler.tick())
            assert sum(len(f) for f in fired) == 1, (run, fired)
        assert len(await fired_messages(first)) == 5
        assert (await second.schedules.get(made.id)).run_count == 5
    # A restart at the very second it fired: the new process sees the next due time, not this one.
    with room(tmp_path, clock) as restarted:
        assert await restarted.scheduler.tick() == []
        assert len(await fired_messages(restarted)) == 5


async def test_a_fired_message_routes_like_its_creators_and_wakes_the_targets(tmp_path: Path) -> None:
    clock = Clock(T0)
    with room(tmp_path, clock) as services:
        claude, codex = await agent(services, "claude"), await agent(services, "codex")
        person = await services.people.local()
        ours = await schedule(services, [claude.name, codex.name], spec="every 1h", prompt="triage issues")
        reminder = await schedule(services, [claude.name], by=claude, spec="every 2h", prompt="check CI")
        clock.now = T0 + 3600
        assert [s.id for s in await services.scheduler.tick()] == [ours.id]
        [message] = await fired_messages(services)
        assert (message.sender, message.kind, message.person_id) == (person.name, "human", person.id)
        assert message.text == f"@{claude.name} @{codex.name} triage issues"
        for target in (claude, codex):
            [wake] = await services.store.pending_triggers(target.id)
            assert wake.message_id == message.id
            assert f"Schedule #{ours.id} set by {person.name} fired in #general" in wake.prompt
        # An agent's reminder to itself fires as that agent and wakes it (its own mention counts).
        for target in (claude, codex):  # the wrappers took these wake-ups
            for wake in await services.store.pending_triggers(target.id):
                await services.rules.report(wake.id, target.id, "injected", "")
        clock.now = T0 + 7200
        fired = await services.scheduler.tick()
        assert sorted(s.id for s in fired) == [ours.id, reminder.id]
        mine = [m for m in await fired_messages(services) if m.metadata["schedule_id"] == reminder.id]
        assert [(m.sender, m.kind, m.text) for m in mine] == [
            (claude.name, "agent", f"@{claude.name} check CI")
        ]
        # One wake-up carries both mentions of claude (the person's second run and its reminder).
        [wake] = await services.store.pending_triggers(claude.id)
        assert mine[0].id in await services.store.trigger_message_ids(wake.id)
        # The agent's schedule obeys the loop guard like any agent message: past the hops, no wake.
        await services.room.create_channel("loop")
        await services.store.set_routing("loop", 99, False)
        before = len(await services.store.pending_triggers(codex.id))
        agentish = await schedule(
            services, [codex.name], by=claude, spec="every 1h", prompt="loop?", channel="loop"
        )
        clock.now = T0 + 5 * 3600
        await services.scheduler.tick()
        assert len(await services.store.pending_triggers(codex.id)) == before
        notes = [m.text for m in await services.store.history("loop", 50) if m.kind == "system"]
        assert any("Loop guard" in n for n in notes), notes
        assert (await services.schedules.get(agentish.id)).run_count == 1


async def test_one_shot_pause_and_resume(tmp_path: Path) -> None:
    clock = Clock(T0)
    with room(tmp_path, clock) as services:
        claude = await agent(services)
        once = await schedule(services, [claude.name], send_at="2027-01-15T09:00:00+00:00", prompt="once")
        assert (once.one_shot, once.spec, once.next_run) == (True, "", T0 + 3600)
        due = T0 + 3600
        clock.now = due
        assert len(await services.scheduler.tick()) == 1
        done = await services.schedules.get(once.id)
        assert (done.active, done.next_run, done.run_count) == (False, None, 1)
        clock.now = due + 86_400
        assert await services.scheduler.tick() == []
        # A paused recurring schedule skips its due times; resumed, it counts from now.
        every = await schedule(services, [claude.name], spec="every 1h", prompt="hourly")
        await services.schedules.update(every.id, active=False)
        clock.now += 5 * 3600
        assert await services.scheduler.tick() == []
        resumed = await services.schedules.update(every.id, active=True)
        assert resumed.next_run == clock.now + 3600
        assert await services.scheduler.tick() == []
        # A one-shot whose time passed while paused fires once on resume.
        later = await schedule(services, [claude.name], send_at=_iso(clock.now + 60), prompt="later")
        await services.schedules.update(later.id, active=False)
        clock.now += 120
        assert await services.scheduler.tick() == []
        await services.schedules.update(later.id, active=True)
        assert [s.id for s in await services.scheduler.tick()] == [later.id]
        assert await services.scheduler.tick() == []


def _iso(epoch: float) -> str:
    import datetime as dt

    return dt.datetime.fromtimestamp(epoch, tz=dt.UTC).isoformat()


async def test_daily_fires_at_local_time_across_a_dst_change(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("TZ", "America/New_York")
    time.tzset()
    try:
        clock = Clock(ny(2026, 3, 6, 12, 0))
        with room(tmp_path, clock) as services:
            claude = await agent(services)
            made = await schedule(services, [claude.name], spec="daily at 09:00")
            fired_at: list[tuple[int, int, int, int, int]] = []
            while clock.now < ny(2026, 3, 10, 12, 0):  # a 15-minute tick across the spring-forward night
                clock.now += 900
                fired_at += [wall(clock.now) for _ in await services.scheduler.tick()]
            assert fired_at == [(2026, 3, d, 9, 0) for d in (7, 8, 9, 10)]
            assert (await services.schedules.get(made.id)).run_count == 4
    finally:
        monkeypatch.undo()
        time.tzset()
