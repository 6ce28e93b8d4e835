"""The figures of the real-model benchmarks for one model, and the tables they are printed as."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

from benchmarks.common import markdown_table, table

NN_BUFFER = 4096  # nn~'s default buffer size, in samples
FRAMES = 8  # latent frames per call of the overhead, voices and batch figures (the venue default)
BATCH = 4
REALTIME_GOAL = 1.5  # voices count as sustained at this real-time factor or more


@dataclass
class ModelFigures:
    """What was measured for one model (None: not measured, see the notes)."""

    name: str
    ratio: int
    sr: int | None
    nn_frames: int
    overhead_1v: float | None = None
    overhead_4v: float | None = None
    overhead_nn: float | None = None
    cpu_overhead_1v: float | None = None
    # Decoding beside the mix (audio.decode_threads 2): setting → [wall overhead, CPU overhead].
    beside: dict[str, list[float | None]] = field(default_factory=dict)
    beside_frames: int | None = None  # their latent frames per call
    latentd_x_rt_1v: float | None = None
    latentd_x_rt_4v: float | None = None
    latentd_x_rt_nn: float | None = None
    nn_x_rt: float | None = None
    latentd_vs_nn: float | None = None
    call_shapes: dict[str, list[list[int]]] = field(default_factory=dict)
    voices: dict[str, int | None] = field(default_factory=dict)
    voices_capped: dict[str, bool] = field(default_factory=dict)
    voices_x_rt: dict[str, dict[str, float]] = field(default_factory=dict)
    torch_batch_nn: float | None = None
    torch_batch_8: float | None = None
    latentd_batch: float | None = None
    notes: list[str] = field(default_factory=list)


def _x(value: float | None) -> str:
    return "–" if value is None else f"{value:.2f}"


BESIDE = (  # the settings measured with the decoding beside the mix (decode_threads 2)
    "decode beside, 1 voice, blocks of 256",
    "decode beside, 1 voice, blocks of 1024",
    f"decode beside, {BATCH} voices, blocks of 1024",
)


def _pair(values: list[float | None] | None) -> str:
    if not values:
        return "–"
    return f"{_x(values[0])} ({_x(values[1])})"


def _voices(fig: ModelFigures, threads: int) -> str:
    best = fig.voices.get(str(threads))
    if best is None:
        return "–"
    return f"{best}{'+' if fig.voices_capped.get(str(threads)) else ''}"


def tables(
    figures: Sequence[ModelFigures], threads: Sequence[int], piece: dict[str, Any] | None, markdown: bool
) -> str:
    """The tables of the run: speed against plain torch and nn~; voices and batching; the piece."""
    render = markdown_table if markdown else table
    speed = render(
        [
            "model",
            "ratio @ Hz",
            f"overhead 1 voice ({FRAMES} fr)",
            f"overhead {BATCH} voices ({FRAMES} fr)",
            "overhead at nn~ buffer",
            "nn~ buffer (frames)",
            "nn~ ×RT",
            "latentd ×RT",
            "latentd ÷ nn~",
        ],
        [
            [
                f.name,
                f"{f.ratio} @ {f.sr}",
                _x(f.overhead_1v),
                _x(f.overhead_4v),
                _x(f.overhead_nn),
                f"{NN_BUFFER} ({f.nn_frames})",
                _x(f.nn_x_rt),
                _x(f.latentd_x_rt_nn),
                _x(f.latentd_vs_nn),
            ]
            for f in figures
        ],
    )
    voices = render(
        [
            "model",
            *(f"voices ≥{REALTIME_GOAL}×RT, {t} thread{'s' if t > 1 else ''}" for t in threads),
            f"torch {BATCH} rows ÷ {BATCH}×1 (nn~ buffer)",
            f"torch {BATCH} rows ÷ {BATCH}×1 ({FRAMES} fr)",
            f"latentd {BATCH} voices ÷ {BATCH}×1",
        ],
        [
            [
                f.name,
                *(_voices(f, t) for t in threads),
                _x(f.torch_batch_nn),
                _x(f.torch_batch_8),
                _x(f.latentd_batch),
            ]
            for f in figures
        ],
    )
    settings = [f"1 voice, {FRAMES} fr, blocks of 256, serial", *BESIDE]
    beside = render(
        ["model", *(f"{s}: wall ÷ plain (CPU ÷ plain)" for s in settings), "decode beside: frames per call"],
        [
            [
                f.name,
                f"{_x(f.overhead_1v)} ({_x(f.cpu_overhead_1v)})",
                *(_pair(f.beside.get(s)) for s in BESIDE),
                "–" if f.beside_frames is None else str(f.beside_frames),
            ]
            for f in figures
        ],
    )
    speed = f"{speed}\n\n{beside}"
    if piece is None:
        return f"{speed}\n\n{voices}"
    whole = render(
        [
            "piece (1 voice per model)",
            "×RT, decoded in the engine's thread",
            "×RT, decoded beside the mix",
            "gain",
        ],
        [
            [
                " + ".join(piece["models"]),
                *(_x(piece["x_realtime"][d]) for d in ("1", "2")),
                _x(piece["parallel_gain"]),
            ]
        ],
    )
    return f"{speed}\n\n{voices}\n\n{whole}"
