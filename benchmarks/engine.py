"""Engine benchmarks: how close the engine runs to the cost of the models themselves.

Figures are ratios measured in one run (medians over repeats), written to ``benchmarks/results/<name>.json``
and summarised as tables on stdout:

- overhead: full engine wall time per second of audio ÷ the same ``decode`` calls alone (goal ≤ 1.10);
- voices: most voices (one model; a mixed two-model section) sustained at ≥ 1.5× real time per thread count;
- batching: N voices decoded as one batch ÷ N single-voice calls (goal < 0.5 at N = 4);
- blocksize: real-time factor and latency against latent frames per decode call;
- memory: RSS after start and after minutes of the demo rendered offline, growth per hour;
- startup: seconds from ``latentd run`` to the first non-silent audio on a JACK port.

Models: the shared real RAVE v2_small export (``../shared/models``; its rows are skipped with a note when it
is absent) and a builder model sized like a full RAVE v2 decoder (see ``benchmarks.common.V2_HIDDEN``).
"""

from __future__ import annotations

import argparse
import itertools
import math
import os
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from benchmarks.common import (
    DEMO_CONFIG,
    RESULTS_DIR,
    BenchModel,
    Workdir,
    audio_seconds,
    ensure_demo_models,
    make_engine,
    max_voices,
    median_time,
    rave,
    rss_mb,
    run_blocks,
    second_model,
    table,
    v2_like,
    write_live_config,
    write_result,
)
from latentd.engine.engine import Engine

REALTIME_GOAL = (
    1.5  # a voice count "is sustained" when the engine runs at least this much faster than real time
)
SILENCE = 1e-4  # -80 dBFS: the first sample above this counts as audio in the start-up benchmark


@dataclass(frozen=True)
class Sizes:
    """How much each benchmark measures; ``quick`` keeps everything small (smoke test, CI-like runs)."""

    seconds: float = 4.0  # audio per timed repeat
    repeats: int = 5
    threads: tuple[int, ...] = (1, 2)
    blocksizes: tuple[int, ...] = (256, 1024)  # the overhead benchmark's engine blocks
    max_voices: int = 64
    batch_sizes: tuple[int, ...] = (1, 2, 4, 8)
    frames: tuple[int, ...] = (1, 2, 4, 8, 16)
    minutes: float = 10.0  # the memory benchmark: RSS after start and after this much demo audio
    startup_repeats: int = 3

    @classmethod
    def quick(cls) -> Sizes:
        return cls(
            seconds=0.5,
            repeats=1,
            threads=(1,),
            blocksizes=(256,),
            max_voices=2,
            batch_sizes=(1, 2),
            frames=(1, 8),
            minutes=0.05,
            startup_repeats=1,
        )


@dataclass
class Outcome:
    """One benchmark's figures: JSON data, a table for stdout, and notes (skipped rows, caveats)."""

    data: dict[str, Any]
    text: str
    notes: list[str]


def _models(notes: list[str]) -> list[BenchModel]:
    models = [v2_like()]
    real = rave()
    if real is None:
        notes.append("real RAVE export not found beside the project (../shared/models): its rows are skipped")
    else:
        models.append(real)
    return models


# ---------------------------------------------------------------------------------------------- overhead
def bench_overhead(work: Workdir, sizes: Sizes) -> Outcome:
    """Full engine per second of audio ÷ the very same ``LoadedModel.decode`` calls replayed alone."""
    notes: list[str] = []
    rows = []
    data = []
    voices = 2
    # The engine's per-block work (sources, routing, master) is fixed per block: at blocksize 1024 it is
    # spread over 4× the audio. The JACK period can stay smaller (the ring hands out parts of a block).
    for model, blocksize, threads in itertools.product(_models(notes), sizes.blocksizes, sizes.threads):
        engine = make_engine(work.new(), [model], [voices], threads=threads, blocksize=blocksize)
        loaded = engine.installation.models["m0"]
        decode = loaded.decode
        calls: list[np.ndarray] = []

        def recording(
            z: np.ndarray,
            decode: Callable[[np.ndarray], np.ndarray] = decode,
            calls: list[np.ndarray] = calls,
        ) -> np.ndarray:
            calls.append(z)  # the engine builds a fresh z per call: keeping the reference is enough
            return decode(z)

        loaded.decode = recording  # type: ignore[method-assign]
        info = loaded.info
        chunk_s = engine.installation.config.venue.audio.frames_per_call * info.ratio / info.sr
        seconds = max(1, round(sizes.seconds / chunk_s)) * chunk_s
        run_blocks(engine, seconds)  # warm: caches, FIFOs, first-call costs
        ratios, engine_rtf, decode_rtf = [], [], []
        for _ in range(sizes.repeats):
            calls.clear()
            out_s = audio_seconds(engine, seconds)
            wall_engine = run_blocks(engine, seconds)
            replay = list(calls)
            if not replay:
                continue
            start = time.perf_counter()
            for z in replay:
                decode(z)
            wall_decode = time.perf_counter() - start
            decoded_s = sum(z.shape[2] for z in replay) * info.ratio / info.sr
            per_s_engine = wall_engine / out_s
            per_s_decode = wall_decode / decoded_s
            ratios.append(per_s_engine / per_s_decode)
            engine_rtf.append(1.0 / per_s_engine)
            decode_rtf.append(1.0 / per_s_decode)
        if not ratios:
            notes.append(f"overhead {model.name}: no decode call in a repeat; raise --seconds")
            continue
        row = {
            "model": model.name,
            "voices": voices,
            "blocksize": blocksize,
            "threads": threads,
            "ratio": statistics.median(ratios),
            "engine_x_realtime": statistics.median(engine_rtf),
            "decode_x_realtime": statistics.median(decode_rtf),
            "repeats": len(ratios),
        }
        data.append(row)
        rows.append(
            [
                model.name,
                voices,
                blocksize,
                threads,
                row["ratio"],
                row["engine_x_realtime"],
                row["decode_x_realtime"],
            ]
        )
    headers = ["model", "voices", "blocksize", "threads", "engine/decode", "engine ×RT", "decode alone ×RT"]
    text = table(headers, rows)
    return Outcome({"goal": "ratio <= 1.10", "rows": data}, text, notes)


# ---------------------------------------------------------------------------------------------- voices
def _max_voices(rtf_of: Callable[[int], float], cap: int) -> tuple[int, dict[int, float]]:
    """Largest n in 1..cap with rtf_of(n) ≥ REALTIME_GOAL (doubling, then bisection); all points measured."""
    return max_voices(rtf_of, cap, REALTIME_GOAL)


def _engine_rtf(make: Callable[[], Engine], sizes: Sizes) -> float:
    engine = make()
    run_blocks(engine, min(1.0, sizes.seconds))
    out_s = audio_seconds(engine, sizes.seconds)
    walls = [run_blocks(engine, sizes.seconds) for _ in range(max(1, min(3, sizes.repeats)))]
    return out_s / statistics.median(walls)


def bench_voices(work: Workdir, sizes: Sizes) -> Outcome:
    """Most voices sustained at ≥ 1.5× real time: one model, and a section mixing two models."""
    notes: list[str] = []
    data, rows = [], []
    main = v2_like()
    other = second_model()
    if other.name.startswith("builder"):
        notes.append("mixed section uses a second builder model: the real RAVE export is absent")
    cases: list[tuple[str, list[BenchModel], int]] = [(main.name, [main], 1)]
    real = rave()
    if real is not None:
        cases.append((real.name, [real], 1))
    cases.append((f"mixed {main.name} + {other.name}", [main, other], 2))
    for threads in sizes.threads:
        for label, models, per_step in cases:

            def rtf_of(k: int, models: list[BenchModel] = models, threads: int = threads) -> float:
                return _engine_rtf(
                    lambda: make_engine(work.new(), models, [k] * len(models), threads=threads), sizes
                )

            cap = max(1, sizes.max_voices // per_step)
            best, points = _max_voices(rtf_of, cap)
            total = best * per_step
            data.append(
                {
                    "case": label,
                    "threads": threads,
                    "max_voices": total,
                    "capped": best == cap,
                    "x_realtime_by_voices": {str(k * per_step): v for k, v in sorted(points.items())},
                }
            )
            at_best = points.get(best, float("nan"))
            rows.append([label, threads, f"{total}{'+' if best == cap else ''}", at_best])
    text = table(["voices of", "threads", f"max voices ≥{REALTIME_GOAL}×RT", "×RT at max"], rows)
    return Outcome({"goal_x_realtime": REALTIME_GOAL, "rows": data}, text, notes)


# ---------------------------------------------------------------------------------------------- batching
def bench_batching(work: Workdir, sizes: Sizes) -> Outcome:
    """``decode`` of N rows in one call ÷ N one-row calls, on the model alone."""
    notes: list[str] = []
    data, rows = [], []
    threads = sizes.threads[0]
    for model in _models(notes):
        engine = make_engine(work.new(), [model], [max(sizes.batch_sizes)], threads=threads)
        loaded = engine.installation.models["m0"]
        info = loaded.info
        frames = engine.installation.config.venue.audio.frames_per_call
        rng = np.random.default_rng(0)
        for n in sizes.batch_sizes:
            z1 = rng.standard_normal((1, info.in_channels, frames)).astype(np.float32)
            zn = rng.standard_normal((n, info.in_channels, frames)).astype(np.float32)
            loaded.decode(zn)
            singles, batches = [], []
            for _ in range(max(3, sizes.repeats)):  # interleaved, so load on the machine hits both alike
                singles.append(median_time(lambda z=z1, m=loaded: m.decode(z), 1))
                batches.append(median_time(lambda z=zn, m=loaded: m.decode(z), 1))
            single, batch = statistics.median(singles), statistics.median(batches)
            ratio = batch / (n * single)
            data.append(
                {
                    "model": model.name,
                    "threads": threads,
                    "n": n,
                    "single_s": single,
                    "batch_s": batch,
                    "ratio": ratio,
                }
            )
            rows.append([model.name, threads, n, single * 1e3, batch * 1e3, ratio])
    text = table(["model", "threads", "N", "1 voice ms", "N as batch ms", "batch/(N×1)"], rows)
    return Outcome({"goal": "ratio < 0.5 at N = 4", "frames_per_call": 8, "rows": data}, text, notes)


# ---------------------------------------------------------------------------------------------- blocksize
def bench_blocksize(work: Workdir, sizes: Sizes) -> Outcome:
    """Real-time factor of one voice through the engine against latent frames per decode call."""
    notes: list[str] = []
    data, rows = [], []
    threads = sizes.threads[0]
    for model in _models(notes):
        for frames in sizes.frames:
            engine = make_engine(work.new(), [model], [1], threads=threads, frames_per_call=frames)
            info = engine.installation.models["m0"].info
            latency_ms = frames * info.ratio / info.sr * 1e3
            rtf = _engine_rtf(lambda engine=engine: engine, sizes)
            data.append(
                {
                    "model": model.name,
                    "threads": threads,
                    "frames_per_call": frames,
                    "x_realtime": rtf,
                    "latency_ms": latency_ms,
                }
            )
            rows.append([model.name, frames, rtf, latency_ms])
    text = table(["model", "frames/call", "×RT (1 voice)", "chunk latency ms"], rows)
    return Outcome({"threads": threads, "rows": data}, text, notes)


# ---------------------------------------------------------------------------------------------- memory
def bench_memory(work: Workdir, sizes: Sizes) -> Outcome:
    """RSS after start and while the demo renders offline; growth per hour from the second half's slope."""
    from latentd.config import load_config
    from latentd.offline.build import build_engine

    ensure_demo_models()
    config = load_config(DEMO_CONFIG)
    engine = build_engine(config)
    ring_blocks = config.venue.jack.ring_blocks
    for _ in range(ring_blocks):  # what `latentd run` does before JACK starts
        engine.next_block()
    start_mb = rss_mb()
    total_s = sizes.minutes * 60.0
    step_s = min(10.0, total_s)
    samples: list[tuple[float, float]] = [(0.0, start_mb)]
    played = 0.0
    wall = 0.0
    while played < total_s - 1e-9:
        wall += run_blocks(engine, step_s)
        played += audio_seconds(engine, step_s)
        samples.append((played, rss_mb()))
    half = samples[len(samples) // 2 :]
    if len(half) >= 2:
        t = np.array([s[0] for s in half])
        m = np.array([s[1] for s in half])
        slope_mb_s = float(np.polyfit(t, m, 1)[0]) if np.ptp(t) > 0 else 0.0
    else:
        slope_mb_s = 0.0
    end_mb = samples[-1][1]
    growth_h = slope_mb_s * 3600.0
    data = {
        "config": str(DEMO_CONFIG),
        "audio_s": played,
        "render_x_realtime": played / wall if wall > 0 else math.inf,
        "rss_start_mb": start_mb,
        "rss_end_mb": end_mb,
        "growth_mb_per_hour": growth_h,
        "samples": samples,
    }
    text = table(
        ["audio rendered", "RSS start MiB", "RSS end MiB", "growth MiB/h (2nd half slope)"],
        [[f"{played / 60:.1f} min", start_mb, end_mb, growth_h]],
    )
    return Outcome(data, text, [])


# ---------------------------------------------------------------------------------------------- startup
def _first_sound(capture: Any) -> int | None:
    frames = capture.frames
    if frames == 0:
        return None
    loud = np.flatnonzero(np.abs(capture.buffer[:, :frames]).max(axis=0) > SILENCE)
    return int(loud[0]) if loud.size else None


def startup_once(work: Path, timeout_s: float = 60.0) -> float:
    """Seconds from spawning ``latentd run`` to the first sample above -80 dBFS on a port of a capture client.

    The benchmark starts a private dummy jackd and a capture client; the daemon connects its ports to the
    capture's inputs itself (``playback_ports``), so nothing is missed between activation and connection.
    """
    from latentd.outputs.jackd import JackServer
    from tests.jackfixtures import JackCapture

    samplerate = 48000
    name = f"latentd-bench-{os.getpid()}-{time.monotonic_ns() % 10**9}"
    with JackServer(name, samplerate=samplerate, period=256, playback_channels=8) as server:
        capture = JackCapture(server.name, 8, int(timeout_s * samplerate), name="bench-capture")
        try:
            config = write_live_config(
                work,
                server_name=server.name,
                client_name="latentd-bench",
                playback_ports=[f"bench-capture:in_{i + 1}" for i in range(8)],
            )
            log_path = work / "run.log"
            with log_path.open("wb") as log:
                capture.record()
                recording_from = time.monotonic()
                spawned = time.monotonic()
                proc = subprocess.Popen(
                    [
                        sys.executable,
                        "-m",
                        "latentd",
                        "run",
                        "--config",
                        str(config),
                        "--duration",
                        str(timeout_s),
                    ],
                    stdout=log,
                    stderr=subprocess.STDOUT,
                )
                try:
                    first = None
                    while first is None and time.monotonic() - spawned < timeout_s and proc.poll() is None:
                        time.sleep(0.02)
                        first = _first_sound(capture)
                finally:
                    proc.terminate()
                    proc.wait(20)
            if first is None:
                tail = log_path.read_text(errors="replace")[-2000:]
                raise RuntimeError(f"no audio from `latentd run` within {timeout_s} s; its output:\n{tail}")
            return recording_from + first / samplerate - spawned
        finally:
            capture.close()


def bench_startup(work: Workdir, sizes: Sizes) -> Outcome:
    """Median start-up time of ``latentd run`` (demo piece) to audible output."""
    times = [startup_once(work.new()) for _ in range(sizes.startup_repeats)]
    data = {"seconds": statistics.median(times), "runs": times, "threshold_dbfs": -80}
    text = table(
        ["start-up to first audio (median s)", "runs"],
        [[data["seconds"], ", ".join(f"{t:.2f}" for t in times)]],
    )
    return Outcome(data, text, [])


BENCHMARKS: dict[str, Callable[[Workdir, Sizes], Outcome]] = {
    "overhead": bench_overhead,
    "voices": bench_voices,
    "batching": bench_batching,
    "blocksize": bench_blocksize,
    "memory": bench_memory,
    "startup": bench_startup,
}


def run(
    names: list[str], sizes: Sizes, results_dir: Path = RESULTS_DIR, out: Any = sys.stdout
) -> dict[str, Outcome]:
    """Run the named benchmarks in order, write their JSON files and print their tables."""
    outcomes = {}
    with tempfile.TemporaryDirectory(prefix="latentd-bench-") as tmp:
        work = Workdir(Path(tmp))
        for name in names:
            started = time.perf_counter()
            outcome = BENCHMARKS[name](work, sizes)
            elapsed = time.perf_counter() - started
            path = write_result(
                name, {**outcome.data, "notes": outcome.notes, "sizes": sizes.__dict__}, results_dir
            )
            out.write(f"\n## {name}  ({elapsed:.0f} s, {path})\n")
            out.write(outcome.text + "\n")
            for note in outcome.notes:
                out.write(f"note: {note}\n")
            out.flush()
            outcomes[name] = outcome
    return outcomes


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--quick", action="store_true", help="small sizes (smoke test, CI-like runs)")
    parser.add_argument(
        "--only", choices=list(BENCHMARKS), action="append", help="run only this benchmark (repeatable)"
    )
    parser.add_argument("--minutes", type=float, default=None, help="audio rendered by the memory benchmark")
    parser.add_argument("--seconds", type=float, default=None, help="audio per timed repeat")
    parser.add_argument("--repeats", type=int, default=None, help="timed repeats (the median is reported)")
    parser.add_argument(
        "--threads", type=int, nargs="+", default=None, help="torch thread settings, e.g. 1 2"
    )
    parser.add_argument("--results", type=Path, default=RESULTS_DIR, help="folder for the JSON results")
    args = parser.parse_args(argv)
    sizes = Sizes.quick() if args.quick else Sizes()
    overrides = {
        k: v
        for k, v in (("minutes", args.minutes), ("seconds", args.seconds), ("repeats", args.repeats))
        if v is not None
    }
    if args.threads:
        overrides["threads"] = tuple(args.threads)
    sizes = Sizes(**{**sizes.__dict__, **overrides})
    print(
        f"latentd engine benchmarks ({'quick' if args.quick else 'full'}); "
        f"load average {os.getloadavg()[0]:.2f}"
    )
    run(args.only or list(BENCHMARKS), sizes, args.results)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
