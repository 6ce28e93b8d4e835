"""One piece on two machines: ``latentd run --node`` on a master and a worker in network namespaces.

The worker decodes its voice only, routed to the right speaker, and sends it over netjack2; the master
plays its own voice on the left speaker and mixes the worker's in: both are heard on the master's speaker
ports and are in its recording. The worker's latentd killed, the right speaker falls silent and the left
plays on; the worker restarted, its voice is back.
"""

from __future__ import annotations

import os
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from pathlib import Path

import numpy as np
import pytest
import soundfile as sf

from latentd.modelkit.builder import SynthSpec
from tests.jackfixtures import JackCapture, jack_capture_factory
from tests.nodes.netns import NetnsNet, unavailable_reason
from tests.pieces import write_piece
from tests.runtime.test_supervisor import TONE, TONE_BIAS, Daemon

__all__ = ["jack_capture_factory"]

_reason = unavailable_reason()
pytestmark = [
    pytest.mark.jack,
    pytest.mark.slow,
    pytest.mark.skipif(_reason is not None, reason=_reason or ""),
]


class NsDaemon(Daemon):
    """``latentd run`` inside a network namespace (where its node's address is)."""

    def __init__(self, netns: str, config: Path, duration_s: float, *options: str) -> None:
        run = ["run", "--config", str(config), "--duration", str(duration_s), *options]
        self.proc = subprocess.Popen(
            ["ip", "netns", "exec", netns, sys.executable, "-m", "latentd", *run],
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            text=True,
            env={**os.environ, "PYTHONUNBUFFERED": "1"},
        )
        self.lines = []


@pytest.fixture
def net() -> Iterator[NetnsNet]:
    with NetnsNet(1) as made:
        yield made


@pytest.fixture
def daemons() -> Iterator[list[Daemon]]:
    started: list[Daemon] = []
    yield started
    for d in started:
        if d.proc.poll() is None:
            d.proc.kill()
            d.proc.wait()
        if d.proc.stdout is not None:
            d.proc.stdout.close()


def test_a_workers_voice_is_on_the_masters_speakers_and_in_its_recording(
    tmp_path: Path,
    net: NetnsNet,
    daemons: list[Daemon],
    model_factory: Callable[[SynthSpec], Path],
    jack_capture_factory: Callable[..., JackCapture],
) -> None:
    master = net.master_server(period=256, playback_channels=2, listen=net.master.address)
    worker = net.worker_server(0, playback_channels=3, latency=2)  # 2 speakers and the heartbeat
    model = model_factory(SynthSpec(latent_size=4, ratio=512, sr=48000))
    tone = {"model": "tone", "source": TONE, "bias": TONE_BIAS}
    config = write_piece(
        tmp_path,
        models={"tone": model},
        voices={"here": tone | {"route": ["L"]}, "there": tone | {"route": ["R"]}},
        audio={"layout": "stereo", "frames_per_call": 4},
        extra_venue={
            "jack": {"client_name": "latentd", "server_name": master.name, "autoconnect": False},
            "logging": {"level": "info", "format": "json"},
            "recording": {"mode": "always"},
            "nodes": {
                "hub": {"role": "master", "address": net.master.address, "voices": ["here"]},
                "n1": {
                    "role": "worker",
                    "address": net.workers[0].address,
                    "voices": ["there"],
                    "jack_server": worker.name,
                },
            },
        },
    )
    # Each latentd in its node's namespace, where its address is (the worker listens on it for commands).
    hub = NsDaemon(net.master.netns, config, 60.0, "--node", "hub")
    daemons.append(hub)
    n1 = NsDaemon(net.workers[0].netns, config, 60.0, "--node", "n1")
    daemons.append(n1)
    ports = hub.wait_ports(master.name, "latentd", 2)
    capture = jack_capture_factory(master.name, 2, 48000)
    capture.connect(ports)
    # The worker plays into its jackd: its right speaker arrives as n1:from_slave_2 and in the mix.
    both = listen(capture, lambda rms: (rms > 1e-3).all(), hub, n1)
    assert (both > 1e-3).all(), f"RMS at the master's speakers {both}; master log:\n{hub.finish()}"
    n1.proc.kill()
    n1.proc.wait()
    alone = listen(capture, lambda rms: rms[0] > 1e-3 and rms[1] < 1e-6, hub)
    assert alone[0] > 1e-3 and alone[1] < 1e-6, f"RMS with the worker gone {alone}"
    n1.finish()
    n1 = NsDaemon(net.workers[0].netns, config, 60.0, "--node", "n1")
    daemons.append(n1)
    back = listen(capture, lambda rms: (rms > 1e-3).all(), hub, n1)
    assert (back > 1e-3).all(), f"RMS with the worker back {back}"
    hub.proc.terminate()
    n1.proc.terminate()
    hub.finish()
    n1.finish()
    log = "\n".join(hub.lines[-40:])
    assert [e["event"] for e in hub.events("node.back") + hub.events("node.lost")] == [
        "node.back",
        "node.back",
        "node.lost",
    ], log
    # The master knows which worker block it mixes into each of its blocks (the worker's beat).
    offsets = [e["offset_blocks"] for e in hub.events("node.offset")]
    assert offsets and all(isinstance(o, int) for o in offsets), log
    [recording] = sorted((tmp_path / "recordings").rglob("*.w64"))
    audio, _ = sf.read(recording, dtype="float32")
    tail = audio[-24000:]  # the last half second: both nodes were playing
    rms = np.sqrt(np.mean(tail**2, axis=0))
    assert (rms > 1e-3).all(), f"RMS per channel of the master's recording {rms}"


def listen(capture: JackCapture, done: Callable[[np.ndarray], bool], *alive: Daemon) -> np.ndarray:
    """Record quarter seconds at the master's speakers until ``done(rms per speaker)`` (or 60 s)."""
    deadline = time.monotonic() + 60.0
    while True:
        capture.record()
        assert capture.wait_frames(12000), "the master's speaker ports stopped"
        rms = np.sqrt(np.mean(capture.recorded() ** 2, axis=1))
        for daemon in alive:
            assert daemon.proc.poll() is None, f"latentd exited:\n{daemon.finish()}"
        if done(rms) or time.monotonic() > deadline:
            return rms


def test_an_operators_section_change_lands_on_both_nodes_within_one_period(
    tmp_path: Path,
    net: NetnsNet,
    daemons: list[Daemon],
    model_factory: Callable[[SynthSpec], Path],
    jack_capture_factory: Callable[..., JackCapture],
) -> None:
    master = net.master_server(period=256, playback_channels=2, listen=net.master.address)
    worker = net.worker_server(0, playback_channels=3, latency=2)
    model = model_factory(SynthSpec(latent_size=4, ratio=512, sr=48000))
    tone = {"model": "tone", "source": TONE, "bias": TONE_BIAS}
    config = write_piece(
        tmp_path,
        models={"tone": model},
        voices={
            "here": tone | {"route": ["L"]},
            "there": tone | {"route": ["R"]},
            "quiet": tone | {"route": ["L"], "gain": 0.0},
        },
        sections=[
            {"name": "on", "voices": ["here", "there"], "duration_s": 3600.0},
            {"name": "off", "voices": ["quiet"], "duration_s": 3600.0},
        ],
        programme={"crossfade_s": 0.0},
        audio={"layout": "stereo", "frames_per_call": 4},
        extra_venue={
            "jack": {"client_name": "latentd", "server_name": master.name, "autoconnect": False},
            "logging": {"level": "info", "format": "json"},
            "recording": {"mode": "always"},
            "osc": {"enabled": True, "port": 9000},
            "nodes": {
                "hub": {"role": "master", "address": net.master.address, "voices": ["here", "quiet"]},
                "n1": {
                    "role": "worker",
                    "address": net.workers[0].address,
                    "voices": ["there"],
                    "jack_server": worker.name,
                },
            },
        },
    )
    hub = NsDaemon(net.master.netns, config, 60.0, "--node", "hub")
    daemons.append(hub)
    n1 = NsDaemon(net.workers[0].netns, config, 60.0, "--node", "n1")
    daemons.append(n1)
    capture = jack_capture_factory(master.name, 2, 48000)
    capture.connect(hub.wait_ports(master.name, "latentd", 2))
    both = listen(capture, lambda rms: (rms > 1e-3).all(), hub, n1)
    assert (both > 1e-3).all(), f"RMS at the master's speakers {both}"
    time.sleep(0.5)  # the master has measured the worker's offset
    sent = subprocess.run(
        [
            "ip",
            "netns",
            "exec",
            net.master.netns,
            "oscsend",
            "127.0.0.1",
            "9000",
            "/section/goto",
            "s",
            "off",
        ],
        capture_output=True,
        check=False,
    )
    assert sent.returncode == 0, sent.stderr
    quiet = listen(capture, lambda rms: (rms < 1e-6).all(), hub, n1)
    assert (quiet < 1e-6).all(), f"RMS after the section change {quiet}"
    time.sleep(0.5)
    hub.proc.terminate()
    n1.proc.terminate()
    hub.finish()
    n1.finish()
    [recording] = sorted((tmp_path / "recordings").rglob("*.w64"))
    audio, _ = sf.read(recording, dtype="float32")
    ends = [int(np.flatnonzero(np.abs(audio[:, c]) > 0)[-1]) for c in range(2)]
    skew = ends[1] - ends[0]
    print(f"section change: the worker's voice stopped {skew} frames after the master's")
    log = "\n".join(line for line in hub.lines + n1.lines if '"node.' in line or "section" in line)
    assert abs(skew) <= 256, f"the worker's voice stopped {skew} frames after the master's:\n{log}"
