"""People: one local person (CLI + this machine's browser), a person per browser in network mode,
names that cannot mislead, and edits/deletes that belong to the author's identity (issue 8 #10, #22).
"""

from __future__ import annotations

import json
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

import httpx
import pytest

from backchannel.people import PERSON_COOKIE
from backchannel.server.security import SESSION_HEADER
from tests.conftest import RunningServer, mcp_client, register, text_of

pytestmark = pytest.mark.anyio


@asynccontextmanager
async def browser(server: RunningServer, *, login: bool) -> AsyncIterator[httpx.AsyncClient]:
    """A browser: (signs in,) loads the page for its cookies, then sends the page's session header."""
    guard = server.app.state.services.guard
    async with httpx.AsyncClient(base_url=server.url, timeout=10) as client:
        yield await _open(client, guard, login=login)


async def _open(client: httpx.AsyncClient, guard, *, login: bool) -> httpx.AsyncClient:
    if login:
        assert (await client.post("/login", data={"secret": guard.secrets.login})).status_code == 303
    page = await client.get("/")
    assert page.status_code == 200 and PERSON_COOKIE in client.cookies
    set_cookie = page.headers["set-cookie"].lower()
    assert "httponly" in set_cookie and "samesite=strict" in set_cookie
    client.headers[SESSION_HEADER] = guard.secrets.session
    return client


async def test_the_cli_and_this_machines_browser_are_one_person_and_names_cannot_mislead(
    server: RunningServer,
) -> None:
    await register(server.url, "reviewer", "r-1")
    async with server.human() as cli, browser(server, login=False) as page:
        me = (await cli.get("/api/me")).json()
        assert (await page.get("/api/me")).json() == me and me["name"]
        for taken in ("you", "System", "all", "both", "copilot", "claude-2", "reviewer", "Reviewer"):
            refused = await page.put("/api/me", json={"name": taken})
            assert refused.status_code in (400, 409), taken
            assert taken.lower() in refused.json()["detail"].lower(), refused.text
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

        taken = await bob.put("/api/me", json={"name": "Ann"})
        assert taken.status_code == 409 and "another person" in taken.json()["detail"]
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
        anonymous.cookies.delete(PERSON_COOKIE)
        async with anonymous:
            nobody = await anonymous.post("/api/channels/general/messages", json={"text": "who?"})
        assert nobody.status_code == 401 and "open the UI" in nobody.json()["detail"]
