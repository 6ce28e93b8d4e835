"""Behaviour every source shares: determinism, block-size independence, scale/offset, errors."""

from __future__ import annotations

import typing
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from latentd.sources import SourceSpec, build_source
from latentd.sources.specs import ConstantSpec

from .helpers import SPEC_ADAPTER, make

#: A latent file of 4 dims x 40 frames (a seeded random walk) for the `file` kind.
LATENT_FILE = Path(__file__).parent / "data" / "walk_d4_n40.npy"
#: A damped-recurrence prior (``latentd.modelkit.prior.save_prior``, latent_size 4, ratio 2048).
PRIOR_FILE = Path(__file__).parent / "data" / "prior_d4_r2048.ts"
#: A pool folder holding one item (the walk above as ``item_00000000_seed0.npy``) for the `pool` kind.
POOL_DIR = Path(__file__).parent / "data" / "pool_d4"

#: One spec per registered kind, with options that exercise state (smoothing, triggers, loops).
EVERY_KIND: dict[str, dict[str, Any]] = {
    "noise": {"kind": "noise", "smooth_s": 0.05},
    "noise_bank": {"kind": "noise", "seed_bank": [3, 4]},
    "lfo": {"kind": "lfo", "shape": "saw", "freq_hz": [0.1, 0.02, 0.05, 0.07]},
    "walk": {"kind": "walk", "smooth_s": 0.2},
    "constant": {"kind": "constant", "values": [0.5, -1, 2, 0], "smooth_s": 0.3},
    "table": {"kind": "table", "loop_hz": 0.3, "points": 5},
    "table_per_frame": {"kind": "table", "loop_hz": 1.0, "one_point_per_frame": True},
    "steps": {"kind": "steps", "step_s": 0.3, "decay_s": 0.2, "fill": "gaussian"},
    "steps_trigger": {"kind": "steps", "advance": "trigger", "decay_s": 1.0, "smooth_s": 0.05},
    "presets": {"kind": "presets", "banks": [0, [1, 2, 3, 4], -1], "ramp_s": 0.5},
    "pattern_orale": {"kind": "pattern", "pattern": "orale", "frames": 3, "std": 0.5},
    "pattern_swapper": {
        "kind": "pattern",
        "pattern": "swapper",
        "base": "uniform",
        "frames": 4,
        "num_loops": 2,
    },
    "pattern_blender": {"kind": "pattern", "pattern": "blender", "base": "iqr_uniform", "frames": 2},
    "pattern_fibo": {
        "kind": "pattern",
        "pattern": "fibo",
        "base": "correlated",
        "frames": 6,
        "mean": [0, 1, 0, 0],
        "covariance": [[1, 0.5, 0, 0], [0.5, 1, 0, 0], [0, 0, 1, 0], [0, 0, 0, 2]],
    },
    "file": {"kind": "file", "path": str(LATENT_FILE), "speed": 0.7, "start_frame": 3},
    "file_once": {"kind": "file", "path": str(LATENT_FILE), "loop": False, "speed": 1.5, "smooth_s": 0.1},
    "prior": {"kind": "prior", "path": str(PRIOR_FILE), "temperature": 0.5},
    "pool": {"kind": "pool", "folder": str(POOL_DIR), "smooth_s": 0.05},
}
#: Kinds whose frames do not depend on the voice seed, by design.
SEEDLESS = {"constant", "noise_bank", "presets", "file", "file_once", "pool"}


def registered_kinds() -> set[str]:
    union = typing.get_args(typing.get_args(SourceSpec)[0])
    return {typing.get_args(member.model_fields["kind"].annotation)[0] for member in union}


def test_every_registered_kind_is_covered_here() -> None:
    assert {spec["kind"] for spec in EVERY_KIND.values()} == registered_kinds()


@pytest.mark.parametrize("name", sorted(EVERY_KIND))
def test_same_seed_gives_same_frames(name: str) -> None:
    a = make(EVERY_KIND[name], seed=5).step(300)
    b = make(EVERY_KIND[name], seed=5).step(300)
    np.testing.assert_array_equal(a, b)
    assert a.dtype == np.float32 and a.shape == (4, 300)
    assert np.all(np.isfinite(a))


@pytest.mark.parametrize("name", sorted(set(EVERY_KIND) - SEEDLESS))
def test_different_seed_gives_different_frames(name: str) -> None:
    a = make(EVERY_KIND[name], seed=5).step(300)
    b = make(EVERY_KIND[name], seed=6).step(300)
    assert not np.allclose(a, b)


@pytest.mark.parametrize("name", sorted(EVERY_KIND))
def test_reseed_restarts_like_a_fresh_source(name: str) -> None:
    source = make(EVERY_KIND[name], seed=5)
    source.step(123)
    source.trigger()
    source.reseed(9)
    np.testing.assert_array_equal(source.step(200), make(EVERY_KIND[name], seed=9).step(200))


@pytest.mark.parametrize("name", sorted(EVERY_KIND))
def test_block_size_does_not_change_frames(name: str) -> None:
    whole = make(EVERY_KIND[name]).step(700)
    source = make(EVERY_KIND[name])
    sizes = [1, 0, 7, 64, 3, 125, 500]
    parts = np.concatenate([source.step(n) for n in sizes], axis=1)
    np.testing.assert_array_equal(parts, whole)


@pytest.mark.parametrize("name", sorted(EVERY_KIND))
def test_block_split_with_triggers_matches(name: str) -> None:
    def run(sizes: list[int]) -> np.ndarray:
        source = make(EVERY_KIND[name])
        out = [source.step(n) for n in sizes[:1]]
        source.trigger()
        out += [source.step(n) for n in sizes[1:]]
        return np.concatenate(out, axis=1)

    np.testing.assert_array_equal(run([40, 10, 50]), run([40, 60]))


@pytest.mark.parametrize("name", sorted(EVERY_KIND))
def test_scale_and_offset_shape_the_output(name: str) -> None:
    spec = EVERY_KIND[name] | {"smooth_s": 0.0}
    plain = make(spec).step(100)
    shaped = make(spec | {"range": 0.5, "offset": [1, 2, 3, 4]}).step(100)
    np.testing.assert_allclose(shaped, plain * 0.5 + np.array([[1], [2], [3], [4]]), atol=1e-5)


@pytest.mark.parametrize("name", sorted(EVERY_KIND))
def test_params_are_reported_and_settable(name: str) -> None:
    source = make(EVERY_KIND[name])
    params = source.params()
    assert {"scale", "smooth_s"} <= set(params)
    for key, value in params.items():
        source.set_param(key, value)
    assert source.params() == params
    with pytest.raises(ValueError, match=r"unknown parameter 'nope'.*allowed: .*scale"):
        source.set_param("nope", 1.0)
    with pytest.raises(ValueError, match=r"'smooth_s' .* must be in 0..60, got -1"):
        source.set_param("smooth_s", -1.0)


def test_scale_param_applies_from_the_next_frame() -> None:
    source = make({"kind": "constant", "values": 1.0})
    source.set_param("scale", 3.0)
    assert np.all(source.step(2) == 3.0)


def test_per_dim_list_of_wrong_length_names_the_field() -> None:
    with pytest.raises(ValueError, match=r"`offset`: 3 values given, but latent_size is 4"):
        make({"kind": "walk", "offset": [1, 2, 3]}, latent_size=4)
    with pytest.raises(ValueError, match=r"`freq_hz`: 2 values given, but latent_size is 8"):
        make({"kind": "lfo", "freq_hz": [0.01, 0.02]}, latent_size=8)
    with pytest.raises(ValueError, match=r"`values`: 5 values given, but latent_size is 4"):
        make({"kind": "constant", "values": [1, 2, 3, 4, 5]}, latent_size=4)


def test_invalid_model_numbers_are_refused() -> None:
    spec = ConstantSpec(kind="constant")
    with pytest.raises(ValueError, match="latent_size must be >= 1"):
        build_source(spec, latent_size=0, latent_rate_hz=20.0, ratio=64, seed=0)
    with pytest.raises(ValueError, match="ratio must be >= 1"):
        build_source(spec, latent_size=2, latent_rate_hz=20.0, ratio=0, seed=0)
    with pytest.raises(ValueError, match="n_frames must be >= 0"):
        build_source(spec, latent_size=2, latent_rate_hz=20.0, ratio=64, seed=0).step(-1)


def test_every_spec_field_has_a_description() -> None:
    for member in typing.get_args(typing.get_args(SourceSpec)[0]):
        for name, field in member.model_fields.items():
            assert field.description, f"{member.__name__}.{name} has no description"


def test_spec_errors() -> None:
    from pydantic import ValidationError

    with pytest.raises(ValidationError, match="Extra inputs are not permitted"):
        SPEC_ADAPTER.validate_python({"kind": "walk", "stepstd": 1.0})
    with pytest.raises(ValidationError, match=r"less than or equal to 0\.1"):
        SPEC_ADAPTER.validate_python({"kind": "lfo", "freq_hz": 1.0})
    with pytest.raises(ValidationError, match="'noise', 'lfo'"):
        SPEC_ADAPTER.validate_python({"kind": "spline"})
    with pytest.raises(ValidationError, match="either `seeds` or `seed_bank`"):
        SPEC_ADAPTER.validate_python({"kind": "noise", "seeds": [1], "seed_bank": [2]})
    spec = SPEC_ADAPTER.validate_python({"kind": "noise", "range": 2})
    assert spec.scale == 2.0
    with pytest.raises(ValidationError, match="frozen"):
        spec.scale = 3.0
