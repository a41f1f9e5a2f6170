"""Turn a wake-up into keystrokes a CLI will take as one prompt, and check that it did.

TUIs treat a multi-line paste differently and may swallow an Enter that arrives with the text, so
the text is flattened to one line, typed literally, and Enter follows after a settle delay.

Enter is dangerous: in a permission dialog ("Allow execution of MCP tool ...?") it answers the
question. So nothing is typed while the pane shows a dialog (the profile's ``dialog_pattern``), and
Enter is pressed only while the typed text is visible on the CLI's input line and no dialog shows.
The input line is the cursor row; TUIs that park the cursor elsewhere are covered by looking for
the text (newly shown since we typed) in the last :data:`INPUT_ROWS` non-blank rows. If it shows
nowhere and no dialog is up, what we typed is erased again (as many BSpace as characters) and the
delivery fails: no text is left behind for a retry to type twice. A dialog holds the prompt until
a person has answered it; the caller hears of it (``on_dialog``) so the room can show that the agent
waits for approval. After Enter, the prompt's tail must leave the row it was seen on; Enter is
retried a few times (same checks) before we call it failed.
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
_SPACE = re.compile(r"\s+")
_FRAME = re.compile(r"[│┃║╭╮╰╯─━═╌┌┐└┘▌▐█]+")  # box drawing around TUI dialogs and inputs
DIALOG_ROWS = 15  # dialogs render at the bottom: only the last non-blank rows are searched
DIALOG_TEXT_MAX = 500
# A dialog offers numbered choices next to its question ("› 1. Yes, allow once", "● 1. Allow once");
# a question alone (the model asking "Do you want to proceed?" in its answer) is not a dialog.
_CHOICE = re.compile(r"(?i)\b1[.)]\s+(yes|allow|approve|trust|proceed|accept|continue)\b|\bAllow once\b")
_CHOICE_ROWS = 8
INPUT_ROWS = 10  # where else typed text may show: the last non-blank rows of the screen


def flatten(text: str) -> str:
    """One line: newlines become spaces, tabs become spaces, other control characters go."""
    return _CONTROL.sub("", _NEWLINES.sub(" ", text).replace("\t", " ")).strip()


def classify(
    rows: list[str], cursor_row: int, *, busy_pattern: str | None, idle_pattern: str | None
) -> Activity:
    """Busy or idle, from what the pane shows.

    The CLI is busy while ``busy_pattern`` shows anywhere on screen (``esc to interrupt``). With
    ``idle_pattern`` it is also busy unless its cursor row matches it (its input line is there).
    """
    if busy_pattern and any(re.search(busy_pattern, row) for row in rows):
        return "busy"
    if idle_pattern:
        row = rows[cursor_row] if 0 <= cursor_row < len(rows) else ""
        return "idle" if re.search(idle_pattern, row) else "busy"
    return "idle"


def squash(text: str) -> str:
    """Without any whitespace: wrapping and padding never hide typed text from a comparison."""
    return _SPACE.sub("", text)


def find_dialog(rows: list[str], pattern: str | None, *, skip: range = range(0)) -> str | None:
    """The text of a permission dialog on screen, or None.

    ``pattern`` matches the dialog's question row; only the last :data:`DIALOG_ROWS` non-blank rows
    count (dialogs draw at the bottom; old output above is history), and only with a numbered
    choice ("1. Yes ...") within a few rows. ``skip`` are rows to ignore (our own typed text on the
    input line). The text is the question's block of rows with the blocks just before (what is
    asked for) and after (the choices), at most 500 characters.
    """
    if not pattern:
        return None
    clean = [" ".join(_FRAME.sub(" ", row).split()) for row in rows]
    recent = [i for i, row in enumerate(clean) if row][-DIALOG_ROWS:]
    rx = re.compile(pattern)

    def offers_choices(i: int) -> bool:
        near = range(max(0, i - _CHOICE_ROWS), min(len(rows), i + _CHOICE_ROWS + 1))
        return any(j not in skip and _CHOICE.search(clean[j]) for j in near)

    hit = next((i for i in recent if i not in skip and rx.search(rows[i]) and offers_choices(i)), None)
    if hit is None:
        return None

    def block(i: int, step: int) -> int:
        """The last row, walking by ``step`` from ``i``, of the run of non-blank rows around it."""
        while 0 <= i + step < len(clean) and clean[i + step]:
            i += step
        return i

    def neighbour(i: int, step: int) -> int | None:
        """The nearest non-blank row past the blank rows next to ``i``, if within 2 rows."""
        for j in (i + step, i + 2 * step, i + 3 * step):
            if 0 <= j < len(clean) and clean[j]:
                return j
        return None

    start, end = block(hit, -1), block(hit, 1)
    before, after = neighbour(start, -1), neighbour(end, 1)
    if before is not None:
        start = max(block(before, -1), before - 5)
    if after is not None:
        end = min(block(after, 1), after + 5)
    text = "\n".join(row for row in clean[start : end + 1] if row)
    return text[:DIALOG_TEXT_MAX]


def on_input_line(rows: list[str], cursor: int, tail: str) -> bool:
    """Whether ``tail`` (squashed) ends on the cursor row: there alone, or wrapped from the row above."""
    return on_row(rows, cursor, tail)


def on_row(rows: list[str], index: int, tail: str) -> bool:
    """Whether ``tail`` (squashed) ends on row ``index``: there alone, or wrapped from the row above."""
    row = squash(rows[index]) if 0 <= index < len(rows) else ""
    if tail in row:
        return True
    above = squash(rows[index - 1]) if 0 < index <= len(rows) else ""
    return bool(row) and tail in above + row and tail not in above


def find_typed(rows: list[str], cursor: int, tail: str, before: list[str] | None = None) -> int | None:
    """The row our typed text (its ``tail``) ends on: the cursor row, else one of the last
    :data:`INPUT_ROWS` non-blank rows (bottom up) that did not show it ``before`` we typed, so an
    older copy in the history above never counts as our input.
    """
    if on_row(rows, cursor, tail):
        return cursor
    recent = [i for i, row in enumerate(rows) if row.strip()][-INPUT_ROWS:]
    for i in reversed(recent):
        if on_row(rows, i, tail) and not (before is not None and on_row(before, i, tail)):
            return i
    return None


@dataclass
class Delivery:
    ok: bool
    detail: str
    typed_at: float = 0.0  # monotonic time the text was on the input line
    attempts: int = 0


@dataclass
class _Look:
    """One snapshot, read: the row our text ends on (None: not seen) and any dialog."""

    rows: list[str]
    cursor: int
    where: int | None
    dialog: str | None

    @property
    def row(self) -> tuple[int, str]:
        return self.cursor, self.rows[self.cursor] if 0 <= self.cursor < len(self.rows) else ""


OnDialog = Callable[[str], Awaitable[None]]


class Injector:
    """Types prompts into one tmux session's active pane, never into a dialog."""

    def __init__(
        self,
        tmux: Tmux,
        session: str,
        *,
        inject_delay: float = 0.3,
        busy_pattern: str | None = None,
        idle_pattern: str | None = None,
        dialog_pattern: str | None = None,
        enter_retries: int = 3,
        check_timeout: float = 1.5,
        show_timeout: float = 5.0,
        poll: float = 0.1,
        erase_key: str = "BSpace",
        dialog_settle: float = 1.0,
    ) -> None:
        self.tmux = tmux
        self.session = session
        self.inject_delay = inject_delay
        self.busy_pattern = busy_pattern
        self.idle_pattern = idle_pattern
        self.dialog_pattern = dialog_pattern
        self.enter_retries = enter_retries
        self.check_timeout = check_timeout
        self.show_timeout = show_timeout  # a busy machine may take a while to draw what we typed
        self.poll = poll
        # After a person answers a dialog the CLI goes back to work, but for a moment the pane shows
        # neither the dialog nor a busy marker; a prompt typed then is queued into the running turn
        # (Claude Code merges it and answers once). So after a dialog, idle must hold this long.
        self.dialog_settle = dialog_settle
        # "BSpace": one per typed character (leaves what a person typed before us alone); a key
        # such as "C-u" is sent once, for CLIs that clear their whole input line with it.
        self.erase_key = erase_key

    async def activity(self) -> Activity:
        rows, cursor = await self.tmux.snapshot(self.session)
        return classify(rows, cursor, busy_pattern=self.busy_pattern, idle_pattern=self.idle_pattern)

    async def wait_idle(self, poll: float = 0.1) -> None:
        """Return once the pane looks idle; the caller bounds the wait. A pane has no idle event."""
        while await self.activity() != "idle":
            await anyio.sleep(poll)

    async def wait_ready(self, on_dialog: OnDialog | None = None) -> None:
        """Return once the pane shows the CLI idle, with no dialog; tell ``on_dialog`` of each dialog.

        A dialog waits for a person, so this may take any time; the caller bounds it if it must.
        """
        shown: str | None = None
        idle_since: float | None = None
        while True:
            rows, cursor = await self.tmux.snapshot(self.session)
            dialog = find_dialog(rows, self.dialog_pattern)
            if dialog is not None or not any(row.strip() for row in rows):
                idle_since = None  # nothing drawn yet (still starting), or a dialog: not ready
            else:
                busy = classify(rows, cursor, busy_pattern=self.busy_pattern, idle_pattern=self.idle_pattern)
                if busy != "idle":
                    idle_since = None
                elif shown is None:
                    return
                else:  # a dialog was answered during this wait: idle must hold, see dialog_settle
                    now = anyio.current_time()
                    idle_since = now if idle_since is None else idle_since
                    if now - idle_since >= self.dialog_settle:
                        return
            if dialog is not None and dialog != shown:
                shown = dialog
                logger.info("the CLI shows a dialog; holding the prompt: %s", dialog.replace("\n", " | "))
                if on_dialog is not None:
                    await on_dialog(dialog)
            await anyio.sleep(self.poll)

    async def wait_drawn(self, poll: float = 0.05) -> None:
        """Return once the pane shows anything at all (the CLI has started drawing)."""
        while not any(row.strip() for row in (await self.tmux.snapshot(self.session))[0]):
            await anyio.sleep(poll)

    def _typed_rows(self, where: int, line: str) -> range:
        """Rows our typed text may cover (up to the row it ends on): no dialog is looked for there."""
        return range(max(0, where - len(line) // 40 - 1), where + 1)

    async def _look(self, line: str, tail: str, before: list[str] | None, known: int | None) -> _Look:
        """Read one snapshot. The text counts as seen on the cursor row, on ``known`` (where this
        call saw it already) or, once we typed (``before`` is the screen from just before), on a
        recent row that did not show it then.
        """
        rows, cursor = await self.tmux.snapshot(self.session)
        if on_row(rows, cursor, tail):
            where: int | None = cursor
        elif known is not None and on_row(rows, known, tail):
            where = known
        elif before is not None:
            where = find_typed(rows, cursor, tail, before)
        else:
            where = None
        skip = self._typed_rows(where, line) if where is not None else range(0)
        return _Look(rows, cursor, where, find_dialog(rows, self.dialog_pattern, skip=skip))

    async def _until_visible(
        self, line: str, tail: str, before: list[str] | None, known: int | None
    ) -> _Look:
        """Poll until the tail shows, a dialog shows, or ``show_timeout`` passes."""
        deadline = time.monotonic() + self.show_timeout
        delay = 0.01
        while True:
            seen = await self._look(line, tail, before, known)
            if seen.where is not None or seen.dialog is not None or time.monotonic() >= deadline:
                return seen
            await anyio.sleep(delay)
            delay = min(delay * 2, 0.1)

    async def _until_submitted(self, tail: str, before: _Look) -> bool:
        """Poll until the input moved on: the tail left the row it was on (and, on the cursor row,
        that row changed)."""
        deadline = time.monotonic() + self.check_timeout
        delay = 0.01
        while True:
            rows, cursor = await self.tmux.snapshot(self.session)
            if before.where == before.cursor:
                row = rows[cursor] if 0 <= cursor < len(rows) else ""
                if tail not in squash(row) and (cursor, row) != before.row:
                    return True
            elif before.where is None or not on_row(rows, before.where, tail):
                return True
            if time.monotonic() >= deadline:
                return False
            await anyio.sleep(delay)
            delay = min(delay * 2, 0.1)

    async def _erase(self, line: str) -> None:
        """Take back what we typed, so no half-delivered text waits in the CLI's input box."""
        if self.erase_key == "BSpace":
            target = Tmux.target(self.session)
            await self.tmux.run("send-keys", "-t", target, "-N", str(len(line)), "BSpace")
        else:
            await self.tmux.send_key(self.session, self.erase_key)

    async def inject(
        self,
        text: str,
        on_enter: Callable[[], Awaitable[None]] | None = None,
        on_dialog: OnDialog | None = None,
    ) -> Delivery:
        """Wait until the CLI is idle with no dialog, type ``text`` (flattened) and submit it.

        ``on_enter`` runs right after the first Enter, before the (slower) delivery check, so the
        server learns of the delivery as early as possible. ``on_dialog`` hears of each dialog that
        holds the prompt. Enter is never pressed unless the text is visible on screen; text that
        never shows, or stays after all Enter retries, is erased again before we report failure.
        """
        line = flatten(text)
        if not line:
            return Delivery(False, "empty prompt")
        tail = squash(line[-12:]) or squash(line)
        typed_at = 0.0
        attempts = 0
        before: list[str] | None = None  # the screen just before we typed (None: not typed yet)
        where: int | None = None  # the row our text was last seen on
        while True:
            await self.wait_ready(on_dialog)
            look = await self._look(line, tail, before, where)
            if look.dialog is not None:
                continue
            if look.where is None:  # after a dialog our text may still be there: never type it twice
                before = look.rows
                await self.tmux.send_literal(self.session, line)
            started = time.monotonic()
            look = await self._until_visible(
                line, tail, before, look.where if look.where is not None else where
            )
            typed_at = time.monotonic()
            logger.debug(
                "typed %d chars in %.3fs (seen on row %s)", len(line), typed_at - started, look.where
            )
            if look.dialog is not None:
                continue  # a dialog came up as we typed: hold on, then look again
            if look.where is None:
                await self._erase(line)
                detail = "the typed prompt never showed on the input line, so Enter was not pressed"
                return Delivery(False, f"{detail} (erased again)", typed_at, attempts)
            where = look.where
            # Give the TUI time to take the text in before Enter, longer for long pastes.
            await anyio.sleep(min(max(self.inject_delay, len(line) / 4000), 2.0))
            while attempts < self.enter_retries:
                look = await self._look(line, tail, before, where)  # the last look before Enter
                if look.dialog is not None or look.where is None:
                    break
                where = look.where
                await self.tmux.send_key(self.session, "Enter")
                attempts += 1
                if attempts == 1 and on_enter is not None:
                    await on_enter()
                if await self._until_submitted(tail, look):
                    logger.debug("submitted after %.3fs", time.monotonic() - typed_at)
                    return Delivery(True, "submitted", typed_at, attempts)
            else:
                detail = f"prompt still on the input line after {self.enter_retries} Enter"
                look = await self._look(line, tail, before, where)
                if look.where is not None and look.dialog is None:
                    await self._erase(line)
                    detail += " (erased again)"
                return Delivery(False, detail, typed_at, attempts)
            if attempts and look.dialog is None:  # after an Enter the text left the line: submitted
                return Delivery(True, "submitted", typed_at, attempts)
            # A dialog came up (hold on, then look again) or the text vanished before Enter (retype).
