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
    # The pan at block 3 is in the first segment's checkpoint, not in the session's log.
    logged = [json.loads(line)["block"] for line in (folder / "commands.jsonl").read_text().splitlines()]
    assert logged == [10, 50, 120, 300]
    assert [s["checkpoint"] is not None for s in session["segments"]] == [True]

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


def record_segments(tmp_path: Path, venue: Path, schedule: dict[int, c.Command], blocks: int) -> Path:
    """Play ``blocks`` blocks with the recorder attached, submitting ``schedule``; the session folder."""
    config = load_config(venue)
    engine = Engine(load_installation(config))
    recorder = attach_recorder(engine, config)
    for block in range(blocks):
        if block in schedule:
            engine.submit(schedule[block])
        engine.next_block()
    recorder.close()
    return recorder.sessions[0]


def replay_segment(tmp_path: Path, folder: Path, n: int, capsys) -> tuple[np.ndarray, np.ndarray, str]:
    """(replayed, recorded) samples of segment ``n`` replayed alone through the CLI, and its stderr."""
    session = json.loads((folder / "session.json").read_text())
    out = tmp_path / f"segment{n}.wav"
    args = parser().parse_args(["replay", str(folder), "--segment", str(n), "-o", str(out)])
    assert args.func(args) == 0
    recorded = sf.read(folder / session["segments"][n]["file"], dtype="float32", always_2d=True)[0]
    return sf.read(out, dtype="float32", always_2d=True)[0], recorded, capsys.readouterr().err


def test_each_segment_replays_alone_sample_for_sample(tmp_path, model_factory, capsys):
    model = model_factory(SynthSpec(latent_size=4, ratio=1024, sr=SR))
    venue = write_piece(
        tmp_path,
        models={"a": model},
        voices={
            "n": {"model": "a", "source": {"kind": "noise", "smooth_s": 0.2}},
            "w": {
                "model": "a",
                "source": {"kind": "walk"},
                "pan": {"azimuth_deg": 45.0, "rotate_deg_s": 30.0},
            },
            "l": {"model": "a", "source": {"kind": "lfo", "freq_hz": 0.05}},
        },
        extra_venue={"recording": {"segment_s": 1.0}},
    )
    # 1 s segments from block 10: segment 1 begins inside block 197, segment 2 inside block 385.
    schedule = {
        3: c.SetVoicePan("w", 90.0),
        10: c.StartRecording(),
        60: c.SetLatentBias("n", 0, 1.5),
        197: c.SetVoiceGain("l", 0.3),  # the block holding the boundary: in segment 1's checkpoint
        250: c.ReseedVoice("n", 77),
        300: c.SetMasterGain(0.7),
        420: c.StopRecording(),
    }
    folder = record_segments(tmp_path, venue, schedule, 430)
    session = json.loads((folder / "session.json").read_text())
    assert [s["start_block"] for s in session["segments"]] == [10, 197, 385]
    for n in (1, 2):
        replayed, recorded, err = replay_segment(tmp_path, folder, n, capsys)
        assert len(recorded) > 0 and np.abs(recorded).max() > 0.01
        np.testing.assert_array_equal(replayed, recorded)
        assert "warning" not in err
    args = parser().parse_args(["replay", str(folder), "--segment", "7", "-o", str(tmp_path / "x.wav")])
    assert args.func(args) == 2
    assert "no segment 7; the session has segments 0..2" in capsys.readouterr().err
    # Without the checkpoint's state (a fresh engine from that block on), segment 1 would differ.
    config = load_config(venue)
    fresh = Engine(load_installation(config))
    fresh_blocks = np.concatenate([fresh.next_block() for _ in range(400)], axis=1).T
    start = (197 - 10) * BLOCK - session["segments"][1]["start_frame"]
    assert (
        np.abs(fresh_blocks[197 * BLOCK - start : 197 * BLOCK - start + 1000] - recorded[:1000]).max() > 0.01
    )


def test_a_segment_of_a_resampled_model_replays_from_its_own_checkpoint(tmp_path, model_factory, capsys):
    resampled = model_factory(SynthSpec(latent_size=4, ratio=1024, sr=44100, base_hz=330.0))
    native = model_factory(SynthSpec(latent_size=4, ratio=1024, sr=SR, seed=2))
    venue = write_piece(
        tmp_path,
        models={"r": resampled, "a": native},
        voices={
            "n": {"model": "r", "source": {"kind": "noise", "smooth_s": 0.2}},
            "w": {"model": "r", "source": {"kind": "walk"}, "pan": {"azimuth_deg": 60.0}},
            "l": {"model": "a", "source": {"kind": "lfo", "freq_hz": 0.1}},
        },
        extra_venue={"recording": {"segment_s": 1.0}},
    )
    # Recording starts well after the engine: every checkpoint holds a resampler in mid-stream.
    schedule = {7: c.StartRecording(), 80: c.SetLatentBias("n", 0, 1.5), 600: c.StopRecording()}
    folder = record_segments(tmp_path, venue, schedule, 610)
    session = json.loads((folder / "session.json").read_text())
    assert len(session["segments"]) == 4
    for n in (1, 2):
        replayed, recorded, err = replay_segment(tmp_path, folder, n, capsys)
        assert np.abs(recorded).max() > 0.01
        np.testing.assert_array_equal(replayed, recorded)
        assert "rendered from the checkpoint of segment" not in err and "warning" not in err


def test_a_segment_whose_checkpoint_is_inexact_is_rendered_from_an_earlier_one(
    tmp_path, model_factory, capsys
):
    low = model_factory(SynthSpec(latent_size=4, ratio=1024, sr=SR, base_hz=220.0))
    high = model_factory(SynthSpec(latent_size=4, ratio=512, sr=SR, base_hz=880.0, seed=3))
    venue = write_piece(
        tmp_path,
        models={"a": low, "b": high},
        voices={
            "v": {"model": "a", "source": {"kind": "noise", "smooth_s": 0.1}},
            "w": {"model": "a", "source": {"kind": "walk"}},
        },
        extra_venue={"recording": {"segment_s": 1.0}},
    )
    # The swap loads in the background and lands some blocks later: the segments that begin after it
    # have inexact checkpoints, and the first of them is rendered from the one before the landing.
    config = load_config(venue)
    engine = Engine(load_installation(config))
    recorder = attach_recorder(engine, config)
    engine.submit(c.StartRecording())
    engine.next_block()
    engine.submit(c.SwapModel("v", "b"))
    engine.next_block()  # applies the swap: the model loads from here on
    while engine.swaps_loading:
        engine.next_block()
    for _ in range(400):  # two more segments of 1 s
        engine.next_block()
    recorder.close()
    folder = recorder.sessions[0]
    session = json.loads((folder / "session.json").read_text())
    logged = [json.loads(line) for line in (folder / "commands.jsonl").read_text().splitlines()]
    (landed,) = [entry["block"] for entry in logged if entry["cmd"] == "voice.model_swapped"]
    n = next(i for i, seg in enumerate(session["segments"]) if seg["start_block"] > landed)
    replayed, recorded, err = replay_segment(tmp_path, folder, n, capsys)
    # (A checkpoint taken while the model loads is inexact too: the one used is from before the swap.)
    assert f"segment {n} is rendered from the checkpoint of segment" in err and "model swap" in err
    assert np.abs(recorded).max() > 0.01
    np.testing.assert_array_equal(replayed, recorded)
