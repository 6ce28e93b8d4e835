"""The engine's read door: an immutable snapshot, published by the engine thread after every block.

Other threads (OSC, scheduler, state writer, recorder, status lines) read ``engine.snapshot`` and nothing
else of the engine: replacing one reference is atomic, and a snapshot never changes once published, so
its fields always belong together (the section with its position, a seed with its voice). Commands are
checked against a snapshot (:func:`~latentd.engine.commands.check`), so it carries what the checks need:
each voice's :class:`VoiceInfo`, the piece's models and the commands handled outside the engine.
See docs/ARCHITECTURE.md, "Control and reads".
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from types import MappingProxyType
from typing import TYPE_CHECKING, Any

from latentd.engine.command_base import Command

if TYPE_CHECKING:
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
        }


def frozen_mapping(data: dict[str, Any]) -> Mapping[str, Any]:
    """A read-only view of a dict that nobody else holds."""
    return MappingProxyType(data)
