"""Replay: a recorded session with operator overrides re-renders offline to the same samples."""

from __future__ import annotations

import argparse
import json
from pathlib import Path

import numpy as np
import soundfile as sf

from latentd.cli.recording import add_commands
from latentd.config import load_config
from latentd.engine import commands as c
from latentd.engine.engine import Engine
from latentd.installation.piece import load_installation
from latentd.modelkit.builder import SynthSpec
from latentd.recording.recorder import attach_recorder
from tests.pieces import write_piece

SR = 48000
BLOCK = 256


def parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser()
    add_commands(p.add_subparsers(dest="command", required=True))
    return p


def record_session(tmp_path: Path, model: Path) -> tuple[Path, np.ndarray]:
    """Record blocks 10..299 of a piece with a bias change at block 50 and a gain change at 120."""
    venue = write_piece(
        tmp_path,
        models={"a": model},
        voices={
            "n": {"model": "a", "source": {"kind": "noise", "smooth_s": 0.2}},
            "w": {"model": "a", "source": {"kind": "walk"}, "pan": {"azimuth_deg": 45.0}},
        },
        extra_venue={"recording": {"segment_s": 2.0}},
    )
    config = load_config(venue)
    engine = Engine(load_installation(config))  # the live default fade-in, recorded in session.json
    recorder = attach_recorder(engine, config)
    schedule = {
        3: c.SetVoicePan("w", 90.0),  # before the recording: must be replayed too
        10: c.StartRecording("replay"),
        50: c.SetLatentBias("n", 0, 1.5),
        120: c.SetVoiceGain("w", 0.2),
        300: c.StopRecording(),
    }
    blocks = []
    for block in range(320):
        if block in schedule:
            engine.submit(schedule[block])
        blocks.append(engine.next_block())
    recorder.close()
    played = np.concatenate(blocks[10:300], axis=1).T
    return recorder.sessions[0], played


def test_replay_of_a_session_with_overrides_equals_the_recording(tmp_path, model_factory, capsys):
    model = model_factory(SynthSpec(latent_size=4, ratio=1024, sr=SR))
    folder, played = record_session(tmp_path, model)
    session = json.loads((folder / "session.json").read_text())
    recorded = np.concatenate(
        [sf.read(folder / s["file"], dtype="float32", always_2d=True)[0] for s in session["segments"]]
    )
    np.testing.assert_array_equal(recorded, played)
    logged = [json.loads(line)["block"] for line in (folder / "commands.jsonl").read_text().splitlines()]
    assert logged == [3, 10, 50, 120, 300]

    out = tmp_path / "replay.wav"
    args = parser().parse_args(["replay", str(folder), "--output", str(out)])
    assert args.func(args) == 0
    assert "replayed" in capsys.readouterr().out
    replayed, rate = sf.read(out, dtype="float32", always_2d=True)
    assert rate == SR
    np.testing.assert_array_equal(replayed, recorded)

    # The overrides matter: without the command log the render is another one.
    config = load_config(tmp_path / "venue.toml")
    plain = Engine(load_installation(config))
    untouched = np.concatenate([plain.next_block() for _ in range(300)], axis=1).T[10 * BLOCK :]
    assert np.abs(untouched - recorded).max() > 0.01


def test_replay_warns_when_the_config_changed_and_refuses_a_missing_session(tmp_path, model_factory, capsys):
    model = model_factory(SynthSpec(latent_size=4, ratio=1024, sr=SR))
    folder, _ = record_session(tmp_path, model)
    venue = tmp_path / "venue.toml"
    venue.write_text(venue.read_text() + "\n# edited after the recording\n")
    args = parser().parse_args(["replay", str(folder), "-o", str(tmp_path / "r.wav")])
    assert args.func(args) == 0
    assert "config files differ" in capsys.readouterr().err
    args = parser().parse_args(["replay", str(tmp_path / "nope"), "-o", str(tmp_path / "r.wav")])
    assert args.func(args) == 2
    assert "cannot read the session file" in capsys.readouterr().err
