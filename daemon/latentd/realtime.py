"""Marker for code that runs in the JACK process thread."""

from collections.abc import Callable
from typing import Any, TypeVar

F = TypeVar("F", bound=Callable[..., Any])


def realtime(fn: F) -> F:
    """Mark ``fn`` as real-time code: it runs in the JACK process thread, once per period.

    The contract of a function carrying this mark:

    - no locks (``threading``, ``queue``), no logging, no I/O, no torch, no sleeping;
    - no allocation of arrays or containers (copy into preallocated arrays; transient Python
      objects such as ints and bound methods are unavoidable, but nothing may accumulate);
    - never raises: an exception escaping the JACK process callback silences the client for good.

    The decorator changes nothing at run time; it sets ``fn.__realtime__ = True`` so reviewers and tests
    can find the real-time code.

    Args:
        fn: The function or method to mark.

    Returns:
        ``fn`` itself.
    """
    fn.__realtime__ = True  # type: ignore[attr-defined]
    return fn
