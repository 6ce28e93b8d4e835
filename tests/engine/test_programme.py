"""Programme orders, section lengths, restore, and the equal-power crossfade heard on rendered audio."""

from __future__ import annotations

import itertools
from collections import Counter

import numpy as np
import pytest

from latentd.config import ConfigError, load_config
from latentd.engine import commands as c
from latentd.engine.engine import Engine
from latentd.engine.programme import Programme, SectionPlan
from latentd.installation.piece import load_installation
from latentd.modelkit.builder import SynthSpec
from tests.pieces import write_piece

SR = 48000


def plans(n: int, **kw) -> list[SectionPlan]:
    return [SectionPlan(f"s{i}", frozenset({f"v{i}"}), 1000, **kw) for i in range(n)]


def walk(p: Programme, steps: int) -> list[int]:
    played = [p.index]
    for _ in range(steps):
        p.next()
        played.append(p.index)
    return played


def test_shuffle_plays_each_section_once_per_cycle_and_changes_order():
    p = Programme(plans(5), 0, loop=True, order="shuffle", seed=7)
    played = walk(p, 5 * 30 - 1)
    cycles = [played[i : i + 5] for i in range(0, len(played), 5)]
    assert all(sorted(cycle) == [0, 1, 2, 3, 4] for cycle in cycles)
    assert len({tuple(cycle) for cycle in cycles}) > 5, "every cycle played in the same order"
    assert all(a != b for a, b in itertools.pairwise(played)), "a section followed itself"
    assert walk(Programme(plans(5), 0, True, "shuffle", seed=7), 20) == played[:21]
    assert walk(Programme(plans(5), 0, True, "shuffle", seed=8), 20) != played[:21]


def test_weighted_follows_the_weights_over_many_draws():
    sections = [SectionPlan(f"s{i}", frozenset({"v"}), 1000, weight=w) for i, w in enumerate((1.0, 2.0, 7.0))]
    p = Programme(sections, 0, loop=True, order="weighted", seed=3)
    counts = Counter(walk(p, 5999))
    shares = [counts[i] / 6000 for i in range(3)]
    assert shares == pytest.approx([0.1, 0.2, 0.7], abs=0.025)
    again = Programme(sections, 0, loop=True, order="weighted", seed=3)
    assert walk(again, 50) == walk(Programme(sections, 0, True, "weighted", seed=3), 50)


def test_sequence_without_loop_stops_at_the_last_section():
    p = Programme(plans(3), 0, loop=False)
    assert walk(p, 2) == [0, 1, 2]
    assert p.next() is False and p.index == 2


def test_duration_range_is_a_seeded_draw_inside_the_range():
    sections = [
        SectionPlan("a", frozenset({"v"}), 1000, length_max=5000),
        SectionPlan("b", frozenset({"v"}), 700),
    ]
    p = Programme(sections, 0, loop=True, seed=1)
    lengths = [p.length_at(step, 0) for step in range(0, 200, 2)]
    assert all(1000 <= n <= 5000 for n in lengths)
    assert len(set(lengths)) > 50, "the range gives (nearly) the same length every time"
    assert p.length_at(1, 1) == 700
    assert lengths == [Programme(sections, 0, True, seed=1).length_at(s, 0) for s in range(0, 200, 2)]


def test_restore_continues_exactly_as_an_uninterrupted_programme():
    sections = plans(4, length_max=3000)
    first = Programme(sections, 0, loop=True, order="shuffle", seed=5)
    walk(first, 6)
    second = Programme(sections, 0, loop=True, order="shuffle", seed=5)
    second.restore(first.step, first.index, 123, hold=False)
    assert (second.index, second.length, second.position) == (first.index, first.length, 123)
    assert walk(first, 10) == walk(second, 10)


def test_section_crossfade_in_overrides_the_programme_crossfade():
    sections = [
        SectionPlan("a", frozenset({"x"}), 1000),
        SectionPlan("b", frozenset({"y"}), 1000, crossfade_in=300),
    ]
    p = Programme(sections, 100, loop=True)
    p.goto(1)
    env = p.envelopes(300, ["x", "y"])
    assert env["y"][-1] == pytest.approx(1.0) and env["y"][149] < 0.8
    p.goto(0)
    env = p.envelopes(100, ["x", "y"])
    assert env["x"][-1] == pytest.approx(1.0)


# ------------------------------------------------------------------ rendered crossfade
def render(config, seconds: float) -> np.ndarray:
    engine = Engine(load_installation(load_config(config)), fade_in_s=0.0)
    blocks = int(seconds * SR / engine.blocksize)
    return np.concatenate([engine.next_block() for _ in range(blocks)], axis=1)


def window_db(x: np.ndarray, start_s: float, stop_s: float, win_s: float = 0.1) -> np.ndarray:
    mono = x[0].astype(np.float64)
    n = int(win_s * SR)
    seg = mono[int(start_s * SR) : int(stop_s * SR)]
    seg = seg[: len(seg) // n * n].reshape(-1, n)
    return 10 * np.log10(np.mean(seg**2, axis=1))


def test_crossfade_keeps_summed_power_steady(tmp_path, model_factory):
    low = model_factory(SynthSpec(latent_size=4, ratio=1024, sr=SR, base_hz=110.0, seed=1))
    high = model_factory(SynthSpec(latent_size=4, ratio=512, sr=SR, base_hz=370.0, seed=2))
    tone = {"kind": "constant", "values": 0.0}

    def piece(root, gain_b: float):
        return write_piece(
            root,
            models={"low": low, "high": high},
            voices={
                "a": {
                    "model": "low",
                    "source": tone,
                    "bias": [0.0, -1.0, -4.0, 1.0],
                    "route": [0],
                    "gain": 0.3,
                },
                "b": {
                    "model": "high",
                    "source": tone,
                    "bias": [0.3, -1.0, -4.0, 1.0],
                    "route": [0],
                    "gain": gain_b,
                },
            },
            sections=[
                {"name": "A", "voices": ["a"], "duration_s": 2.0},
                {"name": "B", "voices": ["b"], "duration_s": 60.0},
            ],
            programme={"crossfade_s": 2.0},
        )

    # Match the two voices' levels first, so a steady sum means no dip and no bump.
    probe = render(piece(tmp_path / "probe", 0.3), 5.5)
    before, after = window_db(probe, 1.0, 2.0).mean(), window_db(probe, 4.5, 5.5).mean()
    gain_b = 0.3 * 10 ** ((before - after) / 20)
    audio = render(piece(tmp_path / "matched", float(gain_b)), 5.5)
    level = window_db(audio, 1.0, 2.0).mean()
    assert abs(window_db(audio, 4.5, 5.5).mean() - level) < 0.3, "levels were not matched"
    across = window_db(audio, 1.0, 5.5)
    assert np.all(np.abs(across - level) < 1.0), f"power moved by {np.abs(across - level).max():.2f} dB"


def test_goto_and_restore_commands_reach_the_programme(tmp_path, model_factory):
    drone = model_factory(SynthSpec(latent_size=4, ratio=1024, sr=SR))
    config = write_piece(
        tmp_path,
        models={"a": drone},
        voices={
            "v": {"model": "a", "source": {"kind": "noise"}},
            "w": {"model": "a", "source": {"kind": "walk"}},
        },
        sections=[
            {"name": "one", "voices": ["v"], "duration_range_s": [5.0, 9.0]},
            {"name": "two", "voices": ["w"], "duration_s": 5.0, "crossfade_in_s": 0.5},
        ],
        programme={"order": "shuffle"},
    )
    engine = Engine(load_installation(load_config(config)), fade_in_s=0.0)
    engine.submit(c.RestoreProgramme(step=3, section="two", position_s=2.0, hold=True))
    engine.next_block()
    p = engine.programme
    assert (p.step, p.current.name, p.hold) == (3, "two", True)
    assert p.position == int(2.0 * SR) + engine.blocksize
    engine.submit(c.RestoreProgramme(step=0, section="nope", position_s=0.0))
    engine.next_block()
    assert engine.counters.refused_commands == 1


def test_section_needs_exactly_one_duration(tmp_path, model_factory):
    drone = model_factory(SynthSpec(latent_size=4, ratio=1024, sr=SR))
    config = write_piece(
        tmp_path,
        models={"a": drone},
        voices={"v": {"model": "a", "source": {"kind": "noise"}}},
        sections=[
            {"name": "one", "voices": ["v"], "duration_s": 5.0, "duration_range_s": [5.0, 9.0]},
            {"name": "two", "voices": ["v"], "duration_range_s": [9.0, 5.0]},
        ],
    )
    with pytest.raises(ConfigError) as err:
        load_config(config)
    text = str(err.value)
    assert "sections[0]" in text and "duration_s or duration_range_s" in text
    assert "sections[1].duration_range_s" in text and "min <= max" in text
