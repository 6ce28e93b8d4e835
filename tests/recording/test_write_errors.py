"""A recorder that never lies: write errors pause recording, say why, and recording resumes by itself.

A full disk is a real small tmpfs (mounting one needs root; skipped otherwise); an unwritable folder is
a recordings path through a regular file (refused even for root).
"""

from __future__ import annotations

import argparse
import json
import subprocess
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import soundfile as sf
from structlog.testing import capture_logs

from latentd.cli.recording import add_commands
from latentd.config import load_config
from latentd.control.osc import make_status_provider
from latentd.engine import commands as c
from latentd.engine.engine import Engine
from latentd.installation.piece import load_installation
from latentd.modelkit.builder import SynthSpec
from latentd.recording.recorder import Recorder, attach_recorder
from tests.pieces import write_piece

SR = 48000
BLOCK = 256


@pytest.fixture
def small_disk(tmp_path: Path) -> Iterator[Path]:
    """A 3 MiB tmpfs: about 4 s of 4-channel float audio."""
    mount = tmp_path / "disk"
    mount.mkdir()
    made = subprocess.run(["mount", "-t", "tmpfs", "-o", "size=3m", "tmpfs", str(mount)], capture_output=True)
    if made.returncode != 0:
        pytest.skip(f"cannot mount a tmpfs here: {made.stderr.decode().strip()}")
    try:
        yield mount
    finally:
        subprocess.run(["umount", "-l", str(mount)], check=True)


def start(tmp_path: Path, model: Path, folder: Path) -> tuple[Engine, Recorder]:
    venue = write_piece(
        tmp_path,
        models={"a": model},
        voices={
            "n": {"model": "a", "source": {"kind": "noise", "smooth_s": 0.2}},
            "w": {"model": "a", "source": {"kind": "walk"}, "pan": {"azimuth_deg": 90.0}},
        },
        # No floor: the disk itself refuses the writes.
        extra_venue={
            "recording": {
                "folder": str(folder),
                "min_free_bytes": 0,
                "min_free_percent": 0.0,
                "segment_s": 2.0,
            }
        },
    )
    config = load_config(venue)
    engine = Engine(load_installation(config), fade_in_s=0.0)
    return engine, attach_recorder(engine, config)


def play_until(engine: Engine, recorder: Recorder, state: str, most: int) -> int:
    """Play blocks (100 at a time, the writer caught up after each) until the recorder is in ``state``."""
    for played in range(0, most, 100):
        for _ in range(100):
            engine.next_block()
        assert recorder.wait_idle()
        if recorder.status()["state"] == state:
            return played + 100
    raise AssertionError(f"the recorder never became {state!r}: {recorder.status()}")


def session_of(recorder: Recorder) -> tuple[Path, dict[str, Any]]:
    folder = recorder.sessions[-1]
    return folder, json.loads((folder / "session.json").read_text())


def replay_segment(tmp_path: Path, folder: Path, n: int) -> np.ndarray:
    parser = argparse.ArgumentParser()
    add_commands(parser.add_subparsers(dest="command", required=True))
    out = tmp_path / f"replay{n}.wav"
    args = parser.parse_args(["replay", str(folder), "--segment", str(n), "-o", str(out)])
    assert args.func(args) == 0
    return sf.read(out, dtype="float32", always_2d=True)[0]


def test_a_full_disk_pauses_once_says_why_and_resumes_in_a_new_segment(tmp_path, small_disk, model_factory):
    # A 44.1 kHz model, resampled to the venue's 48 kHz: the resumed segment still replays exactly.
    model = model_factory(SynthSpec(latent_size=4, ratio=1024, sr=44100))
    engine, recorder = start(tmp_path, model, small_disk / "rec")
    engine.submit(c.StartRecording())
    with capture_logs() as logs:
        play_until(engine, recorder, "paused", 3000)
        play_until(engine, recorder, "paused", 300)  # still full: nothing more is said
    status = recorder.status()
    assert "No space left on device" in status["reason"] and not recorder.recording
    # One line says it all: closing the files on the full disk adds nothing.
    errors = [e for e in logs if e["log_level"] in ("error", "warning")]
    assert [e["event"] for e in errors] == ["recording.paused"] and errors[0]["log_level"] == "error"
    assert engine.counters.refused_commands == 0  # playback went on untouched
    # Commands while the disk is full: the command journal beside the sessions keeps them in memory.
    gains = [round(0.5 + i / 1000, 3) for i in range(300)]
    with capture_logs() as logs:
        for gain in gains:
            engine.submit(c.SetVoiceGain("n", gain))
            engine.next_block()
        assert recorder.wait_idle()
    assert [e["event"] for e in logs if e["log_level"] == "error"] == ["commands.journal_failed"]
    assert recorder.journal.queued > 0
    # /status and the status page say so.
    assert recorder.status()["journal"] == {
        "queued": recorder.journal.queued,
        "lost": 0,
        "file": str(small_disk / "rec" / "commands.jsonl"),
    }

    subprocess.run(["mount", "-o", "remount,size=64m", str(small_disk)], check=True)  # space returns
    with capture_logs() as logs:
        play_until(engine, recorder, "recording", 1000)
        engine.submit(c.SetVoiceGain("w", 0.3))
        for _ in range(200):
            engine.next_block()
    assert [e["event"] for e in logs if e["event"].startswith("recording.res")] == ["recording.resuming"]
    # Written once the disk takes writes again: at the journal's next try, ``retry_s`` after its last error.
    deadline = time.monotonic() + 10 * recorder.journal.retry_s
    while recorder.journal.queued and time.monotonic() < deadline:
        engine.next_block()
        time.sleep(0.005)
    assert recorder.journal.queued == 0 and "journal" not in recorder.status()
    engine.submit(c.StopRecording())
    engine.next_block()
    recorder.close()

    folder, session = session_of(recorder)
    assert session["stop_reason"] == "command" and session["paused"] is None
    # The journal lost none of them, and holds each once, in order (a line cut short is written again).
    journal = [json.loads(line) for line in (small_disk / "rec" / "commands.jsonl").read_text().splitlines()]
    assert [e["gain"] for e in journal if e["cmd"] == "voice.gain" and e["voice"] == "n"] == gains
    assert [e["cmd"] for e in journal].count("voice.gain") == len(gains) + 1 and recorder.journal.lost == 0
    assert [e["block"] for e in journal] == sorted(e["block"] for e in journal)
    first, resumed = session["segments"][0], session["segments"][-1]
    # session.json says what the files hold.
    for seg in session["segments"]:
        assert sf.info(folder / seg["file"]).frames == seg["frames"]
    assert resumed["start_frame"] == (resumed["start_block"] - session["start_block"]) * BLOCK
    assert resumed["start_frame"] > first["start_frame"] + first["frames"]  # the pause is a gap
    assert session["paused_blocks"] > 0 and resumed["checkpoint"]
    # The resumed segment begins with a checkpoint: it replays alone, sample for sample.
    recorded = sf.read(folder / resumed["file"], dtype="float32", always_2d=True)[0]
    assert np.abs(recorded).max() > 0.01
    np.testing.assert_array_equal(replay_segment(tmp_path, folder, len(session["segments"]) - 1), recorded)
    # The whole session replays as the files hold it: each part after the pause from its own checkpoint.
    parser = argparse.ArgumentParser()
    add_commands(parser.add_subparsers(dest="command", required=True))
    out = tmp_path / "whole.wav"
    args = parser.parse_args(["replay", str(folder), "-o", str(out)])
    assert args.func(args) == 0
    files = [sf.read(folder / s["file"], dtype="float32", always_2d=True)[0] for s in session["segments"]]
    np.testing.assert_array_equal(sf.read(out, dtype="float32", always_2d=True)[0], np.concatenate(files))


def test_an_unwritable_folder_pauses_the_start_and_recording_begins_when_it_is_writable(
    tmp_path, model_factory
):
    model = model_factory(SynthSpec(latent_size=4, ratio=1024, sr=SR))
    blocked = tmp_path / "blocked"
    blocked.write_text("a file where the recordings folder should be")
    engine, recorder = start(tmp_path, model, blocked / "rec")
    engine.submit(c.StartRecording("night"))
    with capture_logs() as logs:
        play_until(engine, recorder, "paused", 300)
    # /status carries the recorder's own status, reason and all, as JSON.
    status = json.loads(json.dumps(make_status_provider(engine, recording=recorder.status)()))["recording"]
    assert status["state"] == "paused" and not recorder.recording
    assert "Not a directory" in status["reason"] and str(blocked) in status["reason"]
    assert [e["event"] for e in logs if e["event"] == "recording.paused"] == ["recording.paused"]
    assert recorder.sessions == []  # nothing was made, and nothing claims otherwise

    blocked.unlink()
    play_until(engine, recorder, "recording", 600)
    for _ in range(100):
        engine.next_block()
    engine.submit(c.StopRecording())
    engine.next_block()
    recorder.close()
    folder, session = session_of(recorder)
    assert folder.parent == blocked / "rec" and folder.name.endswith("_night")
    (segment,) = session["segments"]
    assert segment["start_block"] > session["start_block"] and session["paused_blocks"] > 0
    recorded = sf.read(folder / segment["file"], dtype="float32", always_2d=True)[0]
    assert len(recorded) == segment["frames"] == (session["stop_block"] - segment["start_block"]) * BLOCK
    np.testing.assert_array_equal(replay_segment(tmp_path, folder, 0), recorded)


def test_a_start_is_refused_when_the_writer_is_not_running(tmp_path, model_factory):
    model = model_factory(SynthSpec(latent_size=4, ratio=1024, sr=SR))
    engine, recorder = start(tmp_path, model, tmp_path / "rec")
    recorder.close()  # the writer thread has ended
    engine.submit(c.StartRecording())
    with capture_logs() as logs:
        engine.next_block()
    assert engine.counters.refused_commands == 1 and not recorder.recording
    (refused,) = [e for e in logs if e["event"] == "command.refused"]
    assert "recording is not available" in refused["reason"]
    assert recorder.status() == {"state": "off"}
