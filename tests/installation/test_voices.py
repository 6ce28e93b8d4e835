"""Voice settings that do not fit their model are configuration errors of the installation, not the engine."""

from __future__ import annotations

import pytest

from latentd.config import ConfigError, load_config
from latentd.engine.engine import Engine
from latentd.installation.piece import load_installation
from latentd.modelkit.builder import SynthSpec
from tests.pieces import write_piece


@pytest.fixture
def drone(model_factory):
    return model_factory(SynthSpec(latent_size=4, ratio=1024, sr=48000))


def test_every_voice_problem_is_reported_at_once_by_load_installation(tmp_path, drone):
    config = write_piece(
        tmp_path,
        models={"a": drone},
        voices={
            "v": {"model": "a", "source": {"kind": "walk"}, "bias": [0.0, 1.0, 2.0]},
            "w": {"model": "a", "source": {"kind": "walk"}, "matrix": [[1.0, 0.0, 0.0, 0.0]] * 2},
            "x": {"model": "a", "source": {"kind": "walk"}, "conditioning": {"pitch": 1.0}},
            "y": {"model": "a", "source": {"kind": "constant", "values": [0.0, 1.0]}},
        },
    )
    checked = load_config(config)  # what the configuration alone can tell is fine
    with pytest.raises(ConfigError) as info:
        load_installation(checked)
    by_key = {p.key: p for p in info.value.problems}
    assert set(by_key) == {"voices.v.bias", "voices.w.matrix", "voices.x.conditioning", "voices.y.source"}
    assert all(p.file.name == "piece.toml" for p in by_key.values())
    assert "3 values given, but latent_size is 4" in by_key["voices.v.bias"].message
    assert "must be 1 row(s) (model channels) × 4 columns (speakers)" in by_key["voices.w.matrix"].message
    assert "unknown conditioning input; allowed: none" in by_key["voices.x.conditioning"].message
    assert "`values`: 2 values given, but latent_size is 4" in by_key["voices.y.source"].message


def test_an_installation_comes_with_its_voices_and_feeds_one_engine(tmp_path, drone):
    config = write_piece(
        tmp_path,
        models={"a": drone},
        voices={
            "v": {"model": "a", "source": {"kind": "walk"}, "bias": [0.0, 1.0, 2.0, 3.0]},
            "w": {"model": "a", "source": {"kind": "noise"}},
        },
    )
    installation = load_installation(load_config(config), warm_up=False)
    assert [(n, v.row) for n, v in installation.voices.items()] == [("v", 0), ("w", 1)]
    assert installation.voices["v"].bias.target.tolist() == [0.0, 1.0, 2.0, 3.0]
    assert installation.frames_per_call == {"a": load_config(config).venue.audio.frames_per_call}
    engine = Engine(installation, fade_in_s=0.0)
    assert engine.voices == installation.voices
    with pytest.raises(RuntimeError, match="one engine"):
        Engine(installation)
