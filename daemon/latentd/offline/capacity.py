"""The capacity verdict: will this machine keep up with the piece, and by what margin?

Each model of the piece is timed with its voices and its call shape (as the engine decodes it), the
engine's own work (sources, resampling, mixing, limiter) is timed over a short run, and the two make the
share of the real-time budget the piece needs. Models decode in parallel when ``audio.decode_threads``
allows it, so the decoding needs the larger of its largest model and its models' sum spread over the
threads; models that draw random numbers inside decode count as one, decoding one after another (the
random lane, see ``engine/parallel.py``), unless ``audio.parallel_random``. Decoded in the engine's
thread, the engine's own work adds to that; decoded beside it, the slower of the two sets the pace.
Below ``MARGIN`` the verdict is that the piece will not keep up, with what to change.
``latentd check --load`` prints it; ``latentd render`` of the same piece runs at about the predicted
speed (× real time = 1 / share).
"""

from __future__ import annotations

import math
import os
import tempfile
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from latentd.engine.callshape import CallShape, time_shapes
from latentd.engine.decode import ModelGroup
from latentd.engine.engine import Engine
from latentd.engine.parallel import draws_random
from latentd.offline.loop import render_to_file

MARGIN = 1.3  # the real-time margin a piece needs to play without dropouts (other work, bursts)
RUN_S = 3.0  # audio the engine runs for to time its models and its own work
MIN_CALLS = 6  # and at least this many decode calls of every model
MIN_WALL_S = 1.0  # and for at least this long (a fast piece runs again, longer, up to MAX_STRETCH times)
MAX_STRETCH = 40


@dataclass(frozen=True)
class ModelLoad:
    """One model's decode cost: its shape, seconds per call, and the share of real time it needs."""

    name: str
    file: str
    shape: CallShape
    seconds_per_call: float
    audio_seconds_per_call: float
    fewer_voices: float | None = None  # its share with one voice fewer (None: one voice only)
    more_frames: dict[int, float] = field(default_factory=dict)  # frames per call → share

    @property
    def share(self) -> float:
        """Wall seconds of decoding per second of audio."""
        return self.seconds_per_call / self.audio_seconds_per_call


@dataclass(frozen=True)
class Verdict:
    """The piece's capacity on this machine."""

    models: tuple[ModelLoad, ...]
    engine_share: float
    decode_threads: int
    torch_threads: int
    cores: int
    lane: frozenset[str] = frozenset()  # models decoding one after another (they draw random numbers)

    def _spread(self, shares: dict[str, float], threads: int, lane: frozenset[str]) -> float:
        """``spread`` of the shares, the lane's models counted as one."""
        alone = [share for name, share in shares.items() if name not in lane]
        in_lane = [share for name, share in shares.items() if name in lane]
        return spread(alone + ([sum(in_lane)] if in_lane else []), threads, self.cores)

    @property
    def share(self) -> float:
        """The piece's share of the real-time budget (1.0: exactly real time)."""
        return self._total({m.name: m.share for m in self.models}, self.decode_threads, self.lane)

    def _total(self, shares: dict[str, float], threads: int, lane: frozenset[str]) -> float:
        """The piece's share with the models' ``shares`` decoded ``threads`` at a time.

        In the engine's thread (1) the engine's own work adds to the decoding. Beside it (more threads,
        more than one core), each model's next call decodes while the engine mixes the last: the slower
        of the two sets the pace, and all of it together cannot run faster than the cores allow.
        """
        decode = self._spread(shares, threads, lane)
        if threads == 1 or self.cores == 1:
            return decode + self.engine_share
        return max(decode, self.engine_share, (sum(shares.values()) + self.engine_share) / self.cores)

    @property
    def margin(self) -> float:
        """How many times faster than real time the piece runs here (the predicted render speed)."""
        return 1.0 / self.share if self.share > 0 else math.inf

    @property
    def keeps_up(self) -> bool:
        """Whether the margin reaches ``MARGIN``."""
        return self.margin >= MARGIN

    def advice(self) -> list[str]:
        """What would bring the piece to the margin: frames per call, voices, threads."""
        lines: list[str] = []
        need = 1.0 / MARGIN
        for m in self.models:
            for frames, share in sorted(m.more_frames.items()):
                if share < m.share * 0.95:
                    total = self._with(m.name, share)
                    ok = "reaches" if total <= need else "does not reach"
                    latency = math.ceil(1000 * m.audio_seconds_per_call / m.shape.frames * frames)
                    lines.append(
                        f"model {m.name}: {frames} frames per call (frames_per_call, or decode_latency_ms "
                        f">= {latency}) needs {_pct(share)}; the piece {_pct(total)}, "
                        f"margin {1 / total:.2f}× ({ok} {MARGIN}×)"
                    )
                    if total <= need:
                        break  # the fewest frames that reach the margin (more add latency)
            if m.fewer_voices is not None and m.fewer_voices < m.share * 0.95:
                total = self._with(m.name, m.fewer_voices)
                lines.append(
                    f"model {m.name}: one voice fewer ({m.shape.rows - 1}) needs {_pct(m.fewer_voices)}; "
                    f"the piece {_pct(total)}, margin {1 / total:.2f}×"
                )
        usable = min(max(2, len(self.models)), self.cores)  # one model too: decoded beside the mixing
        shares = {m.name: m.share for m in self.models}
        total = self._total(shares, usable, self.lane)
        if self.decode_threads < usable and total < self.share:
            lines.append(
                f"decode_threads = {usable} (models decoded beside the mixing and each other, on "
                f"{self.cores} cores): the piece {_pct(total)}, margin {1 / total:.2f}×"
            )
        if len(self.lane) > 1 and usable > 1:
            total = self._total(shares, max(usable, self.decode_threads), frozenset())
            lines.append(
                f"parallel_random = true (models {', '.join(sorted(self.lane))} draw random numbers and "
                f"decode one after another; in parallel their noise no longer repeats from the seed): the "
                f"piece {_pct(total)}, margin {1 / total:.2f}×"
            )
        biggest = max(self.models, key=lambda m: m.share, default=None)
        if biggest is not None and biggest.share > need and self.cores > self.torch_threads:
            lines.append(
                f"model {biggest.name} alone needs {_pct(biggest.share)}: torch_threads = "
                f"{self.torch_threads + 1} splits each of its calls over more cores (check again to see)"
            )
        return lines

    def _with(self, name: str, share: float) -> float:
        shares = {m.name: share if m.name == name else m.share for m in self.models}
        return self._total(shares, self.decode_threads, self.lane)

    def lines(self) -> list[str]:
        """The verdict as printed by ``latentd check --load``."""
        out = [
            f"capacity on this machine ({self.cores} cores, torch_threads {self.torch_threads}, "
            f"decode_threads {self.decode_threads}); share of the real-time budget:"
        ]
        for m in self.models:
            out.append(
                f"  model {m.name} ({m.file}): {m.shape}: {1000 * m.seconds_per_call:.1f} ms per call of "
                f"{1000 * m.audio_seconds_per_call:.1f} ms audio: {_pct(m.share)}"
            )
        out.append(f"  engine (sources, resampling, mixing): {_pct(self.engine_share)}")
        verdict = (
            f"keeps up (needs {MARGIN}×)"
            if self.keeps_up
            else f"WILL NOT KEEP UP: the margin is below {MARGIN}×"
        )
        out.append(
            f"piece: {_pct(self.share)} of real time, margin {self.margin:.2f}× "
            f"(predicted render speed {self.margin:.1f}× real time): {verdict}"
        )
        if not self.keeps_up:
            advice = self.advice()
            out.append("to change:" if advice else "to change: a faster machine, or fewer models")
            out += [f"  {line}" for line in advice]
        return out


def _pct(share: float) -> str:
    return f"{100 * share:.0f} %"


def spread(shares: list[float], threads: int, cores: int) -> float:
    """Wall share of models decoded ``threads`` at a time on ``cores``: their sum spread over the usable
    threads, never less than the largest alone."""
    if not shares:
        return 0.0
    usable = max(1, min(threads, cores, len(shares)))
    return max(max(shares), sum(shares) / usable)


def _model_load(group: ModelGroup, seconds_per_call: float, detail: bool) -> ModelLoad:
    """A model's load from its mean call in the engine; the advice's alternatives scaled from it by the
    ratio of isolated timings (the fastest of a few calls each)."""
    model = group.model
    info = group.info
    shape = CallShape(group.n_rows, group.batch, group.frames_per_call)
    audio_s = shape.frames * info.ratio / info.sr
    fewer: float | None = None
    more: dict[int, float] = {}
    if detail:
        alternatives: list[tuple[int, int]] = [(shape.batch, shape.frames)]
        if shape.rows > 1:
            alternatives.append((max(shape.rows - 1, shape.batch - 1), shape.frames))
        alternatives += [(shape.batch, shape.frames * k) for k in (2, 4, 8) if shape.frames * k <= 64]
        times = time_shapes(model, alternatives, calls=3)
        scale = seconds_per_call / times[0] if times[0] > 0 else 1.0
        for (_batch, frames), t in zip(alternatives[1:], times[1:], strict=True):
            share = scale * t / (audio_s * frames / shape.frames)
            if frames == shape.frames:
                fewer = share
            else:
                more[frames] = share
    return ModelLoad(group.name, info.path.name, shape, seconds_per_call, audio_s, fewer, more)


@dataclass
class EngineRun:
    """What a timed run of the engine measured: wall time, audio, and each group's decode calls."""

    wall_s: float
    audio_s: float
    decode_s: dict[str, float]
    calls: dict[str, int]

    @property
    def engine_share(self) -> float:
        """The engine's own work per second of audio, decode excluded."""
        return max(0.0, self.wall_s - sum(self.decode_s.values())) / self.audio_s


def run_engine(engine: Engine, seconds: float = RUN_S, min_calls: int = MIN_CALLS) -> EngineRun:
    """Render ``engine`` for at least ``seconds`` of audio and ``min_calls`` decode calls of every model
    into a temporary file, as ``latentd render`` does, timing each model's calls (decoded one at a time,
    so the times do not overlap); a piece that took less than ``MIN_WALL_S`` is run and timed again,
    longer."""
    decode_s = {g.name: 0.0 for g in engine.groups}
    calls = {g.name: 0 for g in engine.groups}

    def timed(name: str, run: Callable[[np.ndarray], np.ndarray]) -> Callable[[np.ndarray], np.ndarray]:
        def wrapper(z: np.ndarray) -> np.ndarray:
            start = time.perf_counter()
            try:
                return run(z)
            finally:
                decode_s[name] += time.perf_counter() - start
                calls[name] += 1

        return wrapper

    groups = list(engine.groups)
    longest = max((g.frames_per_call * g.info.ratio / g.info.sr for g in groups), default=0.0)
    blocks = math.ceil(max(seconds, min_calls * longest) * engine.samplerate / engine.blocksize)
    for g in groups:
        g.run = timed(g.name, g.run)  # type: ignore[method-assign,assignment]
    threads = engine.decoder.threads
    engine.decoder.threads = 1
    try:
        with tempfile.TemporaryDirectory(prefix="latentd-load-") as tmp:
            wall = render_to_file(
                engine, Path(tmp) / "load.wav", stop_block=engine.counters.blocks + blocks
            ).wall_s
            if wall < MIN_WALL_S:
                # A piece that runs many times faster than real time: run again, longer, and time that
                # (a run of a few hundredths of a second says more about the machine's moods than the piece).
                blocks = min(math.ceil(blocks * MIN_WALL_S / max(wall, 1e-3)), blocks * MAX_STRETCH)
                for name in decode_s:
                    decode_s[name], calls[name] = 0.0, 0
                stop = engine.counters.blocks + blocks
                wall = render_to_file(engine, Path(tmp) / "load2.wav", stop_block=stop).wall_s
    finally:
        engine.decoder.threads = threads
        for g in groups:
            del g.run  # the class's method again
    return EngineRun(wall, blocks * engine.blocksize / engine.samplerate, decode_s, calls)


def measure(engine: Engine, *, detail: bool = True) -> Verdict:
    """Run the engine for a few seconds of audio, timing each model (with its voices and call shape) and
    the engine's own work, and make the verdict.

    Args:
        engine: an engine of the piece, not playing elsewhere (it is run here).
        detail: also time one voice fewer and more frames per call, for the advice.
    """
    import torch

    run = run_engine(engine)
    models = tuple(
        _model_load(g, run.decode_s[g.name] / max(1, run.calls[g.name]), detail) for g in engine.groups
    )
    return Verdict(
        models=models,
        engine_share=run.engine_share,
        decode_threads=engine.decoder.threads,
        torch_threads=torch.get_num_threads(),
        cores=os.cpu_count() or 1,
        lane=frozenset() if engine.decoder.parallel_random else _drawing(engine),
    )


def _drawing(engine: Engine) -> frozenset[str]:
    """The models of ``engine`` that draw random numbers inside decode (after its run: this resets them)."""
    if engine.decoder.threads > 1:  # sorted when the engine was built
        return frozenset(g.name for g in engine.groups if g not in engine.decoder.deterministic)
    return frozenset(g.name for g in engine.groups if draws_random(g.model))
