"""A voice: one source feeding one batch row of a model, with gain, routing and operator overrides."""

from __future__ import annotations

import math
import zlib
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from latentd.engine.command_base import SEED_MODULUS
from latentd.engine.mix import Ramp
from latentd.installation.layout import Layout
from latentd.sources.base import Source

GLIDE_S = 0.05  # every operator change glides over this time instead of stepping
GAIN_STEP_S = 0.02  # moving voices: VBAP gains are exact every 20 ms, linear in between
SWAP_CROSSFADE_S = 0.5  # a model swap fades the old voice out and the new one in over this time


def voice_seed(piece_seed: int, name: str) -> int:
    """The seed of a voice: stable across runs and machines, different for each voice name.

    0..2^24 - 1 (:data:`~latentd.engine.command_base.SEED_MODULUS`), so it can be typed into a Pd patch.
    """
    return (piece_seed + zlib.crc32(name.encode("utf-8"))) % SEED_MODULUS


@dataclass
class Routing:
    """How a voice reaches the speakers: a static matrix, or VBAP panning that may rotate.

    ``matrix`` has one row per model output channel and one column per speaker.
    """

    layout: Layout
    n_channels: int
    matrix: np.ndarray | None = None
    azimuth_deg: float = 0.0
    spread_deg: float = 0.0
    rotate_deg_s: float = 0.0
    waypoints: list[tuple[float, float]] | None = None  # (time_s, azimuth_deg), looping
    _t: float = field(default=0.0, repr=False)
    _last: np.ndarray | None = field(default=None, repr=False)
    # Moving voices: VBAP gains are computed every GAIN_STEP_S and interpolated linearly per block in
    # between (computing them for every block cost a fifth of the engine's time).
    _from: np.ndarray | None = field(default=None, repr=False)
    _to: np.ndarray | None = field(default=None, repr=False)
    _pos: int = field(default=0, repr=False)
    _span: int = field(default=0, repr=False)
    # The gains of the last direction asked for: a voice standing still asks for the same every block.
    _gains_key: tuple[float, float] | None = field(default=None, repr=False)
    _gains: np.ndarray | None = field(default=None, repr=False)
    # The segment's (from, to, frames, span, to - from, change per block), kept while the segment lasts.
    _segment: tuple[Any, ...] | None = field(default=None, repr=False)

    def _along_path(self) -> float:
        assert self.waypoints is not None
        times = [t for t, _ in self.waypoints]
        t = self._t % times[-1] if times[-1] > 0 else 0.0
        i = max(0, int(np.searchsorted(times, t, side="right")) - 1)
        if i >= len(times) - 1:
            return self.waypoints[-1][1]
        (t0, a0), (t1, a1) = self.waypoints[i], self.waypoints[i + 1]
        shortest = (a1 - a0 + 180.0) % 360.0 - 180.0
        return a0 + shortest * (t - t0) / (t1 - t0)

    def gains(self) -> np.ndarray:
        """The current gain matrix [n_channels, n_speakers]."""
        if self.matrix is not None:
            return self.matrix
        key = (self.azimuth_deg, self.spread_deg)
        if key != self._gains_key or self._gains is None:
            self._gains = self._pan_gains()
            self._gains_key = key
        return self._gains

    def _pan_gains(self) -> np.ndarray:
        if self.n_channels == 1:
            return self.layout.pan_gains(self.azimuth_deg, self.spread_deg)[None, :].astype(np.float32)
        # Several channels: spread them evenly across the spread arc around the azimuth.
        offsets = np.linspace(self.spread_deg / 2, -self.spread_deg / 2, self.n_channels)
        rows = [self.layout.pan_gains(self.azimuth_deg + o, 0.0) for o in offsets]
        return np.asarray(rows, dtype=np.float32)

    def _advance(self, frames: int, samplerate: int) -> None:
        if self.waypoints:
            self._t += frames / samplerate
            self.azimuth_deg = self._along_path()
        elif self.rotate_deg_s:
            self.azimuth_deg = (self.azimuth_deg + self.rotate_deg_s * frames / samplerate) % 360.0

    def block(self, frames: int, samplerate: int) -> tuple[np.ndarray, np.ndarray | None]:
        """Gains for the next block: (start gains, change over the block or None when steady)."""
        moving = self.matrix is None and bool(self.waypoints or self.rotate_deg_s)
        if not moving:
            self._from = None
            now = self.gains()
            start = now if self._last is None else self._last
            self._last = now
            if start is now or np.array_equal(start, now):
                return now, None
            return start, now - start
        if self._from is None or self._pos >= self._span:
            # Next segment: from where the gains are now to the gains one step ahead.
            self._from = self._last if self._last is not None else self.gains()
            self._span = max(frames, round(GAIN_STEP_S * samplerate / frames) * frames)
            self._advance(self._span, samplerate)
            self._to = self.gains()
            self._pos = 0
        assert self._to is not None
        seg = self._segment
        if (
            seg is None
            or seg[0] is not self._from
            or seg[1] is not self._to
            or seg[2] != frames
            or seg[3] != self._span
        ):
            diff = self._to - self._from
            step = diff * (frames / self._span)
            seg = self._segment = (self._from, self._to, frames, self._span, diff, step)
        diff, delta = seg[4], seg[5]
        start = self._from + diff * (self._pos / self._span)
        self._pos += frames
        self._last = start + delta
        return start, delta


class Voice:
    """Latent frames for one batch row, plus the voice's gain, routing and overrides.

    Runs in the engine worker only.
    """

    def __init__(
        self,
        name: str,
        row: int,
        source: Source,
        *,
        latent_size: int,
        latent_rate_hz: float,
        samplerate: int,
        conditioning: dict[str, float],
        conditioning_names: tuple[str, ...],
        conditioning_sources: dict[str, Source] | None = None,
        conditioning_ranges: tuple[tuple[int, int] | None, ...] = (),
        gain: float,
        mute: bool,
        bias: np.ndarray,
        scale: np.ndarray,
        clamp: tuple[float, float] | None,
        routing: Routing,
        seed: int,
    ) -> None:
        self.name = name
        self.row = row
        self.source = source
        self.latent_size = latent_size
        self.latent_rate_hz = latent_rate_hz
        self.seed = seed
        self.conditioning_names = conditioning_names
        self.routing = routing
        glide_samples = int(GLIDE_S * samplerate)
        glide_frames = max(1, round(GLIDE_S * latent_rate_hz))
        self.defaults: dict[str, Any] = {
            "gain": gain,
            "mute": mute,
            "bias": bias.astype(np.float64),
            "scale": scale.astype(np.float64),
            "clamp": clamp,
            "conditioning": dict(conditioning),
            "azimuth_deg": routing.azimuth_deg,
            "rotate_deg_s": routing.rotate_deg_s,
            "waypoints": routing.waypoints,
        }
        self.gain = Ramp(gain, glide_samples)
        self.mute = Ramp(0.0 if mute else 1.0, glide_samples)
        self.bias = Ramp(bias, glide_frames)
        self.scale = Ramp(scale, glide_frames)
        self.cond = Ramp(np.array([conditioning.get(n, 0.0) for n in conditioning_names]), glide_frames)
        # Conditioning inputs driven by a source (its first dimension), until an operator sets a constant.
        self.cond_sources = {conditioning_names.index(n): s for n, s in (conditioning_sources or {}).items()}
        self.cond_overridden: set[int] = set()
        # Integer ranges (upper bound exclusive) of conditioning inputs that declare them: values are
        # clamped into them and truncated as the model reads them, so a wandering source or an operator
        # value never reaches the model out of range (vschaos2 fails outside it).
        n_cond = len(conditioning_names)
        ranges = tuple(conditioning_ranges) + (None,) * (n_cond - len(conditioning_ranges))
        self.cond_low = np.array([r[0] if r else -np.inf for r in ranges[:n_cond]], dtype=np.float64)
        self.cond_high = np.array([r[1] - 1 if r else np.inf for r in ranges[:n_cond]], dtype=np.float64)
        self._cond_ranged = np.array([r is not None for r in ranges[:n_cond]], dtype=bool)
        self._cond_guard = bool(self._cond_ranged.any())
        self.cond_clamped = 0  # frames whose conditioning had to be clamped into range
        self.clamp_low = np.full(latent_size, -np.inf)
        self.clamp_high = np.full(latent_size, np.inf)
        if clamp is not None:
            self.clamp_low[:] = clamp[0]
            self.clamp_high[:] = clamp[1]
        self.frozen = False
        self._held: np.ndarray | None = None
        self.last_z: np.ndarray | None = None
        self.faults = 0
        self.fault_until = -1  # block index until which a faulted voice stays silent
        # Model swap: the phase (0..1) of an equal-power crossfade; out of it, the voice plays at full level.
        self._crossfade: Ramp | None = None
        self.fading_out = False
        self.retired = False  # replaced by a voice on another model: never mixed again
        # Several machines: latent frames the source's clock was moved to count the master's blocks.
        self.clock_shift_frames = 0

    def align_clock(self, frames: int) -> bool:
        """Move the source's clock to ``frames`` latent frames from its own count (a worker of several
        machines: so it counts the master's blocks); returns whether it moved."""
        delta = frames - self.clock_shift_frames
        if delta == 0 or not self.source.shift_clock(delta):
            return False
        self.clock_shift_frames = frames
        return True

    def start_crossfade(self, samples: int, *, fading_out: bool) -> None:
        """Begin an equal-power crossfade over ``samples``: out (cos) for the old voice, in (sin) the new."""
        self._crossfade = Ramp(0.0, samples)
        self._crossfade.set(1.0)
        self.fading_out = fading_out

    @property
    def crossfading(self) -> bool:
        """True while a swap crossfade is under way for this voice."""
        return self._crossfade is not None

    def crossfade_gain(self, n: int) -> np.ndarray | None:
        """The next ``n`` crossfade gains, or None outside a crossfade (full level). Advances the fade.

        When a fading-out voice reaches the end of its fade it is marked ``retired``.
        """
        if self._crossfade is None:
            return None
        phase = self._crossfade.values(n) * (math.pi / 2)
        if not self._crossfade.moving:
            self._crossfade = None
            self.retired = self.fading_out
        return np.cos(phase) if self.fading_out else np.sin(phase)

    def hold(self) -> None:
        """Freeze on the last latent frame (zeros if none yet) so this voice never steps its source again.

        Used when a swap hands the source on to the voice that replaces this one.
        """
        self.frozen = True
        if self._held is None:
            self._held = np.zeros(self.latent_size, dtype=np.float64)

    def reset_overrides(self) -> None:
        """Drop every operator override and glide back to the piece's values."""
        d = self.defaults
        self.gain.set(d["gain"])
        self.mute.set(0.0 if d["mute"] else 1.0)
        self.bias.set(d["bias"])
        self.scale.set(d["scale"])
        self.cond.set(np.array([d["conditioning"].get(n, 0.0) for n in self.conditioning_names]))
        clamp = d["clamp"]
        self.clamp_low[:] = -np.inf if clamp is None else clamp[0]
        self.clamp_high[:] = np.inf if clamp is None else clamp[1]
        self.frozen = False
        self.routing.azimuth_deg = d["azimuth_deg"]
        self.routing.rotate_deg_s = d["rotate_deg_s"]
        self.routing.waypoints = d["waypoints"]
        self.cond_overridden.clear()

    def latents(self, n_frames: int) -> np.ndarray:
        """The next ``n_frames`` decode inputs [in_channels, n_frames]: latents, then conditioning."""
        if self.frozen and self._held is not None:
            raw = np.repeat(self._held[:, None], n_frames, axis=1)
        else:
            raw = self.source.step(n_frames)
            self._held = raw[:, -1].copy()
        z = raw * self.scale.values(n_frames) + self.bias.values(n_frames)
        np.clip(z, self.clamp_low[:, None], self.clamp_high[:, None], out=z)
        self.last_z = z.astype(np.float32)
        if not self.conditioning_names:
            return self.last_z
        cond = self.cond.values(n_frames).copy()  # rows driven by sources are written below
        for index, source in self.cond_sources.items():
            driven = source.step(n_frames)[0]
            if index not in self.cond_overridden:
                cond[index] = driven
        if self._cond_guard:
            self._guard_conditioning(cond)
        return np.concatenate([self.last_z, cond.astype(np.float32)], axis=0)

    def _guard_conditioning(self, cond: np.ndarray) -> None:
        """Clamp ranged inputs into their range and truncate them, in place; count the clamped frames."""
        low, high = self.cond_low[:, None], self.cond_high[:, None]
        ranged = self._cond_ranged
        np.copyto(cond, np.broadcast_to(low, cond.shape), where=np.isnan(cond) & ranged[:, None])
        outside = (cond < low) | (cond >= high + 1.0)
        if outside.any():
            self.cond_clamped += int(outside.any(axis=0).sum())
        np.clip(cond, low, high, out=cond)
        cond[ranged] = np.trunc(cond[ranged])
