"""Voices whose model emitted NaN or Inf: silenced for a while, muted after too many faults in a row."""

from __future__ import annotations

from typing import Protocol

import structlog

from latentd.engine.decode import ModelGroup

log = structlog.get_logger("latentd.engine")

FAULT_HOLD_S = 2.0  # a voice whose model emitted NaN/Inf stays silent this long before it is tried again
MAX_FAULTS = 3  # after this many faults in a row the voice stays muted until an operator command


class FaultCounters(Protocol):
    """The engine counters a fault touches."""

    blocks: int
    voice_faults: int


def note_faults(group: ModelGroup, counters: FaultCounters, hold_blocks: int) -> None:
    """After a call of ``group``: silence the voices whose rows were not finite for ``hold_blocks`` (muted
    for good, until an operator unmutes, after ``MAX_FAULTS`` in a row); forgive the others' faults."""
    for row, voice in enumerate(group.voices):
        if row not in group.faulted_rows and 0 < voice.faults < MAX_FAULTS:
            voice.faults = 0  # a clean call ends the run of faults (MAX_FAULTS counts them in a row)
    for row in group.faulted_rows:
        voice = group.voices[row]
        voice.faults += 1
        counters.voice_faults += 1
        if voice.faults >= MAX_FAULTS:
            voice.mute.set(0.0, now=True)
            voice.fault_until = -1
        else:
            voice.fault_until = counters.blocks + hold_blocks
        log.error(
            "voice.nonfinite",
            voice=voice.name,
            model=group.name,
            faults=voice.faults,
            action="muted until an operator unmutes it"
            if voice.faults >= MAX_FAULTS
            else "silenced, model reset",
        )
