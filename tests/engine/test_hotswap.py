"""Hot-swap: a voice changes model while playing, crossfading without a gap or a click."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import numpy as np
import pytest
import soundfile as sf
from structlog.testing import capture_logs

from latentd.config import ConfigError, load_config
from latentd.engine import commands as c
from latentd.engine.engine import Engine
from latentd.engine.voice import SWAP_CROSSFADE_S
from latentd.installation.piece import load_installation
from latentd.modelkit.builder import SynthSpec
from latentd.offline.replay import replay
from latentd.recording.recorder import attach_recorder
from tests.control.conftest import deliver, make_server
from tests.pieces import write_piece

SR = 48000
BLOCK = 256
FL, FR = 0, 1
WINDOW = SR // 100  # 10 ms


def _piece(root: Path, model_factory, v_model: str = "a") -> Path:
    """Voice ``v`` (a steady tone) on FL and voice ``w`` (noise) on FR, both on model ``a`` by default;
    ``b`` is a model of another pitch and latent rate (so a swap builds a new source)."""
    low = model_factory(SynthSpec(latent_size=4, ratio=1024, sr=SR, base_hz=220.0))
    high = model_factory(SynthSpec(latent_size=4, ratio=512, sr=SR, base_hz=880.0, seed=3))
    a, b = root / "a.ts", root / "b.ts"
    root.mkdir(parents=True, exist_ok=True)
    shutil.copyfile(low, a)
    shutil.copyfile(high, b)
    return write_piece(
        root,
        models={"a": a, "b": b},
        voices={
            "v": {
                "model": v_model,
                "source": {"kind": "constant", "values": 0.0},
                "bias": [0.0, -2.0, -4.0, 1.0],  # dark and noiseless: a clean tone shows clicks
                "route": ["FL"],
            },
            "w": {"model": "a", "source": {"kind": "noise", "smooth_s": 0.2}, "route": ["FR"]},
        },
        extra_venue={"recording": {"segment_s": 2.0, "latents": False}},
    )


def _engine(venue: Path, **kwargs) -> Engine:
    return Engine(load_installation(load_config(venue)), fade_in_s=0.0, **kwargs)


def _render(engine: Engine, blocks: int) -> np.ndarray:
    return np.concatenate([engine.next_block() for _ in range(blocks)], axis=1)


def _swap_live(engine: Engine, voice: str, model: str) -> tuple[list[np.ndarray], int]:
    """Submit the swap and render block by block while the loader thread runs; (blocks, landing block)."""
    engine.submit(c.SwapModel(voice, model))
    blocks = [engine.next_block()]
    while engine.swaps_loading:
        blocks.append(engine.next_block())
    landed = [b for b, cmd in engine.command_log if isinstance(cmd, c.ModelSwapped)]
    return blocks, landed[0] if landed else -1


def _window_rms(x: np.ndarray) -> np.ndarray:
    n = len(x) // WINDOW
    return np.sqrt(np.mean(np.square(x[: n * WINDOW].reshape(n, WINDOW), dtype=np.float64), axis=1))


def _dominant_hz(x: np.ndarray) -> float:
    spectrum = np.abs(np.fft.rfft(x * np.hanning(len(x))))
    return float(np.fft.rfftfreq(len(x), 1 / SR)[np.argmax(spectrum)])


def test_swap_under_load_crossfades_without_gap_or_click(tmp_path, model_factory):
    venue = _piece(tmp_path / "swap", model_factory)
    alone_a = _render(_engine(venue), 200)
    alone_b = _render(_engine(_piece(tmp_path / "only-b", model_factory, v_model="b")), 200)

    engine = _engine(venue)
    before = _render(engine, 40)
    during, landed = _swap_live(engine, "v", "b")
    after = _render(engine, 200)
    out = np.concatenate([before, *during, after], axis=1)
    assert np.isfinite(out).all()
    assert landed >= 40 and engine.counters.swaps == 1 and engine.status()["voices"]["v"]["model"] == "b"
    assert engine.counters.swap_failures == 0

    # Around the swap: from 5 blocks before it lands until 5 blocks after the crossfade ends.
    fade_blocks = int(SWAP_CROSSFADE_S * SR / BLOCK)
    around = out[FL, (landed - 5) * BLOCK : (landed + fade_blocks + 5) * BLOCK]
    floor = 0.3 * min(
        _window_rms(alone_a[FL, 20 * BLOCK :]).min(), _window_rms(alone_b[FL, 20 * BLOCK :]).min()
    )
    assert _window_rms(around).min() > floor, "the voice went silent during the swap"
    # A step shows in the second difference; an equal-power crossfade keeps it within sqrt(2) times the
    # larger of the two signals' own (plus a tiny term from the fade's own slope).
    own = max(np.abs(np.diff(x[FL, 20 * BLOCK :], 2)).max() for x in (alone_a, alone_b))
    assert np.abs(np.diff(around, 2)).max() <= np.sqrt(2) * own * 1.05, "a click beyond the crossfade"

    # After the crossfade the voice plays the new model's pitch, not the old one's.
    tail = out[FL, -100 * BLOCK :]
    hz_a, hz_b = _dominant_hz(alone_a[FL, 20 * BLOCK :]), _dominant_hz(alone_b[FL, 20 * BLOCK :])
    assert abs(hz_a - hz_b) > 100
    assert abs(_dominant_hz(tail) - hz_b) < 10
    # The old model's group was released; the other voice on model a plays on.
    assert [g.name for g in engine.groups] == ["a", "b"]
    assert [v.name for v in engine.groups[1].voices] == ["v"]
    assert _window_rms(out[FR, 20 * BLOCK :]).min() > 0.001


def test_later_commands_reach_the_new_voice(tmp_path, model_factory):
    engine = _engine(_piece(tmp_path, model_factory))
    _render(engine, 5)
    _swap_live(engine, "v", "b")
    _render(engine, 100)
    engine.submit(c.SetVoiceGain("v", 0.0))
    quiet = _render(engine, 40)
    assert np.sqrt(np.mean(np.square(quiet[FL, -20 * BLOCK :]))) < 1e-4
    assert engine.check(c.SwapModel("v", "b")) == "voice 'v' already plays model 'b'"


def test_a_model_that_fails_to_load_leaves_the_old_one_playing(tmp_path, model_factory):
    venue = _piece(tmp_path, model_factory)
    engine = _engine(venue)
    reference = _engine(venue)
    (tmp_path / "b.ts").write_bytes(b"not a TorchScript archive" * 40)  # replaced on disk after start
    with capture_logs() as logs:
        before = _render(engine, 5)
        during, landed = _swap_live(engine, "v", "b")
        after = _render(engine, 50)
    assert landed == -1
    assert engine.counters.swap_failures == 1 and engine.status()["swap_failures"] == 1
    (failed,) = [e for e in logs if e["event"] == "model.swap_failed"]
    assert failed["voice"] == "v" and failed["model"] == "b" and "b.ts" in failed["reason"]
    played = np.concatenate([before, *during, after], axis=1)
    np.testing.assert_array_equal(played, _render(reference, played.shape[1] // BLOCK))
    assert (
        engine.status()["voices"]["v"]["model"] == "a" and engine.status()["voices"]["v"]["loading"] is None
    )


def test_osc_model_route_accepts_a_piece_model_and_refuses_others(tmp_path, model_factory):
    engine = _engine(_piece(tmp_path, model_factory))
    server = make_server(engine)
    (error,) = deliver(server, "/voice/v/model", "nope")
    assert error.address == "/error" and "unknown model 'nope'" in error.args[1]
    (error,) = deliver(server, "/voice/v/model", "a")
    assert error.address == "/error" and "already plays model 'a'" in error.args[1]
    assert deliver(server, "/voice/v/model", "b") == []
    engine.next_block()
    assert [cmd for _, cmd in engine.command_log] == [c.SwapModel("v", "b")]
    (error,) = deliver(server, "/voice/v/model", "b")  # while loading
    assert error.address == "/error" and "already swapping" in error.args[1]
    while engine.swaps_loading:
        engine.next_block()


def test_a_swap_landing_that_the_engine_did_not_load_is_refused(tmp_path, model_factory):
    engine = _engine(_piece(tmp_path, model_factory))
    with capture_logs() as logs:
        engine.submit(c.ModelSwapped("v", "b"))
        engine.next_block()
    (refused,) = [e for e in logs if e["event"] == "command.refused"]
    assert refused["reason"] == (
        "voice.model_swapped is logged by the engine when a swap lands; send voice.model instead"
    )
    assert engine.counters.refused_commands == 1 and engine.counters.swap_failures == 0
    assert engine.snapshot.voices["v"].model == "a" and engine.command_log == []


@pytest.mark.parametrize("gap_blocks", [0, 3])
def test_replay_of_a_session_with_a_swap_equals_the_recording(tmp_path, model_factory, gap_blocks):
    venue = _piece(tmp_path, model_factory)
    config = load_config(venue)
    engine = Engine(load_installation(config))
    recorder = attach_recorder(engine, config)
    engine.submit(c.StartRecording("swap"))
    blocks = [engine.next_block() for _ in range(20 + gap_blocks)]
    during, landed = _swap_live(engine, "v", "b")
    blocks += during
    blocks += [engine.next_block() for _ in range(150)]
    engine.submit(c.StopRecording())
    engine.next_block()
    recorder.close()
    folder = recorder.sessions[0]
    logged = [json.loads(line) for line in (folder / "commands.jsonl").read_text().splitlines()]
    assert {"block": landed, "cmd": "voice.model_swapped", "voice": "v", "model": "b"} in logged

    session = json.loads((folder / "session.json").read_text())
    recorded = np.concatenate(
        [sf.read(folder / s["file"], dtype="float32", always_2d=True)[0] for s in session["segments"]]
    )
    np.testing.assert_array_equal(recorded, np.concatenate(blocks, axis=1).T)
    result = replay(folder, tmp_path / "replay.wav")
    replayed, _ = sf.read(result.output, dtype="float32", always_2d=True)
    np.testing.assert_array_equal(replayed, recorded)


def test_latents_of_a_voice_swapped_to_another_latent_size_go_on_in_a_new_file(tmp_path, model_factory):
    wide = model_factory(SynthSpec(latent_size=8, ratio=512, sr=SR, base_hz=440.0, seed=5))
    root = tmp_path / "piece"
    root.mkdir()
    shutil.copyfile(wide, root / "wide.ts")
    narrow = model_factory(SynthSpec(latent_size=4, ratio=1024, sr=SR))
    shutil.copyfile(narrow, root / "narrow.ts")
    venue = write_piece(
        root,
        models={"narrow": root / "narrow.ts", "wide": root / "wide.ts"},
        voices={"v": {"model": "narrow", "source": {"kind": "walk"}, "route": ["FL"]}},
        extra_venue={"recording": {"latents": True}},
    )
    config = load_config(venue)
    engine = Engine(load_installation(config), fade_in_s=0.0)
    recorder = attach_recorder(engine, config)
    engine.submit(c.StartRecording("wide"))
    _render(engine, 40)
    _swap_live(engine, "v", "wide")
    _render(engine, 100)
    engine.submit(c.StopRecording())
    engine.next_block()
    recorder.close()
    folder = recorder.sessions[0]
    before, rate_before = sf.read(folder / "v_latents.wav", dtype="float32", always_2d=True)
    after, rate_after = sf.read(folder / "v.2_latents.wav", dtype="float32", always_2d=True)
    assert before.shape[1] == 4 and after.shape[1] == 8
    assert (rate_before, rate_after) == (SR // 1024, SR // 512)
    assert np.load(folder / "v.2.npy").shape == (1, 8, after.shape[0])
    session = json.loads((folder / "session.json").read_text())
    assert session["stop_reason"] != "error"


def _sized_piece(root: Path, model_factory, v: dict, w: dict | None = None) -> Path:
    """Models ``four`` (latent_size 4), ``fast`` (4 at another latent rate) and ``eight`` (8)."""
    root.mkdir(parents=True, exist_ok=True)
    specs = {
        "four": SynthSpec(latent_size=4, ratio=1024, sr=SR),
        "fast": SynthSpec(latent_size=4, ratio=512, sr=SR, seed=3),
        "eight": SynthSpec(latent_size=8, ratio=1024, sr=SR, seed=5),
    }
    models = {}
    for name, spec in specs.items():
        models[name] = root / f"{name}.ts"
        shutil.copyfile(model_factory(spec), models[name])
    voices = {"v": {"model": "four", "route": ["FL"], **v}}
    if w is not None:
        voices["w"] = {"model": "four", "route": ["FR"], **w}
    return write_piece(root, models=models, voices=voices)


def test_a_swap_the_source_or_per_dim_settings_cannot_follow_is_refused_at_once(tmp_path, model_factory):
    lfo = {"source": {"kind": "lfo", "freq_hz": [0.01, 0.02, 0.03, 0.04]}}
    biased = {"source": {"kind": "walk"}, "bias": [0.0, 1.0, 2.0, 3.0]}
    engine = _engine(_sized_piece(tmp_path, model_factory, lfo, biased))
    server = make_server(engine)
    (error,) = deliver(server, "/voice/v/model", "eight")
    assert error.address == "/error"
    assert error.args[1] == (
        "voice 'v' cannot play model 'eight' (latent_size 8 at 46.875 Hz): voices.v.source: "
        "`freq_hz`: 4 values given, but latent_size is 8; give one value for every dimension or a list of 8"
    )
    (error,) = deliver(server, "/voice/w/model", "eight")
    assert "voice 'w' cannot play model 'eight'" in error.args[1] and "voices.w.bias:" in error.args[1]
    engine.next_block()
    assert engine.command_log == [] and not engine.swaps_loading
    assert deliver(server, "/voice/v/model", "fast") == []  # the same latent size: the source follows
    engine.next_block()
    assert [cmd for _, cmd in engine.command_log] == [c.SwapModel("v", "fast")]
    while engine.swaps_loading:
        engine.next_block()


def test_declared_swap_targets_are_checked_with_the_piece_and_bound_the_swaps(tmp_path, model_factory):
    lfo = {"kind": "lfo", "freq_hz": [0.01, 0.02, 0.03, 0.04]}
    venue = _sized_piece(tmp_path / "bad", model_factory, {"source": lfo, "swap_targets": ["fast", "eight"]})
    with pytest.raises(ConfigError) as info:
        load_installation(load_config(venue))
    (problem,) = info.value.problems
    assert (problem.key, problem.value) == ("voices.v.swap_targets[1]", "eight")
    assert problem.message == (
        "model 'eight' (latent_size 8 at 46.875 Hz): voices.v.source = 'lfo': "
        "`freq_hz`: 4 values given, but latent_size is 8; give one value for every dimension or a list of 8"
    )
    walk = {"source": {"kind": "walk"}, "swap_targets": ["eight"]}
    engine = _engine(_sized_piece(tmp_path / "good", model_factory, walk))
    server = make_server(engine)
    (error,) = deliver(server, "/voice/v/model", "fast")
    assert error.args[1] == (
        "model 'fast' is not among the swap_targets of voice 'v' (it may play: four, eight)"
    )
    assert deliver(server, "/voice/v/model", "eight") == []
    while engine.swaps_loading or not engine.command_log:
        engine.next_block()
    _render(engine, 2)
    assert engine.snapshot.voices["v"].model == "eight"
    assert deliver(server, "/voice/v/model", "four") == []  # back to its own model
