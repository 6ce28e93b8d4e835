"""The two JACK callbacks of several machines against a real private jackd: a worker's beat port
(``JackOutput(beat=True)``) and the master's node inputs (``NodeInputs``), wired to each other on one
server: what the node ring receives, and that neither callback allocates anything that grows."""

import time
import tracemalloc

import numpy as np
import pytest
import structlog

from latentd.engine import ring as ring_module
from latentd.engine.ring import BlockRing
from latentd.outputs import jack_out, node_in
from latentd.outputs.jack_out import JackOutput
from latentd.outputs.jackd import JackServer
from latentd.outputs.node_in import NodeInputs
from tests.jackfixtures import RingFeeder

pytestmark = pytest.mark.jack

WAIT_S = 10.0


def test_the_beat_and_speakers_reach_the_node_ring_and_neither_callback_allocates(
    jack_server: JackServer,
) -> None:
    log = structlog.get_logger()
    out_ring = BlockRing(8, 256, 2)
    feeder = RingFeeder(out_ring)
    output = JackOutput(
        out_ring,
        client_name="worker",
        port_names=["left", "right"],
        server_name=jack_server.name,
        connect_to=[],
        samplerate=48000,
        blocksize=256,
        log=log,
        beat=True,
    )
    node_ring = BlockRing(16, 256, 3)
    inputs = NodeInputs(
        {"n1": node_ring}, ["left", "right"], client_name="nodes", server_name=jack_server.name, log=log
    )
    output.start()
    inputs.start()
    try:
        client = inputs._client
        assert client is not None
        for source in ["left", "right", "beat"]:
            client.connect(f"worker:{source}", f"nodes:n1_{source}")
        inputs._present["n1"] = True  # as poll() marks a node whose ports are there
        deadline = time.monotonic() + WAIT_S
        first = inputs.callbacks
        while inputs.callbacks < first + 4 and time.monotonic() < deadline:
            time.sleep(0.01)  # the connections take effect within a period or two
        while node_ring.readable() > 0:  # blocks from before them
            node_ring.advance()
        while node_ring.readable() < 4 and time.monotonic() < deadline:
            time.sleep(0.01)
        for _ in range(4):
            block = node_ring.peek()[1]
            assert block[0].min() >= 1.0 and block[0].max() < 2.0, f"speaker 1 carried {block[0, :4]}"
            assert block[1].min() >= 2.0 and block[1].max() < 3.0, f"speaker 2 carried {block[1, :4]}"
            assert block[2, 0] >= 1.0 and (block[2] == block[2, 0]).all(), f"the beat was {block[2, :4]}"
            node_ring.advance()
        # The feeder allocates blocks: stop it to measure the callbacks alone (the output underruns, the
        # node ring fills and drops: both paths still run every period).
        feeder.stop()
        tracemalloc.start(5)
        try:
            warm = inputs.callbacks + 50
            while inputs.callbacks < warm and time.monotonic() < deadline + WAIT_S:
                time.sleep(0.01)
            before = tracemalloc.take_snapshot()
            start = inputs.callbacks, output.callbacks
            while inputs.callbacks < start[0] + 200 and time.monotonic() < deadline + 2 * WAIT_S:
                time.sleep(0.01)
            after = tracemalloc.take_snapshot()
        finally:
            tracemalloc.stop()
        assert inputs.callbacks >= start[0] + 200 and output.callbacks >= start[1] + 200
        ours = [tracemalloc.Filter(True, m.__file__) for m in (jack_out, node_in, ring_module)]
        growth = sum(
            stat.size_diff
            for stat in after.filter_traces(ours).compare_to(before.filter_traces(ours), "traceback")
        )
        assert growth < 1024, f"the JACK callbacks grew memory by {growth} bytes over 200 periods"
        assert inputs.dropped["n1"] > 100 and output.errors == 0
        assert np.isfinite(node_ring.peek()[1]).all()
    finally:
        inputs.stop()
        output.stop()
        feeder.stop()
