"""JSON read from users' files is untyped: narrow it to an object in one checked step."""

from __future__ import annotations

from typing import Any, cast

JSONDict = dict[str, Any]


def json_object(value: object) -> JSONDict | None:
    """``value`` as a JSON object, or None when it is anything else (a list, a string, ...)."""
    return cast(JSONDict, value) if isinstance(value, dict) else None
