"""People: one local person (CLI + this machine's browser), a person per browser in network mode,
names that cannot mislead, and edits/deletes that belong to the author's identity (issue 8 #10, #22).
"""

from __future__ import annotations

import json
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

import httpx
import pytest

from backchannel.server.security import SESSION_HEADER
from tests.conftest import RunningServer, mcp_client, register, text_of

pytestmark = pytest.mark.anyio


@asynccontextmanager
async def browser(server: RunningServer, *, login: bool) -> AsyncIterator[httpx.AsyncClient]:
    """A browser: (signs in,) loads the page for its cookies, then sends the page's session header."""
    async with httpx.AsyncClient(base_url=server.url, timeout=10) as client:
        yield await _open(client, server, login=login)


def person_cookie(server: RunningServer) -> str:
    return server.app.state.services.people.cookie


async def _open(client: httpx.AsyncClient, server: RunningServer, *, login: bool) -> httpx.AsyncClient:
    """Network mode (``login``): the page gives a person key; a loopback-only server gives none."""
    guard = server.app.state.services.guard
    if login:
        assert (await client.post("/login", data={"secret": guard.secrets.login})).status_code == 303
    page = await client.get("/")
    assert page.status_code == 200 and (person_cookie(server) in client.cookies) == login
    set_cookie = page.headers["set-cookie"].lower()
    assert "httponly" in set_cookie and "samesite=strict" in set_cookie
    client.headers[SESSION_HEADER] = guard.secrets.session
    return client


async def person_keys(server: RunningServer) -> int:
    store = server.app.state.services.store
    return await store.db.read(lambda c: c.execute("SELECT count(*) FROM person_keys").fetchone()[0])


async def test_the_cli_and_this_machines_browser_are_one_person_and_names_cannot_mislead(
    server: RunningServer,
) -> None:
    await register(server.url, "reviewer", "r-1")
    async with server.human() as cli, browser(server, login=False) as page:
        me = (await cli.get("/api/me")).json()
        assert (await page.get("/api/me")).json() == me and me["name"]
        # Reserved words and agent-like names are invalid (400); an agent's name is taken (409).
        for bad in (
            "you",
            "System",
            "all",
            "both",
            "copilot",
            "claude-2",
            "claude-code",
            "Gemini Pro",
            "codex_2",
        ):
            refused = await page.put("/api/me", json={"name": bad})
            assert refused.status_code == 400 and refused.json()["error"] == "invalid_input", bad
            assert bad.lower() in refused.json()["detail"].lower(), refused.text
        for taken in ("reviewer", "Reviewer"):
            refused = await page.put("/api/me", json={"name": taken})
            assert (refused.status_code, refused.json()["error"]) == (409, "conflict"), taken
        assert (await page.put("/api/me", json={"name": "Claudette"})).status_code == 200
        assert (await page.put("/api/me", json={"name": "maya"})).json() == {
            "person_id": me["person_id"],
            "name": "maya",
        }
        # The name in the body is ignored: a person posts under their identity's name.
        posted = (
            await cli.post("/api/channels/general/messages", json={"text": "hi", "sender": "copilot"})
        ).json()
        assert (posted["sender"], posted["kind"], posted["person_id"]) == ("maya", "human", me["person_id"])
        assert (await page.patch(f"/api/messages/{posted['id']}", json={"text": "hi!"})).status_code == 200
    # Agents see who is a person and who is an agent.
    agent = await register(server.url, "codex", "c-1")
    async with mcp_client(server.url, agent["token"]) as client:
        await client.call_tool("chat_send", {"message": "hello maya"})
        read = json.loads(text_of(await client.call_tool("chat_resync", {})))
    assert [(m["sender"], m["kind"]) for m in read if m["type"] == "chat"] == [
        ("maya", "human"),
        ("codex", "agent"),
    ]
    # A person may remove an agent's message, never change its words.
    agents_id = next(m["id"] for m in read if m["sender"] == "codex")
    async with browser(server, login=False) as page:
        refused = await page.patch(f"/api/messages/{agents_id}", json={"text": "I agree to everything"})
        assert refused.status_code == 403 and "not edit" in refused.json()["detail"]
        assert (await page.get(f"/api/messages/{agents_id}")).json()["text"] == "hello maya"
        assert (await page.delete(f"/api/messages/{agents_id}")).status_code == 200


async def test_in_network_mode_each_browser_is_a_person_and_owns_its_messages(server_factory) -> None:
    server: RunningServer = server_factory(allow_network=True)
    store = server.app.state.services.store
    legacy = (await store.post(channel="general", sender="old", kind="human", text="from before")).message
    async with (
        browser(server, login=True) as ann,
        browser(server, login=True) as bob,
        server.human() as cli,
    ):
        ann_id = (await ann.put("/api/me", json={"name": "ann"})).json()["person_id"]
        bob_me = (await bob.get("/api/me")).json()
        local = (await cli.get("/api/me")).json()
        assert len({ann_id, bob_me["person_id"], local["person_id"]}) == 3
        said = (await ann.post("/api/channels/general/messages", json={"text": "mine"})).json()
        assert (said["sender"], said["person_id"]) == ("ann", ann_id)

        for name in ("Ann", "old"):  # ann's, and the name on messages from before person ids
            taken = await bob.put("/api/me", json={"name": name})
            assert taken.status_code == 409 and "another person" in taken.json()["detail"]
            assert taken.json()["error"] == "conflict"
        # ann moves on; bob takes her old name, yet her message follows her, not the name.
        assert (await ann.put("/api/me", json={"name": "ann2"})).status_code == 200
        assert (await bob.put("/api/me", json={"name": "ann"})).status_code == 200
        assert (await ann.get(f"/api/messages/{said['id']}")).json()["sender"] == "ann2"
        for attempt in (
            bob.patch(f"/api/messages/{said['id']}", json={"text": "forged"}),
            bob.delete(f"/api/messages/{said['id']}"),
            cli.delete(f"/api/messages/{said['id']}"),
            bob.delete(f"/api/messages/{legacy.id}"),
        ):
            refused = await attempt
            assert refused.status_code == 403 and "only its author" in refused.json()["detail"]
        assert (
            await ann.patch(f"/api/messages/{said['id']}", json={"text": "still mine"})
        ).status_code == 200
        # A message from before people had ids belongs to the local person (the CLI) only.
        assert (await cli.patch(f"/api/messages/{legacy.id}", json={"text": "fixed"})).status_code == 200
        # A signed-in session without a person key is nobody: it cannot post.
        anonymous = httpx.AsyncClient(
            base_url=server.url, headers=dict(bob.headers), cookies=dict(bob.cookies)
        )
        anonymous.cookies.delete(person_cookie(server))
        async with anonymous:
            nobody = await anonymous.post("/api/channels/general/messages", json={"text": "who?"})
        assert nobody.status_code == 401 and "open the UI" in nobody.json()["detail"]


async def test_page_loads_mint_no_person_keys_on_a_loopback_server(server: RunningServer) -> None:
    """Review #4: any local process or cross-site <img> loading / must not grow the database."""
    for _ in range(3):
        async with httpx.AsyncClient(base_url=server.url, timeout=10) as client:
            page = await client.get("/")
            assert page.status_code == 200 and not any(c.startswith("bc_person") for c in client.cookies)
    assert await person_keys(server) == 0


async def test_network_mode_mints_one_key_per_signed_in_browser_and_servers_keep_their_own(
    server_factory, tmp_path
) -> None:
    """Review #4 and #8: no key before sign-in, a browser's key is reused on reload, and two
    servers on one host (cookies ignore the port) don't overwrite each other's person key."""
    one: RunningServer = server_factory(allow_network=True, data_dir=tmp_path / "one")
    two: RunningServer = server_factory(allow_network=True, data_dir=tmp_path / "two")
    assert person_cookie(one) != person_cookie(two)
    async with httpx.AsyncClient(timeout=10) as client:  # one cookie jar, as in one browser
        assert "sign in" in (await client.get(f"{one.url}/")).text
        assert await person_keys(one) == 0

        async def me(server: RunningServer) -> dict[str, object]:
            session = {SESSION_HEADER: server.app.state.services.guard.secrets.session}
            return (await client.get(f"{server.url}/api/me", headers=session)).json()

        for server in (one, two):
            login = {"secret": server.app.state.services.guard.secrets.login}
            assert (await client.post(f"{server.url}/login", data=login)).status_code == 303
            assert (await client.get(f"{server.url}/")).status_code == 200
        first = await me(one)
        assert "person_id" in first, first
        for server in (one, two, one):  # switching tabs, reloading
            assert (await client.get(f"{server.url}/")).status_code == 200
        assert await me(one) == first
        assert await person_keys(one) == 1 and await person_keys(two) == 1


async def test_a_persons_rename_reaches_the_event_log(server: RunningServer) -> None:
    """Review #5: a page resuming from the log must not show the old name on the person's words."""
    async with server.human() as cli:
        start = (await cli.get("/api/events")).json()["last_seq"]
        said = (await cli.post("/api/channels/general/messages", json={"text": "logged"})).json()
        me = (await cli.put("/api/me", json={"name": "newname"})).json()
        logged = (await cli.get("/api/events", params={"since": start})).json()["events"]
    assert [e["message"]["sender"] for e in logged if e["kind"] == "message"] == ["newname"]
    (renamed,) = [e for e in logged if e["kind"] == "person_renamed"]
    assert (renamed["old"], renamed["new"], renamed["person_id"]) == (
        said["sender"],
        "newname",
        me["person_id"],
    )
    assert renamed["seq"] > start


async def test_a_persons_jobs_rules_and_schedules_follow_their_rename(server: RunningServer) -> None:
    async with server.human() as cli:
        before = (await cli.get("/api/me")).json()["name"]
        job = (await cli.post("/api/jobs", json={"title": "fix CI", "assignee": before})).json()
        rule = (await cli.post("/api/rules", json={"text": "Be kind"})).json()
        agent = await register(server.url)
        schedule = (
            await cli.post(
                "/api/schedules", json={"prompt": "triage", "targets": [agent["name"]], "spec": "every 2h"}
            )
        ).json()
        assert before in (job["created_by"], job["assignee"], rule["author"], schedule["created_by"])
        start = (await cli.get("/api/events")).json()["last_seq"]
        assert (await cli.put("/api/me", json={"name": "Robin"})).status_code == 200
        job = (await cli.get(f"/api/jobs/{job['id']}")).json()
        (rule,) = [r for r in (await cli.get("/api/rules")).json() if r["id"] == rule["id"]]
        (schedule,) = [s for s in (await cli.get("/api/schedules")).json() if s["id"] == schedule["id"]]
        logged = (await cli.get("/api/events", params={"since": start})).json()["events"]
    assert (job["created_by"], job["assignee"], rule["author"], schedule["created_by"]) == ("Robin",) * 4
    assert schedule["targets"] == [agent["name"]]  # a person's rename leaves agents' names alone
    assert {"person_renamed", "job", "rule", "schedule"} <= {e["kind"] for e in logged}


async def test_an_agent_never_registers_or_renames_to_a_persons_name(server: RunningServer) -> None:
    """Review #6 and #15: a person's name is never an agent's slot; a held name is 409 conflict."""
    async with server.human() as cli:
        assert (await cli.put("/api/me", json={"name": "maya"})).status_code == 200
        agent = await register(server.url, "maya", "m-1")
        assert agent["name"] == "maya-2"
        refused = await cli.patch("/api/agents/maya-2", json={"name": "maya"})
        assert (refused.status_code, refused.json()["error"]) == (409, "conflict"), refused.text
    async with mcp_client(server.url, agent["token"]) as client:
        result = await client.call_tool("chat_claim", {"name": "maya"})
    assert result.is_error and "person" in text_of(result)


async def test_accepting_a_job_posts_as_the_person(server: RunningServer) -> None:
    """Review #7: the acceptance carries the person's id, like any message of theirs (issue 9: the
    ``job_created`` card, and the decision on the proposal card, name the person)."""
    agent = await register(server.url, "codex", "c-1")
    async with mcp_client(server.url, agent["token"]) as client:
        proposed = await client.call_tool("chat_propose_job", {"title": "tidy up"})
    card_id = proposed.structured_content["message_id"]
    async with server.human() as cli:
        me = (await cli.get("/api/me")).json()
        made = await cli.post("/api/jobs", json={"title": "tidy up", "anchor_msg_id": card_id, "sender": "x"})
        assert made.status_code == 201, made.text
        assert made.json()["created_by"] == me["name"]
        history = (await cli.get("/api/channels/general/messages")).json()["messages"]
    (created,) = [m for m in history if m["type"] == "job_created"]
    assert (created["sender"], created["person_id"], created["kind"]) == (
        me["name"],
        me["person_id"],
        "human",
    )
    (card,) = [m for m in history if m["id"] == card_id]
    assert card["metadata"]["decided_by"] == me["name"]


async def test_people_share_the_apps_store(server: RunningServer) -> None:
    """Review #17: persons are written through the one Store (one writer), held in Services."""
    services = server.app.state.services
    assert services.people.store is services.store
    with pytest.raises(ValueError):  # #16: renames go through rename_agent, never update_agent
        await services.store.update_agent(1, name="other")
