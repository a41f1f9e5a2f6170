"""``backchannel run <agent>``: keep one CLI in the room, awake and with an identity that never goes stale.

One :class:`Runner` owns, for its lifetime: the registration (stable ``instance_id``), the identity
proxy, the CLI's MCP config, the CLI itself (in tmux, or in the foreground with ``--no-tmux``), and
four loops: trigger stream -> queue, queue -> injection (when the pane is idle, and only the
wake-ups the server has not withdrawn meanwhile), heartbeats with busy/idle, and a watch on the
CLI process that restarts it after a crash (not when the user quit it with status 0, not when
told not to, and never in a crash loop). An exclusive lock on its instance slot, held for the
whole run, keeps a second wrapper in the same directory from being (and so taking over) this one.
A ``401`` anywhere leads to one shared re-registration whose new token is swapped into the live
proxy. Server outages are ridden out with exponential backoff. From an
interactive terminal the user is attached to the CLI's tmux session; detaching keeps it running.
On exit everything is undone in reverse: CLI stopped, identity left, proxy closed, shared settings
files restored. All state lives in private, checked directories (:mod:`backchannel.wrapper.state`).
"""

from __future__ import annotations

import contextlib
import json
import logging
import os
import shutil
import signal
import sys
import time
import uuid
from collections import deque
from collections.abc import Awaitable, Callable, Mapping
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Literal

import anyio
import anyio.abc
import httpx
from anyio.streams.memory import MemoryObjectReceiveStream, MemoryObjectSendStream

from backchannel.errors import InvalidInput
from backchannel.wrapper import mcp_config
from backchannel.wrapper.agent_client import (
    AgentClient,
    Identity,
    StaleIdentity,
    Trigger,
    instance_id,
    instance_stem,
)
from backchannel.wrapper.injection import Delivery, Injector
from backchannel.wrapper.profiles import AgentProfile, session_name
from backchannel.wrapper.proxy import IdentityProxy
from backchannel.wrapper.serving import serve
from backchannel.wrapper.state import UnsafeState, WrapperState, read_private, write_private
from backchannel.wrapper.tmux import Tmux, TmuxError, attach_hint

logger = logging.getLogger(__name__)

# Variables that describe the *wrapper's* terminal, wrong for a CLI in another tmux pane.
_TERMINAL_VARS = ("TMUX", "TMUX_PANE")


def group_prompt(group: list[Trigger]) -> str:
    """The one prompt typed for several wake-ups of a channel: the newest, plus the room rules an
    earlier one carried (the server counts them as seen once it sends them)."""
    prompt = group[-1].prompt
    rules = _rules(group)
    return prompt if not rules or prompt.endswith(rules) else prompt + rules


def _rules(group: list[Trigger]) -> str:
    """The room rules the newest wake-up of ``group`` that carries them brought along, or ""."""
    return next((r for t in reversed(group) if isinstance(r := t.raw.get("rules"), str) and r), "")


# Trigger states the server still wants delivered (store/triggers.py PENDING_STATES).
_DELIVERABLE = frozenset({"queued", "waiting", "failed"})


@dataclass
class RunOptions:
    """Everything ``backchannel run`` resolved at the edge (CLI flags, env, config file)."""

    server_url: str
    data_dir: Path
    env: Mapping[str, str]
    label: str | None = None
    use_tmux: bool = True
    preapprove: bool = True
    extra_args: tuple[str, ...] = ()
    tmux_socket: str | None = None
    heartbeat_interval: float = 5.0
    backoff_max: float = 2.0
    ready_timeout: float = 15.0
    join_key: str | None = None  # --allow-network servers want it on registration
    transport: httpx.AsyncBaseTransport | None = None
    say: Callable[[str], None] = field(default=lambda text: print(text, file=sys.stderr, flush=True))
    restart: bool = False  # start the CLI again when it exits (``backchannel run`` turns this on)
    restart_delay: float = 3.0
    crash_loop_max: int = 5  # this many exits within crash_loop_window: stop restarting
    crash_loop_window: float = 60.0
    attach: bool = False  # show the tmux session in this terminal (decided by the caller: isatty)


class Runner:
    """Runs one agent CLI until it exits or the wrapper is told to stop."""

    def __init__(self, profile: AgentProfile, options: RunOptions) -> None:
        self.profile = profile
        self.opts = options
        self.client = AgentClient(options.server_url, transport=options.transport)
        self.instance = ""  # set once the private state dir is checked (_prepare_state)
        self.reclaim_secret: str | None = None
        self.run_dir = options.data_dir / "wrapper" / "run"
        self.leases: Path | None = None
        self.identity: Identity | None = None
        self.proxy: IdentityProxy | None = None
        self.setup: mcp_config.McpSetup | None = None
        self.tmux = Tmux(options.tmux_socket) if options.use_tmux else None
        self.session: str | None = None
        self.injector: Injector | None = None
        self.process: anyio.abc.Process | None = None
        self._refresh_lock = anyio.Lock()
        self._queue_in: MemoryObjectSendStream[Trigger]
        self._queue_out: MemoryObjectReceiveStream[Trigger]
        self._queue_in, self._queue_out = anyio.create_memory_object_stream[Trigger](1000)
        self._seen: dict[int, tuple[str, str] | None] = {}  # trigger id -> outcome once delivered
        self.ready = anyio.Event()  # set once the CLI runs and the loops are live (tests, bench)
        self.delivered: list[tuple[int, float]] = []  # (trigger id, monotonic time typed)
        self.exit_code = 0
        self.restarts = 0  # how many times the CLI was started again after it exited
        self._launch: tuple[list[str], dict[str, str]] | None = None  # argv and env, for restarts
        self._restart_pending = False  # waiting to restart: Ctrl-C now means "leave"
        self._attached = False
        self._held: list[str] = []  # said while the terminal showed tmux, to print once it is back
        self._attach_proc: anyio.abc.Process | None = None
        self._status_file: Path | None = None  # where the launcher writes the CLI's exit status
        self._instance_lock: int | None = None  # flock fd: this instance slot is ours while we run
        self._tg: anyio.abc.TaskGroup | None = None
        self._lease_lock = anyio.Lock()  # one settings-lease call at a time (they run in threads)
        self._release_scope: anyio.CancelScope | None = None  # the pending release of the lease

    def say(self, text: str, *, leaving: bool = False) -> None:
        """Tell the user. While their terminal shows the tmux session, show it on tmux's status line;
        why we leave (``leaving``), or what tmux could not show, is printed once the terminal is back.
        """
        if not self._attached:
            self.opts.say(text)
        elif leaving or self.tmux is None or self.session is None:
            self._held.append(text)
        elif not self.tmux.show_message(self.session, text):
            self._held.append(text)

    def _prepare_state(self) -> None:
        """Check the private state dirs, take a free instance slot, read (or make) its id and secret.

        The slot stays locked for the whole run: a second wrapper of the same CLI in the same
        directory gets the next slot (its own id, so its own name), never this one's identity.
        """
        state = WrapperState(self.opts.data_dir, self.opts.env)
        self.run_dir = state.run_dir
        if self.profile.mcp_inject == "settings_file":
            self.leases = state.leases_dir()
        slot, self._instance_lock = state.lock_instance(instance_stem(self.profile.base, self.profile.cwd))
        self.instance = instance_id(self.opts.data_dir, self.profile.base, self.profile.cwd, slot)
        self.reclaim_secret = state.reclaim_secret(self.instance)

    @property
    def me(self) -> Identity:
        assert self.identity is not None, "not registered yet"
        return self.identity

    # -- identity ------------------------------------------------------------------------------
    async def _register_with_backoff(self) -> Identity:
        delay = 0.1
        while True:
            try:
                label = self.opts.label or self.profile.label
                return await self.client.register(
                    self.profile.base,
                    self.instance,
                    label,
                    self.opts.join_key,
                    reclaim_secret=self.reclaim_secret,
                )
            except httpx.TransportError as exc:
                self.say(f"backchannel: server {self.opts.server_url} unreachable ({exc}); retrying")
            except httpx.HTTPStatusError as exc:
                if exc.response.status_code < 500:
                    raise
            await anyio.sleep(delay)
            delay = min(delay * 2, self.opts.backoff_max)

    async def refresh(self, stale: str | None = None) -> str:
        """Re-register (same instance, so the same name) and swap the token in the live proxy."""
        async with self._refresh_lock:
            if self.identity is not None and stale is not None and self.identity.token != stale:
                return self.identity.token
            old_name = self.identity.name if self.identity else None
            self.identity = await self._register_with_backoff()
            if self.proxy is not None:
                self.proxy.set_token(self.identity.token)
            if self.setup is not None:
                self.setup.rewrite_token(self.identity.token)  # legacy `flag` mode only
            if old_name and old_name != self.identity.name:
                self.say(f"backchannel: now registered as {self.identity.name} (was {old_name})")
            logger.info("re-registered as %s", self.identity.name)
            return self.identity.token

    async def _proxy_refresh(self, stale: str) -> str | None:
        return await self.refresh(stale)

    # -- main ------------------------------------------------------------------------------------
    async def run(self) -> int:
        """Run until the CLI exits or SIGINT/SIGTERM/SIGHUP; always clean up."""
        try:
            async with anyio.create_task_group() as tg:
                tg.start_soon(self._signals, tg.cancel_scope)
                await self._run(tg)
                tg.cancel_scope.cancel()
        finally:
            with anyio.CancelScope(shield=True):
                await self._cleanup()
        return self.exit_code

    async def _signals(self, scope: anyio.CancelScope) -> None:
        # SIGINT is always caught: in --no-tmux mode Ctrl-C belongs to the CLI in the foreground
        # (the terminal sends it to both of us), so we swallow it; a handler, unlike SIG_IGN,
        # is not inherited by the CLI.
        with anyio.open_signal_receiver(signal.SIGTERM, signal.SIGHUP, signal.SIGINT) as received:
            async for signum in received:
                if signum == signal.SIGINT and self.tmux is None and not self._restart_pending:
                    continue
                self.say(f"backchannel: got {signal.Signals(signum).name}, leaving", leaving=True)
                self.exit_code = 128 + signum
                scope.cancel()
                return

    async def _join(self, base: str) -> bool:
        """Prepare the state directory and register as ``base``; False (exit code set, reason said)
        when either is refused, so the caller stops before starting anything."""
        try:
            await anyio.to_thread.run_sync(self._prepare_state)
        except InvalidInput as exc:
            self.say(f"backchannel: {exc.detail}")
            self.exit_code = 2
            return False
        try:
            self.identity = await self._register_with_backoff()
        except httpx.HTTPStatusError as exc:
            self.say(f"backchannel: the server refused to register {base}: {exc.response.text[:300]}")
            self.exit_code = 1
            return False
        return True

    async def _run(self, tg: anyio.abc.TaskGroup) -> None:
        self._tg = tg
        if shutil.which(self.profile.command, path=self.opts.env.get("PATH", os.defpath)) is None:
            # Checked here: inside tmux the launcher's error would vanish with the pane.
            self.say(
                f"backchannel: {self.profile.command!r} is not on PATH; is {self.profile.key} installed?"
            )
            self.exit_code = 127
            return
        if not await self._join(self.profile.base):
            return
        self.proxy = IdentityProxy(self.opts.server_url, self.me.token, refresh=self._proxy_refresh)
        proxy_url = await tg.start(self._serve_proxy)
        url = proxy_url if self.profile.uses_proxy else None
        try:
            self.setup = await anyio.to_thread.run_sync(
                lambda: mcp_config.prepare(
                    self.profile,
                    run_dir=self.run_dir,
                    proxy_url=url,
                    server_url=self.opts.server_url,
                    token=self.me.token,
                    preapprove=self.opts.preapprove,
                    state_dir=self.leases,
                    env=self.opts.env,
                )
            )
        except InvalidInput as exc:
            self.say(f"backchannel: {exc.detail}")
            self.exit_code = 2
            return
        for warning in (*self.profile.warnings, *self.setup.warnings):
            self.say(f"backchannel: warning: {warning}")
        argv = [self.profile.command, *self.profile.args, *self.opts.extra_args, *self.setup.args]
        env = {
            k: v
            for k, v in self.opts.env.items()
            if k not in self.profile.strip_env and k not in _TERMINAL_VARS
        }
        env.update(self.setup.env)
        self._launch = (argv, env)
        if self.tmux is not None:
            await self._start_in_tmux(argv, env)
        else:
            await self._start_foreground(argv, env)
        tg.start_soon(self._trigger_loop)
        tg.start_soon(self._heartbeat_loop)
        tg.start_soon(self._inject_loop)
        self._release_settings_when_ready()
        if self.opts.attach and self.tmux is not None:
            tg.start_soon(self._attach)
        self.ready.set()
        await self._supervise()

    async def _serve_proxy(
        self, *, task_status: anyio.abc.TaskStatus[str] = anyio.TASK_STATUS_IGNORED
    ) -> None:
        assert self.proxy is not None
        async with serve(self.proxy) as url:
            task_status.started(url)
            await anyio.sleep_forever()

    # -- the CLI -------------------------------------------------------------------------------
    async def _start_in_tmux(self, argv: list[str], env: dict[str, str]) -> None:
        assert self.tmux is not None
        self.session = session_name(self.me.name, self.opts.env)
        if await self.tmux.has_session(self.session):
            # Same instance, so same name: a session left by a wrapper that died without cleanup.
            self.say(f"backchannel: replacing leftover tmux session {self.session}")
            await self.tmux.kill_session(self.session)
        # remain-on-exit: when the CLI exits the pane stays (with its exit status), so a restart
        # happens in place and an attached terminal stays attached.
        await self.tmux.new_session(
            self.session, self._launcher(argv, env), cwd=self.profile.cwd, remain_on_exit=True
        )
        self.injector = Injector(
            self.tmux,
            self.session,
            inject_delay=self.profile.inject_delay,
            busy_pattern=self.profile.busy_pattern,
            idle_pattern=self.profile.idle_pattern,
            dialog_pattern=self.profile.dialog_pattern,
        )
        if not self.opts.attach:
            self.say(
                f"backchannel: {self.profile.key} joined as {self.me.name}; "
                f"attach with: {attach_hint(self.session, self.tmux.socket_name)}"
            )

    def _launcher(self, argv: list[str], env: dict[str, str]) -> list[str]:
        """The command tmux runs: our launcher, reading argv/env/cwd from a 0600 file it deletes.

        It writes the CLI's exit status to ``_status_file`` (tmux's own is not always recorded).
        """
        run_id = uuid.uuid4().hex
        launch = self.run_dir / f"launch-{run_id}.json"
        self._status_file = self.run_dir / f"status-{run_id}"
        spec = {"argv": argv, "env": env, "cwd": str(self.profile.cwd), "status_file": str(self._status_file)}
        write_private(launch, json.dumps(spec))
        return [sys.executable, "-m", "backchannel.wrapper.launch", str(launch)]

    async def _start_foreground(self, argv: list[str], env: dict[str, str]) -> None:
        self.say(f"backchannel: {self.profile.key} joined as {self.me.name} (no tmux: mentions are shown)")
        self.process = await anyio.open_process(
            argv, stdin=None, stdout=None, stderr=None, env=env, cwd=self.profile.cwd
        )

    async def _attach(self) -> None:
        """Show the CLI's session in this terminal until the user detaches (the CLI keeps running).

        If the wrapper leaves while attached, :meth:`_cleanup` ends the session (and so this client)
        first and only then prints what was held, so it is not lost under tmux's screen.
        """
        assert self.tmux is not None and self.session is not None
        self._attached = True
        self._attach_proc = await anyio.open_process(
            self.tmux.argv("attach-session", "-t", f"={self.session}"), stdin=None, stdout=None, stderr=None
        )
        await self._attach_proc.wait()
        self._end_attach()
        if await self.tmux.has_session(self.session):
            self.say(
                f"backchannel: detached; {self.profile.key} keeps running as {self.me.name}. "
                f"Re-attach with: {attach_hint(self.session, self.tmux.socket_name)} "
                "(Ctrl-C here stops it)"
            )

    def _end_attach(self) -> None:
        """The terminal is ours again: print what was said meanwhile."""
        self._attached = False
        held, self._held = self._held, []
        for text in held:
            self.opts.say(text)

    async def _wait_one_exit(self) -> int | None:
        """Wait for the CLI to exit; its status, or None if its tmux session was closed."""
        if self.process is not None:
            return await self.process.wait()
        assert self.tmux is not None and self.session is not None
        try:
            pid = await self.tmux.pane_pid(self.session)
        except (TmuxError, ValueError):
            return None
        await wait_exit(pid)
        if not await self.tmux.has_session(self.session):
            return None
        if self._status_file is not None:
            try:
                text = read_private(self._status_file)
            except UnsafeState:
                text = None
            self._status_file.unlink(missing_ok=True)
            if text is not None and text.strip().lstrip("-").isdigit():
                return int(text)
        return await self.tmux.dead_status(self.session)  # the launcher itself was killed

    async def _supervise(self) -> None:
        """Watch the CLI; restart it after it exits (``restart``), unless it keeps crashing."""
        exits: deque[float] = deque()
        key = self.profile.key
        while True:
            status = await self._wait_one_exit()
            if status is None:
                self.say(f"backchannel: the tmux session of {key} was closed; leaving", leaving=True)
                return
            self.exit_code = status
            # A clean exit is the user quitting (/exit, /quit): don't trap them in a restart loop.
            # In this terminal (--no-tmux) so is Ctrl-C; in tmux a signal or non-zero status is a crash.
            quit_signals = (128 + signal.SIGINT, -signal.SIGINT) if self.tmux is None else ()
            if not self.opts.restart or status == 0 or status in quit_signals:
                self.say(f"backchannel: {key} exited (status {status}); leaving", leaving=True)
                return
            now = time.monotonic()
            exits.append(now)
            while exits and now - exits[0] > self.opts.crash_loop_window:
                exits.popleft()
            if len(exits) >= self.opts.crash_loop_max:
                self.say(
                    f"backchannel: {key} exited {len(exits)} times within "
                    f"{self.opts.crash_loop_window:g} s (last status {status}); not restarting it again. "
                    f"Check that `{self.profile.command}` starts on its own, then run again",
                    leaving=True,
                )
                self.exit_code = status or 1
                return
            hint = "Ctrl-C to leave" if self.tmux is None else "--no-restart to leave instead"
            self.say(
                f"backchannel: {key} exited (status {status}); restarting in "
                f"{self.opts.restart_delay:g} s ({hint})"
            )
            self._restart_pending = True
            try:
                await anyio.sleep(self.opts.restart_delay)
            finally:
                self._restart_pending = False
            await self._restart()

    async def _restart(self) -> None:
        assert self._launch is not None
        argv, env = self._launch
        lease = self.setup.lease if self.setup is not None else None
        if lease is not None:
            # Another wrapper may have pointed the shared settings file at its own proxy since our
            # CLI started: the new CLI reads it again, so take the file back, as at start.
            if self._release_scope is not None:
                self._release_scope.cancel()  # still held from the last start: hold it on
            async with self._lease_lock:
                await anyio.to_thread.run_sync(lease.acquire)
        if self.tmux is not None and self.session is not None:
            await self.tmux.respawn(self.session, self._launcher(argv, env), cwd=self.profile.cwd)
        else:
            await self._start_foreground(argv, env)
        self._release_settings_when_ready()
        self.restarts += 1
        logger.info("%s restarted (%d)", self.profile.key, self.restarts)

    def _release_settings_when_ready(self) -> None:
        """Hold a shared settings file until our CLI has read it (idle prompt) or a timeout."""
        setup = self.setup
        if setup is None or setup.lease is None or self._tg is None:
            return
        scope = self._release_scope = anyio.CancelScope()

        async def release() -> None:
            with scope:
                with anyio.move_on_after(self.opts.ready_timeout):
                    if self.injector is not None:
                        # An empty pane also looks idle to a busy-pattern CLI: wait for it to draw
                        # first, and give it a moment past its first idle screen (settings load
                        # before the prompt).
                        await self.injector.wait_drawn()
                        await self.injector.wait_idle()
                        await anyio.sleep(2.0)
                    else:
                        await anyio.sleep(self.opts.ready_timeout / 3)
                async with self._lease_lock:
                    await anyio.to_thread.run_sync(setup.release_start)

        self._tg.start_soon(release)

    # -- loops ---------------------------------------------------------------------------------
    async def _trigger_loop(self) -> None:
        delay = 0.1
        while True:
            me = self.me
            try:
                async for trigger in self.client.triggers(me):
                    delay = 0.1
                    await self._accept(trigger)
                # The server ended a stream it had accepted (it restarts, or our token was revoked:
                # the next connect says 401). Earlier outages are over: retry after a short beat.
                delay = 0.1
            except StaleIdentity:
                await self.refresh(me.token)
                continue
            except (httpx.TransportError, httpx.HTTPStatusError) as exc:
                if not isinstance(exc, (httpx.ConnectError, httpx.ConnectTimeout, httpx.HTTPStatusError)):
                    delay = 0.1  # a live stream dropped (the server went away): first retry quickly
                logger.info("trigger stream down (%s); retrying in %.1fs", exc, delay)
            await anyio.sleep(delay)
            delay = min(delay * 2, self.opts.backoff_max)

    async def _accept(self, trigger: Trigger) -> None:
        if trigger.id in self._seen:
            outcome = self._seen[trigger.id]
            if outcome is not None:  # delivered, but the server missed our report: say it again
                await self._report(trigger.id, outcome[0], outcome[1])
            return
        self._seen[trigger.id] = None
        if len(self._seen) > 10_000:  # ids only grow; forget the oldest half
            for old in sorted(self._seen)[:5_000]:
                del self._seen[old]
        logger.info("trigger %s for #%s queued", trigger.id, trigger.channel)
        await self._queue_in.send(trigger)

    async def _inject_loop(self) -> None:
        async with self._queue_out:
            while True:
                batch = [await self._queue_out.receive()]
                with contextlib.suppress(anyio.WouldBlock):
                    while True:
                        batch.append(self._queue_out.receive_nowait())
                by_channel: dict[str, list[Trigger]] = {}
                for trigger in batch:
                    by_channel.setdefault(trigger.channel, []).append(trigger)
                for group in by_channel.values():  # one prompt per channel
                    await self._hold(group)
                    # Held while the CLI was busy: the server may have withdrawn some meanwhile.
                    live = await self._still_pending(group)
                    if live:
                        await self._deliver(live)

    def _waiting(self, group: list[Trigger]) -> Callable[[str], Awaitable[None]]:
        async def waiting(dialog: str) -> None:
            # The CLI asks a person something (a permission dialog): the mention stays queued
            # here, and the room shows what the agent is waiting for.
            for trigger in group:
                await self._report(trigger.id, "waiting", dialog)

        return waiting

    async def _hold(self, group: list[Trigger]) -> None:
        """Wait until the CLI could take a prompt now (idle, no dialog)."""
        if self.injector is None:
            return
        with contextlib.suppress(TmuxError):  # the pane is going: _deliver reports the failure
            await self.injector.wait_ready(self._waiting(group))

    async def _still_pending(self, group: list[Trigger]) -> list[Trigger]:
        """The wake-ups of ``group`` the server still wants delivered, asked in one call right before
        they are typed. Superseded ones (a session ended, a turn taken, the channel cleared, a job
        deleted) are dropped without a report. If the server cannot say, all are kept: a wake-up
        typed twice is better than one lost."""
        states: dict[int, str] | None = None
        for _attempt in range(2):
            me = self.me
            try:
                states = await self.client.trigger_states(me, [t.id for t in group])
                break
            except StaleIdentity:
                await self.refresh(me.token)
            except (httpx.TransportError, httpx.HTTPStatusError, ValueError, KeyError) as exc:
                logger.info("could not check triggers %s: %s", [t.id for t in group], exc)
                return group
        if states is None:
            return group
        live = [t for t in group if states.get(t.id) in _DELIVERABLE]
        if len(live) == len(group):
            return group
        gone = {t.id: states.get(t.id, "gone") for t in group if states.get(t.id) not in _DELIVERABLE}
        logger.info("triggers withdrawn by the server, not typed: %s", gone)
        # The room rules went out with a dropped one (the server counts them seen): type them with
        # the rest, or, if nothing is left to type, say so (the trigger stays superseded; the next
        # wake-up carries the rules again).
        rules = _rules(group)
        if live and rules and not _rules(live):
            live[0] = replace(live[0], raw={**live[0].raw, "rules": rules})
        elif not live and rules:
            for trigger in group:
                if trigger.raw.get("rules"):
                    await self._report(trigger.id, "failed", "withdrawn before it was typed")
        return live

    async def _deliver(self, group: list[Trigger]) -> None:
        prompt = group_prompt(group)
        if self.injector is None:
            self.opts.say(f"backchannel: {prompt}")
            state, detail = "failed", "--no-tmux: shown in the wrapper's terminal, not typed"
        else:

            async def submitted() -> None:
                # Acknowledge at once: until the server hears of it, a new mention in this channel
                # is folded into this (already typed) trigger.
                for trigger in group:
                    self._seen[trigger.id] = ("injected", "submitted")
                    await self._report(trigger.id, "injected", "submitted")

            try:
                # Waits while the CLI is busy or shows a dialog; never types into a dialog.
                delivery = await self.injector.inject(
                    prompt, on_enter=submitted, on_dialog=self._waiting(group)
                )
            except TmuxError as exc:
                delivery = Delivery(False, f"tmux: {exc}")
            self.delivered.extend((t.id, delivery.typed_at) for t in group)
            if delivery.ok:
                logger.info("triggers %s injected: %s", [t.id for t in group], delivery.detail)
                return
            state, detail = "failed", delivery.detail
        logger.info("triggers %s %s: %s", [t.id for t in group], state, detail)
        for trigger in group:
            self._seen[trigger.id] = (state, detail)
            await self._report(trigger.id, state, detail)

    async def _activity(self) -> Literal["busy", "idle"] | None:
        if self.injector is None:
            return None
        try:
            return await self.injector.activity()
        except TmuxError:  # the pane is going away; the exit watcher takes it from here
            return None

    async def _report(self, trigger_id: int, state: str, detail: str) -> None:
        reported: Literal["injected", "failed", "waiting"] = "failed"
        if state == "injected" or state == "waiting":
            reported = state
        for _attempt in range(2):
            me = self.me
            try:
                await self.client.report(me, trigger_id, reported, detail)
                return
            except StaleIdentity:
                await self.refresh(me.token)
            except (httpx.TransportError, httpx.HTTPStatusError) as exc:
                # The server replays unacknowledged triggers on reconnect; _accept re-reports then.
                logger.info("could not report trigger %s: %s", trigger_id, exc)
                return

    async def _heartbeat_loop(self) -> None:
        while True:
            me = self.me
            try:
                activity = await self._activity()
                await self.client.heartbeat(me, activity)
                logger.debug("heartbeat %s %s", me.name, activity)
                interval = self.opts.heartbeat_interval
            except StaleIdentity:
                await self.refresh(me.token)
                continue
            except (httpx.TransportError, httpx.HTTPStatusError) as exc:
                logger.info("heartbeat failed: %s", exc)
                interval = min(self.opts.heartbeat_interval, 1.0)
            await anyio.sleep(interval)

    # -- cleanup ---------------------------------------------------------------------------------
    async def _cleanup(self) -> None:
        started = time.monotonic()
        if self.tmux is not None and self.session is not None:
            pid = None
            with contextlib.suppress(Exception):
                pid = await self.tmux.pane_pid(self.session)
            await self.tmux.kill_session(self.session)
            if pid is not None:
                await _reap(pid)
            if self._status_file is not None:  # written by the launcher as it exits
                self._status_file.unlink(missing_ok=True)
            if self._attach_proc is not None and self._attach_proc.returncode is None:
                with anyio.move_on_after(2):  # the attached client ends with the session
                    await self._attach_proc.wait()
            self._end_attach()
            logger.info("CLI stopped after %.2fs", time.monotonic() - started)
        if self.process is not None and self.process.returncode is None:
            self.process.terminate()
            with anyio.move_on_after(5):
                await self.process.wait()
            if self.process.returncode is None:
                self.process.kill()
        if self.identity is not None:
            with anyio.move_on_after(3), contextlib.suppress(httpx.HTTPError):
                await self.client.leave(self.identity)
            logger.info("left after %.2fs", time.monotonic() - started)
        if self.proxy is not None:
            await self.proxy.aclose()
        if self.setup is not None:
            await anyio.to_thread.run_sync(self.setup.close)
        await self.client.aclose()
        if self._instance_lock is not None:  # only now may another wrapper be this instance
            os.close(self._instance_lock)
            self._instance_lock = None
        logger.info("cleaned up in %.2fs", time.monotonic() - started)


async def wait_exit(pid: int, timeout: float | None = None) -> bool:
    """Wait for ``pid`` to exit (a zombie counts); True if it did. Event-driven where Linux allows."""
    with anyio.move_on_after(timeout):
        try:
            fd = os.pidfd_open(pid)
        except ProcessLookupError:
            return True
        except (AttributeError, OSError):  # no pidfd (not Linux): fall back to looking
            while _running(pid):
                await anyio.sleep(0.05)
            return True
        try:
            await anyio.wait_readable(fd)  # readable once the process has exited
            return True
        finally:
            os.close(fd)
    return False


def _running(pid: int) -> bool:
    try:
        with open(f"/proc/{pid}/stat", encoding="ascii") as fh:
            return fh.read().rsplit(")", 1)[1].split()[0] != "Z"
    except OSError:
        try:
            os.kill(pid, 0)
        except ProcessLookupError:
            return False
        return True


async def _reap(pid: int) -> None:
    """After kill-session the pane got SIGHUP; make sure a CLI that ignores it still goes."""
    for sig in (signal.SIGTERM, signal.SIGKILL):
        if await wait_exit(pid, 2.0):
            return
        with contextlib.suppress(ProcessLookupError):
            os.killpg(pid, sig)
