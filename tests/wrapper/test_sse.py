"""The incremental SSE parser gives the same events however the bytes are chunked."""

from __future__ import annotations

from hypothesis import given
from hypothesis import strategies as st

from backchannel.wrapper._sse import EventParser, LineSplitter

STREAM = (
    "event: endpoint\r\ndata: /messages/?session_id=abc\r\n\r\n"
    ": keepalive\n\n"
    'id: 7\ndata: {"text": "héllo ✓"}\n\n'
    "data: line one\rdata: line two\r\r"
).encode()


def parse(chunks: list[bytes]) -> list[list[str]]:
    parser = EventParser()
    return [event.lines for chunk in chunks for event in parser.feed(chunk)]


def split(data: bytes, cuts: list[int]) -> list[bytes]:
    points = sorted({c % (len(data) + 1) for c in cuts})
    return [data[a:b] for a, b in zip([0, *points], [*points, len(data)], strict=True)]


def test_events_fields_and_line_endings() -> None:
    events = EventParser().feed(STREAM)
    assert [e.field("event") for e in events] == ["endpoint", None, None, None]
    assert events[0].data == "/messages/?session_id=abc"
    assert events[1].lines == [": keepalive"] and events[1].data is None
    assert (events[2].field("id"), events[2].data) == ("7", '{"text": "héllo ✓"}')
    assert events[3].data == "line one\nline two"


@given(st.lists(st.integers(min_value=0, max_value=len(STREAM)), max_size=40))
def test_chunking_never_changes_the_events(cuts: list[int]) -> None:
    assert parse(split(STREAM, cuts)) == parse([STREAM])


@given(st.lists(st.integers(min_value=0, max_value=len(STREAM)), max_size=40))
def test_line_splitter_is_chunking_invariant(cuts: list[int]) -> None:
    splitter = LineSplitter()
    lines = [line for chunk in split(STREAM, cuts) for line in splitter.feed(chunk)]
    assert lines == LineSplitter().feed(STREAM)
