"""Decode call shapes, engine overhead, parallel decode and the capacity prediction, on the real exports.

For each model found (the shared c16 export, the full-size c96 and c128 exports built by
``../shared/tools/build-rave-v2.sh`` into ``~/.cache/latentd-bench``):

* nn~'s call pattern (batch 1 × 2 frames per voice, its default 4096-sample buffer) against the shape
  latentd chooses for one voice at 2 frames per call (throughput ratio, same audio per call);
* engine overhead: ``latentd`` playing one piece against plain ``torch`` ``decode`` calls of the same
  shape, interleaved in one run (wall-time ratio);
* ``latentd check --load``'s predicted speed against a render of the same piece (ratio);
* decode_threads 2 against 1 on a piece of two models (render speed ratio).

Figures are ratios measured in one run. ``python -m benchmarks.callshape [--seconds S]``.
The timing helpers here (:func:`plain_seconds`, :func:`engine_seconds`) and in
:mod:`latentd.engine.callshape` (``time_shapes``) and :mod:`latentd.offline.capacity` (``run_engine``,
``measure``) are meant to be imported by other benchmarks.
"""

from __future__ import annotations

import argparse
import tempfile
import time
from pathlib import Path
from typing import Any

import numpy as np
import torch

from latentd.config import load_config
from latentd.engine.callshape import time_shapes
from latentd.engine.engine import Engine
from latentd.installation.models import LoadedModel
from latentd.offline.build import build_engine
from latentd.offline.capacity import measure
from latentd.offline.render import render
from latentd.runtime.process import configure_process
from tests.pieces import write_piece

ROOT = Path(__file__).resolve().parents[1]
SHARED = (ROOT / ".." / "shared" / "models").resolve()
BENCH_CACHE = Path.home() / ".cache" / "latentd-bench"


def models() -> list[tuple[str, Path]]:
    """The exports present on this machine, smallest first."""
    found = [
        ("c16", SHARED / "rave-v2small-c16_streaming.ts"),
        ("c96", BENCH_CACHE / "rave-v2-c96_streaming.ts"),
        ("c128", BENCH_CACHE / "rave-v2-c128_streaming.ts"),
    ]
    return [(name, path) for name, path in found if path.is_file()]


def piece(root: Path, paths: dict[str, Path], voices: dict[str, int], frames: int, **audio: Any) -> Path:
    """A stereo piece with ``voices[model]`` walking voices per model; returns the venue config."""
    return write_piece(
        root,
        models=paths,
        voices={
            f"{m}{i}": {"model": m, "source": {"kind": "walk", "step_std": 0.4, "smooth_s": 0.3}}
            for m, n in voices.items()
            for i in range(n)
        },
        audio={"layout": "stereo", "frames_per_call": frames, **audio},
    )


def plain_seconds(module: Any, z: torch.Tensor, calls: int) -> float:
    """Wall seconds of ``calls`` plain ``decode`` calls of ``z`` (inference mode)."""
    with torch.inference_mode():
        start = time.perf_counter()
        for _ in range(calls):
            module.decode(z)
        return time.perf_counter() - start


def engine_seconds(engine: Engine, calls: int) -> tuple[float, int]:
    """Wall seconds the engine takes to make ``calls`` decode calls of its first model, and the calls made."""
    group = engine.groups[0]
    start_calls = group.calls
    start = time.perf_counter()
    while group.calls - start_calls < calls:
        engine.next_block()
    return time.perf_counter() - start, group.calls - start_calls


def overhead(path: Path, voices: int, frames: int, rounds: int, calls: int, work: Path) -> dict[str, Any]:
    """The engine against plain torch decode of the same call shape, interleaved ``rounds`` times."""
    config = load_config(piece(work, {"m": path}, {"m": voices}, frames))
    engine = build_engine(config, fade_in_s=0.0, live_loads=False)
    shape = engine.installation.call_shapes["m"]
    module = torch.jit.load(str(path)).eval()
    info = engine.groups[0].info
    z = torch.randn(shape.batch, info.in_channels, shape.frames)
    plain_seconds(module, z, 2)
    ratios = []
    for _ in range(rounds):
        seconds, made = engine_seconds(engine, calls)
        ratios.append(seconds / plain_seconds(module, z, made))
    # The median round: a round that met other work on the machine counts as one of many.
    return {"shape": str(shape), "overhead": float(np.median(ratios))}


def nn_pattern(path: Path) -> dict[str, Any]:
    """nn~'s batch 1 × 2 frames against the shape latentd chooses for one voice at 2 frames per call."""
    from latentd.engine.callshape import choose_shape

    model = LoadedModel(path)
    shape, _ = choose_shape(model, 1, 2, name=path.name)
    nn, chosen = time_shapes(model, [(1, 2), (shape.batch, shape.frames)], calls=8)
    return {"shape": str(shape), "nn_ms": 1000 * nn, "latentd_ms": 1000 * chosen, "gain": nn / chosen}


def prediction(config: Path, seconds: float) -> dict[str, Any]:
    """``check --load``'s predicted speed against a render of the same piece in this process (with the
    call shapes the verdict's engine chose, so both decode alike)."""
    cfg = load_config(config)
    engine = build_engine(cfg, fade_in_s=0.0, live_loads=False)
    shapes = {name: s.to_json() for name, s in engine.installation.call_shapes.items()}
    verdict = measure(engine, detail=False)
    engine.decoder.close()
    with tempfile.TemporaryDirectory() as tmp:
        rendering = build_engine(cfg, live_loads=False, call_shapes=shapes)
        summary = render(rendering, seconds, Path(tmp) / "out.wav", progress=False)
        rendering.decoder.close()
    return {"predicted": verdict.margin, "rendered": summary.speed, "ratio": verdict.margin / summary.speed}


def parallel(config_of: Any, seconds: float) -> dict[str, Any]:
    """Render speed with decode_threads 2 against 1 (the same piece of two models)."""
    speeds = {}
    for threads in (1, 2):
        engine = build_engine(load_config(config_of(threads)), live_loads=False)
        with tempfile.TemporaryDirectory() as tmp:
            speeds[threads] = render(engine, seconds, Path(tmp) / "out.wav", progress=False).speed
        engine.decoder.close()
    return {"serial": speeds[1], "parallel": speeds[2], "gain": speeds[2] / speeds[1]}


def main(argv: list[str] | None = None) -> int:
    """Run every measurement on the models present and print one table per measurement."""
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--seconds", type=float, default=10.0, help="audio per render")
    p.add_argument("--rounds", type=int, default=7, help="interleaved rounds of the overhead measurement")
    args = p.parse_args(argv)
    configure_process(1)
    found = models()
    if not found:
        print(f"no exports found in {SHARED} or {BENCH_CACHE}")
        return 0
    if len(found) < 3:
        print(
            "full-size exports missing: ../shared/tools/build-rave-v2.sh ~/.cache/latentd-bench 96 128 "
            "builds them (about 4 minutes of CPU each)"
        )
    with tempfile.TemporaryDirectory() as tmp:
        work = Path(tmp)
        print("\nnn~ call pattern (batch 1 × 2 frames) vs latentd's shape for one voice at 2 frames")
        for name, path in found:
            r = nn_pattern(path)
            print(
                f"  {name:5} {r['shape']:36} nn~ {r['nn_ms']:6.1f} ms  latentd {r['latentd_ms']:6.1f} ms"
                f"  throughput {r['gain']:.2f}×"
            )
        print("\nengine overhead vs plain torch decode of the same call shape (wall-time ratio)")
        cases = [(1, 2), (1, 8), (4, 8)]
        for name, path in found:
            for voices, frames in cases:
                calls = 4 if name != "c16" else 40
                r = overhead(path, voices, frames, args.rounds, calls, work / f"o-{name}-{voices}-{frames}")
                print(f"  {name:5} {voices} voice(s) {frames} frames  {r['shape']:36} {r['overhead']:.3f}")
        print("\ncheck --load prediction vs render speed of the same piece (× real time)")
        for name, path in found:
            for threads in (1, 2):
                config = piece(work / f"p-{name}-{threads}", {"m": path}, {"m": 2}, 2, decode_threads=threads)
                r = prediction(config, args.seconds)
                print(
                    f"  {name:5} 2 voices, 2 frames, decode_threads {threads}  predicted "
                    f"{r['predicted']:5.2f}×  rendered {r['rendered']:5.2f}×  ratio {r['ratio']:.2f}"
                )
        if len(found) >= 2:
            (a, pa), (b, pb) = found[0], found[1]
            r = parallel(
                lambda t: piece(work / f"par{t}", {"a": pa, "b": pb}, {"a": 1, "b": 1}, 8, decode_threads=t),
                args.seconds,
            )
            print(
                f"\ndecode_threads 2 vs 1, {a} + {b}, 1 voice each, 8 frames: "
                f"{r['serial']:.2f}× → {r['parallel']:.2f}× real time ({r['gain']:.2f}×)"
            )
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
