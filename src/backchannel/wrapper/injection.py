"""Turn a wake-up into keystrokes a CLI will take as one prompt, and check that it did.

TUIs treat a multi-line paste differently and may swallow an Enter that arrives with the text, so
the text is flattened to one line, typed literally, and Enter follows after a settle delay. The
delivery check watches the cursor row: the prompt's tail must be there after typing and gone after
Enter (the input line was submitted); Enter is retried a few times before we call it failed.
"""

from __future__ import annotations

import logging
import re
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Literal

import anyio

from backchannel.wrapper.tmux import Tmux

logger = logging.getLogger(__name__)
Activity = Literal["busy", "idle"]

_NEWLINES = re.compile(r"\r\n|\r|\n")
_CONTROL = re.compile(r"[\x00-\x08\x0b-\x1f\x7f]")


def flatten(text: str) -> str:
    """One line: newlines become spaces, tabs become spaces, other control characters go."""
    return _CONTROL.sub("", _NEWLINES.sub(" ", text).replace("\t", " ")).strip()


def classify(
    rows: list[str], cursor_row: int, *, busy_pattern: str | None, idle_pattern: str | None
) -> Activity:
    """Busy or idle, from what the pane shows.

    With ``idle_pattern`` the CLI is idle only while its cursor row matches it (an empty prompt).
    Otherwise it is busy while ``busy_pattern`` shows anywhere on screen (``esc to interrupt``).
    """
    if idle_pattern:
        row = rows[cursor_row] if 0 <= cursor_row < len(rows) else ""
        return "idle" if re.search(idle_pattern, row) else "busy"
    if busy_pattern and any(re.search(busy_pattern, row) for row in rows):
        return "busy"
    return "idle"


@dataclass
class Delivery:
    ok: bool
    detail: str
    typed_at: float = 0.0  # monotonic time the text was on the input line
    attempts: int = 0


class Injector:
    """Types prompts into one tmux session's active pane."""

    def __init__(
        self,
        tmux: Tmux,
        session: str,
        *,
        inject_delay: float = 0.3,
        busy_pattern: str | None = None,
        idle_pattern: str | None = None,
        enter_retries: int = 3,
        check_timeout: float = 1.5,
    ) -> None:
        self.tmux = tmux
        self.session = session
        self.inject_delay = inject_delay
        self.busy_pattern = busy_pattern
        self.idle_pattern = idle_pattern
        self.enter_retries = enter_retries
        self.check_timeout = check_timeout

    async def activity(self) -> Activity:
        rows, cursor = await self.tmux.snapshot(self.session)
        return classify(rows, cursor, busy_pattern=self.busy_pattern, idle_pattern=self.idle_pattern)

    async def wait_idle(self, poll: float = 0.1) -> None:
        """Return once the pane looks idle; the caller bounds the wait. A pane has no idle event."""
        while await self.activity() != "idle":
            await anyio.sleep(poll)

    async def wait_drawn(self, poll: float = 0.05) -> None:
        """Return once the pane shows anything at all (the CLI has started drawing)."""
        while not any(row.strip() for row in (await self.tmux.snapshot(self.session))[0]):
            await anyio.sleep(poll)

    async def _input_row(self) -> str:
        rows, cursor = await self.tmux.snapshot(self.session)
        return rows[cursor] if 0 <= cursor < len(rows) else ""

    async def _wait_for(self, tail: str, present: bool, timeout: float) -> bool:
        deadline = time.monotonic() + timeout
        delay = 0.01
        while True:
            if (tail in await self._input_row()) == present:
                return True
            if time.monotonic() >= deadline:
                return False
            await anyio.sleep(delay)
            delay = min(delay * 2, 0.1)

    async def inject(self, text: str, on_enter: Callable[[], Awaitable[None]] | None = None) -> Delivery:
        """Type ``text`` (flattened) and submit it; report whether it left the input line.

        ``on_enter`` runs right after the first Enter, before the (slower) delivery check, so the
        server learns of the delivery as early as possible.
        """
        line = flatten(text)
        if not line:
            return Delivery(False, "empty prompt")
        tail = line[-12:].strip() or line
        await self.tmux.send_literal(self.session, line)
        started = time.monotonic()
        typed = await self._wait_for(tail, present=True, timeout=self.check_timeout)
        typed_at = time.monotonic()
        logger.debug("typed %d chars in %.3fs (seen on input line: %s)", len(line), typed_at - started, typed)
        # Give the TUI time to take the text in before Enter, longer for long pastes.
        await anyio.sleep(min(max(self.inject_delay, len(line) / 4000), 2.0))
        for attempt in range(1, self.enter_retries + 1):
            await self.tmux.send_key(self.session, "Enter")
            if attempt == 1 and on_enter is not None:
                await on_enter()
            if not typed:
                # We never saw the text (a TUI that draws input elsewhere): trust one Enter.
                return Delivery(True, "submitted (input line not visible)", typed_at, attempt)
            if await self._wait_for(tail, present=False, timeout=self.check_timeout):
                logger.debug("submitted after %.3fs", time.monotonic() - typed_at)
                return Delivery(True, "submitted", typed_at, attempt)
        detail = f"prompt still on the input line after {self.enter_retries} Enter"
        return Delivery(False, detail, typed_at, self.enter_retries)
