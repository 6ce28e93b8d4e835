"""The vschaos2 stand-in shows, through plain ``torch.jit.load``, every fact of a genuine vschaos2 export."""

from pathlib import Path

import numpy as np
import pytest
import torch

from latentd.modelkit.vschaos2 import build_vschaos2_standin

LATENTS = 8
HOP = 512
TAIL = 1536
SR = 44100.0
# Every failure is checked as RuntimeError: torch operations raise it (hosts catch it), while a
# scripted ``raise`` would surface as torch.jit.Error, which is not one.
LABELS = [f"(signal) latent dim {i}" for i in range(1, 9)] + [
    "(signal) pitch label (0-12)",
    "(signal) octave label (0-9)",
]


def load(path: Path) -> torch.jit.ScriptModule:
    return torch.jit.load(str(path))


def frames(
    pitch: float = 0.0, octave: float = 4.0, n: int = 8, batch: int = 1, seed: int = 0
) -> torch.Tensor:
    """Decoder input [batch, 10, n]: seeded latents, then constant pitch and octave labels."""
    z = torch.zeros(batch, LATENTS + 2, n)
    z[:, :LATENTS] = torch.randn(batch, LATENTS, n, generator=torch.Generator().manual_seed(seed))
    z[:, LATENTS] = pitch
    z[:, LATENTS + 1] = octave
    return z


def decode(model: torch.jit.ScriptModule, z: torch.Tensor, seed: int = 0) -> torch.Tensor:
    torch.manual_seed(seed)
    return model.decode(z)


def test_methods_params_and_shapes(vschaos2_model):
    model = load(vschaos2_model)
    assert list(model.get_methods()) == ["encode", "decode", "forward"]
    assert model.decode_params.tolist() == [10, 512, 1, 1]
    assert model.encode_params.tolist() == [1, 1, 8, 512]
    assert model.forward_params.tolist() == [3, 1, 1, 1]
    assert model.latent_dim == LATENTS
    assert decode(model, frames(n=8)).shape == (1, 1, 8 * HOP)
    assert model.encode(torch.zeros(1, 1, 4 * HOP)).shape == (1, LATENTS, 4)
    assert list(model.decode_output_labels) == ["(signal) channel 1"]


def test_decode_input_labels_are_vschaos2s(vschaos2_model):
    assert list(load(vschaos2_model).decode_input_labels) == LABELS


def test_model_declares_no_sample_rate(vschaos2_model):
    model = load(vschaos2_model)
    assert model.sr is None
    assert model.get_sample_rate() == -1


@pytest.mark.parametrize(("pitch", "octave"), [(12.0, 4.0), (-1.0, 4.0), (0.0, 9.0), (0.0, -1.0)])
def test_labels_out_of_range_raise_inside_the_model(vschaos2_model, pitch, octave):
    with pytest.raises(RuntimeError):
        decode(load(vschaos2_model), frames(pitch, octave))


def test_label_bounds_are_exclusive_and_values_truncated(vschaos2_model):
    model = load(vschaos2_model)
    top = decode(model, frames(11.0, 8.0))
    assert torch.isfinite(top).all()
    assert torch.equal(decode(load(vschaos2_model), frames(11.7, 8.9)), top)
    assert not torch.equal(decode(load(vschaos2_model), frames(10.0, 8.0)), top)


def test_labels_are_read_per_frame(vschaos2_model):
    z = frames(0.0, 4.0, n=8)
    changed = z.clone()
    changed[:, LATENTS, 4:] = 7.0
    changed_octave = z.clone()
    changed_octave[:, LATENTS + 1, 6] = 2.0
    y = decode(load(vschaos2_model), z)
    for other in (changed, changed_octave):
        y_other = decode(load(vschaos2_model), other)
        first = int((other != z).nonzero()[0, 2])
        # A frame's window starts at frame * hop: the audio before it cannot hear the change.
        assert torch.equal(y_other[..., : first * HOP], y[..., : first * HOP])
        assert not torch.equal(y_other[..., first * HOP :], y[..., first * HOP :])
    bad = z.clone()
    bad[:, LATENTS, 5] = 12.0
    with pytest.raises(RuntimeError):
        decode(load(vschaos2_model), bad)


def test_latent_dims_alone_are_refused(vschaos2_model):
    with pytest.raises(RuntimeError):
        decode(load(vschaos2_model), frames()[:, :LATENTS])


def test_attributes_defaults_and_setters(vschaos2_model):
    model = load(vschaos2_model)
    assert list(model.get_attributes()) == ["inversion_mode", "temperature", "dimred", "min_buffer_size"]
    assert model.get_inversion_mode() == "keep_input"
    assert model.get_temperature() == 0.0
    assert isinstance(model.get_temperature(), float)
    assert model.get_dimred() == "none"
    assert model.set_temperature(0.5) == 0
    assert model.get_temperature() == 0.5
    assert model.set_temperature(-1.0) == -1
    assert model.get_temperature() == 0.5
    for name in ("PCA", "ICA", "spherical", "none"):
        assert model.set_dimred(name) == 0
        assert model.get_dimred() == name
    assert model.set_dimred("tsne") == -1
    assert model.get_dimred() == "none"


def test_min_buffer_size_is_read_only_and_its_setter_takes_no_argument(vschaos2_model):
    model = load(vschaos2_model)
    assert model.get_min_buffer_size() == 4096
    assert model.set_min_buffer_size() == -1
    assert model.get_min_buffer_size() == 4096
    with pytest.raises(RuntimeError):
        model.set_min_buffer_size(2048)


def test_dimred_changes_what_decode_hears(vschaos2_model):
    z = frames()
    plain = decode(load(vschaos2_model), z)
    for name in ("PCA", "ICA", "spherical"):
        model = load(vschaos2_model)
        model.set_dimred(name)
        y = decode(model, z)
        assert torch.isfinite(y).all()
        assert not torch.equal(y, plain)


def test_griffin_lim_is_accepted_then_every_decode_raises(vschaos2_model):
    model = load(vschaos2_model)
    assert model.set_inversion_mode("griffin_lim") == 0
    assert model.get_inversion_mode() == "griffin_lim"
    for _ in range(2):
        with pytest.raises(RuntimeError):
            decode(model, frames())
    assert model.set_inversion_mode("keep_input") == 0
    assert decode(model, frames()).shape == (1, 1, 8 * HOP)


def test_overlap_add_carries_the_last_1536_samples_between_calls(vschaos2_model):
    first, second = frames(n=4, seed=1), frames(3.0, 5.0, n=4, seed=2)
    model = load(vschaos2_model)
    decode(model, first, seed=1)
    continued = decode(model, second, seed=2)
    fresh = decode(load(vschaos2_model), second, seed=2)
    assert not torch.equal(continued[..., :TAIL], fresh[..., :TAIL])
    assert torch.equal(continued[..., TAIL:], fresh[..., TAIL:])


def test_a_change_of_batch_size_resets_the_overlap_to_zeros(vschaos2_model):
    model = load(vschaos2_model)
    decode(model, frames(n=4, seed=1), seed=1)
    pair = frames(n=4, batch=2, seed=2)
    assert torch.equal(decode(model, pair, seed=2), decode(load(vschaos2_model), pair, seed=2))
    # Same batch size again: the tail carries over.
    again = decode(model, pair, seed=3)
    assert not torch.equal(again[..., :TAIL], decode(load(vschaos2_model), pair, seed=3)[..., :TAIL])


def test_keep_input_phase_is_torch_rand_like_so_seeding_repeats_audio(vschaos2_model):
    z = frames()
    a = decode(load(vschaos2_model), z, seed=5)
    b = decode(load(vschaos2_model), z, seed=5)
    c = decode(load(vschaos2_model), z, seed=6)
    assert torch.equal(a, b)
    assert not torch.equal(a, c)


def test_after_encode_keep_input_continues_the_input_phase_whatever_the_seed(vschaos2_model):
    x = 0.3 * torch.sin(torch.arange(8 * HOP) * (2 * np.pi * 220.0 / SR)).view(1, 1, -1)
    outputs = []
    for seed in (1, 2):
        model = load(vschaos2_model)
        model.encode(x)
        outputs.append(torch.cat([decode(model, frames(n=4), seed=seed) for _ in range(2)], -1))
    assert torch.equal(outputs[0], outputs[1])


def test_forward_fails_and_breaks_decode_until_encode(vschaos2_model):
    model = load(vschaos2_model)
    x = torch.zeros(1, 3, 4 * HOP)
    with pytest.raises(RuntimeError, match="Tensors must have same number of dimensions"):
        model.forward(x)
    for batch in (1, 1, 2):
        with pytest.raises(RuntimeError):
            decode(model, frames(batch=batch))
    model.encode(torch.zeros(1, 1, 4 * HOP))
    assert torch.isfinite(decode(model, frames())).all()


def test_forward_fails_and_breaks_decode_until_set_inversion_mode(vschaos2_model):
    model = load(vschaos2_model)
    with pytest.raises(RuntimeError, match="Tensors must have same number of dimensions"):
        model.forward(torch.zeros(1, 1, 4 * HOP))
    with pytest.raises(RuntimeError):
        decode(model, frames())
    assert model.set_inversion_mode("keep_input") == 0
    assert torch.isfinite(decode(model, frames())).all()


def harmonic_contrast(y: torch.Tensor, f0: float) -> float:
    """Mean spectrum near the harmonics of ``f0`` over the mean between them (below 5 kHz)."""
    signal = y.reshape(-1).numpy()
    spectrum = np.abs(np.fft.rfft(signal * np.hanning(signal.size)))
    hz = np.fft.rfftfreq(signal.size, 1.0 / SR)
    harmonic = hz / f0
    distance = np.abs(harmonic - np.round(harmonic))
    low = hz < 5000.0
    near = spectrum[low & (distance < 0.1) & (harmonic > 0.5)].mean()
    between = spectrum[low & (distance > 0.3)].mean()
    return float(near / between)


def test_audio_is_bounded_and_depends_on_latents_pitch_and_octave(vschaos2_model):
    z = frames(0.0, 4.0, n=32)
    y = decode(load(vschaos2_model), z)
    assert torch.isfinite(y).all()
    assert float(y.abs().max()) <= 1.0
    assert 0.02 < float(y[..., TAIL:].pow(2).mean().sqrt()) < 0.7
    loud = frames(0.0, 4.0, n=32)
    loud[:, :LATENTS] *= 8.0
    assert float(decode(load(vschaos2_model), loud).abs().max()) <= 1.0
    others = [frames(0.0, 4.0, n=32, seed=9), frames(3.0, 4.0, n=32), frames(0.0, 2.0, n=32)]
    for other in others:
        assert not torch.allclose(decode(load(vschaos2_model), other), y, atol=1e-3)
    # A4 = pitch 0 (A), octave 4: 440 Hz; C4 = pitch 3, octave 3 (A3 + 3 semitones).
    assert harmonic_contrast(y, 440.0) > 2.0
    c4 = decode(load(vschaos2_model), frames(3.0, 3.0, n=32))
    assert harmonic_contrast(c4, 27.5 * 2 ** (3 + 3 / 12)) > 2.0


def test_builder_is_repeatable_and_keeps_the_global_generator(tmp_path):
    torch.manual_seed(123)
    expected = torch.rand(1)
    torch.manual_seed(123)
    a = build_vschaos2_standin(tmp_path / "a.ts", seed=3)
    assert torch.equal(torch.rand(1), expected)
    b = build_vschaos2_standin(tmp_path / "b.ts", seed=3)
    other = build_vschaos2_standin(tmp_path / "c.ts", seed=4)
    z = frames()
    assert torch.equal(decode(load(a), z), decode(load(b), z))
    assert not torch.equal(decode(load(a), z), decode(load(other), z))


def test_builder_follows_latent_size_and_min_buffer_size(tmp_path):
    model = load(build_vschaos2_standin(tmp_path / "m.ts", latent_size=4, min_buffer_size=2048))
    assert model.decode_params.tolist() == [6, 512, 1, 1]
    assert model.encode_params.tolist() == [1, 1, 4, 512]
    assert list(model.decode_input_labels)[3:] == ["(signal) latent dim 4", *LABELS[-2:]]
    assert model.get_min_buffer_size() == 2048
    z = torch.zeros(1, 6, 4)
    z[:, 5] = 4.0
    assert model.decode(z).shape == (1, 1, 4 * HOP)


@pytest.mark.parametrize("kwargs", [{"latent_size": 0}, {"min_buffer_size": 0}])
def test_builder_refuses_bad_arguments(tmp_path, kwargs):
    with pytest.raises(ValueError):
        build_vschaos2_standin(tmp_path / "m.ts", **kwargs)


def test_calls_work_under_inference_mode_and_after_it(vschaos2_model):
    model = load(vschaos2_model)
    with torch.inference_mode():
        model.encode(torch.zeros(1, 1, 4 * HOP))
        inside = decode(model, frames(n=4))
    after = decode(model, frames(n=4))
    assert torch.isfinite(inside).all()
    assert torch.isfinite(after).all()
