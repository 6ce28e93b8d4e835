"""Seeded noise exactly as Pure Data's ``noise~`` makes it, sampled the way nn~ samples latent inlets.

``noise~`` is a 32-bit linear congruential generator: it outputs
``((state & 0x7fffffff) - 0x40000000) / 0x40000000`` and then sets
``state = state * 435898247 + 382842987 (mod 2**32)``. nn~ takes the last audio sample of each
``ratio``-sample hop as the latent value, so latent frame ``t`` is audio sample ``(t + 1) * ratio - 1``.
Advancing ``ratio`` samples is one affine map mod 2**32, so each frame costs O(1).
Seeds as Pd's messages make them, and unseeded ``noise~`` objects, come from :mod:`latentd.sources.pd`.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass

import numpy as np

from latentd.sources.base import Source
from latentd.sources.pd import PD_EXACT_LIMIT, pd_instance_seed, pd_seed
from latentd.sources.specs import NoiseSpec

LCG_MUL = 435898247
LCG_ADD = 382842987
MASK32 = 0xFFFFFFFF
#: Seed distance between the streams of neighbouring dimensions when seeds are derived.
DIM_SEED_STRIDE = 1000


def lcg_jump(n_steps: int) -> tuple[int, int]:
    """The affine map ``state -> a * state + c (mod 2**32)`` equal to ``n_steps`` LCG steps."""
    a, c = 1, 0
    step_a, step_c = LCG_MUL, LCG_ADD
    n = n_steps
    while n:  # square and multiply on affine maps
        if n & 1:
            a, c = (step_a * a) & MASK32, (step_a * c + step_c) & MASK32
        step_a, step_c = (step_a * step_a) & MASK32, (step_a * step_c + step_c) & MASK32
        n >>= 1
    return a, c


def pd_noise_values(states: np.ndarray) -> np.ndarray:
    """The float32 audio values ``noise~`` outputs for LCG ``states`` (uint64 holding 32-bit values)."""
    centred = (states & 0x7FFFFFFF).astype(np.int64) - 0x40000000
    # Pd converts the int to float first, then scales by a power of two (exact).
    return centred.astype(np.float32) * np.float32(1.0 / 0x40000000)


def pd_noise_audio(seed: int, n_samples: int) -> np.ndarray:
    """``n_samples`` audio-rate values of ``noise~`` seeded with ``seed`` (a plain reference loop)."""
    state = seed & MASK32
    out = np.empty(n_samples, dtype=np.float32)
    for i in range(n_samples):
        out[i] = np.float32((state & 0x7FFFFFFF) - 0x40000000) * np.float32(1.0 / 0x40000000)
        state = (state * LCG_MUL + LCG_ADD) & MASK32
    return out


def derived_seeds(base: int, latent_size: int) -> list[int]:
    """Per-dimension seeds ``base + 1000 * dim``, as signed values (the streams take them mod 2**32).

    From a base Pd takes exactly (|base| <= 2^24, as every voice seed), a seed past 2^24 counts on from 1,
    so every derived seed can be typed into a Pd patch; from other bases they are plain sums.
    """
    seeds = [base + DIM_SEED_STRIDE * dim for dim in range(latent_size)]
    if abs(base) > PD_EXACT_LIMIT:
        return seeds
    return [s if s <= PD_EXACT_LIMIT else (s - 1) % PD_EXACT_LIMIT + 1 for s in seeds]


@dataclass(frozen=True)
class SeedChange:
    """A seed Pd plays differently from how the piece writes it (``seed_from = "pd"``).

    Attributes:
        key: where, below the source's key: ``seeds[2]``, ``seed_bank[1]`` or ``seed_bank[1][0]``.
        written: the seed as written (for a derived seed, ``base + 1000 * dim`` of the converted base).
        plays: the seed Pd's ``noise~`` takes from it, which the source plays.
        dim: the latent dimension, for a seed derived from a base; else None.
    """

    key: str
    written: int
    plays: int
    dim: int | None = None

    def __str__(self) -> str:
        what = f"{self.key} (dimension {self.dim})" if self.dim is not None else self.key
        return (
            f"{what}: Pd turns seed {self.written} into {self.plays} (a 32-bit float, then an int); "
            f"{self.plays} is played"
        )


def pd_seed_changes(spec: NoiseSpec, latent_size: int) -> list[SeedChange]:
    """Every seed that ``seed_from = "pd"`` changes, in key order (empty for exact seeds)."""
    if spec.seed_from != "pd":
        return []
    changes: list[SeedChange] = []
    entries: list[tuple[str, int | Sequence[int]]] = []
    if spec.seeds is not None:
        entries = [(f"seeds[{i}]", seed) for i, seed in enumerate(spec.seeds)]
    elif spec.seed_bank is not None:
        entries = [(f"seed_bank[{i}]", entry) for i, entry in enumerate(spec.seed_bank)]
    for key, entry in entries:
        if isinstance(entry, int):
            base = pd_seed(entry)
            if base != entry:
                changes.append(SeedChange(key, entry, base))
            if key.startswith("seed_bank"):  # a base seed: its derived seeds are typed into Pd too
                for dim, seed in enumerate(derived_seeds(base, latent_size)[1:], start=1):
                    if pd_seed(seed) != seed:
                        changes.append(SeedChange(key, seed, pd_seed(seed), dim))
        else:
            for j, seed in enumerate(entry):
                if pd_seed(seed) != seed:
                    changes.append(SeedChange(f"{key}[{j}]", seed, pd_seed(seed)))
    return changes


def instance_numbers(spec: NoiseSpec, latent_size: int) -> list[int] | None:
    """The Pd ``noise~`` instance each dimension plays (``pd_instance``), or None when not given."""
    k = spec.pd_instance
    if k is None:
        return None
    if isinstance(k, int):
        return [k + dim for dim in range(latent_size)]
    return list(_check_len(k, "pd_instance", latent_size, what="instance numbers"))


class NoiseSource(Source):
    """One Pd ``noise~`` stream per latent dimension, one value every ``ratio`` audio samples.

    With a seed bank, each trigger moves to the next entry (cycling); otherwise a trigger restarts the
    streams when ``restart_on_trigger`` is set. Smoothing (``smooth_s``) acts as slew.
    """

    def __init__(
        self, spec: NoiseSpec, *, latent_size: int, latent_rate_hz: float, ratio: int, seed: int
    ) -> None:
        super().__init__(spec, latent_size=latent_size, latent_rate_hz=latent_rate_hz, seed=seed)
        self._restart_on_trigger = spec.restart_on_trigger
        # Seeds typed into a Pd patch play what Pd's `seed` message makes of them.
        played: Callable[[int], int] = pd_seed if spec.seed_from == "pd" else int
        self._pinned: list[int] | None = None
        if spec.seeds is not None:
            self._pinned = [played(s) & MASK32 for s in _check_len(spec.seeds, "seeds", latent_size)]
        instances = instance_numbers(spec, latent_size)
        if instances is not None:
            self._pinned = [pd_instance_seed(k) & MASK32 for k in instances]
        self._bank: list[list[int]] | None = None
        if spec.seed_bank is not None:
            self._bank = [
                [played(s) & MASK32 for s in derived_seeds(played(entry), latent_size)]
                if isinstance(entry, int)
                else [played(s) & MASK32 for s in _check_len(entry, f"seed_bank[{i}]", latent_size)]
                for i, entry in enumerate(spec.seed_bank)
            ]
        self._bank_index = 0
        # The first sample nn~ reads is number ratio - 1; every later one is ratio samples on.
        self._first = lcg_jump(ratio - 1)
        self._hop_a, self._hop_c = lcg_jump(ratio)
        self._table_a = np.ones(1, dtype=np.uint64)
        self._table_c = np.zeros(1, dtype=np.uint64)
        self._state = np.zeros(latent_size, dtype=np.uint64)
        self._restart(seed)

    def current_seeds(self) -> list[int]:
        """The seeds (one per dimension, as 32-bit values) the streams started from last."""
        return list(self._seeds)

    def trigger(self) -> None:
        """Next seed of the bank, or a restart when ``restart_on_trigger``; else nothing."""
        if self._bank is not None:
            self._bank_index = (self._bank_index + 1) % len(self._bank)
            self._start(self._bank[self._bank_index])
        elif self._restart_on_trigger:
            self._start(self._seeds)

    def _restart(self, seed: int) -> None:
        # Pinned seeds and banks come from the piece (often from a Pd patch) and win over the voice seed.
        if self._bank is not None:
            self._bank_index = 0
            self._start(self._bank[0])
        elif self._pinned is not None:
            self._start(self._pinned)
        else:
            self._start([s & MASK32 for s in derived_seeds(seed, self.latent_size)])

    def _start(self, seeds: Sequence[int]) -> None:
        self._seeds = list(seeds)
        a, c = self._first
        self._state = (np.asarray(self._seeds, dtype=np.uint64) * np.uint64(a) + np.uint64(c)) & np.uint64(
            MASK32
        )

    def _ensure_table(self, n_frames: int) -> None:
        """Grow the tables of k-hop maps (k = 0..n-1) by doubling, vectorised."""
        while len(self._table_a) < n_frames:
            jump_a = (self._table_a[-1] * np.uint64(self._hop_a)) & np.uint64(MASK32)
            jump_c = (self._table_a[-1] * np.uint64(self._hop_c) + self._table_c[-1]) & np.uint64(MASK32)
            # (m + k) hops = k hops after m hops: a_k * (A_m s + C_m) + c_k.
            new_a = (self._table_a * jump_a) & np.uint64(MASK32)
            new_c = (self._table_a * jump_c + self._table_c) & np.uint64(MASK32)
            self._table_a = np.concatenate([self._table_a, new_a])
            self._table_c = np.concatenate([self._table_c, new_c])

    def _generate(self, n_frames: int) -> np.ndarray:
        if n_frames == 0:
            return np.zeros((self.latent_size, 0))
        self._ensure_table(n_frames)
        a = self._table_a[:n_frames]
        c = self._table_c[:n_frames]
        # uint64 products of 32-bit values cannot lose bits below 2**32, so masking gives the mod.
        states = (self._state[:, None] * a[None, :] + c[None, :]) & np.uint64(MASK32)
        last = states[:, -1]
        self._state = (last * np.uint64(self._hop_a) + np.uint64(self._hop_c)) & np.uint64(MASK32)
        return pd_noise_values(states).astype(np.float64)


def _check_len(values: Sequence[int], field: str, latent_size: int, what: str = "seeds") -> Sequence[int]:
    if len(values) != latent_size:
        raise ValueError(
            f"`{field}`: {len(values)} {what} given, but latent_size is {latent_size}; give one per dimension"
        )
    return values
