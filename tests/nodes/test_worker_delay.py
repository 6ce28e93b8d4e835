"""A worker's voice in time with the master's own: the same clock-driven material on a voice of each
node lines up in the master's recording within one period.

Commands already land at the same mixed block on every node; what else could be out of step is the
material a source makes from its own clock (LFOs, steps, tables, latent files), which each node starts
at its own start. Here the amplitude of a voice on each node steps through the same sequence. The
master tells a worker heard again how its blocks map to the master's, and the worker sets its sources'
clocks to count the master's blocks (``FollowProgramme.clock_blocks``).
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import numpy as np
import pytest
import soundfile as sf

from latentd.modelkit.builder import SynthSpec
from tests.jackfixtures import JackCapture, jack_capture_factory
from tests.nodes.daemons import MARKS, NsDaemon, listen, two_nodes
from tests.nodes.netns import NetnsNet

__all__ = ["jack_capture_factory"]

pytestmark = MARKS

# Amplitude (latent dim 3) steps through 16 values, one per 0.2 s, the same on both voices (one seed);
# the other dims hold a steady tone.
STEPS = {"kind": "steps", "n_steps": 16, "step_s": 0.2}
VOICE = {"source": STEPS, "seed": 7, "scale": [0.0, 0.0, 0.0, 1.0], "bias": [0.0, -2.0, -4.0, 0.0]}
HOP = 32  # frames per envelope point
REFINE = 256  # frames around the envelopes' lag where the samples are compared


def _envelope(channel: np.ndarray, window: int = 2048) -> np.ndarray:
    """RMS over ``window`` frames, every ``HOP`` frames."""
    power = np.concatenate([[0.0], np.cumsum(channel.astype(np.float64) ** 2)])
    ends = power[window::HOP]
    return np.sqrt((ends - power[:-window:HOP][: len(ends)]) / window)


def lag_frames(recording: np.ndarray, max_s: float = 1.0) -> tuple[int, float]:
    """How many frames the right channel lags the left, and the largest difference of their samples
    there: the envelopes' cross-correlation (±``max_s``), then the shift within ±``REFINE`` frames of it
    at which the two channels' samples differ least."""
    left, right = (_envelope(recording[:, ch]) for ch in range(2))
    left, right = left - left.mean(), right - right.mean()
    most = int(max_s * 48000 / HOP)
    scores = [
        float(np.dot(left[most : len(left) - most], right[most + k : len(right) - most + k]))
        for k in range(-most, most + 1)
    ]
    coarse = (int(np.argmax(scores)) - most) * HOP
    edge = int(max_s * 48000) + REFINE
    x = recording[edge:-edge, 0]
    return min(
        (float(np.abs(x - recording[edge + k : len(recording) - edge + k, 1]).max()), k)
        for k in range(coarse - REFINE, coarse + REFINE + 1)
    )[::-1]


@pytest.mark.parametrize("period", [256, 1024])
def test_a_workers_clock_driven_voice_is_in_time_with_the_masters(
    tmp_path: Path,
    net: NetnsNet,
    model_factory: Callable[[SynthSpec], Path],
    jack_capture_factory: Callable[..., JackCapture],
    period: int,
) -> None:
    master = net.master_server(period=period, playback_channels=2, listen=net.master.address)
    worker = net.worker_server(0, playback_channels=3, latency=2)
    # 187.5 Hz: a whole cycle per 256 frames, so both voices' tones are in the same phase at every block
    # whatever each decoded before: their samples are the same where their latents are.
    model = model_factory(SynthSpec(latent_size=4, ratio=256, sr=48000, base_hz=187.5))
    config = two_nodes(
        tmp_path,
        net,
        model,
        master.name,
        worker.name,
        voices={"here": {**VOICE, "route": ["L"]}, "there": {**VOICE, "route": ["R"]}},
        master_voices=["here"],
        blocksize=period,
    )
    hub = NsDaemon(net.master.netns, config, 60.0, "--node", "hub")
    n1 = NsDaemon(net.workers[0].netns, config, 60.0, "--node", "n1")
    try:
        capture = jack_capture_factory(master.name, 2, 48000)
        capture.connect(hub.wait_ports(master.name, "latentd", 2))
        hub.wait_event("node.back")
        listen(capture, lambda rms: bool((rms > 1e-3).all()), hub, n1)
        hub.wait_event("node.follow")
        for _ in range(24):  # 6 s after the fade-in has begun: 4 s past its 2 s
            listen(capture, lambda rms: True, hub, n1)
    finally:
        for node in (hub, n1):
            node.proc.terminate()
        for node in (hub, n1):
            node.finish()
    [offset] = [e["offset_blocks"] for e in hub.events("node.offset")][-1:]
    # The path: when the master's engine makes block m, the worker's is this many blocks past the block
    # mixed into m (the master sends the programme at m; the worker applies it late by that much).
    [follow] = [e for e in n1.events("command.applied") if e.get("cmd") == "section.follow"]
    path = follow["block"] - follow["due_block"]
    [aligned] = n1.events("node.clocks_aligned")
    # The clock moves by the offset the master measured when it sent the programme (the offset it logs
    # may move by a block later, as the beat is read at period boundaries).
    assert aligned["clock_blocks"] == follow["clock_blocks"] and aligned["voices"] == ["there"], aligned
    assert abs(follow["clock_blocks"] + offset) <= 1, (follow, offset)
    [recording] = sorted((tmp_path / "recordings").rglob("*.w64"))
    audio, _ = sf.read(recording, dtype="float32")
    lag, difference = lag_frames(audio[-4 * 48000 :])
    print(
        f"period {period}: the worker's voice lags the master's by {lag} frames ({lag / 48:.1f} ms; "
        f"samples there differ by at most {difference:.1g}); "
        f"its clock moved {-offset} blocks ({-offset * period / 48:.0f} ms); "
        f"the path from its engine to the master's: {path} blocks ({path * period / 48:.0f} ms)"
    )
    assert abs(lag) <= period, (
        f"the worker's voice lags the master's by {lag} frames (offset {offset} blocks)"
    )
