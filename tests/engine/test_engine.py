"""The engine's audio, checked on real rendered blocks from real (small) TorchScript models."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from latentd.config import load_config
from latentd.engine import commands as c
from latentd.engine.engine import Engine
from latentd.installation.models import LoadedModel
from latentd.installation.piece import load_installation
from latentd.modelkit.builder import SynthSpec
from tests.pieces import write_piece

SR = 48000


def make_engine(config: Path, seed: int | None = None) -> Engine:
    return Engine(load_installation(load_config(config), seed=seed), fade_in_s=0.0)


def play(engine: Engine, seconds: float) -> np.ndarray:
    blocks = int(np.ceil(seconds * engine.samplerate / engine.blocksize))
    return np.concatenate([engine.next_block() for _ in range(blocks)], axis=1)


def dominant_hz(x: np.ndarray, samplerate: int = SR) -> float:
    spectrum = np.abs(np.fft.rfft(x * np.hanning(len(x))))
    return float(np.fft.rfftfreq(len(x), 1 / samplerate)[np.argmax(spectrum)])


@pytest.fixture
def drone(model_factory) -> Path:
    return model_factory(SynthSpec(latent_size=4, ratio=1024, sr=SR))


@pytest.fixture
def bells(model_factory) -> Path:
    return model_factory(SynthSpec(latent_size=8, ratio=512, sr=44100, base_hz=440.0))


def test_same_seed_same_samples_other_seed_differs(tmp_path, drone, bells):
    config = write_piece(
        tmp_path,
        models={"a": drone, "b": bells},
        voices={
            "n": {"model": "a", "source": {"kind": "noise", "smooth_s": 0.2}},
            "w": {"model": "b", "source": {"kind": "walk"}},
        },
    )
    first = play(make_engine(config), 1.0)
    second = play(make_engine(config), 1.0)
    other = play(make_engine(config, seed=99), 1.0)
    assert np.abs(first).max() > 0.01, "the render is silent"
    np.testing.assert_array_equal(first, second)
    assert np.abs(first - other).max() > 0.01


def test_pitch_dimension_raises_dominant_frequency(tmp_path, drone):
    def hz(bias0: float) -> float:
        config = write_piece(
            tmp_path / str(bias0),
            models={"a": drone},
            voices={
                "v": {
                    "model": "a",
                    "source": {"kind": "constant", "values": 0.0},
                    "bias": [bias0, -2.0, -4.0, 1.0],
                    "route": [0],
                }
            },
        )
        return dominant_hz(play(make_engine(config), 1.0)[0, SR // 2 :])

    low, high = hz(0.0), hz(1.0)
    assert high > 1.8 * low, f"dim 0 up should raise the pitch an octave: {low:.1f} Hz → {high:.1f} Hz"


def test_bias_command_raises_pitch_live(tmp_path, drone):
    config = write_piece(
        tmp_path,
        models={"a": drone},
        voices={
            "v": {
                "model": "a",
                "source": {"kind": "constant", "values": 0.0},
                "bias": [0, -2, -4, 1],
                "route": [0],
            }
        },
    )
    engine = make_engine(config)
    before = dominant_hz(play(engine, 1.0)[0, SR // 2 :])
    engine.submit(c.SetLatentBias("v", 0, 1.0))
    play(engine, 0.5)
    after = dominant_hz(play(engine, 1.0)[0, SR // 2 :])
    assert after > 1.8 * before
    assert engine.command_log and engine.command_log[0][1] == c.SetLatentBias("v", 0, 1.0)


@pytest.mark.parametrize("k", [0, 3])
def test_voice_routed_to_channel_k_only_appears_on_k(tmp_path, drone, k):
    config = write_piece(
        tmp_path, models={"a": drone}, voices={"v": {"model": "a", "source": {"kind": "walk"}, "route": [k]}}
    )
    out = play(make_engine(config), 0.5)
    rms = np.sqrt(np.mean(out**2, axis=1))
    assert rms[k] > 0.01
    assert np.all(np.delete(rms, k) == 0.0), rms


def test_limiter_ceiling_holds_under_a_hot_voice(tmp_path, drone):
    config = write_piece(
        tmp_path,
        models={"a": drone},
        voices={
            "hot": {
                "model": "a",
                "source": {"kind": "walk", "step_std": 2.0},
                "gain": 4.0,
                "bias": [0, 1, 0, 3],
            },
        },
        output={"master_gain": 4.0, "ceiling_db": -6.0},
    )
    out = play(make_engine(config), 2.0)
    ceiling = 10 ** (-6 / 20)
    assert np.abs(out).max() <= ceiling + 1e-7
    assert np.abs(out).max() > 0.9 * ceiling, "the voice should be hot enough to reach the ceiling"


def test_streaming_blockwise_equals_one_shot_decode(tmp_path, drone):
    config = write_piece(
        tmp_path,
        models={"a": drone},
        voices={"v": {"model": "a", "source": {"kind": "lfo", "freq_hz": 0.1}, "route": [1]}},
        audio={"blocksize": 128, "frames_per_call": 3},
    )
    engine = make_engine(config)
    frames: list[np.ndarray] = []
    voice = engine.voices["v"]
    original = voice.latents

    def recording(n: int) -> np.ndarray:
        z = original(n)
        frames.append(z)
        return z

    voice.latents = recording  # type: ignore[method-assign]
    # The limiter looks one block ahead, so the master bus is the voice delayed by one block.
    out = play(engine, 1.0)[1, engine.blocksize :]
    z = np.concatenate(frames, axis=1)[None]
    model = LoadedModel(drone)
    one_shot = model.decode(z)[0, 0, : out.shape[0]]
    assert np.abs(out).max() > 0.01
    np.testing.assert_allclose(out, one_shot, atol=1e-4)


def test_voices_with_different_ratio_and_sr_play_together(tmp_path, drone, bells):
    config = write_piece(
        tmp_path,
        models={"a": drone, "b": bells},
        voices={
            "low": {
                "model": "a",
                "source": {"kind": "constant", "values": 0.0},
                "bias": [0, -2, -4, 1],
                "route": [0],
            },
            "high": {
                "model": "b",
                "source": {"kind": "constant", "values": 0.0},
                "bias": [0, -2, -4, 1, 0, 0, 0, 0],
                "route": [1],
            },
        },
    )
    out = play(make_engine(config), 2.0)
    low, high = dominant_hz(out[0, SR:]), dominant_hz(out[1, SR:])
    # bells runs at 44.1 kHz and is resampled: its pitch must survive the resampling (2× the drone's base).
    assert abs(high / low - 2.0) < 0.05, (low, high)


def test_nan_model_mutes_that_voice_only(tmp_path, drone, model_factory):
    broken = model_factory(SynthSpec(latent_size=4, ratio=1024, sr=SR, fault="nan"))
    config = write_piece(
        tmp_path,
        models={"good": drone, "bad": broken},
        voices={
            "ok": {"model": "good", "source": {"kind": "walk"}, "route": [0]},
            "nan": {"model": "bad", "source": {"kind": "walk"}, "route": [1]},
        },
    )
    inst = load_installation(load_config(config), warm_up=False)
    engine = Engine(inst, fade_in_s=0.0)
    out = play(engine, 1.0)
    assert np.isfinite(out).all()
    assert np.sqrt(np.mean(out[0] ** 2)) > 0.01
    assert np.all(out[1] == 0.0)
    assert engine.counters.voice_faults >= 1


def test_one_bad_call_is_one_fault_and_the_voice_comes_back(tmp_path, drone, model_factory):
    # NaN on the 41st call (~3.5 s in); the reset after it brings the model back for 40 more calls.
    flaky = model_factory(SynthSpec(latent_size=4, ratio=1024, sr=SR, fault="nan:40"))
    config = write_piece(
        tmp_path,
        models={"good": drone, "flaky": flaky},
        voices={
            "ok": {"model": "good", "source": {"kind": "walk"}, "route": [0]},
            "f": {"model": "flaky", "source": {"kind": "walk"}, "route": [1]},
        },
    )
    engine = make_engine(config)
    before = play(engine, 3.0)
    assert np.sqrt(np.mean(before[1] ** 2)) > 0.01 and engine.counters.voice_faults == 0
    held = play(engine, 1.5)
    assert engine.counters.voice_faults == 1, "a call's audio spans many blocks: it is one fault"
    assert np.all(held[1, -SR // 2 :] == 0.0), "the faulted voice is held silent"
    assert np.sqrt(np.mean(held[0] ** 2)) > 0.01, "the other voice plays on"
    after = play(engine, 2.5)
    assert engine.snapshot.voices["f"].muted is False
    assert np.sqrt(np.mean(after[1, -SR // 2 :] ** 2)) > 0.01, "the voice sounds again after its hold"


def test_gain_and_mute_commands_glide(tmp_path, drone):
    config = write_piece(
        tmp_path, models={"a": drone}, voices={"v": {"model": "a", "source": {"kind": "walk"}, "route": [0]}}
    )
    engine = make_engine(config)
    loud = play(engine, 0.5)[0]
    engine.submit(c.SetVoiceMute("v", True))
    fading = play(engine, 0.5)[0]
    assert np.all(play(engine, 0.2)[0] == 0.0)
    # The mute glides over 50 ms: no step from full level to silence within one sample.
    assert np.abs(fading[:240]).max() > 0.0
    assert np.abs(np.diff(fading)).max() < 2 * np.abs(np.diff(loud)).max() + 1e-6


def test_unknown_voice_command_is_refused_and_changes_nothing(tmp_path, drone):
    config = write_piece(
        tmp_path, models={"a": drone}, voices={"v": {"model": "a", "source": {"kind": "walk"}, "route": [0]}}
    )
    engine = make_engine(config)
    reference = make_engine(config)
    assert "unknown voice 'nope'" in (engine.check(c.SetVoiceGain("nope", 0.0)) or "")
    engine.submit(c.SetVoiceGain("nope", 0.0))
    engine.submit(c.SetLatentBias("v", 9, 1.0))
    np.testing.assert_array_equal(play(engine, 0.3), play(reference, 0.3))
    assert engine.counters.refused_commands == 2
    assert engine.command_log == []


def test_sections_crossfade_with_equal_power(tmp_path, drone):
    config = write_piece(
        tmp_path,
        models={"a": drone},
        voices={
            "x": {
                "model": "a",
                "source": {"kind": "constant", "values": 0.0},
                "bias": [0, -2, -4, 1],
                "route": [0],
            },
            "y": {
                "model": "a",
                "source": {"kind": "constant", "values": 0.0},
                "bias": [0, -2, -4, 1],
                "route": [0],
            },
        },
        sections=[
            {"name": "one", "voices": ["x"], "duration_s": 1.0},
            {"name": "two", "voices": ["y"], "duration_s": 5.0},
        ],
        programme={"crossfade_s": 1.0},
    )
    engine = make_engine(config)
    out = play(engine, 3.0)[0]
    assert engine.programme.current.name == "two"
    # x and y are the same sound (identical latents on the same model state sequence differ only in row),
    # so measure the power over 10 ms windows: equal-power fading of uncorrelated-phase material keeps it
    # within a few dB, and the section after the fade is as loud as the one before.
    win = SR // 100
    power = np.array([np.mean(out[i : i + win] ** 2) for i in range(0, len(out) - win, win)])
    before, after = power[50:95].mean(), power[220:290].mean()
    assert 0.7 < after / before < 1.4


def test_seven_channel_piece_on_a_quad_venue_needs_and_gets_an_explicit_downmix(tmp_path, drone):
    from latentd.config import ConfigError

    voices = {"v": {"model": "a", "source": {"kind": "walk"}, "route": ["Lss"]}}
    refused = write_piece(tmp_path / "no", models={"a": drone}, voices=voices, extra_piece={"layout": "7.0"})
    with pytest.raises(ConfigError, match=r"made for 7 speakers.*audio.downmix = true"):
        make_engine(refused)
    allowed = write_piece(
        tmp_path / "yes",
        models={"a": drone},
        voices=voices,
        audio={"downmix": True},
        extra_piece={"layout": "7.0"},
    )
    out = play(make_engine(allowed), 1.0)
    rms = np.sqrt(np.mean(out**2, axis=1))
    # Lss (+90°) lies halfway between FL (+45°) and BL (+135°): equal power on both, nothing on the right.
    assert rms[0] > 0.01 and abs(rms[0] / rms[2] - 1.0) < 1e-3
    assert rms[1] == 0.0 and rms[3] == 0.0


def test_conditioning_input_driven_by_a_source_and_by_a_command(tmp_path, model_factory):
    conditioned = model_factory(SynthSpec(latent_size=4, ratio=1024, sr=SR, conditioning=("pitch_class",)))
    config = write_piece(
        tmp_path,
        models={"a": conditioned},
        voices={
            "v": {
                "model": "a",
                "source": {"kind": "constant", "values": 0.0},
                "bias": [0, -2, -4, 1],
                "route": [0],
                # pitch class follows a slow saw: the pitch climbs over the first seconds
                "conditioning": {
                    "pitch_class": {
                        "kind": "lfo",
                        "shape": "saw",
                        "freq_hz": 0.1,
                        "intensity": 5.5,
                        "offset": 5.5,
                    }
                },
            }
        },
    )
    engine = make_engine(config)
    out = play(engine, 4.0)[0]
    pitches = {dominant_hz(out[i : i + SR // 4]) for i in range(0, 4 * SR - SR // 4, SR // 4)}
    assert len(pitches) >= 3, f"a source on the conditioning input should move the pitch: {pitches}"
    engine.submit(c.SetConditioning("v", "pitch_class", 0.0))
    play(engine, 0.5)
    steady = [dominant_hz(play(engine, 0.25)[0]) for _ in range(3)]
    assert len(set(steady)) == 1, "a constant set by command overrides the source"


def test_pan_waypoints_move_the_voice_along_the_path(tmp_path, drone):
    config = write_piece(
        tmp_path,
        models={"a": drone},
        voices={
            "v": {
                "model": "a",
                "source": {"kind": "constant", "values": 0.0},
                "bias": [0, -2, -4, 1],
                "pan": {"waypoints": [[0.0, 45.0], [1.0, 45.0], [2.0, 135.0], [4.0, 135.0]]},
            }
        },
    )
    out = play(make_engine(config), 3.0)
    first, last = out[:, SR // 4 : SR // 2], out[:, int(2.5 * SR) :]
    assert np.argmax(np.sqrt(np.mean(first**2, axis=1))) == 0  # FL at +45°
    assert np.argmax(np.sqrt(np.mean(last**2, axis=1))) == 2  # BL at +135°


def test_a_section_bpm_sets_the_step_tempo_of_its_voices(tmp_path, model_factory):
    from structlog.testing import capture_logs

    rave_like = model_factory(SynthSpec(latent_size=4, ratio=2048, sr=44100))
    config = write_piece(
        tmp_path,
        models={"a": rave_like},
        voices={"s": {"model": "a", "source": {"kind": "steps", "n_steps": 8}, "route": [0]}},
        sections=[
            {"name": "slow", "voices": ["s"], "duration_s": 1.0, "bpm": 60.0},
            {"name": "fast", "voices": ["s"], "duration_s": 100.0, "bpm": 120.0},
        ],
        programme={"crossfade_s": 0.0},
    )
    engine = make_engine(config)
    with capture_logs() as logs:
        play(engine, 1.5)
    followed = [e for e in logs if e["event"] == "tempo.followed"]
    assert [e["section"] for e in followed] == ["slow", "fast"]
    # 44100/2048 Hz: 60 BPM is 22 frames a beat (58.73 BPM), 120 BPM is 11 frames (117.45 BPM).
    assert [e["frames_per_beat"] for e in followed] == [22, 11]
    assert "117.45" in followed[1]["note"]
    assert engine.voices["s"].source.params()["bpm"] == pytest.approx(117.45, abs=0.01)


def test_a_morph_glides_alike_when_the_model_decodes_beside_the_mix(tmp_path, drone):
    # Decoding ahead in another thread, the calls are prepared earlier: the glide is still placed where
    # each call will be heard, so the model is given the same latents as when it decodes in the mix,
    # except in the one call that was already decoding ahead when the section changed.
    given: dict[int, list[np.ndarray]] = {}
    for threads in (1, 2):
        tone = {"kind": "constant", "values": 0.0}
        config = write_piece(
            tmp_path / str(threads),
            models={"a": drone},
            voices={
                "low": {"model": "a", "source": tone, "bias": [0, -2, -4, 1]},
                "high": {"model": "a", "source": tone, "bias": [1, -2, -4, 1]},
            },
            sections=[
                {"name": "a", "voices": ["low"], "duration_s": 0.5},
                {"name": "b", "voices": ["high"], "duration_s": 100.0},
            ],
            programme={"crossfade_s": 2.0, "morph": True},
            audio={"decode_threads": threads},
        )
        engine = make_engine(config)
        latents = given[threads] = []
        engine.latent_listeners.append(
            lambda b, voice, z, out=latents: out.append(z[0].copy()) if voice == "high" else None
        )
        play(engine, 3.0)
        engine.decoder.close()
    serial, beside = np.concatenate(given[1]), np.concatenate(given[2])
    assert ((serial > 0.05) & (serial < 0.95)).sum() > 20  # a glide, frame by frame
    n = min(len(serial), len(beside))
    differ = np.flatnonzero(np.abs(beside[:n] - serial[:n]) > 1e-6)
    calls = engine.groups[0].frames_per_call
    assert len(differ) <= calls and np.all(beside[differ] == 1.0), differ  # "high"'s own latents


@pytest.mark.parametrize("morph", [False, True])
def test_morph_glides_the_latents_of_the_same_model_across_sections(tmp_path, drone, morph):
    tone = {"kind": "constant", "values": 0.0}
    config = write_piece(
        tmp_path,
        models={"a": drone},
        voices={
            "low": {"model": "a", "source": tone, "bias": [0, -2, -4, 1], "route": [0]},  # 220 Hz
            "high": {"model": "a", "source": tone, "bias": [1, -2, -4, 1], "route": [0]},  # 440 Hz
        },
        sections=[
            {"name": "a", "voices": ["low"], "duration_s": 1.0},
            {"name": "b", "voices": ["high"], "duration_s": 100.0},
        ],
        programme={"crossfade_s": 4.0, "morph": morph},
    )
    engine = make_engine(config)
    given: list[np.ndarray] = []  # the latents the recorder is told "high" decoded, latent dim 0
    engine.latent_listeners.append(
        lambda block, voice, z: given.append(z[0].copy()) if voice == "high" else None
    )
    out = play(engine, 6.0)[0]
    glided = np.concatenate(given)
    # dim 0 is 0 for "low" and 1 for "high": a morph's glide passes between them, and latent files say so.
    assert ((glided > 0.05) & (glided < 0.95)).any() == morph
    middle = out[3 * SR - SR // 4 : 3 * SR + SR // 4]  # halfway through the 4 s crossfade
    spectrum = np.abs(np.fft.rfft(middle * np.hanning(len(middle))))
    freqs = np.fft.rfftfreq(len(middle), 1 / SR)

    def level(hz: float) -> float:
        return float(spectrum[np.argmin(np.abs(freqs - hz))])

    if morph:
        # One voice whose pitch glides from 220 to 440 Hz: halfway it sits between, near 311 Hz.
        assert 260.0 < dominant_hz(middle) < 380.0
        assert level(220.0) < 0.1 * spectrum.max() and level(440.0) < 0.1 * spectrum.max()
    else:
        # Two sounds crossfading: both pitches are there at once.
        assert level(220.0) > 0.3 * spectrum.max() and level(440.0) > 0.3 * spectrum.max()
    end = out[5 * SR + SR // 2 :]
    assert abs(dominant_hz(end) - 440.0) < 10.0
