"""Decode call shapes (batch padding, frames per call) and parallel decode, on real rendered blocks."""

from __future__ import annotations

import fcntl
import json
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import soundfile as sf
from structlog.testing import capture_logs

from latentd.config import load_config
from latentd.engine import callshape, shape_cache
from latentd.engine.callshape import CallShape, choose_shape, frame_candidates, shape_for
from latentd.engine.engine import Engine
from latentd.engine.shape_cache import CACHE_NAME
from latentd.installation.models import LoadedModel
from latentd.modelkit.builder import SynthSpec
from latentd.offline.build import build_engine
from tests.pieces import write_piece

SR = 48000


def play(engine: Engine, seconds: float) -> np.ndarray:
    blocks = int(np.ceil(seconds * engine.samplerate / engine.blocksize))
    return np.concatenate([engine.next_block() for _ in range(blocks)], axis=1)


@pytest.fixture
def stateless(model_factory) -> Path:
    return model_factory(SynthSpec(latent_size=4, ratio=1024, sr=SR, streaming=False))


@pytest.fixture
def streaming(model_factory) -> Path:
    return model_factory(SynthSpec(latent_size=8, ratio=512, sr=44100, base_hz=440.0))


def one_voice(tmp_path: Path, model: Path, **audio: object) -> Path:
    return write_piece(
        tmp_path,
        models={"m": model},
        voices={"v": {"model": "m", "source": {"kind": "walk"}}},
        audio=dict(audio),
    )


def test_the_chosen_shape_is_logged_with_its_measurements_and_used(tmp_path, streaming, monkeypatch):
    monkeypatch.setattr(callshape, "_CHOSEN", {})  # measure here, whatever loaded this model before
    config = load_config(one_voice(tmp_path, streaming, decode_latency_ms=100.0))
    with capture_logs() as logs:
        engine = build_engine(config, fade_in_s=0.0, live_loads=False)
    events = [e for e in logs if e["event"] == "model.call_shape"]
    assert len(events) == 1 and events[0]["model"] == "m"
    # Within 100 ms at ratio 512 and 44.1 kHz: 1, 2, 4 or 8 frames, each with and without padding.
    assert sorted(events[0]["measured"]) == ["1x1", "1x2", "1x4", "1x8", "2x1", "2x2", "2x4", "2x8"]
    shape = engine.installation.call_shapes["m"]
    assert events[0]["shape"] == str(shape)
    group = engine.groups[0]
    assert (group.batch, group.frames_per_call) == (shape.batch, shape.frames)
    assert shape.frames in (1, 2, 4, 8)
    with capture_logs() as logs:
        again = build_engine(config, fade_in_s=0.0, live_loads=False)
    # Loaded again: the same shape, not measured again (its samples stay the same).
    assert again.installation.call_shapes["m"] == shape
    assert [e["source"] for e in logs if e["event"] == "model.call_shape"] == ["cache"]
    before = group.calls
    play(engine, 0.2)
    decoded = (group.calls - before) * shape.frames * 512 * SR / 44100
    assert decoded >= 0.2 * SR  # the FIFO was filled by calls of the chosen size


def test_without_a_latency_budget_frames_per_call_stays_as_set(tmp_path, streaming):
    model = LoadedModel(streaming)
    assert frame_candidates(model, 4, None) == [4]
    assert frame_candidates(model, 4, 50.0) == [1, 2, 4]  # 4 × 512 / 44.1 kHz = 46 ms
    shape, timings = choose_shape(model, 1, 4, pad=False)
    assert (shape.batch, shape.frames) == (1, 4) and len(timings) == 1


def test_padding_leaves_the_voices_samples_identical_for_a_stateless_model(tmp_path, stateless):
    config = load_config(one_voice(tmp_path, stateless, frames_per_call=4))
    plain = build_engine(config, fade_in_s=0.0, live_loads=False, call_shapes={"m": [1, 4]})
    padded = build_engine(config, fade_in_s=0.0, live_loads=False, call_shapes={"m": [3, 4]})
    assert padded.groups[0].batch == 3 and plain.groups[0].batch == 1
    a, b = play(plain, 0.5), play(padded, 0.5)
    assert np.abs(a).max() > 0.01, "the render is silent"
    np.testing.assert_array_equal(a, b)


def test_padding_keeps_each_streaming_row_its_own_state(tmp_path, streaming):
    config = load_config(
        write_piece(
            tmp_path,
            models={"m": streaming},
            voices={
                "a": {"model": "m", "source": {"kind": "walk"}},
                "b": {"model": "m", "source": {"kind": "noise", "smooth_s": 0.2}},
            },
            audio={"frames_per_call": 4},
        )
    )
    plain = build_engine(config, fade_in_s=0.0, live_loads=False, call_shapes={"m": [2, 4]})
    padded = build_engine(config, fade_in_s=0.0, live_loads=False, call_shapes={"m": [3, 4]})
    a, b = play(plain, 0.5), play(padded, 0.5)
    assert np.abs(a).max() > 0.01, "the render is silent"
    # Convolution paths may differ in the last bits between batch sizes, never by more.
    np.testing.assert_allclose(a, b, atol=1e-5)


def test_a_recorded_shape_is_used_as_given(tmp_path, streaming):
    model = LoadedModel(streaming)
    shape = shape_for(model, "m", 1, frames_per_call=8, latency_ms=None, pad=True, recorded=(2, 3))
    assert (shape.rows, shape.batch, shape.frames, shape.padding) == (1, 2, 3, 1)
    assert str(shape) == "batch 2 (1 voice + 1 padding) × 3 frames"


def test_parallel_decode_gives_the_same_samples_as_serial(tmp_path, model_factory):
    models = {
        "a": model_factory(SynthSpec(latent_size=4, ratio=1024, sr=SR)),
        "b": model_factory(SynthSpec(latent_size=8, ratio=512, sr=44100, base_hz=440.0)),
        "c": model_factory(SynthSpec(latent_size=4, ratio=2048, sr=SR, base_hz=110.0, hidden=16)),
    }
    config = load_config(
        write_piece(
            tmp_path,
            models=models,
            voices={
                "n": {"model": "a", "source": {"kind": "noise", "smooth_s": 0.2}},
                "w": {"model": "b", "source": {"kind": "walk"}},
                "x": {"model": "c", "source": {"kind": "walk"}},
                "y": {"model": "c", "source": {"kind": "noise", "smooth_s": 0.1}},
            },
        )
    )
    shapes = {"a": [1, 4], "b": [1, 4], "c": [2, 4]}
    serial = build_engine(config, fade_in_s=0.0, live_loads=False, call_shapes=shapes, decode_threads=1)
    parallel = build_engine(config, fade_in_s=0.0, live_loads=False, call_shapes=shapes, decode_threads=3)
    try:
        assert parallel.decoder.threads == 3
        a, b = play(serial, 1.0), play(parallel, 1.0)
        assert len(parallel.decoder._lanes) == 3, "the models never decoded in their own threads"
    finally:
        parallel.decoder.close()
    assert np.abs(a).max() > 0.01, "the render is silent"
    np.testing.assert_array_equal(a, b)


def test_a_session_records_the_shapes_and_threads_replay_decodes_with():
    from latentd.recording.session_file import SessionStatic

    data = {
        "piece": "p",
        "venue": "v",
        "venue_config": "/v.toml",
        "piece_file": "/p/piece.toml",
        "seed": 1,
        "samplerate": 48000,
        "blocksize": 256,
        "fade_in_s": 0.5,
        "call_shapes": {"rave": [2, 2]},
        "decode_threads": 3,
    }
    static = SessionStatic.from_json(data)
    assert static.call_shapes == {"rave": [2, 2]} and static.decode_threads == 3
    again = SessionStatic.from_json(static.to_json())
    assert again.call_shapes == {"rave": [2, 2]} and again.decode_threads == 3
    older = SessionStatic.from_json(
        {k: v for k, v in data.items() if k not in ("call_shapes", "decode_threads")}
    )
    assert older.call_shapes == {} and older.decode_threads == 1  # measured again, serially


# The shapes a machine chose, kept on disk (call-shapes.json beside the venue's state file).

LATENTD = Path(sys.executable).parent / "latentd"


def cache_file(config_path: Path) -> Path:
    return load_config(config_path).state_file.parent / CACHE_NAME


def shape_events(logs: list[dict[str, object]]) -> list[dict[str, object]]:
    return [e for e in logs if e["event"] == "model.call_shape"]


def render_in_a_new_process(config: Path, out: Path) -> list[dict[str, object]]:
    """``latentd render`` in its own process; its JSON log events."""
    done = subprocess.run(
        [str(LATENTD), "render", "-c", str(config), "--seconds", "1", "-o", str(out)],
        capture_output=True,
        text=True,
        check=False,
    )
    assert done.returncode == 0, done.stderr + done.stdout
    return [json.loads(line) for line in done.stdout.splitlines() if line.startswith("{")]


@pytest.mark.skipif(not LATENTD.is_file(), reason=f"no console script at {LATENTD} (not installed)")
def test_a_render_in_a_new_process_decodes_the_shape_measured_before_and_the_same_samples(
    tmp_path, streaming, monkeypatch
):
    config = write_piece(
        tmp_path,
        models={"m": streaming},
        voices={
            "a": {"model": "m", "source": {"kind": "walk"}},
            "b": {"model": "m", "source": {"kind": "noise", "smooth_s": 0.2}},
        },
        audio={"decode_latency_ms": 100.0},
        extra_venue={"logging": {"level": "info", "format": "json"}},
    )
    first = shape_events(render_in_a_new_process(config, tmp_path / "first.wav"))
    assert [(e["source"], e["model"]) for e in first] == [("measured", "m")]
    stored = json.loads(cache_file(config).read_text())["shapes"]
    (entry,) = stored.values()
    assert entry["key"]["rows"] == 2 and entry["key"]["decode_latency_ms"] == 100.0
    assert first[0]["shape"] == str(CallShape(2, entry["batch"], entry["frames"]))
    second = shape_events(render_in_a_new_process(config, tmp_path / "second.wav"))
    assert [(e["source"], e["shape"]) for e in second] == [("cache", first[0]["shape"])]
    # Every sample bit for bit (the files' PEAK chunks hold the time they were written).
    first_audio, _ = sf.read(tmp_path / "first.wav", dtype="float32")
    second_audio, _ = sf.read(tmp_path / "second.wav", dtype="float32")
    assert np.abs(first_audio).max() > 0.01, "the render is silent"
    assert first_audio.tobytes() == second_audio.tobytes()


def test_a_stored_shape_is_decoded_until_measured_again(tmp_path, streaming, monkeypatch):
    config_path = one_voice(tmp_path, streaming, decode_latency_ms=100.0)
    config = load_config(config_path)
    monkeypatch.setattr(callshape, "_CHOSEN", {})
    measured = build_engine(config, fade_in_s=0.0, live_loads=False).installation.call_shapes["m"]
    # Another shape in the file (as another load might have measured): a new process decodes it.
    path = cache_file(config_path)
    data = json.loads(path.read_text())
    (entry,) = data["shapes"].values()
    other = 8 if measured.frames != 8 else 4
    entry["batch"], entry["frames"] = 1, other
    path.write_text(json.dumps(data))
    monkeypatch.setattr(callshape, "_CHOSEN", {})
    with capture_logs() as logs:
        engine = build_engine(config, fade_in_s=0.0, live_loads=False)
    assert engine.installation.call_shapes["m"] == CallShape(1, 1, other)
    assert (engine.groups[0].batch, engine.groups[0].frames_per_call) == (1, other)
    (event,) = shape_events(logs)
    assert event["source"] == "cache" and event["cache"] == str(path)
    # Measured again on purpose (latentd check --remeasure): the entry is replaced by the new choice.
    with capture_logs() as logs:
        again = build_engine(config, fade_in_s=0.0, live_loads=False, remeasure=True)
    assert [e["source"] for e in shape_events(logs)] == ["measured"]
    shape = again.installation.call_shapes["m"]
    (entry,) = json.loads(path.read_text())["shapes"].values()
    assert (entry["batch"], entry["frames"]) == (shape.batch, shape.frames)


def test_another_venue_setting_measures_again(tmp_path, streaming, monkeypatch):
    monkeypatch.setattr(callshape, "_CHOSEN", {})
    build_engine(load_config(one_voice(tmp_path, streaming, decode_latency_ms=100.0)), live_loads=False)
    monkeypatch.setattr(callshape, "_CHOSEN", {})
    with capture_logs() as logs:
        build_engine(load_config(one_voice(tmp_path, streaming, decode_latency_ms=50.0)), live_loads=False)
    assert [e["source"] for e in shape_events(logs)] == ["measured"]
    assert len(json.loads(cache_file(tmp_path / "venue.toml").read_text())["shapes"]) == 2


def test_a_corrupt_cache_is_ignored_with_a_warning_and_written_again(tmp_path, streaming, monkeypatch):
    config_path = one_voice(tmp_path, streaming, decode_latency_ms=100.0)
    path = cache_file(config_path)
    path.parent.mkdir(parents=True)
    path.write_text('{"format": 1, "shapes": {"ab')  # cut short, as by a full disk
    monkeypatch.setattr(callshape, "_CHOSEN", {})
    with capture_logs() as logs:
        engine = build_engine(load_config(config_path), fade_in_s=0.0, live_loads=False)
    warnings = [e for e in logs if e["event"] == "model.call_shape_cache_unreadable"]
    assert len(warnings) == 1 and warnings[0]["path"] == str(path) and "not JSON" in warnings[0]["error"]
    assert [e["source"] for e in shape_events(logs)] == ["measured"]
    (entry,) = json.loads(path.read_text())["shapes"].values()
    shape = engine.installation.call_shapes["m"]
    assert (entry["batch"], entry["frames"]) == (shape.batch, shape.frames)


def test_an_unwritable_cache_is_logged_once_and_the_load_goes_on(
    tmp_path, streaming, model_factory, monkeypatch
):
    other = model_factory(SynthSpec(latent_size=4, ratio=1024, sr=SR, seed=3))
    config_path = write_piece(
        tmp_path,
        models={"m": streaming, "n": other},
        voices={
            "a": {"model": "m", "source": {"kind": "walk"}},
            "b": {"model": "n", "source": {"kind": "walk"}},
        },
        audio={"decode_latency_ms": 100.0},
    )
    state = load_config(config_path).state_file.parent
    state.write_text("a file where the state folder should be")
    monkeypatch.setattr(callshape, "_CHOSEN", {})
    monkeypatch.setattr(shape_cache, "_REPORTED", set())  # reported once per process: here, once per test
    with capture_logs() as logs:
        engine = build_engine(load_config(config_path), fade_in_s=0.0, live_loads=False)
    assert set(engine.installation.call_shapes) == {"m", "n"}
    assert [e["source"] for e in shape_events(logs)] == ["measured", "measured"]
    unwritable = [e for e in logs if e["event"] == "model.call_shape_cache_unwritable"]
    assert len(unwritable) == 1 and unwritable[0]["path"] == str(state / CACHE_NAME)
    assert not [e for e in logs if e["event"] == "model.call_shape_cache_unreadable"]
    # Loaded again in this process: the shapes chosen before, and no second report.
    with capture_logs() as logs:
        again = build_engine(load_config(config_path), fade_in_s=0.0, live_loads=False)
    assert again.installation.call_shapes == engine.installation.call_shapes
    assert [e["measured"] for e in shape_events(logs)] == ["as before", "as before"]
    assert not [e for e in logs if e["event"].startswith("model.call_shape_cache")]


def test_a_cache_locked_by_a_stuck_process_does_not_stop_a_load(tmp_path, streaming, monkeypatch):
    config_path = one_voice(tmp_path, streaming, decode_latency_ms=100.0)
    path = cache_file(config_path)
    path.parent.mkdir(parents=True)
    monkeypatch.setattr(shape_cache, "LOCK_WAIT_S", 0.0)
    monkeypatch.setattr(callshape, "_CHOSEN", {})
    with open(path.with_name(f".{CACHE_NAME}.lock"), "w") as held:
        fcntl.flock(held, fcntl.LOCK_EX)  # another open file: the load's own flock must wait for it
        with capture_logs() as logs:
            engine = build_engine(load_config(config_path), fade_in_s=0.0, live_loads=False)
    assert [e["event"] for e in logs if e["event"].startswith("model.call_shape")] == [
        "model.call_shape_cache_locked",
        "model.call_shape",
    ]
    (entry,) = json.loads(path.read_text())["shapes"].values()
    assert entry["frames"] == engine.installation.call_shapes["m"].frames


def test_check_remeasure_measures_again(tmp_path, streaming, monkeypatch, capsys):
    from latentd.cli import main

    config_path = one_voice(tmp_path, streaming, decode_latency_ms=100.0)
    assert main(["check", "-c", str(config_path)]) == 0
    monkeypatch.setattr(callshape, "_CHOSEN", {})
    with capture_logs() as logs:
        assert main(["check", "-c", str(config_path)]) == 0
    assert [e["source"] for e in shape_events(logs)] == ["cache"]
    with capture_logs() as logs:
        assert main(["check", "-c", str(config_path), "--remeasure"]) == 0
    assert [e["source"] for e in shape_events(logs)] == ["measured"]
