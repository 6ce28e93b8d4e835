"""UnRAVEl patterns: exact shapes, row order and seeded draws."""

from __future__ import annotations

import numpy as np
import pytest

from latentd.sources import patterns


def base(k: int, d: int, start: float = 0.0) -> np.ndarray:
    """Rows numbered so that row order can be read back: a[i, j] = start + i + j / 100."""
    return (start + np.arange(k)[:, None] + np.arange(d)[None, :] / 100).astype(np.float32)


@pytest.mark.parametrize(
    ("k", "d", "loops", "rows"),
    [
        ((10), 8, 1, {"fibo": 19, "orale": 640, "blender": 810, "swapper": 100, "default": 10}),
        ((55), 16, 4, {"fibo": 568, "orale": 14080, "blender": 193820, "swapper": 12100, "default": 220}),
    ],
)
def test_shape_table(k: int, d: int, loops: int, rows: dict[str, int]) -> None:
    a1, a2 = base(k, d), base(k, d, start=1000)
    rng = np.random.default_rng(0)
    got = {
        "fibo": patterns.fibo(a1, loops),
        "orale": patterns.orale(a1, loops, rng, 0.1),
        "blender": patterns.blender(a1, a2, loops),
        "swapper": patterns.swapper(a1, a2, loops, rng),
        "default": patterns.default(a1, loops),
    }
    assert {name: arr.shape for name, arr in got.items()} == {name: (n, d) for name, n in rows.items()}
    assert all(arr.dtype == np.float32 for arr in got.values())


def test_fibo_row_indices_for_k_10() -> None:
    out = patterns.fibo(base(10, 2), 1)
    expected = [0, 0, 1, 0, 1, 2, 0, 1, 2, 3, 4, 0, 1, 2, 3, 4, 5, 6, 7]
    np.testing.assert_array_equal(out[:, 0], expected)
    np.testing.assert_array_equal(patterns.fibo(base(10, 2), 2)[19:], out)


def test_blender_walks_from_a1_to_a2_cell_by_cell() -> None:
    a1, a2 = base(3, 2), base(3, 2, start=1000)
    out = patterns.blender(a1, a2, 2)
    k, d = 3, 2
    blocks = out.reshape(-1, k, d)
    np.testing.assert_array_equal(blocks[0], a1)
    np.testing.assert_array_equal(blocks[1], a1)
    np.testing.assert_array_equal(blocks[-1], a2)
    # After the first replacement only cell (0, 0) comes from a2.
    changed = blocks[2] != a1
    assert changed[0, 0] and changed.sum() == 1
    np.testing.assert_array_equal(a1, base(3, 2))  # inputs untouched


def test_orale_structure_and_seeded_offsets() -> None:
    a = base(2, 3)
    out = patterns.orale(a, 1, np.random.default_rng(5), np.array([0.1, 0.2, 0.3]))
    again = patterns.orale(a, 1, np.random.default_rng(5), np.array([0.1, 0.2, 0.3]))
    np.testing.assert_array_equal(out, again)
    k = 2
    s1 = out[: 4 * k]
    np.testing.assert_array_equal(s1[: 3 * k], np.tile(a, (3, 1)))
    u1 = a - s1[3 * k :]
    assert np.allclose(u1, u1[0]) and np.all(np.abs(u1[0]) <= [0.1, 0.2, 0.3])
    f1 = out[: 16 * k]
    np.testing.assert_array_equal(out[16 * k : 48 * k], np.tile(f1, (2, 1)))
    u3 = f1 - out[48 * k :]
    assert np.allclose(u3, u3[0]) and np.any(u3[0] != 0)


def test_swapper_is_seeded_and_exchanges_cells() -> None:
    a1, a2 = base(4, 3), base(4, 3, start=1000)
    out = patterns.swapper(a1, a2, 1, np.random.default_rng(3))
    np.testing.assert_array_equal(out, patterns.swapper(a1, a2, 1, np.random.default_rng(3)))
    assert not np.array_equal(out, patterns.swapper(a1, a2, 1, np.random.default_rng(4)))
    first = out[:4]
    assert (first != a1).sum() == 1 and np.all(first[first != a1] >= 1000)
    np.testing.assert_array_equal(a1, base(4, 3))


def test_bad_inputs() -> None:
    with pytest.raises(ValueError, match=r"same shape, got \(3, 2\) and \(2, 2\)"):
        patterns.blender(base(3, 2), base(2, 2), 1)
    with pytest.raises(ValueError, match="num_loops must be >= 1"):
        patterns.default(base(3, 2), 0)
    with pytest.raises(ValueError, match=r"shape \(frames, dims\)"):
        patterns.fibo(np.zeros(4), 1)
