"""The wrapper's private state: directories and files no other local user can create, read or plant.

Why: a state file decides what goes into a CLI's settings file (its MCP servers run commands as the
user). If another user could create our state directory first (``/tmp`` is shared) or drop a file
into it, they could make the wrapper write their MCP server into our CLI's settings. So every state
directory is created ``0700`` and, before use, checked: not a symlink, owned by us, not accessible
to group or others, and every directory above it writable only by us or root (or sticky, like
``/tmp``, where others cannot rename our entries). Files are opened without following symlinks and
must be ours with mode ``0600``. Anything else is refused with a message saying what to fix.

Two places:

* ``<data dir>/wrapper``: persistent (instance ids, reclaim secrets, per-run files);
* the runtime dir (``$XDG_RUNTIME_DIR/backchannel``, else ``~/.cache/backchannel/runtime``): per
  user, so wrappers with different data dirs that share one settings file see each other's leases.
  Never a name in a shared directory like ``/tmp``: another user could create it first and so stop
  our agents from starting.
"""

from __future__ import annotations

import contextlib
import fcntl
import os
import re
import secrets
import stat
import tempfile
from collections.abc import Mapping
from pathlib import Path

from backchannel.errors import InvalidInput

RECLAIM_SECRET_BYTES = 32  # token_urlsafe(32) is 43 characters; the server takes 32-128
_SECRET_RE = re.compile(r"^[A-Za-z0-9_-]{32,128}$")


class UnsafeState(InvalidInput):
    """A state directory or file is not private to us; the message names it and the fix."""


def _who(uid: int) -> str:
    try:
        import pwd

        return f"uid {uid} ({pwd.getpwuid(uid).pw_name})"
    except (ImportError, KeyError):
        return f"uid {uid}"


def _check_ancestors(path: Path) -> None:
    """Every directory above ``path`` must be writable only by its owner (us or root), unless sticky.

    Group write counts as others' write even for our own group: the final directory is held to
    the same rule, and a group may hold other users.
    """
    uid = os.getuid()
    for directory in [path, *path.parents]:
        st = os.stat(directory)
        if st.st_uid not in (0, uid):
            raise UnsafeState(
                f"{directory} (above the wrapper's state) is owned by {_who(st.st_uid)}; "
                "keep the state under directories you own (set --data-dir, HOME or XDG_RUNTIME_DIR)"
            )
        sticky = bool(st.st_mode & stat.S_ISVTX)
        if st.st_mode & (stat.S_IWOTH | stat.S_IWGRP) and not sticky:
            raise UnsafeState(
                f"{directory} (above the wrapper's state) is writable by its group or by other users; "
                f"run: chmod go-w {directory}"
            )


def ensure_private_dir(path: Path) -> Path:
    """Create ``path`` (and missing parents) ``0700`` and check it is ours alone; return it.

    Raises:
        UnsafeState: a symlink, not a directory, someone else's, writable by others, or under a
            directory others may write to.
    """
    path = Path(os.path.abspath(path))
    # Walk up to the first existing directory; create the rest ourselves, each 0700.
    missing: list[Path] = []
    probe = path
    while not os.path.lexists(probe):
        missing.append(probe)
        probe = probe.parent
    if missing:
        parent = Path(os.path.realpath(probe))
        _check_ancestors(parent)
        for directory in reversed(missing):
            try:
                os.mkdir(directory, 0o700)
            except FileExistsError:
                pass  # raced with another wrapper (or someone else): checked below
    else:
        _check_ancestors(Path(os.path.realpath(path.parent)))
    uid = os.getuid()
    st = os.lstat(path)
    if stat.S_ISLNK(st.st_mode):
        raise UnsafeState(
            f"{path} is a symlink; the wrapper keeps its state only in a real directory it owns. "
            "Remove it and run again"
        )
    if not stat.S_ISDIR(st.st_mode):
        raise UnsafeState(f"{path} is not a directory; remove it and run again")
    if st.st_uid != uid:
        raise UnsafeState(
            f"{path} is owned by {_who(st.st_uid)}, not by you ({_who(uid)}): another user may have "
            "created it to plant state. Remove it (or set XDG_RUNTIME_DIR elsewhere) and run again"
        )
    if st.st_mode & 0o022:
        raise UnsafeState(
            f"{path} is writable by other users (mode {stat.S_IMODE(st.st_mode):o}), so its files "
            "can't be trusted. Remove it and run again"
        )
    if st.st_mode & 0o077:  # ours and nobody else could write into it: just tighten it
        os.chmod(path, 0o700, follow_symlinks=False)
    return path


def read_private(path: Path) -> str | None:
    """The text of a state file we wrote (ours, ``0600``, not a symlink); ``None`` if it is missing.

    Raises:
        UnsafeState: the file is a symlink, someone else's, or readable/writable by others.
    """
    try:
        fd = os.open(path, os.O_RDONLY | os.O_NOFOLLOW | os.O_CLOEXEC)
    except FileNotFoundError:
        return None
    except OSError as exc:
        if os.path.islink(path):
            raise UnsafeState(f"{path} is a symlink; remove it and run again") from None
        raise UnsafeState(f"cannot read {path}: {exc.strerror}") from None
    with os.fdopen(fd, "r", encoding="utf-8") as fh:
        st = os.fstat(fh.fileno())
        if st.st_uid != os.getuid():
            raise UnsafeState(
                f"{path} is owned by {_who(st.st_uid)}, not by you: it was not written by your "
                "wrapper and is ignored. Remove it and run again"
            )
        if not stat.S_ISREG(st.st_mode) or st.st_mode & 0o077:
            raise UnsafeState(
                f"{path} is accessible to other users (mode {stat.S_IMODE(st.st_mode):o}); "
                "remove it and run again"
            )
        return fh.read()


def runtime_dir(env: Mapping[str, str]) -> Path:
    """Per-user scratch state (settings-file leases), checked private.

    ``$XDG_RUNTIME_DIR`` when it is ours alone, else under the home directory: a fixed name in a
    shared directory (``/tmp/backchannel-<uid>``) could be created first by another user, and every
    settings-file agent would then refuse to start.
    """
    xdg = env.get("XDG_RUNTIME_DIR", "").strip()
    if xdg and os.path.isabs(xdg) and os.path.isdir(xdg):
        st = os.stat(xdg)
        if st.st_uid == os.getuid() and not st.st_mode & 0o077:
            return ensure_private_dir(Path(xdg) / "backchannel")
    cache = env.get("XDG_CACHE_HOME", "").strip()
    if not (cache and os.path.isabs(cache)):
        home = env.get("HOME", "").strip()
        if not (home and os.path.isabs(home)):
            home = os.path.expanduser("~")  # the password database when HOME is unset
        cache = os.path.join(home, ".cache")
    return ensure_private_dir(Path(cache) / "backchannel" / "runtime")


def write_private(path: Path, text: str, mode: int = 0o600) -> None:
    """Atomically replace ``path`` with ``text``, readable by the owner only (by default).

    A fresh ``O_EXCL`` temp file renamed over ``path``: a symlink planted at ``path`` is replaced,
    never followed, and no reader ever sees half a file.
    """
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", dir=path.parent)
    try:
        os.fchmod(fd, mode)
        with os.fdopen(fd, "w", encoding="utf-8") as fh:
            fh.write(text)
        os.replace(tmp, path)
    except BaseException:
        with contextlib.suppress(FileNotFoundError):
            os.unlink(tmp)
        raise


def try_lock(path: Path) -> int | None:
    """Take an exclusive ``flock`` on ``path`` (created ``0600``) without waiting.

    The open descriptor, which holds the lock until it is closed (or the process dies); ``None`` if
    another process (or another open of it in this one) holds it.
    """
    flags = os.O_RDWR | os.O_CREAT | os.O_NOFOLLOW | os.O_CLOEXEC
    try:
        fd = os.open(path, flags, 0o600)
    except OSError as exc:
        raise UnsafeState(f"cannot open the lock {path}: {exc.strerror}") from None
    try:
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except BlockingIOError:
        os.close(fd)
        return None
    return fd


class WrapperState:
    """The wrapper's directories, each checked before first use."""

    def __init__(self, data_dir: Path, env: Mapping[str, str]) -> None:
        self.root = ensure_private_dir(data_dir / "wrapper")
        self._env = env

    def subdir(self, name: str) -> Path:
        return ensure_private_dir(self.root / name)

    @property
    def run_dir(self) -> Path:
        return self.subdir("run")

    def leases_dir(self) -> Path:
        return ensure_private_dir(runtime_dir(self._env) / "leases")

    def reclaim_secret(self, instance: str) -> str:
        """The secret that proves to the server we are this instance (created once, ``0600``)."""
        name = re.sub(r"[^A-Za-z0-9_-]", "_", instance)[:100] or "default"
        path = self.subdir("reclaim") / name
        text = read_private(path)
        if text is not None and _SECRET_RE.match(text.strip()):
            return text.strip()
        value = secrets.token_urlsafe(RECLAIM_SECRET_BYTES)
        write_private(path, value + "\n")
        return value

    def lock_instance(self, stem: str, limit: int = 1000) -> tuple[int, int]:
        """Hold the first free instance slot for ``stem`` (``<base>-<digest>``) for this whole run.

        Slot 1 locks ``instances/<stem>.lock``, slot n ``instances/<stem>-<n>.lock``. A second
        wrapper of the same CLI in the same directory finds slot 1 held and takes slot 2: its own
        instance id, so it never proves itself to be (and takes over) the first. Returns (slot, fd);
        closing fd (or exiting) frees the slot.
        """
        directory = self.subdir("instances")
        for slot in range(1, limit + 1):
            name = f"{stem}.lock" if slot == 1 else f"{stem}-{slot}.lock"
            fd = try_lock(directory / name)
            if fd is not None:
                return slot, fd
        raise UnsafeState(f"all {limit} instance slots of {stem} in {directory} are in use")
