"""The render loop and the one config → Engine function that render, replay, check and run share."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import soundfile as sf
import torch

from latentd.config import load_config
from latentd.engine import commands as c
from latentd.engine.engine import Engine
from latentd.installation.piece import load_installation
from latentd.modelkit.builder import SynthSpec
from latentd.offline.build import build_engine
from latentd.offline.loop import file_format, render_to_file
from latentd.offline.render import render
from tests.pieces import write_piece

SR = 48000
BLOCK = 256


@pytest.fixture
def venue(tmp_path: Path, model_factory) -> Path:
    model = model_factory(SynthSpec(latent_size=4, ratio=1024, sr=SR))
    return write_piece(
        tmp_path,
        models={"a": model},
        voices={"n": {"model": "a", "source": {"kind": "noise", "smooth_s": 0.2}}},
        audio={"torch_threads": 1},
    )


def test_build_engine_applies_the_threads_seed_and_fade(venue):
    config = load_config(venue)
    before = torch.get_num_threads()
    try:
        engine = build_engine(config, seed=7, fade_in_s=0.0, live_loads=False, torch_threads=2)
        assert torch.get_num_threads() == 2
        assert engine.seed == 7 and not engine.live_loads
        live = build_engine(config, seed=7)  # the live start-up fade
        assert live.seed == 7 and live.live_loads
        assert torch.get_num_threads() == config.venue.audio.torch_threads
        assert build_engine(config).seed == config.piece.seed
        quarter = range(round(0.25 * SR / BLOCK))
        faded = np.concatenate([live.next_block() for _ in quarter], axis=1)
        full = np.concatenate([engine.next_block() for _ in quarter], axis=1)
        assert np.sqrt(np.mean(faded**2)) < 0.5 * np.sqrt(np.mean(full**2))
    finally:
        torch.set_num_threads(before)


def test_build_engine_renders_as_the_engine_built_by_hand(venue):
    config = load_config(venue)
    built = build_engine(config)
    by_hand = Engine(load_installation(config))
    for _ in range(40):
        np.testing.assert_array_equal(built.next_block(), by_hand.next_block())


def test_the_hook_runs_before_each_block_and_early_blocks_are_not_written(venue, tmp_path):
    config = load_config(venue)
    engine = build_engine(config, fade_in_s=0.0, live_loads=False)
    seen: list[int] = []

    def before_block(block: int) -> None:
        seen.append(block)
        if block == 20:
            engine.submit(c.SetVoiceGain("n", 0.0))

    out = tmp_path / "loop.wav"
    rendered = render_to_file(engine, out, stop_block=60, start_block=10, before_block=before_block)
    assert seen == list(range(60))
    assert rendered.frames == 50 * BLOCK and rendered.n_channels == 4
    audio, rate = sf.read(out, dtype="float32", always_2d=True)
    assert rate == SR and audio.shape == (50 * BLOCK, 4)
    assert [c.SetVoiceGain("n", 0.0)] == [cmd for block, cmd in engine.snapshot.command_log if block == 20]

    plain = build_engine(config, fade_in_s=0.0, live_loads=False)
    expected = np.concatenate([plain.next_block() for _ in range(20)], axis=1).T[10 * BLOCK :]
    np.testing.assert_array_equal(audio[: 10 * BLOCK], expected)
    assert np.max(rendered.peak) == pytest.approx(float(np.abs(audio).max()))


def test_render_cuts_the_last_block_even_to_nothing(venue, tmp_path):
    # 10.5 blocks rounds down to 10 blocks of frames while 11 blocks are rendered: the last one is empty.
    engine = build_engine(load_config(venue), fade_in_s=0.0, live_loads=False)
    seconds = (10 * BLOCK + 0.4) / SR
    summary = render(engine, seconds, tmp_path / "short.w64", progress=False)
    assert summary.seconds * SR == pytest.approx(10 * BLOCK)
    assert sf.info(str(tmp_path / "short.w64")).frames == 10 * BLOCK


def test_file_format_switches_to_rf64_past_the_wav_limit():
    assert file_format(Path("a.wav"), 8, 48000) == ("WAV", "FLOAT")
    assert file_format(Path("a.wav"), 8, 2**28) == ("RF64", "FLOAT")
    assert file_format(Path("a.flac"), 8, 2**28) == ("FLAC", "PCM_24")
    with pytest.raises(ValueError, match="unknown audio file extension"):
        file_format(Path("a.mp3"), 2, 10)
