"""The programme: which section plays, for how long, in what order, and the equal-power crossfade between.

Orders: ``sequence`` (as listed), ``shuffle`` (each section once per cycle, a new seeded order every cycle,
never the same section twice in a row across a cycle boundary when there are more than two), ``weighted``
(a seeded draw by weight at every step). The section and its length at step ``k`` are pure functions of
(order, seed, k), so a programme restored to a step continues exactly as it would have.

On several machines the master's programme is the only clock: with ``follows`` set a programme never ends
a section by itself; commands do (``engine/node_sync.py`` foresees on the master where a section ends).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Literal

import numpy as np

Order = Literal["sequence", "shuffle", "weighted"]
_SHUFFLE, _WEIGHTED, _LENGTH = 1, 2, 3  # streams of the seeded generator


@dataclass(frozen=True)
class SectionPlan:
    """A section as the engine needs it: its voices and its length in samples.

    ``length_max`` (when given) makes the length a seeded draw in [length, length_max]; ``weight`` counts
    in the ``weighted`` order; ``crossfade_in`` (samples) replaces the programme's crossfade into it.
    """

    name: str
    voices: frozenset[str]
    length: int
    length_max: int | None = None
    weight: float = 1.0
    crossfade_in: int | None = None


def _rng(seed: int, *keys: int) -> np.random.Generator:
    return np.random.default_rng([seed % 2**32, *keys])


class Programme:
    """Advances through sections, crossfading with equal power (cos/sin) between them.

    Voices present in both sections keep playing at full level through a transition.
    """

    def __init__(
        self,
        sections: list[SectionPlan],
        crossfade: int,
        loop: bool,
        order: Order = "sequence",
        seed: int = 0,
    ) -> None:
        self.sections = sections
        self.crossfade = max(0, crossfade)
        # Morphing (set by the engine): pairs an incoming voice with an outgoing one of the same model;
        # the pair hands over within ``morph_handover`` samples and the latents glide for the rest.
        self.pair_voices: Callable[[frozenset[str], frozenset[str]], dict[str, str]] | None = None
        self.morph_handover = 0
        self.morph_pairs: dict[str, str] = {}
        self.loop = loop
        self.order = order
        self.seed = seed
        weights = np.array([max(0.0, s.weight) for s in sections], dtype=np.float64)
        self._p = weights / weights.sum() if weights.sum() > 0 else np.full(len(sections), 1 / len(sections))
        self.step = 0  # transitions since the piece's start; selects section and length
        # Sections entered (any way: next, goto, restore): an advance names the entry it ends, so one
        # that a goto overtook does nothing.
        self.entry = 0
        # True: sections end only by command (a node of several machines follows the master's clock).
        self.follows = False
        self.index = self.section_at(0)
        self.length = self.length_at(0, self.index)
        self.position = 0  # samples into the current section
        self.hold = False
        self._from: frozenset[str] = frozenset()
        self._fade_pos = 0
        self._fade_len = 0

    # ------------------------------------------------------------------ pure functions of the step
    def _cycle(self, cycle: int) -> np.ndarray:
        n = len(self.sections)
        if n <= 2:
            cycle = 0  # with two sections, no-repeat leaves one alternation
        perm = _rng(self.seed, _SHUFFLE, cycle).permutation(n)
        if cycle > 0 and n > 2 and perm[0] == _rng(self.seed, _SHUFFLE, cycle - 1).permutation(n)[-1]:
            perm[[0, 1]] = perm[[1, 0]]  # the last element is never swapped, so no recursion is needed
        return perm

    def section_at(self, step: int) -> int:
        """Index of the section played at ``step`` (0 = the piece's first section)."""
        n = len(self.sections)
        if self.order == "shuffle":
            return int(self._cycle(step // n)[step % n])
        if self.order == "weighted":
            return int(_rng(self.seed, _WEIGHTED, step).choice(n, p=self._p))
        return step % n

    def length_at(self, step: int, index: int) -> int:
        """Length in samples of section ``index`` when it plays at ``step`` (a seeded draw for ranges)."""
        plan = self.sections[index]
        if plan.length_max is None or plan.length_max <= plan.length:
            return max(1, plan.length)
        return int(_rng(self.seed, _LENGTH, step, index).integers(plan.length, plan.length_max + 1))

    # ------------------------------------------------------------------ state
    @property
    def current(self) -> SectionPlan:
        return self.sections[self.index]

    @property
    def fading(self) -> bool:
        return self._fade_pos < self._fade_len

    def names(self) -> list[str]:
        return [s.name for s in self.sections]

    def audible(self) -> frozenset[str]:
        """Voices that need decoding now: the current section's, plus the outgoing one's while fading."""
        return self.current.voices | self._from if self.fading else self.current.voices

    def _enter(self, index: int, fade: bool) -> None:
        outgoing = self.audible() if fade else frozenset()
        self.entry += 1
        self.morph_pairs = {}
        self._from = outgoing
        self.index = index
        self.length = self.length_at(self.step, index)
        self.position = 0
        plan = self.sections[index]
        self._fade_pos = 0
        crossfade = plan.crossfade_in if plan.crossfade_in is not None else self.crossfade
        self._fade_len = crossfade if fade else 0
        if self._fade_len and self.pair_voices is not None:
            self.morph_pairs = self.pair_voices(outgoing - plan.voices, plan.voices - outgoing)

    def morph_progress(self, ahead: int = 0) -> float:
        """How far the current crossfade is (0..1), ``ahead`` samples from now; 1 when not fading."""
        if not self.fading:
            return 1.0
        return min(1.0, (self._fade_pos + ahead) / self._fade_len)

    def goto(self, index: int) -> None:
        """Start a crossfade to section ``index`` (a jump when the crossfade length is 0).

        In ``sequence`` order the programme then continues after ``index``; in the random orders it
        continues with its seeded order.
        """
        if self.order == "sequence":
            n = len(self.sections)
            self.step = self.step - self.step % n + index
        self._enter(index, fade=True)

    def next(self) -> bool:
        """Move to the next section; False at the end of a programme that does not loop."""
        if not self.loop and self.step + 1 >= len(self.sections):
            return False
        self.step += 1
        self._enter(self.section_at(self.step), fade=True)
        return True

    def restore(self, step: int, index: int, position: int, hold: bool) -> None:
        """Continue at ``step`` in section ``index``, ``position`` samples in, without a crossfade."""
        if not 0 <= index < len(self.sections):
            raise ValueError(f"section index {index} out of range 0..{len(self.sections) - 1}")
        self.step = max(0, step)
        self._enter(index, fade=False)
        self.position = max(0, min(position, self.length - 1))
        self.hold = hold

    def blocks_to_end(self, frames: int) -> int | None:
        """Blocks of ``frames`` until the section ends by itself: it ends after the ``k``-th block from
        now, so the next one starts ``k`` blocks from now (None: held, or the end of the programme)."""
        if self.hold or (not self.loop and self.step + 1 >= len(self.sections)):
            return None
        to_length = -(-(self.length - self.position) // frames)
        to_fade = -(-(self._fade_len - self._fade_pos) // frames) if self.fading else 0
        return max(1, to_length, to_fade)

    def catch_up(self, frames: int) -> None:
        """Move ``frames`` on without audio and without ending the section (a node catching up)."""
        if frames <= 0:
            return
        self.position += frames
        if self.fading:
            self._fade_pos = min(self._fade_len, self._fade_pos + frames)

    # ------------------------------------------------------------------ audio
    def _equal_power(self, frames: int, length: int) -> tuple[np.ndarray, np.ndarray]:
        """Fade-in and fade-out gains (sin, cos) for the next ``frames`` of a fade ``length`` samples long."""
        p = np.minimum((self._fade_pos + np.arange(1, frames + 1)) / length, 1.0)
        return np.sin(0.5 * np.pi * p).astype(np.float32), np.cos(0.5 * np.pi * p).astype(np.float32)

    def envelopes(self, frames: int, voices: list[str]) -> dict[str, np.ndarray | float]:
        """Each audible voice's section level over the next ``frames`` samples; advances time."""
        current = self.current.voices
        out: dict[str, np.ndarray | float] = {}
        if self.fading:
            fade_in, fade_out = self._equal_power(frames, self._fade_len)
            if self.morph_pairs:
                # Morphing pairs: the audio hands over quickly; the incoming voice's latents do the rest.
                quick_in, quick_out = self._equal_power(frames, max(1, self.morph_handover))
                for incoming, outgoing in self.morph_pairs.items():
                    out[incoming], out[outgoing] = quick_in, quick_out
            for name in voices:
                if name in out:
                    continue
                if name in current and name in self._from:
                    out[name] = 1.0
                elif name in current:
                    out[name] = fade_in
                elif name in self._from:
                    out[name] = fade_out
            self._fade_pos += frames
        else:
            for name in voices:
                if name in current:
                    out[name] = 1.0
        self.position += frames
        if self.position >= self.length and not self.hold and not self.fading and not self.follows:
            self.next()
        return out
