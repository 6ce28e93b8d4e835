"""The command log streams to disk: the engine keeps a bounded tail, the journal beside sessions rotates."""

from __future__ import annotations

import json
from pathlib import Path

from structlog.testing import capture_logs

from latentd.config import load_config
from latentd.engine import commands as c
from latentd.engine.engine import COMMAND_TAIL, Engine
from latentd.installation.piece import load_installation
from latentd.modelkit.builder import SynthSpec
from latentd.recording.recorder import attach_recorder
from latentd.recording.session import CommandJournal
from tests.pieces import write_piece


def lines(path: Path) -> list[dict]:
    return [json.loads(line) for line in path.read_text().splitlines()]


def test_the_engine_keeps_a_bounded_tail_and_the_journal_keeps_everything(tmp_path, model_factory):
    model = model_factory(SynthSpec(latent_size=4, ratio=1024, sr=48000))
    venue = write_piece(
        tmp_path, models={"a": model}, voices={"n": {"model": "a", "source": {"kind": "noise"}}}
    )
    config = load_config(venue)
    engine = Engine(load_installation(config))
    recorder = attach_recorder(engine, config)
    early = engine.snapshot
    n = 3 * COMMAND_TAIL
    for i in range(n):
        engine.submit(c.SetVoiceGain("n", 0.5 if i % 2 else 0.25))
        if i == 10:
            engine.next_block()
            early = engine.snapshot
    engine.next_block()
    recorder.close()
    assert COMMAND_TAIL <= len(engine.command_log) < 2 * COMMAND_TAIL
    assert len(engine.snapshot.command_log) == len(engine.command_log)
    assert len(early.command_log) == 11 and early.command_log[-1][0] == 0  # a published view never changes
    journal = lines(recorder.folder / "commands.jsonl")
    assert len(journal) == n and journal[-1] == {"block": 1, "cmd": "voice.gain", "voice": "n", "gain": 0.5}


def test_the_journal_rotates_by_size_and_keeps_a_bounded_number_of_files(tmp_path):
    journal = CommandJournal(tmp_path / "rec", max_bytes=2000, keep=2)
    for i in range(200):
        journal.write(i, c.SetVoiceGain("n", 0.5), now=0.0)
    journal.close()
    names = sorted(p.name for p in (tmp_path / "rec").iterdir())
    assert names == ["commands.1.jsonl", "commands.2.jsonl", "commands.jsonl"]
    assert all(p.stat().st_size <= 2000 for p in (tmp_path / "rec").iterdir())
    newest, older = lines(tmp_path / "rec" / "commands.jsonl"), lines(tmp_path / "rec" / "commands.1.jsonl")
    assert newest[-1]["block"] == 199 and older[-1]["block"] == newest[0]["block"] - 1


def test_a_journal_that_cannot_write_keeps_the_lines_and_writes_them_in_order_later(tmp_path):
    blocked = tmp_path / "blocked"
    blocked.write_text("a file where the recordings folder should be")
    journal = CommandJournal(blocked / "rec", retry_s=1.0)
    with capture_logs() as logs:
        for t in range(5):
            journal.write(t, c.SetVoiceGain("n", 0.5), now=float(t) / 10)
        assert journal.queued == 5
        blocked.unlink()
        journal.write(5, c.SetVoiceGain("n", 0.5), now=0.6)  # within the retry delay: not tried
        assert journal.queued == 6 and not (blocked / "rec").exists()
        journal.poll(now=1.5)  # the writer thread's next round: the disk takes them
    journal.write(6, c.SetVoiceGain("n", 0.25), now=1.6)
    journal.close()
    events = [e["event"] for e in logs]
    assert events == ["commands.journal_failed", "commands.journal_resumed"]
    assert journal.lost == 0 and journal.queued == 0
    assert [e["block"] for e in lines(blocked / "rec" / "commands.jsonl")] == list(range(7))


def test_beyond_its_bound_the_journal_counts_the_lines_it_drops_and_says_so_in_the_file(tmp_path):
    blocked = tmp_path / "blocked"
    blocked.write_text("not a folder")
    journal = CommandJournal(blocked / "rec", max_queued=4)
    for block in range(10, 20):
        journal.write(block, c.SetVoiceGain("n", 0.5), now=0.0)
    assert journal.queued == 4 and journal.lost == 6
    blocked.unlink()
    journal.poll(now=5.0)
    journal.write(20, c.SetVoiceGain("n", 0.5), now=5.0)
    journal.close()
    written = lines(blocked / "rec" / "commands.jsonl")
    assert [e["block"] for e in written] == [10, 11, 12, 13, 14, 20]
    assert written[4] == {"block": 14, "cmd": "journal.lost", "lost": 6, "first_block": 14, "last_block": 19}


def test_lines_still_refused_when_the_journal_shuts_down_are_counted_in_the_log(tmp_path):
    blocked = tmp_path / "blocked"
    blocked.write_text("not a folder")
    journal = CommandJournal(blocked / "rec", max_queued=2)
    for block in range(3):
        journal.write(block, c.SetVoiceGain("n", 0.5), now=0.0)
    with capture_logs() as logs:
        journal.shutdown()
    assert [(e["event"], e["lines"]) for e in logs] == [("commands.journal_unwritten", 3)]
