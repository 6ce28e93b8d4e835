"""What ``latentd run`` leaves behind when it is killed, hung up on, or started afresh: nothing stale."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import time
from pathlib import Path

import pytest

from latentd.engine.shared_ring import SHM_DIR, remove_stale_segments, segment_name, segment_owner
from latentd.outputs.jack_out import JackOutputError, open_client
from latentd.outputs.jackd import jackd_pids
from tests.jackfixtures import unique_server_name
from tests.pieces import write_piece
from tests.runtime.test_supervisor import TONE, TONE_BIAS, Daemon, tone_model, venue

__all__ = ["tone_model"]

pytestmark = pytest.mark.jack
GUARD_S = 60.0


def _wait(done, what: str) -> None:
    deadline = time.monotonic() + GUARD_S
    while not done():
        assert time.monotonic() < deadline, what
        time.sleep(0.05)


def _gone(pid: int) -> bool:
    # Ended and reaped: jackd refuses a name whose previous server still exists, even as a zombie (an
    # orphan is reaped by init, or by systemd for a service).
    return not Path(f"/proc/{pid}").exists()


def _dead_pid() -> int:
    """The pid of a process that has exited (and was reaped)."""
    proc = subprocess.Popen(["true"])
    proc.wait()
    return proc.pid


def _segments_of(pid: int) -> list[str]:
    return [p.name for p in SHM_DIR.glob("latentd-ring-*") if segment_owner(p.name) == pid]


def _wait_playing(d: Daemon, server: str) -> None:
    """Wait until latentd has started its private jackd and registered its ports there."""

    def answers() -> bool:
        assert d.proc.poll() is None, f"latentd exited early:\n{d.finish()}"
        try:
            open_client(f"probe-{os.getpid()}", server).close()
        except JackOutputError:
            return False
        return True

    _wait(answers, f"latentd did not start jackd {server}")
    d.wait_ports(server, "lat", 4)


def _children(pid: int) -> list[int]:
    out = subprocess.run(["pgrep", "-P", str(pid)], capture_output=True, text=True).stdout
    return [int(p) for p in out.split()]


@pytest.fixture
def daemons():
    started: list[Daemon] = []
    yield started
    for d in started:
        if d.proc.poll() is None:
            d.proc.kill()
        d.finish(timeout_s=30)


def test_stale_segments_of_dead_owners_go_and_live_ones_stay(tmp_path: Path) -> None:
    dead, live = segment_name(_dead_pid()), segment_name(os.getpid())
    foreign = "latentd-ring-notapid"
    for name in (dead, live, foreign):
        (tmp_path / name).write_bytes(bytes(64))
    assert remove_stale_segments(tmp_path) == [dead]
    assert sorted(p.name for p in tmp_path.iterdir()) == sorted([live, foreign])


def _playing_on_its_own_jackd(tmp_path: Path, tone_model, daemons) -> tuple[str, Path, Daemon]:
    """A tone piece playing (for up to 120 s) on a private jackd latentd started: the server's name, the
    config and the daemon."""
    name = unique_server_name()
    voices = {"v": {"model": "tone", "source": TONE, "bias": TONE_BIAS}}
    config = venue(tmp_path, tone_model, name, "lat", "quad", voices, start_server=True, period=256)
    daemon = Daemon(config, 120)
    daemons.append(daemon)
    _wait_playing(daemon, name)
    return name, config, daemon


def test_sigkill_leaves_no_jackd_and_the_next_run_cleans_up_and_starts(tmp_path, tone_model, daemons):
    name, config, killed = _playing_on_its_own_jackd(tmp_path, tone_model, daemons)
    [jackd] = jackd_pids(name)
    engine = _children(killed.proc.pid)
    killed.proc.kill()
    killed.finish()
    _wait(lambda: _gone(jackd), f"the private jackd {jackd} outlived latentd")
    for pid in engine:
        _wait(lambda pid=pid: _gone(pid), f"the engine process {pid} outlived latentd")
    # A segment a killed run could not remove (its resource tracker killed with it, as by systemd).
    stale = SHM_DIR / segment_name(_dead_pid())
    stale.write_bytes(bytes(64))
    try:
        again = Daemon(config, 2)
        daemons.append(again)
        again.finish(timeout_s=90)
        assert again.proc.returncode == 0, "\n".join(again.lines)
        assert stale.name in again.events("ring.stale_removed")[0]["segments"]
        assert not stale.exists()
        assert _segments_of(killed.proc.pid) == [] and _segments_of(again.proc.pid) == []
    finally:
        stale.unlink(missing_ok=True)


def test_sighup_stops_like_sigterm_and_ends_jackd(tmp_path, tone_model, daemons):
    name, _, d = _playing_on_its_own_jackd(tmp_path, tone_model, daemons)
    d.proc.send_signal(signal.SIGHUP)
    d.finish()
    assert d.proc.returncode == 0, "\n".join(d.lines)
    assert d.events("stopping") and jackd_pids(name) == []
    assert (tmp_path / "state" / "latentd-state.json").is_file()  # the engine process stopped in order


def test_fresh_plays_from_the_start_and_replaces_the_state_file(tmp_path, tone_model, daemons):
    voices = {"v": {"model": "tone", "source": TONE, "bias": TONE_BIAS}}
    sections = [
        {"name": "a", "voices": ["v"], "duration_s": 3.0},
        {"name": "b", "voices": ["v"], "duration_s": 3600.0},
    ]
    config = write_piece(
        tmp_path,
        models={"tone": tone_model},
        voices=voices,
        sections=sections,
        extra_venue={
            "jack": {"client_name": "lat", "server_name": unique_server_name(), "start_server": True},
            "logging": {"level": "info", "format": "json"},
        },
    )
    state = tmp_path / "state" / "latentd-state.json"
    first = Daemon(config, 5)
    daemons.append(first)
    first.finish(timeout_s=90)
    assert first.proc.returncode == 0, "\n".join(first.lines)
    assert json.loads(state.read_text())["programme"]["section"] == "b"
    fresh = Daemon(config, 1, "--fresh")
    daemons.append(fresh)
    fresh.finish(timeout_s=90)
    assert fresh.proc.returncode == 0, "\n".join(fresh.lines)
    assert fresh.events("state.fresh")
    assert json.loads(state.read_text())["programme"]["section"] == "a"


def test_a_run_with_a_diffusion_pool_leaks_no_semaphores(tmp_path, tone_model, daemons):
    pytest.importorskip("a_unet", reason="latent diffusion needs the `diffusion` extra (a-unet)")
    from tests.diffusion.conftest import RAVE_DIMS, TINY, save_checkpoint

    assert RAVE_DIMS == 4  # the tone model's latent_size
    checkpoint = save_checkpoint(tmp_path / "tiny.pt")
    source = {"kind": "pool", "folder": "pools/dream", "poll_s": 0.05}
    pool = {
        "checkpoint": str(checkpoint),
        "max_items": 2,
        "steps": 3,
        "interval_s": 2.0,
        "architecture": TINY,
    }
    config = write_piece(
        tmp_path,
        models={"tone": tone_model},
        voices={"v": {"model": "tone", "source": source}},
        extra_piece={"pools": {"dream": pool}},
        extra_venue={
            "jack": {"client_name": "lat", "server_name": unique_server_name(), "start_server": True},
            "logging": {"level": "info", "format": "json"},
        },
    )
    d = Daemon(config, 3)
    daemons.append(d)
    out = d.finish(timeout_s=120)
    assert d.proc.returncode == 0, out
    assert d.events("pool.started")
    assert "leaked" not in out, out
