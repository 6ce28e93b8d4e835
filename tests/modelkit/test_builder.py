"""The model builder: files, caching, reproducibility, and a synth whose latents are heard as intended."""

import numpy as np
import pytest

from latentd.installation.models import LoadedModel, read_info
from latentd.modelkit.builder import (
    DEMO_MODELS,
    SynthSpec,
    build_demo_models,
    build_model,
    cached_model,
    save_model,
)


def constant_z(values: list[float], n_frames: int) -> np.ndarray:
    return np.repeat(np.asarray(values, dtype=np.float32)[None, :, None], n_frames, axis=2).copy()


def spectrum(audio: np.ndarray) -> np.ndarray:
    return np.abs(np.fft.rfft(audio * np.hanning(audio.size)))


def centroid(audio: np.ndarray) -> float:
    mag = spectrum(audio)
    return float((mag * np.arange(mag.size)).sum() / mag.sum())


def flatness(audio: np.ndarray) -> float:
    power = spectrum(audio) ** 2 + 1e-12
    return float(np.exp(np.log(power).mean()) / power.mean())


def rms(audio: np.ndarray) -> float:
    return float(np.sqrt(np.mean(audio**2)))


def render(model: LoadedModel, values: list[float], n_frames: int = 24) -> np.ndarray:
    """Mono audio of constant latents, without the first frame (a glide from the state after load)."""
    model.reset()
    return model.decode(constant_z(values, n_frames))[0, 0, model.info.ratio :]


def test_scripted_model_exposes_the_nn_contract():
    spec = SynthSpec(latent_size=5, ratio=128, sr=16000, n_channels=2, conditioning=("octave",))
    model = build_model(spec)
    assert model.get_methods() == ["encode", "decode", "forward"]
    assert model.get_attributes() == ["temperature"]
    assert model.get_sample_rate() == 16000
    assert model.decode_params.tolist() == [6, 128, 2, 1]
    assert model.encode_params.tolist() == [1, 1, 5, 128]
    assert model.decode_input_labels[-1] == "(signal) octave label (-3-4)"
    assert model.set_temperature(-0.5) == -1 and model.get_temperature() == 1.0
    assert model.set_temperature(0.5) == 0 and model.get_temperature() == 0.5


def test_invalid_spec_lists_every_problem():
    with pytest.raises(ValueError, match=r"latent_size=0.*n_channels=3.*conditioning=\['tempo'\]"):
        build_model(SynthSpec(latent_size=0, n_channels=3, conditioning=("tempo",)))
    with pytest.raises(ValueError, match=r"fault='smoke'"):
        build_model(SynthSpec(fault="smoke"))


def test_save_is_atomic_and_creates_folders(tmp_path):
    path = save_model(SynthSpec(ratio=256), tmp_path / "a" / "b" / "synth.ts")
    assert path.is_file()
    assert sorted(p.name for p in path.parent.iterdir()) == ["synth.ts"]
    assert read_info(path).ratio == 256


def test_cache_builds_once_and_names_by_spec(tmp_path):
    spec = SynthSpec(ratio=256, seed=4)
    first = cached_model(spec, tmp_path)
    stamp = first.stat().st_mtime_ns
    assert cached_model(spec, tmp_path) == first
    assert first.stat().st_mtime_ns == stamp
    assert cached_model(SynthSpec(ratio=256, seed=5), tmp_path) != first


def test_same_spec_decodes_the_same_audio_and_seed_changes_it(tmp_path):
    spec = SynthSpec(latent_size=8, ratio=256, seed=9)
    z = np.random.default_rng(0).normal(size=(2, 8, 10)).astype(np.float32)
    a = LoadedModel(save_model(spec, tmp_path / "a.ts")).decode(z)
    b = LoadedModel(save_model(spec, tmp_path / "b.ts")).decode(z)
    c = LoadedModel(save_model(SynthSpec(latent_size=8, ratio=256, seed=10), tmp_path / "c.ts")).decode(z)
    np.testing.assert_array_equal(a, b)
    assert np.abs(a - c).max() > 1e-3


def test_demo_models_differ_in_ratio_and_sr_and_are_not_rebuilt(tmp_path):
    paths = build_demo_models(tmp_path)
    assert [p.name for p in paths] == [f"{name}.ts" for name in DEMO_MODELS]
    infos = [read_info(p) for p in paths]
    assert len({i.ratio for i in infos}) == len({i.sr for i in infos}) == len(infos)
    stamps = [p.stat().st_mtime_ns for p in paths]
    build_demo_models(tmp_path)
    assert [p.stat().st_mtime_ns for p in paths] == stamps
    save_model(SynthSpec(ratio=64), paths[0])  # a stale file under a demo name is replaced
    build_demo_models(tmp_path)
    assert read_info(paths[0]).ratio == DEMO_MODELS[paths[0].stem].ratio


def test_latent_dims_are_heard_as_documented(model_factory):
    model = LoadedModel(model_factory(SynthSpec(latent_size=4, ratio=512, sr=48000)))
    neutral = [0.0, 0.0, -2.0, 0.0]
    base = render(model, neutral)
    assert rms(base) > 0.05, "z = 0 must be clearly audible"
    brighter = render(model, [0.0, 3.0, -2.0, 0.0])
    assert centroid(brighter) > 1.5 * centroid(base)
    noisier = render(model, [0.0, 0.0, 3.0, 0.0])
    assert flatness(noisier) > 10 * flatness(base)
    louder, quieter = render(model, [0.0, 0.0, -2.0, 2.0]), render(model, [0.0, 0.0, -2.0, -2.0])
    assert rms(louder) > 1.8 * rms(base)
    assert rms(base) > 10 * rms(quieter)


def test_temperature_scales_the_noise(model_factory):
    model = LoadedModel(model_factory(SynthSpec(latent_size=4, ratio=512)))
    noisy = render(model, [0.0, 0.0, 3.0, 0.0])
    model.set_attribute("temperature", 0.0)
    assert flatness(render(model, [0.0, 0.0, 3.0, 0.0])) < flatness(noisy) / 10


def test_fewer_than_four_dims_and_stereo(model_factory):
    mono = LoadedModel(model_factory(SynthSpec(latent_size=1, ratio=256)))
    assert rms(render(mono, [0.0])) > 0.05
    stereo = LoadedModel(model_factory(SynthSpec(latent_size=4, ratio=256, n_channels=2)))
    y = stereo.decode(constant_z([0.0, 0.0, -2.0, 0.0], 16))
    assert y.shape == (1, 2, 4096)
    assert np.abs(y[0, 0] - y[0, 1]).max() > 0.01, "the second channel is detuned"


def test_extra_dims_change_the_timbre_not_the_pitch(model_factory):
    model = LoadedModel(model_factory(SynthSpec(latent_size=8, ratio=512, sr=48000)))
    plain = render(model, [0.0, 1.0, -2.0, 0.0, 0.0, 0.0, 0.0, 0.0])
    other = render(model, [0.0, 1.0, -2.0, 0.0, 2.0, -2.0, 2.0, -2.0])
    assert np.abs(plain - other).max() > 0.01
    assert np.argmax(spectrum(plain)) == np.argmax(spectrum(other))


def test_hidden_stack_keeps_streaming_exact(model_factory):
    model = LoadedModel(model_factory(SynthSpec(latent_size=16, ratio=2048, hidden=8)))
    z = np.random.default_rng(5).normal(size=(2, 16, 6)).astype(np.float32)
    whole = model.decode(z)
    model.reset()
    parts = np.concatenate([model.decode(z[:, :, :1]), model.decode(z[:, :, 1:])], axis=2)
    np.testing.assert_allclose(parts, whole, atol=1e-4)


def test_encode_follows_pitch_and_level_of_decoded_audio(model_factory):
    model = LoadedModel(model_factory(SynthSpec(latent_size=4, ratio=1024, sr=48000)))
    t = np.linspace(0.0, 1.0, 64)
    z = np.stack(
        [1.5 * np.sin(2 * np.pi * t), np.zeros_like(t), np.full_like(t, -2.0), 1.5 * np.cos(3 * np.pi * t)]
    )
    audio = model.decode(z[None].astype(np.float32))
    encoded = model.encode(audio)
    assert encoded.shape == (1, 4, 64)
    assert np.corrcoef(encoded[0, 0], z[0])[0, 1] > 0.8
    assert np.corrcoef(encoded[0, 3], z[3])[0, 1] > 0.8
