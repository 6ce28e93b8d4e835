"""The shape of a model's decode calls, chosen by measurement when the model loads.

A decode call has a batch (the model's voices, plus padding rows when a larger batch decodes faster)
and a number of latent frames. Torch takes slow generic convolution paths for one row and few frames,
so on full-size RAVE exports a batch of 2 costs about half what a batch of 1 does: a lone voice is then
decoded beside a padding row of zeros. Frames per call are measured too when the venue sets a latency
budget (``audio.decode_latency_ms``); otherwise they stay at ``audio.frames_per_call``.

:func:`time_decode` is the one timing of a decode call: the capacity verdict and the benchmarks use it.
"""

from __future__ import annotations

import contextlib
import time
from dataclasses import dataclass

import numpy as np
import structlog
import torch

from latentd.engine.shape_cache import CachedShape, ShapeCache, key_digest, shape_key
from latentd.installation.models import LoadedModel, frames_per_call_for

log = structlog.get_logger("latentd.callshape")

PAD_GAIN = 0.8  # a padded batch is chosen only when it costs at most this share of the unpadded one
MORE_FRAMES_GAIN = 0.9  # more frames per call (more latency) only when they cost at most this share
FRAME_CANDIDATES = (1, 2, 4, 8, 16, 32, 64)
PAD_MIN_LOAD = 0.05  # below this share of real time the voices decode cheaply enough unpadded
TIMED_CALLS = 5
WARM_CALLS = 2


@dataclass(frozen=True)
class CallShape:
    """How one model's voices are decoded: ``batch`` rows (``rows`` voices, the rest padding) × ``frames``."""

    rows: int
    batch: int
    frames: int

    @property
    def padding(self) -> int:
        """Rows of zeros decoded beside the voices."""
        return self.batch - self.rows

    def __str__(self) -> str:
        pad = f" + {self.padding} padding" if self.padding else ""
        voices = f"{self.rows} voice{'s' if self.rows != 1 else ''}"
        return f"batch {self.batch} ({voices}{pad}) × {self.frames} frames"

    def to_json(self) -> list[int]:
        """``[batch, frames]`` (the rows follow from the piece)."""
        return [self.batch, self.frames]


@dataclass(frozen=True)
class ShapeTiming:
    """One measured shape: seconds per call and the share of real time it needs."""

    shape: CallShape
    seconds_per_call: float
    audio_seconds_per_call: float

    @property
    def load(self) -> float:
        """Wall seconds per second of audio (1.0 uses the whole real-time budget)."""
        return self.seconds_per_call / self.audio_seconds_per_call


def decode_input(model: LoadedModel, batch: int, frames: int) -> np.ndarray:
    """Zeros shaped for a decode call; a variational decoder gets every dim, so it draws no latent noise."""
    info = model.info
    channels = info.in_channels
    full = info.full_latent_size
    if full and not info.conditioning and full > channels:
        channels = full
    z = np.zeros((batch, channels, frames), dtype=np.float32)
    # Conditioning inputs get the lowest value of their range (zero may be outside it).
    for index, bounds in enumerate(info.conditioning_ranges):
        if bounds is not None:
            z[:, info.latent_size + index] = bounds[0]
    return z


def time_decode(
    model: LoadedModel, batch: int, frames: int, *, calls: int = TIMED_CALLS, warm: int = WARM_CALLS
) -> float:
    """Seconds one ``decode`` call of ``batch`` rows × ``frames`` frames takes (the fastest of ``calls``).

    The fastest call is the model's own cost: slower ones met other work on the machine. Torch's random
    generator is restored and the model's state reset afterwards.
    """
    return time_shapes(model, [(batch, frames)], calls=calls, warm=warm)[0]


def time_shapes(
    model: LoadedModel, shapes: list[tuple[int, int]], *, calls: int = TIMED_CALLS, warm: int = WARM_CALLS
) -> list[float]:
    """Seconds per call of each ``(batch, frames)`` in ``shapes``, the fastest of ``calls`` each.

    The shapes take turns call by call, so other work on the machine slows them alike and a comparison
    between them holds. Torch's random generator is restored and the model's state reset afterwards.
    """
    inputs = [decode_input(model, batch, frames) for batch, frames in shapes]
    best = [float("inf")] * len(shapes)
    rng = torch.get_rng_state()
    try:
        for z in inputs:
            for _ in range(warm):
                model.decode(z)
        for _ in range(max(1, calls)):
            for index, z in enumerate(inputs):
                start = time.perf_counter()
                model.decode(z)
                best[index] = min(best[index], time.perf_counter() - start)
    finally:
        torch.set_rng_state(rng)
        model.reset()
    return best


def frame_candidates(model: LoadedModel, frames_per_call: int, latency_ms: float | None) -> list[int]:
    """Frames per call worth measuring: ``frames_per_call`` alone without a budget, else every size whose
    audio fits ``latency_ms`` (each raised to the model's ``min_buffer_size``; at least the smallest)."""
    info = model.info
    if latency_ms is None:
        return [frames_per_call_for(info, frames_per_call)]
    fitting = sorted(
        {
            frames_per_call_for(info, f)
            for f in FRAME_CANDIDATES
            if f * info.ratio / info.sr * 1000.0 <= latency_ms
        }
    )
    return fitting or [frames_per_call_for(info, 1)]


def batch_candidates(rows: int, max_batch: int, pad: bool) -> list[int]:
    """Batches worth measuring: the voices alone, and one padding row when there are few voices."""
    batches = [rows]
    if pad and rows <= 3 and rows + 1 <= max_batch:
        batches.append(rows + 1)
    return batches


def choose_shape(
    model: LoadedModel,
    rows: int,
    frames_per_call: int,
    *,
    latency_ms: float | None = None,
    pad: bool = True,
    name: str = "",
) -> tuple[CallShape, list[ShapeTiming]]:
    """Measure the candidate shapes of ``model`` with ``rows`` voices and choose the cheapest per second of
    audio. Fewer frames (less latency) and no padding win unless the other is clearly cheaper
    (``MORE_FRAMES_GAIN``, ``PAD_GAIN``), so the choice does not flip on measuring noise.

    Returns:
        The chosen shape and every measurement (logged as ``model.call_shape``).
    """
    rows = max(1, rows)
    info = model.info
    frames_list = frame_candidates(model, frames_per_call, latency_ms)
    batches = batch_candidates(rows, model.max_batch, pad)
    shapes = [CallShape(rows, b, f) for f in frames_list for b in batches]
    seconds = time_shapes(model, [(s.batch, s.frames) for s in shapes])
    timings = [
        ShapeTiming(shape, t, shape.frames * info.ratio / info.sr)
        for shape, t in zip(shapes, seconds, strict=True)
    ]
    best_per_frames: list[ShapeTiming] = []
    for frames in frames_list:
        here = [t for t in timings if t.shape.frames == frames]
        chosen = here[0]
        for padded in here[1:]:
            # Padding pays only where the voices' own cost matters at all (tiny models never need it).
            if chosen.load >= PAD_MIN_LOAD and padded.load <= PAD_GAIN * chosen.load:
                chosen = padded
        best_per_frames.append(chosen)
    best = best_per_frames[0]
    for candidate in best_per_frames[1:]:
        if candidate.load <= MORE_FRAMES_GAIN * best.load:
            best = candidate
    log.info(
        "model.call_shape",
        model=name or model.path.name,
        shape=str(best.shape),
        source="measured",
        load_pct=round(100 * best.load, 1),
        measured=measured_figures(timings),
    )
    return best.shape, timings


def measured_figures(timings: list[ShapeTiming]) -> dict[str, str]:
    """Each measured shape as ``"<batch>x<frames>": "<ms> ms (<share of real time> %)"`` (for the log)."""
    return {
        f"{t.shape.batch}x{t.shape.frames}": f"{1000 * t.seconds_per_call:.1f} ms ({100 * t.load:.0f} %)"
        for t in timings
    }


def fixed_shape(model: LoadedModel, rows: int, frames_per_call: int) -> CallShape:
    """The shape without measuring: the voices alone × ``frames_per_call`` (raised to ``min_buffer_size``)."""
    return CallShape(max(1, rows), max(1, rows), frames_per_call_for(model.info, frames_per_call))


def shape_for(
    model: LoadedModel,
    name: str,
    rows: int,
    *,
    frames_per_call: int,
    latency_ms: float | None,
    pad: bool,
    measure: bool = True,
    recorded: tuple[int, int] | None = None,
    cache: ShapeCache | None = None,
) -> CallShape:
    """The call shape ``model`` plays with: ``recorded`` (a replayed session's) when given, else the one
    chosen before (in this process, or on this machine in ``cache``), else measured (``measure``) and
    stored, or else the unmeasured one (:func:`fixed_shape`).

    A ``cache`` with ``remeasure`` set measures again and replaces what it held.
    """
    rows = max(1, rows)
    if recorded is not None:
        batch, frames = recorded
        return CallShape(rows, max(rows, min(batch, model.max_batch)), frames)
    if not measure or (latency_ms is None and not pad):
        return fixed_shape(model, rows, frames_per_call)
    label = name or model.path.name
    if cache is None:
        key = shape_key(model, rows, frames_per_call, latency_ms, pad, samplerate=0, blocksize=0)
    else:
        key = cache.key(model, rows, frames_per_call, latency_ms, pad)
    if key is None:  # the file is gone (it loaded, so it was replaced): nothing to key a choice by
        shape, _ = choose_shape(model, rows, frames_per_call, latency_ms=latency_ms, pad=pad, name=name)
        return shape
    digest = key_digest(key)
    with cache.locked() if cache is not None else contextlib.nullcontext():
        stored = cache.lookup(key, rows, model.max_batch) if cache is not None else None
        if stored is not None:
            log.info(
                "model.call_shape",
                model=label,
                shape=str(CallShape(rows, stored.batch, stored.frames)),
                source="cache",
                load_pct=stored.load_pct,
                measured=dict(stored.measured),
                measured_at=stored.measured_at,
                cache=str(cache.path) if cache is not None else None,
            )
        else:
            remeasure = cache is not None and cache.remeasure
            stored = None if remeasure else _CHOSEN.get(digest)
            if stored is not None:  # chosen in this process, where the file was unwritable or elsewhere
                shape = CallShape(rows, stored.batch, stored.frames)
                log.info(
                    "model.call_shape", model=label, shape=str(shape), source="cache", measured="as before"
                )
            else:
                shape, timings = choose_shape(
                    model, rows, frames_per_call, latency_ms=latency_ms, pad=pad, name=name
                )
                chosen = next(t for t in timings if t.shape == shape)
                stored = CachedShape(
                    shape.batch, shape.frames, round(100 * chosen.load, 1), measured_figures(timings), ""
                )
            if cache is not None:
                cache.store(key, stored.batch, stored.frames, stored.load_pct, stored.measured)
    _CHOSEN[digest] = stored
    return CallShape(rows, stored.batch, stored.frames)


# Shapes chosen in this process, by key digest: a piece loaded again (a second engine, a restart of
# playback) decodes as before even where the cache file cannot be written. Bounded by the pieces loaded.
_CHOSEN: dict[str, CachedShape] = {}
