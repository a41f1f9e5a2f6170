"""Server settings, resolved once at the edge: CLI flag > ``BACKCHANNEL_*`` env > TOML file > default.

This is the only module that reads ``os.environ`` for server settings, so everything else is built
from an explicit :class:`Settings` and tests can make as many isolated servers as they like.
"""

from __future__ import annotations

import logging
import os
import re
import tomllib
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field, fields, replace
from pathlib import Path
from typing import Any, cast

import platformdirs

from backchannel.errors import InvalidInput

DEFAULT_PORT = 8300
DEFAULT_URL = f"http://127.0.0.1:{DEFAULT_PORT}"
CONFIG_FILE_NAME = "backchannel.toml"
logger = logging.getLogger("backchannel.config")


def default_data_dir() -> Path:
    """The per-user data dir, used when neither ``--data-dir`` nor ``BACKCHANNEL_DATA_DIR`` is given."""
    return Path(platformdirs.user_data_dir("backchannel", appauthor=False))


def default_config_dir() -> Path:
    return Path(platformdirs.user_config_dir("backchannel", appauthor=False))


@dataclass(frozen=True, slots=True)
class Settings:
    """Everything a server instance needs; every field has a default and a help string."""

    host: str = field(default="127.0.0.1", metadata={"help": "Interface to bind; loopback by default."})
    port: int = field(default=DEFAULT_PORT, metadata={"help": "TCP port; 0 picks a free one."})
    data_dir: Path = field(
        default_factory=default_data_dir,
        metadata={"help": "Where the SQLite database, uploads and the local secret live."},
    )
    allow_network: bool = field(
        default=False,
        metadata={"help": "Allow a non-loopback --host; agents then need the join key, people the login."},
    )
    crash_timeout: float = field(
        default=60.0,
        metadata={"help": "Seconds without heartbeat or MCP call before an agent is shown offline."},
    )
    presence_sweep_interval: float = field(
        default=2.0, metadata={"help": "Seconds between checks for agents past the crash timeout."}
    )
    loop_guard_hops: int = field(
        default=4,
        metadata={"help": "Agent-to-agent hops per channel without a human message before routing pauses."},
    )
    rules_refresh_every: int = field(
        default=10,
        metadata={
            "help": "Wake-ups after which an agent is sent the active rules again; 0 = only after a change."
        },
    )
    max_channels: int = field(default=64, metadata={"help": "Maximum number of channels."})
    max_message_chars: int = field(default=16_000, metadata={"help": "Maximum characters in one message."})
    job_title_max: int = field(default=120, metadata={"help": "Maximum characters in a job's title."})
    job_body_max: int = field(default=1000, metadata={"help": "Maximum characters in a job's body."})
    max_schedules: int = field(default=100, metadata={"help": "Maximum number of schedules in the room."})
    max_session_templates: int = field(
        default=50, metadata={"help": "Maximum number of custom session templates."}
    )
    max_upload_bytes: int = field(
        default=10 * 1024 * 1024, metadata={"help": "Maximum size of one uploaded image, in bytes."}
    )
    read_limit_max: int = field(
        default=200, metadata={"help": "Upper bound on messages returned by one read (REST or MCP)."}
    )
    token_idle_expiry: float = field(
        default=86_400.0,
        metadata={"help": "Seconds an agent may stay silent before its token is revoked (it re-registers)."},
    )
    agent_colors: tuple[tuple[str, str], ...] = field(
        default=(),
        metadata={"help": "Agent colours by base, from [agents.<base>].color in the config file only."},
    )
    # Above the 4-5 s that Node's and httpx's pools keep an idle socket: the client must close first,
    # or a request sent as the server closes the socket fails for no reason (see wrapper/serving.py).
    idle_timeout: float = field(
        default=15.0,
        metadata={
            "help": "Seconds a connection may stay open with no request in progress before it is closed."
        },
    )
    request_timeout: float = field(
        default=30.0,
        metadata={
            "help": "Seconds a client may take to send request headers, and the longest pause inside a body."
        },
    )
    max_connections: int = field(
        default=0,
        metadata={"help": "Open connections at most; 0 = derived from the open-file limit (kept below it)."},
    )

    @property
    def db_path(self) -> Path:
        return self.data_dir / "backchannel.db"

    @property
    def uploads_dir(self) -> Path:
        return self.data_dir / "uploads"

    @property
    def is_loopback(self) -> bool:
        return is_loopback_host(self.host)


SETTING_HELP: dict[str, str] = {f.name: f.metadata["help"] for f in fields(Settings)}


def is_loopback_host(host: str) -> bool:
    return host in {"127.0.0.1", "localhost", "::1"} or host.startswith("127.")


def _coerce(name: str, raw: Any, source: str | None = None) -> Any:
    """Turn a TOML or env value into the field's type, with a clear error naming the setting."""
    default = getattr(Settings(data_dir=Path(".")), name)
    try:
        if isinstance(default, bool):
            if isinstance(raw, bool):
                return raw
            text = str(raw).strip().lower()
            if text in {"1", "true", "yes", "on"}:
                return True
            if text in {"0", "false", "no", "off", ""}:
                return False
            raise ValueError(raw)
        if isinstance(raw, bool):
            raise ValueError(raw)  # `true` is not a number
        if isinstance(default, int):
            if isinstance(raw, float) and not raw.is_integer():
                raise ValueError(raw)
            return int(raw)
        if isinstance(default, float):
            return float(raw)
        if isinstance(default, Path):
            return Path(os.path.expanduser(str(raw)))
        return str(raw)
    except (TypeError, ValueError):
        where = f" (from {source})" if source and source != name else ""
        raise InvalidInput(f"setting {name!r}{where} has an invalid value: {raw!r}") from None


def find_config_file(explicit: Path | None, env: Mapping[str, str]) -> Path | None:
    """``--config``, then ``BACKCHANNEL_CONFIG``, then ./backchannel.toml, then the user config dir."""
    if explicit is not None:
        return explicit
    if env.get("BACKCHANNEL_CONFIG"):
        return Path(env["BACKCHANNEL_CONFIG"]).expanduser()
    for candidate in (Path.cwd() / CONFIG_FILE_NAME, default_config_dir() / CONFIG_FILE_NAME):
        if candidate.is_file():
            return candidate
    return None


def read_toml(path: Path | None) -> dict[str, Any]:
    if path is None:
        return {}
    try:
        with path.open("rb") as fh:
            return tomllib.load(fh)
    except FileNotFoundError:
        raise InvalidInput(f"config file not found: {path}") from None
    except tomllib.TOMLDecodeError as exc:
        raise InvalidInput(f"config file {path} is not valid TOML: {exc}") from None


# Settings that only the config file can give (they are tables, not single values).
_FILE_ONLY = frozenset({"agent_colors"})
_COLOR_RE = re.compile(r"^#(?:[0-9a-fA-F]{3}|[0-9a-fA-F]{6})$")
# agentchattr tables that have no meaning here, with the reason a user gets in the warning.
_IGNORED_TABLES = {
    "mcp": "MCP is served on the server's own port, at /mcp and /sse",
}
Warn = Callable[[str], None]


def _table(config: Mapping[str, Any], name: str) -> dict[str, Any]:
    raw: object = config.get(name, {})
    if not isinstance(raw, dict):
        raise InvalidInput(f"[{name}] in the config file must be a table")
    return cast(dict[str, Any], raw)


def _agent_colors(config: Mapping[str, Any]) -> tuple[tuple[str, str], ...]:
    """``[agents.<name>].color``, keyed by the registration base the wrapper derives from <name>."""
    colors: list[tuple[str, str]] = []
    for agent, raw in _table(config, "agents").items():
        if not isinstance(raw, dict):
            raise InvalidInput(f"[agents.{agent}] in the config file must be a table")
        color: object = cast(dict[str, Any], raw).get("color")
        if color is None:
            continue
        if not isinstance(color, str) or not _COLOR_RE.fullmatch(color.strip()):
            raise InvalidInput(f'[agents.{agent}].color must be a hex colour like "#d97757", not {color!r}')
        base = re.sub(r"[^a-z0-9-]+", "-", agent.strip().lower()).strip("-")[:32]
        colors.append((base, color.strip().lower()))
    return tuple(colors)


def _from_file(config: Mapping[str, Any], warn: Warn) -> dict[str, Any]:
    """Settings from the config file: ``[server]``, the agentchattr keys that map onto ours, and one
    warning for each table or key that means nothing here (never a silent trap, never a hard stop)."""
    names = {f.name for f in fields(Settings)} - _FILE_ONLY
    values: dict[str, Any] = {}
    routing = _table(config, "routing")
    for key, raw in routing.items():
        if key == "max_agent_hops":
            values["loop_guard_hops"] = _coerce("loop_guard_hops", raw, source="[routing].max_agent_hops")
        else:
            warn(f"[routing].{key} is not supported and is ignored")
    images = _table(config, "images")
    for key, raw in images.items():
        if key == "max_size_mb":
            if isinstance(raw, bool) or not isinstance(raw, int | float) or raw <= 0:
                raise InvalidInput(
                    f"[images].max_size_mb must be a positive number of megabytes, not {raw!r}"
                )
            values["max_upload_bytes"] = int(raw * 1024 * 1024)
        elif key == "upload_dir":
            warn("[images].upload_dir is ignored: uploads live in <data_dir>/uploads")
        else:
            warn(f"[images].{key} is not supported and is ignored")
    for key, raw in _table(config, "rules").items():
        if key == "refresh_every":
            source = "[rules].refresh_every"
            values["rules_refresh_every"] = _coerce("rules_refresh_every", raw, source=source)
        else:
            warn(f"[rules].{key} is not supported and is ignored")
    for key, raw in _table(config, "server").items():
        if key not in names:
            warn(f"unknown setting [server].{key} is ignored; known: {', '.join(sorted(names))}")
            continue
        values[key] = _coerce(key, raw, source=f"[server].{key}")
    colors = _agent_colors(config)
    if colors:
        values["agent_colors"] = colors
    for key in config:
        if key in {"server", "routing", "images", "agents", "rules"}:
            continue
        reason = _IGNORED_TABLES.get(key, "backchannel does not use it")
        kind = "table" if isinstance(config[key], dict) else "key"
        warn(
            f"[{key}] is ignored: {reason}"
            if kind == "table"
            else f"config {kind} {key!r} is ignored: {reason}"
        )
    return values


def load_settings(
    cli: Mapping[str, Any] | None = None,
    env: Mapping[str, str] | None = None,
    config_file: Path | None = None,
    warn: Warn | None = None,
) -> Settings:
    """Build Settings from CLI values (None = not given), the environment and the config file.

    Tables and keys that mean nothing here are reported through ``warn`` (default: the log), once
    each; a value of the wrong type is an error.
    """
    env = os.environ if env is None else env
    cli = {k: v for k, v in (cli or {}).items() if v is not None}
    path = find_config_file(config_file, env)
    values = _from_file(read_toml(path), warn or logger.warning)
    for name in {f.name for f in fields(Settings)} - _FILE_ONLY:
        raw_env = env.get(f"BACKCHANNEL_{name.upper()}")
        if raw_env:
            values[name] = _coerce(name, raw_env, source=f"BACKCHANNEL_{name.upper()}")
    for key, raw in cli.items():
        values[key] = _coerce(key, raw)
    return replace(Settings(), **values)


def client_server_url(explicit: str | None, env: Mapping[str, str] | None = None) -> str:
    """Where local CLI commands find the server: ``--server``, ``BACKCHANNEL_URL``, then the default."""
    env = os.environ if env is None else env
    return (explicit or env.get("BACKCHANNEL_URL") or DEFAULT_URL).rstrip("/")


def client_data_dir(explicit: Path | None, env: Mapping[str, str] | None = None) -> Path:
    env = os.environ if env is None else env
    if explicit is not None:
        return explicit
    if env.get("BACKCHANNEL_DATA_DIR"):
        return Path(env["BACKCHANNEL_DATA_DIR"]).expanduser()
    return default_data_dir()
