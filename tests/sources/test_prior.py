"""Prior sources: a model mapping latent frames to the next ones, fed back, seeded, with temperature."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from latentd.config import load_config
from latentd.engine import commands as c
from latentd.engine.checkpoint import Checkpoint, capture, restore
from latentd.engine.engine import Engine
from latentd.installation.piece import load_installation
from latentd.modelkit.builder import SynthSpec
from latentd.modelkit.prior import save_prior
from tests.pieces import write_piece
from tests.sources.helpers import make

RATIO = 2048


@pytest.fixture(scope="module")
def priors(tmp_path_factory) -> dict[str, Path]:
    folder = tmp_path_factory.mktemp("priors")
    return {
        "with_temperature": save_prior(folder / "a.ts", latent_size=4, ratio=RATIO, sr=44100, seed=3),
        "without": save_prior(
            folder / "b.ts", latent_size=4, ratio=RATIO, sr=44100, seed=3, temperature_attribute=False
        ),
        "eight_dims": save_prior(folder / "c.ts", latent_size=8, ratio=RATIO, sr=44100),
    }


@pytest.mark.parametrize("kind", ["with_temperature", "without"])
def test_same_seed_same_frames_other_seed_differs(priors, kind):
    spec = {"kind": "prior", "path": str(priors[kind])}
    first = make(spec, seed=5).step(40)
    assert np.array_equal(first, make(spec, seed=5).step(40))
    assert np.abs(first - make(spec, seed=6).step(40)).max() > 0.1
    assert first.shape == (4, 40) and np.isfinite(first).all()


@pytest.mark.parametrize("kind", ["with_temperature", "without"])
def test_split_steps_equal_one_step(priors, kind):
    spec = {"kind": "prior", "path": str(priors[kind])}
    split = make(spec)
    joined = np.concatenate([split.step(7), split.step(13)], axis=1)
    np.testing.assert_array_equal(joined, make(spec).step(20))


@pytest.mark.parametrize("kind", ["with_temperature", "without"])
def test_temperature_scales_the_wandering(priors, kind):
    calm = make({"kind": "prior", "path": str(priors[kind]), "temperature": 0.05}).step(200)
    wild = make({"kind": "prior", "path": str(priors[kind]), "temperature": 1.0}).step(200)
    assert wild.std() > 5 * calm.std() > 0


def test_temperature_settable_at_run_time_and_reseed_restarts(priors):
    source = make({"kind": "prior", "path": str(priors["with_temperature"])})
    start = source.step(10)
    source.set_param("temperature", 0.0)
    still = source.step(50)[:, -10:]
    assert np.abs(np.diff(still, axis=1)).max() < 0.05, "no noise: the damped recurrence settles"
    source.set_param("temperature", 1.0)
    source.reseed(7)
    np.testing.assert_array_equal(source.step(10), start)


def test_dims_mismatch_is_a_clear_error(priors):
    with pytest.raises(ValueError, match=r"latent_size 4.*|needs \[4, 2048, 4, 2048\]"):
        make({"kind": "prior", "path": str(priors["eight_dims"])}, latent_size=4)
    with pytest.raises(ValueError, match=r"ratio 1024"):
        make({"kind": "prior", "path": str(priors["with_temperature"])}, ratio=1024)


def test_a_method_that_is_not_a_prior_is_refused(model_factory):
    synth = model_factory(SynthSpec(latent_size=4, ratio=RATIO))
    with pytest.raises(ValueError, match=r"'decode'.*\[4, 2048, 1, 1\].*same ratio"):
        make({"kind": "prior", "path": str(synth), "method": "decode"})


def test_prior_drives_a_voice(tmp_path, priors, model_factory):
    synth = model_factory(SynthSpec(latent_size=4, ratio=RATIO, sr=44100))
    config = write_piece(
        tmp_path,
        models={"a": synth},
        voices={"v": {"model": "a", "source": {"kind": "prior", "path": str(priors["with_temperature"])}}},
        audio={"samplerate": 44100},
    )
    engine = Engine(load_installation(load_config(config)), fade_in_s=0.0)
    out = np.concatenate([engine.next_block() for _ in range(100)], axis=1)
    assert np.isfinite(out).all() and np.abs(out).max() > 0.01


@pytest.mark.parametrize("kind", ["with_temperature", "without"])
def test_a_checkpoint_of_a_prior_voice_restores_exactly(tmp_path, priors, model_factory, kind):
    synth = model_factory(SynthSpec(latent_size=4, ratio=RATIO, sr=44100))
    config = load_config(
        write_piece(
            tmp_path,
            models={"a": synth},
            voices={"v": {"model": "a", "source": {"kind": "prior", "path": str(priors[kind])}}},
        )
    )
    live = Engine(load_installation(config), fade_in_s=0.0)
    taken: list[Checkpoint] = []
    live.block_start_listeners.append(lambda block: taken.append(capture(live)) if block == 45 else None)
    live.submit(c.SetSourceParam("v", "temperature", 0.4))
    blocks = [live.next_block() for _ in range(150)]
    (checkpoint,) = taken
    assert checkpoint.exact
    restored = Engine(load_installation(config), fade_in_s=0.0)
    restore(restored, Checkpoint.loads(checkpoint.dumps()))
    again = np.concatenate([restored.next_block() for _ in range(150 - 45)], axis=1)
    assert np.abs(again).max() > 0.01
    np.testing.assert_array_equal(again, np.concatenate(blocks[45:], axis=1))
