"""Parallel decode: the models of a piece decode at the same time, each in its own thread.

Each model group owns its model instance, and torch releases the GIL inside its operators, so the
decode calls of different models run on different cores (a 4-core Raspberry Pi uses them all). What
touches shared state stays in the engine thread, in group order: stepping the sources and morphs
(``ModelGroup.prepare``) before the calls, resampling and the FIFO (``ModelGroup.finish``) after them.

Latents and every model without randomness give the same samples as a serial decode. Models that draw
from torch's one global random generator inside ``decode`` (RAVE v2's noise synthesis, vschaos2's
random phase) get their draws in an order that depends on thread timing when more than one decodes at
once: their noise is no longer repeatable from the seed (:func:`draws_random` tells them apart).
"""

from __future__ import annotations

from concurrent.futures import Future, ThreadPoolExecutor

import numpy as np
import structlog
import torch

from latentd.engine.callshape import decode_input
from latentd.engine.decode import ModelGroup
from latentd.installation.models import LoadedModel

log = structlog.get_logger("latentd.parallel")


def draws_random(model: LoadedModel) -> bool:
    """Whether a decode call of ``model`` draws from torch's global random generator (state reset after)."""
    rng = torch.get_rng_state()
    try:
        model.decode(decode_input(model, 1, 1))
        return not torch.equal(rng, torch.get_rng_state())
    finally:
        torch.set_rng_state(rng)
        model.reset()


class ParallelDecoder:
    """Fills model groups' FIFOs, decoding the groups that need audio at the same time.

    Args:
        threads: decode calls running at once (1: serially, in the calling thread). The engine thread
            runs one call itself, so ``threads - 1`` worker threads are started, on first use.
    """

    def __init__(self, threads: int = 1) -> None:
        self.threads = max(1, threads)
        self._pool: ThreadPoolExecutor | None = None

    def fill(self, groups: list[ModelGroup], frames: int) -> None:
        """Decode until every group in ``groups`` has at least ``frames`` samples per row ready.

        Raises:
            Exception: what a group's decode raised (the first in group order), after every other
                group's call has finished and been appended.
        """
        while True:
            due = [g for g in groups if g.available < frames]
            if not due:
                return
            inputs = [g.prepare() for g in due]  # engine thread, in group order: sources and morphs
            if self.threads == 1 or len(due) == 1:
                for group, z in zip(due, inputs, strict=True):
                    group.finish(group.run(z))
                continue
            self._decode_together(due, inputs)

    def _decode_together(self, due: list[ModelGroup], inputs: list[np.ndarray]) -> None:
        if self._pool is None:
            self._pool = ThreadPoolExecutor(self.threads - 1, thread_name_prefix="latentd-decode")
        pool = self._pool
        # The first `threads - 1` groups go to the workers, the rest run here meanwhile.
        split = self.threads - 1
        futures: list[Future[np.ndarray]] = [
            pool.submit(g.run, z) for g, z in zip(due[:split], inputs[:split], strict=True)
        ]
        results: list[np.ndarray | BaseException] = []
        here: list[np.ndarray | BaseException] = []
        for group, z in zip(due[split:], inputs[split:], strict=True):
            try:
                here.append(group.run(z))
            except Exception as exc:  # re-raised below, once every call has finished
                here.append(exc)
        for future in futures:
            error = future.exception()
            results.append(error if error is not None else future.result())
        results += here
        failed: BaseException | None = None
        for group, result in zip(due, results, strict=True):
            if isinstance(result, BaseException):
                failed = failed or result
            else:
                group.finish(result)
        if failed is not None:
            raise failed

    def close(self) -> None:
        """Stop the worker threads (after their current call)."""
        if self._pool is not None:
            self._pool.shutdown(wait=True)
            self._pool = None
