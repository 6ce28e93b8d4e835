"""The model host: contract reading, error texts, decoding, streaming state and reset, on real files."""

import itertools
import zipfile
from pathlib import Path

import numpy as np
import pytest
import torch

from latentd.installation.models import LoadedModel, MethodParams, ModelError, ModelInfo, read_info
from latentd.modelkit.builder import SynthSpec

RAVE_STREAMING = "rave-v2small-c16_streaming.ts"
RAVE_STATELESS = "rave-v2small-c16.ts"


def dominant_hz(audio: np.ndarray, sr: int) -> float:
    """Frequency of the strongest FFT bin of a mono signal (Hann window)."""
    spectrum = np.abs(np.fft.rfft(audio * np.hanning(audio.size)))
    return float(np.argmax(spectrum) * sr / audio.size)


def constant_z(values: list[float], n_frames: int, batch: int = 1) -> np.ndarray:
    z = np.asarray(values, dtype=np.float32)[None, :, None]
    return np.repeat(np.repeat(z, n_frames, axis=2), batch, axis=0).copy()


# --- contract ----------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "spec",
    [
        SynthSpec(latent_size=4, ratio=1024, sr=48000),
        SynthSpec(
            latent_size=8,
            ratio=512,
            sr=44100,
            n_channels=2,
            conditioning=("pitch_class", "octave"),
            streaming=False,
        ),
        SynthSpec(latent_size=2, ratio=256, sr=22050),
    ],
    ids=["mono-streaming", "stereo-conditioned-stateless", "two-dims"],
)
def test_contract_is_read_from_builder_models(model_factory, spec):
    info = read_info(model_factory(spec))
    assert info.methods == ("encode", "decode", "forward")
    assert info.method == "decode"
    assert info.latent_size == spec.latent_size
    assert info.conditioning == spec.conditioning
    assert info.in_channels == spec.latent_size + len(spec.conditioning)
    assert (info.ratio, info.sr, info.n_channels) == (spec.ratio, spec.sr, spec.n_channels)
    assert info.streaming is spec.streaming
    assert info.cache_rows == (64 if spec.streaming else None)
    assert info.latent_rate_hz == pytest.approx(spec.sr / spec.ratio)
    assert info.attributes == {"temperature": 1.0}
    assert info.params["decode"].in_channels == info.in_channels
    assert info.params["encode"].out_ratio == spec.ratio
    assert len(info.input_labels) == info.in_channels


def test_real_rave_exports_contract(shared_models_dir):
    streaming = read_info(shared_models_dir / RAVE_STREAMING)
    stateless = read_info(shared_models_dir / RAVE_STATELESS)
    for info in (streaming, stateless):
        assert set(info.methods) >= {"encode", "decode", "forward"}
        assert (info.latent_size, info.full_latent_size) == (1, 128)
        assert (info.ratio, info.sr, info.n_channels) == (512, 44100, 1)
        assert info.conditioning == ()
        assert "learn_target" in info.attributes
    assert streaming.streaming and streaming.cache_rows == 64
    assert not stateless.streaming


def test_v1_export_without_get_methods_is_read_by_scanning_params(model_factory):
    model = LoadedModel(model_factory(SynthSpec(latent_size=4, ratio=512, sr=32000, v1=True)))
    info = model.info
    assert set(info.methods) == {"encode", "decode", "forward"}
    assert (info.latent_size, info.ratio, info.sr) == (4, 512, 32000)
    assert info.attributes == {}
    assert info.input_labels == ("latent_0", "latent_1", "latent_2", "latent_3")
    assert model.decode(np.zeros((1, 4, 3), np.float32)).shape == (1, 1, 1536)


def test_tempo_table_gives_bpm_of_loops_of_k_frames():
    info = ModelInfo(
        path=Path("x.ts"),
        methods=("decode",),
        params={"decode": MethodParams(1, 2048, 1, 1)},
        method="decode",
        latent_size=1,
        full_latent_size=None,
        ratio=2048,
        sr=44100,
        n_channels=1,
        conditioning=(),
        input_labels=("latent_0",),
        streaming=False,
    )
    table = dict(info.tempo_table())
    assert list(table) == list(range(1, 17))
    assert table[11] == pytest.approx(117.45, abs=0.01)
    assert table[1] == pytest.approx(60 * 44100 / 2048)


# --- errors ------------------------------------------------------------------------------------------


def test_missing_file(tmp_path):
    path = tmp_path / "absent.ts"
    with pytest.raises(ModelError, match="model file not found") as err:
        LoadedModel(path)
    assert str(path) in str(err.value)


def test_text_file_is_not_torchscript(tmp_path):
    path = tmp_path / "notes.ts"
    path.write_text("not a model\n")
    with pytest.raises(ModelError, match="not a TorchScript archive") as err:
        read_info(path)
    assert str(path) in str(err.value)


def test_zip_of_something_else_is_not_torchscript(tmp_path):
    path = tmp_path / "bundle.ts"
    with zipfile.ZipFile(path, "w") as archive:
        archive.writestr("readme.txt", "hello")
    with pytest.raises(ModelError, match="not a TorchScript archive"):
        read_info(path)


class _EncoderOnly(torch.nn.Module):
    def __init__(self) -> None:
        super().__init__()
        self.register_buffer("encode_params", torch.tensor([1, 1, 4, 256]))
        self.sr = 44100

    @torch.jit.export
    def get_methods(self) -> list[str]:
        return ["encode"]

    @torch.jit.export
    def encode(self, x: torch.Tensor) -> torch.Tensor:
        return x[:, :, ::256].repeat(1, 4, 1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.encode(x)


class _BadParams(torch.nn.Module):
    def __init__(self, params: torch.Tensor) -> None:
        super().__init__()
        self.register_buffer("decode_params", params)
        self.sr = 44100

    @torch.jit.export
    def get_methods(self) -> list[str]:
        return ["decode"]

    @torch.jit.export
    def decode(self, z: torch.Tensor) -> torch.Tensor:
        return z

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.decode(x)


def _save(module: torch.nn.Module, path: Path) -> Path:
    torch.jit.script(module).save(str(path))
    return path


def test_model_without_decode_lists_the_methods_found(tmp_path):
    path = _save(_EncoderOnly(), tmp_path / "encoder.ts")
    with pytest.raises(ModelError, match=r"no method 'decode'; methods found: encode") as err:
        read_info(path)
    assert str(path) in str(err.value)
    assert read_info(path, method="encode").latent_size == 1


@pytest.mark.parametrize(
    ("params", "expected"),
    [
        (torch.tensor([4, 512, 1]), r"has 3 values"),
        (torch.tensor([4.0, 512.5, 1.0, 1.0]), r"non-integers"),
        (torch.tensor([4, 0, 1, 1]), r"values <= 0"),
    ],
    ids=["wrong-length", "non-integer", "zero-ratio"],
)
def test_malformed_params(tmp_path, params, expected):
    path = _save(_BadParams(params), tmp_path / "bad.ts")
    with pytest.raises(ModelError, match=expected) as err:
        read_info(path)
    assert "decode_params" in str(err.value) and str(path) in str(err.value)


def test_nan_model_is_caught_at_warm_up(model_factory):
    model = LoadedModel(model_factory(SynthSpec(fault="nan")))
    with pytest.raises(ModelError, match=r"NaN/Inf samples at warm-up call 1"):
        model.warm_up(batch=2, n_frames=4)


def test_nan_after_some_calls_passes_warm_up_then_reset_restarts_the_count(model_factory):
    model = LoadedModel(model_factory(SynthSpec(fault="nan:3")))
    model.warm_up(batch=1, n_frames=2)
    z = np.zeros((1, 4, 2), np.float32)
    assert all(np.isfinite(model.decode(z)).all() for _ in range(3))
    assert np.isnan(model.decode(z)).all()
    model.reset()
    assert np.isfinite(model.decode(z)).all()


def test_wrong_output_shape_is_caught_at_warm_up(model_factory):
    model = LoadedModel(model_factory(SynthSpec(ratio=256, fault="wrong_shape")))
    with pytest.raises(ModelError, match=r"returned shape \(2, 1, 1023\).*expected \(2, 1, 1024\)"):
        model.warm_up(batch=2, n_frames=4)


def test_z_with_wrong_channel_count(model_factory):
    model = LoadedModel(model_factory(SynthSpec(latent_size=4, conditioning=("octave",))))
    with pytest.raises(ModelError, match=r"expects 5 input channels \(4 latent \+ 1 conditioning\), got 4"):
        model.decode(np.zeros((1, 4, 2), np.float32))


def test_too_many_rows_for_a_streaming_model(model_factory):
    model = LoadedModel(model_factory(SynthSpec()))
    with pytest.raises(
        ModelError, match=r"65 batch rows requested, a streaming model keeps state for 64 rows"
    ):
        model.decode(np.zeros((65, 4, 1), np.float32))


def test_attributes_set_refused_and_unknown(model_factory):
    model = LoadedModel(model_factory(SynthSpec()))
    model.set_attribute("temperature", 2)
    assert model.info.attributes["temperature"] == 2.0
    with pytest.raises(ModelError, match=r"'temperature' = -1.0 refused by the model"):
        model.set_attribute("temperature", -1.0)
    with pytest.raises(ModelError, match=r"unknown attribute 'pitch'; valid attributes: temperature"):
        model.set_attribute("pitch", 1.0)


# --- decoding, streaming and reset -------------------------------------------------------------------


def _blockwise(model: LoadedModel, z: np.ndarray, sizes: list[int]) -> np.ndarray:
    assert sum(sizes) == z.shape[2]
    edges = np.cumsum([0, *sizes])
    return np.concatenate([model.decode(z[:, :, a:b]) for a, b in itertools.pairwise(edges)], axis=2)


def test_streaming_blocks_equal_one_shot_decode(model_factory):
    model = LoadedModel(model_factory(SynthSpec(latent_size=6, ratio=256, n_channels=2)))
    rng = np.random.default_rng(3)
    z = rng.normal(size=(3, 6, 30)).astype(np.float32)
    whole = model.decode(z)
    model.reset()
    parts = _blockwise(model, z, [1, 4, 2, 7, 16])
    np.testing.assert_allclose(parts, whole, atol=1e-4)


def test_stateless_model_clicks_at_block_edges(model_factory):
    model = LoadedModel(model_factory(SynthSpec(ratio=256, streaming=False)))
    z = constant_z([0.3, 0.0, -2.0, 1.0], 8)
    whole = model.decode(z)
    parts = _blockwise(model, z, [3, 5])
    assert np.abs(parts - whole).max() > 0.01


def test_real_rave_streaming_blocks_equal_one_shot_decode(shared_models_dir):
    model = LoadedModel(shared_models_dir / RAVE_STREAMING)
    # All 128 dims: decode then draws nothing from torch's random generator.
    z = np.random.default_rng(0).normal(size=(2, 128, 12)).astype(np.float32)
    whole = model.decode(z)
    model.reset()
    parts = _blockwise(model, z, [5, 1, 6])
    np.testing.assert_allclose(parts, whole, atol=1e-4)


def _check_reset(model: LoadedModel, n_dims: int) -> None:
    z = np.random.default_rng(1).normal(size=(2, n_dims, 4)).astype(np.float32)
    first = model.decode(z)
    again = model.decode(z)
    assert np.abs(first - again).max() > 1e-3, "state should carry over between calls"
    model.reset()
    np.testing.assert_allclose(model.decode(z), first, atol=1e-6)


def test_reset_restores_the_state_right_after_load(model_factory):
    _check_reset(LoadedModel(model_factory(SynthSpec(ratio=512))), 4)


def test_reset_restores_real_rave_caches(shared_models_dir):
    _check_reset(LoadedModel(shared_models_dir / RAVE_STREAMING), 128)


def test_warm_up_leaves_state_and_torch_generator_as_they_were(shared_models_dir):
    model = LoadedModel(shared_models_dir / RAVE_STREAMING)
    z = np.random.default_rng(2).normal(size=(1, 128, 4)).astype(np.float32)
    expected = model.decode(z)
    model.reset()
    torch.manual_seed(7)
    before = torch.rand(1)
    torch.manual_seed(7)
    model.warm_up(batch=2, n_frames=4)  # decodes 1 latent dim: RAVE fills the other 127 with torch.randn
    assert torch.equal(torch.rand(1), before)
    np.testing.assert_allclose(model.decode(z), expected, atol=1e-6)


def test_seeded_torch_makes_partial_rave_latents_repeatable(shared_models_dir):
    model = LoadedModel(shared_models_dir / RAVE_STATELESS)
    z = np.full((1, 1, 8), 0.5, np.float32)
    torch.manual_seed(11)
    first = model.decode(z)
    torch.manual_seed(11)
    np.testing.assert_array_equal(model.decode(z), first)


def test_pitch_dim_up_raises_the_dominant_frequency(demo_models):
    model = LoadedModel(demo_models["drone"])
    info = model.info
    n = 48
    low = model.decode(constant_z([0.0, 0.0, -2.0, 1.0], n))[0, 0]
    model.reset()
    high = model.decode(constant_z([1.0, 0.0, -2.0, 1.0], n))[0, 0]
    f_low, f_high = dominant_hz(low, info.sr), dominant_hz(high, info.sr)
    assert f_low == pytest.approx(110.0, rel=0.03)
    assert f_high == pytest.approx(2 * f_low, rel=0.03)


def test_conditioning_input_shifts_the_pitch(model_factory):
    model = LoadedModel(
        model_factory(SynthSpec(latent_size=4, sr=48000, conditioning=("pitch_class", "octave")))
    )
    base = model.decode(constant_z([0.0, 0.0, -2.0, 1.0, 0.0, 0.0], 48))[0, 0]
    model.reset()
    fifth = model.decode(constant_z([0.0, 0.0, -2.0, 1.0, 7.0, 0.0], 48))[0, 0]
    model.reset()
    octave_down = model.decode(constant_z([0.0, 0.0, -2.0, 1.0, 0.0, -1.0], 48))[0, 0]
    assert dominant_hz(base, 48000) == pytest.approx(220.0, rel=0.03)
    assert dominant_hz(fifth, 48000) == pytest.approx(220.0 * 2 ** (7 / 12), rel=0.03)
    assert dominant_hz(octave_down, 48000) == pytest.approx(110.0, rel=0.03)


def test_encode_shapes_and_errors(model_factory, shared_models_dir):
    synth = LoadedModel(model_factory(SynthSpec(latent_size=6, ratio=256)))
    assert synth.encode(np.zeros((2, 1, 1024), np.float32)).shape == (2, 6, 4)
    with pytest.raises(ModelError, match=r"multiple of 256 samples"):
        synth.encode(np.zeros((1, 1, 1000), np.float32))
    rave = LoadedModel(shared_models_dir / RAVE_STATELESS)
    assert rave.encode(np.zeros((1, 1, 2048), np.float32)).shape == (1, 1, 4)
