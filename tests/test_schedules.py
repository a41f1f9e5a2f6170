"""Schedules (issue 11): every spec form and its errors, due times in local time across DST changes
(a fixed TZ and an injected "now"), and the REST routes against one real server shared by the
module: validation, pause / resume, a one-shot fired by the server's own engine, events, and a
channel's rename carrying its schedules and its deletion removing them.
"""

from __future__ import annotations

import dataclasses
import datetime as dt
import itertools
import time
from collections.abc import AsyncIterator, Iterator
from typing import Any
from zoneinfo import ZoneInfo

import anyio
import httpx
import pytest

from backchannel.errors import InvalidInput
from backchannel.schedule_spec import first_run, next_run, parse, parse_send_at
from tests.conftest import RunningServer, module_server, ok, refused, register

pytestmark = pytest.mark.anyio

NY = ZoneInfo("America/New_York")
FORMS = ("every N minutes|hours|days", "daily at HH:MM", "5-field cron", "send_at")


def ny(*args: int) -> float:
    """An instant given as New York wall-clock time (fold=0: the first of a repeated hour)."""
    return dt.datetime(*args, tzinfo=NY).timestamp()  # type: ignore[misc]


def wall(epoch: float) -> tuple[int, int, int, int, int]:
    local = dt.datetime.fromtimestamp(epoch, tz=NY)
    return local.year, local.month, local.day, local.hour, local.minute


@pytest.fixture
def new_york(monkeypatch: pytest.MonkeyPatch) -> Iterator[None]:
    """The server's local zone is New York for this test (DST: 2026-03-08 and 2026-11-01)."""
    monkeypatch.setenv("TZ", "America/New_York")
    time.tzset()
    yield
    monkeypatch.undo()
    time.tzset()


# -- spec forms ----------------------------------------------------------------------------------
@pytest.mark.parametrize(
    ("typed", "canonical", "seconds"),
    [
        ("every 5 minutes", "every 5 minutes", 300),
        ("Every  1 minute", "every 1 minute", 60),
        ("every 2 hours", "every 2 hours", 7200),
        ("every 1 day", "every 1 day", 86400),
        ("every 3 days", "every 3 days", 3 * 86400),
        ("every 30m", "every 30 minutes", 1800),
        ("every 2h", "every 2 hours", 7200),
        ("every 1d", "every 1 day", 86400),
        ("every 90 min", "every 90 minutes", 5400),
        ("every 4hrs", "every 4 hours", 14400),
        ("every hour", "every 1 hour", 3600),
    ],
)
def test_interval_forms(typed: str, canonical: str, seconds: int) -> None:
    spec = parse(typed)
    assert (spec.kind, spec.text, spec.seconds) == ("interval", canonical, seconds)
    assert first_run(spec, 1000.0) == 1000.0 + seconds


def test_daily_and_cron_forms() -> None:
    daily = parse("daily at 9:05")
    assert (daily.kind, daily.text, daily.cron) == ("daily", "daily at 09:05", "5 9 * * *")
    cron = parse("0  9 * * 1-5")
    assert (cron.kind, cron.text) == ("cron", "0 9 * * 1-5")
    assert parse("*/15 * * * *").text == "*/15 * * * *"


@pytest.mark.parametrize(
    ("typed", "words"),
    [
        ("", "spec is empty"),
        ("tomorrow", "invalid spec 'tomorrow'"),
        ("every 30s", "invalid spec 'every 30s'"),
        ("every 0 minutes", "minimum is 60 seconds"),
        ("every 0d", "minimum is 60 seconds"),
        ("every 400 days", "maximum is 366 days"),
        ("every fortnight", "invalid spec"),
        ("daily at 24:00", "not a time of day"),
        ("daily at 9", "invalid spec"),
        ("daily 09:00", "invalid spec"),
        ("0 9 * *", "invalid spec"),
        ("0 0 9 * * *", "invalid spec"),
        ("61 * * * *", "invalid cron expression"),
        ("0 0 30 2 *", "never matches"),
        ("x" * 201, "longer than 200"),
    ],
)
def test_invalid_specs_name_every_accepted_form(typed: str, words: str) -> None:
    with pytest.raises(InvalidInput) as caught:
        parse(typed)
    assert words in caught.value.detail
    assert all(form in caught.value.detail for form in FORMS), caught.value.detail


def test_send_at_needs_an_offset_and_a_future_time() -> None:
    now = dt.datetime(2026, 12, 2, 9, 0, tzinfo=dt.UTC).timestamp()
    assert parse_send_at("2026-12-02T10:00:00+01:00", now) == now
    assert parse_send_at("2026-12-02T09:30Z", now) == now + 1800
    assert parse_send_at("in 10 minutes", now) == now + 600
    assert parse_send_at("in 2h", now) == now + 7200
    for value, words in [
        ("2026-12-02T10:00:00", "has no offset"),
        ("next tuesday", "is not ISO 8601"),
        ("2026-12-02T08:00:00Z", "is in the past"),
        ("2040-01-01T00:00:00Z", "more than 10 years ahead"),
        ("", "ISO 8601"),
        ("in 0 minutes", "1 minute to 10 years from now"),
        ("in 5 fortnights", "is not ISO 8601"),
    ]:
        with pytest.raises(InvalidInput, match=words):
            parse_send_at(value, now)


# -- local time and DST (injected now, fixed TZ) ----------------------------------------------------
@pytest.mark.usefixtures("new_york")
def test_daily_keeps_its_local_time_across_spring_forward() -> None:
    spec = parse("daily at 09:00")
    first = first_run(spec, ny(2026, 3, 7, 10, 0))
    assert first == ny(2026, 3, 8, 9, 0)  # 09:00 EDT: 23 hours after 09:00 EST the day before
    assert first - ny(2026, 3, 7, 9, 0) == 23 * 3600
    assert next_run(spec, first, first + 1) == ny(2026, 3, 9, 9, 0)


@pytest.mark.usefixtures("new_york")
def test_a_time_in_the_skipped_hour_fires_once_just_after_it() -> None:
    spec = parse("daily at 02:30")
    first = first_run(spec, ny(2026, 3, 7, 3, 0))
    assert wall(first) == (2026, 3, 8, 3, 30)  # 02:30 does not exist that night: 03:30 EDT
    assert wall(next_run(spec, first, first + 1)) == (2026, 3, 9, 2, 30)


@pytest.mark.usefixtures("new_york")
def test_the_repeated_hour_fires_once_when_clocks_go_back() -> None:
    spec = parse("30 1 * * *")
    first = first_run(spec, ny(2026, 10, 31, 12, 0))
    assert first == ny(2026, 11, 1, 1, 30)  # the first 01:30 (EDT)
    second = next_run(spec, first, first + 1)
    assert wall(second) == (2026, 11, 2, 1, 30), "the second 01:30 (EST) that night is not a new run"
    # Every 30 minutes through the night: each local time once, no stall, no burst.
    half_hourly = parse("*/30 * * * *")
    due, fired = ny(2026, 11, 1, 0, 0), []
    while due < ny(2026, 11, 1, 4, 0):
        fired.append(wall(due)[3:])
        due = next_run(half_hourly, due, due)
    assert fired == [(0, 0), (0, 30), (1, 0), (1, 30), (2, 0), (2, 30), (3, 0), (3, 30)]


@pytest.mark.usefixtures("new_york")
def test_iso_times_carry_the_local_offset_of_their_instant() -> None:
    from backchannel.schedule_spec import iso

    assert iso(ny(2026, 3, 7, 9, 0)) == "2026-03-07T09:00:00-05:00"
    assert iso(ny(2026, 3, 8, 9, 0)) == "2026-03-08T09:00:00-04:00"
    assert iso(None) is None


# -- REST ----------------------------------------------------------------------------------------
@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[RunningServer]:
    with module_server(tmp_path_factory, "schedules") as running:
        yield running


_instances = itertools.count()


@pytest.fixture
async def human(server: RunningServer) -> AsyncIterator[httpx.AsyncClient]:
    """A person's client; every schedule a test made is deleted after it (the limit is room-wide)."""
    async with server.human() as client:
        yield client
        for schedule in ok(await client.get("/api/schedules")):
            assert (await client.delete(f"/api/schedules/{schedule['id']}")).status_code == 204


@pytest.fixture
async def agent(server: RunningServer) -> dict[str, Any]:
    return await register(server.url, "claude", f"sched-{next(_instances)}")


async def last_seq(human: httpx.AsyncClient) -> int:
    return ok(await human.get("/api/events", params={"since": 0, "limit": 1}))["last_seq"]


async def schedule_events(human: httpx.AsyncClient, seq: int) -> list[dict[str, Any]]:
    got = ok(await human.get("/api/events", params={"since": seq}))["events"]
    return [e for e in got if e["kind"] == "schedule"]


SHAPE = {"id", "uid", "prompt", "targets", "channel", "spec", "one_shot", "active", "next_run"}
SHAPE |= {"last_run", "run_count", "created_by", "created_at"}


async def test_create_each_form_list_and_events(human: httpx.AsyncClient, agent: dict[str, Any]) -> None:
    seq = await last_seq(human)
    name = agent["name"]
    before = time.time()
    every = ok(
        await human.post(
            "/api/schedules", json={"prompt": " check CI ", "targets": [f"@{name}"], "spec": "every 30m"}
        ),
        201,
    )
    assert set(every) == SHAPE
    assert (every["prompt"], every["targets"], every["channel"], every["spec"]) == (
        "check CI",
        [name],
        "general",
        "every 30 minutes",
    )
    assert every["active"] is True and every["one_shot"] is False and every["run_count"] == 0
    assert every["last_run"] is None and every["created_by"]
    next_at = dt.datetime.fromisoformat(every["next_run"])
    assert next_at.utcoffset() is not None and before + 1800 - 2 <= next_at.timestamp() <= time.time() + 1800
    daily = ok(
        await human.post(
            "/api/schedules", json={"prompt": "triage", "targets": [name], "spec": "daily at 9:00"}
        ),
        201,
    )
    assert daily["spec"] == "daily at 09:00"
    cron = ok(
        await human.post(
            "/api/schedules",
            json={"prompt": "standup", "targets": [name], "spec": "0 9 * * 1-5", "one_shot": True},
        ),
        201,
    )
    assert cron["one_shot"] is True and cron["spec"] == "0 9 * * 1-5"
    at = dt.datetime.now(dt.UTC).replace(microsecond=0) + dt.timedelta(hours=2)
    once = ok(
        await human.post(
            "/api/schedules", json={"prompt": "deploy", "targets": [name], "send_at": at.isoformat()}
        ),
        201,
    )
    assert once["spec"] == "" and once["one_shot"] is True
    assert dt.datetime.fromisoformat(once["next_run"]) == at
    listed = ok(await human.get("/api/schedules"))
    assert [s["id"] for s in listed] == [every["id"], daily["id"], cron["id"], once["id"]]
    assert ok(await human.get("/api/schedules", params={"channel": "general"})) == listed
    logged = await schedule_events(human, seq)
    assert [(e["action"], e["schedule"]["id"]) for e in logged] == [
        ("created", s["id"]) for s in (every, daily, cron, once)
    ]
    assert logged[0]["schedule"] == every


async def test_bad_input_is_a_clear_4xx(
    server: RunningServer, human: httpx.AsyncClient, agent: dict[str, Any], monkeypatch: pytest.MonkeyPatch
) -> None:
    name = agent["name"]
    base = {"prompt": "p", "targets": [name], "spec": "every 1h"}
    cases: list[tuple[dict[str, Any], int, str]] = [
        ({**base, "spec": "every 10s"}, 400, "accepted forms: 'every N minutes|hours|days'"),
        ({**base, "spec": "sometimes"}, 400, "5-field cron"),
        ({"prompt": "p", "targets": [name]}, 400, "spec is required unless send_at is given"),
        ({**base, "send_at": "2030-01-01T00:00Z"}, 400, "not both"),
        ({"prompt": "p", "targets": [name], "send_at": "2030-01-01T00:00"}, 400, "has no offset"),
        ({"prompt": "p", "targets": [name], "send_at": "2020-01-01T00:00Z"}, 400, "in the past"),
        ({**base, "prompt": "  "}, 400, "prompt is empty"),
        ({**base, "prompt": "x" * 1001}, 400, "prompt is 1001 characters; the limit is 1000"),
        ({**base, "targets": []}, 400, "targets is empty"),
        ({**base, "targets": ["nobody", name]}, 400, "no agent named @nobody"),
        ({**base, "targets": [f"a{i}" for i in range(11)]}, 400, "11 targets; the limit is 10"),
        ({**base, "channel": "nowhere"}, 404, "no channel #nowhere"),
        ({**base, "channel": "Bad Name!"}, 400, "invalid channel name"),
    ]
    for body, status, words in cases:
        refused(await human.post("/api/schedules", json=body), status, words)
    made = ok(await human.post("/api/schedules", json=base), 201)
    refused(
        await human.patch(f"/api/schedules/{made['id']}", json={"spec": "every 5s"}), 400, "accepted forms"
    )
    refused(await human.patch("/api/schedules/999999", json={"active": False}), 404, "no schedule 999999")
    refused(await human.delete("/api/schedules/999999"), 404, "no schedule 999999")
    count = len(ok(await human.get("/api/schedules")))
    room = server.app.state.services.room  # the limit is a setting: this server's, lowered to count + 1
    monkeypatch.setattr(room, "settings", dataclasses.replace(room.settings, max_schedules=count + 1))
    ok(await human.post("/api/schedules", json=base), 201)
    refused(await human.post("/api/schedules", json=base), 409, f"at most {count + 1} schedules")
    # Agents use chat_schedule; their token is no person's credential.
    async with httpx.AsyncClient(
        base_url=server.url, headers={"Authorization": f"Bearer {agent['token']}"}
    ) as bot:
        assert (await bot.post("/api/schedules", json=base)).status_code in (401, 403)
        assert (await bot.get("/api/schedules")).status_code in (401, 403)


async def test_pause_resume_and_edit(human: httpx.AsyncClient, agent: dict[str, Any]) -> None:
    name = agent["name"]
    made = ok(
        await human.post("/api/schedules", json={"prompt": "p", "targets": [name], "spec": "every 2h"}), 201
    )
    seq = await last_seq(human)
    paused = ok(await human.patch(f"/api/schedules/{made['id']}", json={"active": False}))
    assert paused["active"] is False and paused["next_run"] == made["next_run"]
    resumed = ok(await human.patch(f"/api/schedules/{made['id']}", json={"active": True}))
    assert resumed["active"] is True and resumed["next_run"] >= made["next_run"]
    edited = ok(
        await human.patch(
            f"/api/schedules/{made['id']}",
            json={"prompt": "new words", "spec": "every 1 day", "targets": [name]},
        )
    )
    assert (edited["prompt"], edited["spec"]) == ("new words", "every 1 day")
    assert dt.datetime.fromisoformat(edited["next_run"]).timestamp() > time.time() + 86400 - 60
    moved = ok(
        await human.patch(f"/api/schedules/{made['id']}", json={"send_at": "2030-01-01T09:00:00+00:00"})
    )
    assert (moved["spec"], moved["one_shot"]) == ("", True)
    again = ok(await human.patch(f"/api/schedules/{made['id']}", json={"spec": "every 3h"}))
    assert (again["spec"], again["one_shot"], again["active"]) == ("every 3 hours", False, True)
    assert [e["action"] for e in await schedule_events(human, seq)] == ["updated"] * 5


async def wait_for(check: Any, timeout: float = 6.0) -> Any:
    """Poll ``check`` (async, returns something truthy when done) every 50 ms up to ``timeout``."""
    deadline = time.monotonic() + timeout
    while True:
        found = await check()
        if found or time.monotonic() > deadline:
            return found
        await anyio.sleep(0.05)


async def test_a_one_shot_fires_once_within_seconds_as_its_creator(
    server: RunningServer, human: httpx.AsyncClient, agent: dict[str, Any]
) -> None:
    """The server's own engine (real clock): due in a moment, posted and routed within 5 s."""
    name = agent["name"]
    ok(await human.post("/api/channels", json={"name": "soon"}), 201)
    at = dt.datetime.now(dt.UTC) + dt.timedelta(seconds=0.2)
    made = ok(
        await human.post(
            "/api/schedules",
            json={"prompt": "ping once", "targets": [name], "channel": "soon", "send_at": at.isoformat()},
        ),
        201,
    )
    seq = await last_seq(human)

    async def fired() -> list[dict[str, Any]]:
        got = ok(await human.get("/api/channels/soon/messages"))["messages"]
        return [m for m in got if "ping once" in m["text"]]

    messages = await wait_for(fired)
    assert len(messages) == 1, messages
    message = messages[0]
    assert message["text"] == f"@{name} ping once" and message["kind"] == "human"
    assert message["created_at"] - at.timestamp() < 5
    done = ok(await human.get("/api/schedules", params={"channel": "soon"}))[0]
    assert (done["id"], done["active"], done["next_run"], done["run_count"]) == (made["id"], False, None, 1)
    assert done["last_run"] is not None
    kinds = [
        (e["kind"], e.get("action"))
        for e in ok(await human.get("/api/events", params={"since": seq}))["events"]
    ]
    assert ("schedule", "fired") in kinds and ("message", None) in kinds
    refused(await human.patch(f"/api/schedules/{made['id']}", json={"active": True}), 400, "already fired")
    await anyio.sleep(1.1)  # another tick of the engine: still once
    assert len(await fired()) == 1
    assert (await human.delete("/api/channels/soon")).status_code == 204


async def test_rename_carries_a_schedule_and_delete_removes_it(
    human: httpx.AsyncClient, agent: dict[str, Any]
) -> None:
    name = agent["name"]
    ok(await human.post("/api/channels", json={"name": "ops"}), 201)
    made = ok(
        await human.post(
            "/api/schedules",
            json={"prompt": "secret plan", "targets": [name], "channel": "ops", "spec": "every 1h"},
        ),
        201,
    )
    seq = await last_seq(human)
    ok(await human.patch("/api/channels/ops", json={"name": "ops2"}))
    carried = ok(await human.get("/api/schedules", params={"channel": "ops2"}))
    assert [(s["id"], s["channel"], s["uid"]) for s in carried] == [(made["id"], "ops2", made["uid"])]
    updated = await schedule_events(human, seq)
    assert [(e["action"], e["schedule"]["channel"]) for e in updated] == [("updated", "ops2")]
    assert (await human.delete("/api/channels/ops2")).status_code == 204
    assert all(s["id"] != made["id"] for s in ok(await human.get("/api/schedules")))
    log = ok(await human.get("/api/events", params={"since": 0}))["events"]
    assert "secret plan" not in str(log), "a deleted channel's schedules leave no text in the log"
    assert any(
        e["kind"] == "schedule"
        and e["action"] == "deleted"
        and e["schedule"] == {"id": made["id"], "channel": "ops2"}
        for e in log
    )


async def test_delete_purges_the_logged_prompt(human: httpx.AsyncClient, agent: dict[str, Any]) -> None:
    made = ok(
        await human.post(
            "/api/schedules", json={"prompt": "forget me", "targets": [agent["name"]], "spec": "every 1h"}
        ),
        201,
    )
    seq = await last_seq(human)
    assert (await human.delete(f"/api/schedules/{made['id']}")).status_code == 204
    assert [(e["action"], e["schedule"]) for e in await schedule_events(human, seq)] == [
        ("deleted", {"id": made["id"], "channel": "general"})
    ]
    assert "forget me" not in str(ok(await human.get("/api/events", params={"since": 0}))["events"])
