"""Commands at a block: how the nodes of a venue of several machines change at the same block.

On the master, every command is applied ``lead_blocks`` after it arrives, and the listeners hear it with
that block first: the master's control channel sends it to each worker with the worker block that is
mixed into that master block (``NodeBus.offset_blocks``), which the worker then applies it at. The lead
must exceed how far ahead of its mix the master's engine runs plus the worker's delay, so the worker's
block is still to come when the command arrives. A venue without ``[nodes]`` has no ``CommandLead``.
"""

from __future__ import annotations

import heapq
import itertools
from collections.abc import Callable

from latentd.engine import commands as c


class CommandLead:
    """Commands waiting for their block.

    Attributes:
        lead_blocks: How late a command arriving without a block is applied (0 on a worker).
        listeners: Told ``(block, command)`` when a command is given its block (the control channel).
        late: Commands that arrived after their block (applied at once, so later than on the master).
    """

    def __init__(self, lead_blocks: int) -> None:
        """Apply commands ``lead_blocks`` after they arrive, or at the block they carry."""
        if lead_blocks < 0:
            raise ValueError(f"lead_blocks must be >= 0, got {lead_blocks}")
        self.lead_blocks = lead_blocks
        self.listeners: list[Callable[[int, c.Command], None]] = []
        self._due: list[tuple[int, int, c.Command]] = []
        self._order = itertools.count()  # commands due at the same block keep their order
        self.late = 0

    def take(self, now: int, item: c.Command | tuple[int, c.Command]) -> None:
        """Schedule a queued item (engine thread): a command, or ``(block, command)`` from the master."""
        if isinstance(item, tuple):
            block, command = item
        else:
            block, command = now + self.lead_blocks, item
            for listener in self.listeners:
                listener(block, command)
        if block < now:
            self.late += 1
        heapq.heappush(self._due, (max(block, now), next(self._order), command))

    def due(self, now: int) -> list[c.Command]:
        """The commands to apply before block ``now``, in order."""
        ready = []
        while self._due and self._due[0][0] <= now:
            ready.append(heapq.heappop(self._due)[2])
        return ready
