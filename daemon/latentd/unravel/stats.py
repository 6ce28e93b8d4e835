"""``unravel stats``: statistics of encoded latents, written to and read from a ``.npz`` file.

Keys always written: ``mean``, ``std`` (population), ``covariance`` (population), ``correlation``,
``centre``, ``spread``, ``n_frames``, ``files``. With the IQR option also ``midhinge``, ``iqr_spread``
(IQR / 1.35), ``lower_bound`` (Q1 - 1.5 IQR) and ``upper_bound`` (Q3 + 1.5 IQR), and then ``centre`` and
``spread`` are the midhinge and IQR / 1.35 (as UnRAVEl's ``--iqr``); otherwise the mean and std.
Generators draw around ``centre`` with ``spread``.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np

from latentd.sources.generators import latent_stats
from latentd.unravel.inputs import UnravelError, find_inputs
from latentd.unravel.latentio import LATENT_SUFFIXES, read_latents

#: Per-dimension vectors of a stats file.
VECTOR_KEYS = ("mean", "std", "centre", "spread", "midhinge", "iqr_spread", "lower_bound", "upper_bound")
#: d x d matrices of a stats file.
MATRIX_KEYS = ("covariance", "correlation")
IQR_KEYS = ("midhinge", "iqr_spread", "lower_bound", "upper_bound")


def read_encodings(inputs: Sequence[Path]) -> tuple[list[Path], list[np.ndarray]]:
    """The latent files named by ``inputs`` (files or folders) and their frames, each (N, d).

    Raises:
        UnravelError: no latent files, or files with different numbers of dims.
        ValueError: an unreadable latent file (the message names it).
    """
    files = find_inputs(inputs, LATENT_SUFFIXES, "latent (.npy or latent WAV)")
    frames = [read_latents(f) for f in files]
    dims = {f.shape[1] for f in frames}
    if len(dims) > 1:
        listing = ", ".join(f"{p.name}: {a.shape[1]}" for p, a in zip(files, frames, strict=True))
        raise UnravelError(
            f"latent files have different numbers of dims ({listing}); use one model's encodings"
        )
    return files, frames


def compute_stats(frames: Sequence[np.ndarray], *, iqr: bool) -> dict[str, np.ndarray]:
    """Statistics over latent frames (each (N, d)) concatenated in time; see the module docstring."""
    s = latent_stats([np.asarray(f).T for f in frames])
    out = {
        "mean": s.mean,
        "std": s.std,
        "covariance": s.covariance,
        "correlation": s.correlation,
        "n_frames": np.array(sum(len(f) for f in frames)),
    }
    if iqr:
        out |= {
            "midhinge": s.midhinge,
            "iqr_spread": s.iqr_spread,
            "lower_bound": s.lower_bound,
            "upper_bound": s.upper_bound,
            "centre": s.midhinge,
            "spread": s.iqr_spread,
        }
    else:
        out |= {"centre": s.mean, "spread": s.std}
    return out


def save_stats(path: Path, stats: dict[str, np.ndarray], files: Sequence[Path] = ()) -> Path:
    """Write ``stats`` (and the names of the files they came from) to a ``.npz`` file at ``path``."""
    path = Path(path)
    if path.suffix != ".npz":
        path = path.with_name(path.name + ".npz")  # np.savez would add it silently; say it in the name
    path.parent.mkdir(parents=True, exist_ok=True)
    arrays: dict[str, Any] = {"files": np.array([str(f) for f in files], dtype=str), **stats}
    np.savez(path, **arrays)
    return path


def load_stats(path: Path, required: Sequence[str] = ()) -> dict[str, np.ndarray]:
    """Read a stats file, checking the ``required`` keys are there and the shapes agree.

    Returns:
        every array of the file as float64, ``files`` aside.

    Raises:
        UnravelError: missing or unreadable file, missing keys, or shapes that do not fit together.
    """
    path = Path(path)
    if not path.is_file():
        raise UnravelError(f"stats file not found: {path} (make one with `latentd unravel stats`)")
    try:
        with np.load(path, allow_pickle=False) as data:
            stats = {k: np.asarray(data[k], dtype=np.float64) for k in data.files if k != "files"}
    except (OSError, ValueError) as exc:
        raise UnravelError(f"{path}: not a stats .npz file ({exc})") from exc
    missing = [k for k in required if k not in stats]
    if missing:
        hint = " (IQR bounds: make the stats with --iqr)" if set(missing) & set(IQR_KEYS) else ""
        names = ", ".join(repr(k) for k in missing)
        raise UnravelError(f"{path}: missing {names}{hint}; it holds {', '.join(sorted(stats))}")
    d = None
    for key in VECTOR_KEYS:
        if key in stats:
            vec = stats[key]
            if vec.ndim == 2 and vec.shape[0] == 1:  # UnRAVEl keeps a leading batch axis
                vec = stats[key] = vec[0]
            if vec.ndim != 1 or (d is not None and len(vec) != d):
                raise UnravelError(f"{path}: {key!r} has shape {vec.shape}, expected ({d or 'd'},)")
            d = len(vec)
    for key in MATRIX_KEYS:
        if key in stats and d is not None and stats[key].shape != (d, d):
            raise UnravelError(f"{path}: {key!r} has shape {stats[key].shape}, expected ({d}, {d})")
    return stats


def stats_files(
    inputs: Sequence[Path], output: Path, *, iqr: bool, plot: Path | None = None
) -> tuple[Path, dict[str, np.ndarray]]:
    """Compute the statistics of latent files, save them, and optionally plot each dim's distribution.

    Returns:
        the stats file written and the statistics.
    """
    if plot is not None:
        from latentd.unravel.plots import require_matplotlib

        require_matplotlib()
    files, frames = read_encodings(inputs)
    stats = compute_stats(frames, iqr=iqr)
    written = save_stats(output, stats, files)
    if plot is not None:
        from latentd.unravel.plots import plot_distributions

        plot_distributions(np.concatenate(frames, axis=0), stats, plot, n_files=len(files))
    return written, stats
