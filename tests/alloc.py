"""Checking that real-time code allocates nothing that grows, under tracemalloc."""

from __future__ import annotations

import tracemalloc
from collections.abc import Callable


def allocation_growth(run: Callable[[int], None], calls: int = 10_000, warm: int = 500) -> int:
    """Bytes still allocated after ``run(calls)`` that were not before it (after ``run(warm)`` warmed caches).

    ``run(n)`` makes n rounds of the calls under test. A per-call leak of even one small object shows as
    hundreds of kilobytes over 10,000 rounds; a few hundred bytes are the interpreter's own noise.
    """
    run(warm)  # warm caches (int objects, method caches)
    tracemalloc.start()
    try:
        run(100)
        before = tracemalloc.take_snapshot()
        run(calls)
        after = tracemalloc.take_snapshot()
    finally:
        tracemalloc.stop()
    return sum(stat.size_diff for stat in after.compare_to(before, "filename"))
