"""Share one user settings file between concurrent wrappers, and give it back as it was.

Several wrappers of one CLI may point the same settings file (``~/.copilot/mcp-config.json``, a
repo's ``.gemini/settings.json``) at their own proxies. Each is a *holder* recorded in a state file
kept in the wrapper's private runtime dir (:mod:`backchannel.wrapper.state`, never next to the
user's file). The file always names a live holder's proxy; an exclusive lock is held from writing
until the CLI has read it, so two starting CLIs can't read each other's entry; the last holder to
leave restores the original bytes and mode (never group- or world-writable).

The state file decides what is written into the settings file, so it is trusted only if it is ours
(owner, ``0600``, no symlink, in a directory only we can write): a planted one is refused.
"""

from __future__ import annotations

import fcntl
import hashlib
import json
import os
import uuid
from pathlib import Path
from typing import Any

from backchannel.errors import InvalidInput
from backchannel.wrapper._json import JSONDict, json_object
from backchannel.wrapper.profiles import SERVER_ENTRY
from backchannel.wrapper.state import UnsafeState, ensure_private_dir, read_private, write_private

# Never give a restored settings file group/other write access, whatever the record says.
_RESTORE_MODE_MASK = 0o755


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def _valid_state(state: JSONDict) -> bool:
    """The shape :meth:`SettingsLease._save_state` writes; anything else is not ours."""
    holders = json_object(state.get("holders"))
    return (
        isinstance(state.get("original"), str | None)
        and isinstance(state.get("mode"), int)
        and isinstance(state.get("written"), str | None)
        and holders is not None
        and all(isinstance((json_object(v) or {}).get("pid"), int) for v in holders.values())
    )


class SettingsLease:
    """Our entry in a shared settings file, for as long as this wrapper runs."""

    def __init__(self, path: Path, *, entry: JSONDict, merge: JSONDict, state_dir: Path) -> None:
        self.path = path
        self.entry = entry
        self.merge = merge
        digest = hashlib.sha256(str(path.absolute()).encode()).hexdigest()[:24]
        state_dir = ensure_private_dir(state_dir)
        self._state_path = state_dir / f"settings-{digest}.json"
        self._lock_path = state_dir / f"settings-{digest}.lock"
        self._holder = f"{os.getpid()}-{uuid.uuid4().hex[:8]}"
        self._lock_fd: int | None = None

    # -- locking -------------------------------------------------------------------------------
    def _lock(self) -> None:
        if self._lock_fd is None:
            flags = os.O_RDWR | os.O_CREAT | os.O_NOFOLLOW | os.O_CLOEXEC
            try:
                fd = os.open(self._lock_path, flags, 0o600)
            except OSError as exc:
                raise UnsafeState(f"cannot open the lock {self._lock_path}: {exc.strerror}") from None
            fcntl.flock(fd, fcntl.LOCK_EX)  # blocks: callers run this off the event loop
            self._lock_fd = fd

    def _unlock(self) -> None:
        if self._lock_fd is not None:
            fcntl.flock(self._lock_fd, fcntl.LOCK_UN)
            os.close(self._lock_fd)
            self._lock_fd = None

    # -- state -----------------------------------------------------------------------------------
    def _load_state(self) -> JSONDict:
        text = read_private(self._state_path)  # refuses a file that is not ours alone
        state: JSONDict = {}
        if text is not None:
            try:
                state = json_object(json.loads(text)) or {}
            except json.JSONDecodeError:
                state = {}
            if not _valid_state(state):
                raise UnsafeState(
                    f"{self._state_path} is not a state file this wrapper wrote; remove it and run again"
                )
        if "holders" not in state:
            try:
                original: str | None = self.path.read_text(encoding="utf-8")
                mode = self.path.stat().st_mode & 0o777
            except FileNotFoundError:
                original, mode = None, 0o600
            state = {"original": original, "mode": mode, "holders": {}, "written": None}
        holders: dict[str, Any] = state["holders"]
        state["holders"] = {k: v for k, v in holders.items() if _alive(int(v["pid"]))}
        return state

    def _save_state(self, state: JSONDict) -> None:
        write_private(self._state_path, json.dumps(state))

    def _current_doc(self) -> JSONDict:
        try:
            text = self.path.read_text(encoding="utf-8")
        except FileNotFoundError:
            return {}
        try:
            doc: object = json.loads(text) if text.strip() else {}
        except json.JSONDecodeError as exc:
            msg = f"{self.path} is not valid JSON ({exc}); fix it or set mcp_settings_path"
            raise InvalidInput(msg) from None
        obj = json_object(doc)
        if obj is None:
            raise InvalidInput(f"{self.path} must hold a JSON object")
        return obj

    def _write_doc(self, state: JSONDict, entry: JSONDict, merge: JSONDict) -> None:
        doc = self._current_doc()
        servers = dict(json_object(doc.get("mcpServers")) or {})
        for name, value in merge.items():
            servers.setdefault(name, value)  # the user's own entries win over the project's
        servers[SERVER_ENTRY] = entry
        doc["mcpServers"] = servers
        text = json.dumps(doc, indent=2)
        write_private(self.path, text)
        state["written"] = text

    # -- public API ----------------------------------------------------------------------------
    def acquire(self) -> None:
        """Point the file at our proxy and keep the start lock until :meth:`release_start`."""
        self._lock()
        try:
            state = self._load_state()
            state["holders"][self._holder] = {"pid": os.getpid(), "entry": self.entry, "merge": self.merge}
            self._write_doc(state, self.entry, self.merge)
            self._save_state(state)
        except BaseException:
            self._unlock()
            raise

    def release_start(self) -> None:
        """The CLI has read its settings: other wrappers may now write theirs."""
        self._unlock()

    def restore(self) -> None:
        """Leave: hand the entry to another live holder, or restore the user's original file."""
        self._lock()
        try:
            state = self._load_state()
            state["holders"].pop(self._holder, None)
            if state["holders"]:
                other = list(state["holders"].values())[-1]
                self._write_doc(state, other["entry"], other["merge"])
                self._save_state(state)
                return
            self._restore_original(state)
            self._state_path.unlink(missing_ok=True)
        finally:
            self._unlock()

    def _restore_original(self, state: JSONDict) -> None:
        original: str | None = state["original"]
        try:
            current = self.path.read_text(encoding="utf-8")
        except FileNotFoundError:
            current = None
        if current == state.get("written") or current is None:
            if original is None:
                self.path.unlink(missing_ok=True)
            else:
                write_private(self.path, original, mode=int(state["mode"]) & _RESTORE_MODE_MASK)
            return
        # Someone else edited the file while we ran: keep their edits, take back only our own.
        try:
            doc = json.loads(current)
            before: object = json.loads(original) if original else {}
        except json.JSONDecodeError:
            return
        doc_obj = json_object(doc)
        if doc_obj is None:
            return
        servers = json_object(doc_obj.setdefault("mcpServers", {}))
        if servers is None:
            return  # their mcpServers is not an object: nothing of ours to take back
        before_servers = json_object((json_object(before) or {}).get("mcpServers")) or {}
        for name in [SERVER_ENTRY, *self.merge]:
            if name in before_servers:
                servers[name] = before_servers[name]
            else:
                servers.pop(name, None)
        write_private(self.path, json.dumps(doc, indent=2), mode=int(state["mode"]) & _RESTORE_MODE_MASK)
