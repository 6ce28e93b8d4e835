"""Constant latent values."""

from __future__ import annotations

import numpy as np
import pytest

from .helpers import make


def test_values_scale_and_offset() -> None:
    frames = make(
        {"kind": "constant", "values": [1, 2, 3], "range": 2, "offset": [0, 0, 1]}, latent_size=3
    ).step(5)
    np.testing.assert_array_equal(frames, np.array([[2.0] * 5, [4.0] * 5, [7.0] * 5], dtype=np.float32))


def test_set_value_sets_every_dim_and_smoothing_glides_there() -> None:
    source = make({"kind": "constant", "smooth_s": 0.1}, latent_size=2)
    source.step(3)
    source.set_param("value", 1.0)
    frames = source.step(50)
    assert 0 < frames[0, 0] < 1.0  # glides
    assert frames[0, -1] == pytest.approx(1.0, abs=1e-3)
    assert source.params()["value"] == 1.0
