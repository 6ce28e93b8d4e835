"""The state file: a restart resumes mid-section with seeds and overrides; a corrupt file is survived."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

from latentd.config import load_config
from latentd.engine import commands as c
from latentd.engine.commands import overrides_from_log
from latentd.engine.engine import Engine
from latentd.installation.piece import load_installation
from latentd.modelkit.builder import SynthSpec
from latentd.runtime.state import StateWriter, restore_state, state_path, write_atomic
from tests.pieces import write_piece


@pytest.fixture
def config_path(tmp_path, model_factory) -> Path:
    model = model_factory(SynthSpec(latent_size=4, ratio=1024, sr=48000))
    return write_piece(
        tmp_path,
        models={"a": model},
        voices={
            "v": {"model": "a", "source": {"kind": "noise"}},
            "w": {"model": "a", "source": {"kind": "walk"}},
        },
        sections=[
            {"name": "one", "voices": ["v"], "duration_s": 2.0},
            {"name": "two", "voices": ["w"], "duration_range_s": [1.0, 3.0]},
            {"name": "three", "voices": ["v", "w"], "duration_s": 2.0},
        ],
        programme={"order": "shuffle", "crossfade_s": 0.0},
    )


class Logged:
    """A structlog-like logger that keeps (level, event) pairs, whatever logging setup other tests left."""

    def __init__(self) -> None:
        self.records: list[tuple[str, str, dict]] = []

    def __getattr__(self, level: str):
        return lambda event, **kw: self.records.append((level, event, kw))

    def events(self, level: str | None = None) -> list[str]:
        return [e for lv, e, _ in self.records if level in (None, lv)]


def engine_for(path: Path) -> Engine:
    return Engine(load_installation(load_config(path)), fade_in_s=0.0)


def play(engine: Engine, seconds: float) -> np.ndarray:
    n = int(seconds * engine.samplerate / engine.blocksize)
    return np.concatenate([engine.next_block() for _ in range(n)], axis=1)


def test_restart_mid_section_resumes_position_seeds_and_overrides(config_path):
    path = state_path(load_config(config_path))
    assert path == config_path.parent / "state" / "latentd-state.json"
    first = engine_for(config_path)
    writer = StateWriter(first, path)
    play(first, 3.3)  # past a section change
    for cmd in (
        c.SetVoiceGain("v", 0.8),
        c.SetVoiceGain("v", 0.5),
        c.SetLatentBias("w", 1, 0.7),
        c.ReseedVoice("w", 42),
    ):
        first.submit(cmd)
    play(first, 0.2)
    writer.stop()  # writes the file
    p = first.programme
    saved = (p.step, p.current.name, p.position)

    second = engine_for(config_path)
    assert restore_state(second, path) is True
    second.next_block()
    q = second.programme
    assert (q.step, q.current.name) == saved[:2]
    assert q.position == saved[2] + second.blocksize
    assert second.voices["v"].gain.target == pytest.approx(0.5)
    assert second.voices["w"].bias.target[1] == pytest.approx(0.7)
    assert second.voices["w"].seed == 42
    # From here both programmes go on the same way (the order is a function of seed and step).
    names = []
    for engine in (first, second):
        seen = []
        for _ in range(int(5.0 * engine.samplerate / engine.blocksize)):
            engine.next_block()
            if not seen or seen[-1] != engine.programme.current.name:
                seen.append(engine.programme.current.name)
        names.append(seen)
    assert names[0] == names[1] and len(names[0]) >= 3


def test_corrupt_state_file_starts_the_piece_from_the_beginning(config_path, tmp_path):
    path = tmp_path / "state.json"
    path.write_text('{"version": 1, "programme": {"step": ')  # cut off by a power failure
    engine = engine_for(config_path)
    log = Logged()
    assert restore_state(engine, path, log) is False
    ((level, event, kw),) = log.records
    assert (level, event) == ("warning", "state.corrupt") and "beginning" in kw["action"]
    assert not path.exists() and (tmp_path / "state.json.corrupt").exists()  # kept for inspection
    engine.next_block()
    assert engine.programme.step == 0 and engine.command_log == []


def test_missing_or_foreign_state_file_is_a_warning(config_path, tmp_path):
    engine = engine_for(config_path)
    log = Logged()
    assert restore_state(engine, tmp_path / "nothing.json", log) is False
    assert log.events("warning") == ["state.missing"]
    other = tmp_path / "other.json"
    data = StateWriter(engine, other).snapshot()
    other.write_text(json.dumps({**data, "sections": ["one", "two"]}))
    log = Logged()
    assert restore_state(engine, other, log) is False
    assert log.events("warning") == ["state.other_piece"]


def test_overrides_keep_the_latest_value_per_target_since_the_last_reset():
    log = [
        (0, c.SetVoiceGain("v", 0.1)),
        (1, c.ResetOverrides()),
        (2, c.SetVoiceGain("v", 0.2)),
        (3, c.SetLatentBias("v", 0, 1.0)),
        (4, c.SetLatentBias("v", 1, 2.0)),
        (5, c.NextSection()),
        (6, c.SetVoiceGain("v", 0.3)),
        (7, c.StartRecording("x")),
    ]
    assert overrides_from_log(log) == [
        c.SetLatentBias("v", 0, 1.0),
        c.SetLatentBias("v", 1, 2.0),
        c.SetVoiceGain("v", 0.3),
    ]


def test_the_engine_publishes_the_overrides_the_log_implies(config_path):
    engine = engine_for(config_path)
    for cmd in (
        c.SetVoiceGain("v", 0.1),
        c.SetLatentBias("w", 1, 0.7),
        c.ResetOverrides(),
        c.SetVoiceGain("v", 0.2),
        c.SetLatentBias("w", 9, 0.7),  # refused: no dimension 9
        c.SetMasterGain(0.5),
        c.SetVoiceGain("v", 0.3),
        c.NextSection(),
    ):
        engine.submit(cmd)
    play(engine, 0.1)
    published = engine.snapshot.overrides
    assert list(published) == overrides_from_log(list(engine.command_log))
    assert published == (c.SetMasterGain(0.5), c.SetVoiceGain("v", 0.3))


def test_atomic_write_replaces_whole_files_and_leaves_no_temp_files(tmp_path):
    path = tmp_path / "deep" / "state.json"
    write_atomic(path, "first")
    write_atomic(path, "second")
    assert path.read_text() == "second"
    assert [p.name for p in path.parent.iterdir()] == ["state.json"]


def test_writer_thread_writes_and_stops(config_path, tmp_path):
    engine = engine_for(config_path)
    path = tmp_path / "s.json"
    writer = StateWriter(engine, path, every_s=3600).start()
    play(engine, 0.1)
    writer.stop()
    assert json.loads(path.read_text())["programme"]["section"] == engine.programme.current.name
    assert not engine.block_listeners  # the writer reads the published snapshot: nothing left behind
