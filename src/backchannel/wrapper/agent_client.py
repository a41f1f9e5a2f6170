"""The wrapper's side of the agent protocol (register, heartbeat, leave, triggers, delivery reports)."""

from __future__ import annotations

import hashlib
import json
import uuid
from collections.abc import AsyncIterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal

import httpx

from backchannel.wrapper._sse import EventParser
from backchannel.wrapper.state import ensure_private_dir, read_private, write_private


class StaleIdentity(Exception):
    """The server answered ``401``: our token is unknown or revoked; re-register."""


@dataclass(frozen=True, slots=True)
class Identity:
    name: str
    token: str
    base: str
    label: str
    color: str

    @property
    def auth(self) -> dict[str, str]:
        return {"Authorization": f"Bearer {self.token}"}


@dataclass(frozen=True, slots=True)
class Trigger:
    id: int
    channel: str
    prompt: str
    sender: str
    raw: dict[str, Any]


def instance_stem(base: str, cwd: Path) -> str:
    """``<base>-<digest of cwd>``: names an agent's instance files (and locks) per working directory."""
    return f"{base}-{hashlib.sha256(str(cwd.resolve()).encode()).hexdigest()[:16]}"


def instance_id(data_dir: Path, base: str, cwd: Path, slot: int = 1) -> str:
    """A stable id per agent, working directory and slot, so a re-run gets its old name back.

    Read and written like every private state file (ours, ``0600``, no symlink, in a checked
    directory): a planted id would make us register as, and prove ourselves to be, someone else.
    Slot n > 1 is a second wrapper running at the same time (:meth:`WrapperState.lock_instance`).
    """
    stem = instance_stem(base, cwd)
    path = ensure_private_dir(data_dir / "wrapper" / "instances") / (stem if slot == 1 else f"{stem}-{slot}")
    value = (read_private(path) or "").strip()
    if value:
        return value
    value = uuid.uuid4().hex
    write_private(path, value + "\n")
    return value


# Drop a pooled connection after 2 s idle, well inside the server's idle_timeout: a client that
# reuses a socket just as the server closes it gets "Server disconnected" for a request that may not
# be replayed safely (a tool call). The client closing first never races.
CLIENT_LIMITS = httpx.Limits(keepalive_expiry=2.0)


class AgentClient:
    """HTTP calls to the server as one agent; ``transport`` is a seam for tests and benches."""

    def __init__(self, server_url: str, *, transport: httpx.AsyncBaseTransport | None = None) -> None:
        timeout = httpx.Timeout(connect=5.0, read=10.0, write=10.0, pool=10.0)
        # trust_env=False: a machine-wide HTTP proxy must never reroute loopback agent traffic.
        self.http = httpx.AsyncClient(
            base_url=server_url, timeout=timeout, transport=transport, limits=CLIENT_LIMITS, trust_env=False
        )

    async def aclose(self) -> None:
        await self.http.aclose()

    @staticmethod
    def _check(response: httpx.Response) -> None:
        if response.status_code == 401:
            raise StaleIdentity(response.text)
        response.raise_for_status()

    async def register(
        self,
        base: str,
        instance: str,
        label: str | None,
        join_key: str | None = None,
        reclaim_secret: str | None = None,
    ) -> Identity:
        """Register or reclaim; ``reclaim_secret`` (32-128 chars, kept privately per instance) lets a
        restarted wrapper take back its own name while the server still counts it live."""
        body: dict[str, Any] = {"base": base, "instance_id": instance}
        if label:
            body["label"] = label
        if reclaim_secret:
            body["reclaim_secret"] = reclaim_secret
        headers = {"X-Join-Key": join_key} if join_key else {}
        response = await self.http.post("/api/agents/register", json=body, headers=headers)
        response.raise_for_status()
        data = response.json()
        return Identity(
            data["name"], data["token"], data["base"], data.get("label", ""), data.get("color", "")
        )

    async def heartbeat(self, me: Identity, activity: Literal["busy", "idle"] | None) -> str:
        body = {"activity": activity} if activity else {}
        response = await self.http.post(f"/api/agents/{me.name}/heartbeat", json=body, headers=me.auth)
        self._check(response)
        return str(response.json().get("name", me.name))

    async def leave(self, me: Identity) -> None:
        response = await self.http.delete(f"/api/agents/{me.name}", headers=me.auth)
        if response.status_code not in (204, 401, 404):
            response.raise_for_status()

    async def report(
        self, me: Identity, trigger_id: int, state: Literal["injected", "failed", "waiting"], detail: str
    ) -> None:
        response = await self.http.post(
            f"/api/agents/{me.name}/triggers/{trigger_id}",
            json={"state": state, "detail": detail[:2000]},
            headers=me.auth,
        )
        self._check(response)

    async def trigger_states(self, me: Identity, ids: list[int]) -> dict[int, str]:
        """The server's current state of each of our triggers in ``ids``; ids it does not list are
        not ours any more (treat them as gone). One request per 500 ids."""
        found: dict[int, str] = {}
        for start in range(0, len(ids), 500):
            chunk = ",".join(str(i) for i in ids[start : start + 500])
            response = await self.http.get(
                f"/api/agents/{me.name}/triggers/states", params={"ids": chunk}, headers=me.auth
            )
            self._check(response)
            found.update({int(k): str(v) for k, v in response.json()["states"].items()})
        return found

    async def triggers(self, me: Identity) -> AsyncIterator[Trigger]:
        """Pushed wake-ups: unacknowledged ones first, then live ones; ends when the server ends it."""
        timeout = httpx.Timeout(connect=5.0, read=None, write=10.0, pool=10.0)
        async with self.http.stream(
            "GET", f"/api/agents/{me.name}/triggers", headers=me.auth, timeout=timeout
        ) as response:
            if response.status_code == 401:
                raise StaleIdentity("trigger stream refused our token")
            response.raise_for_status()
            parser = EventParser()
            async for chunk in response.aiter_bytes():
                for event in parser.feed(chunk):
                    if not event.data:
                        continue
                    data = json.loads(event.data)
                    yield Trigger(
                        id=int(data["id"]),
                        channel=str(data.get("channel", "")),
                        prompt=str(data.get("prompt", "")),
                        sender=str(data.get("from", "")),
                        raw=data,
                    )
