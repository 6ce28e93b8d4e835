"""``unravel generate``: seeded base arrays drawn from latent statistics, shaped by an UnRAVEl pattern.

One ``numpy.random.default_rng(seed)`` serves a whole run: files are drawn one after the other, so the
same seed and options give identical files, and each file of a run differs from the others.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np

from latentd.sources import generators, patterns
from latentd.tempo import bpm
from latentd.unravel.inputs import UnravelError
from latentd.unravel.latentio import latent_wav_rate, write_latent_wav, write_npy

DISTRIBUTIONS = ("normal", "uniform", "iqr-uniform", "correlated")
PATTERNS = patterns.PATTERN_NAMES
#: fibo needs the first ten Fibonacci numbers (1, 1, 2, 3, 5, 8, 13, 21, 34, 55) as prefix lengths, as
#: UnRAVEl asks: shorter bases give too few distinct prefixes to hear the pattern grow.
FIBO_MIN_FRAMES = 55

#: Stats keys each distribution draws from.
DISTRIBUTION_KEYS = {
    "normal": ("centre", "spread"),
    "uniform": ("centre", "spread"),
    "iqr-uniform": ("lower_bound", "upper_bound"),
    "correlated": ("centre", "covariance"),
}


def required_keys(distribution: str, pattern: str) -> tuple[str, ...]:
    """The stats keys a distribution and pattern need (orale draws its offsets from ``spread``)."""
    if distribution not in DISTRIBUTION_KEYS:
        raise UnravelError(f"unknown distribution {distribution!r}; allowed: {', '.join(DISTRIBUTIONS)}")
    keys = DISTRIBUTION_KEYS[distribution]
    return (*keys, "spread") if pattern == "orale" and "spread" not in keys else keys


def expected_rows(pattern: str, k: int, d: int, num_loops: int) -> int:
    """Rows of a pattern over a (k, d) base repeated ``num_loops`` times.

    The shapes are listed in docs/ARCHITECTURE.md, "Latent sources".
    """
    match pattern:
        case "default":
            return k * num_loops
        case "fibo":
            total, prev, f = 0, 1, 1
            while f <= k:
                total += f
                prev, f = f, prev + f
            return total * num_loops
        case "orale":
            return 64 * k * num_loops
        case "blender":
            return k * num_loops * (k * d + 1)
        case "swapper":
            return k * k * num_loops
    raise UnravelError(f"unknown pattern {pattern!r}; allowed: {', '.join(PATTERNS)}")


def check_options(pattern: str, k: int, num_loops: int, num_files: int) -> None:
    """Refuse options no pattern can use, with the minimum allowed.

    Raises:
        UnravelError: an unknown pattern, or a count below its minimum.
    """
    if pattern not in PATTERNS:
        raise UnravelError(f"unknown pattern {pattern!r}; allowed: {', '.join(PATTERNS)}")
    for name, value in (("--num-latents", k), ("--num-loops", num_loops), ("--num-files", num_files)):
        if value < 1:
            raise UnravelError(f"{name} must be >= 1, got {value}")
    if pattern == "fibo" and k < FIBO_MIN_FRAMES:
        raise UnravelError(
            f"--num-latents {k} is too small for the fibo pattern: it needs at least {FIBO_MIN_FRAMES} "
            f"frames (prefixes of the first Fibonacci numbers 1, 2, 3, 5, 8, 13, 21, 34, 55)"
        )


def draw_base(
    stats: dict[str, np.ndarray], distribution: str, k: int, rng: np.random.Generator
) -> np.ndarray:
    """A base array (k, d) float32 drawn from ``stats``.

    Raises:
        UnravelError: unknown distribution, or a covariance that is not positive semi-definite.
    """
    match distribution:
        case "normal":
            return generators.gen_normal(stats["centre"], stats["spread"], k, rng)
        case "uniform":
            return generators.gen_uniform(stats["centre"], stats["spread"], k, rng)
        case "iqr-uniform":
            return generators.gen_iqr_uniform(stats["lower_bound"], stats["upper_bound"], k, rng)
        case "correlated":
            try:
                return generators.gen_correlated(stats["centre"], stats["covariance"], k, rng)
            except ValueError as exc:
                raise UnravelError(f"correlated distribution: {exc}") from exc
    raise UnravelError(f"unknown distribution {distribution!r}; allowed: {', '.join(DISTRIBUTIONS)}")


def make_pattern(
    stats: dict[str, np.ndarray],
    distribution: str,
    pattern: str,
    k: int,
    num_loops: int,
    rng: np.random.Generator,
) -> np.ndarray:
    """One generated array (rows, d) float32: base array(s) drawn from ``stats``, shaped by ``pattern``."""
    a1 = draw_base(stats, distribution, k, rng)
    match pattern:
        case "default":
            return patterns.default(a1, num_loops)
        case "fibo":
            return patterns.fibo(a1, num_loops)
        case "orale":
            return patterns.orale(a1, num_loops, rng, stats["spread"])
        case "blender":
            return patterns.blender(a1, draw_base(stats, distribution, k, rng), num_loops)
        case "swapper":
            return patterns.swapper(a1, draw_base(stats, distribution, k, rng), num_loops, rng)
    raise UnravelError(f"unknown pattern {pattern!r}; allowed: {', '.join(PATTERNS)}")


@dataclass(frozen=True)
class GeneratedFile:
    """The files written for one generated array.

    Attributes:
        npy: latents (1, d, N) float32.
        wav: the same latents as a 32-bit float latent WAV.
        plot: a PNG of the array, or None.
        n_frames: N.
    """

    npy: Path
    wav: Path
    plot: Path | None
    n_frames: int


def generate_files(
    stats: dict[str, np.ndarray],
    *,
    distribution: str,
    pattern: str,
    num_latents: int,
    num_loops: int,
    seed: int,
    num_files: int,
    output: Path,
    name: str,
    sr: int,
    ratio: int,
    plot: bool = False,
) -> list[GeneratedFile]:
    """Write ``num_files`` generated arrays as ``output/<name>_<i>.npy``, ``<name>_<i>.latent.wav`` (header
    rate ``sr // ratio``, the exact ``sr / ratio`` in its comment) and, with ``plot``, ``<name>_<i>.png``.

    Raises:
        UnravelError: options out of range (fibo's minimum included), a covariance that is not positive
            semi-definite.
    """
    check_options(pattern, num_latents, num_loops, num_files)
    if plot:
        from latentd.unravel.plots import require_matplotlib

        require_matplotlib()
    latent_wav_rate(sr, ratio)  # checks sr and ratio
    output = Path(output)
    output.mkdir(parents=True, exist_ok=True)
    rng = np.random.default_rng(seed)
    written = []
    for i in range(num_files):
        frames = make_pattern(stats, distribution, pattern, num_latents, num_loops, rng)
        npy = write_npy(output / f"{name}_{i}.npy", frames)
        wav = write_latent_wav(output / f"{name}_{i}.latent.wav", frames, sr / ratio)
        png = None
        if plot:
            from latentd.unravel.plots import plot_latents

            title = (
                f"{name}_{i}: {pattern} over {distribution}, k={num_latents}, loops={num_loops}, seed={seed} "
                f"({bpm(sr, ratio, num_latents):.2f} BPM)"
            )
            png = plot_latents(frames, output / f"{name}_{i}.png", title=title, latent_rate_hz=sr / ratio)
        written.append(GeneratedFile(npy=npy, wav=wav, plot=png, n_frames=len(frames)))
    return written
