"""The mean-reverting random walk."""

from __future__ import annotations

import numpy as np

from .helpers import make


def test_stays_bounded_and_centred_over_100k_frames() -> None:
    frames = make({"kind": "walk", "step_std": 0.5, "pull": 0.2}, latent_size=4).step(100_000)
    assert np.abs(frames).max() <= 3.0
    # Stationary spread of the walk is step_std / sqrt(2 pull) ~ 0.79; it moves but comes back.
    assert np.all(np.abs(frames.mean(axis=1)) < 0.5)
    assert np.all((frames.std(axis=1) > 0.4) & (frames.std(axis=1) < 1.3))


def test_free_walk_is_held_by_the_limit() -> None:
    frames = make({"kind": "walk", "step_std": 5.0, "pull": 0.0, "limit": 1.5}).step(20_000)
    assert np.abs(frames).max() <= 1.5
    assert np.abs(frames).max() == np.float32(1.5)


def test_moves_smoothly() -> None:
    frames = make({"kind": "walk", "step_std": 0.5}).step(5000)
    assert np.abs(np.diff(frames, axis=1)).max() < 0.6  # 0.5 * sqrt(1/21.5) per frame ~ 0.11 std


def test_params_change_the_motion() -> None:
    source = make({"kind": "walk"})
    source.set_param("step_std", 0.0)
    source.set_param("pull", 10.0)
    frames = source.step(200)
    assert np.abs(frames[:, -1]).max() < 1e-3  # no kicks, strong pull: back to centre
    assert source.params()["pull"] == 10.0
