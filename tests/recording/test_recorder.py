"""The session recorder on real engines and real files: rotation, start/stop, disk floor, latents, log."""

from __future__ import annotations

import json
import shutil
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import soundfile as sf
from structlog.testing import capture_logs

from latentd.config import ConfigError, load_config
from latentd.engine import commands as c
from latentd.engine.engine import Engine
from latentd.installation.piece import load_installation
from latentd.modelkit.builder import SynthSpec
from latentd.recording.recorder import DiskUsage, Recorder, attach_recorder
from tests.pieces import write_piece

SR = 48000
BLOCK = 256


@pytest.fixture
def drone(model_factory) -> Path:
    return model_factory(SynthSpec(latent_size=4, ratio=1024, sr=SR))


def piece(root: Path, drone: Path, **recording: Any) -> Path:
    return write_piece(
        root,
        models={"a": drone},
        voices={
            "n": {"model": "a", "source": {"kind": "noise", "smooth_s": 0.2}},
            "w": {"model": "a", "source": {"kind": "walk"}, "pan": {"azimuth_deg": 90.0}},
        },
        extra_venue={"recording": recording} if recording else None,
    )


class Disk:
    """A free-space probe the test controls."""

    def __init__(self) -> None:
        self.free = 100 * 2**30

    def __call__(self, path: Path) -> DiskUsage:
        return DiskUsage(total=1000 * 2**30, used=1000 * 2**30 - self.free, free=self.free)


def start(config_path: Path, disk: Disk | None = None) -> tuple[Engine, Recorder]:
    config = load_config(config_path)
    engine = Engine(load_installation(config), fade_in_s=0.0)
    recorder = attach_recorder(engine, config, disk_usage=disk or Disk())
    return engine, recorder


def play(engine: Engine, n_blocks: int) -> np.ndarray:
    """n blocks as frames × channels."""
    return np.concatenate([engine.next_block() for _ in range(n_blocks)], axis=1).T


def session_of(recorder: Recorder) -> tuple[Path, dict[str, Any]]:
    folder = recorder.sessions[-1]
    return folder, json.loads((folder / "session.json").read_text())


def read_segments(folder: Path, session: dict[str, Any]) -> list[np.ndarray]:
    return [sf.read(folder / s["file"], dtype="float32", always_2d=True)[0] for s in session["segments"]]


def test_rotation_gives_contiguous_segments_equal_to_the_played_blocks(tmp_path, drone):
    # 1 s segments at 48 kHz / 256-frame blocks: every boundary falls inside a block.
    engine, recorder = start(piece(tmp_path, drone, mode="always", segment_s=1.0))
    played = play(engine, 700)
    recorder.close()
    folder, session = session_of(recorder)
    segments = read_segments(folder, session)
    assert [len(s) for s in segments] == [SR, SR, SR, 700 * BLOCK - 3 * SR]
    assert [s["start_frame"] for s in session["segments"]] == [0, SR, 2 * SR, 3 * SR]
    np.testing.assert_array_equal(np.concatenate(segments), played)
    assert np.abs(played).max() > 0.01, "the piece is silent: the comparison would prove nothing"
    assert session["dropped_blocks"] == 0 and session["ring_dropped_blocks"] == 0
    assert session["start_block"] == 0 and session["stop_block"] == 700
    assert session["piece"] == "test-piece" and session["venue"] == "test-venue"
    assert session["speakers"] == ["FL", "FR", "BL", "BR"] and session["channels"] == 4
    assert set(session["voice_seeds"]) == {"n", "w"} and session["models"]["a"]["sha256"]
    names = [s["file"] for s in session["segments"]]
    assert all(n.startswith(f"test-piece_test-venue_{session['start_utc'][:4]}") for n in names)
    assert [n[-8:] for n in names] == ["_000.w64", "_001.w64", "_002.w64", "_003.w64"]
    assert (folder / "venue.toml").read_bytes() == (tmp_path / "venue.toml").read_bytes()


def test_commands_start_and_stop_a_labelled_recording_at_their_blocks(tmp_path, drone):
    engine, recorder = start(piece(tmp_path, drone))
    before = play(engine, 20)
    engine.submit(c.StartRecording("night"))
    during = play(engine, 80)
    engine.submit(c.StopRecording())
    play(engine, 30)
    assert recorder.wait_idle()
    folder, session = session_of(recorder)
    recorded = np.concatenate(read_segments(folder, session))
    np.testing.assert_array_equal(recorded, during)
    assert len(before) == 20 * BLOCK
    assert folder.name.endswith("_night")
    assert (session["start_block"], session["stop_block"], session["stop_reason"]) == (20, 100, "command")
    log = [json.loads(line) for line in (folder / "commands.jsonl").read_text().splitlines()]
    assert log == [
        {"block": 20, "cmd": "record.start", "label": "night"},
        {"block": 100, "cmd": "record.stop"},
    ]
    recorder.close()


@pytest.mark.parametrize(("fmt", "subtype"), [("wav", "float32"), ("rf64", "pcm24"), ("flac", "pcm24")])
def test_other_formats_hold_the_played_audio(tmp_path, drone, fmt, subtype):
    engine, recorder = start(
        piece(tmp_path, drone, mode="always", format=fmt, subtype=subtype, segment_s=1.0)
    )
    played = play(engine, 300)
    recorder.close()
    folder, session = session_of(recorder)
    recorded = np.concatenate(read_segments(folder, session))
    tolerance = 0.0 if subtype == "float32" else 2.0**-22
    np.testing.assert_allclose(recorded, played, atol=tolerance, rtol=0)
    info = sf.info(folder / session["segments"][0]["file"])
    assert info.format == {"wav": "WAV", "rf64": "RF64", "flac": "FLAC"}[fmt]


def test_disk_floor_stops_recording_and_playback_goes_on(tmp_path, drone):
    disk = Disk()
    config = piece(tmp_path, drone, mode="always", min_free_bytes=2**30, resume_when_space=False)
    engine, recorder = start(config, disk)
    with capture_logs() as logs:
        first = play(engine, 400)
        assert recorder.wait_idle()
        disk.free = 2**29  # below the 1 GiB floor
        after = play(engine, 800)  # the writer notices within a second of audio
        assert recorder.wait_idle()
    assert not recorder.recording
    assert engine.counters.blocks == 1200
    assert np.abs(after[-SR:]).max() > 0.01, "playback must go on after the floor"
    folder, session = session_of(recorder)
    recorded = np.concatenate(read_segments(folder, session))
    assert session["stop_reason"] == "disk_floor"
    assert len(first) < len(recorded) < len(first) + len(after)
    np.testing.assert_array_equal(recorded, np.concatenate([first, after])[: len(recorded)])
    errors = [e for e in logs if e["event"] == "recording.disk_floor"]
    assert errors and errors[0]["log_level"] == "error" and errors[0]["free_bytes"] == 2**29
    recorder.close()


def test_recording_resumes_in_a_new_segment_when_space_returns(tmp_path, drone):
    disk = Disk()
    engine, recorder = start(piece(tmp_path, drone, mode="always", min_free_percent=10.0), disk)
    play(engine, 200)
    assert recorder.wait_idle()
    disk.free = 50 * 2**30  # 5 % of the disk: below the 10 % floor
    play(engine, 600)
    assert recorder.wait_idle()
    disk.free = 500 * 2**30
    played_after = play(engine, 600)
    recorder.close()
    folder, session = session_of(recorder)
    assert len(session["segments"]) == 2 and session["paused_blocks"] > 0
    second = session["segments"][1]
    audio = read_segments(folder, session)[1]
    # The resumed segment starts at the block it names, within the last 600 blocks played.
    offset = (second["start_block"] - 800) * BLOCK
    assert 0 <= offset < len(played_after)
    np.testing.assert_array_equal(audio, played_after[offset:])
    assert second["start_frame"] == (second["start_block"] - session["start_block"]) * BLOCK


def test_latent_files_hold_what_each_voice_decoded(tmp_path, drone):
    engine, recorder = start(piece(tmp_path, drone, mode="always", segment_s=1.0))
    decoded: dict[str, list[np.ndarray]] = {"n": [], "w": []}
    engine.latent_listeners.append(lambda block, voice, z: decoded[voice].append(z.copy()))
    engine.submit(c.SetLatentBias("n", 1, 0.5))
    play(engine, 500)
    recorder.close()
    folder, session = session_of(recorder)
    for voice, chunks in decoded.items():
        expected = np.concatenate(chunks, axis=1)
        z = np.load(folder / f"{voice}.npy")
        assert z.dtype == np.float32 and z.shape == (1, 4, expected.shape[1])
        np.testing.assert_array_equal(z[0], expected)
        wav, rate = sf.read(folder / f"{voice}_latents.wav", dtype="float32", always_2d=True)
        assert rate == SR // 1024 and sf.info(folder / f"{voice}_latents.wav").subtype == "FLOAT"
        np.testing.assert_array_equal(wav.T, expected)
        assert session["latents"][voice]["frames"] == expected.shape[1]


@pytest.mark.parametrize(
    ("frames_per_call", "decode_threads"),
    [(1, 1), (1, 2), (8, 2)],
    ids=["calls-shorter-than-a-block", "short-calls-beside", "decoded-beside"],
)
def test_latent_files_hold_every_frame_decoded_in_order_however_calls_are_made(
    tmp_path, model_factory, frames_per_call, decode_threads
):
    # Calls of 128 samples (two per block of 256), or decoded ahead in another thread: the latent file
    # still holds every frame the model was given, in order, the same as calls of 8 frames made serially.
    short = model_factory(SynthSpec(latent_size=4, ratio=128, sr=SR))
    files = {}
    for label, audio in (
        ("reference", {"frames_per_call": 8}),
        ("tried", {"frames_per_call": frames_per_call, "decode_threads": decode_threads}),
    ):
        root = tmp_path / label
        config_path = write_piece(
            root,
            models={"a": short},
            voices={"w": {"model": "a", "source": {"kind": "walk"}}},
            audio=audio,
            extra_venue={"recording": {"mode": "always"}},
        )
        engine, recorder = start(config_path)
        play(engine, 200)
        frames = sum(group.calls for group in engine.groups) * audio["frames_per_call"]
        engine.decoder.close()
        recorder.close()
        folder, _ = session_of(recorder)
        files[label] = np.load(folder / "w.npy")[0]
        # Every call decoded so far is in the file (and, beside the mix, the calls decoding ahead).
        assert frames <= files[label].shape[1] <= frames + 2 * audio["frames_per_call"], label
    reference, tried = files["reference"], files["tried"]
    n = min(reference.shape[1], tried.shape[1])
    assert n >= 200 * BLOCK // 128
    np.testing.assert_array_equal(tried[:, :n], reference[:, :n])


def test_bad_recording_settings_are_reported_with_the_key(tmp_path, drone):
    config = piece(tmp_path, drone, format="flac", subtype="float32", segment_s=0.1, where="here")
    with pytest.raises(ConfigError) as err:
        load_config(config)
    text = str(err.value)
    assert "recording.subtype" in text and "pcm24" in text
    assert "recording.segment_s = 0.1" in text
    assert "recording.where" in text and "unknown key" in text


def test_session_folder_is_made_even_when_the_recordings_folder_is_new(tmp_path, drone):
    config = piece(tmp_path, drone, mode="always", folder="deep/rec")
    engine, recorder = start(config)
    play(engine, 10)
    recorder.close()
    assert recorder.sessions[0].parent == (tmp_path / "deep" / "rec").resolve()
    shutil.rmtree(tmp_path / "deep")


def test_the_log_starts_with_the_commands_of_the_start_block_not_the_history(tmp_path, drone):
    # The session begins with a checkpoint: earlier commands are in it (and in the journal), not in the log.
    engine, recorder = start(piece(tmp_path, drone))
    play(engine, 5)
    engine.submit(c.SetVoiceGain("n", 0.5))
    play(engine, 5)
    engine.submit(c.ReseedVoice("w", 1234))  # the same block as the start, applied before it
    engine.submit(c.StartRecording())
    play(engine, 10)
    assert recorder.wait_idle()
    folder, session = session_of(recorder)
    log = [json.loads(line) for line in (folder / "commands.jsonl").read_text().splitlines()]
    assert [(entry["block"], entry["cmd"]) for entry in log] == [(10, "voice.seed"), (10, "record.start")]
    journal = [json.loads(line) for line in (folder.parent / "commands.jsonl").read_text().splitlines()]
    assert [(entry["block"], entry["cmd"]) for entry in journal] == [
        (5, "voice.gain"),
        (10, "voice.seed"),
        (10, "record.start"),
    ]
    assert session["segments"][0]["checkpoint"] == session["segments"][0]["file"][:-4] + ".checkpoint"
    assert session["voice_seeds"]["w"] == 1234 and session["start_block"] == 10
    recorder.close()
