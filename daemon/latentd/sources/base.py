"""The source contract and the behaviour every source shares (scale, offset, smoothing, parameters)."""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any, ClassVar

import numpy as np

from latentd.sources.smoothing import OnePole
from latentd.sources.specs import LATENT_LIMIT, SpecBase


@dataclass(frozen=True)
class Param:
    """A parameter settable at run time through ``Source.set_param``."""

    low: float
    high: float
    get: Callable[[], float]
    set: Callable[[float], None]


def per_dim(value: float | Sequence[float], field: str, latent_size: int) -> np.ndarray:
    """Expand a scalar or a per-dimension list to a float64 array of ``latent_size`` values.

    Raises:
        ValueError: the list does not hold exactly ``latent_size`` values.
    """
    if isinstance(value, int | float):
        return np.full(latent_size, float(value))
    if len(value) != latent_size:
        raise ValueError(
            f"`{field}`: {len(value)} values given, but latent_size is {latent_size}; "
            f"give one value for every dimension or a list of {latent_size}"
        )
    return np.asarray(value, dtype=np.float64)


def summary(values: np.ndarray) -> float:
    """One number for a per-dimension array: the common value, or the mean when dims differ."""
    return float(values[0]) if np.all(values == values[0]) else float(values.mean())


class Source(ABC):
    """A seeded generator of latent frames.

    Subclasses produce the raw shape in ``_generate``; this base scales it, adds the offset and smooths
    it. Frames do not depend on how they are split into ``step`` calls, and ``reseed(s)`` makes a source
    produce what a fresh source built with seed ``s`` would. No I/O happens in ``step``.

    Attributes:
        latent_size: number of latent dimensions of every frame.
        latent_rate_hz: latent frames per second of the model this source feeds.
    """

    # Attributes a checkpoint leaves out: bound callables, threads, and data that never changes after
    # construction (a subclass adds its own).
    checkpoint_skip: ClassVar[frozenset[str]] = frozenset({"_params"})
    # Why this kind of source cannot be restored exactly from a checkpoint (None: it can).
    checkpoint_inexact: ClassVar[str | None] = None

    def __init__(self, spec: SpecBase, *, latent_size: int, latent_rate_hz: float, seed: int) -> None:
        self.latent_size = latent_size
        self.latent_rate_hz = latent_rate_hz
        self.seed = seed
        self._scale = spec.scale
        self._offset = per_dim(spec.offset, "offset", latent_size)
        self._smoother = OnePole(latent_size, spec.smooth_s, latent_rate_hz)
        self._params: dict[str, Param] = {
            "scale": Param(-LATENT_LIMIT, LATENT_LIMIT, lambda: self._scale, self._set_scale),
            "smooth_s": Param(0.0, 60.0, lambda: self._smoother.smooth_s, self._set_smooth_s),
        }

    def step(self, n_frames: int) -> np.ndarray:
        """The next ``n_frames`` latent frames, float32 of shape (latent_size, n_frames)."""
        if n_frames < 0:
            raise ValueError(f"n_frames must be >= 0, got {n_frames}")
        raw = self._generate(n_frames)
        shaped = raw * self._scale + self._offset[:, None]
        return self._smoother.process(shaped).astype(np.float32)

    def reseed(self, seed: int) -> None:
        """Restart from ``seed``: from here on, the frames of a fresh source with that seed."""
        self.seed = seed
        self._smoother.reset()
        self._restart(seed)

    def checkpoint_state(self) -> dict[str, Any]:
        """Everything that changes as the source plays, by attribute (not copied: the caller copies it).

        Together with the source's construction from the same spec and seed, this is enough for
        :meth:`restore_checkpoint` to make the source produce the same frames from here on.
        """
        return {k: v for k, v in vars(self).items() if k not in self.checkpoint_skip}

    def restore_checkpoint(self, state: dict[str, Any]) -> None:
        """Take back what :meth:`checkpoint_state` returned (a copy of it: it is adopted, not copied)."""
        vars(self).update(state)

    def shift_clock(self, n_frames: int) -> bool:
        """Move the source's clock ``n_frames`` frames on (back, when negative), for a source whose frames
        are a function of its clock (see :class:`Clocked`): its next frame is the one ``n_frames`` later.

        Returns:
            Whether the source has a clock; others ignore it (their frames follow no time).
        """
        return False

    def trigger(self) -> None:  # noqa: B027 - a deliberate default: most sources ignore triggers
        """React to a trigger (restart, next step, next seed...); a no-op where meaningless."""

    def set_param(self, key: str, value: float) -> None:
        """Set a run-time parameter.

        Raises:
            ValueError: unknown key or value out of range; the message names the allowed keys and range.
        """
        param = self._params.get(key)
        if param is None:
            allowed = ", ".join(sorted(self._params))
            raise ValueError(f"unknown parameter {key!r} for {self.kind} source; allowed: {allowed}")
        value = float(value)
        if not param.low <= value <= param.high:
            raise ValueError(
                f"parameter {key!r} of {self.kind} source must be in {param.low:g}..{param.high:g}, "
                f"got {value:g}"
            )
        param.set(value)

    def params(self) -> dict[str, float]:
        """Current values of the run-time parameters."""
        return {key: float(param.get()) for key, param in sorted(self._params.items())}

    def param_range(self, key: str) -> tuple[float, float]:
        """The allowed ``(low, high)`` of a run-time parameter (KeyError when there is no such key)."""
        param = self._params[key]
        return param.low, param.high

    @property
    def kind(self) -> str:
        """The spec kind of this source (for messages)."""
        return type(self).__name__.removesuffix("Source").lower()

    def _add_param(
        self, key: str, low: float, high: float, get: Callable[[], float], set_: Callable[[float], None]
    ) -> None:
        self._params[key] = Param(low, high, get, set_)

    def _set_scale(self, value: float) -> None:
        self._scale = value

    def _set_smooth_s(self, value: float) -> None:
        self._smoother.smooth_s = value

    @abstractmethod
    def _generate(self, n_frames: int) -> np.ndarray:
        """The next raw frames, float64 of shape (latent_size, n_frames)."""

    @abstractmethod
    def _restart(self, seed: int) -> None:
        """Return to the start state for ``seed``."""


class Clocked(Source, ABC):
    """A source whose frames are a function of its frame count ``_t`` (anchored at its last change), so
    its clock can be moved: several machines set a worker's clocks to count the master's blocks."""

    _t: int

    def shift_clock(self, n_frames: int) -> bool:
        """Move ``_t``: the frames that follow are those ``n_frames`` later."""
        self._t += n_frames
        return True
