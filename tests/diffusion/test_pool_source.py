"""The `pool` source on a folder written by hand (no diffusion model needed)."""

from __future__ import annotations

import time
from pathlib import Path

import numpy as np
import pytest

from latentd.diffusion.pool import write_item
from latentd.sources import PoolSpec, build_source
from latentd.sources.pool import PoolSource

GUARD_S = 60.0


def item(value: float, n_frames: int, dims: int = 3) -> np.ndarray:
    return np.full((1, dims, n_frames), value, dtype=np.float32)


def make(folder: Path, latent_size: int = 3) -> PoolSource:
    source = build_source(
        PoolSpec(kind="pool", folder=str(folder), poll_s=0.01),
        latent_size=latent_size,
        latent_rate_hz=20.0,
        ratio=2048,
        seed=0,
    )
    assert isinstance(source, PoolSource)
    return source


def step_until_item(source: PoolSource, name: str, n_frames: int) -> list[np.ndarray]:
    played = []
    deadline = time.monotonic() + GUARD_S
    while source.item_name != name:
        assert time.monotonic() < deadline, f"{name} was never picked up (playing {source.item_name})"
        played.append(source.step(n_frames))
        time.sleep(0.002)
    return played


def test_starts_with_the_newest_item_and_holds_it_until_another_comes(tmp_path: Path) -> None:
    write_item(tmp_path, 0, 10, item(1.0, 4))
    write_item(tmp_path, 1, 11, item(2.0, 4))
    source = make(tmp_path)
    try:
        assert source.item_name == "item_00000001_seed11.npy"
        assert np.all(source.step(12) == 2.0)  # three times through the 4-frame item: held
        write_item(tmp_path, 2, 12, np.arange(6, dtype=np.float32).reshape(1, 1, 6).repeat(3, axis=1))
        played = step_until_item(source, "item_00000002_seed12.npy", 3)
        frames = np.concatenate([*played, source.step(6)], axis=1)[0]
        # The new item follows at the end of a pass through the old one, from its first frame.
        switch = int(np.argmax(frames != 2.0))
        assert switch % 4 == 0 and np.all(frames[:switch] == 2.0)
        np.testing.assert_array_equal(frames[switch : switch + 6], np.arange(6))
    finally:
        source.close()


def test_empty_folder_plays_zeros_then_the_first_item(tmp_path: Path) -> None:
    source = make(tmp_path)
    try:
        assert np.all(source.step(8) == 0)
        write_item(tmp_path, 0, 5, item(3.0, 5))
        step_until_item(source, "item_00000000_seed5.npy", 2)
        assert np.all(source.step(7) == 3.0)
    finally:
        source.close()


def test_items_of_other_dims_are_skipped(tmp_path: Path) -> None:
    source = make(tmp_path)
    try:
        write_item(tmp_path, 0, 0, item(9.0, 4, dims=5))
        write_item(tmp_path, 1, 1, item(4.0, 4))
        step_until_item(source, "item_00000001_seed1.npy", 2)
        assert source.skipped_items == 1
        assert np.all(source.step(5) == 4.0)
    finally:
        source.close()


def test_a_trigger_moves_on_to_the_queued_item(tmp_path: Path) -> None:
    write_item(tmp_path, 0, 0, item(1.0, 1000))
    source = make(tmp_path)
    try:
        write_item(tmp_path, 1, 1, item(6.0, 1000))
        deadline = time.monotonic() + GUARD_S
        while source._next is None:  # the loader reads ahead; wait for it, not for time
            assert time.monotonic() < deadline, "the loader never queued the new item"
            time.sleep(0.002)
        assert np.all(source.step(3) == 1.0)
        source.trigger()
        assert np.all(source.step(3) == 6.0)
    finally:
        source.close()


def test_a_folder_a_pool_has_not_made_yet_plays_silence_until_items_arrive(tmp_path: Path) -> None:
    source = make(tmp_path / "later")
    try:
        assert np.all(source.step(4) == 0.0)
        (tmp_path / "later").mkdir()
        write_item(tmp_path / "later", 0, 0, item(2.0, 4))
        deadline = time.monotonic() + GUARD_S
        while source._next is None:
            assert time.monotonic() < deadline, "the loader never picked up the first item"
            time.sleep(0.002)
        source.trigger()
        assert np.all(source.step(3) == 2.0)
    finally:
        source.close()


def test_wrong_dims_are_refused(tmp_path: Path) -> None:
    write_item(tmp_path, 0, 0, item(1.0, 4, dims=5))
    with pytest.raises(ValueError, match=r"5 latent dims .* but the model's latent_size is 3"):
        make(tmp_path)
