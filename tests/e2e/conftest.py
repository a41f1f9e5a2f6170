"""Factories shared by the whole-system tests."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from tests.wrapper.wrapper_harness import Wrapper


@pytest.fixture
def wrappers() -> Iterator[list[Wrapper]]:
    """Wrappers a test starts; each is stopped (CLI, proxy, tmux) when the test ends."""
    made: list[Wrapper] = []
    yield made
    for wrapper in made:
        wrapper.stop()
