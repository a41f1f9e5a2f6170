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
        # Incremental, so a multi-byte character cut by a chunk boundary is not mangled.
        self._decoder = codecs.getincrementaldecoder("utf-8")(errors="replace")

    def feed(self, chunk: bytes) -> list[str]:
        self._buf += self._decoder.decode(chunk)
        lines: list[str] = []
        start = 0
        i = 0
        buf = self._buf
        while i < len(buf):
            ch = buf[i]
            if ch == "\n":
                lines.append(buf[start:i])
                start = i + 1
            elif ch == "\r":
                if i + 1 == len(buf):
                    break  # maybe the first half of CRLF: wait for the next chunk
                lines.append(buf[start:i])
                start = i + 2 if buf[i + 1] == "\n" else i + 1
                i = start - 1
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
