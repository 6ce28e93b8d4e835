"""Slow LFOs: period, shape, direction, phase reset and parameters."""

from __future__ import annotations

import numpy as np
import pytest

from .helpers import make

RATE_HZ = 20.0


def test_period_matches_freq() -> None:
    source = make({"kind": "lfo", "freq_hz": 0.05, "phase": 0.0}, latent_size=1, latent_rate_hz=RATE_HZ)
    frames = source.step(2000)[0]  # 100 s = 5 periods of 20 s = 400 frames each
    np.testing.assert_allclose(frames[:1600], frames[400:2000], atol=1e-5)
    assert frames[0] == pytest.approx(1.0)
    assert frames[200] == pytest.approx(-1.0, abs=1e-6)  # half a period later
    assert frames[100] == pytest.approx(0.0, abs=1e-6)


def test_per_dim_frequencies_and_saw_direction() -> None:
    spec = {"kind": "lfo", "shape": "saw", "freq_hz": [0.1, 0.05], "direction": [1, -1], "phase": 0.5}
    frames = make(spec, latent_size=2, latent_rate_hz=RATE_HZ).step(400)
    assert np.all(np.diff(frames[0, :100]) > 0)  # rising saw, wraps at frame 100
    assert np.all(np.diff(frames[1, :200]) < 0)  # falling saw
    np.testing.assert_allclose(frames[0, :200], frames[0, 200:400], atol=1e-5)  # 10 s period
    assert frames[0, 0] == pytest.approx(0.0)


def test_intensity_scales_the_amplitude() -> None:
    frames = make({"kind": "lfo", "intensity": 0.25}, latent_rate_hz=RATE_HZ).step(800)
    assert np.abs(frames).max() == pytest.approx(0.25, abs=1e-3)


def test_trigger_resets_the_phase() -> None:
    source = make({"kind": "lfo"}, latent_rate_hz=RATE_HZ)
    first = source.step(30)
    source.step(17)
    source.trigger()
    np.testing.assert_allclose(source.step(30), first, atol=1e-6)


def test_freq_change_keeps_the_phase_continuous() -> None:
    source = make({"kind": "lfo", "freq_hz": 0.05, "phase": 0.0}, latent_size=1, latent_rate_hz=RATE_HZ)
    before = source.step(50)[0]
    source.set_param("freq_hz", 0.1)
    after = source.step(2)[0]
    # The phase reached so far is kept; only the speed from here on changes.
    step_old = 2 * np.pi * 0.05 / RATE_HZ
    step_new = 2 * np.pi * 0.1 / RATE_HZ
    assert before[-1] == pytest.approx(np.cos(49 * step_old), abs=1e-6)
    assert after[0] == pytest.approx(np.cos(50 * step_old), abs=1e-6)
    assert after[1] == pytest.approx(np.cos(50 * step_old + step_new), abs=1e-6)
    assert source.params()["freq_hz"] == pytest.approx(0.1)


def test_out_of_range_freq_is_refused() -> None:
    source = make({"kind": "lfo"})
    with pytest.raises(ValueError, match=r"'freq_hz' of lfo source must be in 0.001..0.1, got 2"):
        source.set_param("freq_hz", 2.0)
    with pytest.raises(ValueError, match=r"unknown parameter 'speed' for lfo source; allowed: freq_hz"):
        source.set_param("speed", 1.0)
