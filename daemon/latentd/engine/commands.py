"""Commands: frozen values that change the engine, each with its checks and its handler.

Control has one door, ``Engine.submit(command)``. OSC handlers, scheduler jobs and the CLI only build
these values; the engine applies them between blocks and logs each with its block index, so a session is
a deterministic function of (config, seed, command log).

Each class below is one row of the command table (:data:`COMMANDS`): its name, its override key, its
float fields (checked for finiteness), its refusal and its handler, all in the class; see
:mod:`latentd.engine.command_base` for the rules a class must follow. A ``refusal`` reads only the
snapshot it is given (:func:`check`), so any thread can check a command before submitting it.

The voice commands are in :mod:`latentd.engine.voice_commands`, imported here, so every command class is
``commands.<Class>``; this module holds the master's, the programme's and the outside ones.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, ClassVar

import structlog

from latentd.engine.command_base import COMMANDS as COMMANDS
from latentd.engine.command_base import Command, ranges
from latentd.engine.command_base import Overrides as Overrides
from latentd.engine.command_base import check as check
from latentd.engine.command_base import overrides_from_log as overrides_from_log
from latentd.engine.voice_commands import GAIN_MAX
from latentd.engine.voice_commands import FreezeVoice as FreezeVoice
from latentd.engine.voice_commands import ModelSwapped as ModelSwapped
from latentd.engine.voice_commands import ReseedVoice as ReseedVoice
from latentd.engine.voice_commands import SetConditioning as SetConditioning
from latentd.engine.voice_commands import SetLatentBias as SetLatentBias
from latentd.engine.voice_commands import SetLatentClamp as SetLatentClamp
from latentd.engine.voice_commands import SetLatentScale as SetLatentScale
from latentd.engine.voice_commands import SetModelAttribute as SetModelAttribute
from latentd.engine.voice_commands import SetSourceParam as SetSourceParam
from latentd.engine.voice_commands import SetVoiceGain as SetVoiceGain
from latentd.engine.voice_commands import SetVoiceMute as SetVoiceMute
from latentd.engine.voice_commands import SetVoicePan as SetVoicePan
from latentd.engine.voice_commands import SetVoiceRotation as SetVoiceRotation
from latentd.engine.voice_commands import SwapModel as SwapModel
from latentd.engine.voice_commands import TriggerVoice as TriggerVoice

FADE_MAX_S = 3600.0  # the longest opening or closing fade

if TYPE_CHECKING:
    from latentd.engine.engine import Engine
    from latentd.engine.snapshot import EngineSnapshot

log = structlog.get_logger("latentd.engine")


# ------------------------------------------------------------------------------------------ master
@dataclass(frozen=True)
class SetMasterGain(Command):
    name: ClassVar[str] = "master.gain"
    override = ()
    bounds = ranges(gain=(0.0, GAIN_MAX))
    gain: float

    def apply(self, engine: Engine) -> None:
        engine.master_gain.set(self.gain)


@dataclass(frozen=True)
class SetMasterMute(Command):
    name: ClassVar[str] = "master.mute"
    override = ()
    mute: bool

    def apply(self, engine: Engine) -> None:
        engine.master_mute.set(0.0 if self.mute else 1.0)


@dataclass(frozen=True)
class ResetOverrides(Command):
    """Drop every operator override: gains, mutes, biases, scales, clamps, freezes, pans."""

    name: ClassVar[str] = "reset"
    override = None
    resets_overrides = True

    def apply(self, engine: Engine) -> None:
        for voice in engine.voices.values():
            voice.reset_overrides()
        engine.master_gain.set(engine.installation.config.venue.output.master_gain)
        engine.master_mute.set(1.0)
        engine.programme.hold = False


@dataclass(frozen=True)
class SetOpen(Command):
    """Open the venue (fade the master in over ``fade_s``) or close it (fade out; the engine keeps going)."""

    name: ClassVar[str] = "venue.open"
    override = None
    bounds = ranges(fade_s=(0.0, FADE_MAX_S))
    open: bool
    fade_s: float = 0.0

    def apply(self, engine: Engine) -> None:
        # The opening fade reuses the start-up fade: one gain stage, so the two never fight.
        engine.fade.ramp_steps = max(1, int(max(0.0, self.fade_s) * engine.samplerate))
        engine.fade.set(1.0 if self.open else 0.0)


# ------------------------------------------------------------------------------------------ programme
def _section_refusal(view: EngineSnapshot, section: str) -> str | None:
    names = view.sections
    return None if section in names else f"unknown section {section!r}; sections: {', '.join(names)}"


@dataclass(frozen=True)
class NextSection(Command):
    name: ClassVar[str] = "section.next"
    override = None

    def apply(self, engine: Engine) -> None:
        engine.programme.next()


@dataclass(frozen=True)
class GotoSection(Command):
    name: ClassVar[str] = "section.goto"
    override = None
    section: str

    def refusal(self, view: EngineSnapshot) -> str | None:
        return _section_refusal(view, self.section)

    def apply(self, engine: Engine) -> None:
        engine.programme.goto(engine.programme.names().index(self.section))


@dataclass(frozen=True)
class HoldSection(Command):
    """Keep the current section playing until released (``hold=False``)."""

    name: ClassVar[str] = "section.hold"
    override = None  # the hold is restored with the programme position
    hold: bool

    def apply(self, engine: Engine) -> None:
        engine.programme.hold = self.hold


@dataclass(frozen=True)
class RestoreProgramme(Command):
    """Continue the programme at ``step`` in ``section``, ``position_s`` seconds in, without a crossfade."""

    name: ClassVar[str] = "section.restore"
    override = None
    bounds = ranges(step=(0, math.inf), position_s=(0.0, math.inf))
    step: int
    section: str
    position_s: float
    hold: bool = False

    def refusal(self, view: EngineSnapshot) -> str | None:
        return _section_refusal(view, self.section)

    def apply(self, engine: Engine) -> None:
        p = engine.programme
        p.restore(
            self.step, p.names().index(self.section), int(self.position_s * engine.samplerate), self.hold
        )


@dataclass(frozen=True)
class AdvanceSection(Command):
    """End section entry ``entry`` as the programme would by itself: the master's clock on every node.

    Given by the master (``engine/node_sync.py``) for ``due_block``, the block it is due at on the node
    applying it (each worker's own block); applied ``late`` blocks after that, the new section starts
    that far in. Does nothing when the programme has entered another section since, or is held, or
    keeps its own time (one machine, a replay of the master's recording: there it ended the section).
    """

    name: ClassVar[str] = "section.advance"
    override = None
    bounds = ranges(entry=(0, math.inf))
    due_block: int
    entry: int

    def apply(self, engine: Engine) -> None:
        p = engine.programme
        if not p.follows:
            return
        if p.entry != self.entry or p.hold:
            log.info("section.advance_skipped", entry=self.entry, now_entry=p.entry, hold=p.hold)
            return
        if p.next():
            p.catch_up((engine.counters.blocks - self.due_block) * engine.blocksize)


@dataclass(frozen=True)
class FollowProgramme(Command):
    """Take the master's programme state at ``due_block`` (a worker joining, or back): section, step,
    position, hold and entry count; applied later than ``due_block``, it moves on by the blocks missed.
    A crossfade in progress on the master is not taken: the node starts in the incoming section. A
    worker starts silent and fades in here (the start-up fade).

    ``clock_blocks`` is the master's block minus the worker's block mixed into it: the worker moves its
    sources' clocks (LFOs, steps, tables, latent files) by that many blocks from its own count, so they
    count the master's blocks and its voices' material is in time with the master's own voices.
    """

    name: ClassVar[str] = "section.follow"
    override = None
    bounds = ranges(step=(0, math.inf), entry=(0, math.inf), position=(0, math.inf))
    due_block: int
    step: int
    entry: int
    section: str
    position: int
    hold: bool
    clock_blocks: int = 0

    def refusal(self, view: EngineSnapshot) -> str | None:
        return _section_refusal(view, self.section)

    def apply(self, engine: Engine) -> None:
        p = engine.programme
        p.restore(self.step, p.names().index(self.section), 0, self.hold)
        p.position = self.position  # past the length too: the master's advance ends the section
        p.entry = self.entry
        p.catch_up((engine.counters.blocks - self.due_block) * engine.blocksize)
        seconds = self.clock_blocks * engine.blocksize / engine.samplerate
        moved = [v.name for v in engine.voices.values() if v.align_clock(round(seconds * v.latent_rate_hz))]
        if moved:
            log.info("node.clocks_aligned", clock_blocks=self.clock_blocks, voices=moved)
        engine.fade.set(1.0)


# ------------------------------------------------------------------------------------------ outside
@dataclass(frozen=True)
class ExternalCommand(Command, abstract=True):
    """A command the engine sequences and logs but whose effect lives outside it.

    Its handler is registered at run time in ``engine.handlers`` (the recorder registers the recording
    commands); without one the command is refused. The snapshot lists the registered ones (``handled``).
    """

    service: ClassVar[str] = "this command"

    def refusal(self, view: EngineSnapshot) -> str | None:
        if self.name not in view.handled:
            return f"{self.service} is not available in this process"
        return None

    def apply(self, engine: Engine) -> None:
        engine.handlers[type(self)](self)


@dataclass(frozen=True)
class StartRecording(ExternalCommand):
    """Start recording the master bus (``label`` is added to the file name)."""

    name: ClassVar[str] = "record.start"
    override = None
    service: ClassVar[str] = "recording"
    label: str = ""


@dataclass(frozen=True)
class StopRecording(ExternalCommand):
    name: ClassVar[str] = "record.stop"
    override = None
    service: ClassVar[str] = "recording"


@dataclass(frozen=True)
class SnapshotPiece(ExternalCommand):
    """Write the live tuning (overrides, seeds) into a new piece file beside the piece (``/snapshot``).

    The file is written outside the engine thread; the handler replies to the sender with its path.
    """

    name: ClassVar[str] = "piece.snapshot"
    override = None
    service: ClassVar[str] = "writing a snapshot of the piece"


def command_from_json(data: dict[str, Any]) -> Command:
    """Rebuild a command from :meth:`Command.to_json` output (used by replay)."""
    fields = dict(data)
    cls = COMMANDS[fields.pop("cmd")]
    fields.pop("origin", None)  # never stored; a file cannot claim to be a sender
    return cls(**fields)
