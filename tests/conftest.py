"""Factories only: settings, a real server on a free port (in a thread or a subprocess), clients."""

from __future__ import annotations

import os
import re
import socket
import subprocess
import sys
import threading
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

from backchannel.config import Settings
from backchannel.models import Trigger
from backchannel.server.app import create_app
from backchannel.server.security import SESSION_HEADER, cookie_name, read_or_create_secret

READY_TIMEOUT = 15.0


# Modules whose tests take tens of seconds (real agent CLIs starting in tmux, wrapper runs). They are
# collected first so xdist deals them out to all workers at the start, instead of one worker still
# running them alone at the end while the others sit idle.
_SLOW_MODULES = (
    "tests/e2e/test_wrapper_real_clis.py",
    "tests/e2e/test_wrapper_identity.py",
    "tests/server/test_bad_input.py",
    "tests/e2e/test_crash.py",
)


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    rank = {module: n for n, module in enumerate(_SLOW_MODULES)}
    items.sort(key=lambda item: rank.get(item.nodeid.split("::")[0], len(rank)))  # stable: keeps the rest
    if getattr(config.option, "loadgroup", False):  # an xdist worker under --dist loadgroup
        for item in items:
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


@dataclass
class RunningServer:
    """A real uvicorn server on a free loopback port, in a thread of the test process."""

    settings: Settings
    url: str = ""
    app: Any = None
    _server: uvicorn.Server | None = None
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
        self._server = uvicorn.Server(config)
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
            self._server.should_exit = True
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
