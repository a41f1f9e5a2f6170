"""A small MCP tool toolkit: register async functions as tools, list their schemas, call them.

The server speaks MCP itself (tools only), so it needs just this much of what the SDK's MCPServer
did: a JSON schema per tool from its signature (identical to the SDK's, so no client sees a change),
lax validation of the arguments ("5" is an int, as before), and every failure turned into a short
tool error instead of a traceback. Schemas and validators are built on first use, not at start-up.
"""

from __future__ import annotations

import inspect
import json
import logging
import re
import types
import typing
from collections.abc import Awaitable, Callable, Mapping
from dataclasses import dataclass
from typing import Any, TypeVar

from backchannel.errors import BackchannelError
from backchannel.text import not_unicode

logger = logging.getLogger("backchannel.mcp")

F = TypeVar("F", bound=Callable[..., Awaitable[Any]])

MAX_INT = 2**63 - 1  # SQLite's integers: a larger argument fails as OverflowError deep in the store


@dataclass(frozen=True, slots=True)
class ToolContext:
    """What a tool may know about its request: only the headers (the token is the identity)."""

    headers: Mapping[str, str]  # lower-case names


@dataclass(slots=True)
class ToolResult:
    """A tools/call result; ``wire()`` is its MCP JSON shape."""

    content: list[dict[str, Any]]
    structured: dict[str, Any] | None = None
    is_error: bool = False

    def wire(self) -> dict[str, Any]:
        out: dict[str, Any] = {"content": self.content}
        if self.structured is not None:
            out["structuredContent"] = self.structured
        out["isError"] = self.is_error
        return out


def text_block(text: str) -> dict[str, Any]:
    return {"type": "text", "text": text}


def image_block(data_b64: str, mime: str) -> dict[str, Any]:
    return {"type": "image", "data": data_b64, "mimeType": mime}


def _error(text: str) -> ToolResult:
    return ToolResult([text_block(text)], is_error=True)


def _short(value: Any) -> str:
    text = repr(value)
    return text if len(text) <= 60 else text[:57] + "..."


_NAMES = {int: "integer", str: "string", float: "number", bool: "boolean"}


def _describe(annotation: Any, plural: bool = False) -> str:
    """The type a parameter wants, in words for a model: "an integer", "a list of strings or null"."""
    origin = typing.get_origin(annotation)
    if origin in (typing.Union, types.UnionType):
        return " or ".join(_describe(a, plural) for a in typing.get_args(annotation))
    if annotation is type(None):
        return "null"
    if origin is list:
        (item,) = typing.get_args(annotation) or (Any,)
        return ("lists" if plural else "a list") + " of " + _describe(item, plural=True)
    name = _NAMES.get(annotation)
    if name is None:
        return "valid values" if plural else "a valid value"
    if plural:
        return name + "s"
    return ("an " if name[0] in "aeiou" else "a ") + name


# -- arguments: pydantic's lax mode for the few types tools use, without importing pydantic -------------
#
# The SDK validated arguments with a pydantic model in lax mode. Importing pydantic costs a cold server
# ~0.2 s of CPU before its first answer, so the same rules are written out here for the annotations our
# tools use: str, int, bool, list[X], None and unions of those. tests/mcp_tools/test_toolkit.py checks,
# on random JSON values, that every one of them accepts, rejects and converts exactly as pydantic does.
# Any other annotation (float, dict, Any, Literal, ...) is refused with a TypeError on first use rather
# than validated loosely. Deliberate differences, none reachable from a JSON body: only the Python
# types JSON decodes to are taken (pydantic's Python mode also took tuples/sets as lists, bytes as str,
# Decimal and int subclasses as int), and parameter names pydantic reserved ("json", "model_*") are fine.

_BAD: Any = object()  # "not valid" from a converter (values may legitimately be None or False)
Convert = Callable[[Any], Any]

# Rust's str::trim() (pydantic-core): Unicode White_Space, which unlike str.strip() keeps \x1c-\x1f.
_SPACE = "\t\n\x0b\x0c\r \x85\xa0\u1680\u2028\u2029\u202f\u205f\u3000" + "".join(
    map(chr, range(0x2000, 0x200B))
)
# An integer as text: ASCII digits with single underscores between them, and a fraction of zeros only.
_INT_TEXT = re.compile(r"([+-]?[0-9]+(?:_[0-9]+)*)(?:\.0+)?")
_I64_LIMIT = 2.0**63  # a float converts to int only strictly inside (-2**63, 2**63), as in pydantic-core
_TRUE = frozenset({"1", "on", "t", "true", "y", "yes"})
_FALSE = frozenset({"0", "off", "f", "false", "n", "no"})


def _int_strict(value: Any) -> Any:
    return value if type(value) is int else _BAD


def _int_lax(value: Any) -> Any:
    kind: object = type(value)  # pyright: ignore[reportUnknownVariableType]
    if kind is int:
        return value
    if kind is bool:
        return int(value)
    if kind is float:  # 7.0 -> 7; 7.5, inf, nan and floats beyond 64 bits are refused
        return int(value) if value.is_integer() and -_I64_LIMIT < value < _I64_LIMIT else _BAD
    if kind is str:  # " 5 ", "+5", "1_000", "5.00"; not "5.", "1e3", "0x10" or Arabic digits
        match = _INT_TEXT.fullmatch(value.strip(_SPACE))
        if match is None:
            return _BAD
        try:
            return int(match[1])
        except ValueError:  # more digits than int() takes (sys.int_max_str_digits)
            return _BAD
    return _BAD


def _str(value: Any) -> Any:  # strict and lax alike: a number is not a string
    return value if type(value) is str else _BAD


def _bool_strict(value: Any) -> Any:
    return value if type(value) is bool else _BAD


def _bool_lax(value: Any) -> Any:
    kind: object = type(value)  # pyright: ignore[reportUnknownVariableType]
    if kind is bool:
        return value
    if kind is int or kind is float:
        return True if value == 1 else False if value == 0 else _BAD
    if kind is str:  # case-insensitive words, no stripping
        low = value.lower()
        return True if low in _TRUE else False if low in _FALSE else _BAD
    return _BAD


def _none(value: Any) -> Any:
    return None if value is None else _BAD


_SCALARS: dict[Any, tuple[Convert, Convert, dict[str, Any]]] = {
    int: (_int_strict, _int_lax, {"type": "integer"}),
    str: (_str, _str, {"type": "string"}),
    bool: (_bool_strict, _bool_lax, {"type": "boolean"}),
    type(None): (_none, _none, {"type": "null"}),
}


def _list_of(item: Convert) -> Convert:
    def convert(value: Any) -> Any:
        if type(value) is not list:  # a JSON string was parsed before; a dict is not a list
            return _BAD
        out: list[Any] = []
        for element in value:  # pyright: ignore[reportUnknownVariableType]
            got = item(element)
            if got is _BAD:
                return _BAD
            out.append(got)
        return out

    return convert


def _union_of(strict: list[Convert], lax: list[Convert]) -> Convert:
    """pydantic's "smart" union: the first member that takes the value as it is, else the first that
    takes it after conversion."""

    def convert(value: Any) -> Any:
        for member in strict:
            got = member(value)
            if got is not _BAD:
                return got
        for member in lax:
            got = member(value)
            if got is not _BAD:
                return got
        return _BAD

    return convert


def _compile(hint: Any) -> tuple[Convert, Convert, dict[str, Any]]:
    """(strict converter, lax converter, JSON schema) for an annotation; ValueError if unsupported."""
    scalar = _SCALARS.get(hint)
    if scalar is not None:
        return scalar[0], scalar[1], dict(scalar[2])  # a schema of its own: listed schemas are shared
    origin = typing.get_origin(hint)
    args = typing.get_args(hint)
    if origin is list and len(args) == 1:
        strict, lax, schema = _compile(args[0])
        return _list_of(strict), _list_of(lax), {"items": schema, "type": "array"}
    if origin in (typing.Union, types.UnionType):
        parts = [_compile(a) for a in args]
        stricts = [p[0] for p in parts]
        return (
            _union_of(stricts, []),
            _union_of(stricts, [p[1] for p in parts]),
            {"anyOf": [p[2] for p in parts]},
        )
    raise ValueError(hint)


@dataclass(frozen=True, slots=True)
class _Field:
    name: str
    convert: Convert  # lax
    required: bool
    default: Any
    parse_json: bool  # a string may be JSON for this field ('["a", "b"]' for a list), as the SDK did
    want: str  # "an integer", for error texts


def _title(name: str) -> str:
    """pydantic's default title for a field."""
    return name.title().replace("_", " ").strip()


class _Spec:
    """A tool's signature made usable: its fields, its input schema, and how to call the function."""

    __slots__ = ("ctx_name", "fields", "schema")

    def __init__(self, name: str, fn: Callable[..., Any]) -> None:
        hints = typing.get_type_hints(fn)
        self.ctx_name: str | None = None
        fields: list[_Field] = []
        properties: dict[str, Any] = {}
        required: list[str] = []
        for param in inspect.signature(fn).parameters.values():
            where = f"tool {name}: parameter {param.name}"
            if param.kind in (param.VAR_POSITIONAL, param.VAR_KEYWORD):
                raise TypeError(f"{where}: *args and **kwargs are not supported")
            if param.name not in hints:
                raise TypeError(f"{where} has no type annotation")
            hint = hints[param.name]
            if hint is ToolContext:
                self.ctx_name = param.name
                continue
            try:
                _, convert, schema = _compile(hint)
            except ValueError:
                raise TypeError(
                    f"{where}: type {hint!r} is not supported (str, int, bool, list[...], None and unions)"
                ) from None
            has_default = param.default is not inspect.Parameter.empty
            default = param.default if has_default else None
            if has_default and not (default is None or type(default) in (str, int, bool)):
                raise TypeError(f"{where}: default {default!r} is not a JSON scalar")
            prop = dict(schema)
            if has_default:
                prop["default"] = default
            else:
                required.append(param.name)
            prop["title"] = _title(param.name)
            properties[param.name] = dict(sorted(prop.items()))  # pydantic sorts keys
            fields.append(
                _Field(param.name, convert, not has_default, default, hint is not str, _describe(hint))
            )
        self.fields = tuple(fields)
        self.schema: dict[str, Any] = {"properties": properties}
        if required:
            self.schema["required"] = required
        self.schema["title"] = f"{name}Arguments"
        self.schema["type"] = "object"

    def arguments(self, name: str, given: Mapping[str, Any]) -> dict[str, Any] | str:
        """Converted keyword arguments, or the error text that names each bad one.

        Unknown arguments are ignored; a missing optional one gets its default.
        """
        kwargs: dict[str, Any] = {}
        problems: list[str] = []
        for field in self.fields:
            if field.name not in given:
                if field.required:
                    problems.append(f"{field.name} is required")
                else:
                    kwargs[field.name] = field.default
                continue
            value = raw = given[field.name]
            if field.parse_json and type(value) is str:
                try:
                    parsed = json.loads(value)
                except (ValueError, RecursionError):
                    pass
                else:
                    if not isinstance(parsed, str | int | float):  # "5" stays a string here
                        value = parsed
            got = field.convert(value)
            if got is _BAD:
                problems.append(f"{field.name} must be {field.want} (got {_short(raw)})")
            else:
                kwargs[field.name] = got
        if problems:
            return f"{name}: " + "; ".join(problems)
        return kwargs


class _Tool:
    __slots__ = ("description", "fn", "name", "spec")

    def __init__(self, name: str, description: str, fn: Callable[..., Awaitable[Any]]) -> None:
        self.name = name
        self.description = description
        self.fn = fn
        self.spec: _Spec | None = None

    def ready(self) -> _Spec:
        if self.spec is None:
            self.spec = _Spec(self.name, self.fn)
        return self.spec


class Toolset:
    """The tools one server offers; ``call`` never raises (but for cancellation)."""

    def __init__(self, name: str, version: str, instructions: str) -> None:
        self.name = name
        self.version = version
        self.instructions = instructions
        self._tools: dict[str, _Tool] = {}
        self._listed: list[dict[str, Any]] | None = None

    def tool(self, description: str | None = None) -> Callable[[F], F]:
        """Register an async function as a tool named after it, described by its docstring.

        A parameter annotated ``ToolContext`` receives the request's context and is not in the schema.
        """

        def register(fn: F) -> F:
            name = fn.__name__
            if name in self._tools:
                raise ValueError(f"tool {name} is registered twice")
            text = description if description is not None else inspect.cleandoc(fn.__doc__ or "")
            self._tools[name] = _Tool(name, text, fn)
            self._listed = None
            return fn

        return register

    def list_wire(self) -> list[dict[str, Any]]:
        """The tools/list entries, built once."""
        if self._listed is None:
            self._listed = [
                {"name": t.name, "description": t.description, "inputSchema": t.ready().schema}
                for t in self._tools.values()
            ]
        return self._listed

    async def call(self, name: str, arguments: Mapping[str, Any] | None, ctx: ToolContext) -> ToolResult:
        """Run tool ``name``; unknown tools, bad arguments and failures all come back as tool errors."""
        # A name straight from the JSON body may be any JSON value: look up strings only.
        tool = self._tools.get(name) if isinstance(name, str) else None  # pyright: ignore[reportUnnecessaryIsInstance]
        if tool is None:
            return _error(f"Unknown tool: {str(name)[:100]}")
        try:
            spec = tool.ready()
            if arguments is None:
                arguments = {}
            elif not isinstance(arguments, Mapping):  # pyright: ignore[reportUnnecessaryIsInstance]
                return _error(f"{name}: arguments must be a JSON object")
            kwargs = spec.arguments(name, arguments)
            if isinstance(kwargs, str):
                return _error(kwargs)
            if spec.ctx_name is not None:
                kwargs[spec.ctx_name] = ctx
            result = await tool.fn(**kwargs)
            if not isinstance(result, ToolResult):
                raise TypeError(f"tool {name} returned {type(result).__name__}, not ToolResult")
            return result
        except BackchannelError as exc:
            return _error(exc.detail)
        except OverflowError:  # an int argument beyond SQLite's 64 bits, e.g. since_id=10**30
            return _error(f"{name}: a number argument is too large (at most {MAX_INT})")
        except UnicodeEncodeError:  # a text field no domain check covers yet reached SQLite
            return _error(f"{name}: {not_unicode('a text argument')}")
        except Exception:
            logger.exception("tool %s failed", name)
            return _error(f"{name} failed with an internal error; the server log has details.")
