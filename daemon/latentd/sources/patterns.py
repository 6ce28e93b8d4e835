"""UnRAVEl patterns over a base array ``a`` of shape (k frames, d dims), repeated ``L`` times.

Pure functions: they return new float32 arrays of shape (rows, d) and never change their inputs. Where
UnRAVEl draws from an unseeded generator, these take a seeded ``numpy.random.Generator``.
"""

from __future__ import annotations

import numpy as np

#: Pattern names, in the order they are documented.
PATTERN_NAMES = ("default", "fibo", "orale", "blender", "swapper")


def _check(a: np.ndarray, num_loops: int) -> None:
    if a.ndim != 2 or a.shape[0] < 1 or a.shape[1] < 1:
        raise ValueError(f"a pattern needs a base array of shape (frames, dims), got shape {a.shape}")
    if num_loops < 1:
        raise ValueError(f"num_loops must be >= 1, got {num_loops}")


def _check_pair(a1: np.ndarray, a2: np.ndarray, num_loops: int) -> None:
    _check(a1, num_loops)
    if a1.shape != a2.shape:
        raise ValueError(f"both base arrays must have the same shape, got {a1.shape} and {a2.shape}")


def default(a: np.ndarray, num_loops: int) -> np.ndarray:
    """``a`` tiled ``num_loops`` times: k·L rows."""
    _check(a, num_loops)
    return np.tile(a, (num_loops, 1)).astype(np.float32)


def fibo(a: np.ndarray, num_loops: int) -> np.ndarray:
    """The prefixes ``a[0:f]`` for every Fibonacci number f ≤ k (1, 2, 3, 5, 8, ...), tiled L times."""
    _check(a, num_loops)
    prefixes = []
    prev, f = 1, 1
    while f <= a.shape[0]:
        prefixes.append(a[0:f])
        prev, f = f, prev + f
    return np.tile(np.concatenate(prefixes, axis=0), (num_loops, 1)).astype(np.float32)


def orale(a: np.ndarray, num_loops: int, rng: np.random.Generator, std: float | np.ndarray) -> np.ndarray:
    """The 3:1 scheme three levels deep (64·k rows), tiled L times.

    ``s1 = [a, a, a, a - u1]``, ``s2 = s1 + u2``, ``F1 = [s1, s1, s1, s2]``, ``F2 = F1 - u3``,
    ``out = [F1, F1, F1, F2]``; each ``u`` is one per-dimension offset drawn from U(-std, std).
    """
    _check(a, num_loops)
    width = np.broadcast_to(np.asarray(std, dtype=np.float64), (a.shape[1],))

    def offset() -> np.ndarray:
        return rng.uniform(-width, width, size=(1, a.shape[1]))

    s1 = np.concatenate([a, a, a, a - offset()], axis=0)
    s2 = s1 + offset()
    f1 = np.concatenate([s1, s1, s1, s2], axis=0)
    f2 = f1 - offset()
    out = np.concatenate([f1, f1, f1, f2], axis=0)
    return np.tile(out, (num_loops, 1)).astype(np.float32)


def blender(a1: np.ndarray, a2: np.ndarray, num_loops: int) -> np.ndarray:
    """``a1`` turned into ``a2`` cell by cell (frame by frame, then dim by dim), each state L times.

    Rows: k·L·(k·d + 1); the last block equals ``a2``.
    """
    _check_pair(a1, a2, num_loops)
    k, d = a1.shape
    current = np.array(a1, dtype=np.float32)
    blocks = [current.copy() for _ in range(num_loops)]
    for i in range(k):
        for j in range(d):
            current[i, j] = a2[i, j]
            blocks.extend(current.copy() for _ in range(num_loops))
    return np.concatenate(blocks, axis=0)


def swapper(a1: np.ndarray, a2: np.ndarray, num_loops: int, rng: np.random.Generator) -> np.ndarray:
    """k times: swap a random cell (row, dim) between ``a1`` and ``a2``, then append ``a1`` L times.

    Rows: k²·L. Copies are swapped, the inputs stay as they are.
    """
    _check_pair(a1, a2, num_loops)
    k, d = a1.shape
    first = np.array(a1, dtype=np.float32)
    second = np.array(a2, dtype=np.float32)
    blocks: list[np.ndarray] = []
    for _ in range(k):
        row = rng.integers(0, k)
        col = rng.integers(0, d)
        first[row, col], second[row, col] = second[row, col], first[row, col]
        blocks.extend(first.copy() for _ in range(num_loops))
    return np.concatenate(blocks, axis=0)
