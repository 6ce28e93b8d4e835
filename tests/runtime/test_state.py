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


def _stored(engine: Engine, path: Path, **changes) -> None:
    data = StateWriter(engine, path).snapshot()
    data.update(changes)
    path.write_text(json.dumps(data))  # Python's json writes NaN and Infinity as a file could hold them


def test_restore_checks_every_value_as_osc_does_and_skips_what_fails(config_path, tmp_path):
    path = tmp_path / "state.json"
    first = engine_for(config_path)
    started = []
    first.handlers[c.StartRecording] = started.append
    good = [c.SetVoiceGain("w", 0.5).to_json(), c.SetLatentBias("v", 2, 0.25).to_json()]
    bad = [
        {"cmd": "voice.gain", "voice": "v", "gain": 1e308},  # silenced a venue once
        {"cmd": "master.gain", "gain": -3.0},
        {"cmd": "voice.bias", "voice": "v", "dim": 1, "value": float("nan")},
        {"cmd": "voice.pan", "voice": "v", "azimuth_deg": float("inf")},
        {"cmd": "voice.gain", "voice": "v", "gain": "loud"},
        {"cmd": "voice.mute", "voice": "v", "mute": 1},
        {"cmd": "voice.bias", "voice": "v", "dim": 9, "value": 0.1},
        {"cmd": "voice.gain", "voice": "gone", "gain": 0.5},
        {"cmd": "record.start", "label": "boot"},
        {"cmd": "venue.open", "open": True, "fade_s": 0.0},
        {"cmd": "reset"},
        {"cmd": "no.such", "x": 1},
        ["voice.gain", "v", 0.5],
    ]
    _stored(first, path, overrides=bad[:6] + good[:1] + bad[6:] + good[1:], seeds={"v": -5, "w": 1e9})
    second = engine_for(config_path)
    second.handlers[c.StartRecording] = started.append
    log = Logged()
    assert restore_state(second, path, log) is True
    second.next_block()
    skipped = [kw for lv, e, kw in log.records if e == "state.override_skipped" and lv == "warning"]
    assert json.dumps([kw["override"] for kw in skipped]) == json.dumps(bad)  # NaN != NaN
    reasons = [kw["reason"] for kw in skipped]
    assert reasons[0] == "gain must be in 0..4, got 1e+308"
    assert reasons[1] == "gain must be in 0..4, got -3.0"
    assert reasons[2] == "value must be a finite number, got nan"
    assert reasons[3] == "azimuth_deg must be a finite number, got inf"
    assert reasons[4] == "gain must be a number, got 'loud'"
    assert reasons[5] == "mute must be true or false, got 1"
    assert "out of range" in reasons[6] and "unknown voice 'gone'" in reasons[7]
    assert all("actions are never restored" in r for r in reasons[8:11])
    assert "unknown command" in reasons[11] and "must be a table" in reasons[12]
    seeds = {kw["voice"]: kw["reason"] for lv, e, kw in log.records if e == "state.seed_skipped"}
    assert seeds == {
        "v": "seed must be in 0..16777215, got -5",
        "w": "seed must be a whole number, got 1000000000.0",
    }
    # Only the two good overrides (after the programme) reach the engine; no action ran.
    applied = [cmd for _, cmd in second.command_log]
    assert applied[0].name == "section.restore"
    assert applied[1:] == [c.SetVoiceGain("w", 0.5), c.SetLatentBias("v", 2, 0.25)]
    assert started == [] and second.counters.refused_commands == 0
    assert second.voices["v"].gain.target == 1.0 and second.master_gain.target > 0
    # What is written back is what plays: the bad values are gone from the file.
    _stored(second, path)
    assert json.loads(path.read_text())["overrides"] == good


def test_a_programme_position_that_fails_its_checks_starts_the_piece_from_its_beginning(
    config_path, tmp_path
):
    path = tmp_path / "state.json"
    engine = engine_for(config_path)
    for position in (float("nan"), -1.0, "late"):
        _stored(engine, path, programme={"step": 3, "section": "two", "position_s": position, "hold": False})
        fresh = engine_for(config_path)
        log = Logged()
        assert restore_state(fresh, path, log) is True
        ((level, event, kw),) = [r for r in log.records if r[1] != "state.restored"]
        assert (level, event) == ("warning", "state.programme_skipped") and "position_s" in kw["reason"]
        fresh.next_block()
        assert fresh.programme.step == 0 and fresh.command_log == []
