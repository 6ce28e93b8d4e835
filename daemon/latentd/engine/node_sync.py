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
from typing import TYPE_CHECKING

from latentd.engine import commands as c

if TYPE_CHECKING:
    from latentd.engine.engine import Engine


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

    def at(self, now: int, block: int, command: c.Command) -> None:
        """Schedule a command the master gives itself for ``block`` (engine thread); the listeners hear it."""
        for listener in self.listeners:
            listener(block, command)
        self.take(now, (block, command))

    def due(self, now: int) -> list[c.Command]:
        """The commands to apply before block ``now``, in order."""
        ready = []
        while self._due and self._due[0][0] <= now:
            ready.append(heapq.heappop(self._due)[2])
        return ready


class ProgrammeClock:
    """The master's programme ends its sections by command, ``lead.lead_blocks`` ahead (engine thread).

    Called at the start of every block (an ``Engine.block_start_listeners`` entry). When the current
    section would end within the lead, an ``AdvanceSection`` is given for the block ``lead_blocks`` from
    now: exactly where the programme would have ended it, or, for a section shorter than the lead or a
    hold released past the section's end, the lead after now (the least time the workers need).
    """

    def __init__(self, engine: Engine, lead: CommandLead) -> None:
        """Take over ``engine.programme``'s section ends."""
        self.engine = engine
        self.lead = lead
        engine.programme.follows = True
        # (entry, block) of the advance given last: one per section entry, again if it came to nothing.
        self.pending: tuple[int, int] | None = None

    def __call__(self, block: int) -> None:
        """Give the advance when the section's end comes within the lead."""
        programme = self.engine.programme
        pending = self.pending
        if pending is not None and pending[0] == programme.entry and block <= pending[1]:
            return
        blocks = programme.blocks_to_end(self.engine.blocksize)
        if blocks is None or blocks > self.lead.lead_blocks:
            return
        due = block + self.lead.lead_blocks
        self.pending = (programme.entry, due)
        self.lead.at(block, due, c.AdvanceSection(due, programme.entry))
