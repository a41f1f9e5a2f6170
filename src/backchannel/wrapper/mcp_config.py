"""Give a CLI its MCP config in the way it expects (``mcp_inject``), pointing at the identity proxy.

In every proxy mode the written config holds the proxy URL and no token: the proxy injects the
live token, so rotation never needs the CLI to re-read anything. Only the legacy ``flag`` mode puts
a token in a file (0600), and :meth:`McpSetup.rewrite_token` rewrites it on rotation.
"""

from __future__ import annotations

import json
import logging
import os
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path

from backchannel.errors import InvalidInput
from backchannel.wrapper._json import JSONDict, json_object
from backchannel.wrapper.profiles import OUR_TOOLS, SERVER_ENTRY, AgentProfile
from backchannel.wrapper.settings_lease import SettingsLease, write_private

logger = logging.getLogger(__name__)

GEMINI_TRUST_VAR = "GEMINI_CLI_TRUSTED_FOLDERS_PATH"


@dataclass
class McpSetup:
    """What the CLI must be started with, plus the files to clean up or restore afterwards."""

    args: list[str] = field(default_factory=list[str])
    env: dict[str, str] = field(default_factory=dict[str, str])
    files: list[Path] = field(default_factory=list[Path])
    lease: SettingsLease | None = None
    warnings: list[str] = field(default_factory=list[str])
    token_file: tuple[Path, JSONDict] | None = None

    def rewrite_token(self, token: str) -> None:
        """Legacy ``flag`` mode only: put the new token into the file (the CLI may need a restart)."""
        if self.token_file is None:
            return
        path, doc = self.token_file
        doc["mcpServers"][SERVER_ENTRY]["headers"] = {"Authorization": f"Bearer {token}"}
        write_private(path, json.dumps(doc, indent=2))

    def release_start(self) -> None:
        """Call once the CLI has read its config, so concurrent wrappers may write theirs."""
        if self.lease is not None:
            self.lease.release_start()

    def close(self) -> None:
        """Restore shared settings files and remove the files written for this run."""
        if self.lease is not None:
            self.lease.restore()
            self.lease = None
        for path in self.files:
            path.unlink(missing_ok=True)
        self.files.clear()


def endpoint(base_url: str, transport: str) -> str:
    return base_url.rstrip("/") + ("/sse" if transport == "sse" else "/mcp")


def read_project_servers(cwd: Path, http_key: str | None = None) -> tuple[JSONDict, list[str]]:
    """The project's ``.mcp.json`` servers minus our own entry; a broken file is a warning, not a crash."""
    path = cwd / ".mcp.json"
    try:
        doc = json.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        return {}, []
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as exc:
        return {}, [f"ignoring {path}: not valid JSON ({exc})"]
    servers = json_object((json_object(doc) or {}).get("mcpServers"))
    if servers is None:
        return {}, []
    kept: JSONDict = {}
    for name, entry in servers.items():  # pyright: ignore[reportUnknownVariableType]
        if name == SERVER_ENTRY:
            continue
        if http_key and http_key != "url" and isinstance(entry, dict):
            entry = _rename_url(entry, http_key)  # pyright: ignore[reportUnknownArgumentType]
        kept[str(name)] = entry  # pyright: ignore[reportUnknownArgumentType]
    return kept, []


def _rename_url(entry: JSONDict, http_key: str) -> JSONDict:
    if entry.get("type", "http") in {"http", "streamable-http"} and "url" in entry and http_key not in entry:
        renamed = {http_key if k == "url" else k: v for k, v in entry.items()}
        return renamed
    return entry


def _claude_entry(url: str, transport: str) -> JSONDict:
    return {"type": "sse" if transport == "sse" else "http", "url": url}


def _settings_entry(profile: AgentProfile, url: str, preapprove: bool) -> JSONDict:
    if profile.mcp_transport == "sse":
        entry: JSONDict = {"type": "sse", "url": url}
    else:
        entry = {"type": "http", profile.mcp_http_key: url}
    if preapprove and profile.preapprove in {"gemini", "qwen"}:
        # Our entry only (the user's servers are never marked trusted): these CLIs then run our
        # tools without asking, so no approval dialog waits for a person.
        entry["trust"] = True
    return entry


def _expand_template(template: str, url: str) -> list[str]:
    # Split on whitespace without shell unquoting: the quotes in '-c key="{url}"' are TOML quotes
    # that Codex must see, and the CLI is exec'd directly, never through a shell.
    return [part.format(server=SERVER_ENTRY, url=url) for part in template.split()]


def _preapprove_args(profile: AgentProfile) -> list[str]:
    if profile.preapprove == "claude":
        return ["--allowedTools", f"mcp__{SERVER_ENTRY}"]
    if profile.preapprove == "copilot":
        return ["--allow-tool", SERVER_ENTRY]  # every tool of our server, no question asked
    if profile.preapprove == "codex":
        args: list[str] = []
        for tool in OUR_TOOLS:
            args += ["-c", f'mcp_servers.{SERVER_ENTRY}.tools.{tool}.approval_mode="approve"']
        return args
    return []


def prepare(
    profile: AgentProfile,
    *,
    run_dir: Path,
    proxy_url: str | None,
    server_url: str,
    token: str,
    preapprove: bool = True,
    state_dir: Path | None = None,
    env: Mapping[str, str] | None = None,
) -> McpSetup:
    """Write whatever ``profile.mcp_inject`` needs and return the args/env to start the CLI with.

    Raises:
        InvalidInput: a proxy mode without a proxy URL, or a mode missing its required key.
    """
    mode = profile.mcp_inject
    setup = McpSetup()
    if mode != "flag" and not proxy_url:
        raise InvalidInput(f"mcp_inject = {mode!r} needs the identity proxy, but no proxy URL was given")
    url = endpoint(proxy_url or server_url, profile.mcp_transport)
    run_dir.mkdir(parents=True, exist_ok=True, mode=0o700)
    config_file = run_dir / f"mcp-{profile.base}-{os.getpid()}.json"

    if mode in {"proxy_file", "flag"}:
        servers: JSONDict = {}
        if profile.mcp_merge_project:
            servers, setup.warnings = read_project_servers(profile.cwd)
        if profile.preapprove == "qwen":
            # Qwen's --mcp-config takes its settings-style entry (`httpUrl`; `url` would be SSE).
            entry = _settings_entry(profile, url, preapprove)
        else:
            entry = _claude_entry(url, profile.mcp_transport)
        if mode == "flag":
            entry["headers"] = {"Authorization": f"Bearer {token}"}
        doc: JSONDict = {"mcpServers": {**servers, SERVER_ENTRY: entry}}
        write_private(config_file, json.dumps(doc, indent=2))
        setup.files.append(config_file)
        setup.args += [profile.mcp_flag, str(config_file)]
        if mode == "flag":
            setup.token_file = (config_file, doc)
    elif mode == "proxy_flag":
        setup.args += _expand_template(profile.mcp_proxy_flag_template, url)
    elif mode == "settings_file":
        if profile.mcp_settings_path is None:
            raise InvalidInput("mcp_inject = 'settings_file' needs mcp_settings_path")
        merge: JSONDict = {}
        if profile.mcp_merge_project:
            merge, setup.warnings = read_project_servers(profile.cwd, profile.mcp_http_key)
        setup.lease = SettingsLease(
            profile.mcp_settings_path,
            entry=_settings_entry(profile, url, preapprove),
            merge=merge,
            state_dir=state_dir or run_dir,
        )
        setup.lease.acquire()
        if profile.mcp_env_var:
            setup.env[profile.mcp_env_var] = str(profile.mcp_settings_path)
    elif mode == "env":
        if not profile.mcp_env_var:
            raise InvalidInput("mcp_inject = 'env' needs mcp_env_var")
        servers = {}
        if profile.mcp_merge_project:
            servers, setup.warnings = read_project_servers(profile.cwd, profile.mcp_http_key)
        doc = {"mcpServers": {**servers, SERVER_ENTRY: _settings_entry(profile, url, preapprove)}}
        write_private(config_file, json.dumps(doc, indent=2))
        setup.files.append(config_file)
        setup.env[profile.mcp_env_var] = str(config_file)
    elif mode == "env_content":
        if not profile.mcp_env_var:
            raise InvalidInput("mcp_inject = 'env_content' needs mcp_env_var")
        content = {"mcp": {SERVER_ENTRY: {"type": "remote", "url": url, "enabled": True}}}
        setup.env[profile.mcp_env_var] = json.dumps(content)
    else:  # pragma: no cover - profiles.load_profile already refuses unknown modes
        raise InvalidInput(f"unknown mcp_inject {mode!r}")

    if profile.preapprove == "gemini":
        _trust_folder_for_gemini(profile, setup, config_file.with_suffix(".trusted.json"), env or {})
    if preapprove:
        setup.args += _preapprove_args(profile)
    return setup


def _trust_folder_for_gemini(
    profile: AgentProfile, setup: McpSetup, path: Path, env: Mapping[str, str]
) -> None:
    """Gemini disables every MCP server in an untrusted folder. Trust the project for this process only.

    We hand Gemini its own copy of the user's trusted-folders file (via the env var Gemini reads)
    with the project added, so the user's file is never changed; an explicit ``DO_NOT_TRUST`` wins.
    """
    user_file = Path(
        env.get(GEMINI_TRUST_VAR) or Path(env.get("HOME", "~")).expanduser() / ".gemini/trustedFolders.json"
    )
    try:
        trusted = json_object(json.loads(user_file.read_text(encoding="utf-8"))) or {}
    except (OSError, json.JSONDecodeError):
        trusted = {}
    folder = str(profile.cwd)
    if trusted.get(folder) == "DO_NOT_TRUST":
        setup.warnings.append(f"{folder} is marked DO_NOT_TRUST for Gemini, so its MCP servers stay off")
        return
    trusted[folder] = "TRUST_FOLDER"
    write_private(path, json.dumps(trusted, indent=2))
    setup.files.append(path)
    setup.env[GEMINI_TRUST_VAR] = str(path)
