"""Issue 14, cold start: ``serve`` answers MCP before FastAPI is even imported (``server/boot.py``).

In process, the web app's factory is held on a ``threading.Event``: MCP must be answered meanwhile,
REST must wait and then be answered; a failing factory must mean a JSON ``503`` and a log line, with
MCP still serving. Then the real ``python -m backchannel serve``: an MCP call right after the URL is
printed, a REST call, and a shutdown that an open ``/sse`` stream does not hold up.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import signal
import threading
import time
from collections.abc import AsyncGenerator, Callable
from typing import Any

import httpx
import pytest
from starlette.types import ASGIApp, Message

from backchannel.config import Settings
from backchannel.server.boot import BootApp, build_web_app
from backchannel.services import Services
from tests.conftest import ServerProcess, mcp_client, register, text_of

pytestmark = pytest.mark.anyio
MCP = {"Content-Type": "application/json", "Accept": "application/json, text/event-stream"}


class HeldFactory:
    """The real factory, run only once the test releases it; counts its calls."""

    def __init__(self) -> None:
        self.release = threading.Event()
        self.calls = 0

    def __call__(self, settings: Settings, services: Services) -> ASGIApp:
        self.calls += 1
        assert self.release.wait(10), "the test never released the build"
        return build_web_app(settings, services)


@contextlib.asynccontextmanager
async def lifespan(app: BootApp) -> AsyncGenerator[None, None]:
    """Drive the ASGI lifespan as uvicorn does: startup, then (at exit) shutdown."""
    inbox: asyncio.Queue[Message] = asyncio.Queue()
    outbox: asyncio.Queue[Message] = asyncio.Queue()
    task = asyncio.ensure_future(app({"type": "lifespan", "asgi": {"version": "3.0"}}, inbox.get, outbox.put))
    await inbox.put({"type": "lifespan.startup"})
    assert (await asyncio.wait_for(outbox.get(), 10))["type"] == "lifespan.startup.complete"
    try:
        yield
    finally:
        await inbox.put({"type": "lifespan.shutdown"})
        assert (await asyncio.wait_for(outbox.get(), 10))["type"] == "lifespan.shutdown.complete"
        await asyncio.wait_for(task, 10)


def client(app: BootApp) -> httpx.AsyncClient:
    return httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://127.0.0.1", timeout=10)


def rpc(method: str, params: dict[str, Any], id_: int) -> dict[str, Any]:
    return {"jsonrpc": "2.0", "id": id_, "method": method, "params": params}


async def test_mcp_is_answered_while_the_web_app_is_built_and_rest_waits_for_it(
    settings: Settings, monkeypatch: pytest.MonkeyPatch
) -> None:
    factory = HeldFactory()
    app = BootApp(settings, factory=factory)
    started: list[str] = []
    sweeper, engine = app.services.registry.run_sweeper, app.services.scheduler.run

    async def counted_sweeper() -> None:
        started.append("sweeper")
        await sweeper()

    async def counted_engine() -> None:
        started.append("scheduler")
        await engine()

    monkeypatch.setattr(app.services.registry, "run_sweeper", counted_sweeper)
    monkeypatch.setattr(app.services.scheduler, "run", counted_engine)
    agent = await app.services.registry.register("claude", "boot-1", None)
    auth = {**MCP, "Authorization": f"Bearer {agent.token}"}
    async with lifespan(app), client(app) as http:
        rest = asyncio.ensure_future(http.get("/api/health"))
        init = await http.post(
            "/mcp", json=rpc("initialize", {"protocolVersion": "2025-06-18"}, 1), headers=MCP
        )
        assert init.status_code == 200 and init.json()["result"]["serverInfo"]["name"] == "backchannel"
        call = await http.post(
            "/mcp", json=rpc("tools/call", {"name": "chat_read", "arguments": {}}, 2), headers=auth
        )
        assert call.status_code == 200 and call.json()["result"]["isError"] is False, call.text
        assert not rest.done()  # REST is waiting for the build the test still holds
        assert factory.calls == 1
        factory.release.set()
        health = await asyncio.wait_for(rest, 10)
        assert health.status_code == 200, health.text
        # The same services behind REST: the agent registered above is listed.
        agents = await http.get(
            "/api/agents", headers={"X-Backchannel-Session": app.services.guard.secrets.session}
        )
        assert agents.status_code == 200 and "claude" in agents.text, agents.text
    # The background work ran once: the web app's own lifespan (which would start it again) never ran.
    assert sorted(started) == ["scheduler", "sweeper"]
    assert factory.calls == 1


async def test_a_web_app_that_fails_to_build_means_json_503_and_a_log_line(
    settings: Settings, caplog: pytest.LogCaptureFixture
) -> None:
    def broken(settings: Settings, services: Services) -> ASGIApp:
        raise RuntimeError("router import exploded")

    app = BootApp(settings, factory=broken)
    with caplog.at_level(logging.ERROR, logger="backchannel.server"):
        async with lifespan(app), client(app) as http:
            for _ in range(2):  # every later request too, without building again
                response = await http.get("/api/health")
                assert response.status_code == 503
                assert response.json() == {
                    "error": "unavailable",
                    "detail": "the web API failed to start; see the server log",
                }
            ping = await http.post("/mcp", json=rpc("ping", {}, 1), headers=MCP)
            assert ping.json() == {"jsonrpc": "2.0", "id": 1, "result": {}}
    failures = [r for r in caplog.records if "failed to start" in r.getMessage()]
    assert len(failures) == 1 and failures[0].exc_info is not None
    assert "router import exploded" in caplog.text


async def test_a_foreign_host_is_refused_before_mcp_or_the_build(settings: Settings) -> None:
    factory = HeldFactory()  # never released: a refused request must not wait for it
    app = BootApp(settings, factory=factory)
    async with client(app) as http:
        for path in ("/mcp", "/api/health"):
            response = await http.post(path, json=rpc("ping", {}, 1), headers={**MCP, "Host": "evil.example"})
            assert response.status_code == 403, response.text
            assert response.headers["content-type"].startswith("application/json")
    assert factory.calls == 0


# -- the real server ---------------------------------------------------------------------------


def test_the_real_server_answers_mcp_and_rest_and_stops_promptly_with_an_open_sse_stream(
    server_process: Callable[..., ServerProcess],
) -> None:
    server = server_process()

    async def calls() -> None:
        async with mcp_client(server.url, None) as session:  # right after the URL was printed
            tools = await session.list_tools()
            assert "chat_read" in {tool.name for tool in tools.tools}
        agent = await register(server.url, instance_id="boot-real")
        async with mcp_client(server.url, agent["token"]) as session:
            result = await session.call_tool("chat_read", {})
            assert not result.is_error, text_of(result)

    asyncio.run(calls())
    with httpx.Client(base_url=server.url, timeout=10) as http, http.stream("GET", "/sse") as stream:
        lines = stream.iter_lines()
        assert next(lines) == "event: endpoint"
        assert next(lines).startswith("data: /messages/?session_id=")
        assert server.proc is not None
        started = time.monotonic()
        server.proc.terminate()
        rest = list(lines)  # the server ends the stream cleanly (no error) as it shuts down
        assert all(not line or line.startswith(":") for line in rest), rest
        assert server.proc.wait(10) in (0, -signal.SIGTERM)  # uvicorn re-raises the signal it caught
        took = time.monotonic() - started
    # uvicorn's graceful timeout is 3 s: a stream left open would have held the exit that long.
    assert took < 2.0, f"shutdown took {took:.2f} s"
