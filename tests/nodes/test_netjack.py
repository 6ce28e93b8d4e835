"""netjack2 between namespaces: a worker's audio arrives on the master bit-exact after a fixed round trip,
and the master's ports follow the worker's death and return (and the worker's, the master's)."""

import jack
import pytest

from latentd.outputs.jack_out import port_names
from latentd.outputs.jackd import JackServer
from latentd.outputs.netjack import node_ports
from tests.nodes.netns import NetnsNet, unavailable_reason, wait_until
from tests.nodes.probes import MasterProbe, WorkerProbe

_reason = unavailable_reason()
pytestmark = [pytest.mark.jack, pytest.mark.skipif(_reason is not None, reason=_reason or "")]

LATENCY = 2  # the net driver's -l, in periods
PERIOD = 256
SETTLE_BLOCKS = 20  # blocks skipped after connecting: connections take effect over a few cycles
MAY_LOSE = 4  # periods a busy machine may deliver late (lost) in a test's 40-200 blocks


def _ports(probe: MasterProbe, direction: str = "from_slave") -> list[str]:
    names = None
    while names is None:  # ports leaving while listed: list again
        names = port_names(probe.client, "")
    return node_ports(names, "n1", direction)


def _listen(probe: MasterProbe, blocks: int) -> None:
    probe.record()
    assert wait_until(lambda: probe.recorded_blocks >= blocks, 10.0), (
        "the master's probe stopped being called"
    )


def _connect(probe: MasterProbe, worker: JackServer) -> None:
    """Wait for the node's ports on the master, connect the probe to them.

    A worker that rejoins a restarted master may make its ports twice (its first try times out): a
    connection to ports that went away is tried again with the ports there now.
    """
    assert wait_until(worker.joined, 10.0), f"the worker never joined the master:\n{worker.output()}"

    def connected() -> bool:
        if not (len(_ports(probe)) == 2 and len(_ports(probe, "to_slave")) == 1):
            return False
        probe.disconnect_all()
        try:
            probe.connect(_ports(probe, "to_slave"), _ports(probe))
        except jack.JackError:
            return False
        return True

    assert wait_until(connected, 10.0), "the probe could not connect to the node's ports"


@pytest.mark.parametrize("unicast", [True, False], ids=["unicast", "multicast"])
def test_worker_audio_arrives_bit_exact_after_a_fixed_round_trip(unicast: bool) -> None:
    with NetnsNet(1) as net:
        master = net.master_server(period=PERIOD, listen=net.master.address if unicast else "")
        worker = net.worker_server(0, capture_channels=1, latency=LATENCY, unicast=unicast)
        probe = MasterProbe(master.name)
        worker_probe = WorkerProbe(worker.name)
        try:
            _connect(probe, worker)
            _listen(probe, SETTLE_BLOCKS + 200)
            report = probe.report(skip_blocks=SETTLE_BLOCKS)
        finally:
            worker_probe.stop()
            probe.close()
    # A period that arrives later than -l periods is lost (a gap, never garbage): on a busy machine a
    # few may be; the README's figures count them.
    assert report.sounding >= report.blocks - MAY_LOSE, report
    # Float encoding: every sample arrives as it was written.
    assert report.exact_blocks == report.sounding, report
    trip, count = report.round_trip_frames.most_common(1)[0]
    assert trip == (LATENCY + 2) * PERIOD, report
    assert count >= 0.9 * report.sounding, report


def test_the_masters_ports_follow_the_worker_away_and_back() -> None:
    with NetnsNet(1) as net:
        master = net.master_server(period=PERIOD, listen=net.master.address)
        worker = net.worker_server(0, capture_channels=1, latency=LATENCY)
        probe = MasterProbe(master.name)
        worker_probe = WorkerProbe(worker.name)
        try:
            _connect(probe, worker)
            # The worker's program dies, its jackd plays on: the ports stay and carry silence.
            worker_probe.kill()
            _listen(probe, 40)
            assert len(_ports(probe)) == 2
            assert probe.report(skip_blocks=20).sounding == 0
            # Its jackd dies: the netmanager drops the node's client and ports.
            worker.kill()
            assert wait_until(lambda: not _ports(probe), 10.0), "the dead node's ports stayed on the master"
            # Both come back: the ports return (maybe as n1-01) and carry the node's audio again.
            worker.start(timeout_s=10.0)
            worker_probe = WorkerProbe(worker.name)
            _connect(probe, worker)
            _listen(probe, SETTLE_BLOCKS + 40)
            report = probe.report(skip_blocks=SETTLE_BLOCKS)
        finally:
            worker_probe.stop()
            probe.close()
    assert report.sounding >= report.blocks - MAY_LOSE and report.exact_blocks == report.sounding, report


def test_a_worker_waits_for_a_lost_master_and_rejoins_it() -> None:
    with NetnsNet(1) as net:
        master = net.master_server(period=PERIOD, listen=net.master.address)
        worker = net.worker_server(0, capture_channels=1, latency=LATENCY)
        worker_probe = WorkerProbe(worker.name)
        try:
            assert wait_until(worker.joined, 10.0)
            master.kill()
            # The net driver drops its system ports and waits; the worker's clients live on.
            assert wait_until(lambda: not worker.joined(), 10.0), "the worker kept its ports without a master"
            assert worker_probe.proc.poll() is None
            master.start(timeout_s=10.0)
            net.load_netmanager(master)
            probe = MasterProbe(master.name)
            try:
                _connect(probe, worker)  # the probe client reconnects its ports to the new system ports
                _listen(probe, SETTLE_BLOCKS + 40)
                report = probe.report(skip_blocks=SETTLE_BLOCKS)
            finally:
                probe.close()
        finally:
            worker_probe.stop()
    assert report.sounding >= report.blocks - MAY_LOSE and report.exact_blocks == report.sounding, report
