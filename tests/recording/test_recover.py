"""Killed recordings: a recording process is SIGKILLed; its file must open, hold the audio, and recover."""

from __future__ import annotations

import argparse
import json
import os
import random
import signal
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import numpy as np
import pytest
import soundfile as sf

from latentd.cli.recording import add_commands
from latentd.config import load_config
from latentd.engine.engine import Engine
from latentd.installation.piece import load_installation
from latentd.modelkit.builder import SynthSpec
from latentd.recording.recover import recover, recover_file
from tests.pieces import write_piece

SR = 48000
BLOCK = 256
ROOT = Path(__file__).resolve().parents[2]

# Plays the piece paced at real time with a recorder attached, printing the blocks it has made.
RECORDING_PROCESS = textwrap.dedent(
    """
    import sys, time
    from latentd.runtime.process import configure_process
    from latentd.config import load_config
    from latentd.engine.engine import Engine
    from latentd.installation.piece import load_installation
    from latentd.recording.recorder import attach_recorder

    configure_process(1)
    config = load_config(sys.argv[1])
    engine = Engine(load_installation(config))
    recorder = attach_recorder(engine, config)
    period = engine.blocksize / engine.samplerate
    t0 = time.monotonic()
    block = 0
    while True:
        engine.next_block()
        block += 1
        if block % 8 == 0:
            print(block, flush=True)
        delay = t0 + block * period - time.monotonic()
        if delay > 0:
            time.sleep(delay)
    """
)


def sox_frames(path: Path) -> int:
    """Frames as sox reads them (``sox FILE -n stat`` decodes the whole file)."""
    info = subprocess.run(["sox", "--i", "-s", str(path)], capture_output=True, text=True, check=True)
    stat = subprocess.run(["sox", str(path), "-n", "stat"], capture_output=True, text=True, check=True)
    read = next(line for line in stat.stderr.splitlines() if line.startswith("Samples read"))
    channels = sf.info(path).channels
    assert int(read.split(":")[1]) // channels >= int(info.stdout.strip()) - 1
    return int(info.stdout.strip())


@pytest.fixture
def venue(tmp_path, model_factory) -> Path:
    drone = model_factory(SynthSpec(latent_size=4, ratio=1024, sr=SR))
    return write_piece(
        tmp_path,
        models={"a": drone},
        voices={"n": {"model": "a", "source": {"kind": "noise", "smooth_s": 0.2}}},
        extra_venue={"recording": {"mode": "always"}},
    )


def test_sigkilled_recording_opens_holds_the_audio_and_recovers(venue, tmp_path, capsys):
    proc = subprocess.Popen(
        [sys.executable, "-c", RECORDING_PROCESS, str(venue)],
        cwd=ROOT,
        stdout=subprocess.PIPE,
        stderr=subprocess.DEVNULL,
        text=True,
    )
    try:
        assert proc.stdout is not None
        first = proc.stdout.readline()  # the engine runs: blocks are being recorded
        assert first.strip(), "the recording process died before playing"
        time.sleep(random.uniform(1.5, 3.0))
        os.kill(proc.pid, signal.SIGKILL)
        proc.wait()
        made = int(proc.stdout.read().split()[-1])
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
        if proc.stdout is not None:
            proc.stdout.close()
    folder = next(p for p in (tmp_path / "recordings").iterdir() if p.is_dir())
    session = json.loads((folder / "session.json").read_text())
    path = folder / session["segments"][0]["file"]
    # Opens as it is, in soundfile and in sox, holding all but at most 1 s of what the engine made.
    audio, rate = sf.read(path, dtype="float32", always_2d=True)
    assert rate == SR and audio.shape[1] == 4
    assert len(audio) >= made * BLOCK - SR, f"{len(audio)} frames recorded, {made * BLOCK} made"
    assert sox_frames(path) >= len(audio) - BLOCK
    # ...and it is the piece: a fresh offline render gives the same samples.
    config = load_config(venue)
    engine = Engine(load_installation(config))
    reference = np.concatenate([engine.next_block() for _ in range(len(audio) // BLOCK + 1)], axis=1).T
    np.testing.assert_array_equal(audio, reference[: len(audio)])
    assert np.abs(audio).max() > 0.01
    # session.json follows the synced files: it already counts frames, and says nothing of a stop.
    assert 0 < session["frames"] <= len(audio) and session["stop_reason"] is None
    # recover closes it (same frames, clean header) and makes session.json say what is on disk.
    parser = argparse.ArgumentParser()
    add_commands(parser.add_subparsers(dest="command", required=True))
    args = parser.parse_args(["recover", str(folder)])
    assert args.func(args) == 0
    out = capsys.readouterr().out
    assert "(1 latent file(s) not counted)" in out and "1 session file(s) fixed" in out
    assert f"{len(audio) / SR:.2f} s of audio" in out.splitlines()[-1]
    np.testing.assert_array_equal(sf.read(path, dtype="float32", always_2d=True)[0], audio)
    assert sox_frames(path) == len(audio)
    fixed = json.loads((folder / "session.json").read_text())
    assert fixed["stop_reason"] == "interrupted" and fixed["frames"] == fixed["segments"][0]["frames"] == len(
        audio
    )
    assert fixed["stop_block"] == fixed["start_block"] + -(-len(audio) // BLOCK)
    # A second pass finds everything whole and changes nothing.
    assert args.func(args) == 0
    again = capsys.readouterr().out
    assert "recovered 0 file(s)" in again and "session.json: intact" in again
    assert all(r.intact for r in recover(folder))


# Writes N frames, syncs, and dies without closing the file (what a kill leaves behind).
INTERRUPTED_WRITER = textwrap.dedent(
    """
    import os, sys
    import numpy as np, soundfile as sf
    path, fmt, subtype, frames = sys.argv[1], sys.argv[2], sys.argv[3], int(sys.argv[4])
    data = np.load(sys.argv[5])
    f = sf.SoundFile(path, "w", 48000, data.shape[1], subtype=subtype, format=fmt)
    for i in range(0, frames, 4800):
        f.write(data[i : i + 4800])
    f.flush()
    os._exit(0)
    """
)


@pytest.mark.parametrize(
    ("fmt", "subtype", "suffix"),
    [
        ("RF64", "FLOAT", ".wav"),
        ("RF64", "PCM_24", ".wav"),
        ("WAV", "FLOAT", ".wav"),
        ("FLAC", "PCM_24", ".flac"),
    ],
)
def test_recover_closes_interrupted_files_of_every_format(tmp_path, fmt, subtype, suffix):
    frames = 48000 * 2
    rng = np.random.default_rng(3)
    data = (rng.uniform(-0.9, 0.9, (frames, 3))).astype(np.float32)
    np.save(tmp_path / "data.npy", data)
    path = tmp_path / f"cut{suffix}"
    args = [str(path), fmt, subtype, str(frames), str(tmp_path / "data.npy")]
    subprocess.run([sys.executable, "-c", INTERRUPTED_WRITER, *args], check=True)
    result = recover_file(path)
    tolerance = 0.0 if subtype == "FLOAT" else 2.0**-22
    back, rate = sf.read(path, dtype="float32", always_2d=True)
    # FLAC keeps unfinished blocks in its encoder (4096 frames each): up to two may be lost (0.17 s).
    assert frames - 2 * 4096 <= result.frames == len(back) <= frames
    if fmt != "FLAC":
        assert result.frames == frames
    np.testing.assert_allclose(back, data[: len(back)], atol=tolerance, rtol=0)
    assert (rate, result.channels, result.format) == (48000, 3, fmt)
    assert sox_frames(path) == len(back)


def test_recover_command_reports_what_it_recovered(tmp_path, capsys):
    sf.write(tmp_path / "a.w64", np.zeros((4800, 2), dtype=np.float32), 48000, format="W64")
    parser = argparse.ArgumentParser()
    add_commands(parser.add_subparsers(dest="command", required=True))
    args = parser.parse_args(["recover", str(tmp_path)])
    assert args.func(args) == 0
    out = capsys.readouterr().out
    # A file closed cleanly is left alone, and said to be intact.
    assert "a.w64" in out and "intact, 4800 frames (0.10 s)" in out and "recovered 0 file(s), 1 intact" in out
    args = parser.parse_args(["recover", str(tmp_path / "nothing")])
    assert args.func(args) == 2
    assert "no such file or folder" in capsys.readouterr().err
