"""systemd's notify protocol against a real AF_UNIX datagram socket standing in for ``$NOTIFY_SOCKET``."""

from __future__ import annotations

import os
import socket
from collections.abc import Callable, Iterator
from pathlib import Path

import numpy as np
import pytest

from latentd.config import load_config
from latentd.engine.engine import Engine
from latentd.engine.ring import BlockRing
from latentd.installation.piece import load_installation
from latentd.modelkit.builder import SynthSpec
from latentd.runtime.engine_host import EngineWorker
from latentd.runtime.notify import Notifier, ReadyGate, WatchdogGate, notify_address
from tests.pieces import write_piece


class Manager:
    """The service manager's end: a bound datagram socket that collects what the daemon sends."""

    def __init__(self, sock: socket.socket, env_value: str) -> None:
        self.sock = sock
        self.env_value = env_value
        self.notifiers: list[Notifier] = []

    def notifier(self, env: dict[str, str], **kwargs: bool) -> Notifier:
        """A daemon-side notifier (closed with the fixture)."""
        notifier = Notifier(env, **kwargs)
        self.notifiers.append(notifier)
        return notifier

    def env(self, watchdog_usec: int | None = None, watchdog_pid: int | None = None) -> dict[str, str]:
        env = {"NOTIFY_SOCKET": self.env_value}
        if watchdog_usec is not None:
            env["WATCHDOG_USEC"] = str(watchdog_usec)
            env["WATCHDOG_PID"] = str(os.getpid() if watchdog_pid is None else watchdog_pid)
        return env

    def received(self) -> list[str]:
        """Every message waiting (AF_UNIX datagrams are queued by the time sendto returns)."""
        messages = []
        while True:
            try:
                messages.append(self.sock.recv(4096).decode())
            except BlockingIOError:
                return messages


@pytest.fixture
def manager(tmp_path: Path) -> Iterator[Manager]:
    sock = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
    path = tmp_path / "notify"
    sock.bind(str(path))
    sock.setblocking(False)
    manager = Manager(sock, str(path))
    yield manager
    for notifier in manager.notifiers:
        notifier.close()
    sock.close()


class Clock:
    """A clock the test moves by hand."""

    def __init__(self) -> None:
        self.now_s = 100.0

    def __call__(self) -> float:
        return self.now_s


def test_messages_reach_a_path_socket(manager: Manager) -> None:
    notifier = manager.notifier(manager.env())
    assert notifier.enabled
    assert notifier.ready(status="playing tidal")
    assert notifier.status("section ebb\nsecond line")
    assert notifier.stopping()
    assert manager.received() == [
        "READY=1\nSTATUS=playing tidal",
        "STATUS=section ebb second line",  # a newline would have started a new assignment
        "STOPPING=1",
    ]
    assert notifier.sent == 3
    notifier.close()


def test_abstract_namespace_address() -> None:
    name = f"latentd-test-{os.getpid()}"
    sock = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
    sock.bind(b"\0" + name.encode())
    try:
        notifier = Notifier({"NOTIFY_SOCKET": f"@{name}"})
        assert notifier.ready()
        assert sock.recv(4096) == b"READY=1"
        notifier.close()
        assert notifier.status("reopened after close")
        assert sock.recv(4096) == b"STATUS=reopened after close"
        notifier.close()
    finally:
        sock.close()


def test_addresses() -> None:
    assert notify_address("/run/systemd/notify") == "/run/systemd/notify"
    assert notify_address("@abc") == b"\0abc"
    assert notify_address("vsock:2:1234") is None
    assert notify_address("@") is None


def test_without_systemd_everything_is_a_quiet_no_op() -> None:
    notifier = Notifier({})
    assert not notifier.enabled
    assert not notifier.ready()
    assert not notifier.watchdog()
    assert not notifier.stopping()
    assert notifier.watchdog_interval_s() is None
    gate = WatchdogGate(notifier, lambda: 1)
    assert not gate.enabled
    assert not gate.tick()


def test_environment_is_unset_so_children_do_not_notify(manager: Manager) -> None:
    env = manager.env(watchdog_usec=10_000_000)
    notifier = manager.notifier(env)
    assert env == {}  # a private jackd started later must not talk to our service manager
    assert notifier.watchdog_timeout_s() == 10.0
    assert notifier.watchdog_interval_s() == 5.0
    kept = manager.env(watchdog_usec=10_000_000)
    manager.notifier(kept, unset_environment=False)
    assert "NOTIFY_SOCKET" in kept


def test_watchdog_meant_for_another_pid_is_off(manager: Manager) -> None:
    notifier = manager.notifier(manager.env(watchdog_usec=10_000_000, watchdog_pid=os.getpid() + 1))
    assert notifier.enabled
    assert notifier.watchdog_interval_s() is None


def test_unreachable_socket_is_counted_not_raised(tmp_path: Path) -> None:
    with Notifier({"NOTIFY_SOCKET": str(tmp_path / "gone")}) as notifier:
        assert not notifier.ready()
        assert notifier.failed == 1


def test_ready_once_audio_flows_watchdog_only_while_blocks_advance(manager: Manager) -> None:
    blocks = [16]  # the ring was pre-filled with 16 blocks
    clock = Clock()
    notifier = manager.notifier(manager.env(watchdog_usec=2_000_000))  # ping every 1 s
    ready = ReadyGate(notifier, lambda: blocks[0])
    watchdog = WatchdogGate(notifier, lambda: blocks[0], clock=clock)

    def tick(advance: int, seconds: float) -> list[str]:
        blocks[0] += advance
        clock.now_s += seconds
        ready.tick()
        watchdog.tick()
        return manager.received()

    # JACK client active, nothing consumed yet: neither ready nor alive.
    assert tick(0, 0.1) == []
    # The callback consumed audio and the engine refilled the ring: audio flows.
    assert tick(2, 0.1) == ["READY=1"]
    assert tick(5, 0.1) == []  # READY only once; the watchdog interval is not over yet
    assert tick(19, 1.0) == ["WATCHDOG=1"]
    assert tick(180, 1.0) == ["WATCHDOG=1"]
    # The engine wedges: the counter stays put, and no ping goes out however long we wait.
    stalled = [tick(0, 0.5) for _ in range(10)]
    assert stalled == [[]] * 10
    assert watchdog.stalled_s() == pytest.approx(5.0)  # since the last ping
    # It recovers: pings resume on the next tick.
    assert tick(3, 0.1) == ["WATCHDOG=1"]
    assert watchdog.stalled_s() == 0.0
    assert watchdog.pings == 3
    notifier.stopping()
    assert manager.received() == ["STOPPING=1"]


def test_watchdog_keeps_pinging_while_idle_is_expected(manager: Manager) -> None:
    clock = Clock()
    connected = [True]
    notifier = manager.notifier(manager.env(watchdog_usec=2_000_000))
    watchdog = WatchdogGate(notifier, lambda: 7, idle=lambda: not connected[0], clock=clock)
    clock.now_s += 1.0
    assert not watchdog.tick()  # still counter, JACK connected: the engine is wedged
    connected[0] = False  # the server went away; the client is reconnecting
    clock.now_s += 1.0
    assert watchdog.tick()
    assert manager.received() == ["WATCHDOG=1"]


@pytest.fixture
def engine_and_ring(tmp_path: Path, model_factory: Callable[[SynthSpec], Path]) -> tuple[Engine, BlockRing]:
    model = model_factory(SynthSpec(latent_size=4, ratio=1024, sr=48000))
    config_path = write_piece(
        tmp_path,
        models={"m": model},
        voices={"v": {"model": "m", "source": {"kind": "constant", "values": 0.0}}},
        audio={"layout": "stereo"},
    )
    config = load_config(config_path)
    engine = Engine(load_installation(config), fade_in_s=0.0)
    return engine, BlockRing(8, config.venue.audio.blocksize, engine.n_channels)


def test_gates_follow_the_engine_block_counter(
    manager: Manager, engine_and_ring: tuple[Engine, BlockRing]
) -> None:
    """The wiring of ``latentd run``: counter = engine.counters.blocks, the ring drained by a consumer."""
    engine, ring = engine_and_ring
    worker = EngineWorker(engine, ring)  # not started: this test is its thread
    worker.fill()  # pre-fill before the JACK client is activated
    clock = Clock()
    notifier = manager.notifier(manager.env(watchdog_usec=1_000_000))
    ready = ReadyGate(notifier, lambda: engine.counters.blocks)
    watchdog = WatchdogGate(notifier, lambda: engine.counters.blocks, clock=clock)
    outs = [np.zeros(ring.read_frames, dtype=np.float32) for _ in range(ring.n_channels)]

    def period(consume: bool) -> list[str]:
        if consume:  # the JACK callback takes one period
            ring.read_into(outs)
        worker.fill()
        clock.now_s += 0.25
        ready.tick()
        watchdog.tick()
        return manager.received()

    assert period(consume=False) == []  # ring full, nobody plays it: not ready
    messages = [m for _ in range(8) for m in period(consume=True)]
    assert messages == ["READY=1", "WATCHDOG=1", "WATCHDOG=1", "WATCHDOG=1", "WATCHDOG=1"]
    # The consumer stops (a stalled engine looks the same from here: no new blocks). The blocks of the
    # last played period are still news at the next due tick; after that, no pings.
    assert [period(consume=False) for _ in range(8)] == [["WATCHDOG=1"]] + [[]] * 7
    assert [m for _ in range(4) for m in period(consume=True)] == ["WATCHDOG=1", "WATCHDOG=1"]
