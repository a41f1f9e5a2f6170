"""Server settings, resolved once at the edge: CLI flag > ``BACKCHANNEL_*`` env > TOML file > default.

This is the only module that reads ``os.environ`` for server settings, so everything else is built
from an explicit :class:`Settings` and tests can make as many isolated servers as they like.
"""

from __future__ import annotations

import os
import tomllib
from collections.abc import Mapping
from dataclasses import dataclass, field, fields, replace
from pathlib import Path
from typing import Any, cast

import platformdirs

from backchannel.errors import InvalidInput

DEFAULT_PORT = 8300
DEFAULT_URL = f"http://127.0.0.1:{DEFAULT_PORT}"
CONFIG_FILE_NAME = "backchannel.toml"


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
    max_channels: int = field(default=64, metadata={"help": "Maximum number of channels."})
    max_message_chars: int = field(default=16_000, metadata={"help": "Maximum characters in one message."})
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
    mcp_session_idle_timeout: float = field(
        default=1800.0, metadata={"help": "Seconds before an idle MCP streamable-HTTP session is dropped."}
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


def _coerce(name: str, raw: Any) -> Any:
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
        if isinstance(default, int):
            return int(raw)
        if isinstance(default, float):
            return float(raw)
        if isinstance(default, Path):
            return Path(os.path.expanduser(str(raw)))
        return str(raw)
    except (TypeError, ValueError):
        raise InvalidInput(f"setting {name!r} has an invalid value: {raw!r}") from None


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


def load_settings(
    cli: Mapping[str, Any] | None = None,
    env: Mapping[str, str] | None = None,
    config_file: Path | None = None,
) -> Settings:
    """Build Settings from CLI values (None = not given), the environment and the ``[server]`` table."""
    env = os.environ if env is None else env
    cli = {k: v for k, v in (cli or {}).items() if v is not None}
    path = find_config_file(config_file, env)
    raw_table: object = read_toml(path).get("server", {})
    if not isinstance(raw_table, dict):
        raise InvalidInput("[server] in the config file must be a table")
    server_table = cast(dict[str, Any], raw_table)
    values: dict[str, Any] = {}
    names = {f.name for f in fields(Settings)}
    for key, raw in server_table.items():
        if key not in names:
            raise InvalidInput(f"unknown setting [server].{key}; known: {', '.join(sorted(names))}")
        values[key] = _coerce(key, raw)
    for name in names:
        raw_env = env.get(f"BACKCHANNEL_{name.upper()}")
        if raw_env:
            values[name] = _coerce(name, raw_env)
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
