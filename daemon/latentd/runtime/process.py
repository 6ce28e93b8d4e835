"""Process-wide settings, in one place: torch threads, GIL switch interval, TorchScript warnings, gc.

This module imports nothing heavy (torch only inside :func:`configure_process`), so any module may use
its TorchScript warning filter.
"""

from __future__ import annotations

import contextlib
import gc
import os
import sys
import warnings
from collections.abc import Iterator

SWITCH_INTERVAL_S = 0.001  # measured: a 1 ms GIL switch interval cuts xruns ~20× beside a busy thread


def quiet_torchscript_warnings() -> None:
    """Filter exactly torch 2.13's deprecation warnings for TorchScript (the nn~ contract is TorchScript).

    Process-wide; :func:`quiet_torchscript` does the same for one block of code.
    """
    for name in ("load", "script", "save"):
        warnings.filterwarnings(
            "ignore", message=rf".*torch\.jit\.{name}.*is deprecated", category=DeprecationWarning
        )


@contextlib.contextmanager
def quiet_torchscript() -> Iterator[None]:
    """Within the block, hide the warnings :func:`quiet_torchscript_warnings` filters (for library code)."""
    with warnings.catch_warnings():
        quiet_torchscript_warnings()
        yield


def configure_process(torch_threads: int = 1, realtime: bool = False, load_torch: bool = True) -> None:
    """Apply process-wide settings before models load.

    Args:
        torch_threads: intra-op threads for decoding; leave a core for JACK on small machines.
        realtime: shorten the GIL switch interval so the JACK callback thread is never starved.
        load_torch: False in a process that never decodes (the JACK process of ``latentd run``).
    """
    if realtime:
        shorten_gil_switch()
    if not load_torch:
        return
    import torch  # here, not at the top: operator commands (send, status) must start fast

    quiet_torchscript_warnings()
    torch.set_num_threads(max(1, torch_threads))
    if torch.get_num_interop_threads() != 1:
        # Fixed once parallel work has started; the intra-op setting is what matters then.
        with contextlib.suppress(RuntimeError):
            torch.set_num_interop_threads(1)
    os.environ.setdefault("OMP_NUM_THREADS", str(max(1, torch_threads)))


def shorten_gil_switch() -> None:
    """Make a thread that waits for the GIL get it within ``SWITCH_INTERVAL_S``, not Python's 5 ms.

    For the JACK callback thread, and for decode threads: each decode call takes the GIL back when
    torch returns, and beside a busy engine thread waited up to 5 ms for it (measured: a 4 ms call of
    the c16 export took twice as long beside a pure-Python loop).
    """
    sys.setswitchinterval(min(sys.getswitchinterval(), SWITCH_INTERVAL_S))


def thaw_heap() -> None:
    """Undo :func:`freeze_heap` and collect, so native objects are released before the interpreter exits."""
    gc.unfreeze()
    gc.collect()


def freeze_heap() -> None:
    """Move everything loaded so far out of the garbage collector's sight (fewer, shorter gc pauses)."""
    gc.collect()
    gc.freeze()
