"""Custom session template rows; every function runs inside the caller's transaction.

Built-in templates live in code (``session_templates.BUILTIN``) and are answered here too, so the
engine asks one place for any template id. A row's body is the template's public JSON, validated
again when read: a row edited by hand into something invalid is skipped, never run.
"""

from __future__ import annotations

import json
import secrets
import sqlite3
import time
from typing import Any

from backchannel.errors import Conflict, InvalidInput, NotFound
from backchannel.session_templates import BUILTIN, Template, show, validate

MAX_CUSTOM = 50


def _body(template: Template) -> str:
    data: dict[str, Any] = template.public()
    del data["builtin"]
    return json.dumps(data)


def _load(template_id: str, body: str) -> Template | None:
    try:
        data: Any = json.loads(body)
    except ValueError:
        return None
    if isinstance(data, dict):
        data["id"] = template_id  # the key is the row's id, whatever the body says
    template, _ = validate(data)
    return template


def get(conn: sqlite3.Connection, template_id: str) -> Template | None:
    """A built-in or custom template, or None."""
    if template_id in BUILTIN:
        return BUILTIN[template_id]
    row = conn.execute("SELECT id, body FROM session_templates WHERE id = ?", (template_id,)).fetchone()
    return None if row is None else _load(row["id"], row["body"])


def list_all(conn: sqlite3.Connection) -> list[Template]:
    """Built-ins first (in their fixed order), then custom templates, oldest first."""
    found = [_load(r["id"], r["body"]) for r in conn.execute(_CUSTOM)]
    return [*BUILTIN.values(), *(t for t in found if t is not None)]


_CUSTOM = "SELECT id, body FROM session_templates ORDER BY created_at, rowid"


def count_custom(conn: sqlite3.Connection) -> int:
    return int(conn.execute("SELECT count(*) FROM session_templates").fetchone()[0])


def save(
    conn: sqlite3.Connection, template: Template, created_by: str | None, limit: int = MAX_CUSTOM
) -> Template:
    """Store a new custom template (409 when its id is taken or the library holds ``limit``)."""
    if template.id in BUILTIN:
        raise Conflict(f'template id "{template.id}" is a built-in template; choose another id')
    if conn.execute("SELECT 1 FROM session_templates WHERE id = ?", (template.id,)).fetchone():
        raise Conflict(f'a template with id "{template.id}" already exists; choose another id')
    if count_custom(conn) >= limit:
        raise Conflict(f"there are already {limit} custom templates (the limit); delete one first")
    saved = Template(template.id, template.name, template.description, template.roles, template.phases)
    conn.execute(
        "INSERT INTO session_templates(id, uid, body, created_by, created_at) VALUES (?,?,?,?,?)",
        (saved.id, secrets.token_hex(16), _body(saved), created_by, time.time()),
    )
    return saved


def delete(conn: sqlite3.Connection, template_id: str) -> None:
    """Remove a custom template (built-ins cannot be removed)."""
    if template_id in BUILTIN:
        raise InvalidInput(f"{show(template_id)} is a built-in template and cannot be deleted")
    if conn.execute("DELETE FROM session_templates WHERE id = ?", (template_id,)).rowcount == 0:
        raise NotFound(f"no custom template {show(template_id)}")
