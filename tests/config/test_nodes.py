"""``[nodes]``: a piece on several machines — validation, and the configuration each node plays."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from latentd.cli import main
from latentd.config import ConfigError, load_config
from latentd.config.nodes import node_config
from latentd.modelkit.builder import SynthSpec
from latentd.offline.build import build_engine
from latentd.runtime.supervisor import port_names
from tests.pieces import write_piece

SOURCE = {"kind": "lfo", "freq_hz": 0.1}
NODES: dict[str, Any] = {
    "hub": {"role": "master", "address": "10.0.0.1", "voices": ["a"]},
    "pi2": {"role": "worker", "address": "10.0.0.2", "voices": ["b", "c"], "jack_server": "net-pi2"},
}


@pytest.fixture
def models(model_factory: Callable[[SynthSpec], Path]) -> dict[str, Path]:
    return {
        "m1": model_factory(SynthSpec(latent_size=4, ratio=1024, sr=48000)),
        "m2": model_factory(SynthSpec(latent_size=4, ratio=512, sr=48000, base_hz=440.0)),
    }


def _venue(tmp_path: Path, models: dict[str, Path], nodes: dict[str, Any], **venue: Any) -> Path:
    return write_piece(
        tmp_path,
        models=models,
        voices={
            "a": {"model": "m1", "source": SOURCE},
            "b": {"model": "m2", "source": SOURCE},
            "c": {"model": "m2", "source": SOURCE},
        },
        sections=[
            {"name": "one", "voices": ["a", "b"], "duration_s": 10.0},
            {"name": "two", "voices": ["a"], "duration_s": 10.0},
        ],
        extra_venue={"nodes": nodes, "osc": {"enabled": True, "port": 9}, **venue},
    )


def test_a_venue_without_nodes_is_one_machine(tmp_path: Path, models: dict[str, Path]) -> None:
    config = load_config(
        write_piece(tmp_path, models=models, voices={"a": {"model": "m1", "source": SOURCE}})
    )
    assert node_config(config) is config
    with pytest.raises(ConfigError, match=r"node = \"w\": \(--node\) is no node of \[nodes\] \(none"):
        load_config(config.venue_path, node="w")


def test_a_worker_plays_its_voices_only(tmp_path: Path, models: dict[str, Path]) -> None:
    path = _venue(tmp_path, models, NODES)
    whole = load_config(path)  # no node chosen: the whole piece, for check
    assert list(whole.piece.voices) == ["a", "b", "c"]
    worker = load_config(path, node="pi2")
    assert worker.venue.node == "pi2"
    assert list(worker.piece.voices) == ["b", "c"] and list(worker.piece.models) == ["m2"]
    assert [s.voices for s in worker.piece.sections] == [["b"], []]  # the programme keeps its sections
    assert not worker.venue.osc.enabled and worker.venue.jack.server_name == "net-pi2"
    assert worker.venue.output.ceiling_db == 0.0 and worker.venue.output.master_gain == 1.0
    engine = build_engine(worker, fade_in_s=0.0, warm_up=False)
    assert sorted(engine.installation.voices) == ["b", "c"]
    blocks = [engine.next_block() for _ in range(20)]  # section "one" plays b on this node
    assert blocks[0].shape == (4, 256) and any(block.any() for block in blocks)
    master = load_config(path, node="hub")
    assert list(master.piece.voices) == ["a"] and master.venue.osc.enabled


def test_the_node_key_chooses_the_node(tmp_path: Path, models: dict[str, Path]) -> None:
    config = load_config(_venue(tmp_path, models, NODES, node="pi2"))
    assert list(config.piece.voices) == ["b", "c"]


def test_every_nodes_problem_at_once(tmp_path: Path, models: dict[str, Path]) -> None:
    nodes = {
        "hub": {"role": "master", "address": "10.0.0.1", "voices": ["a"]},
        "hub2": {"role": "master", "address": "10.0.0.01", "voices": ["a", "zz"]},
        "pi2": {"role": "worker", "address": "10.0.0.2.7", "voices": ["b"]},
    }
    with pytest.raises(ConfigError) as caught:
        load_config(_venue(tmp_path, models, nodes, node="pi9"))
    text = str(caught.value)
    assert 'nodes.pi2.address = "10.0.0.2.7": must be an IPv4 or IPv6 address' in text


def test_cross_checks_name_the_key(tmp_path: Path, models: dict[str, Path]) -> None:
    nodes = {
        "hub": {"role": "master", "address": "10.0.0.1", "voices": ["a"]},
        "hub2": {"role": "master", "address": "10.0.0.1", "voices": ["a", "zz"]},
    }
    with pytest.raises(ConfigError) as caught:
        load_config(_venue(tmp_path, models, nodes, node="pi9"))
    lines = str(caught.value).splitlines()
    expected = [
        'nodes: exactly one node has role = "master" (found: hub, hub2)',
        "nodes.hub2.address = \"10.0.0.1\": is also node 'hub''s",
        "nodes.hub2.voices = \"a\": is on node 'hub' too: one node each",
        'nodes.hub2.voices = "zz": the piece has no such voice (voices: a, b, c)',
        "nodes: voices on no node: b, c",
        'node = "pi9": is no node of [nodes] (hub, hub2)',
    ]
    for part in expected:
        assert any(part in line and "venue.toml" in line for line in lines), (part, lines)


def test_run_needs_a_node_and_check_lists_them(tmp_path: Path, models: dict[str, Path], capsys: Any) -> None:
    path = _venue(tmp_path, models, NODES)
    assert main(["run", "--config", str(path), "--duration", "1"]) == 2
    assert "node: the venue plays on the nodes hub, pi2: say which this machine is" in capsys.readouterr().err
    assert main(["run", "--config", str(path), "--node", "pi9"]) == 2
    assert 'node = "pi9": (--node) is no node of [nodes] (hub, pi2)' in capsys.readouterr().err
    assert main(["check", "--config", str(path)]) == 0
    out = capsys.readouterr().out
    assert (
        "node hub: master at 10.0.0.1, voices a" in out and "node pi2: worker at 10.0.0.2, voices b, c" in out
    )


def test_the_nodes_together_play_the_whole_piece(tmp_path: Path, models: dict[str, Path]) -> None:
    # Voice seeds derive from voice names and every node walks the same sections: the nodes' outputs
    # add up to the piece played on one machine (below the limiter's ceiling).
    path = write_piece(
        tmp_path,
        models=models,
        voices={"a": {"model": "m1", "source": SOURCE}, "b": {"model": "m2", "source": SOURCE}},
        sections=[
            {"name": "one", "voices": ["a"], "duration_s": 0.3},
            {"name": "two", "voices": ["b"], "duration_s": 0.3},
            {"name": "three", "voices": ["a", "b"], "duration_s": 0.3},
        ],
        programme={"crossfade_s": 0.1, "order": "shuffle"},
        extra_venue={"nodes": NODES | {"pi2": NODES["pi2"] | {"voices": ["b"]}}},
    )

    def render(node: str | None) -> np.ndarray:
        engine = build_engine(load_config(path, node=node), fade_in_s=0.0, warm_up=False)
        return np.concatenate([engine.next_block() for _ in range(300)], axis=1)

    whole, hub, pi2 = render(None), render("hub"), render("pi2")
    assert np.abs(hub).max() > 0.01 and np.abs(pi2).max() > 0.01
    np.testing.assert_allclose(hub + pi2, whole, atol=1e-5)


def test_a_worker_sends_its_speakers_to_its_net_driver_whatever_ports_the_layout_names(
    tmp_path: Path, models: dict[str, Path]
) -> None:
    speakers = [
        {"name": "left", "azimuth_deg": -30.0, "port": "system:playback_7"},
        {"name": "right", "azimuth_deg": 30.0, "port": "system:playback_3"},
    ]
    audio = {"samplerate": 48000, "blocksize": 256, "frames_per_call": 4}
    path = _venue(tmp_path, models, NODES, audio={**audio, "layout": "custom", "speakers": speakers})
    master = load_config(path, node="hub")
    assert port_names(master) == (["left", "right"], ["system:playback_7", "system:playback_3"])
    worker = load_config(path, node="pi2")
    assert port_names(worker) == (["left", "right"], None)  # system:playback_1..2: the master's channels
