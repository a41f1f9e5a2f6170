"""One check for the short texts people and agents name things with (rules, roles, labels, titles).

These texts end up in prompts typed into terminals, in the roster and in the log, so they must be
printable: no control characters (escape sequences, bells, NUL) and no bidi overrides that make a
text read differently from what it says. The zero-width joiners emoji sequences use stay allowed.
"""

from __future__ import annotations

import unicodedata

_JOINERS = frozenset({"\u200c", "\u200d"})


def has_control(text: str) -> bool:
    """True when ``text`` holds a control, format (bidi override...), surrogate, private-use or
    unassigned character."""
    return any(unicodedata.category(ch).startswith("C") and ch not in _JOINERS for ch in text)
