"""The random table loop."""

from __future__ import annotations

import math

import numpy as np
import pytest

from latentd.sources.table import tabread4

from .helpers import make

RATE_HZ = 20.0


def test_tabread4_hits_points_and_matches_pd_formula_between() -> None:
    table = np.array([[0.0, 1.0, -1.0, 0.5, 0.25]])
    np.testing.assert_allclose(
        tabread4(table, np.array([[0.0, 1.0, 2.0, 3.0, 4.0, 5.0]])), [[0, 1, -1, 0.5, 0.25, 0]]
    )
    # Pd tabread4~ between b=1 and c=-1 with a=0, d=0.5 at frac 0.5:
    a, b, c, d, f = 0.0, 1.0, -1.0, 0.5, 0.5
    expected = b + f * ((c - b) - (1 / 6) * (1 - f) * ((d - a - 3 * (c - b)) * f + (d + 2 * a - 3 * b)))
    assert tabread4(table, np.array([[1.5]]))[0, 0] == pytest.approx(expected)
    # Cubic through a straight line is the line.
    line = np.arange(10.0)[None, :]
    assert tabread4(line, np.array([[4.25]]))[0, 0] == pytest.approx(4.25)


def test_loops_at_loop_hz_through_seeded_points_within_width() -> None:
    source = make(
        {"kind": "table", "loop_hz": 0.5, "points": 8, "width": 0.5}, latent_size=2, latent_rate_hz=RATE_HZ
    )
    frames = source.step(120)  # 40 frames per loop, 5 frames per point
    np.testing.assert_allclose(frames[:, :40], frames[:, 40:80], atol=1e-6)
    points = frames[:, ::5][:, :8]
    assert np.all(np.abs(points) <= 0.5)
    assert len(np.unique(points)) == 16


def test_one_point_per_frame_reads_each_point_once_per_loop() -> None:
    source = make(
        {"kind": "table", "loop_hz": 2.0, "one_point_per_frame": True}, latent_size=1, latent_rate_hz=RATE_HZ
    )
    assert source.n_points == math.ceil(RATE_HZ / 2.0) == 10
    frames = source.step(30)[0]
    np.testing.assert_allclose(frames[:10], frames[10:20], atol=1e-6)
    assert len(np.unique(np.round(frames[:10], 6))) == 10


def test_trigger_restarts_the_loop() -> None:
    source = make({"kind": "table", "loop_hz": 0.1}, latent_rate_hz=RATE_HZ)
    first = source.step(25)
    source.step(13)
    source.trigger()
    np.testing.assert_allclose(source.step(25), first, atol=1e-6)
