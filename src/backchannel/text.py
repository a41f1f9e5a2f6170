"""Checks for the text people and agents send: valid Unicode everywhere, printable for short names.

JSON may carry a lone ``\\ud800`` escape (``json.loads`` takes it: models cut emoji in half), but
SQLite stores UTF-8, which has no surrogates: refused where text enters the domain (``check_unicode``)
it is a clear "invalid input" naming the field, instead of an internal error in the middle of a write.

Short texts end up in prompts typed into terminals, in the roster and in the log, so they must be
printable too (``has_control``): no control characters (escape sequences, bells, NUL) and no bidi
overrides that make a text read differently from what it says. The zero-width joiners emoji
sequences use stay allowed.
"""

from __future__ import annotations

import unicodedata

from backchannel.errors import InvalidInput

_JOINERS = frozenset({"\u200c", "\u200d"})


def has_control(text: str) -> bool:
    """True when ``text`` holds a control, format (bidi override...), surrogate, private-use or
    unassigned character."""
    return any(unicodedata.category(ch).startswith("C") and ch not in _JOINERS for ch in text)


def not_unicode(field: str) -> str:
    """The one wording for a lone surrogate in ``field`` (also the REST layer's, for typed bodies)."""
    return f"{field} must be valid Unicode: it contains an unpaired surrogate (half an emoji?)"


def check_unicode(text: str, field: str) -> str:
    """``text`` unchanged if it can be stored (encoded as UTF-8); else InvalidInput naming ``field``."""
    if not text.isascii():  # O(1) in CPython: most texts stop here
        try:
            text.encode()
        except UnicodeEncodeError:
            raise InvalidInput(not_unicode(field)) from None
    return text
