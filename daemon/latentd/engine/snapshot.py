"""The engine's read door: an immutable snapshot, published by the engine thread after every block.

Other threads (OSC, scheduler, state writer, recorder, status lines) read ``engine.snapshot`` and nothing
else of the engine: replacing one reference is atomic, and a snapshot never changes once published, so
its fields always belong together (the section with its position, a seed with its voice). Commands are
checked against a snapshot (:func:`~latentd.engine.commands.check`), so it carries what the checks need:
each voice's :class:`VoiceInfo`, the piece's models and the commands handled outside the engine.
See docs/ARCHITECTURE.md, "Control and reads".
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Iterator, Mapping, Sequence
from dataclasses import MISSING, dataclass, field, fields
from types import MappingProxyType
from typing import TYPE_CHECKING, Any

from latentd.engine.command_base import Command

if TYPE_CHECKING:
    from latentd.engine.engine import Engine
    from latentd.engine.remote_voices import RemoteView
    from latentd.engine.voice import Voice


@dataclass(frozen=True)
class VoiceInfo:
    """What stays fixed while a voice plays one model: made when the voice is built, shared by snapshots.

    Attributes:
        model: the model the voice plays.
        latent_size: latent dimensions of its frames.
        latent_rate_hz: latent frames per second.
        conditioning_names: the model's conditioning inputs, in decode order.
        params: the source's run-time parameters (sorted by name) with their ``(low, high)`` ranges.
        attributes: the model's attribute names (set through ``set_<attribute>``).
    """

    model: str
    latent_size: int
    latent_rate_hz: float
    conditioning_names: tuple[str, ...]
    params: Mapping[str, tuple[float, float]]
    attributes: tuple[str, ...]

    @classmethod
    def of(cls, voice: Voice, model: str, attributes: Iterable[str]) -> VoiceInfo:
        """The info of ``voice`` playing ``model`` (engine thread, when the voice is built or swapped in)."""
        source = voice.source
        return cls(
            model=model,
            latent_size=voice.latent_size,
            latent_rate_hz=voice.latent_rate_hz,
            conditioning_names=tuple(voice.conditioning_names),
            params=frozen_mapping({key: source.param_range(key) for key in source.params()}),
            attributes=tuple(attributes),
        )


@dataclass(frozen=True)
class VoiceState:
    """One voice as the engine last left it: what changes as it plays, and its :class:`VoiceInfo`."""

    seed: int
    gain: float
    muted: bool
    frozen: bool
    faults: int
    loading: str | None
    info: VoiceInfo

    @property
    def model(self) -> str:
        """The model the voice plays."""
        return self.info.model

    @property
    def latent_size(self) -> int:
        """Latent dimensions of the voice's frames."""
        return self.info.latent_size

    @property
    def latent_rate_hz(self) -> float:
        """Latent frames per second of the voice's model."""
        return self.info.latent_rate_hz


@dataclass(frozen=True)
class SwapRules:
    """What decides at once whether a voice may swap to a model: made once from the installation.

    A voice swapped to a model of its current latent size and rate keeps its source; otherwise the
    source and the per-dimension settings are built again from the piece for the new model, which
    ``refusals`` has tried beforehand (a dry run per voice and model, when the installation was made).

    Attributes:
        shapes: model → ``(latent_size, latent_rate_hz)``.
        targets: voice → the models it may swap to, for voices that declare ``swap_targets`` (their own
            model first).
        refusals: voice → model → why the voice's source or per-dimension settings cannot be built for
            that model (only the models where they cannot).
    """

    shapes: Mapping[str, tuple[int, float]] = field(default_factory=lambda: frozen_mapping({}))
    targets: Mapping[str, tuple[str, ...]] = field(default_factory=lambda: frozen_mapping({}))
    refusals: Mapping[str, Mapping[str, str]] = field(default_factory=lambda: frozen_mapping({}))

    def refusal(self, name: str, voice: VoiceState, model: str) -> str | None:
        """Why voice ``name`` (as ``voice`` is now) cannot swap to ``model``, or None."""
        targets = self.targets.get(name)
        if targets is not None and model not in targets:
            return (
                f"model {model!r} is not among the swap_targets of voice {name!r} "
                f"(it may play: {', '.join(targets)})"
            )
        size, rate = self.shapes.get(model, (0, 0.0))
        if size == voice.latent_size and math.isclose(rate, voice.latent_rate_hz):
            return None  # the voice keeps its source as it is
        return self.refusals.get(name, {}).get(model)


@dataclass(frozen=True)
class CommandLogView(Sequence[tuple[int, Command]]):
    """The first ``length`` entries of the engine's command-log tail, as they were when published.

    The engine keeps only its most recent commands (bounded, see ``engine.COMMAND_TAIL``); the whole log
    streams to disk. A tail list is only ever appended to, and trimming replaces it with a new list, so
    a prefix never changes: readers get a stable, bounded view without copying.
    """

    entries: list[tuple[int, Command]]
    length: int

    def __len__(self) -> int:
        return self.length

    def __getitem__(self, index: Any) -> Any:
        if isinstance(index, slice):
            return self.entries[: self.length][index]
        if not -self.length <= index < self.length:
            raise IndexError(index)
        return self.entries[index % self.length]

    def __iter__(self) -> Iterator[tuple[int, Command]]:
        for i in range(self.length):
            yield self.entries[i]


@dataclass(frozen=True)
class EngineSnapshot:
    """What the engine publishes for other threads; see the module docstring.

    Attributes:
        block: blocks rendered so far (the block the next command lands at).
        seconds: ``block`` in seconds.
        piece: the piece's name.
        sections: the programme's section names, in order.
        piece_models: the names of the piece's models (what a voice may swap to).
        swap_rules: which of them each voice can swap to (see :class:`SwapRules`).
        section: the current section's name.
        step: programme transitions since the piece's start.
        section_index: index of ``section`` in ``sections``.
        position_s: seconds into the current section.
        hold: whether the current section is held.
        open: whether the venue is open (fading in or playing) rather than closed.
        voices: every voice by name.
        master_gain: the master gain the engine is heading for.
        limiter_db: the limiter's current gain reduction.
        peaks: the largest absolute sample per speaker since start.
        counters: blocks, decode calls, refusals, faults and swaps.
        overrides: the operator overrides in effect, oldest change first.
        command_log: the most recent commands applied (a bounded tail), with their blocks.
        handled: names of the commands whose handler lives outside the engine and is registered
            (e.g. recording); any other such command is refused.
        remote: several machines: the other nodes' voices, their nodes and what those last reported
            (None on one machine).
    """

    block: int
    seconds: float
    piece: str
    sections: tuple[str, ...]
    section: str
    step: int
    section_index: int
    position_s: float
    hold: bool
    open: bool
    voices: Mapping[str, VoiceState]
    master_gain: float
    limiter_db: float
    peaks: tuple[float, ...]
    counters: Mapping[str, int]
    overrides: tuple[Command, ...] = ()
    command_log: CommandLogView = field(default_factory=lambda: CommandLogView([], 0))
    piece_models: tuple[str, ...] = ()
    handled: frozenset[str] = frozenset()
    swap_rules: SwapRules = field(default_factory=SwapRules)
    remote: RemoteView | None = None

    @classmethod
    def of(cls, values: dict[str, Any]) -> EngineSnapshot:
        """The snapshot holding ``values`` (every field by name).

        Made without the frozen dataclass's ``__init__``, which sets each field through
        ``object.__setattr__``: the engine publishes a snapshot after every block. A field with a
        default may be left out.

        Raises:
            TypeError: ``values`` leaves out a field without a default, or names an unknown one.
        """
        if not _REQUIRED_FIELDS <= values.keys() <= _SNAPSHOT_FIELDS:
            raise TypeError(
                f"EngineSnapshot needs the fields {sorted(_REQUIRED_FIELDS)} and may have "
                f"{sorted(_SNAPSHOT_FIELDS - _REQUIRED_FIELDS)}, got {sorted(values)}"
            )
        snapshot = object.__new__(cls)
        state = snapshot.__dict__
        state.update(_DEFAULTS)
        state.update(values)
        return snapshot

    def seed_of(self, voice: str) -> int | None:
        """The voice's current seed, None for an unknown voice."""
        state = self.voices.get(voice)
        return None if state is None else state.seed

    def status(self) -> dict[str, object]:
        """A JSON-ready dict for status lines and ``/status``."""
        return {
            "block": self.block,
            "seconds": self.seconds,
            "section": self.section,
            "hold": self.hold,
            "open": self.open,
            "voices": {
                name: {
                    "gain": v.gain,
                    "muted": v.muted,
                    "frozen": v.frozen,
                    "seed": v.seed,
                    "faults": v.faults,
                    "model": v.model,
                    "loading": v.loading,
                }
                for name, v in self.voices.items()
            },
            "master_gain": self.master_gain,
            "limiter_db": self.limiter_db,
            "refused_commands": self.counters.get("refused_commands", 0),
            "nonfinite_blocks": self.counters.get("nonfinite_blocks", 0),
            "swaps": self.counters.get("swaps", 0),
            "swap_failures": self.counters.get("swap_failures", 0),
            **({} if self.remote is None else {"remote_voices": self.remote.status()}),
        }


class SnapshotMaker:
    """Makes the engine's snapshots (engine thread), reusing the parts that did not change.

    Most of a snapshot (the voices' states, the peaks, the command-log view, the handled commands)
    changes only after a command, a swap or a fault, while a snapshot is made after every block. Each
    part is kept with the values it was made from, and made again when they differ: compared by
    identity first, then by value, so any change counts, whoever made it (a checkpoint restored too).
    """

    def __init__(self, engine: Engine) -> None:
        self.engine = engine
        self.piece = engine.installation.config.piece.name
        self.sections = tuple(engine.programme.names())
        self._voices_key: tuple[Any, ...] | None = None
        self._voices: Mapping[str, VoiceState] = frozen_mapping({})
        self._peaks_of: list[float] | None = None
        self._peaks: tuple[float, ...] = ()
        self._log = CommandLogView([], 0)
        self._handled_key: tuple[Any, ...] | None = None
        self._handled: frozenset[str] = frozenset()

    def make(self) -> EngineSnapshot:
        """The engine's state now, as an immutable snapshot."""
        engine = self.engine
        p = engine.programme
        counters = engine.counters
        blocks = counters.blocks
        if counters.peaks is not self._peaks_of:  # the engine replaces the list when a peak rises
            self._peaks_of = counters.peaks
            self._peaks = tuple(counters.peaks)
        entries = engine.command_log  # appended to, or replaced when trimmed: identity and length tell
        if entries is not self._log.entries or len(entries) != self._log.length:
            self._log = CommandLogView(entries, len(entries))
        handled_key = tuple(engine.handlers)
        if handled_key != self._handled_key:
            self._handled_key = handled_key
            self._handled = frozenset(cls.name for cls in engine.handlers)
        return EngineSnapshot.of(
            {
                "block": blocks,
                "seconds": blocks * engine.blocksize / engine.samplerate,
                "piece": self.piece,
                "sections": self.sections,
                "section": p.current.name,
                "step": p.step,
                "section_index": p.index,
                "position_s": p.position / engine.samplerate,
                "hold": p.hold,
                "open": engine.is_open,
                "voices": self._voice_states(),
                "master_gain": float(engine.master_gain.target),
                "limiter_db": engine.limiter.reduction_db,
                "peaks": self._peaks,
                "counters": frozen_mapping(
                    {
                        "blocks": blocks,
                        "decode_calls": counters.decode_calls,
                        "nonfinite_blocks": counters.nonfinite_blocks,
                        "voice_faults": counters.voice_faults,
                        "refused_commands": counters.refused_commands,
                        "swaps": counters.swaps,
                        "swap_failures": counters.swap_failures,
                    }
                ),
                "overrides": engine.overrides.values(),
                "command_log": self._log,
                "piece_models": engine._piece_models,
                "handled": self._handled,
                "swap_rules": engine.swap_rules,
                "remote": engine.remote.view(),
            }
        )

    def _voice_states(self) -> Mapping[str, VoiceState]:
        engine = self.engine
        loading = engine.swaps.loading
        infos = engine.voice_infos
        # What a VoiceState is made of, by reference: a ramp's target is a new array after every change.
        key = tuple(
            (name, v.seed, v.gain.target, v.mute.target, v.frozen, v.faults, loading.get(name), infos[name])
            for name, v in engine.voices.items()
        )
        if key != self._voices_key:
            self._voices_key = key
            self._voices = frozen_mapping(
                {
                    name: VoiceState(
                        seed=seed,
                        gain=float(gain),
                        muted=bool(mute == 0.0),
                        frozen=frozen,
                        faults=faults,
                        loading=load,
                        info=info,
                    )
                    for name, seed, gain, mute, frozen, faults, load, info in key
                }
            )
        return self._voices


def frozen_mapping(data: dict[str, Any]) -> Mapping[str, Any]:
    """A read-only view of a dict that nobody else holds."""
    return MappingProxyType(data)


_SNAPSHOT_FIELDS = frozenset(f.name for f in fields(EngineSnapshot))
# Every default is immutable, so one instance serves every snapshot.
_DEFAULTS = {
    f.name: f.default if f.default is not MISSING else f.default_factory()  # type: ignore[misc,operator]
    for f in fields(EngineSnapshot)
    if f.default is not MISSING or f.default_factory is not MISSING
}
_REQUIRED_FIELDS = _SNAPSHOT_FIELDS - _DEFAULTS.keys()
