"""CPU per tool call of our toolkit (``Toolset.call`` + ``wire()``) against the MCP SDK's
``MCPServer.call_tool`` + dumping its result, for the same trivial tool in the same process, runs
interleaved (A, B, C, A, B, C, ...) so that load from other processes hits all alike. C is our toolkit
with the argument validation it had before (a pydantic model per tool, lax mode), to compare the
hand-written conversion with it. Also: the CPU cost
of building every real tool's schema (our lazy ``list_wire()``; the SDK did this at start-up).

    .venv/bin/python bench/bench_toolkit.py              # 20000 calls per round, 5 rounds
    .venv/bin/python bench/bench_toolkit.py --calls 2000 --rounds 3

Only the tool layer: no HTTP, JSON-RPC envelope or session handling (see bench_server.py for those).
"""

from __future__ import annotations

import argparse
import statistics
import tempfile
import time
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any

import anyio
from mcp.server import MCPServer
from mcp.server.mcpserver import Context
from mcp.server.mcpserver.utilities.func_metadata import func_metadata
from mcp_types import CallToolResult, TextContent

from backchannel.mcp_tools._toolkit import ToolContext, ToolResult, Toolset, text_block

ARGS = {"message": "hello", "limit": "5", "channel": "general"}  # "5": lax coercion on both sides


def ours() -> Toolset:
    tools = Toolset("bench", "0", "")

    @tools.tool()
    async def ping(ctx: ToolContext, message: str, limit: int = 20, channel: str = "") -> ToolResult:
        """A trivial tool."""
        return ToolResult([text_block(f"{message} {limit}")], {"channel": channel})

    return tools


class _PydanticSpec:
    """The toolkit's former argument handling (pydantic ``create_model`` + ``model_validate``), for A/B."""

    def __init__(self, spec: Any, fn: Callable[..., Any]) -> None:
        import inspect
        import typing

        from pydantic import create_model

        hints = typing.get_type_hints(fn)
        definitions: dict[str, Any] = {}
        for p in inspect.signature(fn).parameters.values():
            if hints[p.name] is ToolContext:
                continue
            definitions[p.name] = hints[p.name] if p.default is p.empty else (hints[p.name], p.default)
        self.ctx_name = spec.ctx_name
        self.schema = spec.schema
        self.fields = tuple(definitions)
        self.json_fields = frozenset(n for n in definitions if hints[n] is not str)
        self.model = create_model("pingArguments", **definitions)

    def arguments(self, name: str, given: Any) -> dict[str, Any] | str:
        import json

        from pydantic import ValidationError

        data = {k: given[k] for k in self.fields if k in given}
        for key in self.json_fields.intersection(data):
            value = data[key]
            if isinstance(value, str):
                try:
                    parsed = json.loads(value)
                except (ValueError, RecursionError):
                    continue
                if not isinstance(parsed, str | int | float):
                    data[key] = parsed
        try:
            valid = self.model.model_validate(data)
        except ValidationError as exc:
            return f"{name}: {exc.error_count()} errors"
        return {k: getattr(valid, k) for k in self.fields}


def ours_with_pydantic() -> Toolset:
    tools = ours()
    tool = tools._tools["ping"]  # pyright: ignore[reportPrivateUsage]
    tool.spec = _PydanticSpec(tool.ready(), tool.fn)  # type: ignore[assignment]  # pyright: ignore[reportAttributeAccessIssue]
    return tools


def sdk() -> MCPServer:
    server: MCPServer = MCPServer("bench", log_level="WARNING")

    @server.tool()
    async def ping(ctx: Context, message: str, limit: int = 20, channel: str = "") -> CallToolResult:
        """A trivial tool."""
        return CallToolResult(
            content=[TextContent(type="text", text=f"{message} {limit}")],
            structured_content={"channel": channel},
        )

    return server


async def time_calls(calls: int, one: Callable[[], Awaitable[dict[str, Any]]]) -> float:
    """Process CPU seconds per call."""
    for _ in range(200):  # warm-up: lazy schema build, caches
        await one()
    start = time.process_time()
    for _ in range(calls):
        await one()
    return (time.process_time() - start) / calls


async def per_call(calls: int, rounds: int) -> None:
    toolset, server, former = ours(), sdk(), ours_with_pydantic()
    ctx = ToolContext({"authorization": "Bearer x"})

    async def via_toolset() -> dict[str, Any]:
        return (await toolset.call("ping", ARGS, ctx)).wire()

    async def via_former() -> dict[str, Any]:
        return (await former.call("ping", ARGS, ctx)).wire()

    async def via_sdk() -> dict[str, Any]:
        result = await server.call_tool("ping", ARGS)
        return result.model_dump(by_alias=True, mode="json", exclude_none=True)

    assert (await via_toolset())["content"] == (await via_sdk())["content"] == (await via_former())["content"]
    a: list[float] = []
    b: list[float] = []
    c: list[float] = []
    for _ in range(rounds):
        a.append(await time_calls(calls, via_toolset))
        b.append(await time_calls(calls, via_sdk))
        c.append(await time_calls(calls, via_former))
    ta, tb, tc = statistics.median(a), statistics.median(b), statistics.median(c)
    print(f"per call (median of {rounds} rounds x {calls} calls, process CPU):")
    print(f"  Toolset.call + wire()          {ta * 1e6:8.1f} us")
    print(f"  same, former pydantic args     {tc * 1e6:8.1f} us")
    print(f"  SDK MCPServer.call_tool + dump {tb * 1e6:8.1f} us")
    print(f"  ratio SDK / ours               {tb / ta:8.1f}x")


def schemas() -> None:
    """Our lazy schema build for the 15 real tools, and the SDK's func_metadata on the same functions."""
    from backchannel.bus import InMemoryEventBus
    from backchannel.config import Settings
    from backchannel.mcp_tools import build_toolset
    from backchannel.registry import Registry
    from backchannel.room import Room
    from backchannel.room_settings import RoomSettings
    from backchannel.server.deps import Services
    from backchannel.server.security import Guard, Secrets
    from backchannel.store import Store

    with tempfile.TemporaryDirectory() as tmp:
        cfg = Settings(data_dir=Path(tmp))
        store = Store(cfg.db_path)
        bus = InMemoryEventBus()
        registry = Registry(store, bus, cfg)
        room = Room(store, bus, registry, cfg, RoomSettings(store, bus, cfg))
        services = Services(cfg, store, bus, registry, room, Guard(cfg, Secrets.create(cfg)))

        def build() -> Toolset:
            return build_toolset(room, registry, services.jobs, services.rules, services.schedules)

        start = time.process_time()
        toolset = build()
        registering = time.process_time() - start
        start = time.process_time()
        toolset.list_wire()
        first = time.process_time() - start
        again: list[float] = []
        sdk_times: list[float] = []
        for _ in range(5):
            fresh = build()
            start = time.process_time()
            fresh.list_wire()
            again.append(time.process_time() - start)
            fns = [t.fn for t in fresh._tools.values()]  # pyright: ignore[reportPrivateUsage]
            start = time.process_time()
            for fn in fns:
                func_metadata(fn, skip_names=["ctx"]).arg_model.model_json_schema(by_alias=True)
            sdk_times.append(time.process_time() - start)
        store.close()
    print(f"schemas of all {len(toolset.list_wire())} tools (process CPU):")
    print(f"  build_toolset (registration, no schemas)  {registering * 1e3:6.1f} ms")
    print(f"  first list_wire() in this process         {first * 1e3:6.1f} ms")
    print(f"  list_wire() of a fresh toolset, median    {statistics.median(again) * 1e3:6.1f} ms")
    print(f"  SDK func_metadata + schema, same tools    {statistics.median(sdk_times) * 1e3:6.1f} ms")


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--calls", type=int, default=20000)
    parser.add_argument("--rounds", type=int, default=5)
    args = parser.parse_args()
    schemas()  # first: its "first list_wire()" is the cold cost a server pays on the first tools/list
    anyio.run(per_call, args.calls, args.rounds)


if __name__ == "__main__":
    main()
