"""Internal records: frozen dataclasses returned by the store and passed between layers."""

from __future__ import annotations

from copy import deepcopy
from dataclasses import dataclass, field
from typing import Any, Literal

SenderKind = Literal["human", "agent", "system"]
TriggerState = Literal["queued", "injected", "failed", "superseded", "waiting"]
Activity = Literal["busy", "idle", ""]
Presence = Literal["online", "busy", "idle", "offline"]


@dataclass(frozen=True, slots=True)
class Channel:
    id: int
    name: str
    topic: str
    summary: str
    hops: int
    paused: bool
    created_at: float
    # Who wrote the summary (an agent's name) and when; empty / None until one is written.
    summary_by: str = ""
    summary_at: float | None = None

    def public(self) -> dict[str, Any]:
        return {
            "name": self.name,
            "topic": self.topic,
            "paused": self.paused,
            "created_at": self.created_at,
            "summary": self.summary,
            "summary_by": self.summary_by,
            "summary_at": self.summary_at,
        }


@dataclass(frozen=True, slots=True)
class Message:
    id: int
    channel: str
    sender: str
    kind: SenderKind
    type: str
    text: str
    reply_to: int | None
    attachments: list[dict[str, Any]]
    metadata: dict[str, Any]
    created_at: float
    edited_at: float | None
    deleted: bool
    # The author's stable person identity (people's messages only; None for agents, system and
    # people's messages from before persons existed). Edits and deletes belong to it, not to a name.
    person_id: int | None = None
    # The job whose thread this message is in; None for the channel timeline.
    job_id: int | None = None

    def public(self) -> dict[str, Any]:
        """The JSON shape for REST, WebSocket and ``chat_read``; deleted text is never shown.

        Spelled out rather than ``asdict`` (about a tenth of a post's CPU): the same keys in the same
        order, nested values copied, so a caller changing the dict never changes the message."""
        deleted = self.deleted
        return {
            "id": self.id,
            "channel": self.channel,
            "sender": self.sender,
            "kind": self.kind,
            "type": self.type,
            "text": "" if deleted else self.text,
            "reply_to": self.reply_to,
            "attachments": [] if deleted or not self.attachments else deepcopy(self.attachments),
            "metadata": deepcopy(self.metadata) if self.metadata else {},
            "created_at": self.created_at,
            "edited_at": self.edited_at,
            "deleted": deleted,
            "person_id": self.person_id,
            "job_id": self.job_id,
            "time": self.created_at,
        }

    def for_agent(self) -> dict[str, Any]:
        """The compact agentchattr-compatible shape agents see in ``chat_read``."""
        data: dict[str, Any] = {
            "id": self.id,
            "sender": self.sender,
            # "human" | "agent" | "system": a person's name can never read as an agent's.
            "kind": self.kind,
            "text": "(deleted)" if self.deleted else self.text,
            "type": self.type,
            "time": _iso(self.created_at),
            "channel": self.channel,
        }
        if self.job_id is not None:
            data["job_id"] = self.job_id
        if self.reply_to is not None:
            data["reply_to"] = self.reply_to
        if self.attachments and not self.deleted:
            data["attachments"] = self.attachments
        if self.edited_at is not None:
            data["edited"] = True
        if self.metadata.get("choices"):
            data["choices"] = self.metadata["choices"]
            # A resolved decision card says who chose what.
            for key in ("resolved", "chosen", "chosen_by"):
                if key in self.metadata:
                    data[key] = self.metadata[key]
        return data


def _iso(ts: float) -> str:
    import datetime as _dt

    return _dt.datetime.fromtimestamp(ts, tz=_dt.UTC).isoformat(timespec="seconds")


@dataclass(frozen=True, slots=True)
class Agent:
    id: int
    name: str
    base: str
    instance_id: str
    slot: int
    label: str
    color: str
    activity: Activity
    last_seen: float
    left: bool
    retired: bool
    last_channel: str
    role: str
    hat: str
    created_at: float
    # The room rules version this agent was last sent (in a wake-up); see store/rules.py.
    rules_seen: int = 0

    def presence(self, now: float, crash_timeout: float) -> Presence:
        if self.left or self.retired or now - self.last_seen > crash_timeout:
            return "offline"
        return self.activity or "online"  # no wrapper activity report: plain MCP client

    def is_online(self, now: float, crash_timeout: float) -> bool:
        return self.presence(now, crash_timeout) != "offline"

    def public(self, now: float, crash_timeout: float, rules_version: int = 0) -> dict[str, Any]:
        """What lists show: never the token. ``rules_version``: the room's, for ``rules_fresh``."""
        return {
            "name": self.name,
            "base": self.base,
            "label": self.label,
            "color": self.color,
            "slot": self.slot,
            "state": self.presence(now, crash_timeout),
            "online": self.is_online(now, crash_timeout),
            "last_seen": self.last_seen,
            "role": self.role,
            "hat": self.hat,
            # Has it been sent the current rules (no rule was ever active: nothing to see)?
            "rules_fresh": rules_version == 0 or self.rules_seen >= rules_version,
        }


@dataclass(frozen=True, slots=True)
class Trigger:
    id: int
    agent_id: int
    channel: str
    message_id: int
    job_id: int
    sender: str
    prompt: str
    state: TriggerState
    detail: str
    created_at: float
    updated_at: float

    def event_data(self) -> dict[str, Any]:
        """The SSE ``data`` object of the agent protocol."""
        return {
            "id": self.id,
            "channel": self.channel,
            "job_id": self.job_id,
            "message_id": self.message_id,
            "from": self.sender,
            "prompt": self.prompt,
        }


@dataclass(frozen=True, slots=True)
class Event:
    seq: int
    kind: str
    payload: dict[str, Any] = field(default_factory=dict[str, Any])

    def public(self) -> dict[str, Any]:
        return {"seq": self.seq, "kind": self.kind, **self.payload}


RuleStatus = Literal["proposed", "draft", "active", "archived"]


@dataclass(frozen=True, slots=True)
class Rule:
    """A standing instruction for agents; ``channel`` "" is room-wide, else only for that channel."""

    id: int
    uid: str
    text: str
    reason: str
    status: RuleStatus
    author: str
    channel: str
    sort_order: int
    created_at: float
    updated_at: float

    def public(self) -> dict[str, Any]:
        return {
            "id": self.id,
            "uid": self.uid,
            "text": self.text,
            "reason": self.reason,
            "status": self.status,
            "author": self.author,
            "channel": self.channel,
            "sort_order": self.sort_order,
            "created_at": self.created_at,
            "updated_at": self.updated_at,
        }


JobStatus = Literal["todo", "active", "closed"]
JOB_STATUSES: tuple[JobStatus, ...] = ("todo", "active", "closed")


@dataclass(frozen=True, slots=True)
class Job:
    """A unit of work on the board, with its own thread (messages whose ``job_id`` is this id)."""

    id: int
    uid: str
    title: str
    body: str
    status: JobStatus
    channel: str
    created_by: str
    assignee: str
    anchor_msg_id: int | None
    sort_order: int
    message_count: int
    created_at: float
    updated_at: float
    # The job thread's own loop guard (agent-to-agent hops without a human message).
    hops: int = 0
    paused: bool = False
    # The newest live thread message (0: none yet): a page counts unread messages above what it saw.
    last_message_id: int = 0

    def public(self) -> dict[str, Any]:
        return {
            "id": self.id,
            "uid": self.uid,
            "title": self.title,
            "body": self.body,
            "status": self.status,
            "channel": self.channel,
            "created_by": self.created_by,
            "assignee": self.assignee,
            "anchor_msg_id": self.anchor_msg_id,
            "sort_order": self.sort_order,
            "message_count": self.message_count,
            "last_message_id": self.last_message_id,
            "paused": self.paused,
            "created_at": self.created_at,
            "updated_at": self.updated_at,
        }


@dataclass(frozen=True, slots=True)
class Person:
    """A person with a stable id: the local person (CLI and this machine's browser) or a browser."""

    id: int
    name: str
    is_local: bool
    created_at: float
