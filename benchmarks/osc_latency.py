"""OSC-to-audio latency: from sending ``/voice/<v>/gain`` to the change appearing on the JACK output.

It starts a private dummy jackd (the venue's default period), runs ``latentd run`` as a subprocess with
OSC on a free loopback port and the venue's default ``jack.ring_blocks`` and ``audio.frames_per_call``,
playing one steady tone on speaker 0. A capture client in this process stores, per JACK callback, the
time at callback entry (``time.perf_counter_ns``) and the RMS of the daemon's output. The sender
alternates gain 0 and 1, noting ``perf_counter_ns`` at each send. Latency is the first callback at which
the level crosses the midpoint between the levels before and after the change, minus the send time. The
engine glides every change over 50 ms, so the figure includes about 25 ms of glide to the midpoint.
Resolution: one JACK period. Results: ``benchmarks/results/osc_latency.json``.
"""

from __future__ import annotations

import argparse
import math
import os
import random
import signal
import socket
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import numpy as np

from benchmarks.common import CACHE_DIR, RESULTS_DIR, free_udp_port, read_events, table, write_result
from latentd.config import AudioConfig, JackConfig
from latentd.control.osc_parse import encode_message
from latentd.engine.voice import GLIDE_S
from latentd.modelkit.builder import SynthSpec, cached_model
from latentd.outputs.jack_out import open_client
from latentd.outputs.jackd import JackServer
from tests.jackfixtures import JackCapture
from tests.pieces import write_piece

SAMPLERATE = 48000
TONE_SPEC = SynthSpec(latent_size=4, ratio=1024, sr=SAMPLERATE)
TONE_BIAS = [0.0, -2.0, -4.0, 1.0]  # a steady tone: mid pitch, dull, no noise, loud
VOICE = "tone"
CLIENT = "latentd-osclat"
WAIT_S = 0.5  # between sends: the 50 ms glide and the ring have long settled
SETTLE_S = 0.1  # the levels in this window before a send (and before the next) are the steady ones
GLIDE_MS = GLIDE_S * 1e3


def default_latency_settings() -> dict[str, int]:
    """The venue defaults that set the latency: JACK period, blocksize, ring blocks, frames per call."""
    audio, jack = AudioConfig.model_fields, JackConfig.model_fields
    return {
        "period": int(jack["period"].default),
        "blocksize": int(audio["blocksize"].default),
        "ring_blocks": int(jack["ring_blocks"].default),
        "frames_per_call": int(audio["frames_per_call"].default),
    }


class LevelCapture(JackCapture):
    """A capture client that stores, per callback, the entry time and the RMS of its first input.

    The arrays are preallocated; the callback writes one slot each and stops when they are full.
    """

    def __init__(self, server_name: str, capacity_callbacks: int, name: str) -> None:
        """Open, register ``in_1`` and activate (recording off until :meth:`arm`)."""
        self.times_ns = np.zeros(capacity_callbacks, dtype=np.int64)
        self.levels = np.zeros(capacity_callbacks, dtype=np.float64)
        self.count = 0
        self._armed = False
        super().__init__(server_name, 1, 1, name=name)

    def _process(self, frames: int) -> None:
        entered = time.perf_counter_ns()
        i = self.count
        if not self._armed or i >= self.times_ns.shape[0]:
            return
        x = self.ports[0].get_array()
        self.times_ns[i] = entered
        self.levels[i] = math.sqrt(float(np.dot(x, x)) / max(1, frames))
        self.count = i + 1

    def arm(self) -> None:
        """Start storing levels."""
        self._armed = True

    @property
    def full(self) -> bool:
        """True when no slot is left."""
        return self.count >= self.times_ns.shape[0]


def write_venue(work: Path, model: Path, server_name: str, osc_port: int) -> Path:
    """A venue config around a one-voice piece: a steady tone on speaker 0, OSC on ``osc_port``.

    Only the settings that do not set latency are given; ring and decode sizes stay at their defaults.
    """
    frames_per_call = default_latency_settings()["frames_per_call"]
    return write_piece(
        work,
        models={"tone": model},
        voices={
            VOICE: {
                "model": "tone",
                "source": {"kind": "constant", "values": 0.0},
                "bias": TONE_BIAS,
                "route": ["FL"],
            }
        },
        # write_piece sets a small frames_per_call for fast tests: put the venue default back.
        audio={"layout": "quad", "frames_per_call": frames_per_call},
        output={"dc_block_hz": 5.0, "ceiling_db": 0.0},
        extra_venue={
            "jack": {"client_name": CLIENT, "server_name": server_name, "autoconnect": False},
            "logging": {"level": "info", "format": "json"},
            "osc": {"enabled": True, "port": osc_port},
        },
    )


def _wait_ready(daemon: subprocess.Popen[bytes], log_path: Path, server: str, timeout_s: float) -> str:
    """Wait for the daemon's ``ready`` line and its first port; return that port's name."""
    probe = open_client(f"osclat-probe-{os.getpid()}", server)
    try:
        deadline = time.monotonic() + timeout_s
        while time.monotonic() < deadline:
            if daemon.poll() is not None:
                break
            ports = [p.name for p in probe.get_ports(f"{CLIENT}:.*", is_output=True, is_audio=True)]
            if ports and any(e.get("event") == "ready" for e in read_events(log_path)):
                return ports[0]
            time.sleep(0.1)
    finally:
        probe.close()
    tail = log_path.read_text(errors="replace")[-3000:]
    raise RuntimeError(f"latentd run did not become ready in {timeout_s} s (exit {daemon.poll()}):\n{tail}")


def crossings(
    times_ns: np.ndarray, levels: np.ndarray, sends: list[tuple[int, float]]
) -> list[dict[str, Any]]:
    """Per send: the time from the send to the first callback whose level crossed the midpoint.

    Args:
        times_ns: Callback entry times, ascending.
        levels: The RMS level of each callback.
        sends: ``(perf_counter_ns at send, gain sent)`` in order.

    Returns:
        One dict per send with ``gain``, ``latency_ms`` (None if no crossing was seen), ``before`` and
        ``after`` (steady levels) and ``midpoint``.
    """
    settle_ns = int(SETTLE_S * 1e9)
    out = []
    for k, (sent_ns, gain) in enumerate(sends):
        end_ns = sends[k + 1][0] if k + 1 < len(sends) else int(times_ns[-1]) + 1
        before = levels[(times_ns >= sent_ns - settle_ns) & (times_ns < sent_ns)]
        after = levels[(times_ns >= end_ns - settle_ns) & (times_ns < end_ns)]
        row: dict[str, Any] = {"gain": gain, "latency_ms": None}
        if before.size and after.size:
            lo, hi = float(np.median(before)), float(np.median(after))
            mid = 0.5 * (lo + hi)
            row.update(before=lo, after=hi, midpoint=mid)
            window = (times_ns >= sent_ns) & (times_ns < end_ns)
            crossed = levels[window] > mid if hi > lo else levels[window] < mid
            hits = np.flatnonzero(crossed)
            if hits.size:
                row["latency_ms"] = (int(times_ns[window][hits[0]]) - sent_ns) / 1e6
        out.append(row)
    return out


def summary(latencies_ms: list[float]) -> dict[str, float]:
    """Count, median, p99, min and max of ``latencies_ms`` (NaN when empty)."""
    if not latencies_ms:
        return {"n": 0, "median_ms": math.nan, "p99_ms": math.nan, "min_ms": math.nan, "max_ms": math.nan}
    a = np.asarray(latencies_ms)
    return {
        "n": int(a.size),
        "median_ms": float(np.median(a)),
        "p99_ms": float(np.percentile(a, 99)),
        "min_ms": float(a.min()),
        "max_ms": float(a.max()),
    }


def measure(repeats: int, work: Path, seed: int = 1) -> dict[str, Any]:
    """Run the daemon, send ``repeats`` gain changes (0, 1, 0, ...), and return the figures."""
    settings = default_latency_settings()
    model = cached_model(TONE_SPEC, CACHE_DIR)
    osc_port = free_udp_port()
    rng = random.Random(seed)
    period = settings["period"]
    name = f"latentd-osclat-{os.getpid()}"
    with JackServer(name, samplerate=SAMPLERATE, period=period, playback_channels=4) as server:
        config = write_venue(work, model, server.name, osc_port)
        log_path = work / "daemon.log"
        with log_path.open("wb") as log:
            daemon = subprocess.Popen(
                [sys.executable, "-m", "latentd", "run", "--config", str(config), "--duration", "600"],
                stdout=log,
                stderr=subprocess.STDOUT,
                env={**os.environ, "PYTHONUNBUFFERED": "1"},
            )
            capture: LevelCapture | None = None
            sends: list[tuple[int, float]] = []
            try:
                port = _wait_ready(daemon, log_path, server.name, timeout_s=120.0)
                seconds = (repeats + 2) * (WAIT_S + period / SAMPLERATE) + 2.0
                capture = LevelCapture(
                    server.name, int(seconds * SAMPLERATE / period), f"osclat-{os.getpid()}"
                )
                capture.connect([port])
                with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as sock:
                    target = ("127.0.0.1", osc_port)
                    sock.sendto(encode_message(f"/voice/{VOICE}/gain", [1.0]), target)
                    time.sleep(1.0)  # past the start-up fade-in
                    capture.arm()
                    time.sleep(WAIT_S)
                    for k in range(repeats):
                        gain = 0.0 if k % 2 == 0 else 1.0
                        data = encode_message(f"/voice/{VOICE}/gain", [gain])
                        sent = time.perf_counter_ns()
                        sock.sendto(data, target)
                        sends.append((sent, gain))
                        # A random extra fraction of a period, so sends fall at every phase of the cycle.
                        time.sleep(WAIT_S + rng.random() * period / SAMPLERATE)
                if capture.full:
                    raise RuntimeError("the capture buffer filled before the last send settled")
                count = capture.count
                times_ns, levels = capture.times_ns[:count].copy(), capture.levels[:count].copy()
            finally:
                if capture is not None:
                    capture.close()
                if daemon.poll() is None:
                    daemon.send_signal(signal.SIGTERM)
                    try:
                        daemon.wait(30)
                    except subprocess.TimeoutExpired:
                        daemon.kill()
                        daemon.wait()
    events = read_events(log_path)
    stopping: dict[str, Any] = next((e for e in reversed(events) if e.get("event") == "stopping"), {})
    rows = crossings(times_ns, levels, sends)
    missed = sum(r["latency_ms"] is None for r in rows)
    contrast = [r for r in rows if "after" in r and r["gain"] == 1.0]
    if contrast and min(r["after"] for r in contrast) < 10 * max(r["before"] for r in contrast) + 1e-6:
        raise RuntimeError(
            f"gain 1 is not clearly louder than gain 0 on the output: the tone did not play (see {log_path})"
        )
    up = [r["latency_ms"] for r in rows if r["gain"] == 1.0 and r["latency_ms"] is not None]
    down = [r["latency_ms"] for r in rows if r["gain"] == 0.0 and r["latency_ms"] is not None]
    return {
        **settings,
        "samplerate": SAMPLERATE,
        "ring_ms": settings["ring_blocks"] * settings["blocksize"] / SAMPLERATE * 1e3,
        "period_ms": period / SAMPLERATE * 1e3,
        "glide_ms": GLIDE_MS,
        "measures": "time from the send to the first JACK callback past the level midpoint (half the glide)",
        "repeats": repeats,
        "missed": missed,
        "all": summary(up + down),
        "up": summary(up),
        "down": summary(down),
        "xruns": stopping.get("xruns"),
        "underruns": stopping.get("underruns"),
        "sends": rows,
    }


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--repeats", type=int, default=40, help="gain changes to send (default 40)")
    parser.add_argument("--quick", action="store_true", help="6 gain changes: a check that it runs")
    parser.add_argument("--results", type=Path, default=RESULTS_DIR, help="folder for osc_latency.json")
    args = parser.parse_args(argv)
    repeats = 6 if args.quick else args.repeats
    if repeats < 2:
        parser.error(f"--repeats must be at least 2 (one change each way), got {repeats}")
    print(f"latentd OSC-to-audio latency: {repeats} gain changes; load average {os.getloadavg()[0]:.2f}")
    with tempfile.TemporaryDirectory(prefix="latentd-osclat-") as tmp:
        result = measure(repeats, Path(tmp))
    path = write_result("osc_latency", result, args.results)
    print(
        f"period {result['period']} frames ({result['period_ms']:.1f} ms), blocksize {result['blocksize']}, "
        f"ring {result['ring_blocks']} blocks ({result['ring_ms']:.1f} ms), "
        f"frames_per_call {result['frames_per_call']}; glide {GLIDE_MS:.0f} ms (midpoint = half of it)"
    )
    rows = [
        [label, s["n"], s["median_ms"], s["p99_ms"], s["min_ms"], s["max_ms"]]
        for label, s in (("0 → 1", result["up"]), ("1 → 0", result["down"]), ("all", result["all"]))
    ]
    print(table(["change", "n", "median ms", "p99 ms", "min ms", "max ms"], rows))
    print(f"missed: {result['missed']}, xruns: {result['xruns']}, underruns: {result['underruns']}")
    print(f"results: {path}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
