"""A flood of OSC datagrams at a playing ``latentd run``: it keeps answering and the audio keeps flowing."""

from __future__ import annotations

import json
import os
import signal
import socket
import struct
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest

from latentd.control.osc_parse import encode_message, parse_packet
from latentd.modelkit.builder import SynthSpec
from latentd.outputs.jack_out import open_client
from tests.daemonlog import log_events
from tests.jackfixtures import jack_capture_factory, jack_server_factory
from tests.pieces import steady_tone, write_piece

__all__ = ["jack_capture_factory", "jack_server_factory"]

pytestmark = pytest.mark.jack
SR = 48000
CLIENT = "latflood"
FLOOD_ROUNDS = 500  # × 10 datagrams per round = 5000 datagrams
TIMEOUT_S = 20.0  # generous: only a failure waits this long


def _free_udp_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def flood_round(k: int) -> list[bytes]:
    """Ten datagrams: valid commands (gain stays audible) and every kind of bad packet."""
    gain = encode_message("/voice/v/gain", [0.5 + 0.5 * (k % 2)])
    return [
        gain,
        encode_message("/voice/v/pan", [float(k % 360)]),
        encode_message("/master/gain", [1.0]),
        encode_message("/voice/v/gain", [9.0]),  # out of range
        encode_message("/voice/nobody/gain", [0.5]),  # unknown voice
        encode_message("/no/such/address", [1]),  # unknown address
        encode_message("/voice/v/gain", ["loud"]),  # wrong type
        gain[:-2],  # truncated float
        bytes((k * 7 + i) % 256 for i in range(37)),  # noise
        b"/voice/v/gain\0\0\0,f\0\0" + struct.pack(">f", float("nan")),  # not a number
    ]


def query_status(sock: socket.socket, target: tuple[str, int]) -> dict:
    """Ask ``/status`` until it is answered (the flood may have used up the sender's rate for a while)."""
    deadline = time.monotonic() + TIMEOUT_S
    sock.settimeout(0.5)
    while time.monotonic() < deadline:
        sock.sendto(encode_message("/status"), target)
        try:
            while True:
                data, _ = sock.recvfrom(65536)
                messages = parse_packet(data)
                if messages and messages[0].address == "/status":
                    return json.loads(messages[0].args[0])
        except TimeoutError:
            continue
    raise AssertionError(f"no /status reply from {target} in {TIMEOUT_S} s")


def wait_ports(server: str, timeout_s: float = 60.0) -> list[str]:
    probe = open_client(f"floodprobe-{os.getpid()}", server)
    try:
        deadline = time.monotonic() + timeout_s
        while time.monotonic() < deadline:
            ports = [p.name for p in probe.get_ports(f"{CLIENT}:.*", is_output=True, is_audio=True)]
            if len(ports) == 4:
                return ports
            time.sleep(0.1)
    finally:
        probe.close()
    raise AssertionError(f"latentd did not register its ports on {server} in {timeout_s} s")


def level(x: np.ndarray) -> float:
    """RMS of the summed power of all speakers: panning moves the tone but keeps this."""
    return float(np.sqrt(np.mean(np.sum(np.square(x, dtype=np.float64), axis=0))))


def events(log: Path, name: str) -> list[dict]:
    return log_events(log, name)


def test_flood_neither_stops_the_daemon_nor_starves_the_audio(
    tmp_path, model_factory, jack_server_factory, jack_capture_factory
):
    server = jack_server_factory(playback_channels=4)
    osc_port = _free_udp_port()
    config = write_piece(
        tmp_path,
        models={"tone": model_factory(SynthSpec(latent_size=4, ratio=1024, sr=SR))},
        voices={"v": steady_tone("tone")},
        output={"dc_block_hz": 5.0, "ceiling_db": -1.0},
        extra_venue={
            "jack": {"client_name": CLIENT, "server_name": server.name, "autoconnect": False},
            "logging": {"level": "info", "format": "json"},
            # Limits far above the flood's rate: every datagram goes through parsing and checking.
            "osc": {"enabled": True, "port": osc_port, "rate_limit_per_s": 100000.0, "rate_burst": 100000},
        },
    )
    log = tmp_path / "daemon.log"
    # A file, not a pipe: refusals are logged, and a pipe nobody reads would block the daemon.
    with log.open("wb") as out:
        daemon = subprocess.Popen(
            [sys.executable, "-m", "latentd", "run", "--config", str(config), "--duration", "120"],
            stdout=out,
            stderr=subprocess.STDOUT,
            env={**os.environ, "PYTHONUNBUFFERED": "1"},
        )
    target = ("127.0.0.1", osc_port)
    try:
        ports = wait_ports(server.name)
        capture = jack_capture_factory(server.name, 4, SR // 2, name=f"floodcap-{os.getpid()}")
        capture.connect(ports)
        with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as sock:
            sock.bind(("127.0.0.1", 0))
            assert query_status(sock, target)["section"] == "all"
            capture.record()
            assert capture.wait_frames(SR // 2, timeout_s=TIMEOUT_S)
            before = level(capture.recorded())
            sent = 0
            for k in range(FLOOD_ROUNDS):
                for datagram in flood_round(k):
                    sock.sendto(datagram, target)
                    sent += 1
                # A breath per round keeps the kernel's receive buffer from dropping most of the flood.
                time.sleep(0.001)
            assert daemon.poll() is None, f"latentd exited during the flood:\n{log.read_text()[-3000:]}"
            status = query_status(sock, target)
            assert status["section"] == "all" and "v" in json.dumps(status["voices"])
            sock.sendto(encode_message("/voice/v/gain", [1.0]), target)
            time.sleep(0.5)  # the ring's ~0.1 s and the glide: then the output carries the last gain
            capture.record()
            assert capture.wait_frames(SR // 2, timeout_s=TIMEOUT_S)
            after = level(capture.recorded())
        with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as sock:
            # Refused by the model inside the engine process, not at the door: the sender hears it.
            sock.bind(("127.0.0.1", 0))
            sock.settimeout(TIMEOUT_S)
            sock.sendto(encode_message("/voice/v/attr/temperature", [-1.0]), target)
            (error,) = parse_packet(sock.recvfrom(65536)[0])
            assert error.address == "/error" and error.args[0] == "/voice/v/attr/temperature", error
            assert query_status(sock, target)["refused_commands"] >= 1 + FLOOD_ROUNDS
        assert daemon.poll() is None, f"latentd exited after the flood:\n{log.read_text()[-3000:]}"
        daemon.send_signal(signal.SIGTERM)
        assert daemon.wait(TIMEOUT_S * 3) == 0, log.read_text()[-3000:]
    finally:
        if daemon.poll() is None:
            daemon.kill()
            daemon.wait()
    assert before > 0.05, f"the tone should play before the flood (rms {before:.4f})"
    assert after > 0.5 * before, f"the tone faded after the flood: rms {after:.4f}, before {before:.4f}"
    stopping = events(log, "stopping")
    assert stopping, log.read_text()[-3000:]
    underruns = [e["underruns"] for e in events(log, "status") + stopping]
    assert all(u == 0 for u in underruns), f"the engine fell behind during the flood: underruns {underruns}"
    # The two processes share the log: every line is whole, none merged with another.
    lines = [line for line in log.read_text(errors="replace").splitlines() if line.strip()]
    merged = [line for line in lines if not line.startswith("{") or not line.endswith("}")]
    assert not merged, merged[:5]
    assert {e["event"] for e in map(json.loads, lines)} >= {"stopping", "osc.stopped", "command.refused"}
    (stopped,) = events(log, "osc.stopped")
    assert stopped["internal_errors"] == 0
    # Most of the flood reached the handler, and each kind of datagram met its fate.
    assert stopped["received"] >= sent // 2, (stopped, sent)
    assert stopped["accepted"] >= FLOOD_ROUNDS and stopped["refused"] >= FLOOD_ROUNDS
