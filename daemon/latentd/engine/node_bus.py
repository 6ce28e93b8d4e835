"""A worker node's audio entering the master's mix: its speaker channels, read from an input ring.

On the master, the JACK process copies each worker's ports (``<node>:from_slave_N``, the node's voices
already routed to the venue's speakers) into one input ring per node (``outputs/node_in.py``), one block
per JACK period, with one more channel: the worker's beat (the index of the worker block it carries,
plus one; 0 when the node or its program is not there). The
engine adds each node's block to its speaker mix before the master section (gain, fade, trims, DC block,
limiter), so a node's voices reach the speakers, the limiter and the recording as local voices do.

The engine runs ahead of JACK by up to its output ring's length and produces blocks in bursts, so a bus
waits until ``cushion_blocks`` blocks are queued before it reads one per block: the node's audio then
plays that many blocks late, the same every block, until the queue runs dry (it waits again). A node that
leaves (its ports gone) fades out over ``fade_s``; one that comes back fades in.
"""

from __future__ import annotations

import numpy as np
import structlog

from latentd.engine.mix import Limiter, Ramp
from latentd.engine.ring import BlockRing

log = structlog.get_logger("latentd.engine.node_bus")

BEAT_MODULO = (1 << 24) - 1  # as outputs/jack_out.py writes the beat (the engine imports no outputs)


class NodeBus:
    """One worker node's speaker channels, mixed into the master's blocks.

    Attributes:
        name: The node's name (``[nodes.<name>]``).
        present: Whether the node was there in the last block read.
        offset_blocks: The worker's engine block whose audio is in the master block being mixed, minus
            that master block (None before one is): a command applied before master block ``m`` on the
            master is applied before block ``m + offset`` on the worker (its limiter's delay counted).
        underruns: Times the queue ran dry after it had started (the engine read faster than JACK wrote).
    """

    def __init__(
        self, name: str, ring: BlockRing, samplerate: int, *, cushion_blocks: int, fade_s: float
    ) -> None:
        """Read ``ring``: ``[n_speakers + 1, blocksize]`` blocks, the last channel the node's presence.

        Args:
            name: The node's name, for logs.
            ring: The input ring (the consumer side is this bus).
            samplerate: Frames per second (for the fade).
            cushion_blocks: Blocks queued before reading starts (at most the ring's length).
            fade_s: Fade out when the node leaves, in when it comes back.
        """
        if not 1 <= cushion_blocks <= ring.n_blocks:
            raise ValueError(
                f"node {name!r}: cushion_blocks must be 1..{ring.n_blocks}, got {cushion_blocks}"
            )
        self.name = name
        self.ring = ring
        self.cushion_blocks = cushion_blocks
        self.gain = Ramp(0.0, max(1, int(fade_s * samplerate)))
        self.present = False
        self.offset_blocks: int | None = None
        self.underruns = 0
        self._reading = False

    def add_into(self, mix: np.ndarray, block_index: int) -> None:
        """Add the node's next block to ``mix`` (``[n_speakers, blocksize]``) at the bus's level."""
        ring = self.ring
        if not self._reading and ring.readable() >= self.cushion_blocks:
            self._reading = True
        block = None
        if self._reading:
            if ring.readable() == 0:
                self._reading = False
                self.underruns += 1
                log.warning("node.underrun", node=self.name, block=block_index, underruns=self.underruns)
            else:
                block = ring.peek()[1]
        beat = 0.0 if block is None else float(block[-1, 0])
        present = beat > 0.5
        if present:
            # The beat names the worker's output block, whose audio its limiter mixed one block earlier.
            offset = (int(beat) - 1 - Limiter.DELAY_BLOCKS - block_index) % BEAT_MODULO
            offset = offset - BEAT_MODULO if offset > BEAT_MODULO // 2 else offset
            if offset != self.offset_blocks:
                log.info("node.offset", node=self.name, block=block_index, offset_blocks=offset)
                self.offset_blocks = offset
        if present != self.present:
            self.present = present
            self.gain.set(1.0 if present else 0.0)
            log.info("node.back" if present else "node.lost", node=self.name, block=block_index)
        n = mix.shape[1]
        if block is not None:
            if self.gain.moving or float(self.gain.current) > 0.0:
                mix += block[:-1] * self.gain.values(n).astype(np.float32)
            ring.advance()
        elif self.gain.moving:
            self.gain.values(n)  # nothing to fade: the node's audio is not here
