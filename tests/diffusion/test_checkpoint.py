"""Loading RAVE-Latent-Diffusion checkpoints and generating items from seeds."""

from __future__ import annotations

import sys
from collections.abc import Callable
from pathlib import Path

import numpy as np
import pytest
import torch

from latentd.diffusion import (
    ARCHITECTURE_PRESETS,
    CheckpointError,
    DiffusionUnavailable,
    GenerationError,
    LatentDiffusion,
    get_architecture,
    load_checkpoint,
    original_architecture,
    slerp,
)
from latentd.modelkit.builder import SynthSpec

pytest.importorskip("a_unet", reason="latent diffusion needs the `diffusion` extra (a-unet)")

from .conftest import (
    LATENT_LENGTH,
    ORIGINAL_DIMS,
    ORIGINAL_NET,
    RAVE_DIMS,
    TINY,
    save_checkpoint,
    save_full_size,
    save_nan_checkpoint,
)


@pytest.fixture(scope="module")
def model(tiny_checkpoint: Path) -> LatentDiffusion:
    return load_checkpoint(tiny_checkpoint, architecture=TINY)


def test_item_has_the_checkpoint_shape_and_normalisation(model: LatentDiffusion) -> None:
    z = model.generate(seed=1, temperature=0.8, steps=4, latent_scale=1.5)
    assert z.shape == (1, RAVE_DIMS, LATENT_LENGTH) and z.dtype == np.float32
    assert np.all(np.isfinite(z))
    assert abs(float(z.mean())) < 1e-4
    assert float(z.std(ddof=1)) == pytest.approx(1.5, rel=1e-4)


def test_decoded_item_lasts_latent_length_frames(
    model: LatentDiffusion, model_factory: Callable[[SynthSpec], Path]
) -> None:
    spec = SynthSpec(latent_size=RAVE_DIMS, ratio=512, sr=44100)
    rave = torch.jit.load(str(model_factory(spec)))
    z = model.generate(seed=3, steps=3)
    audio = rave.decode(torch.from_numpy(z))
    assert audio.shape[-1] / spec.sr == pytest.approx(LATENT_LENGTH * spec.ratio / spec.sr)
    assert float(audio.abs().max()) > 0


def test_same_seed_same_item_and_other_seed_another(model: LatentDiffusion, tiny_checkpoint: Path) -> None:
    a = model.generate(seed=5, steps=3)
    again = load_checkpoint(tiny_checkpoint, architecture=TINY).generate(seed=5, steps=3)
    np.testing.assert_array_equal(a, again)
    assert not np.allclose(a, model.generate(seed=6, steps=3))


def test_steps_and_temperature_change_the_item(model: LatentDiffusion) -> None:
    base = model.generate(seed=5, steps=3)
    assert not np.allclose(base, model.generate(seed=5, steps=6))
    assert not np.allclose(base, model.generate(seed=5, steps=3, temperature=0.3))


def test_slerp_runs_from_one_seed_to_the_other(model: LatentDiffusion) -> None:
    np.testing.assert_array_equal(model.noise(7, 0.9, slerp_to_seed=8, slerp_t=0.0), model.noise(7, 0.9))
    np.testing.assert_array_equal(
        model.generate(seed=7, steps=3, slerp_to_seed=8, slerp_t=0.0), model.generate(seed=7, steps=3)
    )
    np.testing.assert_allclose(
        model.generate(seed=7, steps=3, slerp_to_seed=8, slerp_t=1.0),
        model.generate(seed=8, steps=3),
        atol=1e-4,
    )
    middle = model.generate(seed=7, steps=3, slerp_to_seed=8, slerp_t=0.5)
    assert not np.allclose(middle, model.generate(seed=7, steps=3))
    assert not np.allclose(middle, model.generate(seed=8, steps=3))
    # A slerp keeps the noise on the sphere: its norm stays near the ends' (a plain mix would shrink it).
    norms = [float(model.noise(7, 1.0, slerp_to_seed=8, slerp_t=t).norm()) for t in (0.0, 0.5, 1.0)]
    assert norms[1] == pytest.approx(norms[0], rel=0.05)


def test_a_slerp_ramp_glides_along_time_from_one_series_to_the_other() -> None:
    generator = torch.Generator().manual_seed(3)
    low, high = torch.randn(2, 1, 3, 50, generator=generator)
    out = slerp(low, high, torch.linspace(0.0, 1.0, 50))
    torch.testing.assert_close(out[..., 0], low[..., 0])
    torch.testing.assert_close(out[..., -1], high[..., -1])
    middle = slerp(low, high, 0.5)
    torch.testing.assert_close(out[..., 25], slerp(low, high, 25 / 49)[..., 25])
    assert not torch.allclose(out[..., 25], middle[..., 25])


def test_lerp_items_glide_from_one_seed_to_the_next(model: LatentDiffusion) -> None:
    base = model.generate(seed=7, steps=3)
    np.testing.assert_array_equal(model.generate(seed=7, steps=3, lerp_to_seed=8, lerp_factor=0.0), base)
    glide = model.generate(seed=7, steps=3, lerp_to_seed=8, lerp_factor=1.0)
    np.testing.assert_array_equal(glide, model.generate(seed=7, steps=3, lerp_to_seed=8, lerp_factor=1.0))
    other = model.generate(seed=8, steps=3)

    def corr(a: np.ndarray, b: np.ndarray) -> float:
        return float(np.corrcoef(a.ravel(), b.ravel())[0, 1])

    head, tail = slice(0, LATENT_LENGTH // 4), slice(-LATENT_LENGTH // 4, None)
    # The first frames follow seed 7's item, the last ones seed 8's (z-scoring keeps correlations).
    assert corr(glide[..., head], base[..., head]) > corr(glide[..., head], other[..., head])
    assert corr(glide[..., tail], other[..., tail]) > corr(glide[..., tail], base[..., tail])
    with pytest.raises(ValueError, match=r"lerp_factor must be in 0\.\.1, got 1\.5"):
        model.generate(seed=7, steps=1, lerp_to_seed=8, lerp_factor=1.5)


def test_original_format_needs_the_length_and_reads_the_dims_from_the_weights(tmp_path: Path) -> None:
    path = save_checkpoint(tmp_path / "original.pt", flexed=False)
    with pytest.raises(CheckpointError, match=r"does not store `latent_length`.*pass latent_length="):
        load_checkpoint(path, architecture=TINY)
    model = load_checkpoint(path, latent_length=LATENT_LENGTH, architecture=TINY)
    assert model.rave_dims == RAVE_DIMS
    assert model.generate(seed=1, steps=2).shape == (1, RAVE_DIMS, LATENT_LENGTH)
    model = load_checkpoint(path, latent_length=LATENT_LENGTH, rave_dims=RAVE_DIMS, architecture=TINY)
    assert model.generate(seed=1, steps=2).shape == (1, RAVE_DIMS, LATENT_LENGTH)
    with pytest.raises(CheckpointError, match=r"weights do not fit the architecture.*rave_dims 6"):
        load_checkpoint(path, latent_length=LATENT_LENGTH, rave_dims=6, architecture=TINY)


def test_values_contradicting_the_checkpoint_are_refused(tiny_checkpoint: Path) -> None:
    with pytest.raises(
        CheckpointError, match=r"rave_dims=8 was asked for, but the checkpoint was trained with 4"
    ):
        load_checkpoint(tiny_checkpoint, rave_dims=8, architecture=TINY)


def test_unknown_latent_length_names_the_presets(tmp_path: Path) -> None:
    path = tmp_path / "odd.pt"
    checkpoint = torch.load(save_checkpoint(path), weights_only=True)
    torch.save(checkpoint | {"latent_length": 100}, path)
    known = ", ".join(str(n) for n in sorted(ARCHITECTURE_PRESETS))
    with pytest.raises(
        CheckpointError, match=rf"no architecture preset for latent_length 100; presets exist for {known}"
    ):
        load_checkpoint(path)


def test_weights_of_another_architecture_are_refused(tiny_checkpoint: Path, tmp_path: Path) -> None:
    checkpoint = torch.load(tiny_checkpoint, weights_only=True)
    state = dict(checkpoint["model_state_dict"])
    dropped = sorted(state)[0]
    del state[dropped]
    path = tmp_path / "missing.pt"
    torch.save(checkpoint | {"model_state_dict": state}, path)
    with pytest.raises(CheckpointError, match=r"do not fit the architecture.*1 missing keys"):
        load_checkpoint(path, architecture=TINY)
    # Weights of the right names but other sizes do not fit either.
    with pytest.raises(CheckpointError, match=r"do not fit the architecture.*weights of other shapes"):
        load_checkpoint(tiny_checkpoint, architecture=TINY | {"channels": [8, 8, 32]})


def test_files_that_are_not_checkpoints_are_refused(tmp_path: Path) -> None:
    with pytest.raises(CheckpointError, match=r"no such diffusion checkpoint file"):
        load_checkpoint(tmp_path / "absent.pt")
    text = tmp_path / "notes.pt"
    text.write_text("not a checkpoint")
    with pytest.raises(CheckpointError, match=r"not a readable torch checkpoint"):
        load_checkpoint(text)
    other = tmp_path / "other.pt"
    torch.save({"weights": torch.zeros(3)}, other)
    with pytest.raises(CheckpointError, match=r"expected a dict with `model_state_dict`.*found weights"):
        load_checkpoint(other)


def test_missing_extra_says_how_to_install(tiny_checkpoint: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setitem(sys.modules, "a_unet", None)
    monkeypatch.setitem(sys.modules, "a_unet.apex", None)
    with pytest.raises(DiffusionUnavailable, match=r"pip install 'latentd\[diffusion\]'"):
        load_checkpoint(tiny_checkpoint, architecture=TINY)


def test_bad_generation_arguments_are_refused(model: LatentDiffusion) -> None:
    with pytest.raises(ValueError, match="steps must be >= 1, got 0"):
        model.generate(seed=1, steps=0)
    with pytest.raises(ValueError, match=r"slerp_t must be in 0\.\.1, got 2"):
        model.generate(seed=1, steps=1, slerp_to_seed=2, slerp_t=2.0)


def scripts_item(net: torch.nn.Module, seed: int, shape: tuple[int, ...], steps: int) -> np.ndarray:
    """An item as RAVE-Latent-Diffusion's generate.py (and the Flex'ed fork's) makes it."""
    torch.manual_seed(seed)
    noise = torch.randn(*shape) * 1.0
    with torch.no_grad():
        diff = net.sample(noise, num_steps=steps)  # type: ignore[operator]
    return ((diff - diff.mean()) / diff.std()).numpy()


@pytest.mark.slow
def test_an_original_checkpoint_trained_at_2048_loads_with_the_original_architecture(
    original_2048: Path,
) -> None:
    model = load_checkpoint(original_2048, latent_length=2048)
    assert not model.flexed
    assert model.architecture == ORIGINAL_NET == original_architecture()
    assert (model.rave_dims, model.latent_length) == (ORIGINAL_DIMS, 2048)
    item = model.generate(seed=11, steps=1)
    assert item.shape == (1, ORIGINAL_DIMS, 2048) and np.all(np.isfinite(item))
    np.testing.assert_array_equal(item, scripts_item(model.model, 11, (1, ORIGINAL_DIMS, 2048), 1))


def test_the_original_architecture_takes_multiples_of_2048_frames(original_2048: Path) -> None:
    with pytest.raises(
        CheckpointError,
        match=r"latent_length 1000 does not fit the original RAVE-Latent-Diffusion architecture.*"
        r"multiple of 2048",
    ):
        load_checkpoint(original_2048, latent_length=1000)


def test_the_flexed_preset_is_for_flexed_checkpoints_only(original_2048: Path, tmp_path: Path) -> None:
    # The same weights stored with a length are read as Flex'ed: its 2048 preset has other layers.
    flexed = tmp_path / "flexed.pt"
    torch.save(torch.load(original_2048, weights_only=True) | {"latent_length": 2048}, flexed)
    with pytest.raises(
        CheckpointError,
        match=r"do not fit the architecture \(the Flex'ed preset for latent_length 2048\).*"
        r"210 missing keys.*636 unexpected keys",
    ):
        load_checkpoint(flexed)


@pytest.mark.slow
def test_a_flexed_checkpoint_builds_its_lengths_preset_as_the_fork_does(tmp_path: Path) -> None:
    path = save_full_size(tmp_path / "flexed_256.pt", get_architecture(256), rave_dims=8, latent_length=256)
    model = load_checkpoint(path)
    assert model.flexed and model.architecture == ARCHITECTURE_PRESETS[256]
    # The fork's generate.py: the preset's net with the checkpoint's weights, noise from torch's seed.
    state = torch.load(path, weights_only=True)["model_state_dict"]
    loaded = model.model.state_dict()
    assert loaded.keys() == state.keys()
    # A sample of the keys: comparing with overlapping views reads slowly.
    assert all(torch.equal(loaded[key], state[key]) for key in list(state)[::50])
    np.testing.assert_array_equal(
        model.generate(seed=4, steps=1), scripts_item(model.model, 4, (1, 8, 256), 1)
    )
    # Stored without its length, the same weights are the original format: the original's one
    # architecture, which they do not fit.
    original = tmp_path / "original_256.pt"
    torch.save({"model_state_dict": torch.load(path, weights_only=True)["model_state_dict"]}, original)
    with pytest.raises(CheckpointError, match=r"latent_length 256 does not fit the original"):
        load_checkpoint(original, latent_length=256)
    with pytest.raises(CheckpointError, match=r"do not fit the architecture \(the original"):
        load_checkpoint(original, latent_length=2048)


def test_an_item_that_is_not_finite_is_never_handed_out(tmp_path: Path) -> None:
    model = load_checkpoint(save_nan_checkpoint(tmp_path / "diverged.pt"), architecture=TINY)
    with pytest.raises(GenerationError, match=r"diverged\.pt: the item of seed 3 holds NaN/Inf values"):
        model.generate(seed=3, steps=1)
