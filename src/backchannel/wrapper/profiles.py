"""Per-CLI profiles: built-in defaults, ``[agents.<name>]`` TOML overrides and env overrides.

The merge is deliberately small and explicit so a user can predict it from the docs:

1. built-in defaults for the CLI (looked up by agent key, then by the command's basename),
2. the ``[agents.<name>]`` table (agentchattr key names accepted); if it sets ``mcp_inject``, the
   built-in ``mcp_*`` defaults are dropped and only the table's ``mcp_*`` keys apply,
3. ``BACKCHANNEL_AGENT_<KEY>`` / ``AGENTCHATTR_AGENT_<KEY>`` for the whitelisted keys only.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal, cast

from backchannel.errors import InvalidInput
from backchannel.wrapper._json import json_object

SERVER_ENTRY = "backchannel"
"""The name of our entry in every MCP config we write (tools become ``mcp__backchannel__*``)."""

INJECT_MODES = ("proxy_file", "proxy_flag", "settings_file", "env", "env_content", "flag")
PROXY_MODES = frozenset(INJECT_MODES) - {"flag"}

OUR_TOOLS = (
    "chat_send",
    "chat_read",
    "chat_resync",
    "chat_join",
    "chat_who",
    "chat_channels",
    "chat_rules",
    "chat_decision",
    "chat_set_hat",
    "chat_claim",
    "chat_summary",
    "chat_propose_job",
    "chat_image",
)

ENV_OVERRIDE_KEYS = frozenset({"cwd", "mcp_settings_path"})
ENV_PREFIXES = ("BACKCHANNEL_AGENT_", "AGENTCHATTR_AGENT_")
SLUG_VARS = ("BACKCHANNEL_REPO_SLUG", "AGENTCHATTR_REPO_SLUG")

Preapprove = Literal["claude", "codex", "gemini", "qwen", "copilot", "none"]

# A pane showing one of these is working on a prompt; the TUIs print them while a turn runs.
_DEFAULT_BUSY = r"(?i)esc to (interrupt|cancel)"

# The question row of each CLI's permission/approval dialogs, as the real CLIs word them (Claude
# Code 2.1, Codex 0.169, Gemini CLI 0.61, Qwen Code 0.24). While one shows, an Enter would answer
# it, so the wrapper types nothing and holds the mention (see injection.py).
DIALOGS: dict[str, str] = {
    "claude": (
        r"Do you want to (proceed|allow|make this edit|create|overwrite)|New MCP servers? found in"
        r"|Do you trust the files in this folder\?"
    ),
    "codex": (
        r"Would you like to (run the following command|make the following edits|grant these permissions"
        r"|send input)|to run tool \"|Trust this folder\?"
    ),
    "gemini": (
        r"Allow execution of|Apply this change\?|Do you want to proceed\?|Waiting for user confirmation"
        r"|Do you trust (the files in this folder|the following folders)"
    ),
    "qwen": (
        r"Allow execution of|Apply this change\?|Do you want to proceed\?|Waiting for user confirmation"
        r"|Untrusted MCP server|Approve this server|Do you trust this folder\?"
    ),
    # Kilo 7.7: a "Permission required" panel with "Allow once / Allow always / Reject".
    "kilo": r"Permission required",
    # Copilot CLI 1.0: "Do you want to use this tool?", and "Confirm folder trust" at start.
    "copilot": r"Do you want to [^?]{1,60}\?|Do you trust the files in this folder\?|Confirm folder trust",
}
# Any other CLI: all of the above (most TUIs share this wording).
DEFAULT_DIALOG = "|".join(f"(?:{pattern})" for pattern in dict.fromkeys(DIALOGS.values()))

_MCP_DEFAULTS: dict[str, Any] = {
    "mcp_inject": "proxy_file",
    "mcp_flag": "--mcp-config",
    "mcp_env_var": None,
    "mcp_settings_path": None,
    "mcp_transport": "http",
    "mcp_http_key": "httpUrl",
    "mcp_merge_project": False,
    "mcp_proxy_flag_template": '-c mcp_servers.{server}.url="{url}"',
}

BUILTIN: dict[str, dict[str, Any]] = {
    "claude": {
        "color": "#d97757",
        "preapprove": "claude",
        "dialog_pattern": DIALOGS["claude"],
        "mcp_inject": "proxy_file",
        "mcp_flag": "--mcp-config",
        "mcp_merge_project": True,
    },
    "codex": {
        "color": "#10a37f",
        "preapprove": "codex",
        "dialog_pattern": DIALOGS["codex"],
        "mcp_inject": "proxy_flag",
    },
    "gemini": {
        "color": "#4285f4",
        "preapprove": "gemini",
        "dialog_pattern": DIALOGS["gemini"],
        # GEMINI_CLI_SYSTEM_SETTINGS_PATH is ignored unless root-owned all the way up, so we use the
        # workspace settings file Gemini reads normally, pointing at the proxy (never a token).
        "mcp_inject": "settings_file",
        "mcp_settings_path": ".gemini/settings.json",
        "mcp_http_key": "httpUrl",
        "mcp_merge_project": True,
    },
    "qwen": {
        "color": "#615ced",
        "preapprove": "qwen",
        "dialog_pattern": DIALOGS["qwen"],
        "inject_delay": 1.0,
        # Qwen takes seconds to start (a plain warning, then "Initializing...", then "Connecting to
        # MCP servers..."), and typed text is lost until its input line (">") holds the cursor.
        "busy_pattern": _DEFAULT_BUSY,
        "idle_pattern": r"^>\s",
        # Not .qwen/settings.json: Qwen gates project servers behind an "Untrusted MCP server"
        # approval (asked again whenever the proxy port changes). --mcp-config is ungated, and
        # in Qwen `url` means the old SSE transport, so our entry uses `httpUrl`.
        "mcp_inject": "proxy_file",
        "mcp_flag": "--mcp-config",
        "mcp_http_key": "httpUrl",
    },
    "kimi": {
        "color": "#1a73e8",
        "mcp_inject": "proxy_file",
        "mcp_flag": "--mcp-config-file",
        "mcp_merge_project": True,
    },
    "kilo": {
        "color": "#f8c300",
        "mcp_inject": "env_content",
        "mcp_env_var": "KILO_CONFIG_CONTENT",
        "busy_pattern": r"(?i)esc (to )?(interrupt|cancel)",  # Kilo shows "esc interrupt"
        "dialog_pattern": DIALOGS["kilo"],
    },
    "codebuddy": {
        "color": "#6c5ce7",
        "mcp_inject": "settings_file",
        "mcp_settings_path": "~/.codebuddy/.mcp.json",
        "mcp_http_key": "url",
    },
    "copilot": {
        "color": "#8957e5",
        "mcp_inject": "settings_file",
        "mcp_settings_path": "~/.copilot/mcp-config.json",
        "preapprove": "copilot",
        "dialog_pattern": DIALOGS["copilot"],
        "busy_pattern": _DEFAULT_BUSY,
        "idle_pattern": r"^❯",  # its input line; the banner and a starting CLI have none
        "mcp_http_key": "url",
    },
    "agy": {
        "color": "#34a853",
        "mcp_inject": "settings_file",
        "mcp_settings_path": "~/.gemini/config/mcp_config.json",
        "mcp_http_key": "serverURL",
        "mcp_transport": "http",
        "mcp_merge_project": True,
    },
}
BUILTIN["antigravity"] = {**BUILTIN["agy"], "command": "agy"}

CONFIG_KEYS = frozenset(
    {
        "command",
        "args",
        "cwd",
        "color",
        "label",
        "strip_env",
        "inject_delay",
        "busy_pattern",
        "idle_pattern",
        "dialog_pattern",
    }
    | set(_MCP_DEFAULTS)
)
_API_KEYS = frozenset({"type", "base_url", "model", "api_key_env", "temperature", "context_messages"})
_BASE_RE = re.compile(r"^[a-z][a-z0-9-]{0,31}$")


@dataclass(frozen=True, slots=True)
class AgentProfile:
    """Everything the wrapper needs to know about one CLI, after all overrides were applied."""

    key: str
    base: str
    command: str
    cwd: Path
    args: tuple[str, ...] = ()
    label: str | None = None
    color: str | None = None
    strip_env: tuple[str, ...] = ()
    inject_delay: float = 0.3
    mcp_inject: str = "proxy_file"
    mcp_flag: str = "--mcp-config"
    mcp_env_var: str | None = None
    mcp_settings_path: Path | None = None
    mcp_transport: Literal["http", "sse"] = "http"
    mcp_http_key: str = "httpUrl"
    mcp_merge_project: bool = False
    mcp_proxy_flag_template: str = '-c mcp_servers.{server}.url="{url}"'
    preapprove: Preapprove = "none"
    busy_pattern: str | None = _DEFAULT_BUSY
    idle_pattern: str | None = None
    dialog_pattern: str | None = DEFAULT_DIALOG
    warnings: tuple[str, ...] = field(default=(), compare=False)

    @property
    def uses_proxy(self) -> bool:
        return self.mcp_inject in PROXY_MODES


def base_name(agent: str) -> str:
    """The registration ``base`` for an agent key; the server only accepts ``[a-z][a-z0-9-]{0,31}``."""
    base = re.sub(r"[^a-z0-9-]+", "-", agent.strip().lower()).strip("-")[:32]
    if not _BASE_RE.match(base):
        raise InvalidInput(f"agent name {agent!r} cannot be used: it must start with a letter (a-z)")
    return base


def repo_slug(env: Mapping[str, str]) -> str | None:
    """``BACKCHANNEL_REPO_SLUG`` (alias ``AGENTCHATTR_REPO_SLUG``), made safe for a tmux session name."""
    for var in SLUG_VARS:
        raw = env.get(var, "").strip()
        if raw:
            # tmux treats '.' and ':' as target separators; keep names to a shell-friendly set.
            slug = re.sub(r"[^A-Za-z0-9_-]+", "-", raw).strip("-")
            return slug or None
    return None


def session_name(agent_name: str, env: Mapping[str, str]) -> str:
    """``backchannel-<name>``, or ``backchannel-<slug>-<name>`` so two repos' wrappers don't collide."""
    slug = repo_slug(env)
    return f"backchannel-{slug}-{agent_name}" if slug else f"backchannel-{agent_name}"


def env_overrides(env: Mapping[str, str]) -> dict[str, str]:
    """Whitelisted per-agent overrides from the environment; other keys are refused loudly."""
    found: dict[str, str] = {}
    # AGENTCHATTR_ first so the BACKCHANNEL_ spelling wins when both are set.
    for prefix in reversed(ENV_PREFIXES):
        for var, value in env.items():
            if not var.startswith(prefix) or not value:
                continue
            key = var[len(prefix) :].lower()
            if key not in ENV_OVERRIDE_KEYS:
                allowed = ", ".join(f"{prefix}{k.upper()}" for k in sorted(ENV_OVERRIDE_KEYS))
                raise InvalidInput(f"{var} is not supported: only {allowed} may override agent config")
            found[key] = value
    return found


def _builtin_for(agent: str, table: Mapping[str, Any]) -> dict[str, Any]:
    if agent in BUILTIN:
        return dict(BUILTIN[agent])
    command = table.get("command")
    if isinstance(command, str) and Path(command).name in BUILTIN:
        return dict(BUILTIN[Path(command).name])
    return {}


def _check_table(agent: str, table: Mapping[str, Any]) -> list[str]:
    if table.get("type") == "api":
        # `backchannel run` sends these to wrapper/api_agent.py before it looks for a CLI profile.
        raise InvalidInput(f'[agents.{agent}] is an API agent (type = "api"), not a CLI (docs/api-agents.md)')
    return [
        f"[agents.{agent}].{key} is not a known key and is ignored"
        for key in table
        if key not in CONFIG_KEYS and key not in _API_KEYS and key != "system_prompt"
    ]


def _path(raw: Any, relative_to: Path) -> Path:
    path = Path(str(raw)).expanduser()
    return path if path.is_absolute() else (relative_to / path)


def _str_tuple(agent: str, key: str, raw: Any) -> tuple[str, ...]:
    if isinstance(raw, str):
        return (raw,)
    if isinstance(raw, list):
        items = cast(list[object], raw)
        if all(isinstance(x, str) for x in items):
            return tuple(cast(list[str], items))
    raise InvalidInput(f"[agents.{agent}].{key} must be a list of strings")


def load_profile(
    agent: str,
    config: Mapping[str, Any],
    *,
    env: Mapping[str, str],
    config_path: Path | None,
    cwd: Path,
) -> AgentProfile:
    """Build the profile for ``agent`` from built-ins, the parsed TOML ``config`` and ``env``.

    Raises:
        InvalidInput: a bad key value, unknown ``mcp_inject`` mode or a refused env override.
    """
    agents = json_object(config.get("agents", {})) or {}
    found = json_object(agents.get(agent, {}))
    if found is None:
        raise InvalidInput(f"[agents.{agent}] in the config file must be a table")
    table = dict(found)
    warnings = _check_table(agent, table)
    builtin = _builtin_for(agent, table)
    values: dict[str, Any] = {
        "command": builtin.pop("command", agent),
        "inject_delay": 0.3,
        "preapprove": "none",
        **_MCP_DEFAULTS,
    }
    if "mcp_inject" in table:
        builtin = {k: v for k, v in builtin.items() if not k.startswith("mcp_")}
    values.update(builtin)
    values.update({k: v for k, v in table.items() if k in CONFIG_KEYS})

    config_dir = config_path.parent if config_path is not None else cwd
    # cwd from the file is relative to the file; the default and env override are relative to here.
    resolved_cwd = _path(table["cwd"], config_dir) if "cwd" in table else cwd
    overrides = env_overrides(env)
    if "cwd" in overrides:
        resolved_cwd = _path(overrides["cwd"], cwd)
    if "mcp_settings_path" in overrides:
        values["mcp_settings_path"] = overrides["mcp_settings_path"]

    mode = values["mcp_inject"]
    if mode not in INJECT_MODES:
        raise InvalidInput(f"unknown mcp_inject {mode!r} for {agent}; valid modes: {', '.join(INJECT_MODES)}")
    transport = str(values["mcp_transport"]).lower()
    if transport in {"http", "streamable-http", "streamable_http"}:
        transport = "http"
    elif transport != "sse":
        raise InvalidInput(f"unknown mcp_transport {transport!r}; use http, streamable-http or sse")
    settings_path = values["mcp_settings_path"]
    try:
        inject_delay = float(values["inject_delay"])
    except (TypeError, ValueError):
        raise InvalidInput(f"[agents.{agent}].inject_delay must be a number of seconds") from None
    for pattern_key in ("busy_pattern", "idle_pattern", "dialog_pattern"):
        if values.get(pattern_key):
            try:
                re.compile(values[pattern_key])
            except re.error as exc:
                raise InvalidInput(f"[agents.{agent}].{pattern_key} is not a valid regex: {exc}") from None

    return AgentProfile(
        key=agent,
        base=base_name(agent),
        command=str(values["command"]),
        cwd=resolved_cwd.resolve(),
        args=_str_tuple(agent, "args", values.get("args", [])),
        label=values.get("label"),
        color=values.get("color"),
        strip_env=_str_tuple(agent, "strip_env", values.get("strip_env", [])),
        inject_delay=inject_delay,
        mcp_inject=mode,
        mcp_flag=str(values["mcp_flag"]),
        mcp_env_var=values["mcp_env_var"],
        mcp_settings_path=_path(settings_path, resolved_cwd.resolve()) if settings_path else None,
        mcp_transport="sse" if transport == "sse" else "http",
        mcp_http_key=str(values["mcp_http_key"]),
        mcp_merge_project=bool(values["mcp_merge_project"]),
        mcp_proxy_flag_template=str(values["mcp_proxy_flag_template"]),
        preapprove=values["preapprove"],
        # A table that sets only idle_pattern keeps its old meaning: the cursor row alone decides.
        busy_pattern=None
        if "idle_pattern" in table and "busy_pattern" not in table
        else values.get("busy_pattern", _DEFAULT_BUSY) or None,
        idle_pattern=values.get("idle_pattern") or None,
        dialog_pattern=values.get("dialog_pattern", DEFAULT_DIALOG) or None,
        warnings=tuple(warnings),
    )
