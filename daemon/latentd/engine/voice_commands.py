"""The voice commands: a voice's gain, mute, latents, seed, source, pan, conditioning, model.

Part of the command table (see :mod:`latentd.engine.commands`, which re-exports every class here, and
:mod:`latentd.engine.command_base` for what a class declares).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, ClassVar

import structlog

from latentd.engine.command_base import SEED_MODULUS, Command, ranges
from latentd.installation.errors import ModelError
from latentd.sources.specs import LATENT_LIMIT

# The ranges operators may set, declared once: the commands' ``bounds`` use them, the OSC routes and the
# state restore take them from there.
GAIN_MAX = 4.0  # linear gain of a voice or of the master bus (+12 dB)
LATENT_OVERRIDE_MAX = 10.0  # |bias| and |scale| of one latent dimension
DIM_MAX = 4095  # the highest latent dimension an address may name (the voice's own size is checked too)
ANGLE_MAX = 360.0  # |azimuth| in degrees and |rotation| in degrees per second
ATTRIBUTE_TEXT_MAX = 256  # characters of a string model attribute
_LATENT = (-LATENT_OVERRIDE_MAX, LATENT_OVERRIDE_MAX)
_DIMS = (0, DIM_MAX)

if TYPE_CHECKING:
    from latentd.engine.engine import Engine
    from latentd.engine.snapshot import EngineSnapshot, VoiceInfo
    from latentd.engine.voice import Routing, Voice

log = structlog.get_logger("latentd.engine")


def _voice(engine: Engine, command: Any) -> Voice:
    return engine.voices[command.voice]


def _info(view: EngineSnapshot, command: Any) -> VoiceInfo:
    return view.voices[command.voice].info


def _moving_routing(engine: Engine, command: Any) -> Routing:
    """The voice's routing freed of a fixed matrix and of waypoints: a pan or a rotation takes over."""
    routing = _voice(engine, command).routing
    routing.matrix = None
    routing.waypoints = None
    return routing


# ------------------------------------------------------------------------------------------ voices
@dataclass(frozen=True)
class SetVoiceGain(Command):
    name: ClassVar[str] = "voice.gain"
    override = ("voice",)
    bounds = ranges(gain=(0.0, GAIN_MAX))
    voice: str
    gain: float

    def apply(self, engine: Engine) -> None:
        _voice(engine, self).gain.set(self.gain)


@dataclass(frozen=True)
class SetVoiceMute(Command):
    name: ClassVar[str] = "voice.mute"
    override = ("voice",)
    voice: str
    mute: bool

    def apply(self, engine: Engine) -> None:
        v = _voice(engine, self)
        v.mute.set(0.0 if self.mute else 1.0)
        if not self.mute:
            v.faults, v.fault_until = 0, -1  # an operator's unmute gives a faulted voice another try


@dataclass(frozen=True)
class SetLatentBias(Command):
    """Add ``value`` to latent dimension ``dim`` of the voice's frames (after the source)."""

    name: ClassVar[str] = "voice.bias"
    override = ("voice", "dim")
    bounds = ranges(dim=_DIMS, value=_LATENT)
    voice: str
    dim: int
    value: float

    def apply(self, engine: Engine) -> None:
        _voice(engine, self).bias.set_at(self.dim, self.value)


@dataclass(frozen=True)
class SetLatentScale(Command):
    """Multiply latent dimension ``dim`` of the voice's frames by ``value`` (before the bias)."""

    name: ClassVar[str] = "voice.scale"
    override = ("voice", "dim")
    bounds = ranges(dim=_DIMS, value=_LATENT)
    voice: str
    dim: int
    value: float

    def apply(self, engine: Engine) -> None:
        _voice(engine, self).scale.set_at(self.dim, self.value)


@dataclass(frozen=True)
class SetLatentClamp(Command):
    """Clamp latent dimension ``dim`` to [low, high] (a "control threshold")."""

    name: ClassVar[str] = "voice.clamp"
    override = ("voice", "dim")
    bounds = ranges(dim=_DIMS, low=(-LATENT_LIMIT, LATENT_LIMIT), high=(-LATENT_LIMIT, LATENT_LIMIT))
    voice: str
    dim: int
    low: float
    high: float

    def refusal(self, view: EngineSnapshot) -> str | None:
        return f"clamp low {self.low} is above high {self.high}" if self.low > self.high else None

    def apply(self, engine: Engine) -> None:
        v = _voice(engine, self)
        v.clamp_low[self.dim], v.clamp_high[self.dim] = self.low, self.high


@dataclass(frozen=True)
class FreezeVoice(Command):
    """Hold the voice's current latent frame (``frozen=True``) or let the source run again."""

    name: ClassVar[str] = "voice.freeze"
    override = ("voice",)
    voice: str
    frozen: bool

    def apply(self, engine: Engine) -> None:
        _voice(engine, self).frozen = self.frozen


@dataclass(frozen=True)
class ReseedVoice(Command):
    """Restart the voice's source from ``seed``; None means the voice's current seed + 1.

    The engine resolves None when it applies the command and logs the concrete seed, so two in a row
    give two different seeds and a replay restarts from the same ones.
    """

    name: ClassVar[str] = "voice.seed"
    override = None  # seeds are kept apart from overrides (the daily reseed sets them too)
    bounds = ranges(seed=(0, SEED_MODULUS - 1))
    voice: str
    seed: int | None = None

    def resolve(self, engine: Engine) -> Command:
        if self.seed is not None:
            return self
        return ReseedVoice(self.voice, (_voice(engine, self).seed + 1) % SEED_MODULUS)

    def apply(self, engine: Engine) -> None:
        assert self.seed is not None  # resolved before it is applied
        v = _voice(engine, self)
        v.source.reseed(self.seed)
        v.seed = self.seed


@dataclass(frozen=True)
class TriggerVoice(Command):
    """Send a trigger to the voice's source (restart, next step, next seed of a bank...)."""

    name: ClassVar[str] = "voice.trigger"
    override = None
    voice: str

    def apply(self, engine: Engine) -> None:
        _voice(engine, self).source.trigger()


@dataclass(frozen=True)
class SetSourceParam(Command):
    """Set a named parameter of the voice's source."""

    name: ClassVar[str] = "voice.param"
    override = ("voice", "key")
    voice: str
    key: str
    value: float

    def refusal(self, view: EngineSnapshot) -> str | None:
        params = _info(view, self).params
        if self.key not in params:
            return f"unknown source parameter {self.key!r}; allowed: {', '.join(params)}"
        low, high = params[self.key]
        if not low <= self.value <= high:
            return f"parameter {self.key!r} must be in {low:g}..{high:g}, got {self.value:g}"
        return None

    def apply(self, engine: Engine) -> None:
        _voice(engine, self).source.set_param(self.key, self.value)


@dataclass(frozen=True)
class SetVoicePan(Command):
    """Pan the voice at ``azimuth_deg`` (0 = front, positive = left)."""

    name: ClassVar[str] = "voice.pan"
    override = ("voice",)
    bounds = ranges(azimuth_deg=(-ANGLE_MAX, ANGLE_MAX))
    voice: str
    azimuth_deg: float

    def apply(self, engine: Engine) -> None:
        _moving_routing(engine, self).azimuth_deg = self.azimuth_deg


@dataclass(frozen=True)
class SetVoiceRotation(Command):
    """Rotate the voice's pan position at ``deg_per_s`` (0 stops it)."""

    name: ClassVar[str] = "voice.rotate"
    override = ("voice",)
    bounds = ranges(deg_per_s=(-ANGLE_MAX, ANGLE_MAX))
    voice: str
    deg_per_s: float

    def apply(self, engine: Engine) -> None:
        _moving_routing(engine, self).rotate_deg_s = self.deg_per_s


@dataclass(frozen=True)
class SetConditioning(Command):
    """Set a conditioning input (an extra decode input, e.g. pitch class) of the voice to a constant."""

    name: ClassVar[str] = "voice.cond"
    override = ("voice", "input")
    voice: str
    input: str
    value: float

    def refusal(self, view: EngineSnapshot) -> str | None:
        names = _info(view, self).conditioning_names
        if self.input not in names:
            return f"unknown conditioning input {self.input!r}; allowed: {', '.join(names) or 'none'}"
        return None

    def apply(self, engine: Engine) -> None:
        v = _voice(engine, self)
        index = v.conditioning_names.index(self.input)
        v.cond.set_at(index, self.value)
        v.cond_overridden.add(index)


@dataclass(frozen=True)
class SetModelAttribute(Command):
    """Set an attribute of the voice's model through its ``set_<attribute>`` (e.g. ``temperature``).

    The attribute belongs to the model, so it changes every voice that plays that model. ``value`` is a
    number or a string (vschaos2's ``inversion_mode``, ``dimred``); the model itself refuses a value of
    the wrong type or outside what it accepts, and that refusal reaches the sender.
    """

    name: ClassVar[str] = "voice.attr"
    override = None
    voice: str
    attribute: str
    value: float | str

    def refusal(self, view: EngineSnapshot) -> str | None:
        attributes = _info(view, self).attributes
        if self.attribute not in attributes:
            allowed = ", ".join(attributes) or "none (the model declares no attributes)"
            return f"model of voice {self.voice!r} has no attribute {self.attribute!r}; attributes: {allowed}"
        if isinstance(self.value, str) and (
            len(self.value) > ATTRIBUTE_TEXT_MAX or not self.value.isprintable()
        ):
            return f"value must be printable text of at most {ATTRIBUTE_TEXT_MAX} characters"
        return None

    def apply(self, engine: Engine) -> None:
        v = _voice(engine, self)
        group = engine.group_of(self.voice)
        engine.decoder.wait(group)  # none of this model's calls may be decoding meanwhile
        try:
            group.model.set_attribute(self.attribute, self.value)
        except ModelError as exc:
            raise ValueError(str(exc)) from exc
        others = [u.name for u in group.voices if u is not v]
        if others:
            log.info("model.attribute_shared", model=group.name, attribute=self.attribute, voices=others)


@dataclass(frozen=True)
class SwapModel(Command):
    """Load ``model`` (one of the piece's models) in the background and crossfade the voice to it.

    Refused at once when the voice declares ``swap_targets`` without ``model``, or when its source or
    per-dimension settings cannot be built for the model's latent size and rate.
    """

    name: ClassVar[str] = "voice.model"
    override = None
    voice: str
    model: str

    def refusal(self, view: EngineSnapshot) -> str | None:
        reason = _swap_refusal(view, self.voice, self.model)
        if reason is None:
            # Decided now, so the sender hears it at once rather than when the loaded model lands.
            reason = view.swap_rules.refusal(self.voice, view.voices[self.voice], self.model)
        loading = view.voices[self.voice].loading
        if reason is None and loading is not None:
            reason = f"voice {self.voice!r} is already swapping to model {loading!r}; wait until it lands"
        return reason

    def apply(self, engine: Engine) -> None:
        engine.swaps.start(self.voice, self.model, self.origin)


@dataclass(frozen=True)
class ModelSwapped(Command):
    """The block at which a requested swap landed: logged by the engine, not sent by operators.

    Replay applies it at the same block (loading the model there), so a session with swaps re-renders
    exactly although live loads take a variable time.
    """

    name: ClassVar[str] = "voice.model_swapped"
    override = None
    voice: str
    model: str

    def refusal(self, view: EngineSnapshot) -> str | None:
        return _swap_refusal(view, self.voice, self.model)

    def apply(self, engine: Engine) -> None:
        engine.swaps.land(self.voice, self.model)  # refuses a swap that has not been loaded (live)


def _swap_refusal(view: EngineSnapshot, voice: str, model: str) -> str | None:
    if model not in view.piece_models:
        return f"unknown model {model!r}; models of the piece: {', '.join(view.piece_models)}"
    if view.voices[voice].model == model:
        return f"voice {voice!r} already plays model {model!r}"
    return None
