"""Commands: frozen values that change the engine.

Control has one door, ``Engine.submit(command)``. OSC handlers, scheduler jobs and the CLI only build
these values; the engine applies them between blocks and logs each with its block index, so a session is
a deterministic function of (config, seed, command log).
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass
from typing import Any, ClassVar


@dataclass(frozen=True)
class Command:
    """Base of every command. ``name`` is the stable name used in command logs."""

    name: ClassVar[str] = "command"

    def to_json(self) -> dict[str, Any]:
        """A JSON-ready dict: ``{"cmd": name, **fields}``."""
        return {"cmd": self.name, **dataclasses.asdict(self)}


@dataclass(frozen=True)
class SetVoiceGain(Command):
    name: ClassVar[str] = "voice.gain"
    voice: str
    gain: float


@dataclass(frozen=True)
class SetVoiceMute(Command):
    name: ClassVar[str] = "voice.mute"
    voice: str
    mute: bool


@dataclass(frozen=True)
class SetLatentBias(Command):
    """Add ``value`` to latent dimension ``dim`` of the voice's frames (after the source)."""

    name: ClassVar[str] = "voice.bias"
    voice: str
    dim: int
    value: float


@dataclass(frozen=True)
class SetLatentScale(Command):
    """Multiply latent dimension ``dim`` of the voice's frames by ``value`` (before the bias)."""

    name: ClassVar[str] = "voice.scale"
    voice: str
    dim: int
    value: float


@dataclass(frozen=True)
class SetLatentClamp(Command):
    """Clamp latent dimension ``dim`` to [low, high] (a "control threshold")."""

    name: ClassVar[str] = "voice.clamp"
    voice: str
    dim: int
    low: float
    high: float


@dataclass(frozen=True)
class FreezeVoice(Command):
    """Hold the voice's current latent frame (``frozen=True``) or let the source run again."""

    name: ClassVar[str] = "voice.freeze"
    voice: str
    frozen: bool


@dataclass(frozen=True)
class ReseedVoice(Command):
    """Restart the voice's source from ``seed``."""

    name: ClassVar[str] = "voice.seed"
    voice: str
    seed: int


@dataclass(frozen=True)
class TriggerVoice(Command):
    """Send a trigger to the voice's source (restart, next step, next seed of a bank...)."""

    name: ClassVar[str] = "voice.trigger"
    voice: str


@dataclass(frozen=True)
class SetSourceParam(Command):
    """Set a named parameter of the voice's source."""

    name: ClassVar[str] = "voice.param"
    voice: str
    key: str
    value: float


@dataclass(frozen=True)
class SetVoicePan(Command):
    """Pan the voice at ``azimuth_deg`` (0 = front, positive = left)."""

    name: ClassVar[str] = "voice.pan"
    voice: str
    azimuth_deg: float


@dataclass(frozen=True)
class SetVoiceRotation(Command):
    """Rotate the voice's pan position at ``deg_per_s`` (0 stops it)."""

    name: ClassVar[str] = "voice.rotate"
    voice: str
    deg_per_s: float


@dataclass(frozen=True)
class SetConditioning(Command):
    """Set a conditioning input (an extra decode input, e.g. pitch class) of the voice to a constant."""

    name: ClassVar[str] = "voice.cond"
    voice: str
    input: str
    value: float


@dataclass(frozen=True)
class SetModelAttribute(Command):
    """Set an attribute of the voice's model through its ``set_<attribute>`` (e.g. ``temperature``).

    The attribute belongs to the model, so it changes every voice that plays that model.
    """

    name: ClassVar[str] = "voice.attr"
    voice: str
    attribute: str
    value: float


@dataclass(frozen=True)
class SwapModel(Command):
    """Load ``model`` (one of the piece's models) in the background and crossfade the voice to it."""

    name: ClassVar[str] = "voice.model"
    voice: str
    model: str


@dataclass(frozen=True)
class ModelSwapped(Command):
    """The block at which a requested swap landed: logged by the engine, not sent by operators.

    Replay applies it at the same block (loading the model there), so a session with swaps re-renders
    exactly although live loads take a variable time.
    """

    name: ClassVar[str] = "voice.model_swapped"
    voice: str
    model: str


@dataclass(frozen=True)
class SetMasterGain(Command):
    name: ClassVar[str] = "master.gain"
    gain: float


@dataclass(frozen=True)
class SetMasterMute(Command):
    name: ClassVar[str] = "master.mute"
    mute: bool


@dataclass(frozen=True)
class NextSection(Command):
    name: ClassVar[str] = "section.next"


@dataclass(frozen=True)
class GotoSection(Command):
    name: ClassVar[str] = "section.goto"
    section: str


@dataclass(frozen=True)
class HoldSection(Command):
    """Keep the current section playing until released (``hold=False``)."""

    name: ClassVar[str] = "section.hold"
    hold: bool


@dataclass(frozen=True)
class ResetOverrides(Command):
    """Drop every operator override: gains, mutes, biases, scales, clamps, freezes, pans."""

    name: ClassVar[str] = "reset"


@dataclass(frozen=True)
class StartRecording(Command):
    """Start recording the master bus (``label`` is added to the file name)."""

    name: ClassVar[str] = "record.start"
    label: str = ""


@dataclass(frozen=True)
class StopRecording(Command):
    name: ClassVar[str] = "record.stop"


@dataclass(frozen=True)
class SetOpen(Command):
    """Open the venue (fade the master in over ``fade_s``) or close it (fade out; the engine keeps going)."""

    name: ClassVar[str] = "venue.open"
    open: bool
    fade_s: float = 0.0


@dataclass(frozen=True)
class RestoreProgramme(Command):
    """Continue the programme at ``step`` in ``section``, ``position_s`` seconds in, without a crossfade."""

    name: ClassVar[str] = "section.restore"
    step: int
    section: str
    position_s: float
    hold: bool = False


COMMANDS: dict[str, type[Command]] = {
    cls.name: cls
    for cls in (
        SetVoiceGain,
        SetVoiceMute,
        SetLatentBias,
        SetLatentScale,
        SetLatentClamp,
        FreezeVoice,
        ReseedVoice,
        TriggerVoice,
        SetSourceParam,
        SetVoicePan,
        SetVoiceRotation,
        SetConditioning,
        SetModelAttribute,
        SwapModel,
        ModelSwapped,
        SetMasterGain,
        SetMasterMute,
        NextSection,
        GotoSection,
        HoldSection,
        ResetOverrides,
        StartRecording,
        StopRecording,
        SetOpen,
        RestoreProgramme,
    )
}


def command_from_json(data: dict[str, Any]) -> Command:
    """Rebuild a command from :meth:`Command.to_json` output (used by replay)."""
    fields = dict(data)
    cls = COMMANDS[fields.pop("cmd")]
    return cls(**fields)
