"""chat_rules (and chat_decision) over a real MCP client: proposals become cards, list shows what applies."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from tests.conftest import RunningServer, mcp_client, module_server, ok, register, text_of

pytestmark = pytest.mark.anyio


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[RunningServer]:
    with module_server(tmp_path_factory, "mcp-rules") as running:
        yield running


async def test_a_proposal_is_a_rule_and_a_card_and_bad_input_is_explained(server: RunningServer) -> None:
    agent = await register(server.url, "claude", "propose")
    async with server.human() as human:
        ok(await human.post("/api/channels", json={"name": "review"}), 201)
        seq = ok(await human.get("/api/events", params={"since": 0, "limit": 1}))["last_seq"]
        async with mcp_client(server.url, agent["token"]) as client:
            proposed = await client.call_tool(
                "chat_rules",
                {
                    "action": "propose",
                    "rule": "Quote the failing test",
                    "reason": "saves a round trip",
                    "channel": "review",
                },
            )
            assert not proposed.is_error and "Rule proposed" in text_of(proposed), text_of(proposed)
            bad = {
                "rule is empty": {"action": "propose", "rule": "  "},
                "rule is 161 characters; the limit is 160": {"action": "propose", "rule": "x" * 161},
                "reason is 241 characters; the limit is 240": {
                    "action": "propose",
                    "rule": "ok",
                    "reason": "r" * 241,
                },
                "action must be 'list' or 'propose'": {"action": "activate", "rule": "x"},
                "no channel #nowhere": {"action": "propose", "rule": "ok", "channel": "nowhere"},
            }
            for words, args in bad.items():
                result = await client.call_tool("chat_rules", args)
                assert result.is_error and words in text_of(result), (args, text_of(result))
            alias = await client.call_tool("chat_decision", {"action": "propose", "decision": "Alias works"})
            assert not alias.is_error, text_of(alias)
            # The alias's errors name its own argument.
            empty = await client.call_tool("chat_decision", {"action": "propose", "decision": " "})
            assert empty.is_error and text_of(empty).startswith("decision"), text_of(empty)
        ids = proposed.structured_content
        card = ok(await human.get(f"/api/messages/{ids['message_id']}"))
        assert (card["type"], card["sender"], card["kind"], card["channel"]) == (
            "rule_proposal",
            agent["name"],
            "agent",
            "review",
        )
        assert card["text"] == "Proposed rule: Quote the failing test"
        assert card["metadata"] == {
            "rule_id": ids["id"],
            "text": "Quote the failing test",
            "reason": "saves a round trip",
            "status": "proposed",
        }
        rules = ok(await human.get("/api/rules"))
        assert [(r["text"], r["status"], r["author"]) for r in rules] == [
            ("Quote the failing test", "proposed", agent["name"]),
            ("Alias works", "proposed", agent["name"]),
        ]
        logged = ok(await human.get("/api/events", params={"since": seq}))["events"]
        created = [e["rule"]["id"] for e in logged if e["kind"] == "rule" and e["action"] == "created"]
        assert created == [r["id"] for r in rules], "only the good proposals were stored"


async def test_list_shows_the_active_rules_for_the_callers_channel(server: RunningServer) -> None:
    agent = await register(server.url, "codex", "list")
    async with server.human() as human:
        ok(await human.post("/api/channels", json={"name": "deploys"}), 201)
        async with mcp_client(server.url, agent["token"]) as client:
            empty = await client.call_tool("chat_rules", {"action": "list"})
            assert text_of(empty) == "No active rules." and empty.structured_content == {"rules": []}
            room = ok(await human.post("/api/rules", json={"text": "Be brief", "status": "active"}), 201)
            scoped = ok(
                await human.post(
                    "/api/rules", json={"text": "Tag releases", "status": "active", "channel": "deploys"}
                ),
                201,
            )
            ok(await human.post("/api/rules", json={"text": "Only a draft"}), 201)
            here = await client.call_tool("chat_rules", {"action": "list"})
            there = await client.call_tool("chat_decision", {"action": "list", "channel": "deploys"})
    assert here.structured_content == {
        "rules": [{"id": room["id"], "rule": "Be brief", "reason": "", "channel": ""}]
    }
    assert [r["id"] for r in there.structured_content["rules"]] == [room["id"], scoped["id"]]
    assert "Tag releases" in text_of(there)
