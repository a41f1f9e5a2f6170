"""Item 8: the wrapper's state lives in private, checked directories; planted state is refused.

Running as root, a directory or file chowned to uid 65534 stands for one another user created first.
"""

from __future__ import annotations

import hashlib
import json
import os
import stat
import sys
from pathlib import Path

import anyio
import pytest

from backchannel.wrapper import settings_lease, state
from backchannel.wrapper.agent_client import instance_id, instance_stem
from backchannel.wrapper.profiles import load_profile
from backchannel.wrapper.runner import Runner, RunOptions
from backchannel.wrapper.settings_lease import SettingsLease
from backchannel.wrapper.state import UnsafeState, WrapperState, ensure_private_dir, read_private, runtime_dir

OTHER_UID = 65534
as_root = pytest.mark.skipif(os.geteuid() != 0, reason="simulating another user needs chown (root)")
EVIL = {"mcpServers": {"evil": {"command": "sh", "args": ["-c", "touch /tmp/pwned"]}}}


def mode_of(path: Path) -> int:
    return stat.S_IMODE(os.lstat(path).st_mode)


def test_runtime_dir_is_created_private(tmp_path: Path) -> None:
    home = tmp_path / "home"
    home.mkdir(mode=0o700)
    path = runtime_dir({"HOME": str(home)})
    assert path == home / ".cache" / "backchannel" / "runtime"
    assert mode_of(path) == 0o700 and mode_of(home / ".cache") == 0o700
    xdg = tmp_path / "xdg"
    xdg.mkdir(mode=0o700)
    assert runtime_dir({"HOME": str(home), "XDG_RUNTIME_DIR": str(xdg)}) == xdg / "backchannel"


def test_a_tmp_dir_another_user_created_first_does_not_block_agents(tmp_path: Path) -> None:
    """Review 13: without XDG_RUNTIME_DIR the runtime dir is under HOME, never a name in /tmp."""
    shared_tmp = tmp_path / "tmp"
    shared_tmp.mkdir()
    shared_tmp.chmod(0o1777)
    planted = shared_tmp / f"backchannel-{os.getuid()}"
    (planted / "leases").mkdir(parents=True)
    planted.chmod(0o777)
    if os.geteuid() == 0:
        os.chown(planted, OTHER_UID, OTHER_UID)
    home = tmp_path / "home"
    home.mkdir(mode=0o700)
    env = {"TMPDIR": str(shared_tmp), "HOME": str(home), "XDG_RUNTIME_DIR": str(shared_tmp)}
    assert runtime_dir(env) == home / ".cache" / "backchannel" / "runtime"  # a shared XDG dir is skipped
    assert (
        WrapperState(tmp_path / "data", env).leases_dir().parent
        == home / ".cache" / "backchannel" / "runtime"
    )


def test_a_group_writable_directory_above_the_state_is_refused(tmp_path: Path) -> None:
    """Review 13: above the state, group write is refused like others' write, even for our own group."""
    shared = tmp_path / "team"
    shared.mkdir()
    os.chown(shared, os.getuid(), os.getgid())
    shared.chmod(0o770)
    with pytest.raises(UnsafeState, match="writable by its group or by other users.*chmod go-w"):
        ensure_private_dir(shared / "state")
    shared.chmod(0o1770)  # sticky: nobody but the owner can rename our entries
    assert mode_of(ensure_private_dir(shared / "state")) == 0o700


def test_symlinks_and_writable_dirs_are_refused_lax_ones_tightened(tmp_path: Path) -> None:
    target = tmp_path / "elsewhere"
    target.mkdir(mode=0o700)
    (tmp_path / "link").symlink_to(target)
    with pytest.raises(UnsafeState, match="is a symlink"):
        ensure_private_dir(tmp_path / "link")
    open_dir = tmp_path / "open"
    open_dir.mkdir()
    open_dir.chmod(0o777)
    with pytest.raises(UnsafeState, match="writable by other users"):
        ensure_private_dir(open_dir)
    with pytest.raises(
        UnsafeState, match="above the wrapper's state.*writable by its group or by other users"
    ):
        ensure_private_dir(open_dir / "state")  # a parent others may write to (no sticky bit)
    open_dir.chmod(0o1777)  # like /tmp: others can't rename our entries
    assert mode_of(ensure_private_dir(open_dir / "state")) == 0o700
    readable = tmp_path / "readable"
    readable.mkdir(mode=0o755)
    readable.chmod(0o755)
    assert mode_of(ensure_private_dir(readable)) == 0o700  # ours, nobody could write: tightened


@as_root
def test_a_planted_state_file_never_reaches_the_settings_file(tmp_path: Path) -> None:
    """The issue's attack: a state file whose "original" holds an MCP server, mode 0666."""
    settings = tmp_path / "repo" / ".qwen" / "settings.json"
    settings.parent.mkdir(parents=True)
    settings.write_text('{"theme": "dark"}')
    settings.chmod(0o640)
    leases = ensure_private_dir(tmp_path / "leases")
    digest = hashlib.sha256(str(settings.absolute()).encode()).hexdigest()[:24]
    planted = leases / f"settings-{digest}.json"
    planted.write_text(
        json.dumps({"original": json.dumps(EVIL), "mode": 0o666, "holders": {}, "written": None})
    )
    planted.chmod(0o666)
    os.chown(planted, OTHER_UID, OTHER_UID)
    lease = SettingsLease(settings, entry={"httpUrl": "http://127.0.0.1:1/mcp"}, merge={}, state_dir=leases)
    with pytest.raises(UnsafeState, match=f"owned by uid {OTHER_UID}"):
        lease.acquire()
    assert settings.read_text() == '{"theme": "dark"}' and mode_of(settings) == 0o640
    # Ours but readable/writable by others, or a symlink: refused the same way.
    os.chown(planted, os.getuid(), os.getgid())
    with pytest.raises(UnsafeState, match="accessible to other users"):
        lease.acquire()
    planted.unlink()
    planted.symlink_to(tmp_path / "repo" / "x.json")
    with pytest.raises(UnsafeState, match="symlink"):
        read_private(planted)
    assert "evil" not in settings.read_text()


def test_a_state_file_of_the_wrong_shape_is_refused(tmp_path: Path) -> None:
    settings = tmp_path / "settings.json"
    leases = ensure_private_dir(tmp_path / "leases")
    digest = hashlib.sha256(str(settings.absolute()).encode()).hexdigest()[:24]
    state = leases / f"settings-{digest}.json"
    state.write_text(json.dumps({"original": EVIL, "mode": "rw", "holders": []}))
    state.chmod(0o600)
    with pytest.raises(UnsafeState, match="not a state file this wrapper wrote"):
        SettingsLease(settings, entry={}, merge={}, state_dir=leases).acquire()
    assert not settings.exists()


@pytest.mark.parametrize(("original", "restored"), [(0o640, 0o640), (0o666, 0o644), (0o600, 0o600)])
def test_restored_settings_keep_their_mode_but_never_others_write(
    tmp_path: Path, original: int, restored: int
) -> None:
    settings = tmp_path / "mcp-config.json"
    settings.write_text('{"mcpServers": {"mine": {"url": "http://x"}}}')
    settings.chmod(original)
    lease = SettingsLease(
        settings, entry={"url": "http://127.0.0.1:1/mcp"}, merge={}, state_dir=tmp_path / "leases"
    )
    lease.acquire()
    lease.release_start()
    assert "backchannel" in json.loads(settings.read_text())["mcpServers"]
    lease.restore()
    assert settings.read_text() == '{"mcpServers": {"mine": {"url": "http://x"}}}'
    assert mode_of(settings) == restored


def test_one_private_file_writer_and_a_verified_instance_id_read(tmp_path: Path) -> None:
    """Review 17: settings leases and reclaim secrets share state.write_private; the instance id is
    read like every private state file, so a planted one (a symlink to someone's id) is refused."""
    assert settings_lease.write_private is state.write_private
    data = tmp_path / "data"
    first = instance_id(data, "claude", tmp_path)
    assert instance_id(data, "claude", tmp_path) == first
    path = data / "wrapper" / "instances" / instance_stem("claude", tmp_path)
    assert mode_of(path) == 0o600 and mode_of(path.parent) == 0o700
    elsewhere = tmp_path / "their-id"
    elsewhere.write_text("f" * 32)
    path.unlink()
    path.symlink_to(elsewhere)
    with pytest.raises(UnsafeState, match="symlink"):
        instance_id(data, "claude", tmp_path)
    path.unlink()
    path.write_text("e" * 32)
    path.chmod(0o644)
    with pytest.raises(UnsafeState, match="accessible to other users"):
        instance_id(data, "claude", tmp_path)


def test_reclaim_secret_is_per_instance_private_and_stable(tmp_path: Path) -> None:
    state = WrapperState(tmp_path / "data", {})
    first = state.reclaim_secret("abc123")
    assert 32 <= len(first) <= 128
    assert state.reclaim_secret("abc123") == first
    assert state.reclaim_secret("other") != first
    path = tmp_path / "data" / "wrapper" / "reclaim" / "abc123"
    assert mode_of(path) == 0o600 and mode_of(path.parent) == 0o700
    assert mode_of(tmp_path / "data" / "wrapper") == 0o700


@as_root
@pytest.mark.anyio
async def test_the_wrapper_refuses_to_start_on_planted_state(tmp_path: Path) -> None:
    """End to end: a qwen run (settings_file) with another user's runtime dir stops, touching nothing."""
    planted = tmp_path / "home" / ".cache" / "backchannel"
    planted.mkdir(parents=True)
    os.chown(planted, OTHER_UID, OTHER_UID)
    repo = tmp_path / "repo"
    (repo / ".qwen").mkdir(parents=True)
    table = {
        "command": sys.executable,
        "mcp_inject": "settings_file",
        "mcp_settings_path": ".qwen/settings.json",
        "mcp_http_key": "httpUrl",
    }
    profile = load_profile("qwen", {"agents": {"qwen": table}}, env={}, config_path=None, cwd=repo)
    said: list[str] = []
    opts = RunOptions(
        server_url="http://192.0.2.1:8300", data_dir=tmp_path / "data", use_tmux=False, say=said.append,
        env={"PATH": os.environ["PATH"], "HOME": str(tmp_path / "home")},
    )  # fmt: skip
    with anyio.fail_after(10):
        assert await Runner(profile, opts).run() == 2
    assert len(said) == 1 and f"owned by uid {OTHER_UID}" in said[0], said
    assert not (repo / ".qwen" / "settings.json").exists()
