"""``latentd run`` as a process on a real private jackd, heard through an independent JACK client."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import pytest

from latentd.modelkit.builder import SynthSpec
from latentd.outputs.jack_out import open_client
from latentd.outputs.jackd import JackServer
from tests.daemonlog import log_events
from tests.jackfixtures import JackCapture, jack_capture_factory, jack_server_factory, unique_server_name
from tests.pieces import write_piece

__all__ = ["jack_capture_factory", "jack_server_factory"]

pytestmark = pytest.mark.jack
SR = 48000
TONE = {"kind": "constant", "values": 0.0}
TONE_BIAS = [0.0, -2.0, -4.0, 1.0]  # a steady tone: mid pitch, dull, no noise, loud


class Daemon:
    """A ``latentd run`` subprocess with its JSON log lines collected."""

    def __init__(self, config: Path, duration_s: float, *options: str) -> None:
        self.proc = subprocess.Popen(
            [
                sys.executable,
                "-m",
                "latentd",
                "run",
                "--config",
                str(config),
                "--duration",
                str(duration_s),
                *options,
            ],
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            text=True,
            env={**os.environ, "PYTHONUNBUFFERED": "1"},
        )
        self.lines: list[str] = []

    def wait_ports(self, server: str, client: str, n: int, timeout_s: float = 60.0) -> list[str]:
        probe = open_client(f"probe-{os.getpid()}", server)
        try:
            deadline = time.monotonic() + timeout_s
            while time.monotonic() < deadline:
                ports = [p.name for p in probe.get_ports(f"{client}:.*", is_output=True, is_audio=True)]
                if len(ports) == n:
                    return ports
                assert self.proc.poll() is None, f"latentd exited early:\n{self.finish()}"
                time.sleep(0.1)
        finally:
            probe.close()
        raise AssertionError(
            f"latentd did not register {n} ports on {server} in {timeout_s} s:\n{self.finish()}"
        )

    def finish(self, timeout_s: float = 60.0) -> str:
        try:
            out, _ = self.proc.communicate(timeout=timeout_s)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            out, _ = self.proc.communicate()
        self.lines = out.splitlines()
        return out

    def events(self, name: str) -> list[dict]:
        return log_events(self.lines, name)


@pytest.fixture
def daemons() -> Iterator[list[Daemon]]:
    started: list[Daemon] = []
    yield started
    for d in started:
        if d.proc.poll() is None:
            d.proc.kill()
            d.proc.wait()


def venue(
    tmp_path: Path,
    model: Path,
    server: str,
    client: str,
    layout: str,
    voices: dict,
    process: bool = True,
    **jack,
) -> Path:
    return write_piece(
        tmp_path,
        models={"tone": model},
        voices=voices,
        audio={"layout": layout, "frames_per_call": 4, "engine_process": process},
        output={"dc_block_hz": 5.0, "ceiling_db": -1.0},
        extra_venue={
            "jack": {"client_name": client, "server_name": server, "autoconnect": False, **jack},
            "logging": {"level": "info", "format": "json"},
        },
    )


@pytest.fixture
def tone_model(model_factory) -> Path:
    return model_factory(SynthSpec(latent_size=4, ratio=1024, sr=SR))


def capture(server: JackServer, ports: list[str], seconds: float) -> JackCapture:
    cap = JackCapture(server.name, len(ports), int(seconds * SR), name=f"cap-{os.getpid()}")
    cap.connect(ports)
    return cap


@pytest.mark.parametrize(
    ("layout", "names"),
    [
        ("quad", ["FL", "FR", "BL", "BR"]),
        ("7.0", ["L", "R", "C", "Lss", "Rss", "Lsr", "Rsr"]),
        ("octo", [str(i) for i in range(1, 9)]),
    ],
)
def test_ports_are_named_after_the_speakers(
    tmp_path, tone_model, jack_server_factory, daemons, layout, names
):
    server = jack_server_factory(playback_channels=8)
    voices = {"v": {"model": "tone", "source": TONE, "bias": TONE_BIAS}}
    d = Daemon(venue(tmp_path, tone_model, server.name, "lat", layout, voices), 4)
    daemons.append(d)
    ports = d.wait_ports(server.name, "lat", len(names))
    assert ports == [f"lat:{n}" for n in names]
    d.finish()
    assert d.proc.returncode == 0 and d.events("stopping")


def test_voice_panned_at_a_speaker_is_loudest_there(tmp_path, tone_model, jack_server_factory, daemons):
    server = jack_server_factory(playback_channels=4)
    voices = {"v": {"model": "tone", "source": TONE, "bias": TONE_BIAS, "pan": {"azimuth_deg": 135.0}}}
    d = Daemon(venue(tmp_path, tone_model, server.name, "lat", "quad", voices), 30)
    daemons.append(d)
    ports = d.wait_ports(server.name, "lat", 4)
    cap = capture(server, ports, 2.0)
    time.sleep(1.0)  # past the start-up fade
    cap.record()
    assert cap.wait_frames(2 * SR, timeout_s=10)
    rms = np.sqrt(np.mean(cap.recorded() ** 2, axis=1))
    cap.close()
    d.proc.send_signal(signal.SIGTERM)
    d.finish()
    assert d.proc.returncode == 0
    assert np.argmax(rms) == 2, (
        f"BL (135°) should be loudest: {dict(zip(['FL', 'FR', 'BL', 'BR'], rms, strict=True))}"
    )
    assert rms[2] > 0.05 and np.all(np.delete(rms, 2) < 1e-3 * rms[2])


def test_rotating_voice_keeps_summed_power(tmp_path, tone_model, jack_server_factory, daemons):
    server = jack_server_factory(playback_channels=4)
    voices = {"v": {"model": "tone", "source": TONE, "bias": TONE_BIAS, "pan": {"rotate_deg_s": 180.0}}}
    d = Daemon(venue(tmp_path, tone_model, server.name, "lat", "quad", voices), 30)
    daemons.append(d)
    ports = d.wait_ports(server.name, "lat", 4)
    cap = capture(server, ports, 2.0)
    time.sleep(1.0)
    cap.record()
    assert cap.wait_frames(2 * SR, timeout_s=10)
    rec = cap.recorded()
    cap.close()
    d.proc.send_signal(signal.SIGTERM)
    d.finish()
    win = SR // 20
    power = np.array([np.sum(rec[:, i : i + win] ** 2) for i in range(0, rec.shape[1] - win, win)])
    per_speaker = np.array(
        [np.sum(rec[:, i : i + win] ** 2, axis=1) for i in range(0, rec.shape[1] - win, win)]
    )
    # it really moves: every speaker is loudest at some point of the turn
    assert set(np.argmax(per_speaker, axis=1)) == {0, 1, 2, 3}
    db = 10 * np.log10(power / power.mean())
    assert np.abs(db).max() < 1.0, f"summed power wanders by {np.abs(db).max():.2f} dB while rotating"


def test_audio_resumes_after_jackd_restarts(tmp_path, tone_model, jack_server_factory, daemons):
    server = jack_server_factory(playback_channels=4)
    voices = {"v": {"model": "tone", "source": TONE, "bias": TONE_BIAS, "route": ["FL"]}}
    d = Daemon(venue(tmp_path, tone_model, server.name, "lat", "quad", voices), 60)
    daemons.append(d)
    ports = d.wait_ports(server.name, "lat", 4)
    server.kill()
    time.sleep(1.0)
    server.start()
    back = time.monotonic()
    ports = d.wait_ports(server.name, "lat", 4, timeout_s=10)
    cap = capture(server, ports, 0.5)
    cap.record()
    assert cap.wait_frames(SR // 2, timeout_s=10)
    rec = cap.recorded()
    cap.close()
    assert time.monotonic() - back < 5.0 + 1.0, "audio should resume within 5 s of jackd coming back"
    assert np.sqrt(np.mean(rec[0] ** 2)) > 0.05, "no audio on FL after the restart"
    assert d.proc.poll() is None, "latentd must keep running across a jackd restart"
    d.proc.send_signal(signal.SIGTERM)
    d.finish()
    assert d.proc.returncode == 0
    assert d.events("jack.server_lost") and d.events("jack.reconnected")


@pytest.mark.parametrize("process", [True, False], ids=["engine-process", "engine-thread"])
def test_run_duration_exits_zero_and_leaves_no_jackd(tmp_path, tone_model, daemons, process):
    name = unique_server_name()
    voices = {"v": {"model": "tone", "source": TONE, "bias": TONE_BIAS}}
    config = venue(tmp_path, tone_model, name, "lat", "quad", voices, process, start_server=True, period=256)
    d = Daemon(config, 5)
    daemons.append(d)
    d.finish(timeout_s=90)
    assert d.proc.returncode == 0, "\n".join(d.lines)
    assert d.events("ready")[0]["engine"] == ("process" if process else "thread")
    assert d.events("stopping")
    left = subprocess.run(["pgrep", "-f", f"jackd -n {name} "], capture_output=True, text=True)
    assert left.stdout.strip() == "", f"jackd {name} still running: {left.stdout}"


def test_a_bad_model_stops_the_engine_process_with_a_clear_error(tmp_path, daemons):
    bad = tmp_path / "garbage.ts"
    bad.write_text("not a model")
    name = unique_server_name()
    voices = {"v": {"model": "tone", "source": TONE}}
    config = venue(tmp_path, bad, name, "lat", "quad", voices, start_server=True)
    d = Daemon(config, 30)
    daemons.append(d)
    out = d.finish(timeout_s=90)
    assert d.proc.returncode == 2, out
    assert "models.tone.path" in out and "garbage.ts" in out
    left = subprocess.run(["pgrep", "-f", f"jackd -n {name} "], capture_output=True, text=True)
    assert left.stdout.strip() == ""


def test_the_daemon_stops_when_its_engine_process_dies(tmp_path, tone_model, jack_server_factory, daemons):
    server = jack_server_factory(playback_channels=4)
    voices = {"v": {"model": "tone", "source": TONE, "bias": TONE_BIAS}}
    d = Daemon(venue(tmp_path, tone_model, server.name, "lat", "quad", voices), 60)
    daemons.append(d)
    d.wait_ports(server.name, "lat", 4)
    children = subprocess.run(["pgrep", "-P", str(d.proc.pid)], capture_output=True, text=True).stdout.split()
    assert children, "latentd run should have an engine process"
    for pid in children:
        os.kill(int(pid), signal.SIGKILL)
    d.finish(timeout_s=30)
    # A non-zero exit lets systemd restart the whole service (Restart=on-failure).
    assert d.proc.returncode != 0
    assert d.events("engine_process.died")


def test_the_jack_process_never_loads_torch():
    probe = "import sys, latentd.runtime.supervisor, latentd.cli; print('torch' in sys.modules)"
    out = subprocess.run([sys.executable, "-c", probe], capture_output=True, text=True, check=True).stdout
    assert out.strip() == "False"


def test_a_second_signal_forces_a_quick_stop(tmp_path, tone_model, jack_server_factory, daemons):
    server = jack_server_factory(playback_channels=4)
    voices = {"v": {"model": "tone", "source": TONE, "bias": TONE_BIAS}}
    d = Daemon(venue(tmp_path, tone_model, server.name, "lat", "quad", voices), 60)
    daemons.append(d)
    d.wait_ports(server.name, "lat", 4)
    children = subprocess.run(["pgrep", "-P", str(d.proc.pid)], capture_output=True, text=True).stdout.split()
    assert children, "latentd run should have an engine process"
    d.proc.send_signal(signal.SIGTERM)
    d.proc.send_signal(signal.SIGTERM)
    stopped = time.monotonic()
    d.finish(timeout_s=30)
    assert time.monotonic() - stopped < 10.0, "\n".join(d.lines)
    assert d.proc.returncode in (0, 130), "\n".join(d.lines)
    deadline = time.monotonic() + 5.0
    for pid in children:  # the engine process is gone too (stopped, or killed when forced)
        while _running(int(pid)) and time.monotonic() < deadline:
            time.sleep(0.05)
        assert not _running(int(pid)), f"child {pid} still running"


def _running(pid: int) -> bool:
    try:
        return "zombie" not in Path(f"/proc/{pid}/status").read_text()
    except FileNotFoundError:
        return False
