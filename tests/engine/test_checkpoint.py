"""Engine checkpoints: a fresh engine given a checkpoint renders the same samples as the live one."""

from __future__ import annotations

import threading

import numpy as np
import pytest

from latentd.config import load_config
from latentd.engine import commands as c
from latentd.engine.checkpoint import Checkpoint, CheckpointError, capture, restore
from latentd.engine.engine import Engine
from latentd.installation.piece import load_installation
from latentd.modelkit.builder import SynthSpec
from tests.pieces import write_piece

SR = 48000

# One voice per source kind that keeps state as it plays (files, pools and priors have their own tests).
SOURCES = {
    "noise": {"kind": "noise", "smooth_s": 0.2},
    "lfo": {"kind": "lfo", "freq_hz": 0.05},
    "walk": {"kind": "walk", "step_std": 0.5},
    "constant": {"kind": "constant", "values": 0.5},
    "table": {"kind": "table"},
    "steps": {"kind": "steps", "n_steps": 5, "step_s": 0.3},
    "presets": {"kind": "presets", "banks": [0.0, 1.0, -1.0], "ramp_s": 0.2},
    "pattern": {"kind": "pattern", "pattern": "fibo"},
}


@pytest.fixture(params=[1, 2], ids=["serial", "parallel"])
def venue(tmp_path, model_factory, request):
    model = model_factory(SynthSpec(latent_size=4, ratio=1024, sr=SR))
    voices = {name: {"model": "a", "source": spec} for name, spec in SOURCES.items()}
    voices["walk"]["pan"] = {"azimuth_deg": 0.0, "rotate_deg_s": 45.0}
    sections = [
        {"name": "one", "voices": list(SOURCES)[:5], "duration_s": 1.0},
        {"name": "two", "voices": list(SOURCES)[3:], "duration_s": 1.0},
    ]
    # Parallel decode: a call may be decoding ahead when the checkpoint is taken.
    audio = {"decode_threads": request.param}
    return write_piece(tmp_path, models={"a": model}, voices=voices, sections=sections, audio=audio)


def test_a_restored_engine_renders_what_the_live_one_did(venue):
    config = load_config(venue)
    live = Engine(load_installation(config))
    taken: list[Checkpoint] = []
    live.block_start_listeners.append(lambda block: taken.append(capture(live)) if block == 150 else None)
    commands = {
        40: c.SetLatentBias("noise", 1, 0.8),
        150: c.SetVoiceGain("lfo", 0.4),
        160: c.TriggerVoice("steps"),
    }
    blocks = []
    for block in range(400):
        if block in commands:
            live.submit(commands[block])
        blocks.append(live.next_block())
    (checkpoint,) = taken
    assert checkpoint.block == 150 and checkpoint.exact
    checkpoint = Checkpoint.loads(checkpoint.dumps())  # as written to and read from a session folder

    fresh = Engine(load_installation(config))
    restore(fresh, checkpoint)
    assert fresh.snapshot.block == 150 and fresh.snapshot.voices["lfo"].gain == 0.4
    replayed = []
    for block in range(150, 400):
        if block in commands and block > 150:  # the checkpoint holds its own block's commands
            fresh.submit(commands[block])
        replayed.append(fresh.next_block())
    live_tail = np.concatenate(blocks[150:], axis=1)
    assert np.abs(live_tail).max() > 0.01
    np.testing.assert_array_equal(np.concatenate(replayed, axis=1), live_tail)


def test_a_checkpoint_of_another_piece_is_refused_and_a_torn_file_is_not_read(venue, tmp_path, model_factory):
    config = load_config(venue)
    checkpoint = capture(Engine(load_installation(config)))
    other = write_piece(
        tmp_path / "other",
        models={"a": model_factory(SynthSpec(latent_size=4, ratio=1024, sr=SR))},
        voices={"x": {"model": "a", "source": {"kind": "noise"}}},
    )
    with pytest.raises(CheckpointError, match="the piece has voices \\['x'\\]"):
        restore(Engine(load_installation(load_config(other))), checkpoint)
    with pytest.raises(CheckpointError, match="not a readable checkpoint"):
        Checkpoint.loads(checkpoint.dumps()[:100])


@pytest.mark.parametrize("model_sr", [44100, 32000])
def test_a_resampled_model_is_restored_exactly_mid_stream(tmp_path, model_factory, model_sr):
    resampled = model_factory(SynthSpec(latent_size=4, ratio=1024, sr=model_sr))
    venue = write_piece(
        tmp_path, models={"r": resampled}, voices={"v": {"model": "r", "source": {"kind": "walk"}}}
    )
    config = load_config(venue)
    live = Engine(load_installation(config))
    taken: list[Checkpoint] = []
    live.block_start_listeners.append(lambda block: taken.append(capture(live)) if block == 37 else None)
    blocks = [live.next_block() for _ in range(120)]
    (checkpoint,) = taken
    # The resampler has filter history and a phase inside a call here: its state is in the checkpoint.
    assert checkpoint.exact and checkpoint.state["groups"]["r"]["resampler"].samples_in > 0
    restored = Engine(load_installation(config))
    restore(restored, Checkpoint.loads(checkpoint.dumps()))
    again = [restored.next_block() for _ in range(120 - 37)]
    assert np.abs(blocks[-1]).max() > 0.01
    np.testing.assert_array_equal(np.concatenate(again, axis=1), np.concatenate(blocks[37:], axis=1))


def test_a_checkpoint_never_waits_for_the_calls_decoding_ahead(tmp_path, model_factory):
    # The engine thread must not stall while JACK plays: a call decoding ahead (held here until the
    # checkpoint is taken) is given to the checkpoint by its thread, and the checkpoint restores exactly.
    model = model_factory(SynthSpec(latent_size=4, ratio=1024, sr=SR))
    config = load_config(
        write_piece(
            tmp_path,
            models={"a": model},
            voices={"w": {"model": "a", "source": {"kind": "walk", "step_std": 0.5}}},
            audio={"decode_threads": 2},
        )
    )
    live = Engine(load_installation(config))
    blocks = [live.next_block() for _ in range(40)]
    group = live.groups[0]
    gate = threading.Event()
    decode = group.run

    def held(z: np.ndarray) -> np.ndarray:
        gate.wait()
        return decode(z)

    group.run = held  # type: ignore[method-assign]
    while not any(not call.done() for call in live.decoder.ahead(group)):
        blocks.append(live.next_block())  # until a held call decodes ahead
    taken: list[Checkpoint] = []
    capturing = threading.Thread(target=lambda: taken.append(capture(live)))
    capturing.start()
    capturing.join(30.0)  # a capture that waited for the held call would still be waiting
    assert taken, "capturing waited for the call decoding ahead"
    gate.set()
    del group.run
    checkpoint = Checkpoint.loads(taken[0].dumps())  # the writer thread completes it, then writes it
    assert checkpoint.block == len(blocks) and len(checkpoint.state["groups"]["a"]["pending"]) >= 1
    fresh = Engine(load_installation(config))
    restore(fresh, checkpoint)
    after = [live.next_block() for _ in range(100)]
    np.testing.assert_array_equal(
        np.concatenate([fresh.next_block() for _ in range(100)], axis=1), np.concatenate(after, axis=1)
    )
    live.decoder.close()
    fresh.decoder.close()
