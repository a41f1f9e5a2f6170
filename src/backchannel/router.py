"""@mention parsing and routing decisions. Pure functions: no I/O, so every rule is easy to test.

The store calls :func:`plan_routing` inside the transaction that stores the message, so the loop
guard's hop counter can never race with a concurrent message in the same channel.
"""

from __future__ import annotations

import re
from collections.abc import Iterable
from dataclasses import dataclass, field

from backchannel.models import Agent, Channel, SenderKind

# A mention starts at a word boundary (so `me@example.com` is not one) and takes the longest run of
# name characters, so `@claude-2` names claude-2 even when claude exists too.
_MENTION = re.compile(r"(?<![\w@./-])@([A-Za-z0-9][A-Za-z0-9_-]*)")
_FENCE = re.compile(r"(^|\n)[ \t]*(```|~~~)[^\n]*\n.*?(\n[ \t]*\2[ \t]*(?=\n|$)|$)", re.S)
_TICKS = re.compile(r"`+")

CONTINUE_COMMAND = "/continue"
# Bases we know even before one has registered, so `@codex` with no codex yet gets a helpful notice.
KNOWN_BASES = frozenset(
    {"claude", "codex", "gemini", "qwen", "kimi", "kilo", "codebuddy", "copilot", "agy", "antigravity"}
)


def strip_code(text: str) -> str:
    """Blank out fenced blocks and inline code spans: a mention there is an example, not a call."""
    text = _FENCE.sub(lambda m: m.group(1) + " ", text)
    return _strip_inline(text)


def _strip_inline(text: str) -> str:
    """Blank inline code spans in linear time (a backtick run closes at the next run of its length).

    A regex with a lazy body is quadratic on pathological input such as thousands of backticks.
    """
    runs = [(m.start(), m.end()) for m in _TICKS.finditer(text)]
    closer: list[int | None] = [None] * len(runs)
    last_of_length: dict[int, int] = {}
    for i in range(len(runs) - 1, -1, -1):
        length = runs[i][1] - runs[i][0]
        closer[i] = last_of_length.get(length)
        last_of_length[length] = i
    pieces: list[str] = []
    pos = i = 0
    while i < len(runs):
        j = closer[i]
        if j is None:
            i += 1  # an unmatched run is literal backticks
            continue
        pieces += [text[pos : runs[i][0]], " "]
        pos = runs[j][1]
        i = j + 1
    pieces.append(text[pos:])
    return "".join(pieces)


def mention_tokens(text: str) -> list[str]:
    """Lower-cased mention tokens outside code, in order, without duplicates."""
    if "@" not in text:  # most messages mention no one: skip the code stripping
        return []
    seen: dict[str, None] = {}
    for match in _MENTION.finditer(strip_code(text)):
        seen.setdefault(match.group(1).lower().rstrip("-_"), None)
    return list(seen)


@dataclass(slots=True)
class RoutingPlan:
    """What posting one message does besides storing it."""

    targets: list[Agent] = field(default_factory=list[Agent])
    hops: int = 0
    paused: bool = False
    notices: list[str] = field(default_factory=list[str])


def plan_routing(
    *,
    tokens: Iterable[str],
    sender: str,
    sender_kind: SenderKind,
    channel: Channel,
    agents: Iterable[Agent],
    now: float,
    crash_timeout: float,
    max_hops: int,
    place: str | None = None,
) -> RoutingPlan:
    """Decide who is woken by a message and how the loop guard moves.

    ``channel`` carries the guard's state (a job thread passes its channel with the job's hops and
    paused flag); ``place`` names where the guard acts in its notice, e.g. "job #3".
    """
    live = [a for a in agents if not a.retired]
    by_name = {a.name: a for a in live}
    plan = RoutingPlan(hops=channel.hops, paused=channel.paused)
    if sender_kind == "system":
        return plan
    if sender_kind == "human":
        plan.hops, plan.paused = 0, False

    targets: dict[str, Agent] = {}
    unknown: list[str] = []
    bases = KNOWN_BASES | {a.base for a in live}
    for token in tokens:
        if token == "all":
            for agent in live:
                if agent.is_online(now, crash_timeout):
                    targets.setdefault(agent.name, agent)
        elif token in by_name:
            targets.setdefault(token, by_name[token])
        elif any(token == b or token.startswith(b + "-") for b in bases):
            unknown.append(token)
    targets.pop(sender, None)

    if unknown:
        names = ", ".join(sorted(by_name)) or "none registered yet"
        plan.notices.append(f"No agent named {', '.join('@' + u for u in unknown)} here (agents: {names}).")
    if not targets:
        return plan
    if sender_kind == "agent":
        if channel.paused:
            return plan
        if channel.hops >= max_hops:
            plan.paused = True
            plan.notices.append(
                f"Loop guard: {max_hops} agent-to-agent hops in {place or '#' + channel.name} without a human"
                " message. "
                f"Routing is paused here; send {CONTINUE_COMMAND} to resume."
            )
            return plan
        plan.hops = channel.hops + 1
    plan.targets = list(targets.values())
    return plan


def one_line(text: str, limit: int = 300) -> str:
    """Collapse whitespace (a prompt is typed as one line) and cut long text."""
    flat = " ".join(text.split())
    return flat if len(flat) <= limit else flat[: limit - 3] + "..."


def with_role(agent: Agent, prompt: str) -> str:
    """The role as its own sentence: the rules line that may follow must not read as part of it."""
    if not agent.role:
        return prompt
    return f"{prompt} Your role: {one_line(agent.role, 1000).rstrip('.')}."


def wake_prompt(agent: Agent, sender: str, channel: str, job: tuple[int, str] | None = None) -> str:
    """The single-line prompt typed into the agent's CLI (TUIs mangle multi-line pastes).

    A mention in a job thread names the job, so the agent reads and answers the thread, not the channel.
    """
    if job is not None:
        job_id, title = job
        prompt = (
            f'@{sender} mentioned you in job #{job_id} "{one_line(title, 120)}" (#{channel}). Use '
            f"chat_read(job_id={job_id}) to read the thread, then answer with chat_send(job_id={job_id})."
        )
    else:
        prompt = (
            f'@{sender} mentioned you in #{channel}. Use chat_read(channel="{channel}") to read the new '
            f'messages, then answer with chat_send(channel="{channel}").'
        )
    return with_role(agent, prompt)
