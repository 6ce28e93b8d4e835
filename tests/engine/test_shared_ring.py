"""The shared-memory ring: the same contract as the threaded ring, across two processes."""

from __future__ import annotations

import multiprocessing

import numpy as np
import pytest

import latentd.engine.shared_ring as shared_ring
from latentd.engine.shared_ring import SharedBlockRing
from tests.alloc import allocation_growth

N_BLOCKS, BLOCKSIZE, CHANNELS = 4, 64, 3


def produce(name: str, n: int) -> None:
    """Child process: write blocks whose every sample is the block's number, as fast as there is room."""
    ring = SharedBlockRing(N_BLOCKS, BLOCKSIZE, CHANNELS, name=name)
    i = 0
    while i < n:
        if ring.write(np.full((CHANNELS, BLOCKSIZE), float(i), dtype=np.float32)):
            i += 1
    ring.close()


@pytest.fixture
def ring():
    made = SharedBlockRing(N_BLOCKS, BLOCKSIZE, CHANNELS, consumer=True)
    yield made
    made.close()
    made.unlink()


def test_blocks_cross_processes_in_order_without_loss(ring):
    n = 3000
    child = multiprocessing.get_context("spawn").Process(target=produce, args=(ring.name, n))
    child.start()
    outs = [np.zeros(BLOCKSIZE, dtype=np.float32) for _ in range(CHANNELS)]
    got: list[float] = []
    while len(got) < n - 1 and (child.is_alive() or ring.readable()):
        if ring.read_into(outs):
            assert all(np.all(o == o[0]) for o in outs) and len({float(o[0]) for o in outs}) == 1
            got.append(float(outs[0][0]))
    child.join(30)
    assert child.exitcode == 0
    # Every block arrives once and in order (an underrun inserts nothing, and nothing is skipped).
    assert got == [float(i) for i in range(len(got))]
    assert len(got) >= n - 1
    assert ring.blocks_written == n


def test_consumer_on_a_weakly_ordered_cpu_stays_one_block_behind(monkeypatch):
    monkeypatch.setattr(shared_ring, "_weakly_ordered", lambda: True)
    consumer = SharedBlockRing(N_BLOCKS, BLOCKSIZE, CHANNELS, consumer=True)
    producer = SharedBlockRing(N_BLOCKS, BLOCKSIZE, CHANNELS, name=consumer.name)
    try:
        outs = [np.zeros(BLOCKSIZE, dtype=np.float32) for _ in range(CHANNELS)]
        producer.write(np.full((CHANNELS, BLOCKSIZE), 1.0, dtype=np.float32))
        assert not consumer.read_into(outs), "the newest block is left alone until the next one is published"
        producer.write(np.full((CHANNELS, BLOCKSIZE), 2.0, dtype=np.float32))
        assert consumer.read_into(outs) and outs[0][0] == 1.0
        assert consumer.underruns == 1
    finally:
        producer.close()
        consumer.close()
        consumer.unlink()


def test_read_into_allocates_nothing_that_grows(ring):
    producer = SharedBlockRing(N_BLOCKS, BLOCKSIZE, CHANNELS, name=ring.name)
    data = np.ones((CHANNELS, BLOCKSIZE), dtype=np.float32)
    outs = [np.zeros(BLOCKSIZE, dtype=np.float32) for _ in range(CHANNELS)]

    def run(n_calls: int) -> None:
        for _ in range(n_calls):
            producer.write(data)
            ring.read_into(outs)
            ring.read_into(outs)  # underrun

    try:
        growth = allocation_growth(run)
    finally:
        producer.close()
    assert growth < 2048, f"shared ring calls grew memory by {growth} bytes over 20,000 calls"
    assert ring.underruns > 0
