"""The item pool: a background process filling a bounded folder, played by the `pool` source."""

from __future__ import annotations

import os
import signal
import time
from pathlib import Path

import numpy as np
import pytest

from latentd.diffusion import load_checkpoint
from latentd.diffusion.pool import ItemPool, PoolSettings, next_index
from latentd.sources import PoolSpec, build_source

pytest.importorskip("a_unet", reason="latent diffusion needs the `diffusion` extra (a-unet)")

from .conftest import LATENT_LENGTH, RAVE_DIMS, TINY

#: Upper bound on waiting for the worker process: a hang guard, not a timing assertion.
GUARD_S = 180.0


def settings(checkpoint: Path, folder: Path, **kw: object) -> PoolSettings:
    base: dict[str, object] = {"steps": 2, "architecture": TINY, "seed": 100}
    return PoolSettings(checkpoint=checkpoint, folder=folder, **(base | kw))  # type: ignore[arg-type]


def test_pool_fills_while_a_source_plays_on(tiny_checkpoint: Path, tmp_path: Path) -> None:
    folder = tmp_path / "pool"
    # One item, then the worker waits: the item stays in the folder for the comparison below.
    pool = ItemPool(settings(tiny_checkpoint, folder, interval_s=600.0))
    source = build_source(
        PoolSpec(kind="pool", folder=str(folder), poll_s=0.01),
        latent_size=RAVE_DIMS,
        latent_rate_hz=20.0,
        ratio=2048,
        seed=0,
    )
    pool.start()
    try:
        steps_while_empty = 0
        played = []
        deadline = time.monotonic() + GUARD_S
        while source.item_name is None:  # type: ignore[attr-defined]
            assert time.monotonic() < deadline, f"no item arrived; pool error: {pool.error}"
            frames = source.step(16)
            if source.item_name is None:  # type: ignore[attr-defined]
                steps_while_empty += 1
                assert np.all(frames == 0)  # nothing to play yet: silence, not a stall
            else:
                played.append(frames)
            time.sleep(0.005)
        assert steps_while_empty > 0
        played += [source.step(16) for _ in range(LATENT_LENGTH // 16 * 2)]
        item = np.load(folder / source.item_name)  # type: ignore[attr-defined]
        assert item.shape == (1, RAVE_DIMS, LATENT_LENGTH)
        frames = np.concatenate(played, axis=1)
        start = 0  # the step that picked the item up began with its first frame
        # The item plays from its first frame (the switch happens at a step boundary), then loops.
        np.testing.assert_allclose(frames[:, start : start + LATENT_LENGTH], item[0], atol=1e-6)
        np.testing.assert_allclose(
            frames[:, start + LATENT_LENGTH : start + 2 * LATENT_LENGTH], item[0], atol=1e-6
        )
    finally:
        pool.stop()
        source.close()  # type: ignore[attr-defined]
    assert pool.error is None


def test_pool_keeps_the_newest_items_and_they_are_reproducible(tiny_checkpoint: Path, tmp_path: Path) -> None:
    folder = tmp_path / "pool"
    with ItemPool(settings(tiny_checkpoint, folder, max_items=2, temperature=0.7, latent_scale=2.0)) as pool:
        deadline = time.monotonic() + GUARD_S
        while next_index(folder) < 4:
            assert time.monotonic() < deadline, f"pool too slow or failed: {pool.error}"
            assert len(pool.items()) <= 2
            time.sleep(0.05)
    items = pool.items()
    assert 1 <= len(items) <= 2
    assert not list(folder.glob("*.part"))  # stopping mid-item leaves no partial file
    assert not list(folder.glob(".*.tmp"))
    indices = [int(path.name[5:13]) for path in items]
    assert indices[-1] >= 3 and indices == list(range(indices[0], indices[0] + len(items)))
    model = load_checkpoint(tiny_checkpoint, architecture=TINY)
    for index, path in zip(indices, items, strict=True):
        assert path.name == f"item_{index:08d}_seed{100 + index}.npy"
        expected = model.generate(seed=100 + index, temperature=0.7, steps=2, latent_scale=2.0)
        np.testing.assert_allclose(np.load(path), expected, atol=1e-4)


def test_pool_continues_numbering_after_a_restart(tiny_checkpoint: Path, tmp_path: Path) -> None:
    folder = tmp_path / "pool"
    folder.mkdir()
    np.save(folder / "item_00000041_seed141.npy", np.zeros((1, RAVE_DIMS, LATENT_LENGTH), np.float32))
    assert next_index(folder) == 42
    with ItemPool(settings(tiny_checkpoint, folder, interval_s=600.0)) as pool:
        deadline = time.monotonic() + GUARD_S
        while len(pool.items()) < 2:
            assert time.monotonic() < deadline, f"no item arrived; pool error: {pool.error}"
            time.sleep(0.05)
    assert pool.items()[-1].name == "item_00000042_seed142.npy"


def test_unusable_checkpoint_is_reported(tmp_path: Path) -> None:
    bad = tmp_path / "bad.pt"
    bad.write_text("not a checkpoint")
    pool = ItemPool(settings(bad, tmp_path / "pool"))
    pool.start()
    deadline = time.monotonic() + GUARD_S
    while pool.running:
        assert time.monotonic() < deadline, "the worker should give up on a bad checkpoint"
        time.sleep(0.05)
    assert pool.error is not None and "not a readable torch checkpoint" in pool.error
    pool.stop()
    assert pool.items() == []


def test_a_killed_worker_is_reported_and_a_restart_generates_again(
    tiny_checkpoint: Path, tmp_path: Path
) -> None:
    pool = ItemPool(settings(tiny_checkpoint, tmp_path / "pool", interval_s=600.0))
    pool.start()
    try:
        deadline = time.monotonic() + GUARD_S
        while pool.items_made < 1:
            assert time.monotonic() < deadline, f"no item arrived; pool error: {pool.error}"
            time.sleep(0.05)
        assert pool.error is None
        process = pool._process
        assert process is not None and process.pid is not None
        os.kill(process.pid, signal.SIGKILL)  # as the out-of-memory killer would
        while pool.running:
            assert time.monotonic() < deadline, "the killed worker still runs"
            time.sleep(0.05)
        assert pool.error is not None and "the generator process ended by signal 9" in pool.error
        pool.restart()
        assert pool.error is None and pool.items_made == 0
        while pool.items_made < 1:
            assert time.monotonic() < deadline, f"no item after the restart; pool error: {pool.error}"
            time.sleep(0.05)
        assert len(pool.items()) == 2
    finally:
        pool.stop()


def test_bad_settings_are_refused(tmp_path: Path) -> None:
    with pytest.raises(ValueError, match=r"max_items must be >= 1, got 0; steps must be >= 1, got 0"):
        PoolSettings(checkpoint=tmp_path / "x.pt", folder=tmp_path, max_items=0, steps=0)


def test_settings_from_a_pools_table_take_its_values_and_its_limits(tmp_path: Path) -> None:
    from latentd.config.piece import PoolConfig

    table = PoolConfig(checkpoint="c.pt", max_items=3, steps=7, temperature=0.5, slerp_t=0.25)
    made = PoolSettings.from_config(table, checkpoint=tmp_path / "c.pt", folder=tmp_path, seed=9)
    assert made == PoolSettings(
        checkpoint=tmp_path / "c.pt",
        folder=tmp_path,
        seed=9,
        max_items=3,
        steps=7,
        temperature=0.5,
        slerp_t=0.25,
    )
    with pytest.raises(ValueError, match=r"steps must be <= 1000, got 5000"):
        PoolSettings(checkpoint=tmp_path / "c.pt", folder=tmp_path, steps=5000)
