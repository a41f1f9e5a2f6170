"""Factories only: settings, a real server on a free port (in a thread or a subprocess), clients."""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import re
import socket
import ssl
import subprocess
import sys
import threading
from collections import Counter
from collections.abc import AsyncIterator, Callable, Iterator
from contextlib import asynccontextmanager, contextmanager
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

import httpx
import httpx2
import pytest
import uvicorn
from mcp import Client
from mcp.client.sse import sse_client
from mcp.client.streamable_http import streamable_http_client
from websockets.exceptions import InvalidState

from backchannel.config import Settings
from backchannel.models import Trigger
from backchannel.server.app import create_app
from backchannel.server.security import SESSION_HEADER, cookie_name, read_or_create_secret

READY_TIMEOUT = 15.0


def _share_default_ssl_context() -> None:
    """One default SSL context per HTTP library for the whole test process.

    httpx and httpx2 (the MCP SDK's) load the CA bundle into a fresh context for every client they
    make: 30-60 ms of CPU each, and the suite makes thousands of clients, all plain HTTP on loopback.
    A context is safe to share; any other ``verify`` or a ``cert`` still gets its own.
    """
    for transports in (httpx._transports.default, httpx2._transports.default):  # pyright: ignore[reportPrivateUsage]
        build = transports.create_ssl_context
        made: dict[bool, ssl.SSLContext] = {}

        def shared(
            verify: Any = True,
            cert: Any = None,
            trust_env: bool = True,
            *,
            _build: Any = build,
            _made: Any = made,
        ) -> ssl.SSLContext:
            if verify is not True or cert is not None:
                return _build(verify=verify, cert=cert, trust_env=trust_env)
            if trust_env not in _made:
                _made[trust_env] = _build(verify=True, cert=None, trust_env=trust_env)
            return _made[trust_env]

        transports.create_ssl_context = shared  # pyright: ignore[reportAttributeAccessIssue]


_share_default_ssl_context()


# Modules whose tests take tens of seconds (real agent CLIs starting in tmux, wrapper runs). They are
# collected first so xdist deals them out to all workers at the start, instead of one worker still
# running them alone at the end while the others sit idle.
_SLOW_MODULES = (
    "tests/e2e/test_wrapper_real_clis.py",
    "tests/e2e/test_wrapper_identity.py",
    "tests/server/test_bad_input.py",
    "tests/e2e/test_crash.py",
    "tests/e2e/test_sessions_crash.py",
)


def _module(item: pytest.Item) -> str:
    return item.nodeid.split("::")[0]


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    """Order the work for xdist (pyproject.toml turns its own reordering off): the slow modules first,
    then the browser modules, biggest first, then the rest (short tests fill the end).

    Each browser module is one xdist group, so one worker runs it with one Chromium and one module
    server; spread over three workers it would launch them three times (~1 s of CPU each).
    """
    rank = {module: n for n, module in enumerate(_SLOW_MODULES)}
    browser = Counter(_module(item) for item in items if "_chromium" in getattr(item, "fixturenames", ()))

    def order(item: pytest.Item) -> tuple[int, int]:
        module = _module(item)
        if module in rank:
            return rank[module], 0
        if module in browser:
            return len(rank), -browser[module]
        return len(rank) + 1, 0

    items.sort(key=order)  # stable: keeps each module's own order
    if getattr(config.option, "loadgroup", False):  # an xdist worker under --dist loadgroup
        for item in items:
            if "_chromium" in getattr(item, "fixturenames", ()):
                item.add_marker(pytest.mark.xdist_group(f"browser_{Path(_module(item)).stem}"))
            _join_xdist_group(item)


def _join_xdist_group(item: pytest.Item) -> None:
    """Give ``item`` the ``@group`` nodeid suffix that ``--dist loadgroup`` schedules by.

    pytest-xdist 3.8 sets ``item._nodeid`` for this, which pytest 9 no longer reads (the id lives in
    ``item._id``): without this every ``xdist_group`` mark is silently ignored and the tests of one
    group run on all workers at once. A no-op where xdist's own suffix took effect.
    """
    names = {
        str(m.args[0] if m.args else m.kwargs.get("name", "default"))
        for m in item.iter_markers("xdist_group")
    }
    nodeid = item.nodeid
    if not names or nodeid.rfind("@") > nodeid.rfind("]") or not hasattr(item, "_id"):
        return  # no group, or xdist's suffix worked (pytest < 9 has no ``_id``)
    from _pytest.nodeid import NodeId

    item._id = NodeId.parse(f"{nodeid}@{'_'.join(sorted(names))}")  # pyright: ignore[reportAttributeAccessIssue]


@pytest.fixture(autouse=True)
def _no_proxy_env(monkeypatch: pytest.MonkeyPatch) -> None:
    """The machine's proxy settings must never reroute loopback test traffic."""
    for var in (
        "HTTP_PROXY",
        "HTTPS_PROXY",
        "ALL_PROXY",
        "NO_PROXY",
        "http_proxy",
        "https_proxy",
        "all_proxy",
        "no_proxy",
    ):
        monkeypatch.delenv(var, raising=False)


@pytest.fixture
def settings(tmp_path: Path) -> Settings:
    return Settings(host="127.0.0.1", port=0, data_dir=tmp_path / "data", presence_sweep_interval=0.2)


uvicorn_error = logging.getLogger("uvicorn.error")


class _PromptServer(uvicorn.Server):
    """uvicorn's server, minus the waits that dominate a test server's life.

    uvicorn looks at ``should_exit`` every 0.1 s, then sleeps 0.1 s more before it drains, and polls
    the connections every 0.1 s: 0.2-0.4 s of every test's teardown. Here :meth:`request_exit` wakes
    the main loop at once and the drain is polled every 5 ms; the graceful timeout is unchanged.
    """

    _loop: asyncio.AbstractEventLoop | None = None
    _wake: asyncio.Event | None = None

    async def main_loop(self) -> None:
        self._wake = asyncio.Event()
        self._loop = asyncio.get_running_loop()
        counter = 0
        while not await self.on_tick(counter):  # on_tick refreshes the Date header every 10th tick
            counter = (counter + 1) % 864_000
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._wake.wait(), 0.1)

    def request_exit(self) -> None:
        self.should_exit = True
        loop, wake = self._loop, self._wake
        if loop is not None and wake is not None:
            with contextlib.suppress(RuntimeError):  # the loop has already finished
                loop.call_soon_threadsafe(wake.set)

    async def shutdown(self, sockets: list[socket.socket] | None = None) -> None:
        for server in self.servers:
            server.close()
        for sock in sockets or []:
            sock.close()
        for connection in list(self.server_state.connections):
            # A WebSocket the client is already closing refuses a second close frame (uvicorn's
            # sans-I/O protocol raises InvalidState): that connection is on its way out anyway.
            with contextlib.suppress(InvalidState):
                connection.shutdown()
        await asyncio.sleep(0)  # let the closes and the shutdown frames go out
        try:
            await asyncio.wait_for(self._drain(), timeout=self.config.timeout_graceful_shutdown)
        except TimeoutError:
            uvicorn_error.error(
                "Cancel %s running task(s), timeout graceful shutdown exceeded", len(self.server_state.tasks)
            )
            for task in self.server_state.tasks:
                task.cancel(msg="Task cancelled, timeout graceful shutdown exceeded")
        if not self.force_exit:
            await self.lifespan.shutdown()

    async def _drain(self) -> None:
        while self.server_state.connections or self.server_state.tasks:
            await asyncio.sleep(0.005)
        for server in self.servers:
            await server.wait_closed()


@dataclass
class RunningServer:
    """A real uvicorn server on a free loopback port, in a thread of the test process."""

    settings: Settings
    url: str = ""
    app: Any = None
    _server: _PromptServer | None = None
    _thread: threading.Thread | None = None
    _sock: socket.socket | None = field(default=None, repr=False)

    @property
    def secret(self) -> str:
        return read_or_create_secret(self.settings.data_dir)

    @property
    def session_cookie(self) -> str:
        """The name of this server's session cookie (each server has its own)."""
        return cookie_name("bc_session", self.settings.data_dir)

    def start(self) -> RunningServer:
        # IPPROTO_TCP so asyncio sets TCP_NODELAY (see serve.bind): otherwise ~40 ms per request.
        sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM, socket.IPPROTO_TCP)
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        sock.bind(("127.0.0.1", self.settings.port))
        sock.listen(128)
        port = sock.getsockname()[1]
        self.settings = replace(self.settings, port=port)
        self.url = f"http://127.0.0.1:{port}"
        self.app = create_app(self.settings)
        config = uvicorn.Config(self.app, log_level="warning", lifespan="on", timeout_graceful_shutdown=1)
        self._server = _PromptServer(config)
        self._sock = sock
        self._thread = threading.Thread(target=self._server.run, kwargs={"sockets": [sock]}, daemon=True)
        self._thread.start()
        ready = threading.Event()

        def wait() -> None:
            while not (self._server and self._server.started) and self._thread and self._thread.is_alive():
                ready.wait(0.01)

        wait()
        if not self._server.started:
            raise RuntimeError("server thread died before it started")
        return self

    def stop(self) -> None:
        if self._server is not None:
            self._server.request_exit()
        if self._thread is not None:
            self._thread.join(10)
        if self._sock is not None:
            self._sock.close()

    def human(self, **kwargs: Any) -> httpx.AsyncClient:
        return httpx.AsyncClient(
            base_url=self.url, headers={SESSION_HEADER: self.secret}, timeout=10, **kwargs
        )


@pytest.fixture
def server(settings: Settings) -> Iterator[RunningServer]:
    running = RunningServer(settings).start()
    yield running
    running.stop()


@pytest.fixture
def server_factory(tmp_path: Path) -> Iterator[Callable[..., RunningServer]]:
    started: list[RunningServer] = []

    def make(**overrides: Any) -> RunningServer:
        base = Settings(host="127.0.0.1", port=0, data_dir=tmp_path / "data", presence_sweep_interval=0.2)
        running = RunningServer(replace(base, **overrides)).start()
        started.append(running)
        return running

    yield make
    for running in started:
        running.stop()


def read_serving_url(proc: subprocess.Popen[str], lines: list[str] | None = None) -> str:
    """Read a ``serve`` child's output (kept in ``lines``) until it prints the URL it serves on."""
    assert proc.stdout is not None
    for line in proc.stdout:  # bounded: the process prints the URL or exits
        if lines is not None:
            lines.append(line.rstrip("\n"))
        match = re.search(r"serving on (http://\S+)", line)
        if match:
            return match.group(1)
    raise RuntimeError(f"server exited with {proc.wait()} before printing its URL: {lines or ''}")


@dataclass
class ServerProcess:
    """``python -m backchannel serve`` as a real child process, for restarts and ``kill -9``."""

    data_dir: Path
    env: dict[str, str]
    port: int = 0
    proc: subprocess.Popen[str] | None = None
    url: str = ""

    def start(self) -> ServerProcess:
        self.proc = subprocess.Popen(
            [
                sys.executable,
                "-m",
                "backchannel",
                "serve",
                "--port",
                str(self.port),
                "--data-dir",
                str(self.data_dir),
            ],
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            text=True,
            env=self.env,
        )
        self.url = read_serving_url(self.proc)
        self.port = int(self.url.rsplit(":", 1)[1])
        threading.Thread(target=self._drain, daemon=True).start()
        return self

    def _drain(self) -> None:
        proc = self.proc
        if proc is not None and proc.stdout is not None:
            for _ in proc.stdout:
                pass

    def kill(self) -> None:
        if self.proc is not None and self.proc.poll() is None:
            self.proc.kill()
            self.proc.wait(10)

    def terminate(self) -> None:
        if self.proc is not None and self.proc.poll() is None:
            self.proc.terminate()
            self.proc.wait(10)

    @property
    def secret(self) -> str:
        return read_or_create_secret(self.data_dir)

    def human(self) -> httpx.AsyncClient:
        return httpx.AsyncClient(base_url=self.url, headers={SESSION_HEADER: self.secret}, timeout=10)


@pytest.fixture
def server_process(tmp_path: Path) -> Iterator[Callable[..., ServerProcess]]:
    made: list[ServerProcess] = []

    def make(**env: str) -> ServerProcess:
        full_env = {**os.environ, **env}
        proc = ServerProcess(tmp_path / "data", full_env).start()
        made.append(proc)
        return proc

    yield make
    for proc in made:
        proc.kill()


async def register(url: str, base: str = "claude", instance_id: str = "i-1", **extra: Any) -> dict[str, Any]:
    async with httpx.AsyncClient(base_url=url, timeout=10) as client:
        response = await client.post(
            "/api/agents/register", json={"base": base, "instance_id": instance_id, **extra}
        )
        assert response.status_code == 200, response.text
        return response.json()


@asynccontextmanager
async def mcp_client(
    url: str, token: str | None, *, transport: str = "http", header: str = "authorization"
) -> AsyncIterator[Client]:
    """A real MCP SDK client over streamable HTTP (``/mcp``) or SSE (``/sse``) carrying ``token``."""
    headers: dict[str, str] = {}
    if token is not None:
        headers = (
            {"Authorization": f"Bearer {token}"} if header == "authorization" else {"X-Agent-Token": token}
        )
    if transport == "http":
        http = httpx2.AsyncClient(headers=headers, timeout=httpx2.Timeout(10, read=60))
        async with http, Client(streamable_http_client(f"{url}/mcp", http_client=http)) as client:
            yield client
    else:
        async with Client(sse_client(f"{url}/sse", headers=headers)) as client:
            yield client


def text_of(result: Any) -> str:
    return "".join(getattr(block, "text", "") for block in result.content)


@contextmanager
def module_server(
    tmp_path_factory: pytest.TempPathFactory, name: str, **settings: Any
) -> Iterator[RunningServer]:
    """One in-process server for a whole module whose tests each make and check only their own things."""
    data = tmp_path_factory.mktemp(name) / "data"
    running = RunningServer(Settings(host="127.0.0.1", port=0, data_dir=data, **settings)).start()
    try:
        yield running
    finally:
        running.stop()


def ok(response: httpx.Response, status: int = 200) -> Any:
    """The JSON of a response that must have ``status``."""
    assert response.status_code == status, response.text
    return response.json()


def refused(response: httpx.Response, status: int, words: str) -> None:
    """The one error shape, with ``words`` in its detail."""
    body = response.json()
    assert response.status_code == status and set(body) == {"error", "detail"}, response.text
    assert words in body["detail"], body


async def pending(server: RunningServer, agent: str) -> list[Trigger]:
    """An agent's pending wake-ups, from the server's own store (what its wrapper would stream)."""
    store = server.app.state.services.store
    return await store.pending_triggers((await store.agent(agent)).id)
