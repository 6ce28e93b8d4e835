"""pytest fixtures for tests against a real, private jackd (dummy driver).

Import them into a conftest (``from tests.jackfixtures import jack_server, jack_server_factory,
jack_capture_factory``). Every server gets a unique name and is stopped after the test, pass or fail.
"""

import contextlib
import itertools
import os
import shutil
import threading
import time
from collections.abc import Callable, Iterator, Sequence

import jack
import numpy as np
import pytest

from latentd.engine.ring import BlockRing
from latentd.outputs.jack_out import open_client
from latentd.outputs.jackd import JackServer

_names = itertools.count()


def unique_server_name() -> str:
    """A server name no other test (or concurrent test run) uses."""
    return f"latentd-test-{os.getpid()}-{next(_names)}"


class JackCapture:
    """An independent JACK client that records its input ports into a preallocated numpy buffer.

    Its process callback copies into ``[n_channels, capacity]`` until the buffer is full; the test reads
    the recording with :meth:`recorded` after :meth:`wait_frames`.
    """

    def __init__(
        self, server_name: str, n_channels: int, capacity_frames: int, name: str = "capture"
    ) -> None:
        """Open, register ``in_1..in_N`` and activate.

        Args:
            server_name: The JACK server to join.
            n_channels: Input ports to record.
            capacity_frames: Frames to record per channel before the buffer is full.
            name: JACK client name.
        """
        self.client = open_client(name, server_name)
        self.ports = [self.client.inports.register(f"in_{c + 1}") for c in range(n_channels)]
        self.buffer = np.zeros((n_channels, capacity_frames), dtype=np.float32)
        self._frames = 0
        self._recording = False
        # Buffer positions where this client's own timeline broke while recording (it was called late,
        # and JACK's frame time did not follow on): what it heard around there is not what was played.
        self.breaks: list[int] = []
        self._next_frame_time: int | None = None
        self.client.set_process_callback(self._process)
        self.client.activate()

    def _process(self, frames: int) -> None:
        if not self._recording:
            return
        now = self.client.last_frame_time
        if self._next_frame_time is not None and now != self._next_frame_time:
            self.breaks.append(self._frames)
        self._next_frame_time = (now + frames) % 2**32
        pos = self._frames
        n = min(frames, self.buffer.shape[1] - pos)
        for c, port in enumerate(self.ports):
            self.buffer[c, pos : pos + n] = port.get_array()[:n]
        self._frames = pos + n

    def connect(self, sources: Sequence[str]) -> None:
        """Connect output ports ``sources[c]`` to ``in_{c+1}``."""
        for source, port in zip(sources, self.ports, strict=True):
            self.client.connect(source, port)

    def record(self) -> None:
        """Start (or restart) recording at the beginning of the buffer."""
        self._recording = False
        self._frames = 0
        self.breaks = []
        self._next_frame_time = None
        self.buffer.fill(0.0)
        self._recording = True

    @property
    def frames(self) -> int:
        """Frames recorded so far."""
        return self._frames

    def wait_frames(
        self, n_frames: int, timeout_s: float = 5.0, poll: Callable[[], None] | None = None
    ) -> bool:
        """Wait until ``n_frames`` were recorded, calling ``poll`` every 50 ms. False on timeout."""
        deadline = time.monotonic() + timeout_s
        while self._frames < n_frames:
            if time.monotonic() > deadline:
                return False
            if poll is not None:
                poll()
            time.sleep(0.05)
        return True

    def recorded(self) -> np.ndarray:
        """A copy of what was recorded so far, ``[n_channels, frames]``."""
        return self.buffer[:, : self._frames].copy()

    def close(self) -> None:
        """Deactivate and close the client."""
        self.client.deactivate()
        self.client.close()


class RingFeeder:
    """A producer thread that keeps a ring full with a known signal.

    Channel ``c`` carries ``c + 1 + (n % period) / period`` at running frame ``n``: each channel has its own
    integer part, and the fractional part is a sawtooth that proves frames arrive in order.
    """

    PERIOD_FRAMES = 1024

    def __init__(self, ring: BlockRing) -> None:
        """Start feeding ``ring`` (a BlockRing) in a daemon thread."""
        self.ring = ring
        self._frame = 0
        self._stop = threading.Event()
        self.fill()
        self._thread = threading.Thread(target=self._run, name="ring-feeder", daemon=True)
        self._thread.start()

    def block(self) -> np.ndarray:
        """The next block of the signal."""
        ring = self.ring
        n = self._frame + np.arange(ring.blocksize)
        saw = (n % self.PERIOD_FRAMES) / self.PERIOD_FRAMES
        channels = np.arange(ring.n_channels)[:, None] + 1.0
        return (channels + saw[None, :]).astype(np.float32)

    def fill(self) -> None:
        """Write blocks until the ring is full."""
        while self.ring.writable() > 0:
            if self.ring.write(self.block()):
                self._frame += self.ring.blocksize

    def _run(self) -> None:
        while not self._stop.wait(0.002):
            self.fill()

    def stop(self) -> None:
        """Stop the thread."""
        self._stop.set()
        self._thread.join(5.0)


def check_signal(recorded: np.ndarray, breaks: Sequence[int] = ()) -> None:
    """Assert that ``recorded`` is the :class:`RingFeeder` signal, allowing silent gaps (underruns).

    Every non-silent sample of channel ``c`` must lie in ``[c + 1, c + 2)``; at least a quarter of the
    recording must sound; and the non-silent samples, taken in order, must advance the sawtooth by exactly
    one step each: an underrun inserts silence but never loses or repeats a frame. A jump is excused only
    where the capture client's own timeline broke (``JackCapture.breaks``: it was called late).
    """
    step = 1.0 / RingFeeder.PERIOD_FRAMES
    for c, channel in enumerate(recorded):
        sound = channel != 0.0
        assert sound.mean() >= 0.25, f"channel {c + 1} is silent in {1 - sound.mean():.0%} of the recording"
        at = np.flatnonzero(sound)
        values = channel[sound]
        assert values.min() >= c + 1 and values.max() < c + 2, (
            f"channel {c + 1} carries values in [{values.min()}, {values.max()}], expected [{c + 1}, {c + 2})"
        )
        diffs = np.mod(np.diff(values - (c + 1)), 1.0)
        bad = np.flatnonzero(~np.isclose(diffs, step, atol=1e-4))
        # A jump between recorded frames at[i] and at[i + 1] is the capture's when its timeline broke there.
        bad = np.array([i for i in bad if not any(at[i] < p <= at[i + 1] for p in breaks)], dtype=int)
        assert bad.size == 0, (
            f"channel {c + 1}: frames lost, repeated or out of order at recorded frames "
            f"{at[bad[:5]].tolist()} (steps {diffs[bad[:5]].tolist()}, expected {step}; "
            f"capture breaks at {list(breaks)[:5]})"
        )


@pytest.fixture
def jack_server_factory() -> Iterator[Callable[..., JackServer]]:
    """Make started private jackd servers: ``make(samplerate=48000, period=256, playback_channels=8)``.

    All servers made are stopped at teardown.
    """
    if shutil.which("jackd") is None:
        pytest.fail("jackd is not installed (apt install jackd2); deselect with -m 'not jack'")
    servers: list[JackServer] = []

    def make(**kwargs: int | str) -> JackServer:
        server = JackServer(unique_server_name(), **kwargs)  # type: ignore[arg-type]
        servers.append(server)
        server.start(timeout_s=10.0)
        return server

    yield make
    for server in servers:
        server.stop()


@pytest.fixture
def jack_server(jack_server_factory: Callable[..., JackServer]) -> JackServer:
    """A started private jackd: dummy driver, 48 kHz, 256-frame periods, 8 playback ports."""
    return jack_server_factory()


@pytest.fixture
def jack_capture_factory() -> Iterator[Callable[..., JackCapture]]:
    """Make :class:`JackCapture` clients: ``make(server_name, n_channels, capacity_frames)``.

    They are closed at teardown.
    """
    captures: list[JackCapture] = []

    def make(server_name: str, n_channels: int, capacity_frames: int, name: str = "capture") -> JackCapture:
        capture = JackCapture(server_name, n_channels, capacity_frames, name)
        captures.append(capture)
        return capture

    yield make
    for capture in captures:
        with contextlib.suppress(jack.JackError):
            capture.close()
