"""``[agents.<name>] type = "api"``: a model behind an OpenAI-compatible endpoint, as an agent.

agentchattr's keys (``base_url``, ``model``, ``api_key_env``, ``temperature``, ``context_messages``,
``system_prompt``) mean what they mean there; ours add ``vision``, ``stream``, ``tools``,
``max_tool_rounds``, ``timeout``, ``label``, ``color`` and ``cwd``. The key itself never appears in the
config: only the name of the environment variable that holds it.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any
from urllib.parse import unquote, urlsplit, urlunsplit

from backchannel.errors import InvalidInput
from backchannel.wrapper._json import json_object
from backchannel.wrapper.profiles import AgentProfile, base_name

API_KEYS = frozenset(
    {
        "type",
        "base_url",
        "model",
        "api_key_env",
        "temperature",
        "context_messages",
        "system_prompt",
        "vision",
        "stream",
        "tools",
        "max_tool_rounds",
        "timeout",
        "label",
        "color",
        "cwd",
    }
)
_ENV_NAME = re.compile(r"^[A-Za-z_][A-Za-z0-9_]{0,127}$")


@dataclass(frozen=True, slots=True)
class ApiAgentConfig:
    """One API agent's settings, checked."""

    key: str
    base: str
    base_url: str
    model: str
    cwd: Path
    api_key_env: str | None = None
    temperature: float | None = None
    context_messages: int = 20
    system_prompt: str | None = None
    vision: bool = False
    stream: bool = True
    tools: bool = True
    max_tool_rounds: int = 8
    timeout: float = 120.0
    label: str | None = None
    color: str | None = None
    warnings: tuple[str, ...] = ()

    def profile(self) -> AgentProfile:
        """The wrapper profile the shared runner machinery (state, registration) works from."""
        return AgentProfile(
            key=self.key, base=self.base, command="", cwd=self.cwd, label=self.label, color=self.color
        )

    @property
    def shown_url(self) -> str:
        """``base_url`` as the terminal and the room may show it (no userinfo, query or fragment)."""
        return shown_url(self.base_url)

    def clear_text_warning(self, api_key: str | None) -> str | None:
        """A warning when the key would cross the network unencrypted (plain http, not loopback)."""
        if not api_key or urlsplit(self.base_url).scheme != "http" or is_loopback(self.base_url):
            return None
        return (
            f"{self.api_key_env} goes to {self.shown_url} over plain http://, readable on the way; "
            "use https:// for a model on another machine"
        )

    def api_key(self, env: Mapping[str, str]) -> str | None:
        """The key from the environment, or None when none is configured or the variable is empty."""
        if not self.api_key_env:
            return None
        return (env.get(self.api_key_env) or "").strip() or None


def shown_url(url: str) -> str:
    """``url`` without what may hold a secret: ``user:key@`` and ``?api-key=...`` are dropped."""
    parts = urlsplit(url)
    return urlunsplit((parts.scheme, parts.netloc.rpartition("@")[2], parts.path, "", ""))


def url_secrets(url: str) -> tuple[str, ...]:
    """What in ``url`` may be a credential (userinfo, query values): scrubbed from what is shown."""
    parts = urlsplit(url)
    found = [parts.password or parts.username or ""]  # https://KEY@host/ carries it as the user
    found += [value for pair in parts.query.split("&") for value in [pair.partition("=")[2]]]
    return tuple(unquote(f) for f in found if f)


def is_loopback(url: str) -> bool:
    """Whether ``url`` names this machine (a model there needs no proxy, and no TLS for its key)."""
    host = (urlsplit(url).hostname or "").lower()
    return host in ("localhost", "::1") or host.startswith("127.")


def api_table(agent: str, config: Mapping[str, Any]) -> dict[str, Any] | None:
    """The ``[agents.<agent>]`` table if it declares an API agent, else None."""
    agents = json_object(config.get("agents", {})) or {}
    table = json_object(agents.get(agent))
    return dict(table) if table is not None and table.get("type") == "api" else None


def _number(agent: str, key: str, raw: Any, low: float, high: float) -> float:
    if isinstance(raw, bool) or not isinstance(raw, int | float):
        raise InvalidInput(f"[agents.{agent}].{key} must be a number")
    return min(max(float(raw), low), high)


def _flag(agent: str, key: str, raw: Any) -> bool:
    if not isinstance(raw, bool):
        raise InvalidInput(f"[agents.{agent}].{key} must be true or false")
    return raw


def _text(agent: str, key: str, raw: Any) -> str:
    if not isinstance(raw, str) or not raw.strip():
        raise InvalidInput(f"[agents.{agent}].{key} must be a non-empty string")
    return raw.strip()


def load_api_config(
    agent: str, table: Mapping[str, Any], *, config_path: Path | None, cwd: Path
) -> ApiAgentConfig:
    """Check an API agent's table; bad values are clear errors, unknown keys warnings.

    Raises:
        InvalidInput: a missing ``base_url`` or ``model``, or a value of the wrong kind.
    """
    if "base_url" not in table:
        raise InvalidInput(
            f'[agents.{agent}] has type = "api" but no base_url (e.g. http://127.0.0.1:11434/v1)'
        )
    base_url = _text(agent, "base_url", table["base_url"]).rstrip("/")
    parts = urlsplit(base_url)
    if parts.scheme not in ("http", "https") or not parts.netloc:
        raise InvalidInput(
            f"[agents.{agent}].base_url must be an http:// or https:// URL, got {shown_url(base_url)!r}"
        )
    if "model" not in table:
        raise InvalidInput(f'[agents.{agent}] has type = "api" but no model (the name the endpoint knows)')
    model = _text(agent, "model", table["model"])
    key_env = table.get("api_key_env")
    if key_env is not None and (not isinstance(key_env, str) or not _ENV_NAME.match(key_env)):
        raise InvalidInput(
            f"[agents.{agent}].api_key_env must name an environment variable (e.g. OPENAI_API_KEY), "
            "not hold the key itself"
        )
    warnings = [
        f"[agents.{agent}].{key} is not a key of API agents and is ignored"
        for key in table
        if key not in API_KEYS
    ]
    config_dir = config_path.parent if config_path is not None else cwd
    raw_cwd = table.get("cwd")
    where = cwd if raw_cwd is None else Path(_text(agent, "cwd", raw_cwd)).expanduser()
    if not where.is_absolute():
        where = config_dir / where
    context = table.get("context_messages", 20)
    if isinstance(context, bool) or not isinstance(context, int):
        raise InvalidInput(f"[agents.{agent}].context_messages must be a whole number")
    rounds = table.get("max_tool_rounds", 8)
    if isinstance(rounds, bool) or not isinstance(rounds, int):
        raise InvalidInput(f"[agents.{agent}].max_tool_rounds must be a whole number")
    prompt = table.get("system_prompt")
    label = table.get("label")
    color = table.get("color")
    return ApiAgentConfig(
        key=agent,
        base=base_name(agent),
        base_url=base_url,
        model=model,
        cwd=where.resolve(),
        api_key_env=key_env,
        # agentchattr's range: 0 (deterministic) to 2.
        temperature=_number(agent, "temperature", table["temperature"], 0.0, 2.0)
        if "temperature" in table
        else None,
        context_messages=min(max(context, 0), 200),
        system_prompt=_text(agent, "system_prompt", prompt) if prompt is not None else None,
        vision=_flag(agent, "vision", table.get("vision", False)),
        stream=_flag(agent, "stream", table.get("stream", True)),
        tools=_flag(agent, "tools", table.get("tools", True)),
        max_tool_rounds=min(max(rounds, 1), 32),
        timeout=_number(agent, "timeout", table.get("timeout", 120.0), 1.0, 3600.0),
        label=_text(agent, "label", label) if label is not None else None,
        color=_text(agent, "color", color) if color is not None else None,
        warnings=tuple(warnings),
    )
