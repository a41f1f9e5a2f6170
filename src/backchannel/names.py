"""Names nobody may take, and names only agents may take, shared by people and agents.

A name is the only thing a reader sees, so it must not mislead: ``you`` and ``all`` are words in
the UI and in mentions, and ``claude`` or ``copilot-2`` must always be an agent, never a person who
got there first.
"""

from __future__ import annotations

import re

# Words of the UI and of mentions (``@all``, ``@both``): nobody, person or agent, may hold them.
RESERVED_NAMES = frozenset({"you", "system", "all", "both", "everyone", "here", "channel"})

# The bases of the built-in agent profiles: their names (and ``claude-2`` style slots) are agents'.
AGENT_BASES = frozenset({"claude", "codex", "gemini", "qwen", "kimi", "kilo", "codebuddy", "copilot", "agy"})

_TOKEN_SPLIT = re.compile(r"[\s._-]+")


def is_reserved(name: str) -> bool:
    """True for a name nobody may take (compared case-insensitively)."""
    return name.strip().lower() in RESERVED_NAMES


def is_agent_style(name: str) -> bool:
    """True when any word of the name is an agent base: ``claude``, ``copilot-3``, and also
    ``claude-code``, ``Gemini Pro`` or ``codex_2``, which a reader would take for an agent."""
    return any(token in AGENT_BASES for token in _TOKEN_SPLIT.split(name.strip().lower()))


def other_agent_base(name: str, base: str) -> str | None:
    """The agent base other than ``base`` that ``name`` would read as (``claude`` for a codex agent
    claiming ``claude-2`` or ``claude-helper``), or None when the name cannot be mistaken so."""
    for token in _TOKEN_SPLIT.split(name.strip().lower()):
        if token in AGENT_BASES and token != base:
            return token
    return None
