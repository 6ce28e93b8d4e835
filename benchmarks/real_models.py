"""Benchmarks of the artists' real models: latentd against plain torch and against nn~'s call pattern.

Models (each skipped with a note saying why and how to get it when absent):

- ``rave-v2-c96``, ``rave-v2-c128``: genuine full-size RAVE v2 streaming exports, built by
  ``../shared/tools/build-rave-v2.sh`` into ``~/.cache/latentd-bench`` (``LATENTD_BENCH_MODELS`` names
  another folder; ``--build-rave`` builds the missing ones first, about 4 minutes of CPU each);
- ``vschaos2``: the vschaos2 stand-in (:mod:`latentd.modelkit.vschaos2`), built into ``.cache/benchmarks``;
- ``rave-v2small-c16``: the small real RAVE export in ``../shared/models``.

Figures are ratios measured in one run (medians over interleaved repeats), 1 torch thread unless said.
latentd is measured through its public door: a piece written as TOML, ``build_engine``, then
``Engine.next_block`` (48 kHz, blocksize 256, octophonic ring); plain torch is ``torch.jit.load`` and
``decode`` on tensors, nothing else.

- overhead: latentd's wall time per second of audio ÷ plain torch decoding the very calls latentd made
  (same call shapes, replayed on a second instance of the model), 1 and 4 voices at 8 frames per call,
  and 1 voice at nn~'s buffer; also with the decoding beside the mix (``audio.decode_threads = 2``) at
  blocks of 256 and 1024 and calls as long in audio as 8 frames at ratio 2048 (32 frames at ratio 512),
  with the CPU time of every thread ÷ plain torch's beside the wall time;
- nn~: latentd playing one voice with nn~'s default buffer (4096 samples: 4096/ratio latent frames per
  call) ÷ nn~'s call pattern at that buffer (plain torch, batch 1), as real-time factors: above 1, latentd
  is faster;
- voices: most voices of the model at ≥ 1.5× real time (fastest of 3 repeats) on 1 and 2 torch threads;
- batch: plain torch decoding 4 rows in one call ÷ 4 one-row calls (at nn~'s buffer and at 8 frames), and
  latentd's 4 voices ÷ 4 × its one voice;
- piece: the works' set-up, two RAVE v2 models and two vschaos2 models with one voice each, decoded one
  model at a time and two at once (``audio.decode_threads``).
"""

from __future__ import annotations

import argparse
import contextlib
import functools
import gc
import math
import os
import statistics
import sys
import tempfile
import time
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from benchmarks.common import (
    RESULTS_DIR,
    BenchModel,
    Workdir,
    audio_seconds,
    machine,
    make_engine,
    max_voices,
    run_blocks,
    write_result,
)
from benchmarks.model_files import (
    BENCH_DIR,
    BUILD_SCRIPT,
    CAPACITIES,
    MODEL_NAMES,
    build_command,
    build_rave,
    find_models,
    rave_v2_path,
)
from benchmarks.model_tables import BATCH, BESIDE, FRAMES, NN_BUFFER, REALTIME_GOAL, ModelFigures, tables
from benchmarks.plain_torch import PlainTorch, recorded_decodes
from latentd.config.problems import ConfigError
from latentd.engine.engine import Engine
from latentd.installation.models import ModelError
from latentd.runtime.logs import setup_logging
from latentd.runtime.process import configure_process


@dataclass(frozen=True)
class Sizes:
    """How much is measured; ``quick`` keeps the whole run to a few minutes."""

    seconds: float = 4.0  # audio per timed repeat (overhead, nn~)
    repeats: int = 3
    voice_seconds: float = 2.0  # audio per timed repeat of each voice count
    threads: tuple[int, ...] = (1, 2)
    max_voices: int = 32
    piece: bool = True  # the works' set-up of several models, decoded one and two at a time

    @classmethod
    def quick(cls) -> Sizes:
        """Small sizes: one repeat of a second, 1 thread, at most 4 voices."""
        return cls(seconds=1.0, repeats=1, voice_seconds=1.0, threads=(1,), max_voices=4)


# ---------------------------------------------------------------------------------------------- latentd
@contextlib.contextmanager
def engine_of(
    work: Workdir,
    models: Sequence[BenchModel],
    counts: Sequence[int],
    frames: int,
    threads: int,
    audio: dict[str, Any] | None = None,
    blocksize: int = 256,
) -> Iterator[Engine]:
    """An engine playing ``counts[i]`` voices of ``models[i]``, built as ``latentd render`` builds one."""
    engine = make_engine(
        work.new(), models, counts, threads=threads, frames_per_call=frames, audio=audio, blocksize=blocksize
    )
    try:
        yield engine
    finally:
        close = getattr(engine, "close", None)  # an engine that decodes in workers stops them
        if callable(close):
            close()
        del engine
        gc.collect()


@dataclass
class EngineRun:
    """latentd's real-time factor, its overhead over plain torch, and a baseline's real-time factor."""

    x_realtime: float
    overhead: float | None
    cpu_overhead: float | None  # the process's CPU time (every thread) ÷ plain torch's, per second of audio
    baseline_x_realtime: float | None
    speedup: float | None  # x_realtime ÷ baseline_x_realtime, per repeat, median
    shapes: list[list[int]]


def measure_engine(
    work: Workdir,
    model: BenchModel,
    plain: PlainTorch,
    voices: int,
    frames: int,
    sizes: Sizes,
    baseline: list[np.ndarray] | None = None,
    audio: dict[str, Any] | None = None,
    blocksize: int = 256,
) -> EngineRun:
    """Time latentd over repeats; after each, plain torch replays latentd's calls (and ``baseline``'s).

    ``audio`` adds venue ``[audio]`` keys (e.g. ``decode_threads``), ``blocksize`` is the engine's block.

    Raises:
        ConfigError: the model does not load into a piece.
    """
    with engine_of(work, [model], [voices], frames, threads=1, audio=audio, blocksize=blocksize) as engine:
        configure_process(1)
        with recorded_decodes() as warm_calls:
            run_blocks(engine, min(1.0, sizes.seconds))
        plain.run(warm_calls[-4:])  # plain torch's first calls of these shapes are slow too
        if baseline:
            plain.run(baseline[:3])
        out_s = audio_seconds(engine, sizes.seconds)
        rtfs, overheads, cpus, base_rtfs, speedups = [], [], [], [], []
        shapes: set[tuple[int, ...]] = set()
        for _ in range(sizes.repeats):
            with recorded_decodes() as calls:
                cpu = time.process_time()
                wall = run_blocks(engine, sizes.seconds)
                cpu = time.process_time() - cpu
            rtfs.append(out_s / wall)
            if calls:
                shapes |= {tuple(z.shape) for z in calls}
                plain_cpu = time.process_time()
                plain_wall = plain.run(calls)
                plain_cpu = time.process_time() - plain_cpu
                per_s = plain.seconds(calls)
                overheads.append((wall / out_s) / (plain_wall / per_s))
                cpus.append((cpu / out_s) / (plain_cpu / per_s))
            if baseline:
                base_rtfs.append(plain.seconds(baseline) / plain.run(baseline))
                speedups.append(rtfs[-1] / base_rtfs[-1])
    return EngineRun(
        x_realtime=statistics.median(rtfs),
        overhead=statistics.median(overheads) if overheads else None,
        cpu_overhead=statistics.median(cpus) if cpus else None,
        baseline_x_realtime=statistics.median(base_rtfs) if base_rtfs else None,
        speedup=statistics.median(speedups) if speedups else None,
        shapes=[list(s) for s in sorted(shapes)],
    )


def x_realtime(
    work: Workdir,
    models: Sequence[BenchModel],
    counts: Sequence[int],
    threads: int,
    sizes: Sizes,
    audio: dict[str, Any] | None = None,
) -> float:
    """latentd's real-time factor with ``counts[i]`` voices of ``models[i]`` on ``threads`` torch threads.

    The fastest of up to 3 repeats: the machine's own capacity (slower repeats met other work, and the
    voice-count search must not stop at a count that merely met a busy moment).
    """
    with engine_of(work, models, counts, FRAMES, threads, audio) as engine:
        run_blocks(engine, min(1.0, sizes.voice_seconds))
        out_s = audio_seconds(engine, sizes.voice_seconds)
        walls = [run_blocks(engine, sizes.voice_seconds) for _ in range(max(1, min(3, sizes.repeats)))]
    return out_s / min(walls)


def _voices_x_realtime(work: Workdir, model: BenchModel, threads: int, sizes: Sizes, voices: int) -> float:
    return x_realtime(work, [model], [voices], threads, sizes)


def measure_piece(work: Workdir, models: Sequence[BenchModel], sizes: Sizes) -> dict[str, Any] | None:
    """The works' set-up, two RAVE v2 models and two vschaos2 models with a voice each, decoded one model
    at a time and two at once (``audio.decode_threads``), 1 torch thread; None without two such models.

    The full-size exports stand for the RAVE models when present, else the small c16 export.
    """
    by_name = {m.name: m for m in models}
    raves = [by_name[n] for n in ("rave-v2-c96", "rave-v2-c128") if n in by_name]
    if not raves and "rave-v2small-c16" in by_name:
        raves = [by_name["rave-v2small-c16"]]
    members = raves + [by_name["vschaos2"]] * 2 if "vschaos2" in by_name else raves
    if len(members) < 2:
        return None
    rtf = {
        str(d): x_realtime(work, members, [1] * len(members), 1, sizes, {"decode_threads": d}) for d in (1, 2)
    }
    return {"models": [m.name for m in members], "x_realtime": rtf, "parallel_gain": rtf["2"] / rtf["1"]}


# ---------------------------------------------------------------------------------------------- one model
def beside_frames(ratio: int) -> int:
    """Latent frames per call whose audio lasts as long as ``FRAMES`` frames at ratio 2048 (8..64)."""
    return max(FRAMES, min(64, FRAMES * 2048 // ratio))


def measure_model(work: Workdir, model: BenchModel, sizes: Sizes) -> ModelFigures:
    """Every figure of one model; what cannot be measured is left None with a note."""
    configure_process(1)
    plain = PlainTorch(model)
    nn_frames = max(1, NN_BUFFER // plain.ratio)
    fig = ModelFigures(model.name, plain.ratio, plain.sr, nn_frames)
    fig.torch_batch_nn = plain.batch_ratio(nn_frames, BATCH, sizes.repeats)
    fig.torch_batch_8 = plain.batch_ratio(FRAMES, BATCH, sizes.repeats)
    try:
        one = measure_engine(work, model, plain, 1, FRAMES, sizes)
        many = measure_engine(work, model, plain, BATCH, FRAMES, sizes)
        # nn~ decodes one buffer per call, batch 1: as many calls as the timed audio needs.
        n_calls = max(1, math.ceil(sizes.seconds * plain.sr / (nn_frames * plain.ratio)))
        nn_calls = [plain.inputs(1, nn_frames)] * n_calls
        at_nn = measure_engine(work, model, plain, 1, nn_frames, sizes, baseline=nn_calls)
        # Decoding beside the mix (a decode thread), with blocks of 256 and of 1024, calls as long in
        # audio as 8 frames at ratio 2048 (what decode_latency_ms = 372 picks for a cheap model).
        frames = beside_frames(plain.ratio)
        beside = {"decode_threads": 2}
        one_beside = measure_engine(work, model, plain, 1, frames, sizes, audio=beside)
        one_1024 = measure_engine(work, model, plain, 1, frames, sizes, audio=beside, blocksize=1024)
        many_1024 = measure_engine(work, model, plain, BATCH, frames, sizes, audio=beside, blocksize=1024)
    except ConfigError as exc:
        first = str(exc).strip().splitlines()
        fig.notes.append(
            f"{model.name}: latentd rows skipped, the piece does not load: {' '.join(first[:3])}"
        )
        return fig
    fig.overhead_1v, fig.overhead_4v, fig.overhead_nn = one.overhead, many.overhead, at_nn.overhead
    fig.beside_frames = frames
    fig.beside = {
        BESIDE[0]: [one_beside.overhead, one_beside.cpu_overhead],
        BESIDE[1]: [one_1024.overhead, one_1024.cpu_overhead],
        BESIDE[2]: [many_1024.overhead, many_1024.cpu_overhead],
    }
    fig.cpu_overhead_1v = one.cpu_overhead
    fig.latentd_x_rt_1v, fig.latentd_x_rt_4v = one.x_realtime, many.x_realtime
    fig.latentd_x_rt_nn, fig.nn_x_rt, fig.latentd_vs_nn = (
        at_nn.x_realtime,
        at_nn.baseline_x_realtime,
        at_nn.speedup,
    )
    fig.latentd_batch = one.x_realtime / (BATCH * many.x_realtime)
    fig.call_shapes = {"1 voice": one.shapes, f"{BATCH} voices": many.shapes, "nn~ buffer": at_nn.shapes}
    if not (one.shapes and many.shapes and at_nn.shapes):
        fig.notes.append(
            f"{model.name}: latentd decoded outside this process's LoadedModel.decode; overhead not measured"
        )
    for threads in sizes.threads:
        best, points = max_voices(
            functools.partial(_voices_x_realtime, work, model, threads, sizes),
            sizes.max_voices,
            REALTIME_GOAL,
        )
        fig.voices[str(threads)] = best
        fig.voices_capped[str(threads)] = best == sizes.max_voices
        fig.voices_x_rt[str(threads)] = {str(k): v for k, v in sorted(points.items())}
    return fig


def run(
    names: Sequence[str],
    sizes: Sizes,
    results_dir: Path = RESULTS_DIR,
    out: Any = sys.stdout,
    bench_dir: Path = BENCH_DIR,
) -> list[ModelFigures]:
    """Measure the named models that are here, write ``real_models.json`` and print the tables."""
    notes: list[str] = []
    figures: list[ModelFigures] = []
    playable: list[BenchModel] = []  # the models latentd played (for the piece figure)
    piece: dict[str, Any] | None = None
    load, cores = os.getloadavg()[0], os.cpu_count() or 1
    if load >= cores:
        notes.append(
            f"load average {load:.1f} on {cores} cores as the run began: other work shared the cores, so "
            "real-time factors are lower than on a quiet machine, the 2-thread ones most (torch's threads "
            "wait for each other); ratios of figures measured side by side hold better"
        )
    with tempfile.TemporaryDirectory(prefix="latentd-bench-models-") as tmp:
        work = Workdir(Path(tmp))
        for model in find_models(names, notes, bench_dir):
            started = time.perf_counter()
            try:
                fig = measure_model(work, model, sizes)
            except ModelError as exc:
                notes.append(f"{model.name} skipped: {exc}")
                continue
            notes.extend(fig.notes)
            figures.append(fig)
            if fig.latentd_x_rt_1v is not None:
                playable.append(model)
            out.write(f"{model.name}: measured in {time.perf_counter() - started:.0f} s\n")
            out.flush()
        if sizes.piece:
            piece = measure_piece(work, playable, sizes)
    path = write_result(
        "real_models",
        {"sizes": sizes.__dict__, "models": [f.__dict__ for f in figures], "piece": piece, "notes": notes},
        results_dir,
    )
    about = machine()
    out.write(
        f"\n## real models  ({path})\n{time.strftime('%Y-%m-%d')}, {about['cpu']}, {about['cores']} cores, "
        f"torch {about['torch']}, load average {about['load_avg_1min']:.2f}\n\n"
    )
    if figures:
        out.write(tables(figures, sizes.threads, piece, markdown=False) + "\n\n")
        out.write(tables(figures, sizes.threads, piece, markdown=True) + "\n")
    else:
        out.write("no model measured: see the notes\n")
    for note in notes:
        out.write(f"note: {note}\n")
    out.flush()
    return figures


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--quick", action="store_true", help="small sizes: a few minutes in all")
    parser.add_argument(
        "--models", nargs="+", choices=MODEL_NAMES, default=list(MODEL_NAMES), help="models to measure"
    )
    parser.add_argument(
        "--build-rave",
        action="store_true",
        help=f"build missing full-size RAVE v2 exports first ({BUILD_SCRIPT.name}; minutes of CPU each)",
    )
    parser.add_argument("--seconds", type=float, default=None, help="audio per timed repeat")
    parser.add_argument("--repeats", type=int, default=None, help="timed repeats (the median is reported)")
    parser.add_argument(
        "--threads", type=int, nargs="+", default=None, help="torch threads of the voices figure"
    )
    parser.add_argument("--max-voices", type=int, default=None, help="most voices the voices figure tries")
    parser.add_argument("--results", type=Path, default=RESULTS_DIR, help="folder for the JSON results")
    args = parser.parse_args(argv)
    setup_logging("warning")  # the tables are the output; call-shape choices are in the JSON
    sizes = Sizes.quick() if args.quick else Sizes()
    overrides: dict[str, Any] = {
        k: v
        for k, v in (("seconds", args.seconds), ("repeats", args.repeats), ("max_voices", args.max_voices))
        if v is not None
    }
    if args.threads:
        overrides["threads"] = tuple(args.threads)
    sizes = Sizes(**{**sizes.__dict__, **overrides})
    missing = [c for c in CAPACITIES if f"rave-v2-c{c}" in args.models and not rave_v2_path(c).is_file()]
    if args.build_rave and missing:
        print(f"building {', '.join(f'rave-v2-c{c}' for c in missing)}: {build_command(missing)}", flush=True)
        build_rave(missing)
    print(
        f"latentd real-model benchmarks ({'quick' if args.quick else 'full'}); "
        f"load average {os.getloadavg()[0]:.2f}"
    )
    run(args.models, sizes, args.results)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
