"""Stepped sequences."""

from __future__ import annotations

import numpy as np
import pytest

from .helpers import make

RATE_HZ = 20.0


def test_holds_each_step_for_step_s_and_loops() -> None:
    source = make({"kind": "steps", "n_steps": 3, "step_s": 0.5}, latent_size=2, latent_rate_hz=RATE_HZ)
    frames = source.step(60)  # 10 frames per step, 30 per loop
    held = frames.reshape(2, 6, 10)
    assert np.all(held == held[:, :, :1])
    np.testing.assert_array_equal(frames[:, :30], frames[:, 30:])
    np.testing.assert_allclose(held[:, :3, 0], source.sequence, atol=1e-6)
    assert len(np.unique(held[0, :3, 0])) == 3


def test_gaussian_fill_gathers_near_the_centre() -> None:
    uniform = make({"kind": "steps", "n_steps": 16}, latent_size=64).sequence
    gaussian = make({"kind": "steps", "n_steps": 16, "fill": "gaussian"}, latent_size=64).sequence
    assert np.abs(gaussian).max() <= 1.0
    assert gaussian.std() < 0.7 * uniform.std()  # mean of 4 uniforms: std halves


def test_trigger_advance_only_moves_on_triggers() -> None:
    source = make({"kind": "steps", "advance": "trigger", "n_steps": 2}, latent_size=1)
    seq = source.sequence[0]
    assert np.all(source.step(100)[0] == np.float32(seq[0]))
    source.trigger()
    assert np.all(source.step(5)[0] == np.float32(seq[1]))
    source.trigger()
    assert np.all(source.step(5)[0] == np.float32(seq[0]))


def test_decay_envelope_restarts_each_step() -> None:
    spec = {"kind": "steps", "n_steps": 1, "step_s": 1.0, "decay_s": 0.25, "amplitude": 2.0}
    source = make(spec, latent_size=1, latent_rate_hz=RATE_HZ)
    value = 2.0 * source.sequence[0, 0]
    frames = source.step(40)[0]
    assert frames[0] == pytest.approx(value, rel=1e-6)
    assert frames[5] == pytest.approx(value * np.exp(-1.0), rel=1e-5)  # 0.25 s in
    assert frames[20] == pytest.approx(value, rel=1e-6)  # next step: envelope restarts


def test_bpm_parameter_follows_the_nearest_achievable_tempo() -> None:
    from latentd.sources import build_source
    from latentd.sources.specs import StepsSpec

    source = build_source(
        StepsSpec(kind="steps", n_steps=4), latent_size=2, latent_rate_hz=44100 / 2048, ratio=2048, seed=3
    )
    assert source.params()["bpm"] == 0.0
    source.set_param("bpm", 120.0)
    # 44100/2048 Hz: a beat of 11 latent frames is 117.45 BPM, the nearest to 120.
    assert abs(source.params()["bpm"] - 117.45) < 0.01
    frames = source.step(44)
    changes = np.flatnonzero(np.any(np.diff(frames, axis=1) != 0, axis=0)) + 1
    assert list(changes) == [11, 22, 33]
