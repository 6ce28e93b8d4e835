"""NodeBus: a worker node's speaker channels from an input ring into the master's mix."""

from __future__ import annotations

import numpy as np
from structlog.testing import capture_logs

from latentd.engine.node_bus import NodeBus
from latentd.engine.ring import BlockRing

N = 64  # frames per block
SR = 6400  # a fade of 0.1 s is 10 blocks


def _block(level: float, beat: float) -> np.ndarray:
    block = np.full((3, N), level, dtype=np.float32)
    block[-1] = beat
    return block


def _mixed(bus: NodeBus, block_index: int) -> np.ndarray:
    mix = np.zeros((2, N), dtype=np.float32)
    bus.add_into(mix, block_index)
    return mix


def test_a_node_waits_for_its_cushion_then_fades_in_and_reports_its_offset() -> None:
    ring = BlockRing(8, N, 3)
    bus = NodeBus("n1", ring, SR, cushion_blocks=4, fade_s=0.1)
    with capture_logs() as logs:
        for w in range(3):
            ring.write(_block(0.5, beat=w + 1))
            assert not _mixed(bus, 100 + w).any()  # fewer than 4 queued: not reading yet
        levels = []
        for w in range(3, 20):
            ring.write(_block(0.5, beat=w + 1))
            levels.append(float(_mixed(bus, 100 + w)[0, -1]))
    # Read from the 4th block on, one per block: worker output block 0 is mixed into master block 103;
    # its audio is the worker's engine block -1 (the limiter delays one block).
    assert bus.offset_blocks == -104
    assert levels == sorted(levels) and 0.0 < levels[0] < 0.1 and levels[-1] == 0.5
    events = [(e["event"], e.get("offset_blocks")) for e in logs]
    assert events == [("node.offset", -104), ("node.back", None)]


def test_a_node_without_its_beat_fades_out_and_back() -> None:
    ring = BlockRing(64, N, 3)
    bus = NodeBus("n1", ring, SR, cushion_blocks=1, fade_s=0.1)
    for w in range(20):
        ring.write(_block(0.5, beat=w + 1))
        _mixed(bus, w)
    with capture_logs() as logs:
        out = []
        for w in range(20, 40):  # its program stopped: silence and no beat
            ring.write(_block(0.0, beat=0.0))
            out.append(_mixed(bus, w))
        for w in range(40, 60):
            ring.write(_block(0.5, beat=w + 1))
            out.append(_mixed(bus, w))
    assert not np.concatenate(out[:20], axis=1).any()
    back = [float(block[1, -1]) for block in out[20:]]
    assert back == sorted(back) and back[0] < 0.1 and back[-1] == 0.5
    assert [e["event"] for e in logs if e["event"] != "node.offset"] == ["node.lost", "node.back"]


def test_a_queue_run_dry_waits_for_the_cushion_again() -> None:
    ring = BlockRing(8, N, 3)
    bus = NodeBus("n1", ring, SR, cushion_blocks=2, fade_s=0.0001)
    for w in range(2):
        ring.write(_block(0.5, beat=w + 1))
    assert _mixed(bus, 0).any() and _mixed(bus, 1).any()
    assert not _mixed(bus, 2).any() and bus.underruns == 1
    ring.write(_block(0.5, beat=3))
    assert not _mixed(bus, 3).any()  # one queued: still waiting for two
    ring.write(_block(0.5, beat=4))
    assert _mixed(bus, 4).any()
