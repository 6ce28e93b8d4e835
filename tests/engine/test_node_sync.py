"""CommandLead: commands applied at a block, the master's told to its listeners first; ProgrammeClock:
the master's programme ends its sections by command, so a worker plays the same section at the same
mixed block."""

from __future__ import annotations

import dataclasses
from collections.abc import Callable
from pathlib import Path

import numpy as np
import pytest

from latentd.config import load_config
from latentd.engine import commands as c
from latentd.engine.engine import Engine
from latentd.engine.node_sync import CommandLead, ProgrammeClock
from latentd.modelkit.builder import SynthSpec
from latentd.offline.build import build_engine
from tests.pieces import write_piece


def test_a_command_is_applied_lead_blocks_later_and_told_first() -> None:
    lead = CommandLead(5)
    told: list[tuple[int, c.Command]] = []
    lead.listeners.append(lambda block, cmd: told.append((block, cmd)))
    first, second = c.NextSection(), c.GotoSection("off")
    lead.take(10, first)
    lead.take(10, second)
    assert told == [(15, first), (15, second)]
    assert lead.due(14) == []
    assert lead.due(15) == [first, second]  # in the order they came
    assert lead.due(16) == []


def test_a_command_with_a_block_waits_for_it_or_is_late() -> None:
    lead = CommandLead(0)
    early, late = c.NextSection(), c.GotoSection("on")
    lead.take(100, (103, early))
    lead.take(100, (98, late))
    assert lead.late == 1
    assert lead.due(100) == [late]
    assert lead.due(102) == [] and lead.due(103) == [early]


# ------------------------------------------------------------------ the master's programme as the clock
LEAD = 12  # blocks; sections of 0.5 s are 94 blocks of 256 frames at 48 kHz
OFFSET = -7  # the worker's block mixed into master block m is m + OFFSET


def _piece(tmp_path: Path, model: Path, **programme: object) -> Path:
    source = {"kind": "lfo", "freq_hz": 0.1}
    return write_piece(
        tmp_path,
        models={"m": model},
        voices={name: {"model": "m", "source": source} for name in ("a", "b", "c")},
        sections=[
            {"name": "one", "voices": ["a"], "duration_s": 0.5},
            {"name": "two", "voices": ["b"], "duration_range_s": [0.4, 0.7]},
            {"name": "three", "voices": ["c", "a"], "duration_s": 0.6},
        ],
        programme={"crossfade_s": 0.1, **programme},
    )


def _master(path: Path) -> tuple[Engine, list[tuple[int, c.Command]]]:
    """An engine keeping the programme's time as a master does; what it gives its workers."""
    engine = build_engine(load_config(path), fade_in_s=0.0, warm_up=False)
    engine.lead = CommandLead(LEAD)
    clock = ProgrammeClock(engine, engine.lead)
    engine.block_start_listeners.append(clock)
    sent: list[tuple[int, c.Command]] = []
    engine.lead.listeners.append(lambda block, cmd: sent.append((block, cmd)))
    return engine, sent


def _worker(path: Path) -> Engine:
    engine = build_engine(load_config(path), fade_in_s=0.0, warm_up=False)
    engine.lead = CommandLead(0)
    engine.programme.follows = True
    return engine


def _to_worker(block: int, command: c.Command) -> tuple[int, c.Command]:
    """As the control channel carries a command to a worker: its block on the worker's count."""
    if isinstance(command, c.AdvanceSection | c.FollowProgramme):
        command = dataclasses.replace(command, due_block=block + OFFSET)
    return block + OFFSET, command


@pytest.mark.parametrize("order", ["sequence", "shuffle", "weighted"])
def test_the_masters_timed_sections_end_where_one_machines_do_and_the_worker_follows(
    tmp_path: Path, model_factory: Callable[[SynthSpec], Path], order: str
) -> None:
    path = _piece(tmp_path, model_factory(SynthSpec(latent_size=4, ratio=1024, sr=48000)), order=order)
    alone = build_engine(load_config(path), fade_in_s=0.0, warm_up=False)
    master, sent = _master(path)
    worker = _worker(path)
    n_blocks = 500  # several sections, each with its crossfade
    heard = 0
    sections: dict[str, list[tuple[str, int, float]]] = {"master": [], "worker": []}
    for m in range(n_blocks - OFFSET):
        if m >= -OFFSET:  # the worker is 7 blocks behind: its block w is mixed into master block w + 7
            for block, cmd in sent[heard:]:
                worker.submit_at(*_to_worker(block, cmd))
            heard = len(sent)
            worker.next_block()
            w = worker.programme
            sections["worker"].append((w.current.name, w.step, w.morph_progress()))
        if m < n_blocks:
            assert np.array_equal(master.next_block(), alone.next_block()), f"block {m} differs"
            p = master.programme
            sections["master"].append((p.current.name, p.step, p.morph_progress()))
    changes = [i for i in range(1, n_blocks) if sections["master"][i][1] != sections["master"][i - 1][1]]
    assert len(changes) >= 3, sections["master"][::20]
    # Worker block w is mixed into master block w - OFFSET: the same section there, the same crossfade.
    assert sections["worker"][: n_blocks + OFFSET] == sections["master"][-OFFSET:]
    assert all(isinstance(cmd, c.AdvanceSection) for _, cmd in sent)
    assert len(changes) <= len(sent) <= len(changes) + 1  # the last may be due after the run
    assert master.lead is not None and worker.lead is not None and worker.lead.late == 0


def _states(engine: Engine) -> dict[int, tuple[object, ...]]:
    """The programme at the start of each block, as the engine renders it."""
    states: dict[int, tuple[object, ...]] = {}

    def note(block: int) -> None:
        p = engine.programme
        states[block] = (p.current.name, p.step, p.entry, p.position, p.morph_progress())

    engine.block_start_listeners.append(note)
    return states


def test_a_worker_that_joins_late_takes_the_programme_and_catches_up(
    tmp_path: Path, model_factory: Callable[[SynthSpec], Path]
) -> None:
    path = _piece(tmp_path, model_factory(SynthSpec(latent_size=4, ratio=1024, sr=48000)))
    master, sent = _master(path)
    worker = _worker(path)
    clock = master.block_start_listeners[0]
    assert isinstance(clock, ProgrammeClock)
    master_states, worker_states = _states(master), _states(worker)
    while len(sent) < 2:  # the second section's end is given: the worker joins 3 blocks later
        master.next_block()
    for _ in range(3):
        master.next_block()
    joined = master.counters.blocks
    p = master.programme
    assert clock.pending is not None and clock.pending[1] > joined
    # As NodeSender gives a node heard at master block ``joined``: the state, and the end already given.
    follow = c.FollowProgramme(joined, p.step, p.entry, p.current.name, p.position, p.hold)
    given = [(joined, follow), (clock.pending[1], c.AdvanceSection(clock.pending[1], clock.pending[0]))]
    heard = len(sent)
    late = 20  # the worker has played 20 blocks past the state's block when it arrives
    while worker.counters.blocks < joined + OFFSET + late:
        worker.next_block()
    assert worker.snapshot.section == "one"  # it never ends a section by itself
    for block, cmd in given:
        worker.submit_at(*_to_worker(block, cmd))
    for m in range(joined, joined + 300):
        for block, cmd in sent[heard:]:
            worker.submit_at(*_to_worker(block, cmd))
        heard = len(sent)
        if m + OFFSET >= worker.counters.blocks:
            worker.next_block()
        master.next_block()
    first = joined + OFFSET + late
    compared = range(first, worker.counters.blocks)
    assert [worker_states[w] for w in compared] == [master_states[w - OFFSET] for w in compared]
    assert len({master_states[w - OFFSET][0] for w in compared}) == 3  # through every section
    assert worker.lead is not None and worker.lead.late == 2  # the state and the end, caught up


def test_a_goto_overtakes_a_given_section_end_and_a_hold_stops_it(
    tmp_path: Path, model_factory: Callable[[SynthSpec], Path]
) -> None:
    path = _piece(tmp_path, model_factory(SynthSpec(latent_size=4, ratio=1024, sr=48000)))
    master, sent = _master(path)
    while master.programme.blocks_to_end(master.blocksize) > LEAD + 5:  # type: ignore[operator]
        master.next_block()
    master.submit(c.GotoSection("three"))  # applied LEAD blocks later: after "one"'s end is given
    while not sent:
        master.next_block()
    end = sent[0][0]
    while master.counters.blocks <= end:
        master.next_block()
    assert master.snapshot.section == "three"  # the goto came first: the end given did nothing
    master.submit(c.HoldSection(True))
    for _ in range(200):  # far past the end of "three"
        master.next_block()
    assert master.snapshot.section == "three"
    master.submit(c.HoldSection(False))
    released = master.counters.blocks
    while master.snapshot.section == "three":
        master.next_block()
    # Released past its end: the section ends the lead after the release applies (two leads in all).
    assert master.counters.blocks - 1 == released + 2 * LEAD


# ------------------------------------------------------------------ a worker's clocks count the master's
def test_a_worker_heard_again_moves_its_clocked_sources_to_count_the_masters_blocks(
    tmp_path: Path, model_factory: Callable[[SynthSpec], Path]
) -> None:
    model = model_factory(SynthSpec(latent_size=4, ratio=256, sr=48000))
    path = write_piece(
        tmp_path,
        models={"m": model},
        voices={
            "lfo": {"model": "m", "source": {"kind": "lfo", "freq_hz": 0.1}},
            "walk": {"model": "m", "source": {"kind": "walk"}},
        },
    )
    # The master's block m carries the worker's block m - 10: the worker's clocks move 10 blocks on,
    # 10 latent frames here (blocks of 256 frames, a model of ratio 256), as if it had started with it.
    worker = build_engine(load_config(path), fade_in_s=0.0, warm_up=False)
    follow = c.FollowProgramme(0, 0, 0, "all", 0, False, clock_blocks=10)
    worker.submit(follow)
    like_master = build_engine(load_config(path), fade_in_s=0.0, warm_up=False)
    like_master.voices["lfo"].source.step(10)
    for _ in range(12):
        np.testing.assert_array_equal(worker.next_block(), like_master.next_block())
    voices = worker.voices
    assert (voices["lfo"].clock_shift_frames, voices["walk"].clock_shift_frames) == (10, 0)  # no clock
    # Heard again with the same mapping (a brief loss): nothing moves; with another: by the difference.
    worker.submit(dataclasses.replace(follow, due_block=12))
    worker.next_block()
    like_master.next_block()
    np.testing.assert_array_equal(worker.next_block(), like_master.next_block())
    worker.submit(dataclasses.replace(follow, due_block=14, clock_blocks=7))
    worker.next_block()
    assert voices["lfo"].clock_shift_frames == 7
