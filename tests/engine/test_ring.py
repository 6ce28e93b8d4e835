"""BlockRing: order, full/empty behaviour, underruns, parts, threads, and no allocation growth."""

import collections
import threading
import time

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from latentd.engine.ring import BlockRing
from tests.alloc import allocation_growth


def block(value: float, n_channels: int = 2, blocksize: int = 4) -> np.ndarray:
    """A block whose channel c holds value + c everywhere."""
    return (np.full((n_channels, blocksize), value) + np.arange(n_channels)[:, None]).astype(np.float32)


def outs_for(ring: BlockRing, fill: float = 7.0) -> list[np.ndarray]:
    return [np.full(ring.read_frames, fill, dtype=np.float32) for _ in range(ring.n_channels)]


def test_blocks_come_out_in_the_order_they_went_in() -> None:
    ring = BlockRing(4, 4, 2)
    for value in (10.0, 20.0, 30.0):
        assert ring.write(block(value))
    outs = outs_for(ring)
    for value in (10.0, 20.0, 30.0):
        assert ring.read_into(outs)
        np.testing.assert_array_equal(outs[0], np.full(4, value))
        np.testing.assert_array_equal(outs[1], np.full(4, value + 1))
    assert ring.underruns == 0


def test_full_ring_refuses_writes_without_blocking_and_keeps_old_blocks() -> None:
    ring = BlockRing(3, 4, 2)
    assert [ring.write(block(v)) for v in (1.0, 2.0, 3.0)] == [True, True, True]
    assert ring.writable() == 0 and ring.readable() == 3
    assert not ring.write(block(99.0))
    outs = outs_for(ring)
    ring.read_into(outs)
    np.testing.assert_array_equal(outs[0], np.full(4, 1.0))
    assert ring.writable() == 1
    assert ring.write(block(4.0))


def test_empty_ring_outputs_silence_and_counts_each_underrun() -> None:
    ring = BlockRing(2, 4, 2)
    outs = outs_for(ring, fill=0.5)
    assert not ring.read_into(outs)
    assert not ring.read_into(outs)
    assert all(not out.any() for out in outs)
    assert ring.underruns == 2
    ring.write(block(5.0))
    assert ring.read_into(outs)
    np.testing.assert_array_equal(outs[1], np.full(4, 6.0))
    assert ring.underruns == 2


def test_write_with_wrong_shape_names_both_shapes() -> None:
    ring = BlockRing(2, 4, 2)
    with pytest.raises(ValueError, match=r"\(3, 4\).*\[2, 4\]"):
        ring.write(np.zeros((3, 4), dtype=np.float32))


@pytest.mark.parametrize("kwargs", [{"n_blocks": 1}, {"blocksize": 0}, {"n_channels": 0}])
def test_bad_sizes_are_refused(kwargs: dict[str, int]) -> None:
    sizes = {"n_blocks": 4, "blocksize": 4, "n_channels": 2, **kwargs}
    name = next(iter(kwargs))
    with pytest.raises(ValueError, match=name):
        BlockRing(**sizes)


def test_parts_of_a_block_are_read_in_turn_and_the_slot_freed_after_the_last() -> None:
    ring = BlockRing(2, 8, 1)
    ring.set_read_frames(4)
    ring.write(np.arange(8, dtype=np.float32)[None, :])
    ring.write(np.arange(8, 16, dtype=np.float32)[None, :])
    out = [np.zeros(4, dtype=np.float32)]
    assert ring.read_into(out)
    np.testing.assert_array_equal(out[0], [0, 1, 2, 3])
    # The half-read block still belongs to the consumer.
    assert ring.writable() == 0
    assert ring.read_into(out)
    np.testing.assert_array_equal(out[0], [4, 5, 6, 7])
    assert ring.writable() == 1
    assert ring.read_into(out)
    np.testing.assert_array_equal(out[0], [8, 9, 10, 11])


def test_read_size_must_divide_the_blocksize() -> None:
    ring = BlockRing(2, 8, 1)
    with pytest.raises(ValueError, match="must divide the ring blocksize 8"):
        ring.set_read_frames(3)


def test_read_into_is_marked_realtime() -> None:
    assert BlockRing.read_into.__realtime__ is True  # type: ignore[attr-defined]


@settings(max_examples=60, deadline=None)
@given(ops=st.lists(st.booleans(), max_size=60), n_blocks=st.integers(2, 5))
def test_ring_behaves_like_a_bounded_fifo(ops: list[bool], n_blocks: int) -> None:
    ring = BlockRing(n_blocks, 2, 1)
    model: collections.deque[float] = collections.deque()
    out = [np.zeros(2, dtype=np.float32)]
    underruns = 0
    for i, is_write in enumerate(ops):
        if is_write:
            accepted = ring.write(np.full((1, 2), i, dtype=np.float32))
            assert accepted == (len(model) < n_blocks)
            if accepted:
                model.append(float(i))
        else:
            got = ring.read_into(out)
            assert got == bool(model)
            if model:
                assert out[0][0] == model.popleft()
            else:
                underruns += 1
                assert not out[0].any()
        assert ring.readable() == len(model)
    assert ring.underruns == underruns


def test_producer_and_consumer_threads_pass_every_block_intact_and_in_order() -> None:
    n_total = 3000
    ring = BlockRing(4, 64, 2)
    errors: list[str] = []
    deadline = time.monotonic() + 20.0

    def produce() -> None:
        i = 0
        while i < n_total and time.monotonic() < deadline:
            if ring.write(np.full((2, 64), i, dtype=np.float32)):
                i += 1
            else:
                time.sleep(0)  # let the consumer in

    producer = threading.Thread(target=produce, daemon=True)
    producer.start()
    outs = [np.zeros(64, dtype=np.float32) for _ in range(2)]
    expected = 0
    while expected < n_total and time.monotonic() < deadline:
        if ring.read_into(outs):
            if not (outs[0] == expected).all() or not (outs[1] == expected).all():
                errors.append(
                    f"block {expected}: got {outs[0][0]}..{outs[0][-1]}, {outs[1][0]}..{outs[1][-1]}"
                )
            expected += 1
        else:
            time.sleep(0)  # let the producer in
    producer.join(10.0)
    assert expected == n_total, f"only {expected} of {n_total} blocks arrived"
    assert errors == []


def test_read_into_allocates_nothing_that_grows() -> None:
    ring = BlockRing(4, 256, 8)
    ring.set_read_frames(128)
    data = np.ones((8, 256), dtype=np.float32)
    outs = [np.zeros(128, dtype=np.float32) for _ in range(8)]

    def run(n_calls: int) -> None:
        for _ in range(n_calls):
            ring.write(data)
            ring.read_into(outs)  # first part
            ring.read_into(outs)  # second part
            ring.read_into(outs)  # underrun

    growth = allocation_growth(run)
    # 30,000 calls: any per-call leak of even one small object would show as hundreds of kilobytes.
    assert growth < 2048, f"ring calls grew memory by {growth} bytes over 30,000 calls"
    assert ring.underruns > 0


def test_a_tagged_ring_hands_whole_blocks_with_their_tags_to_peek() -> None:
    ring = BlockRing(2, 4, 2, tagged=True)
    assert ring.write(block(1.0), tag=41) and ring.write(block(2.0), tag=43)
    assert not ring.write(block(3.0), tag=44)  # full: refused, the stored tags are kept
    tag, view = ring.peek()
    assert tag == 41 and view.shape == (2, 4)
    np.testing.assert_array_equal(view, block(1.0))
    ring.advance()
    assert ring.peek()[0] == 43 and ring.readable() == 1
    ring.advance()
    assert ring.readable() == 0 and ring.writable() == 2
    assert BlockRing(2, 4, 2).write(block(1.0), tag=5)  # an untagged ring ignores tags


def test_tagged_write_peek_and_advance_allocate_nothing_that_grows() -> None:
    ring = BlockRing(4, 256, 8, tagged=True)
    data = np.ones((8, 256), dtype=np.float32)

    def run(n_calls: int) -> None:
        for index in range(n_calls):
            ring.write(data, tag=index)
            ring.peek()
            ring.advance()

    growth = allocation_growth(run)
    assert growth < 2048, f"tagged ring calls grew memory by {growth} bytes over 30,000 calls"
