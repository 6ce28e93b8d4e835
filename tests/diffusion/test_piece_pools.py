"""A piece's [pools.*]: checked with the config, generated beside the running engine, played by voices."""

from __future__ import annotations

import time
from collections.abc import Callable
from pathlib import Path

import numpy as np
import pytest

from latentd.cli import main
from latentd.config import ConfigError, load_config
from latentd.diffusion.pool import ITEM_PATTERN
from latentd.engine.ring import BlockRing
from latentd.modelkit.builder import SynthSpec
from latentd.runtime.engine_host import EngineHost
from latentd.sources.pool import PoolSource
from tests.diffusion.conftest import LATENT_LENGTH, RAVE_DIMS, TINY
from tests.pieces import write_piece

GUARD_S = 120.0


def pool_piece(root: Path, model: Path, checkpoint: str, *, folder: str = "pools/dream") -> Path:
    return write_piece(
        root,
        models={"m": model},
        voices={"v": {"model": "m", "source": {"kind": "pool", "folder": folder, "poll_s": 0.05}}},
        seed=7,
        extra_piece={
            "pools": {
                "dream": {
                    "checkpoint": checkpoint,
                    "max_items": 2,
                    "steps": 3,
                    "interval_s": 2.0,
                    "architecture": TINY,
                },
            }
        },
    )


def test_a_missing_checkpoint_and_an_unknown_pool_folder_are_reported(
    tmp_path: Path, model_factory: Callable[[SynthSpec], Path]
) -> None:
    model = model_factory(SynthSpec(latent_size=RAVE_DIMS))
    config = pool_piece(tmp_path, model, "ckpt/missing.pt", folder="pools/nowhere")
    with pytest.raises(ConfigError) as caught:
        load_config(config)
    text = str(caught.value)
    assert "pools.dream.checkpoint" in text and "file not found" in text and "missing.pt" in text
    assert "voices.v.source.folder" in text and "pools/nowhere" in text
    assert "pool folders: pools/dream" in text


def test_the_host_generates_items_that_the_voice_plays_and_stops_the_generator(
    tmp_path: Path, model_factory: Callable[[SynthSpec], Path], tiny_checkpoint: Path
) -> None:
    model = model_factory(SynthSpec(latent_size=RAVE_DIMS))
    config = load_config(pool_piece(tmp_path, model, str(tiny_checkpoint)))
    folder = tmp_path / "piece" / "pools" / "dream"
    ring = BlockRing(8, 256, 4)
    outs = [np.zeros(256, np.float32) for _ in range(4)]
    host = EngineHost(config, ring, record=False, label="pools", xruns=lambda: 0)

    def play_until(done: Callable[[], bool], what: str) -> None:
        # Stands in for the JACK callback: the engine steps its voices only as the ring is read.
        deadline = time.monotonic() + GUARD_S
        while not done():
            assert time.monotonic() < deadline, f"{what} ({host.pools and host.pools.pools['dream'].error})"
            while ring.read_into(outs):
                pass
            host.tick()
            time.sleep(0.02)

    try:
        host.start()
        assert host.engine is not None and host.pools is not None
        source = host.engine.voices["v"].source
        assert isinstance(source, PoolSource)
        assert source.item_name is None  # nothing generated yet: the voice plays zeros
        play_until(lambda: source.item_name is not None, "the voice never picked up an item")
        assert source.item_name is not None
        match = ITEM_PATTERN.match(source.item_name)
        assert match is not None and int(match.group(2)) == 7 + int(match.group(1))  # piece seed + k
        item_name = source.item_name
        item = np.load(folder / item_name)
        assert item.shape == (1, RAVE_DIMS, LATENT_LENGTH)
        play_until(lambda: len(list(folder.glob("item_*.npy"))) >= 2, "the pool stopped generating")
        play_until(lambda: source.item_name != item_name, "the next item never followed")
        process = host.pools.pools["dream"]._process
        assert process is not None
        pid = process.pid
    finally:
        host.stop()
    assert not host.pools.pools["dream"].running
    assert pid is not None and not Path(f"/proc/{pid}").exists()  # ended and reaped
    assert len(list(folder.glob("item_*.npy"))) <= 2


def test_check_loads_each_pool_checkpoint_and_matches_its_dims_to_the_voices(
    tmp_path: Path,
    model_factory: Callable[[SynthSpec], Path],
    tiny_checkpoint: Path,
    capsys: pytest.CaptureFixture[str],
) -> None:
    model = model_factory(SynthSpec(latent_size=RAVE_DIMS))
    fits = pool_piece(tmp_path / "fits", model, str(tiny_checkpoint))
    assert main(["check", "--config", str(fits)]) == 0
    out = capsys.readouterr().out
    assert f"pool dream: tiny.pt items of {RAVE_DIMS} dims x {LATENT_LENGTH} frames into pools/dream" in out

    wider = pool_piece(tmp_path / "wider", model_factory(SynthSpec(latent_size=6)), str(tiny_checkpoint))
    assert main(["check", "--config", str(wider)]) == 2
    err = capsys.readouterr().err
    assert "voices.v.source.folder" in err
    assert f"pool dream makes items of {RAVE_DIMS} latent dims but model 'm' of this voice takes 6" in err

    garbage = tmp_path / "garbage.pt"
    garbage.write_bytes(b"not a checkpoint")
    broken = pool_piece(tmp_path / "broken", model, str(garbage))
    assert main(["check", "--config", str(broken)]) == 2
    err = capsys.readouterr().err
    assert "pools.dream.checkpoint" in err and "garbage.pt" in err
