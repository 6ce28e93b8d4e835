"""PNG plots of latents (matplotlib, an optional extra: ``pip install 'latentd[plots]'``).

Figures are drawn with the Agg canvas directly, never through pyplot, so no GUI backend is touched.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np

from latentd.unravel.inputs import UnravelError

#: Most dims drawn as separate lines in a time plot; more are drawn only as the image below it.
MAX_LINES = 16


def require_matplotlib() -> None:
    """Check that plots can be drawn, before any long work starts.

    Raises:
        UnravelError: matplotlib is not installed (the message says how to install it).
    """
    _figure(1.0, 1.0)


def _figure(width_in: float, height_in: float) -> Any:
    try:
        from matplotlib.backends.backend_agg import FigureCanvasAgg
        from matplotlib.figure import Figure
    except ImportError as exc:
        raise UnravelError(
            "plots need matplotlib, which is not installed: pip install 'latentd[plots]' "
            "(or leave out the plot option)"
        ) from exc
    fig = Figure(figsize=(width_in, height_in), dpi=100, layout="constrained")
    FigureCanvasAgg(fig)
    return fig


def _save(fig: Any, path: Path) -> Path:
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, format="png")
    return path


def plot_distributions(
    frames: np.ndarray, stats: dict[str, np.ndarray], path: Path, *, n_files: int = 1
) -> Path:
    """One violin per latent dim (with its median, and the IQR bounds when present) as a PNG.

    Args:
        frames: latent frames (N, d).
        stats: as ``compute_stats`` returns (``mean``; ``lower_bound``/``upper_bound`` if IQR).
        path: the PNG to write.
        n_files: how many files the frames came from (for the title).
    """
    n, d = frames.shape
    fig = _figure(min(40.0, max(7.0, 0.45 * d + 2.0)), 5.0)
    ax = fig.add_subplot()
    positions = np.arange(d)
    data = [frames[:, j] for j in range(d)]
    spread = np.ptp(frames, axis=0)
    if np.all(spread > 0):
        parts = ax.violinplot(data, positions=positions, showmedians=True, showextrema=True)
        for body in parts["bodies"]:
            body.set_alpha(0.6)
    else:  # a violin needs a spread; a constant dim would make the kernel estimate fail
        ax.boxplot(data, positions=positions, showfliers=False)
    ax.scatter(positions, stats["mean"], marker="o", s=14, color="black", zorder=3, label="mean")
    if "lower_bound" in stats and "upper_bound" in stats:
        ax.scatter(
            positions, stats["lower_bound"], marker="_", s=120, color="tab:red", zorder=3, label="IQR bounds"
        )
        ax.scatter(positions, stats["upper_bound"], marker="_", s=120, color="tab:red", zorder=3)
    ax.set_xticks(positions, [str(j) for j in positions])
    ax.set_xlabel("latent dimension")
    ax.set_ylabel("latent value")
    ax.set_title(
        f"Latent distributions per dimension: {n} frames from {n_files} file(s)\n"
        "(violin: density; bars: min, median, max)"
    )
    ax.grid(True, axis="y", alpha=0.4)
    ax.legend(loc="upper left", bbox_to_anchor=(1.01, 1.0))  # beside the axes, never over a violin
    return _save(fig, path)


def plot_latents(frames: np.ndarray, path: Path, *, title: str, latent_rate_hz: float | None = None) -> Path:
    """A generated array as a PNG: each dim's values over time, and all dims as an image.

    Args:
        frames: latent frames (N, d).
        path: the PNG to write.
        title: the figure title.
        latent_rate_hz: frames per second, to label time in seconds (frames when None).
    """
    n, d = frames.shape
    fig = _figure(12.0, 7.0)
    from matplotlib.ticker import MaxNLocator  # importable: _figure checked matplotlib is there

    top, bottom = fig.subplots(2, 1, sharex=True, height_ratios=[3, 2])
    t = np.arange(n) / latent_rate_hz if latent_rate_hz else np.arange(n)
    for j in range(min(d, MAX_LINES)):
        top.plot(t, frames[:, j], linewidth=0.9, label=f"dim {j}")
    shown = "" if d <= MAX_LINES else f" (first {MAX_LINES} of {d} dims)"
    top.set_ylabel("latent value")
    top.set_title(f"{title}{shown}")
    top.grid(True, alpha=0.4)
    if d <= MAX_LINES:
        top.legend(loc="upper left", bbox_to_anchor=(1.01, 1.0), fontsize="small")  # beside, not over data
    frame_len = 1.0 / latent_rate_hz if latent_rate_hz else 1.0
    extent = (0.0, n * frame_len, d - 0.5, -0.5)
    limit = float(np.abs(frames).max()) or 1.0  # symmetric, so white is 0 on the diverging map
    image = bottom.imshow(
        frames.T,
        aspect="auto",
        interpolation="nearest",
        cmap="coolwarm",
        vmin=-limit,
        vmax=limit,
        extent=extent,
    )
    bottom.yaxis.set_major_locator(MaxNLocator(integer=True, nbins=min(d, 16)))
    bottom.set_ylabel("latent dimension")
    bottom.set_xlabel("time (s)" if latent_rate_hz else "latent frame")
    fig.colorbar(image, ax=bottom, label="value")
    return _save(fig, path)
