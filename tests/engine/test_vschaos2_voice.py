"""vschaos2 voices in the engine: beside a RAVE export, conditioning guarded, constant batch, recovery."""

import shutil
import threading
from pathlib import Path

import numpy as np
import pytest
from structlog.testing import capture_logs

from latentd.config import load_config
from latentd.engine import commands as c
from latentd.engine.decode import ModelGroup
from latentd.engine.engine import Engine
from latentd.installation.piece import load_installation
from latentd.offline.build import build_engine
from tests.pieces import write_piece

BLOCK = 256
SR = 48000
LATENTS = 8


def vs_voice(route: int, **extra: object) -> dict[str, object]:
    return {
        "model": "vs",
        "source": {"kind": "walk", "step_std": 0.5},
        "route": [route],
        "conditioning": {
            "pitch": {"kind": "steps", "offset": 5.5, "amplitude": 5.5, "step_s": 0.2},
            "octave": 3,
        },
        **extra,
    }


def engine_for(
    tmp_path: Path,
    models: dict[str, Path],
    voices: dict[str, dict[str, object]],
    *,
    sections: list[dict[str, object]] | None = None,
    seed: int = 7,
    live_loads: bool = False,
    folder: str = "a",
    audio: dict[str, object] | None = None,
) -> Engine:
    specs = {
        name: {"path": str(path), **({"samplerate": 44100} if name == "vs" else {})}
        for name, path in models.items()
    }
    config = write_piece(
        tmp_path / folder,
        models={},
        voices=voices,
        sections=sections,
        seed=seed,
        # Batch padding is chosen by timing at load: pinned, so engines compared here decode alike.
        audio={"layout": "stereo", "frames_per_call": 8, "batch_padding": False, **(audio or {})},
        programme={"order": "sequence", "crossfade_s": 0.1, "loop": True} if sections else None,
        extra_piece={"models": specs},
    )
    if audio:  # the venue's decode settings are made real by build_engine
        return build_engine(load_config(config), fade_in_s=0.0, live_loads=live_loads)
    return Engine(load_installation(load_config(config)), fade_in_s=0.0, live_loads=live_loads)


def play(engine: Engine, blocks: int) -> np.ndarray:
    return np.concatenate([engine.next_block() for _ in range(blocks)], axis=1)


def block_peaks(audio: np.ndarray) -> np.ndarray:
    """Peak of each block, per channel: [channels, blocks]."""
    return np.abs(audio.reshape(audio.shape[0], -1, BLOCK)).max(axis=2)


def rms(x: np.ndarray) -> float:
    return float(np.sqrt(np.mean(np.square(x, dtype=np.float64))))


@pytest.fixture
def rave(shared_models_dir: Path) -> Path:
    return shared_models_dir / "rave-v2small-c16_streaming.ts"


def test_beside_a_rave_export_both_voices_sound_and_the_seed_repeats(tmp_path, rave, vschaos2_model):
    models = {"rave": rave, "vs": vschaos2_model}
    voices = {
        "r": {"model": "rave", "source": {"kind": "noise"}, "route": [0], "gain": 4.0},
        "v": vs_voice(1),
    }
    first = play(engine_for(tmp_path, models, voices, folder="a"), 100)
    again = play(engine_for(tmp_path, models, voices, folder="b"), 100)
    # The tiny c16 export is quiet (about -60 dBFS); silence would be exactly 0.
    assert rms(first[0]) > 1e-3 and rms(first[1]) > 0.02, (rms(first[0]), rms(first[1]))
    assert block_peaks(first)[:, 20:].min() > 0.0
    np.testing.assert_array_equal(first, again)


def test_models_that_draw_random_numbers_decode_beside_the_mix_and_still_repeat(
    tmp_path, rave, vschaos2_model
):
    models = {"rave": rave, "vs": vschaos2_model}
    voices = {
        "r": {"model": "rave", "source": {"kind": "noise"}, "route": [0], "gain": 4.0},
        "v": vs_voice(1),
    }
    renders = []
    for folder in ("a", "b"):  # one after the other: torch's random generator is the process's own
        engine = engine_for(tmp_path, models, voices, folder=folder, audio={"decode_threads": 3})
        try:
            renders.append(play(engine, 100))
            decoder = engine.decoder
            # Both draw random numbers (RAVE's noise, vschaos2's phase): they share the one random lane.
            assert decoder.deterministic == set() and decoder._lane is not None and not decoder._lanes
        finally:
            engine.decoder.close()
    first, again = renders
    assert rms(first[0]) > 1e-3 and rms(first[1]) > 0.02, (rms(first[0]), rms(first[1]))
    np.testing.assert_array_equal(first, again)


def record_conditioning(group: ModelGroup) -> list[np.ndarray]:
    """Every conditioning value the model is given, as decode inputs [batch, inputs, frames]."""
    seen: list[np.ndarray] = []
    group.shape_latents = lambda g, z: seen.append(z[:, LATENTS:, :].copy())
    return seen


def test_a_wandering_source_and_an_operator_value_are_clamped_never_passed_out_of_range(
    tmp_path, vschaos2_model
):
    # A table source is not bounded by its settings (interpolation overshoots): the run-time guard holds it.
    wild = {"kind": "table", "width": 40.0, "loop_hz": 2.0, "offset": 5.0}
    engine = engine_for(
        tmp_path, {"vs": vschaos2_model}, {"v": vs_voice(0, conditioning={"pitch": wild, "octave": 4})}
    )
    seen = record_conditioning(engine.group_of("v"))
    play(engine, 60)
    engine.submit(c.SetConditioning("v", "octave", 40.0))
    play(engine, 60)
    engine.submit(c.SetConditioning("v", "octave", -3.5))
    out = play(engine, 60)
    values = np.concatenate(seen, axis=2)
    assert values[:, 0].min() == 0.0 and values[:, 0].max() == 11.0  # pitch hit both ends of 0..11
    assert values[:, 1].max() == 8.0 and values[:, 1].min() == 0.0  # octave 40 -> 8, -3.5 -> 0
    np.testing.assert_array_equal(values, np.trunc(values))  # whole numbers, as the model reads them
    assert engine.voices["v"].cond_clamped > 0
    assert engine.group_of("v").recovery.failures == 0
    assert rms(out[0]) > 0.02


SECTIONS = [
    {"name": "one", "voices": ["a"], "duration_s": 0.5},
    {"name": "two", "voices": ["a", "b"], "duration_s": 0.5},
    {"name": "three", "voices": ["a"], "duration_s": 0.5},
]


def test_a_section_that_adds_or_drops_a_vschaos2_voice_leaves_no_click(tmp_path, vschaos2_model):
    voices = {"a": vs_voice(0), "b": vs_voice(1)}
    engine = engine_for(tmp_path, {"vs": vschaos2_model}, voices, sections=SECTIONS)
    group = engine.group_of("a")
    batches: list[int] = []
    group.shape_latents = lambda g, z: batches.append(z.shape[0])
    changing = play(engine, 3 * SR // 2 // BLOCK)
    # The model sees one batch size whatever the section: vschaos2 resets its overlap-add when it changes.
    assert len(set(batches)) == 1 and batches[0] >= 2
    # Voice a's signal is the one it makes when b plays throughout: its row never noticed b come and go.
    steady = play(
        engine_for(tmp_path, {"vs": vschaos2_model}, voices, folder="b"), changing.shape[1] // BLOCK
    )
    np.testing.assert_array_equal(changing[0], steady[0])
    # And, as heard: no jump at a section change larger than the signal's own largest step elsewhere.
    steps = np.abs(np.diff(changing[0]))
    changes = [int(s * SR) for s in (0.5, 1.0)]
    near = np.zeros(steps.shape, dtype=bool)
    for at in changes:
        near[at - 2048 : at + 8192] = True
    assert rms(changing[0, changes[0] : changes[1]]) > 0.02
    assert steps[near].max() <= steps[~near].max()


def test_a_forced_decode_failure_recovers_while_the_other_voice_plays_on(tmp_path, rave, vschaos2_model):
    models = {"rave": rave, "vs": vschaos2_model}
    voices = {
        "r": {"model": "rave", "source": {"kind": "noise"}, "route": [0], "gain": 4.0},
        "v": vs_voice(1),
    }
    engine = engine_for(tmp_path, models, voices)
    play(engine, 40)
    with capture_logs() as logs:
        # vschaos2 takes griffin_lim (returns 0) and then fails at every decode.
        engine.submit(c.SetModelAttribute("v", "inversion_mode", "griffin_lim"))
        out = play(engine, int(2.0 * SR / BLOCK))
    peaks = block_peaks(out)
    silent = np.flatnonzero(peaks[1] == 0.0)
    assert silent.size > 0, "the failure never silenced the voice"
    assert silent.max() * BLOCK < 1.0 * SR, "the voice did not come back within a second"
    assert peaks[1, silent.max() + 1 :].min() > 0.0
    assert peaks[0].min() > 0.0, "the RAVE voice stopped"
    events = [e["event"] for e in logs if e["event"].startswith("model.")]
    assert events.count("model.decode_failed") == 1
    assert events.count("model.decode_recovered") == 1
    recovered = next(e for e in logs if e["event"] == "model.decode_recovered")
    assert recovered["how"] == "reload"
    dropped = next(e for e in logs if e["event"] == "model.attributes_dropped")
    assert dropped["attributes"] == {"inversion_mode": "'griffin_lim'"}
    assert engine.group_of("v").model.info.attributes["inversion_mode"] == "keep_input"


def test_live_the_reload_runs_in_the_background(tmp_path, vschaos2_model, model_factory):
    from latentd.modelkit.builder import SynthSpec

    other = model_factory(SynthSpec(latent_size=4, ratio=512, sr=SR))
    models = {"o": other, "vs": vschaos2_model}
    voices = {"o": {"model": "o", "source": {"kind": "walk"}, "route": [0]}, "v": vs_voice(1)}
    engine = engine_for(tmp_path, models, voices, live_loads=True)
    play(engine, 20)
    engine.submit(c.SetModelAttribute("v", "inversion_mode", "griffin_lim"))
    group = engine.group_of("v")
    first = play(engine, 40)
    assert group.recovery.failing
    loaders = [t for t in threading.enumerate() if t.name == "latentd-reload-vs"]
    for loader in loaders:
        loader.join(timeout=60)
    after = play(engine, 60)
    assert not group.recovery.failing and group.recovery.reloads == 1
    assert block_peaks(after)[1, -20:].min() > 0.0
    assert block_peaks(np.concatenate([first, after], axis=1))[0].min() > 0.0


def test_a_failed_forward_is_recovered_by_re_priming(tmp_path, vschaos2_model):
    engine = engine_for(tmp_path, {"vs": vschaos2_model}, {"v": vs_voice(0)})
    play(engine, 20)
    group = engine.group_of("v")
    with pytest.raises(Exception, match="forward failed"):
        group.model.call("forward", np.zeros((1, 3, 1024), dtype=np.float32))
    with capture_logs() as logs:
        out = play(engine, 60)
    assert group.recovery.episodes == 1 and group.recovery.reloads == 0
    recovered = next(e for e in logs if e["event"] == "model.decode_recovered")
    assert recovered["how"] == "re-primed (set_inversion_mode('keep_input'))"
    assert block_peaks(out)[0, -20:].min() > 0.0


def test_a_reload_that_fails_is_tried_again_and_logged_once(
    tmp_path, vschaos2_model, model_factory, monkeypatch
):
    from latentd.engine import recovery
    from latentd.modelkit.builder import SynthSpec

    monkeypatch.setattr(recovery, "RELOAD_RETRY_S", 1.0)  # 10 s in a venue; shorter keeps the test quick
    model = tmp_path / "vs.ts"
    shutil.copy(vschaos2_model, model)
    other = model_factory(SynthSpec(latent_size=4, ratio=512, sr=SR))
    voices = {"o": {"model": "o", "source": {"kind": "walk"}, "route": [0]}, "v": vs_voice(1)}
    engine = engine_for(tmp_path, {"o": other, "vs": model}, voices)
    play(engine, 20)
    model.unlink()  # the copy cannot be reloaded now
    with capture_logs() as logs:
        engine.submit(c.SetModelAttribute("v", "inversion_mode", "griffin_lim"))
        gone = play(engine, int(1.5 * SR / BLOCK))
        shutil.copy(vschaos2_model, model)
        back = play(engine, int(1.2 * SR / BLOCK))
    events = [e["event"] for e in logs if e["event"].startswith("model.")]
    assert events.count("model.decode_failed") == 1 and events.count("model.reload_failed") == 1
    assert events.count("model.decode_recovered") == 1
    assert block_peaks(gone)[1, -50:].max() == 0.0
    assert block_peaks(back)[1, -20:].min() > 0.0
    assert block_peaks(np.concatenate([gone, back], axis=1))[0].min() > 0.0
