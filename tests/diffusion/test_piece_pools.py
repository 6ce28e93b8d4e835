"""A piece's [pools.*]: checked with the config, generated beside the running engine, played by voices."""

from __future__ import annotations

import shutil
import socket
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import structlog
from structlog.testing import capture_logs

from latentd.cli import main
from latentd.cli.osc import format_status, query_status
from latentd.config import ConfigError, load_config
from latentd.diffusion.piece_pools import PiecePools
from latentd.diffusion.pool import ITEM_PATTERN
from latentd.engine.ring import BlockRing
from latentd.modelkit.builder import SynthSpec
from latentd.runtime.engine_host import EngineHost
from latentd.sources.pool import PoolSource
from tests.diffusion.conftest import LATENT_LENGTH, ORIGINAL_DIMS, RAVE_DIMS, TINY, save_nan_checkpoint
from tests.pieces import write_piece

GUARD_S = 120.0


def pool_piece(
    root: Path,
    model: Path,
    checkpoint: str,
    *,
    folder: str = "pools/dream",
    extra_venue: dict[str, Any] | None = None,
    **pool: Any,
) -> Path:
    """A piece with one voice playing pool `dream`; ``pool`` overrides its table (None drops a key)."""
    table = {"checkpoint": checkpoint, "max_items": 2, "steps": 3, "interval_s": 2.0, "architecture": TINY}
    table = {key: value for key, value in (table | pool).items() if value is not None}
    return write_piece(
        root,
        models={"m": model},
        voices={"v": {"model": "m", "source": {"kind": "pool", "folder": folder, "poll_s": 0.05}}},
        seed=7,
        extra_piece={"pools": {"dream": table}},
        extra_venue=extra_venue,
    )


def free_udp_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


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
    assert "piece.toml" in err and "not a readable torch checkpoint" in err


def test_check_refuses_a_pool_that_loads_but_cannot_generate(
    tmp_path: Path, model_factory: Callable[[SynthSpec], Path], capsys: pytest.CaptureFixture[str]
) -> None:
    diverged = save_nan_checkpoint(tmp_path / "diverged.pt")
    config = pool_piece(tmp_path / "p", model_factory(SynthSpec(latent_size=RAVE_DIMS)), str(diverged))
    assert main(["check", "--config", str(config)]) == 2
    err = capsys.readouterr().err
    assert "piece.toml" in err and "pools.dream.checkpoint" in err and "diverged.pt" in err
    assert "loads, but cannot generate an item" in err and "holds NaN/Inf values" in err


@pytest.mark.slow
def test_check_loads_an_original_checkpoint_at_the_length_it_was_trained_at(
    tmp_path: Path,
    model_factory: Callable[[SynthSpec], Path],
    original_2048: Path,
    capsys: pytest.CaptureFixture[str],
) -> None:
    model = model_factory(SynthSpec(latent_size=ORIGINAL_DIMS))
    config = pool_piece(tmp_path, model, str(original_2048), architecture=None, latent_length=2048)
    assert main(["check", "--config", str(config)]) == 0, capsys.readouterr().err
    out = capsys.readouterr().out
    assert (
        f"pool dream: original_2048.pt items of {ORIGINAL_DIMS} dims x 2048 frames into pools/dream "
        "(original RAVE-Latent-Diffusion format)"
    ) in out


def test_a_failing_pool_says_so_every_status_interval_while_the_piece_plays_on(
    tmp_path: Path, model_factory: Callable[[SynthSpec], Path]
) -> None:
    diverged = save_nan_checkpoint(tmp_path / "diverged.pt")
    port = free_udp_port()
    config = load_config(
        pool_piece(
            tmp_path,
            model_factory(SynthSpec(latent_size=RAVE_DIMS)),
            str(diverged),
            extra_venue={"osc": {"enabled": True, "port": port}},
        )
    )
    ring = BlockRing(8, 256, 4)
    outs = [np.zeros(256, np.float32) for _ in range(4)]
    host = EngineHost(config, ring, record=False, label="pools", xruns=lambda: 0, status_every_s=0.2)
    blocks = 0
    try:
        with capture_logs() as logs:
            host.start()
            assert host.engine is not None
            deadline = time.monotonic() + GUARD_S
            while len([e for e in logs if e["event"] == "pool.failing"]) < 3:
                assert time.monotonic() < deadline, f"no repeated pool.failing: {logs}"
                while ring.read_into(outs):  # stands in for the JACK callback
                    blocks += 1
                host.tick()
                time.sleep(0.02)
            status = query_status("127.0.0.1", port, 5.0, free_udp_port())
        assert host.error is None and blocks > 0
        assert host.engine.snapshot.status()["seconds"] > 0  # the engine played on
        failed = [e for e in logs if e["event"] == "pool.failed"]
        assert len(failed) == 1 and failed[0]["log_level"] == "error"
        failing = [e for e in logs if e["event"] == "pool.failing"]
        for event in failing:
            assert event["pool"] == "dream" and event["log_level"] == "error"
            assert "generating item 0 failed" in event["error"] and "holds NaN/Inf values" in event["error"]
        assert failing[0]["failing_s"] < failing[-1]["failing_s"]
        assert status is not None and status["section"] == "all"
        dream = status["pools"]["dream"]
        assert dream["state"] == "failing" and dream["items"] == 0
        assert "diverged.pt" in dream["error"] and dream["failing_s"] >= 0
        assert "dream  FAILING for" in format_status(status)  # as `latentd status` shows it
    finally:
        host.stop()


def test_a_failed_pool_is_tried_again_and_recovers_once_its_checkpoint_is_fixed(
    tmp_path: Path, model_factory: Callable[[SynthSpec], Path], tiny_checkpoint: Path
) -> None:
    checkpoint = tmp_path / "dream.pt"
    checkpoint.write_bytes(b"half a file")
    config = load_config(
        pool_piece(tmp_path, model_factory(SynthSpec(latent_size=RAVE_DIMS)), str(checkpoint))
    )
    with capture_logs() as logs:
        pools = PiecePools.start(config, structlog.get_logger("test"), retry_first_s=0.2, retry_max_s=0.4)
        try:

            def tick_until(event: str) -> None:
                deadline = time.monotonic() + GUARD_S
                while not any(e["event"] == event for e in logs):
                    assert time.monotonic() < deadline, f"no {event}: {logs}"
                    pools.check()
                    time.sleep(0.02)

            tick_until("pool.failed")
            assert pools.status()["dream"]["state"] == "failing"
            assert "not a readable torch checkpoint" in str(pools.status()["dream"]["error"])
            tick_until("pool.retrying")
            shutil.copy(tiny_checkpoint, checkpoint)  # the operator puts the right file in place
            tick_until("pool.recovered")
            assert pools.status()["dream"]["state"] == "generating"
            assert pools.status()["dream"]["items"] >= 1
        finally:
            pools.stop()
    assert next(e for e in logs if e["event"] == "pool.failed")["pool"] == "dream"
