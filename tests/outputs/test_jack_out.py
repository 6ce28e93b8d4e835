"""JackOutput against a real private jackd: what a listener at the speaker ports receives."""

import time
import tracemalloc
from collections.abc import Callable, Iterator

import numpy as np
import pytest
import structlog
from structlog.testing import capture_logs

from latentd.engine import ring as ring_module
from latentd.engine.ring import BlockRing
from latentd.outputs import jack_out
from latentd.outputs.jack_out import JackOutput, JackOutputError
from latentd.outputs.jackd import JackServer
from tests.jackfixtures import JackCapture, RingFeeder, check_signal

pytestmark = pytest.mark.jack

LAYOUTS = {
    4: ["front_left", "front_right", "back_left", "back_right"],
    7: ["centre", "left", "right", "side_left", "side_right", "back_left", "back_right"],
    8: [f"ring_{i}" for i in range(1, 9)],
}
RECORD_FRAMES = 12_000  # a quarter of a second at 48 kHz
WAIT_S = 10.0  # generous: a stalled JACK fails with a message, not a hang


MakeOutput = Callable[..., tuple[JackOutput, BlockRing, RingFeeder]]
MakeCapture = Callable[..., JackCapture]


@pytest.fixture
def make_output() -> Iterator[MakeOutput]:
    """Build a started JackOutput fed by a RingFeeder; everything is stopped at teardown."""
    made: list[tuple[JackOutput, RingFeeder]] = []

    def make(
        server: JackServer,
        n_channels: int = 4,
        blocksize: int = 256,
        samplerate: int = 48000,
        connect_to: list[str] | None = None,
        start: bool = True,
    ) -> tuple[JackOutput, BlockRing, RingFeeder]:
        ring = BlockRing(8, blocksize, n_channels)
        feeder = RingFeeder(ring)
        output = JackOutput(
            ring,
            client_name="latentd",
            port_names=LAYOUTS.get(n_channels, [f"out_{i}" for i in range(1, n_channels + 1)]),
            server_name=server.name,
            connect_to=connect_to,
            samplerate=samplerate,
            blocksize=blocksize,
            log=structlog.get_logger(),
        )
        made.append((output, feeder))
        if start:
            output.start()
        return output, ring, feeder

    yield make
    for output, feeder in made:
        output.stop()
        feeder.stop()


def record(capture: JackCapture, poll: Callable[[], None] | None = None) -> np.ndarray:
    capture.record()
    assert capture.wait_frames(RECORD_FRAMES, WAIT_S, poll), (
        f"the capture client recorded only {capture.frames} of {RECORD_FRAMES} frames in {WAIT_S} s"
    )
    return capture.recorded()


@pytest.mark.parametrize("n_channels", [4, 7, 8])
def test_each_speaker_port_carries_its_own_channel_in_order(
    n_channels: int, jack_server: JackServer, make_output: MakeOutput, jack_capture_factory: MakeCapture
) -> None:
    output, _, _ = make_output(jack_server, n_channels=n_channels)
    capture = jack_capture_factory(jack_server.name, n_channels, RECORD_FRAMES)
    expected = [f"latentd:{name}" for name in LAYOUTS[n_channels]]
    ports = [p.name for p in capture.client.get_ports("latentd:", is_audio=True, is_output=True)]
    assert ports == expected == output.port_names
    for c, port in enumerate(expected):
        links = [p.name for p in capture.client.get_all_connections(port)]
        assert links == [f"system:playback_{c + 1}"]
    capture.connect(expected)
    check_signal(record(capture), capture.breaks)
    assert output.connected and output.errors == 0 and output.callbacks > 0


@pytest.mark.parametrize(
    "blocksize",
    [512, 128, 1024],
    ids=["period-is-half-a-block", "period-is-two-blocks", "period-is-a-quarter-block"],
)
def test_engine_blocksize_may_be_a_multiple_or_divisor_of_the_jack_period(
    blocksize: int, jack_server: JackServer, make_output: MakeOutput, jack_capture_factory: MakeCapture
) -> None:
    output, _, _ = make_output(jack_server, n_channels=2, blocksize=blocksize)
    capture = jack_capture_factory(jack_server.name, 2, RECORD_FRAMES)
    capture.connect(output.port_names)
    check_signal(record(capture), capture.breaks)
    assert output.errors == 0


def test_a_period_that_does_not_fit_the_blocksize_is_refused(
    jack_server: JackServer, make_output: MakeOutput
) -> None:
    with pytest.raises(JackOutputError, match="period of 256 frames and engine blocksize of 384 frames"):
        make_output(jack_server, n_channels=2, blocksize=384)


def test_wrong_server_samplerate_is_refused_and_leaves_no_client_behind(
    jack_server_factory: Callable[..., JackServer], make_output: MakeOutput, jack_capture_factory: MakeCapture
) -> None:
    server = jack_server_factory(samplerate=44100)
    with pytest.raises(JackOutputError, match=r"runs at 44100 Hz but the engine renders at 48000 Hz"):
        make_output(server, samplerate=48000)
    capture = jack_capture_factory(server.name, 1, 16)
    assert capture.client.get_ports("latentd:") == []


def test_a_missing_speaker_port_is_a_warning_and_the_others_play(
    jack_server: JackServer, make_output: MakeOutput, jack_capture_factory: MakeCapture
) -> None:
    with capture_logs() as logs:
        output, _, _ = make_output(jack_server, n_channels=2, connect_to=["system:playback_2", "nowhere:in"])
    assert {"event": "jack.port_missing", "target": "nowhere:in", "port": "latentd:out_2"}.items() <= next(
        entry for entry in logs if entry["event"] == "jack.port_missing"
    ).items()
    capture = jack_capture_factory(jack_server.name, 1, 16)
    assert [p.name for p in capture.client.get_all_connections("latentd:out_1")] == ["system:playback_2"]
    assert capture.client.get_all_connections("latentd:out_2") == []
    assert output.connected


def test_empty_connect_list_leaves_the_ports_unconnected(
    jack_server: JackServer, make_output: MakeOutput, jack_capture_factory: MakeCapture
) -> None:
    output, _, _ = make_output(jack_server, n_channels=2, connect_to=[])
    capture = jack_capture_factory(jack_server.name, 1, 16)
    assert [capture.client.get_all_connections(port) for port in output.port_names] == [[], []]


def test_an_exception_in_the_callback_plays_silence_and_never_stops_the_client(
    jack_server: JackServer, make_output: MakeOutput, jack_capture_factory: MakeCapture
) -> None:
    output, ring, _ = make_output(jack_server, n_channels=2)
    capture = jack_capture_factory(jack_server.name, 2, RECORD_FRAMES)
    capture.connect(output.port_names)

    def broken(outs: object) -> bool:
        raise RuntimeError("decoder exploded")

    ring.read_into = broken  # type: ignore[method-assign]
    silent = record(capture)
    assert output.errors > 0
    assert not silent.any(), "a failing callback must output silence"
    del ring.read_into  # the class method again
    check_signal(record(capture), capture.breaks)


def test_plays_through_public_port_buffers_when_raw_access_is_unavailable(
    jack_server: JackServer,
    make_output: MakeOutput,
    jack_capture_factory: MakeCapture,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setattr(jack_out, "_PORT_GET_BUFFER", None)
    output, _, _ = make_output(jack_server, n_channels=2)
    capture = jack_capture_factory(jack_server.name, 2, RECORD_FRAMES)
    capture.connect(output.port_names)
    check_signal(record(capture), capture.breaks)


def test_callback_allocates_nothing_that_grows(jack_server: JackServer, make_output: MakeOutput) -> None:
    output, _, feeder = make_output(jack_server, n_channels=8, start=False)
    # The feeder allocates blocks: stop it to measure the callback alone (8 blocks, then underruns).
    feeder.stop()
    output.start()
    tracemalloc.start(5)
    try:
        deadline = time.monotonic() + WAIT_S
        while output.callbacks < 50 and time.monotonic() < deadline:
            time.sleep(0.01)
        before = tracemalloc.take_snapshot()
        first = output.callbacks
        while output.callbacks < first + 200 and time.monotonic() < deadline:
            time.sleep(0.01)
        after = tracemalloc.take_snapshot()
    finally:
        tracemalloc.stop()
    assert output.callbacks >= first + 200, f"only {output.callbacks - first} callbacks ran in {WAIT_S} s"
    ours = [tracemalloc.Filter(True, jack_out.__file__), tracemalloc.Filter(True, ring_module.__file__)]
    growth = sum(
        stat.size_diff
        for stat in after.filter_traces(ours).compare_to(before.filter_traces(ours), "traceback")
    )
    assert growth < 1024, f"the JACK callback grew memory by {growth} bytes over 200 periods"
    assert output.underruns > 100 and output.errors == 0


def test_reconnects_and_plays_again_after_jackd_is_killed_and_restarted(
    jack_server: JackServer, make_output: MakeOutput, jack_capture_factory: MakeCapture
) -> None:
    output, _, _ = make_output(jack_server, n_channels=2)
    with capture_logs() as logs:
        jack_server.kill()
        deadline = time.monotonic() + WAIT_S
        while output.connected and time.monotonic() < deadline:
            output.poll()
            time.sleep(0.05)
        output.poll()
        assert not output.connected, "JackOutput did not notice that jackd died"

        jack_server.start()
        back_at = time.monotonic()
        while not output.connected and time.monotonic() < back_at + 5.0:
            output.poll()
            time.sleep(0.1)
        assert output.connected, "JackOutput did not reconnect within 5 s of jackd coming back"
        capture = jack_capture_factory(jack_server.name, 2, RECORD_FRAMES, name="capture-again")
        capture.connect(output.port_names)
        check_signal(record(capture, poll=output.poll), capture.breaks)
    events = [entry["event"] for entry in logs]
    assert events.index("jack.server_lost") < events.index("jack.reconnected")


def test_a_callback_that_overruns_its_period_is_counted_as_an_xrun(
    jack_server: JackServer, make_output: MakeOutput
) -> None:
    output, ring, _ = make_output(jack_server, n_channels=2)
    assert output.xruns == 0

    def late(outs: object) -> bool:
        time.sleep(0.02)  # ~4 periods of 5.3 ms
        return False

    ring.read_into = late  # type: ignore[method-assign]
    deadline = time.monotonic() + WAIT_S
    while output.xruns == 0 and time.monotonic() < deadline:
        time.sleep(0.02)
    del ring.read_into
    assert output.xruns > 0, "JACK reported no xrun while the callback ran 4 periods late"
    running = output.callbacks
    while output.callbacks < running + 20 and time.monotonic() < deadline:
        time.sleep(0.02)
    assert output.callbacks >= running + 20, "the client stopped being called after the xruns"


def test_the_signal_check_catches_a_lost_block_unless_the_capture_itself_broke_there() -> None:
    period = RingFeeder.PERIOD_FRAMES
    n = np.concatenate([np.arange(1024), np.arange(1280, 4096)])  # frames 1024..1279 never arrived
    recorded = (np.arange(2)[:, None] + 1.0 + (n % period) / period).astype(np.float32)
    recorded = np.insert(recorded, 3000, np.zeros((100, 1), np.float32), axis=1)  # an underrun: silence
    with pytest.raises(AssertionError, match=r"out of order at recorded frames \[1023\]"):
        check_signal(recorded)
    with pytest.raises(AssertionError, match=r"frames lost"):
        check_signal(recorded, breaks=[2048])  # a break elsewhere excuses nothing here
    check_signal(recorded, breaks=[1024])
