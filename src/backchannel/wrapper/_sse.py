"""Incremental Server-Sent Events parsing, shared by the proxy and the trigger stream reader."""

from __future__ import annotations

import codecs
from dataclasses import dataclass, field


@dataclass
class SSEEvent:
    """One event: ``lines`` are the raw field lines, kept so the proxy can re-emit them verbatim."""

    lines: list[str] = field(default_factory=list[str])

    def field(self, name: str) -> str | None:
        values = self.fields(name)
        return "\n".join(values) if values else None

    def fields(self, name: str) -> list[str]:
        out: list[str] = []
        for line in self.lines:
            key, sep, value = line.partition(":")
            if key == name and sep:
                out.append(value[1:] if value.startswith(" ") else value)
            elif line == name:
                out.append("")
        return out

    @property
    def data(self) -> str | None:
        return self.field("data")

    def encode(self) -> bytes:
        return ("\n".join(self.lines) + "\n\n").encode()


class LineSplitter:
    """Split a byte stream into text lines on CR, LF or CRLF, even when CRLF straddles two chunks."""

    def __init__(self) -> None:
        self._buf = ""
        self._skip_lf = False  # the last chunk ended in CR: a leading LF is its other half
        # Incremental, so a multi-byte character cut by a chunk boundary is not mangled.
        self._decoder = codecs.getincrementaldecoder("utf-8")(errors="replace")

    def feed(self, chunk: bytes) -> list[str]:
        text = self._decoder.decode(chunk)
        if self._skip_lf and text:
            text = text.removeprefix("\n")
            self._skip_lf = False
        self._buf += text
        lines: list[str] = []
        start = 0
        buf = self._buf
        i = 0
        while i < len(buf):
            ch = buf[i]
            if ch == "\n" or ch == "\r":
                lines.append(buf[start:i])
                if ch == "\r" and i + 1 < len(buf) and buf[i + 1] == "\n":
                    i += 1
                elif ch == "\r" and i + 1 == len(buf):
                    self._skip_lf = True
                start = i + 1
            i += 1
        self._buf = buf[start:]
        return lines


class EventParser:
    """Group lines into events; an empty line ends an event."""

    def __init__(self) -> None:
        self._lines = LineSplitter()
        self._current: list[str] = []

    def feed(self, chunk: bytes) -> list[SSEEvent]:
        events: list[SSEEvent] = []
        for line in self._lines.feed(chunk):
            if line == "":
                if self._current:
                    events.append(SSEEvent(self._current))
                    self._current = []
            else:
                self._current.append(line)
        return events
