"""Pattern source: an UnRAVEl pattern over generated or loaded base arrays, played as a loop."""

from __future__ import annotations

from pathlib import Path

import numpy as np

from latentd.sources import generators, patterns
from latentd.sources.base import Source, per_dim
from latentd.sources.specs import PatternSpec
from latentd.tempo import TempoMatch, nearest_k_at_rate
from latentd.unravel.latentio import read_latents


class PatternSource(Source):
    """Loops an UnRAVEl pattern (``default``, ``fibo``, ``orale``, ``blender``, ``swapper``) frame by frame.

    The base arrays (k frames x latent_size) come from a generator seeded by the voice seed (normal,
    uniform, iqr_uniform, correlated) or from latent files; ``blender`` and ``swapper`` take a second base
    array (a second draw, or ``file2``). A trigger restarts the loop; ``reseed`` draws everything anew.
    With ``bpm``, generated bases hold the k frames whose loop is nearest that tempo (``tempo`` tells which).
    """

    def __init__(
        self, spec: PatternSpec, *, latent_size: int, latent_rate_hz: float, seed: int, base_dir: Path | None
    ) -> None:
        super().__init__(spec, latent_size=latent_size, latent_rate_hz=latent_rate_hz, seed=seed)
        self._spec = spec
        # The tempo followed (``bpm`` in the spec): base arrays of k frames, as near the asked BPM as can be.
        self.tempo: TempoMatch | None = None
        self._k = spec.frames
        if spec.bpm is not None:
            self.tempo = nearest_k_at_rate(latent_rate_hz, spec.bpm)
            self._k = self.tempo.k
        self._mean = per_dim(spec.mean, "mean", latent_size)
        self._std = per_dim(spec.std, "std", latent_size)
        self._lower = per_dim(spec.lower, "lower", latent_size)
        self._upper = per_dim(spec.upper, "upper", latent_size)
        if np.any(self._lower > self._upper):
            raise ValueError("`lower` must not exceed `upper` in any dimension")
        self._covariance: np.ndarray | None = None
        if spec.covariance is not None:
            self._covariance = np.asarray(spec.covariance, dtype=np.float64)
            if self._covariance.shape != (latent_size, latent_size):
                raise ValueError(
                    f"`covariance`: shape {self._covariance.shape} given, but latent_size is {latent_size}; "
                    f"give {latent_size} rows of {latent_size} values"
                )
        self._files = [
            self._load(name, field, base_dir) for name, field in ((spec.file, "file"), (spec.file2, "file2"))
        ]
        self._restart(seed)

    @property
    def frames(self) -> np.ndarray:
        """The whole loop, (rows, latent_size) float32, before scale, offset and smoothing."""
        return self._loop.copy()

    def trigger(self) -> None:
        """Restart the loop at its first row."""
        self._row = 0

    def _load(self, name: str | None, field: str, base_dir: Path | None) -> np.ndarray | None:
        if name is None:
            return None
        path = Path(name)
        if not path.is_absolute() and base_dir is not None:
            path = base_dir / path
        frames = read_latents(path)
        if frames.shape[1] != self.latent_size:
            raise ValueError(
                f"`{field}` {path}: {frames.shape[1]} latent dims, but latent_size is {self.latent_size}"
            )
        return frames

    def _base(self, rng: np.random.Generator, which: int) -> np.ndarray:
        spec = self._spec
        match spec.base:
            case "file":
                loaded = self._files[which]
                if loaded is None:  # the spec validator requires file2 where a second array is used
                    raise ValueError(f"pattern {spec.pattern!r} over files needs `file2`")
                return loaded
            case "normal":
                return generators.gen_normal(self._mean, self._std, self._k, rng)
            case "uniform":
                return generators.gen_uniform(self._mean, self._std, self._k, rng)
            case "iqr_uniform":
                return generators.gen_iqr_uniform(self._lower, self._upper, self._k, rng)
            case "correlated":
                assert self._covariance is not None  # ensured by the spec validator
                return generators.gen_correlated(self._mean, self._covariance, self._k, rng)
        raise ValueError(f"unknown base {spec.base!r}")

    def _restart(self, seed: int) -> None:
        rng = np.random.default_rng(seed)
        spec = self._spec
        a1 = self._base(rng, 0)
        match spec.pattern:
            case "default":
                loop = patterns.default(a1, spec.num_loops)
            case "fibo":
                loop = patterns.fibo(a1, spec.num_loops)
            case "orale":
                loop = patterns.orale(a1, spec.num_loops, rng, self._std)
            case "blender":
                loop = patterns.blender(a1, self._base(rng, 1), spec.num_loops)
            case "swapper":
                loop = patterns.swapper(a1, self._base(rng, 1), spec.num_loops, rng)
        self._loop = loop
        self._row = 0

    def _generate(self, n_frames: int) -> np.ndarray:
        rows = (self._row + np.arange(n_frames)) % len(self._loop)
        self._row = (self._row + n_frames) % len(self._loop)
        return self._loop[rows].T.astype(np.float64)
