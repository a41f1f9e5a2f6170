"""The legacy SSE transport through the identity proxy survives a server restart on the same port."""

from __future__ import annotations

from contextlib import AsyncExitStack
from typing import Any

import anyio
import anyio.abc
import pytest
from mcp import Client
from mcp.client.sse import sse_client
from mcp_types import TextContent
from wrapper_upstream import Late404, Upstream, running

from backchannel.wrapper.proxy import IdentityProxy
from backchannel.wrapper.serving import serve

pytestmark = pytest.mark.anyio


def text_of(result: Any) -> str:
    first = result.content[0]
    assert isinstance(first, TextContent), result
    return first.text


@pytest.mark.parametrize("drop_streams", [True, False], ids=["stream-cut", "stream-orphaned"])
async def test_sse_session_survives_a_server_restart(drop_streams: bool) -> None:
    """stream-cut: the server's SSE stream dies with it (a crash or restart of the process).
    stream-orphaned: the stream stays open but the server forgot its session (only POSTs tell)."""
    upstream = Upstream({"t1"})
    stop, closed = anyio.Event(), anyio.Event()

    async def first_life(*, task_status: anyio.abc.TaskStatus[str]) -> None:
        """The server's first run, in a task of its own so it can end inside the client's scope."""
        try:
            async with serve(upstream) as upstream_url:
                task_status.started(upstream_url)
                await stop.wait()
        finally:
            closed.set()

    async with upstream.running(), anyio.create_task_group() as tg, AsyncExitStack() as stack:
        upstream_url: str = await tg.start(first_life)
        port = int(upstream_url.rsplit(":", 1)[1])
        proxy = IdentityProxy(upstream_url, "t1")
        stack.push_async_callback(proxy.aclose)
        url = await stack.enter_async_context(serve(proxy))
        with anyio.fail_after(20):
            async with Client(sse_client(url + "/sse"), mode="legacy") as client:
                assert text_of(await client.call_tool("whoami", {})) == "token=t1 generation=0"
                stop.set()  # the server's port closes...
                await closed.wait()
                await upstream.restart(drop_streams=drop_streams)  # ...and every session is gone
                upstream.tokens = {"t2"}  # the wrapper re-registered meanwhile: a new live token
                proxy.set_token("t2")
                async with serve(upstream, port=port):  # back on the same port
                    result = await client.call_tool("whoami", {})
                    assert not result.is_error, text_of(result)
                    assert text_of(result) == "token=t2 generation=1"
                    assert text_of(await client.call_tool("whoami", {})) == "token=t2 generation=1"
        assert proxy.reinitialized == 1
    streams = [auth for path, auth, _ in upstream.seen if path == "/sse"]
    assert streams == ["Bearer t1", "Bearer t2"]  # one stream per server life, each with the live token
    assert {agent for _, _, agent in upstream.seen} == {None}


async def test_a_404_answered_after_the_stream_reopened_does_not_reopen_it_again() -> None:
    """A call goes out with the old session; the server restarts and the stream re-opens before
    the call's 404 comes back. The 404 is about the session the call used, already replaced: the
    call goes again on the new one, and the new stream is left alone (it was cut and re-opened a
    second time before, a race that failed the restart test under load)."""
    upstream = Upstream({"t1"})
    late = Late404(upstream, b"Could not find session")
    answers: list[str] = []
    async with running(upstream, front=late) as (proxy, url):
        with anyio.fail_after(20):
            async with Client(sse_client(url + "/sse"), mode="legacy") as client:
                assert text_of(await client.call_tool("whoami", {})) == "token=t1 generation=0"
                late.arm()

                async def call() -> None:
                    answers.append(text_of(await client.call_tool("whoami", {})))

                async with anyio.create_task_group() as tg:
                    tg.start_soon(call)
                    await late.held.wait()
                    await upstream.restart(drop_streams=True)  # the proxy re-opens the stream
                    while proxy.reinitialized < 1:
                        await anyio.sleep(0.01)
                    late.release.set()  # only now the call's 404, about the session it went out with
                assert text_of(await client.call_tool("whoami", {})) == "token=t1 generation=1"
        assert answers == ["token=t1 generation=1"]
        assert proxy.reinitialized == 1
    assert [path for path, _, _ in upstream.seen].count("/sse") == 2
