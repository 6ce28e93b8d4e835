"""A private jackd ends with the process that started it, and a name in use says who holds it."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
import structlog

from latentd.engine.ring import BlockRing
from latentd.outputs.jack_out import JackOutput
from latentd.outputs.jackd import JackServer, JackServerError, jackd_pids
from tests.jackfixtures import unique_server_name

pytestmark = pytest.mark.jack
GUARD_S = 30.0

# Starts a private jackd, prints its pid, then waits to be killed. SIGHUP ends it as it ends a program in a
# closed terminal, even when the tests run under nohup (which hands down SIGHUP ignored).
STARTER = """
import signal, sys, time
from latentd.outputs.jackd import JackServer
signal.signal(signal.SIGHUP, signal.SIG_DFL)
server = JackServer(sys.argv[1], playback_channels=2)
server.start()
print(server.pid, flush=True)
time.sleep(600)
"""


def _gone(pid: int) -> bool:
    # Ended and reaped: jackd refuses a name whose previous server still exists, even as a zombie (an
    # orphan is reaped by init, or by systemd for a service).
    return not Path(f"/proc/{pid}").exists()


def _wait_gone(pid: int) -> bool:
    deadline = time.monotonic() + GUARD_S
    while not _gone(pid):
        if time.monotonic() > deadline:
            return False
        time.sleep(0.05)
    return True


@pytest.mark.parametrize("signum", [signal.SIGKILL, signal.SIGHUP], ids=["SIGKILL", "SIGHUP"])
def test_jackd_ends_with_its_starter_and_the_name_is_free_again(signum: int) -> None:
    name = unique_server_name()
    with subprocess.Popen(
        [sys.executable, "-c", STARTER, name], stdout=subprocess.PIPE, text=True
    ) as starter:
        try:
            assert starter.stdout is not None
            jackd = int(starter.stdout.readline())
            assert jackd_pids(name) == [jackd]
            starter.send_signal(signum)
            starter.wait(GUARD_S)
            assert _wait_gone(jackd), f"jackd {jackd} outlived the process that started it"
        finally:
            if starter.poll() is None:
                starter.kill()
    with JackServer(name, playback_channels=2) as again:
        assert again.running


def test_a_name_in_use_names_the_jackd_that_holds_it(jack_server_factory) -> None:
    server = jack_server_factory(playback_channels=2)
    with pytest.raises(JackServerError) as caught:
        JackServer(server.name).start()
    text = str(caught.value)
    assert f"a JACK server named {server.name!r} is already running" in text
    assert f"jackd pid {server.pid}, started by pid {os.getpid()}" in text and f"kill {server.pid}" in text


def test_jackd_pids_finds_a_server_by_its_name_only(jack_server_factory) -> None:
    server = jack_server_factory(playback_channels=2)
    assert jackd_pids(server.name) == [server.pid]
    assert jackd_pids(server.name + "-other") == [] and jackd_pids("dummy") == []


def test_a_client_named_like_its_server_is_refused_before_it_can_wedge_it() -> None:
    ring = BlockRing(4, 256, 2)
    common = {"port_names": ["a", "b"], "connect_to": [], "samplerate": 48000, "blocksize": 256}
    log = structlog.get_logger("test")
    for client, server in (("venue", "venue"), ("default", None)):
        with pytest.raises(ValueError, match="must differ from the server's name"):
            JackOutput(ring, client_name=client, server_name=server, log=log, **common)  # type: ignore[arg-type]
    JackOutput(ring, client_name="latentd", server_name="venue", log=log, **common)  # type: ignore[arg-type]
