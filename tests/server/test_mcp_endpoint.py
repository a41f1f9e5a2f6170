"""Issue 14: the server speaks MCP itself (tools only). The real SDK client in every mode it has,
hand-made requests for everything a client may get wrong, and JSON (never a traceback) for each."""

from __future__ import annotations

import json
import re
import socket
from collections.abc import AsyncIterator, Iterator
from typing import Any

import anyio
import httpx
import httpx2
import pytest
from mcp import Client
from mcp.client.streamable_http import streamable_http_client

from backchannel.server import mcp_endpoint
from backchannel.server.mcp_endpoint import dumps
from tests.conftest import RunningServer, mcp_client, module_server, text_of

pytestmark = pytest.mark.anyio
JSON = {"Content-Type": "application/json", "Accept": "application/json, text/event-stream"}


@pytest.fixture(scope="module")
def srv(tmp_path_factory: pytest.TempPathFactory) -> Iterator[RunningServer]:
    with module_server(tmp_path_factory, "mcp-endpoint") as running:
        yield running


@pytest.fixture(scope="module")
def token(srv: RunningServer) -> str:
    body = {"base": "claude", "instance_id": "endpoint-1"}
    response = httpx.post(f"{srv.url}/api/agents/register", json=body, timeout=10)
    assert response.status_code == 200, response.text
    return response.json()["token"]


@pytest.fixture
async def http(srv: RunningServer, token: str) -> AsyncIterator[httpx.AsyncClient]:
    headers = {**JSON, "Authorization": f"Bearer {token}"}
    async with httpx.AsyncClient(base_url=srv.url, headers=headers, timeout=10) as client:
        yield client


def rpc(method: str, params: dict[str, Any] | None = None, request_id: object = 1) -> dict[str, Any]:
    body: dict[str, Any] = {"jsonrpc": "2.0", "id": request_id, "method": method}
    if params is not None:
        body["params"] = params
    return body


@pytest.mark.parametrize("mode", ["auto", "legacy", "sse"])
async def test_the_sdk_client_connects_lists_and_calls_in_every_mode(
    srv: RunningServer, token: str, mode: str
) -> None:
    async def use(client: Client) -> None:
        names = {tool.name for tool in (await client.list_tools()).tools}
        assert {"chat_send", "chat_read", "chat_who"} <= names
        sent = await client.call_tool("chat_send", {"message": f"hello over {mode}", "channel": "general"})
        assert not sent.is_error, text_of(sent)
        read = await client.call_tool("chat_read", {"channel": "general", "since_id": 0, "limit": 200})
        assert f"hello over {mode}" in text_of(read)
        bad = await client.call_tool("chat_read", {"limit": "many"})
        assert bad.is_error and "limit" in text_of(bad)

    if mode == "legacy":
        client_http = httpx2.AsyncClient(headers={"Authorization": f"Bearer {token}"}, timeout=10)
        async with (
            client_http,
            Client(
                streamable_http_client(f"{srv.url}/mcp", http_client=client_http), mode="legacy"
            ) as client,
        ):
            assert client.server_info is not None and client.server_info.name == "backchannel"
            assert client.protocol_version == "2025-11-25" and client.instructions
            await use(client)
    else:
        async with mcp_client(srv.url, token, transport="sse" if mode == "sse" else "http") as client:
            await use(client)


async def test_initialize_echoes_a_known_version_and_offers_only_tools(http: httpx.AsyncClient) -> None:
    params = {
        "protocolVersion": "2025-03-26",
        "capabilities": {},
        "clientInfo": {"name": "t", "version": "0"},
    }
    answer = await http.post("/mcp", json=rpc("initialize", params))
    assert answer.status_code == 200 and answer.headers["content-type"] == "application/json"
    assert len(answer.headers["mcp-session-id"]) >= 16
    result = answer.json()["result"]
    assert result["protocolVersion"] == "2025-03-26"
    assert result["capabilities"] == {"tools": {"listChanged": False}}
    assert result["serverInfo"]["name"] == "backchannel" and result["instructions"]
    future = await http.post("/mcp", json=rpc("initialize", {**params, "protocolVersion": "2099-01-01"}))
    assert future.json()["result"]["protocolVersion"] == "2025-11-25"
    assert future.headers["mcp-session-id"] != answer.headers["mcp-session-id"]


async def test_any_session_id_or_none_is_served_as_after_a_restart(http: httpx.AsyncClient) -> None:
    """Sessions hold nothing, so an id this server never issued (as after a restart) is served."""
    call = rpc("tools/call", {"name": "chat_who", "arguments": {}})
    for headers in ({"mcp-session-id": "0f3c-made-up-before-the-restart"}, {}):
        answer = await http.post("/mcp", json=call, headers={**headers, "mcp-protocol-version": "2025-06-18"})
        assert answer.status_code == 200, answer.text
        assert answer.json()["result"]["isError"] is False, answer.text


@pytest.mark.parametrize(
    ("body", "status", "code"),
    [
        (b'{"jsonrpc": "2.0", "id": 1, "method": ', 400, -32700),
        (b"\xff\xfe not utf-8", 400, -32700),
        (b'{"jsonrpc": "1.0", "id": 7, "method": "ping"}', 400, -32600),
        (b'{"id": 7, "method": "ping"}', 400, -32600),
        (b'"ping"', 400, -32600),
        (b"[]", 400, -32600),
        (b'{"jsonrpc": "2.0", "id": 7}', 400, -32600),
        (b'{"jsonrpc": "2.0", "id": 7, "method": 5}', 400, -32600),
        (b'{"jsonrpc": "2.0", "id": {"x": 1}, "method": "ping"}', 400, -32600),
        (b'{"jsonrpc": "2.0", "id": 7, "method": "initialize", "params": "x"}', 400, -32600),
        (b'{"jsonrpc": "2.0", "id": 7, "method": "no/such/method"}', 200, -32601),
        (b'{"jsonrpc": "2.0", "id": 7, "method": "server/discover", "params": {}}', 200, -32601),
        (b'{"jsonrpc": "2.0", "id": 7, "method": "tools/call", "params": [1]}', 200, -32602),
        (b'{"jsonrpc": "2.0", "id": 7, "method": "tools/call", "params": {}}', 200, -32602),
    ],
)
async def test_bad_json_rpc_gets_a_json_rpc_error(
    http: httpx.AsyncClient, body: bytes, status: int, code: int
) -> None:
    answer = await http.post("/mcp", content=body)
    assert answer.status_code == status, answer.text
    assert answer.headers["content-type"] == "application/json"
    error = answer.json()
    assert error["jsonrpc"] == "2.0" and error["error"]["code"] == code, error
    assert "Traceback" not in answer.text
    if code in (-32601, -32602):
        assert error["id"] == 7  # valid requests: the client can match the error to its call


async def test_notifications_and_client_responses_get_202_and_no_body(http: httpx.AsyncClient) -> None:
    for body in (
        {"jsonrpc": "2.0", "method": "notifications/initialized"},
        {"jsonrpc": "2.0", "method": "notifications/cancelled", "params": {"requestId": 3}},
        {"jsonrpc": "2.0", "id": 9, "result": {}},
        {"jsonrpc": "2.0", "id": 9, "error": {"code": -1, "message": "no"}},
    ):
        answer = await http.post("/mcp", json=body)
        assert answer.status_code == 202 and answer.content == b"", (body, answer.text)


async def test_the_small_methods_some_clients_call(http: httpx.AsyncClient) -> None:
    expected = {
        "ping": {},
        "resources/list": {"resources": []},
        "resources/templates/list": {"resourceTemplates": []},
        "prompts/list": {"prompts": []},
    }
    for method, result in expected.items():
        assert (await http.post("/mcp", json=rpc(method))).json() == {
            "jsonrpc": "2.0",
            "id": 1,
            "result": result,
        }
    unknown = await http.post("/mcp", json=rpc("tools/call", {"name": "no_such_tool"}))
    assert unknown.json()["result"] == {
        "content": [{"type": "text", "text": "Unknown tool: no_such_tool"}],
        "isError": True,
    }


async def test_a_batch_answers_its_requests_in_one_array(http: httpx.AsyncClient) -> None:
    batch = [rpc("ping", request_id="a"), {"jsonrpc": "2.0", "method": "notifications/initialized"}, {"x": 1}]
    answer = await http.post("/mcp", json=batch)
    assert answer.status_code == 200
    first, second = answer.json()
    assert first == {"jsonrpc": "2.0", "id": "a", "result": {}}
    assert second["error"]["code"] == -32600


async def test_a_client_that_accepts_only_a_stream_gets_one_event(http: httpx.AsyncClient) -> None:
    answer = await http.post("/mcp", json=rpc("ping"), headers={"Accept": "text/event-stream"})
    assert answer.headers["content-type"].startswith("text/event-stream")
    assert answer.text == 'event: message\r\ndata: {"jsonrpc":"2.0","id":1,"result":{}}\r\n\r\n'


async def test_http_level_refusals_are_json(srv: RunningServer, http: httpx.AsyncClient) -> None:
    for method in ("GET", "DELETE", "PUT"):
        answer = await http.request(method, "/mcp")
        assert answer.status_code == 405 and answer.headers["allow"] == "POST", (method, answer.text)
        assert answer.json()["error"] == "method_not_allowed"
    foreign = await http.post("/mcp", json=rpc("ping"), headers={"Origin": "http://evil.example"})
    assert foreign.status_code == 403 and foreign.json() == {
        "error": "forbidden",
        "detail": "Invalid Origin header",
    }
    # Loopback as the Host check (and Guard) define it: all of 127/8, not only 127.0.0.1.
    for origin in (srv.url, "http://localhost:3000", "http://[::1]:8300", "http://127.0.0.2:8300"):
        assert (await http.post("/mcp", json=rpc("ping"), headers={"Origin": origin})).status_code == 200, (
            origin
        )
    for origin in ("null", "http://127.0.0.1.evil.example", "http://[::1"):
        assert (await http.post("/mcp", json=rpc("ping"), headers={"Origin": origin})).status_code == 403, (
            origin
        )
    huge = json.dumps(rpc("ping", {"pad": "x" * (2 * 1024 * 1024)}))
    too_large = await http.post("/mcp", content=huge)
    assert too_large.status_code == 413 and too_large.json()["error"] == "payload_too_large"

    async def chunked() -> AsyncIterator[bytes]:  # no Content-Length: counted while reading
        for _ in range(40):
            yield b"x" * 65536

    streamed = await http.post("/mcp", content=chunked())
    assert streamed.status_code == 413 and streamed.json()["error"] == "payload_too_large"
    plain = await http.post("/mcp", content=b"{}", headers={"Content-Type": "text/plain"})
    assert plain.status_code == 415 and plain.json()["error"] == "unsupported_media_type"
    rebinding = await http.post("/mcp", json=rpc("ping"), headers={"Host": "evil.example:8300"})
    assert rebinding.status_code == 403 and rebinding.json()["detail"] == "unexpected Host header"


async def test_sse_transport_endpoint_event_answers_and_keep_alive(
    srv: RunningServer, http: httpx.AsyncClient, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(mcp_endpoint, "KEEP_ALIVE_SECONDS", 0.05)  # the server runs in this process
    assert (await http.post("/messages/", json=rpc("ping"))).status_code == 400  # no session_id
    unknown = await http.post("/messages/?session_id=0123abcd", json=rpc("ping"))
    assert unknown.status_code == 404 and unknown.json()["error"] == "not_found"
    async with http.stream("GET", "/sse") as stream:
        assert stream.headers["content-type"].startswith("text/event-stream")
        lines = stream.aiter_lines()
        assert await anext(lines) == "event: endpoint"
        endpoint = (await anext(lines)).removeprefix("data: ")
        assert endpoint.startswith("/messages/?session_id=")
        posted = await http.post(endpoint, json=rpc("tools/call", {"name": "chat_who"}, request_id=5))
        assert posted.status_code == 202
        assert (await http.post(endpoint, content=b"{nope")).json()["error"]["code"] == -32700
        seen: list[str] = []
        async for line in lines:
            seen.append(line)
            if line.startswith(": ping") and any(s.startswith("data:") for s in seen):
                break
        data = next(s for s in seen if s.startswith("data: ")).removeprefix("data: ")
        assert "event: message" in seen and json.loads(data)["id"] == 5
        assert json.loads(data)["result"]["isError"] is False
    with anyio.fail_after(5):  # the server notices the closed stream a moment after the client does
        while srv.app.mcp.sse_sessions:
            await anyio.sleep(0.01)


async def test_network_mode_needs_a_token_before_anything(server_factory: Any) -> None:
    server: RunningServer = server_factory(allow_network=True)
    async with httpx.AsyncClient(base_url=server.url, timeout=10) as client:
        for method, path in (
            ("POST", "/mcp"),
            ("GET", "/mcp"),
            ("GET", "/sse"),
            ("POST", "/messages/?session_id=1"),
        ):
            answer = await client.request(
                method, path, content=b"{nope", headers={"Origin": "http://evil.example"}
            )
            assert answer.status_code == 401 and answer.json()["error"] == "stale_token", (method, path)
            assert "network mode: MCP needs an agent token" in answer.json()["detail"]


async def test_mcp_requests_never_enter_fastapis_stack(srv: RunningServer, token: str) -> None:
    entered: list[str] = []
    stack = srv.app.middleware_stack

    async def recording(scope: Any, receive: Any, send: Any) -> None:
        entered.append(scope["path"])
        await stack(scope, receive, send)

    srv.app.middleware_stack = recording
    try:
        async with mcp_client(srv.url, token) as client:
            await client.call_tool("chat_who", {})
        async with httpx.AsyncClient(base_url=srv.url) as plain:
            await plain.get("/api/health")
    finally:
        srv.app.middleware_stack = stack
    assert entered == ["/api/health"], entered


@pytest.mark.parametrize(
    "body",
    [
        b'{"jsonrpc": "2.0", "id": 1180591620717411303424, "method": "ping"}',  # 2**70
        b'{"id": -9223372036854775809}',  # 19 digits, below -2**63
        b'{"id": 18446744073709551616}',  # 2**64
        b'{"text": "\\ud800 alone"}',
        b'{"x": 1e400, "y": [NaN, Infinity, 0.1, 1e16, 18446744073709551615]}',
        '{"caf\u00e9": 1}'.encode("utf-16"),
        b'{"a": 1, "a": 2}',
        b'{"jsonrpc": "2.0", "id": 9223372036854775807, "method": "ping"}',
    ],
)
def test_bodies_are_read_exactly_as_the_stdlib_reads_them(body: bytes) -> None:
    """orjson reads most bodies; whatever it would read differently goes to the stdlib."""
    assert repr(mcp_endpoint.loads(body)) == repr(json.loads(body))


async def test_a_huge_integer_request_id_comes_back_unchanged(http: httpx.AsyncClient) -> None:
    answer = await http.post(
        "/mcp", content=b'{"jsonrpc": "2.0", "id": 1180591620717411303424, "method": "ping"}'
    )
    assert answer.status_code == 200, answer.text
    assert answer.content.startswith(b'{"jsonrpc":"2.0","id":1180591620717411303424,'), answer.text


def test_answers_stay_valid_json_with_a_lone_surrogate() -> None:
    assert json.loads(dumps({"text": "caf\u00e9 \ud800"})) == {"text": "caf\u00e9 \ud800"}
    assert dumps({"a": [1, "é"]}) == '{"a":[1,"é"]}'.encode()


async def test_a_failure_inside_is_logged_and_answered_as_json(
    srv: RunningServer,
    http: httpx.AsyncClient,
    monkeypatch: pytest.MonkeyPatch,
    caplog: pytest.LogCaptureFixture,
) -> None:
    def broken(*_: object) -> Any:
        raise RuntimeError("a bug")

    endpoint = srv.app.mcp
    monkeypatch.setattr(endpoint.toolset, "list_wire", broken)
    in_method = await http.post("/mcp", json=rpc("tools/list"))
    assert in_method.status_code == 200
    assert in_method.json()["error"] == {
        "code": -32603,
        "message": "Internal error; the server log has details",
    }
    # A result that will not encode: inside a batch too, that one answer is -32603, the rest stand.
    monkeypatch.setattr(endpoint.toolset, "list_wire", lambda: [{"bad": object()}])
    batch = await http.post("/mcp", json=[rpc("tools/list", request_id=1), rpc("ping", request_id=2)])
    assert batch.status_code == 200, batch.text
    assert batch.json() == [
        {"jsonrpc": "2.0", "id": 1, "error": {"code": -32603, "message": "Internal error"}},
        {"jsonrpc": "2.0", "id": 2, "result": {}},
    ]
    monkeypatch.setattr(endpoint, "_answer_body", broken)
    in_transport = await http.post("/mcp", json=rpc("ping"))
    assert in_transport.status_code == 500 and in_transport.json()["error"] == "internal"
    assert "a bug" not in in_method.text + in_transport.text
    assert [r.exc_info is not None for r in caplog.records if "failed" in r.getMessage()] == [True, True]
    assert any("could not be written as JSON" in r.getMessage() for r in caplog.records)


async def test_an_sse_stream_whose_client_stops_reading_is_ended_not_left_to_grow(
    srv: RunningServer, http: httpx.AsyncClient, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Answers for a stream nobody reads are held up to a byte budget; past it the stream ends (the
    client or the identity proxy reconnects) and they are freed: never held without bound, and
    never one silently dropped while the stream lives on."""
    budget = 64 * 1024
    monkeypatch.setattr(mcp_endpoint, "SSE_BUDGET_BYTES", budget)  # the server runs in this process
    # Each POST a batch answered at once with about 300 KB: past the kernel's buffers in a few.
    batch = [rpc("tools/list", request_id=n) for n in range(40)]
    size = len((await http.post("/mcp", json=batch)).content)
    port = srv.settings.port
    with socket.socket() as reader:
        reader.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)  # before connect: a small window
        reader.settimeout(5)
        reader.connect(("127.0.0.1", port))
        reader.sendall(f"GET /sse HTTP/1.1\r\nHost: 127.0.0.1:{port}\r\n\r\n".encode())
        head = b""
        while b"\r\n\r\n" not in head.partition(b"session_id=")[2]:
            head += reader.recv(4096)
        found = re.search(rb"session_id=([0-9a-f]+)", head)
        assert found is not None, head
        endpoint = f"/messages/?session_id={found[1].decode()}"
        posted = 0
        while (answer := await http.post(endpoint, json=batch)).status_code == 202:
            posted += 1  # from here on the stream is not read
            assert posted < 100, "the stream was never ended"
        assert answer.status_code == 404 and not srv.app.mcp.sse_sessions
        received = len(head)
        while chunk := reader.recv(65536):  # what was in buffers arrives, then the connection ends
            received += len(chunk)
    # The queued answers were freed, not sent late: at least most of a budget's worth never came.
    assert received + budget // 2 < posted * size, (received, posted, size)
