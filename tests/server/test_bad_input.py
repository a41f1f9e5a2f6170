"""Bad input never reaches a 500: schemathesis over the OpenAPI spec, then the cases people hit by hand.

Every test talks to a real uvicorn server on a free port; MCP goes through the real SDK client.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any
from urllib.parse import quote

import anyio
import anyio.from_thread
import httpx
import pytest
import schemathesis
from hypothesis import HealthCheck, Phase, given, settings
from hypothesis import strategies as st
from hypothesis.errors import Unsatisfiable
from mcp import Client
from schemathesis import GenerationMode
from schemathesis.core.result import Ok

from backchannel.server.security import SESSION_HEADER
from tests.conftest import RunningServer, mcp_client, module_server, register, text_of

pytestmark = pytest.mark.anyio


# Most checks here make only their own things or are refused before they change anything: they
# share one server per module (a fresh one per case cost more than the cases). The fuzzers get their
# own (they may rename or delete anything), the channel-name checks theirs (they assert the exact
# channel list), and tests that need a pristine room or a single agent take ``fresh``.
@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[RunningServer]:
    with module_server(tmp_path_factory, "bad-input") as running:
        yield running


@pytest.fixture(scope="module")
def fuzzed(tmp_path_factory: pytest.TempPathFactory) -> Iterator[RunningServer]:
    with module_server(tmp_path_factory, "bad-input-fuzz") as running:
        yield running


@pytest.fixture(scope="module")
def channels(tmp_path_factory: pytest.TempPathFactory) -> Iterator[RunningServer]:
    with module_server(tmp_path_factory, "bad-channel-names") as running:
        yield running


@pytest.fixture
def fresh(server_factory: Callable[..., RunningServer]) -> RunningServer:
    return server_factory()


# Per operation and generation mode: about 40 operations x 2 modes, a few seconds per shard.
FUZZ_EXAMPLES = 10
# Each example is a real HTTP round trip, and schemathesis filters hard to build valid requests.
GENERATION_IS_SLOW = [
    HealthCheck.too_slow,
    HealthCheck.filter_too_much,
    HealthCheck.data_too_large,
    HealthCheck.large_base_example,
]
MCP_HEADERS = {"accept": "application/json, text/event-stream", "content-type": "application/json"}


def assert_json_error(response: httpx.Response, status: int | tuple[int, ...]) -> dict[str, Any]:
    """The one error shape: a 4xx JSON object with a machine-readable ``error`` and a readable ``detail``."""
    expected = (status,) if isinstance(status, int) else status
    assert response.status_code in expected, (response.status_code, response.text)
    body = response.json()
    assert isinstance(body["error"], str) and body["error"], body
    assert isinstance(body["detail"], str) and body["detail"], body
    return body


# -- schemathesis over the whole REST surface ------------------------------------------------------


def nothing_to_negate(operation: dict[str, Any]) -> bool:
    """No body, and every parameter a free-form string in the path (or none at all): negative mode
    can make no wrong request for it (a path carries any string), and hypothesis burns ~1000 draws,
    about half a second of CPU, before it gives up with ``Unsatisfiable`` having sent nothing."""
    return "requestBody" not in operation and all(
        p["in"] == "path" and {k: v for k, v in p["schema"].items() if k != "title"} == {"type": "string"}
        for p in operation.get("parameters", [])
    )


# The pass is split into shards so xdist spreads it over its workers: one test of ~40 operations
# would be the longest single test of the suite.
FUZZ_SHARDS = 4


@pytest.mark.parametrize("shard", range(FUZZ_SHARDS))
def test_openapi_fuzzing_finds_no_server_errors(fuzzed: RunningServer, shard: int) -> None:
    schema = schemathesis.openapi.from_url(f"{fuzzed.url}/openapi.json")
    headers = {SESSION_HEADER: fuzzed.secret}
    server_errors: list[str] = []
    operations = []
    for result in schema.get_all_operations():
        assert isinstance(result, Ok), result  # the spec we publish is itself valid OpenAPI
        operations.append(result.ok())
    assert len(operations) >= 20, [op.label for op in operations]  # the REST surface really was loaded

    for operation in operations[shard::FUZZ_SHARDS]:
        raw = schema.raw_schema["paths"][operation.path][operation.method.lower()]
        modes = [GenerationMode.POSITIVE]
        if not nothing_to_negate(raw):
            modes.append(GenerationMode.NEGATIVE)
        for mode in modes:

            @given(case=operation.as_strategy(generation_mode=mode))
            @settings(
                max_examples=FUZZ_EXAMPLES,
                deadline=None,
                database=None,
                phases=[Phase.explicit, Phase.generate],
                suppress_health_check=GENERATION_IS_SLOW,
            )
            def call(case: schemathesis.Case) -> None:
                response = case.call(base_url=fuzzed.url, headers=headers, timeout=10)
                if response.status_code >= 500:
                    server_errors.append(
                        f"{case.method} {case.formatted_path} query={case.query} -> "
                        f"{response.status_code} {response.text[:200]}"
                    )

            try:
                call()
            except Unsatisfiable:
                # Negative mode needs an input that can be wrong; `GET /api/health` or a free-form
                # string path parameter has none, so there is nothing to generate for it.
                assert mode is GenerationMode.NEGATIVE, operation.label

    assert server_errors == []


@pytest.mark.parametrize("huge", [2**63, -(2**63) - 1, 10**30])
def test_ids_beyond_64_bits_in_any_path_are_a_4xx(fuzzed: RunningServer, huge: int) -> None:
    """SQLite integers are 64-bit: a bigger id must be refused at the edge, not overflow in the store.

    Random fuzzing finds this only sometimes, so every integer path parameter gets the value for sure,
    with the rest of the request (body included) generated valid so the handler really runs.
    """
    spec = httpx.get(f"{fuzzed.url}/openapi.json", timeout=10).json()
    schema = schemathesis.openapi.from_dict(spec)
    headers = {SESSION_HEADER: fuzzed.secret}
    checked: list[str] = []
    for result in schema.get_all_operations():
        assert isinstance(result, Ok), result
        operation = result.ok()
        raw = spec["paths"][operation.path][operation.method.lower()]
        ids = [
            p["name"]
            for p in raw.get("parameters", [])
            if p["in"] == "path" and p.get("schema", {}).get("type") == "integer"
        ]
        if not ids:
            continue
        checked.append(operation.label)

        @given(case=operation.as_strategy(path_parameters=dict.fromkeys(ids, huge)))
        @settings(max_examples=3, deadline=None, database=None, suppress_health_check=GENERATION_IS_SLOW)
        def call(case: schemathesis.Case) -> None:
            response = case.call(base_url=fuzzed.url, headers=headers, timeout=10)
            assert 400 <= response.status_code < 500, (case.method, case.formatted_path, response.text)

        call()
    assert len(checked) >= 5, checked  # messages get/patch/delete, rules, jobs, triggers


# -- messages ------------------------------------------------------------------------------------------


async def test_oversized_message_is_refused_with_the_limit_in_the_detail(fresh: RunningServer) -> None:
    limit = fresh.settings.max_message_chars
    agent = await register(fresh.url)
    async with fresh.human() as human:
        fits = await human.post("/api/channels/general/messages", json={"text": "x" * limit})
        assert fits.status_code == 201, fits.text
        too_long = await human.post("/api/channels/general/messages", json={"text": "x" * (limit + 1)})
        body = assert_json_error(too_long, 400)
        assert body["error"] == "invalid_input"
        assert f"{limit + 1} characters" in body["detail"] and str(limit) in body["detail"]
        # Far past the limit the request model refuses it before the room sees it: still a 4xx.
        assert_json_error(
            await human.post("/api/channels/general/messages", json={"text": "x" * 200_001}), 422
        )
        edit = await human.patch(f"/api/messages/{fits.json()['id']}", json={"text": "y" * (limit + 1)})
        assert_json_error(edit, 400)

    async with mcp_client(fresh.url, agent["token"]) as client:
        result = await client.call_tool("chat_send", {"message": "z" * (limit + 1)})
    assert result.is_error and f"the limit is {limit}" in text_of(result)

    async with fresh.human() as human:
        stored = (await human.get("/api/channels/general/messages", params={"limit": 10})).json()
    assert [len(m["text"]) for m in stored["messages"] if m["kind"] != "system"] == [limit]


@pytest.mark.parametrize("text", ["", "   \n\t", "nul \x00 inside"])
async def test_empty_or_nul_message_is_a_clear_400(server: RunningServer, text: str) -> None:
    async with server.human() as human:
        body = assert_json_error(await human.post("/api/channels/general/messages", json={"text": text}), 400)
    assert "empty" in body["detail"] or "NUL" in body["detail"]


# -- channel names -----------------------------------------------------------------------------------

BAD_CHANNEL_NAMES = ["../x", "", "A B", "a" * 33, "x/y", "#", "-lead", "tab\tname", "ünï"]


@pytest.mark.parametrize("name", BAD_CHANNEL_NAMES)
async def test_bad_channel_name_is_refused_everywhere(channels: RunningServer, name: str) -> None:
    agent = await register(channels.url, instance_id=f"i-{BAD_CHANNEL_NAMES.index(name)}")
    async with channels.human() as human:
        created = await human.post("/api/channels", json={"name": name})
        assert_json_error(created, (400, 422))
        await human.post("/api/channels", json={"name": "ops"})
        assert_json_error(await human.patch("/api/channels/ops", json={"name": name}), (400, 422))
        # As a path segment the name is percent-encoded, so `../x` cannot climb out of the route.
        segment = quote(name, safe="") or "%20"
        posted = await human.post(f"/api/channels/{segment}/messages", json={"text": "hi"})
        assert 400 <= posted.status_code < 500, (segment, posted.status_code, posted.text)
        names = [c["name"] for c in (await human.get("/api/channels")).json()]
    assert names == ["general", "ops"]

    async with mcp_client(channels.url, agent["token"]) as client:
        for tool, args in (
            ("chat_join", {"channel": name or " "}),
            ("chat_send", {"message": "hi", "channel": name or " "}),
            ("chat_read", {"channel": name or " "}),
        ):
            result = await client.call_tool(tool, args)
            assert result.is_error, (tool, text_of(result))
            assert "invalid channel name" in text_of(result), (tool, text_of(result))


# -- agents -----------------------------------------------------------------------------------------


async def test_unknown_agent_is_a_404_and_a_clear_tool_error(server: RunningServer) -> None:
    agent = await register(server.url, instance_id="i-unknown")
    async with server.human() as human:
        body = assert_json_error(await human.patch("/api/agents/nobody", json={"label": "X"}), 404)
        assert "nobody" in body["detail"]
        assert_json_error(await human.post("/api/agents/nobody/rotate"), 404)
    async with mcp_client(server.url, agent["token"]) as client:
        result = await client.call_tool("chat_set_hat", {"svg": "<svg/>", "target": "nobody"})
    assert result.is_error and "no agent named 'nobody'" in text_of(result)


@pytest.mark.parametrize(
    "payload",
    [
        {"base": "Claude", "instance_id": "a"},
        {"base": "claude", "instance_id": ""},
        {"base": "claude", "instance_id": "i" * 65},
        {"base": "9lives", "instance_id": "a"},
        {"base": "claude"},
        {"base": ["claude"], "instance_id": "a"},
    ],
)
async def test_bad_registration_is_a_4xx_with_a_reason(
    server: RunningServer, payload: dict[str, Any]
) -> None:
    async with httpx.AsyncClient(base_url=server.url, timeout=10) as client:
        body = assert_json_error(await client.post("/api/agents/register", json=payload), (400, 422))
    assert body["error"] == "invalid_input"


# -- malformed bodies -------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("path", "content"),
    [
        ("/api/channels", b"{not json"),
        ("/api/channels", b"[1, 2]"),
        ("/api/channels", b'{"name": 5}'),
        ("/api/channels/general/messages", b'{"text": "unterminated'),
        ("/api/channels/general/messages", b'{"text": {"nested": true}}'),
        ("/api/channels/general/messages", b'{"text": "lone \\ud800 surrogate"}'),
        ("/api/channels/general/messages", b"\xff\xfe\x00garbage"),
    ],
)
async def test_malformed_json_body_is_a_4xx_json_error(
    server: RunningServer, path: str, content: bytes
) -> None:
    async with server.human() as human:
        response = await human.post(path, content=content, headers={"content-type": "application/json"})
    assert_json_error(response, (400, 422))


@pytest.mark.parametrize(
    "content",
    [
        b"garbage",
        b"\xff\xfe",
        b"{}",
        b"[]",
        b"null",
        b'{"jsonrpc": "2.0"}',
        b'{"jsonrpc": "1.0", "id": 1, "method": "initialize"}',
        b'{"jsonrpc": "2.0", "id": 1, "method": "initialize", "params": "x"}',
        b'{"jsonrpc": "2.0", "id": {"a": 1}, "method": "tools/list"}',
    ],
)
async def test_malformed_json_rpc_to_mcp_is_a_4xx(server: RunningServer, content: bytes) -> None:
    async with httpx.AsyncClient(base_url=server.url, timeout=10) as client:
        response = await client.post("/mcp", content=content, headers=MCP_HEADERS)
    assert 400 <= response.status_code < 500, (response.status_code, response.text)
    assert "error" in response.json()


async def test_a_well_formed_call_without_token_or_arguments_is_a_tool_error(server: RunningServer) -> None:
    """Valid JSON-RPC answers 200 (issue 14): what is wrong with the call is the tool's to say."""
    call = {"jsonrpc": "2.0", "id": 1, "method": "tools/call", "params": {"name": "chat_send"}}
    async with httpx.AsyncClient(base_url=server.url, timeout=10) as client:
        response = await client.post("/mcp", json=call, headers=MCP_HEADERS)
    assert response.status_code == 200 and response.json()["result"]["isError"] is True, response.text


async def test_mcp_transport_refuses_wrong_headers_and_unknown_sessions(server: RunningServer) -> None:
    async with httpx.AsyncClient(base_url=server.url, timeout=10) as client:
        responses = [
            await client.post("/mcp", content=b"{}", headers={"content-type": "text/plain"}),
            await client.get("/mcp"),
            await client.post("/mcp", content=b"{}", headers={**MCP_HEADERS, "mcp-session-id": "no-such"}),
            await client.delete("/mcp", headers={"mcp-session-id": "no-such"}),
            await client.post("/messages/?session_id=nope", content=b"{}", headers=MCP_HEADERS),
            await client.post("/messages/", content=b"{}", headers=MCP_HEADERS),
        ]
    for response in responses:
        assert 400 <= response.status_code < 500, (response.request.url, response.status_code, response.text)


# -- garbage tool arguments --------------------------------------------------------------------------


@pytest.mark.parametrize("transport", ["http", "sse"])
async def test_garbage_tool_arguments_are_tool_errors_and_the_session_lives_on(
    server: RunningServer, transport: str, tmp_path: Path
) -> None:
    agent = await register(server.url, instance_id=f"i-garbage-{transport}")
    not_an_image = tmp_path / "notes.png"
    not_an_image.write_text("just text")
    garbage: list[tuple[str, dict[str, Any], str]] = [
        ("chat_send", {}, "message"),
        ("chat_send", {"message": 123}, "message"),
        ("chat_send", {"message": ["a", "b"]}, "message"),
        ("chat_send", {"message": "hi", "reply_to": "first"}, "reply_to"),
        ("chat_send", {"message": "hi", "reply_to": 10**30}, "too large"),
        ("chat_send", {"message": "hi", "reply_to": 999_999}, "no message 999999"),
        ("chat_send", {"message": "hi", "choices": "yes/no"}, "choices"),
        ("chat_send", {"message": "hi", "choices": [""] * 3}, "choices"),
        ("chat_send", {"message": "hi", "image_path": "/no/such/file.png"}, "no such file"),
        ("chat_send", {"message": "hi", "image_path": "n" * 5000}, "cannot read"),  # ENAMETOOLONG
        ("chat_send", {"message": "hi", "image_path": str(tmp_path)}, "no such file"),
        ("chat_send", {"message": "hi", "image_path": str(not_an_image)}, "only PNG, JPEG, GIF and WebP"),
        ("chat_read", {"limit": "lots"}, "limit"),
        ("chat_read", {"limit": 0}, "limit"),
        ("chat_read", {"since_id": 2**70}, "too large"),
        ("chat_read", {"channel": "nowhere"}, "no channel #nowhere"),
        ("chat_summary", {"action": "burn"}, "action"),
        ("chat_rules", {"action": "propose", "rule": ""}, "rule"),
        ("chat_propose_job", {"title": "t" * 121}, "title"),
        ("chat_claim", {"name": "Not A Name"}, "invalid agent name"),
        ("chat_set_hat", {"svg": 42}, "svg"),
        ("no_such_tool", {"x": 1}, "no_such_tool"),
    ]
    async with mcp_client(server.url, agent["token"], transport=transport) as client:
        for tool, args, hint in garbage:
            result = await client.call_tool(tool, args)
            assert result.is_error, (tool, args, text_of(result))
            assert hint in text_of(result), (tool, args, text_of(result))
            assert "internal error" not in text_of(result), (tool, args, text_of(result))
        sent = await client.call_tool("chat_send", {"message": "still here", "bogus_extra": 1})
        assert not sent.is_error and text_of(sent).startswith("Sent (id=")


# -- what goes in comes back out, exactly --------------------------------------------------------------

# Any Unicode text (hypothesis never makes lone surrogates, which JSON-over-UTF-8 cannot carry) except
# what the server refuses on purpose: NUL, whitespace-only, and the `/continue` command.
message_texts = st.text(min_size=1, max_size=300).filter(
    lambda t: t.strip() != "" and "\x00" not in t and t.strip() != "/continue"
)


@pytest.fixture
def live_agent(fresh: RunningServer) -> Iterator[tuple[anyio.from_thread.BlockingPortal, Client]]:
    """One MCP session kept open across hypothesis examples, driven from sync code through a portal."""
    with anyio.from_thread.start_blocking_portal() as portal:
        agent = portal.call(register, fresh.url)
        with portal.wrap_async_context_manager(mcp_client(fresh.url, agent["token"])) as client:
            yield portal, client


@given(texts=st.lists(message_texts, min_size=1, max_size=3))
@settings(
    max_examples=15,
    deadline=None,
    database=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
)
def test_any_text_round_trips_exactly_through_rest_and_mcp(
    fresh: RunningServer, live_agent: tuple[anyio.from_thread.BlockingPortal, Client], texts: list[str]
) -> None:
    portal, client = live_agent
    with httpx.Client(base_url=fresh.url, headers={SESSION_HEADER: fresh.secret}, timeout=10) as human:
        for text in texts:
            posted = human.post("/api/channels/general/messages", json={"text": text})
            assert posted.status_code == 201, posted.text
            assert posted.json()["text"] == text
            assert human.get(f"/api/messages/{posted.json()['id']}").json()["text"] == text

            sent = portal.call(client.call_tool, "chat_send", {"message": text})
            assert not sent.is_error, text_of(sent)
            assert sent.structured_content is not None
            sent_id = sent.structured_content["id"]
            assert human.get(f"/api/messages/{sent_id}").json()["text"] == text

            # The agent reads both back through its own tool, in order, byte for byte.
            read = portal.call(
                client.call_tool, "chat_read", {"since_id": posted.json()["id"] - 1, "limit": 2}
            )
            assert read.structured_content is not None, text_of(read)
            got = [(m["id"], m["text"]) for m in read.structured_content["messages"]]
            assert got == [(posted.json()["id"], text), (sent_id, text)]


# -- hypothesis over every MCP tool ---------------------------------------------------------------------

json_values = st.recursive(
    st.none()
    | st.booleans()
    | st.integers(min_value=-(2**70), max_value=2**70)
    | st.floats(allow_nan=False, allow_infinity=False)
    | st.text(max_size=40),
    lambda inner: st.lists(inner, max_size=3) | st.dictionaries(st.text(max_size=8), inner, max_size=3),
    max_leaves=6,
)


@st.composite
def tool_calls(draw: st.DrawFn, tools: dict[str, list[str]]) -> tuple[str, dict[str, Any]]:
    """A real tool name, with any subset of its own parameters (and sometimes a stranger) set to any JSON."""
    name = draw(st.sampled_from(sorted(tools)))
    params = draw(st.lists(st.sampled_from([*tools[name], "bogus"]), unique=True, max_size=4))
    return name, {param: draw(json_values) for param in params}


def test_any_json_arguments_to_any_tool_never_reach_an_internal_error(
    live_agent: tuple[anyio.from_thread.BlockingPortal, Client],
) -> None:
    portal, client = live_agent
    listed = portal.call(client.list_tools)
    tools = {tool.name: sorted(tool.input_schema.get("properties", {})) for tool in listed.tools}
    assert {"chat_send", "chat_read", "chat_join", "chat_claim", "chat_set_hat"} <= set(tools)

    @given(call=tool_calls(tools))
    @settings(max_examples=60, deadline=None, database=None, suppress_health_check=GENERATION_IS_SLOW)
    def call_tool(call: tuple[str, dict[str, Any]]) -> None:
        name, args = call
        result = portal.call(client.call_tool, name, args)
        assert "internal error" not in text_of(result), (name, args, text_of(result))

    call_tool()
    # The session is still usable, and the identity still comes from the token, whatever was claimed.
    alive = portal.call(client.call_tool, "chat_send", {"message": "still standing", "channel": "general"})
    assert not alive.is_error, text_of(alive)
