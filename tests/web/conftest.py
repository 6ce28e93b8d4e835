"""One live ``latentd run`` with the status page, on its own private dummy jackd, shared by the web tests."""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import pytest

from latentd.modelkit.builder import SynthSpec
from tests.daemonlog import log_events
from tests.jackfixtures import unique_server_name
from tests.pieces import smooth_noise, steady_tone, write_piece

SR = 48000
TOKEN = "s3cret-token"
START_TIMEOUT_S = 90.0  # generous: only a failure waits this long


@dataclass
class LiveDaemon:
    """A running daemon: its process, log file, page address and a client for it."""

    process: subprocess.Popen[bytes]
    log: Path
    url: str
    client: httpx.Client

    def events(self, name: str) -> list[dict]:
        """The daemon's JSON log lines with this event name."""
        return log_events(self.log, name)

    def status(self) -> dict:
        """``/api/status`` once the engine has fed the page."""

        def fed() -> dict | None:
            st = self.client.get("/api/status").json()
            return st if st.get("speakers") and "schedule" in st else None

        return self.wait_for(fed, "a status fed by the engine", START_TIMEOUT_S)

    def wait_for(self, predicate: Callable[[], Any], what: str, timeout_s: float = 20.0) -> Any:
        """``predicate()``'s first true value, polled; fails naming ``what`` (only a failure waits long)."""
        deadline = time.monotonic() + timeout_s
        while time.monotonic() < deadline:
            value = predicate()
            if value:
                return value
            time.sleep(0.1)
        raise AssertionError(f"{what} not seen in {timeout_s} s:\n{self.tail()}")

    def tail(self) -> str:
        return self.log.read_text(errors="replace")[-3000:]


def free_tcp_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@pytest.fixture(scope="package")
def live(model_factory, tmp_path_factory: pytest.TempPathFactory) -> Iterator[LiveDaemon]:
    """``latentd run`` of a two-section piece (a tone on FL, noise on FR) with ``[web]`` on a free port;
    BR's playback port is missing."""
    root = tmp_path_factory.mktemp("web-live")
    port = free_tcp_port()
    config = write_piece(
        root,
        models={"tone": model_factory(SynthSpec(latent_size=4, ratio=1024, sr=SR))},
        voices={
            "v": steady_tone("tone"),
            "w": smooth_noise("tone"),
        },
        sections=[
            {"name": "first", "voices": ["v", "w"], "duration_s": 3600.0},
            {"name": "second", "voices": ["v", "w"], "duration_s": 3600.0},
        ],
        programme={"crossfade_s": 0.05},
        output={"dc_block_hz": 5.0, "ceiling_db": -1.0},
        extra_venue={
            "jack": {
                "client_name": "latweb",
                "server_name": unique_server_name(),
                "start_server": True,
                "driver": "dummy",
                "period": 256,
                # BR's port is missing: a warning of the JACK process, which the page shows too.
                "playback_ports": [
                    "system:playback_1",
                    "system:playback_2",
                    "system:playback_3",
                    "nowhere:in",
                ],
            },
            "logging": {"level": "info", "format": "json"},
            "recording": {"folder": "recordings"},
            "schedule": {"state_file": "state/state.json"},
            "web": {"enabled": True, "port": port, "token": TOKEN},
        },
    )
    log = root / "daemon.log"
    with log.open("wb") as out:  # a file, not a pipe: a pipe nobody reads would block the daemon
        process = subprocess.Popen(
            [sys.executable, "-m", "latentd", "run", "--config", str(config), "--duration", "300"],
            stdout=out,
            stderr=subprocess.STDOUT,
            env={**os.environ, "PYTHONUNBUFFERED": "1"},
        )
    url = f"http://127.0.0.1:{port}"
    client = httpx.Client(base_url=url, timeout=10.0)
    daemon = LiveDaemon(process, log, url, client)
    try:
        deadline = time.monotonic() + START_TIMEOUT_S
        while not daemon.events("web.ready"):
            assert process.poll() is None, f"latentd exited:\n{daemon.tail()}"
            assert time.monotonic() < deadline, f"no web.ready in {START_TIMEOUT_S} s:\n{daemon.tail()}"
            time.sleep(0.1)
        daemon.status()
        yield daemon
        process.send_signal(signal.SIGTERM)
        assert process.wait(60) == 0, daemon.tail()
    finally:
        client.close()
        if process.poll() is None:
            process.kill()
            process.wait()
