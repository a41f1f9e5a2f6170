"""The tool toolkit on its own: schemas identical to the SDK's, validation, error mapping, wire shape.

No server here: a small fake toolset for the mechanics, and the real toolset over a temp store for
schema parity and the "never raises, never an internal error" property. The real server + SDK client
path is covered by the other modules of this package.
"""

from __future__ import annotations

import asyncio
import functools
import inspect
import json
import logging
import os
import subprocess
import sys
import typing
from collections.abc import Awaitable, Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import anyio
import anyio.from_thread
import pytest
from hypothesis import HealthCheck, event, given, settings
from hypothesis import strategies as st

from backchannel.bus import InMemoryEventBus
from backchannel.config import Settings
from backchannel.errors import InvalidInput
from backchannel.mcp_tools import build_toolset
from backchannel.mcp_tools._toolkit import (
    ToolContext,
    ToolResult,
    Toolset,
    image_block,
    text_block,
)
from backchannel.registry import Registry
from backchannel.room import Room
from backchannel.room_settings import RoomSettings
from backchannel.server.deps import Services
from backchannel.server.security import Guard, Secrets
from backchannel.store import Store

SNAPSHOT = Path(__file__).parents[1] / "fixtures" / "mcp_tools_list.json"  # the SDK's tools/list
NO_CTX = ToolContext({})


def fake_toolset() -> Toolset:
    tools = Toolset("fake", "0", "test tools")

    @tools.tool()
    async def echo(n: int, ctx: ToolContext, s: str = "", xs: list[str] | None = None) -> ToolResult:
        """Echo the arguments.

        Indented docstring lines are cleaned like inspect.cleandoc does.
        """
        got = {"n": n, "s": s, "xs": xs, "auth": ctx.headers.get("authorization")}
        return ToolResult([text_block(json.dumps(got))], got)

    @tools.tool(description="Always fails.")
    async def boom() -> ToolResult:
        raise RuntimeError("secret detail")

    @tools.tool()
    async def too_big(n: int = 0) -> ToolResult:
        raise OverflowError("Python int too large to convert to SQLite INTEGER")

    @tools.tool()
    async def half_emoji(s: str = "") -> ToolResult:
        s.encode()  # what SQLite does with a lone surrogate no domain check caught
        return ToolResult([text_block("never")])

    @tools.tool()
    async def refuse(why: str = "no") -> ToolResult:
        raise InvalidInput(f"refused: {why}")

    @tools.tool()
    async def cancelled() -> ToolResult:
        raise asyncio.CancelledError

    @tools.tool()
    async def wrong_type() -> ToolResult:
        return "not a result"  # type: ignore[return-value]

    return tools


def call(tools: Toolset, name: str, args: Any, ctx: ToolContext = NO_CTX) -> ToolResult:
    return anyio.run(tools.call, name, args, ctx)


def text(result: ToolResult) -> str:
    return "".join(block["text"] for block in result.content if block["type"] == "text")


# -- wire shapes ---------------------------------------------------------------------------------------


def test_result_wire_shape() -> None:
    assert ToolResult([text_block("hi")]).wire() == {
        "content": [{"type": "text", "text": "hi"}],
        "isError": False,
    }
    assert ToolResult([text_block("x")], {"id": 1}).wire() == {
        "content": [{"type": "text", "text": "x"}],
        "structuredContent": {"id": 1},
        "isError": False,
    }
    assert ToolResult([text_block("bad")], is_error=True).wire()["isError"] is True
    assert image_block("aGk=", "image/png") == {"type": "image", "data": "aGk=", "mimeType": "image/png"}


def test_list_wire_entries_and_descriptions() -> None:
    tools = fake_toolset()
    listed = tools.list_wire()
    assert tools.list_wire() is listed  # built once
    echo = listed[0]
    assert echo["name"] == "echo"
    assert echo["description"] == (
        "Echo the arguments.\n\nIndented docstring lines are cleaned like inspect.cleandoc does."
    )
    assert echo["inputSchema"] == {
        "type": "object",
        "title": "echoArguments",
        "properties": {
            "n": {"title": "N", "type": "integer"},
            "s": {"default": "", "title": "S", "type": "string"},
            "xs": {
                "anyOf": [{"items": {"type": "string"}, "type": "array"}, {"type": "null"}],
                "default": None,
                "title": "Xs",
            },
        },
        "required": ["n"],
    }
    assert listed[1]["description"] == "Always fails."
    assert listed[1]["inputSchema"] == {"type": "object", "title": "boomArguments", "properties": {}}


def test_schemas_are_built_lazily_and_unsupported_types_fail_loudly() -> None:
    tools = Toolset("lazy", "0", "")

    @tools.tool()
    async def later(ctx: ToolContext, n: int = 0, ratio: float = 1.0) -> ToolResult:
        return ToolResult([])

    # Registration costs nothing; the first use refuses a type we do not validate, naming the place.
    with pytest.raises(TypeError, match=r"tool later: parameter ratio: type .*float.* is not supported"):
        tools.list_wire()

    async def odd_dict(x: dict[str, int]) -> None: ...
    async def odd_any(x: Any) -> None: ...
    async def odd_list(x: list) -> None: ...  # type: ignore[type-arg]  # pyright: ignore[reportMissingTypeArgument]
    async def odd_tuple(x: tuple[int]) -> None: ...
    async def odd_args(*x: int) -> None: ...
    async def odd_default(x: list[str] | None = []) -> None: ...  # noqa: B006

    odd_ones: list[Callable[..., Awaitable[None]]] = [
        odd_dict,
        odd_any,
        odd_list,
        odd_tuple,
        odd_args,
        odd_default,
    ]
    for fn in odd_ones:
        odd = Toolset("odd", "0", "")
        odd.tool()(fn)
        with pytest.raises(TypeError, match=f"tool {fn.__name__}: parameter x"):
            odd.list_wire()


# -- arguments ------------------------------------------------------------------------------------------


def test_lax_coercion_json_strings_and_extra_arguments() -> None:
    tools = fake_toolset()
    result = call(tools, "echo", {"n": "5", "xs": '["a", "b"]', "unknown": 1})
    assert not result.is_error, text(result)
    assert result.structured == {"n": 5, "s": "", "xs": ["a", "b"], "auth": None}
    assert call(tools, "echo", {"n": 7.0, "xs": None}).structured == {
        "n": 7,
        "s": "",
        "xs": None,
        "auth": None,
    }
    # a JSON string that parses to a scalar stays the string it was
    assert call(tools, "echo", {"n": 1, "s": "12"}).structured["s"] == "12"  # type: ignore[index]


def test_context_reaches_the_tool_and_is_not_an_argument() -> None:
    tools = fake_toolset()
    ctx = ToolContext({"authorization": "Bearer t"})
    result = call(tools, "echo", {"n": 1, "ctx": "spoof"}, ctx)
    assert result.structured == {"n": 1, "s": "", "xs": None, "auth": "Bearer t"}


@pytest.mark.parametrize(
    ("args", "message"),
    [
        ({}, "echo: n is required"),
        (None, "echo: n is required"),
        ({"n": "x"}, "echo: n must be an integer (got 'x')"),
        ({"n": 1.5}, "echo: n must be an integer (got 1.5)"),
        ({"n": [1]}, "echo: n must be an integer (got [1])"),
        ({"n": 1, "s": 5}, "echo: s must be a string (got 5)"),
        ({"n": 1, "xs": ["a", 2]}, "echo: xs must be a list of strings or null (got ['a', 2])"),
        ({"n": 1, "xs": "yes/no"}, "echo: xs must be a list of strings or null (got 'yes/no')"),
        (
            {"s": 5, "xs": 3},
            "echo: n is required; s must be a string (got 5); xs must be a list of strings or null (got 3)",
        ),
        (
            {"n": "y" * 100},
            "echo: n must be an integer (got '" + "y" * 56 + "...)",  # long values are cut
        ),
        (["n", 1], "echo: arguments must be a JSON object"),
    ],
)
def test_bad_arguments_are_named_in_plain_words(args: Any, message: str) -> None:
    result = call(fake_toolset(), "echo", args)
    assert result.is_error
    assert text(result) == message
    assert "pydantic" not in text(result) and "http" not in text(result)


def test_unknown_tool() -> None:
    result = call(fake_toolset(), "no_such_tool", {"x": 1})
    assert result.is_error and text(result) == "Unknown tool: no_such_tool"
    for name in (["echo"], None, 5):  # whatever JSON an endpoint passes on
        assert call(fake_toolset(), name, {}).is_error  # type: ignore[arg-type]


# -- errors from the tool -------------------------------------------------------------------------------


def test_errors_become_short_tool_errors(caplog: pytest.LogCaptureFixture) -> None:
    tools = fake_toolset()
    refused = call(tools, "refuse", {"why": "because"})
    assert refused.is_error and text(refused) == "refused: because"
    big = call(tools, "too_big", {"n": 2**70})
    assert big.is_error and text(big) == f"too_big: a number argument is too large (at most {2**63 - 1})"
    half = call(tools, "half_emoji", {"s": "hi \ud800"})
    assert half.is_error and "must be valid Unicode" in text(half)
    with caplog.at_level(logging.ERROR, logger="backchannel.mcp"):
        failed = call(tools, "boom", {})
    assert failed.is_error
    assert text(failed) == "boom failed with an internal error; the server log has details."
    assert "secret detail" not in text(failed)
    assert any("boom" in r.getMessage() and r.exc_info for r in caplog.records)  # the log has the traceback
    assert text(call(tools, "wrong_type", {})).startswith("wrong_type failed with an internal error")


def test_cancellation_is_not_swallowed() -> None:
    async def main() -> None:
        with pytest.raises(asyncio.CancelledError):
            await fake_toolset().call("cancelled", {}, NO_CTX)

    asyncio.run(main())


# -- the real toolset -----------------------------------------------------------------------------------


@dataclass
class Real:
    portal: anyio.from_thread.BlockingPortal
    tools: Toolset
    ctx: ToolContext


@pytest.fixture(scope="module")
def real(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Real]:
    """The real toolset over a temp store, driven from sync code (hypothesis) through one event loop."""
    cfg = Settings(data_dir=tmp_path_factory.mktemp("toolkit") / "data")

    async def build() -> tuple[Store, Toolset, str]:
        store = Store(cfg.db_path)
        bus = InMemoryEventBus()
        registry = Registry(store, bus, cfg)
        room = Room(store, bus, registry, cfg, RoomSettings(store, bus, cfg))
        services = Services(cfg, store, bus, registry, room, Guard(cfg, Secrets.create(cfg)))
        tools = build_toolset(room, registry, services.jobs, services.rules, services.schedules)
        registered = await registry.register("claude", "i-toolkit", None)
        return store, tools, registered.token

    with anyio.from_thread.start_blocking_portal() as portal:
        store, tools, token = portal.call(build)
        try:
            yield Real(portal, tools, ToolContext({"authorization": f"Bearer {token}"}))
        finally:
            store.close()


def test_schemas_match_the_sdk_snapshot(real: Real) -> None:
    snapshot = json.loads(SNAPSHOT.read_text())
    listed = real.tools.list_wire()
    assert [t["name"] for t in listed] == [t["name"] for t in snapshot]
    for ours, sdk in zip(listed, snapshot, strict=True):
        assert set(ours) == {"name", "description", "inputSchema"}
        assert ours["inputSchema"] == sdk["inputSchema"], ours["name"]
        # The SDK sent docstrings with their indentation; ours are cleaned, same words.
        assert ours["description"] == inspect.cleandoc(sdk["description"]), ours["name"]


def test_a_real_tool_call_works(real: Real) -> None:
    sent = real.portal.call(real.tools.call, "chat_send", {"message": "hello", "reply_to": "-1"}, real.ctx)
    assert not sent.is_error, text(sent)
    wire = sent.wire()
    assert wire["structuredContent"]["channel"] == "general" and text(sent).startswith("Sent (id=")
    anonymous = real.portal.call(real.tools.call, "chat_read", None, NO_CTX)
    assert anonymous.is_error and "Re-register" in text(anonymous)


SNAPSHOT_TOOLS = json.loads(SNAPSHOT.read_text())
json_values = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats(allow_nan=False) | st.text(max_size=20),
    lambda inner: st.lists(inner, max_size=3) | st.dictionaries(st.text(max_size=5), inner, max_size=3),
    max_leaves=6,
)


def typed(schema: dict[str, Any]) -> st.SearchStrategy[Any]:
    """Values of the type a parameter wants, so calls get past validation into the tool itself."""
    if "anyOf" in schema:
        return st.one_of([typed(s) for s in schema["anyOf"]])
    kind = schema.get("type")
    if kind == "integer":
        return st.integers(min_value=-5, max_value=5) | st.integers()
    if kind == "array":
        return st.lists(typed(schema["items"]), max_size=3)
    if kind == "null":
        return st.none()
    return st.sampled_from(["", "general", "list", "me", "x"]) | st.text(max_size=30)


@st.composite
def tool_calls(draw: st.DrawFn) -> tuple[str, Any]:
    tool = draw(st.sampled_from(SNAPSHOT_TOOLS))
    if draw(st.integers(0, 9)) == 0:
        return tool["name"], draw(json_values)  # not even an object
    garbage = draw(st.booleans())  # else only well-typed values: calls that reach the tool's own code
    args: dict[str, Any] = {}
    for key, schema in tool["inputSchema"]["properties"].items():
        if key in tool["inputSchema"].get("required", ()) or draw(st.booleans()):
            args[key] = draw(typed(schema) | json_values if garbage else typed(schema))
    if garbage:
        args |= draw(st.dictionaries(st.sampled_from(["ctx", "sender"]) | st.text(max_size=8), json_values))
    return tool["name"], args


@given(call_=tool_calls())
@settings(max_examples=100, deadline=None, database=None, suppress_health_check=[HealthCheck.too_slow])
def test_any_json_arguments_give_a_result_never_a_crash(real: Real, call_: tuple[str, Any]) -> None:
    name, args = call_
    result = real.portal.call(real.tools.call, name, args, real.ctx)
    event(f"{name} {'error' if result.is_error else 'ok'}")  # --hypothesis-show-statistics
    json.dumps(result.wire())  # always sendable
    assert "internal error" not in text(result), (name, args, text(result))
    assert result.content and all(b["type"] in ("text", "image") for b in result.content)


# -- parity with pydantic's lax mode (what the SDK validated with) --------------------------------------

ANNOTATIONS: list[Any] = [
    int,
    str,
    bool,
    list[str],
    list[int],
    list[bool],
    int | None,
    bool | None,
    list[str] | None,
    list[str] | str | None,  # chat_schedule's targets
    int | str,
    str | int,
    int | bool,
    list[int] | int | None,
]
SPACES = " \t\n\r\x0b\x0c\x1c\x1f\x85\xa0\u2003\u2028\u3000"
number_texts = st.tuples(
    st.text(SPACES, max_size=2),
    st.from_regex(r"[+-]?[0-9_]{0,5}(\.[0-9_]{0,3})?([eE][0-9]{1,2})?", fullmatch=True)
    | st.sampled_from(["inf", "nan", "0x10", "\u0665", "\uff15", "True"]),
    st.text(SPACES, max_size=2),
).map("".join)
bool_texts = st.sampled_from(
    ["true", "false", "yes", "no", "on", "off", "t", "f", "y", "n", "1", "0", "2"]
).map(lambda w: w.upper() if len(w) % 2 else w.title()) | st.sampled_from([" true", "1.0", "tru", ""])
edge_numbers = st.sampled_from([2**63 - 1, 2**63, -(2**63), 10**30, 2.0**63, -(2.0**63), 9.2e18, -0.0, 1e300])
PARITY_EXAMPLES = int(os.environ.get("TOOLKIT_PARITY_EXAMPLES", "500"))  # more for a long local run
scalars = json_values | number_texts | bool_texts | edge_numbers | st.floats() | st.integers(-2, 2)
values = scalars | st.lists(scalars, max_size=3)


@functools.cache
def adapter(annotation: Any) -> Any:
    from pydantic import TypeAdapter

    return TypeAdapter(annotation)


@given(annotation=st.sampled_from(ANNOTATIONS), value=values)
@settings(max_examples=PARITY_EXAMPLES, deadline=None, database=None)
def test_conversion_agrees_with_pydantic_lax_mode(annotation: Any, value: Any) -> None:
    from pydantic import ValidationError

    from backchannel.mcp_tools._toolkit import _BAD, _compile  # pyright: ignore[reportPrivateUsage]

    ours = _compile(annotation)[1](value)
    try:
        theirs = adapter(annotation).validate_python(value)
    except ValidationError:
        assert ours is _BAD, (annotation, value, ours)
        return
    assert ours is not _BAD, (annotation, value, theirs)
    assert ours == theirs and type(ours) is type(theirs), (annotation, value, ours, theirs)
    if isinstance(theirs, list):
        assert [type(v) for v in ours] == [type(v) for v in theirs]  # pyright: ignore[reportUnknownVariableType,reportUnknownArgumentType]


def test_schemas_equal_pydantics_byte_for_byte(real: Real) -> None:
    """Key order too: the same JSON text a client saw from the SDK, for every real tool and more types."""
    from pydantic import create_model

    async def many(
        ctx: ToolContext,
        flag: bool,
        ids: list[int],
        n: int = 3,
        maybe: bool | None = None,
        both: int | str = "x",
        nested: list[list[str]] | None = None,
        on: bool = True,
    ) -> ToolResult:
        return ToolResult([])

    fns = [t.fn for t in real.tools._tools.values()] + [many]  # pyright: ignore[reportPrivateUsage]
    extra = Toolset("x", "0", "")
    extra.tool()(many)
    schemas = [t["inputSchema"] for t in real.tools.list_wire() + extra.list_wire()]
    for fn, ours in zip(fns, schemas, strict=True):
        sig = inspect.signature(fn)
        hints = typing.get_type_hints(fn)
        fields: dict[str, Any] = {
            n: hints[n] if p.default is p.empty else (hints[n], p.default)
            for n, p in sig.parameters.items()
            if hints[n] is not ToolContext
        }
        model = create_model(f"{fn.__name__}Arguments", **fields)
        assert json.dumps(ours) == json.dumps(model.model_json_schema(by_alias=True)), fn.__name__


def test_the_mcp_path_does_not_import_pydantic(tmp_path: Path) -> None:
    """A cold server answers MCP before FastAPI (and so pydantic) is loaded: the toolset must not need it."""
    script = f"""
import sys
from pathlib import Path

import anyio
from backchannel.bus import InMemoryEventBus
from backchannel.config import Settings
from backchannel.jobs import JobBoard
from backchannel.mcp_tools import build_toolset
from backchannel.mcp_tools._toolkit import ToolContext
from backchannel.registry import Registry
from backchannel.room import Room
from backchannel.room_settings import RoomSettings
from backchannel.rules import Rules
from backchannel.schedules import Schedules
from backchannel.store import Store

async def main():
    cfg = Settings(data_dir=Path({str(tmp_path)!r}))
    store = Store(cfg.db_path)
    bus = InMemoryEventBus()
    registry = Registry(store, bus, cfg)
    room_settings = RoomSettings(store, bus, cfg)
    room = Room(store, bus, registry, cfg, room_settings)
    rules = Rules(store, bus, registry, room_settings)
    tools = build_toolset(room, registry, JobBoard(room, store, cfg), rules, Schedules(room, store))
    token = (await registry.register("claude", "i-cold", None)).token
    assert len(tools.list_wire()) == 15
    ctx = ToolContext({{"authorization": "Bearer " + token}})
    sent = await tools.call("chat_send", {{"message": "hi", "reply_to": "-1"}}, ctx)
    read = await tools.call("chat_read", {{"limit": "5"}}, ctx)
    assert not sent.is_error and not read.is_error, (sent, read)
    store.close()
    heavy = ("pydantic", "pydantic_core", "fastapi", "mcp")
    loaded = sorted(m for m in sys.modules if m.split(".")[0] in heavy)
    print("LOADED", loaded)

anyio.run(main)
"""
    done = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, timeout=60)
    assert done.returncode == 0, done.stderr[-3000:]
    assert "LOADED []" in done.stdout, done.stdout


def test_ok_json_is_compact_utf8_and_falls_back_for_what_orjson_refuses() -> None:
    from backchannel.mcp_tools._base import dumps, ok_json

    result = ok_json([{"text": "héllo ✓", "id": 1}], "messages")
    assert text(result) == '[{"text":"héllo ✓","id":1}]' and result.structured == {
        "messages": [{"text": "héllo ✓", "id": 1}]
    }
    # orjson raises on these; json takes them, so the tool still answers (and the same compact form)
    assert dumps({"big": 2**70}) == '{"big":1180591620717411303424}'
    assert dumps({1: "a"}) == '{"1":"a"}'
    assert dumps(["\ud800x"]) == '["\ud800x"]'
