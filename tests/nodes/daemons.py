"""``latentd run`` as nodes of one venue, each in its node's network namespace, for the two-node tests.

:class:`NsDaemon` reads the daemon's JSON log lines as they come (a test waits for an event while the
daemon runs); :func:`listen` records the master's speakers until a condition holds; :func:`two_nodes`
writes the venue: a master ``hub`` and a worker ``n1`` on stereo speakers, a steady tone per voice.
"""

from __future__ import annotations

import os
import subprocess
import sys
import threading
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from tests.jackfixtures import JackCapture
from tests.nodes.netns import NetnsNet, unavailable_reason
from tests.pieces import write_piece
from tests.runtime.test_supervisor import TONE, TONE_BIAS, Daemon

WAIT_S = 60.0

_reason = unavailable_reason()
# The marks of a test module that runs latentd on two nodes.
MARKS = [pytest.mark.jack, pytest.mark.slow, pytest.mark.skipif(_reason is not None, reason=_reason or "")]


class NsDaemon(Daemon):
    """``latentd run`` inside a network namespace (where its node's address is), its log read live."""

    def __init__(self, netns: str, config: Path, duration_s: float, *options: str) -> None:
        run = ["run", "--config", str(config), "--duration", str(duration_s), *options]
        self.proc = subprocess.Popen(
            ["ip", "netns", "exec", netns, sys.executable, "-m", "latentd", *run],
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            text=True,
            env={**os.environ, "PYTHONUNBUFFERED": "1"},
        )
        self.lines: list[str] = []
        self._reader = threading.Thread(target=self._read, name="daemon-log", daemon=True)
        self._reader.start()

    def _read(self) -> None:
        assert self.proc.stdout is not None
        for line in self.proc.stdout:
            self.lines.append(line.rstrip("\n"))

    def wait_event(self, name: str, count: int = 1, timeout_s: float = WAIT_S) -> list[dict[str, Any]]:
        """The log events ``name`` once there are ``count`` of them (fails after ``timeout_s``)."""
        deadline = time.monotonic() + timeout_s
        while len(found := self.events(name)) < count:
            tail = "\n".join(self.lines[-40:])
            assert time.monotonic() < deadline, f"no {name!r} in {timeout_s} s:\n{tail}"
            assert self.proc.poll() is None, f"latentd exited:\n{tail}"
            time.sleep(0.05)
        return found

    def finish(self, timeout_s: float = 60.0) -> str:
        """Wait for the process to end (killed after ``timeout_s``); its whole output."""
        try:
            self.proc.wait(timeout_s)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait()
        self._reader.join(5.0)
        if self.proc.stdout is not None and not self._reader.is_alive():
            self.proc.stdout.close()
        return "\n".join(self.lines)


def listen(capture: JackCapture, done: Callable[[np.ndarray], bool], *alive: Daemon) -> np.ndarray:
    """Record quarter seconds at the master's speakers until ``done(rms per speaker)`` (or 60 s)."""
    deadline = time.monotonic() + WAIT_S
    while True:
        capture.record()
        assert capture.wait_frames(12000), "the master's speaker ports stopped"
        rms = np.sqrt(np.mean(capture.recorded() ** 2, axis=1))
        for daemon in alive:
            assert daemon.proc.poll() is None, f"latentd exited:\n{daemon.finish()}"
        if done(rms) or time.monotonic() > deadline:
            return rms


def two_nodes(
    tmp_path: Path,
    net: NetnsNet,
    model: Path,
    master_server: str,
    worker_server: str,
    *,
    voices: dict[str, dict[str, Any]],
    master_voices: list[str],
    sections: list[dict[str, Any]] | None = None,
    blocksize: int = 256,
    **venue: Any,
) -> Path:
    """The venue of the two-node tests: each voice a steady tone with its own keys (``route``, ``gain``,
    ``source`` ...); the master ``hub`` plays ``master_voices``, the worker ``n1`` the others; ``venue``
    adds tables (``jack`` adds keys to the master's); ``blocksize`` is the JACK period's."""
    tone = {"model": "tone", "source": TONE, "bias": TONE_BIAS}
    return write_piece(
        tmp_path,
        models={"tone": model},
        voices={name: tone | keys for name, keys in voices.items()},
        sections=sections,
        programme={"crossfade_s": 0.0},
        audio={"layout": "stereo", "frames_per_call": 4, "blocksize": blocksize},
        extra_venue={
            "jack": {
                "client_name": "latentd",
                "server_name": master_server,
                "autoconnect": False,
                **venue.pop("jack", {}),
            },
            "logging": {"level": "info", "format": "json"},
            "recording": {"mode": "always"},
            "nodes": {
                "hub": {"role": "master", "address": net.master.address, "voices": master_voices},
                "n1": {
                    "role": "worker",
                    "address": net.workers[0].address,
                    "voices": [v for v in voices if v not in master_voices],
                    "jack_server": worker_server,
                },
            },
            **venue,
        },
    )


def last_sound(recording: np.ndarray) -> list[int]:
    """The frame of each channel's last non-zero sample."""
    return [int(np.flatnonzero(np.abs(recording[:, ch]) > 0)[-1]) for ch in range(recording.shape[1])]
