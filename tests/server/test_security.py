"""Cross-site and local-trust checks: every state-changing route and the WebSocket."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import httpx
import pytest

from backchannel.server.security import SESSION_HEADER
from tests.conftest import RunningServer, module_server, register

pytestmark = pytest.mark.anyio


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[RunningServer]:
    """One server for the module: every check here is refused before it changes anything, or makes
    only its own message; a fresh server per check cost more than the checks (about 70 of them)."""
    with module_server(tmp_path_factory, "security") as running:
        yield running


EVIL = "http://evil.example"

# Every state-changing route people use, with a valid body, so only the guard can refuse it.
STATE_CHANGING = [
    ("POST", "/api/channels", {"name": "x1"}),
    ("PATCH", "/api/channels/dev", {"name": "dev2"}),
    ("DELETE", "/api/channels/dev", None),
    ("POST", "/api/channels/dev/continue", None),
    ("POST", "/api/channels/general/messages", {"text": "hi", "sender": "ben"}),
    ("PATCH", "/api/messages/1", {"text": "edited"}),
    ("DELETE", "/api/messages/1", None),
    ("POST", "/api/uploads", None),
    ("PATCH", "/api/agents/claude", {"label": "x"}),
    ("POST", "/api/agents/claude/rotate", None),
    ("DELETE", "/api/agents/claude/hat", None),
    ("POST", "/api/agents/claude/forget", None),
    ("PATCH", "/api/settings", {"title": "x"}),
    ("POST", "/api/rules", {"text": "Be brief"}),
    ("PATCH", "/api/rules/1", {"text": "Be brief"}),
    ("DELETE", "/api/rules/1", None),
    ("POST", "/api/rules/reorder", {"ordered_ids": [1]}),
    ("POST", "/api/rules/remind", None),
    ("POST", "/api/rules/1/decide", {"decision": "draft"}),
    ("POST", "/api/jobs", {"title": "t"}),
    ("POST", "/api/jobs/reorder", {"status": "todo", "ordered_ids": []}),
    ("POST", "/api/jobs/proposals/1", {"decision": "dismiss"}),
    ("PATCH", "/api/jobs/1", {"status": "active"}),
    ("DELETE", "/api/jobs/1", None),
    ("POST", "/api/jobs/1/messages", {"text": "hi"}),
    ("DELETE", "/api/jobs/1/messages/1", None),
    ("POST", "/api/jobs/1/messages/1/resolve", {"resolution": "accepted"}),
    ("POST", "/api/messages/1/job", {}),
    ("POST", "/api/messages/1/decide", {"choice": "yes"}),
    ("POST", "/api/channels/dev/summary-request", {"agent": "claude"}),
    ("POST", "/api/schedules", {"prompt": "p", "targets": ["claude"], "spec": "every 1h"}),
    ("PATCH", "/api/schedules/1", {"active": False}),
    ("DELETE", "/api/schedules/1", None),
    ("DELETE", "/api/channels/dev/messages", None),
    ("POST", "/api/messages/1/pin", None),
    ("PATCH", "/api/messages/1/pin", {"done": True}),
    ("DELETE", "/api/messages/1/pin", None),
    ("POST", "/api/triggers/1/retry", None),
    ("PUT", "/api/me", {"name": "mallory"}),
    ("POST", "/api/import", None),
    ("POST", "/api/sessions", {"template_id": "planning", "channel": "dev"}),
    ("POST", "/api/sessions/1/end", None),
    ("POST", "/api/sessions/templates", {"name": "x"}),
    ("DELETE", "/api/sessions/templates/x", None),
    ("POST", "/api/sessions/request-draft", {"agent": "claude", "channel": "dev", "description": "d"}),
    ("POST", "/api/sessions/drafts/1/save", None),
    ("POST", "/api/sessions/drafts/1/dismiss", None),
]


_SEEDED: set[str] = set()


async def seeded(server: RunningServer) -> None:
    """Agent ``claude``, channel ``dev`` and message 1, once per server (a live name registers once)."""
    if str(server.settings.data_dir) in _SEEDED:
        return
    _SEEDED.add(str(server.settings.data_dir))
    await register(server.url)
    async with server.human() as human:
        await human.post("/api/channels", json={"name": "dev"})
        await human.post("/api/channels/general/messages", json={"text": "first", "sender": "ben"})


def _routes(routes: list[Any], prefix: str = "") -> Iterator[tuple[str, set[str]]]:
    """(path, methods) of every route, inside included routers too (FastAPI keeps those as
    ``_IncludedRouter`` entries without a path of their own)."""
    for route in routes:
        inner = getattr(route, "original_router", None)
        if inner is not None:
            context = getattr(route, "include_context", None)
            yield from _routes(inner.routes, prefix + str(getattr(context, "prefix", "") or ""))
        else:
            yield prefix + str(getattr(route, "path", "")), set(getattr(route, "methods", None) or ())


def test_every_state_changing_route_is_in_the_list(server: RunningServer) -> None:
    """If someone adds a route, this test makes them add it to the cross-site checks too."""
    found = list(_routes(list(server.app.routes)))
    for path, operations in server.app.openapi()["paths"].items():  # and what the schema shows
        found.append((path, {m.upper() for m in operations}))
    people_routes = set()
    for path, methods in found:
        if path.startswith("/api/") and "/api/agents/register" != path and "{name}/heartbeat" not in path:
            for method in methods - {"GET", "HEAD"}:
                if path.startswith("/api/agents/{name}/triggers") or (
                    method == "DELETE" and path == "/api/agents/{name}"
                ):
                    continue  # agent protocol: token-authenticated, refuses any Origin (tested below)
                people_routes.add((method, path))
    listed = {(m, p) for m, p, _ in STATE_CHANGING}
    normalised = {
        (
            m,
            p.replace("/dev", "/{name}")
            .replace("/general", "/{name}")
            .replace("/claude", "/{name}")
            .replace("/messages/1", "/messages/{message_id}")
            .replace("/rules/1", "/rules/{rule_id}")
            .replace("/jobs/1", "/jobs/{job_id}")
            .replace("/proposals/1", "/proposals/{message_id}")
            .replace("/schedules/1", "/schedules/{schedule_id}")
            .replace("/triggers/1", "/triggers/{trigger_id}")
            .replace("/sessions/1", "/sessions/{session_id}")
            .replace("/templates/x", "/templates/{template_id}")
            .replace("/drafts/1", "/drafts/{message_id}"),
        )
        for m, p in listed
    }
    assert len(people_routes) > 40  # the walk sees the routers' routes (it saw none once)
    assert people_routes <= normalised, people_routes - normalised


@pytest.mark.parametrize(("method", "path", "body"), STATE_CHANGING)
async def test_foreign_origin_is_refused_even_with_the_secret(
    server: RunningServer, method, path, body
) -> None:
    await seeded(server)
    async with server.human() as human:
        response = await human.request(method, path, json=body, headers={"Origin": EVIL})
    assert response.status_code == 403, response.text


@pytest.mark.parametrize(("method", "path", "body"), STATE_CHANGING)
async def test_missing_secret_is_refused_even_with_the_cookie(
    server: RunningServer, method, path, body
) -> None:
    await seeded(server)
    async with server.human() as human:
        session = (await human.get("/")).cookies.get(server.session_cookie)
    assert session
    async with httpx.AsyncClient(base_url=server.url, cookies={server.session_cookie: session}) as browser:
        response = await browser.request(method, path, json=body, headers={"Origin": server.url})
    assert response.status_code == 401, response.text


async def test_page_secret_and_same_origin_are_accepted(server: RunningServer) -> None:
    async with httpx.AsyncClient(base_url=server.url) as browser:
        page = await browser.get("/")
        secret = page.text.split('name="bc-session" content="')[1].split('"')[0]
        assert page.cookies[server.session_cookie] == secret
        assert "samesite=strict" in page.headers["set-cookie"].lower()
        assert "httponly" in page.headers["set-cookie"].lower()
        ok = await browser.post(
            "/api/channels/general/messages",
            json={"text": "hi", "sender": "ben"},
            headers={"Origin": server.url, SESSION_HEADER: secret},
        )
    assert ok.status_code == 201


async def test_reads_need_the_session_and_dns_rebinding_host_is_refused(server: RunningServer) -> None:
    async with httpx.AsyncClient(base_url=server.url) as anonymous:
        assert (await anonymous.get("/api/channels/general/messages")).status_code == 401
        assert (await anonymous.get("/api/health")).status_code == 200
        rebinding = await anonymous.get("/api/health", headers={"Host": "evil.example:8300"})
    assert rebinding.status_code == 403


async def test_agent_endpoints_refuse_browser_origins(server: RunningServer) -> None:
    agent = await register(server.url, instance_id="i-origin")
    name = agent["name"]
    headers = {"Authorization": f"Bearer {agent['token']}", "Origin": server.url}
    async with httpx.AsyncClient(base_url=server.url) as client:
        assert (await client.post(f"/api/agents/{name}/heartbeat", headers=headers)).status_code == 403
        assert (await client.delete(f"/api/agents/{name}", headers=headers)).status_code == 403
        assert (await client.get(f"/api/agents/{name}/triggers", headers=headers)).status_code == 403


async def test_human_cannot_post_as_an_agent(server: RunningServer) -> None:
    await seeded(server)  # registers the agent claude
    async with server.human() as human:
        response = await human.post("/api/channels/general/messages", json={"text": "x", "sender": "claude"})
    # The sender field is ignored: the message carries the local person's own name and kind.
    assert response.status_code == 201 and response.json()["sender"] != "claude"
    assert response.json()["kind"] == "human"


@pytest.mark.parametrize("chunked", [False, True])
async def test_oversized_bodies_are_refused_before_auth_reads_them(
    server: RunningServer, chunked: bool
) -> None:
    big = b'{"text": "' + b"x" * (2 * 1024 * 1024) + b'"}'

    async def stream():
        for i in range(0, len(big), 65536):
            yield big[i : i + 65536]

    content = stream() if chunked else big
    async with httpx.AsyncClient(base_url=server.url, timeout=10) as anonymous:
        response = await anonymous.post(
            "/api/channels/general/messages", content=content, headers={"Content-Type": "application/json"}
        )
    assert response.status_code == 413 and response.json()["error"] == "payload_too_large"


async def test_two_servers_on_one_host_keep_their_own_session_cookies(server_factory, tmp_path) -> None:
    """Browsers keep cookies per host, not per port: opening a second room must not log out the first."""
    first: RunningServer = server_factory(data_dir=tmp_path / "one")
    second: RunningServer = server_factory(data_dir=tmp_path / "two")
    assert first.session_cookie != second.session_cookie
    async with httpx.AsyncClient(timeout=10) as browser:  # one cookie jar, as in one browser
        await browser.get(first.url + "/")
        await browser.get(second.url + "/")
        for server in (first, second):
            reads = await browser.get(server.url + "/api/channels", headers={"Origin": server.url})
            assert reads.status_code == 200, reads.text
