"""File source: latent frames played from a ``.npy`` or latent WAV file, looped or once, at a speed."""

from __future__ import annotations

from pathlib import Path

import numpy as np

from latentd.sources.base import Clocked
from latentd.sources.specs import FileSpec
from latentd.unravel.latentio import latent_rate_of, read_latents


def resolve(name: str, base_dir: Path | None) -> Path:
    """A spec path: absolute as given, relative ones inside ``base_dir`` (the piece folder) when known."""
    path = Path(name).expanduser()
    if not path.is_absolute() and base_dir is not None:
        path = Path(base_dir) / path
    return path


class FileSource(Clocked):
    """Plays the frames of a latent file (read once, when built).

    The read position advances ``speed`` file frames per latent frame; fractional positions interpolate
    linearly between neighbouring frames (with ``loop``, the last frame leads into the first). Without
    ``loop`` the last frame is held once reached. A trigger, or ``reseed``, returns to the start position
    (the file is the same for every seed). Run-time parameter: ``speed``. ``start_s`` counts seconds at
    the rate a latent WAV records (:attr:`file_rate_hz`), else at the model's latent rate.

    Raises:
        ValueError: the file is missing or unreadable, its dims differ from ``latent_size``, or the start
            lies beyond its end.
    """

    checkpoint_skip = Clocked.checkpoint_skip | {"_frames"}  # read once when built, never changed

    def __init__(
        self, spec: FileSpec, *, latent_size: int, latent_rate_hz: float, seed: int, base_dir: Path | None
    ) -> None:
        super().__init__(spec, latent_size=latent_size, latent_rate_hz=latent_rate_hz, seed=seed)
        self.path = resolve(spec.path, base_dir)
        frames = read_latents(self.path)
        n_frames, dims = frames.shape
        if dims != latent_size:
            raise ValueError(
                f"latent file {self.path}: {dims} latent dims (shape (1, {dims}, {n_frames})), but the "
                f"model's latent_size is {latent_size}; use a file made for this model"
            )
        self._frames = np.ascontiguousarray(frames.T, dtype=np.float64)  # (latent_size, N)
        self._loop = spec.loop
        self._speed = spec.speed
        # A latent WAV of latentd's records its exact rate: seconds into the file are its own seconds.
        self.file_rate_hz = latent_rate_of(self.path) or latent_rate_hz
        rate = self.file_rate_hz
        if spec.start_frame is not None:
            self._start = float(spec.start_frame)
        elif spec.start_s is not None:
            self._start = spec.start_s * rate
        else:
            self._start = 0.0
        if self._start >= n_frames:
            raise ValueError(
                f"latent file {self.path}: start at frame {self._start:g} "
                f"({self._start / rate:.3f} s) is beyond its end: it holds {n_frames} frames "
                f"({n_frames / rate:.3f} s at {rate:g} frames/s)"
            )
        self._add_param("speed", 0.01, 16.0, lambda: self._speed, self._set_speed)
        self._restart(seed)

    @property
    def n_frames(self) -> int:
        """Frames in the file."""
        return int(self._frames.shape[1])

    @property
    def duration_s(self) -> float:
        """Length of the file at speed 1, in seconds at the model's latent rate."""
        return self.n_frames / self.latent_rate_hz

    def trigger(self) -> None:
        """Return to the start position."""
        self._anchor_pos = self._start
        self._anchor_t = self._t

    def _restart(self, seed: int) -> None:
        self._t = 0
        self._anchor_t = 0
        self._anchor_pos = self._start

    def _set_speed(self, value: float) -> None:
        # Keep the position reached so far; only the speed from here on changes.
        pos = self._anchor_pos + self._speed * (self._t - self._anchor_t)
        self._anchor_pos = pos % self.n_frames if self._loop else min(pos, self.n_frames - 1.0)
        self._anchor_t = self._t
        self._speed = value

    def _generate(self, n_frames: int) -> np.ndarray:
        # Positions come from whole frame counts since the anchor, so block sizes cannot change them.
        since_anchor = np.arange(
            self._t - self._anchor_t, self._t - self._anchor_t + n_frames, dtype=np.float64
        )
        self._t += n_frames
        pos = self._anchor_pos + self._speed * since_anchor
        last = self.n_frames - 1
        if self._loop:
            pos = np.mod(pos, self.n_frames)
            i0 = np.floor(pos).astype(np.int64)
            i1 = (i0 + 1) % self.n_frames
        else:
            pos = np.minimum(pos, float(last))
            i0 = np.floor(pos).astype(np.int64)
            i1 = np.minimum(i0 + 1, last)
        frac = pos - i0
        a = self._frames[:, i0]
        return a + (self._frames[:, i1] - a) * frac[None, :]
