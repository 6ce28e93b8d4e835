"""Pd noise~ reproduction and nn~ sampling of the noise source."""

from __future__ import annotations

import numpy as np
import pytest

from latentd.sources.noise import MASK32, lcg_jump, pd_noise_audio

from .helpers import make


def test_pd_noise_known_values_for_seed_444444() -> None:
    values = pd_noise_audio(444444, 3)
    np.testing.assert_allclose(values, [-0.999586, 0.677308, -0.613682], atol=1e-6)


def test_lcg_jump_equals_repeated_steps() -> None:
    state = 123456789
    for _ in range(777):
        state = (state * 435898247 + 382842987) & MASK32
    a, c = lcg_jump(777)
    assert (a * 123456789 + c) & MASK32 == state


def test_ratio_one_gives_the_audio_stream_itself() -> None:
    source = make({"kind": "noise", "seeds": [444444]}, latent_size=1, ratio=1)
    np.testing.assert_array_equal(source.step(500)[0], pd_noise_audio(444444, 500))


@pytest.mark.parametrize("ratio", [64, 2048])
def test_frame_t_is_the_last_sample_of_each_hop(ratio: int) -> None:
    seeds = [444444, 1, -5, 2**32 - 1]
    source = make({"kind": "noise", "seeds": seeds}, latent_size=4, ratio=ratio)
    n_frames = 300 if ratio == 64 else 40
    frames = source.step(n_frames)
    assert frames.dtype == np.float32
    assert frames.shape == (4, n_frames)
    for dim, seed in enumerate(seeds):
        audio = pd_noise_audio(seed, n_frames * ratio)
        np.testing.assert_array_equal(frames[dim], audio[ratio - 1 :: ratio])


def test_default_seeds_derive_from_the_voice_seed() -> None:
    source = make({"kind": "noise"}, latent_size=3, ratio=64, seed=10)
    frames = source.step(20)
    for dim in range(3):
        np.testing.assert_array_equal(frames[dim], pd_noise_audio(10 + 1000 * dim, 20 * 64)[63::64])


def test_restart_on_trigger_starts_the_streams_again() -> None:
    source = make({"kind": "noise", "restart_on_trigger": True}, ratio=64)
    first = source.step(10)
    source.step(5)
    source.trigger()
    np.testing.assert_array_equal(source.step(10), first)


def test_trigger_without_restart_keeps_running() -> None:
    reference = make({"kind": "noise"}, ratio=64).step(20)
    source = make({"kind": "noise"}, ratio=64)
    source.step(10)
    source.trigger()
    np.testing.assert_array_equal(source.step(10), reference[:, 10:])


def test_seed_bank_cycles_through_its_entries() -> None:
    bank = [11, [1, 2, 3, 4], 33]
    source = make({"kind": "noise", "seed_bank": bank}, latent_size=4, ratio=64)
    expected_seeds = [[11, 1011, 2011, 3011], [1, 2, 3, 4], [33, 1033, 2033, 3033], [11, 1011, 2011, 3011]]
    for i, seeds in enumerate(expected_seeds):
        if i:
            source.trigger()
        frames = source.step(5)
        for dim, seed in enumerate(seeds):
            np.testing.assert_array_equal(frames[dim], pd_noise_audio(seed, 5 * 64)[63::64])


def test_pinned_seeds_win_over_the_voice_seed() -> None:
    a = make({"kind": "noise", "seeds": [1, 2, 3, 4]}, seed=1).step(8)
    b = make({"kind": "noise", "seeds": [1, 2, 3, 4]}, seed=2).step(8)
    np.testing.assert_array_equal(a, b)


def test_slew_smooths_the_jumps() -> None:
    raw = make({"kind": "noise"}, ratio=64).step(200)
    slewed = make({"kind": "noise", "smooth_s": 0.5}, ratio=64).step(200)
    assert np.abs(np.diff(slewed)).mean() < 0.2 * np.abs(np.diff(raw)).mean()


def test_wrong_number_of_seeds_is_refused() -> None:
    with pytest.raises(ValueError, match=r"`seeds`: 2 seeds given, but latent_size is 4"):
        make({"kind": "noise", "seeds": [1, 2]}, latent_size=4)
    with pytest.raises(ValueError, match=r"`seed_bank\[1\]`: 3 seeds given, but latent_size is 4"):
        make({"kind": "noise", "seed_bank": [1, [1, 2, 3]]}, latent_size=4)


def test_large_blocks_are_fast_enough_to_be_vectorised() -> None:
    # 100k frames at ratio 2048 would be 2e8 LCG steps in a loop; vectorised it is one numpy pass.
    frames = make({"kind": "noise"}, ratio=2048).step(100_000)
    assert frames.shape == (4, 100_000)
    assert -1.0 <= frames.min() < -0.99 and 0.99 < frames.max() < 1.0
