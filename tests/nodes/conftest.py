"""Fixtures of the node tests: a master and one worker namespace."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from tests.nodes.netns import NetnsNet


@pytest.fixture
def net() -> Iterator[NetnsNet]:
    """A master namespace and one worker's, joined (deleted at teardown)."""
    with NetnsNet(1) as made:
        yield made
