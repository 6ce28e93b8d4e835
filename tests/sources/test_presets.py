"""Preset banks with ramps."""

from __future__ import annotations

import numpy as np
import pytest

from .helpers import make

RATE_HZ = 20.0


def test_starts_on_its_bank_and_ramps_on_switch() -> None:
    source = make(
        {"kind": "presets", "banks": [[0, 0], [1, -2]], "ramp_s": 0.5}, latent_size=2, latent_rate_hz=RATE_HZ
    )
    np.testing.assert_array_equal(source.step(3), np.zeros((2, 3)))
    source.set_param("bank", 1)
    frames = source.step(12)
    np.testing.assert_allclose(frames[0, :10], np.arange(1, 11) / 10, atol=1e-6)  # 10-frame linear ramp
    np.testing.assert_allclose(frames[:, 9:], [[1, 1, 1], [-2, -2, -2]])
    assert source.params()["bank"] == 1.0


def test_switch_mid_ramp_continues_from_where_it_is() -> None:
    source = make({"kind": "presets", "banks": [0, 1], "ramp_s": 1.0}, latent_size=1, latent_rate_hz=RATE_HZ)
    source.step(1)
    source.trigger()  # to bank 1
    mid = source.step(5)[0, -1]
    source.trigger()  # back to bank 0, cycling
    following = source.step(20)[0]
    assert following[0] == pytest.approx(mid * (1 - 1 / 20), abs=1e-6)
    assert following[-1] == 0.0


def test_default_ramp_is_100_ms() -> None:
    source = make({"kind": "presets", "banks": [0, 1]}, latent_size=1, latent_rate_hz=100.0)
    source.set_param("bank", 1)
    frames = source.step(12)[0]
    assert frames[8] < 1.0 and frames[9] == 1.0


def test_bad_bank_values_are_refused() -> None:
    source = make({"kind": "presets", "banks": [0, 1]})
    with pytest.raises(ValueError, match=r"'bank' of presets source must be a whole number, got 0.5"):
        source.set_param("bank", 0.5)
    with pytest.raises(ValueError, match=r"'bank' of presets source must be in 0..1, got 2"):
        source.set_param("bank", 2)
    with pytest.raises(ValueError, match=r"`bank`: 3 given, but there are only 2 banks"):
        make({"kind": "presets", "banks": [0, 1], "bank": 3})
    with pytest.raises(ValueError, match=r"`banks\[1\]`: 2 values given, but latent_size is 4"):
        make({"kind": "presets", "banks": [0, [1, 2]]}, latent_size=4)
