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


def warn_random(groups: list[ModelGroup]) -> list[str]:
    """Log ``decode.random_parallel`` when two or more models draw random numbers inside ``decode``
    (their noise then depends on thread timing); returns those models' names."""
    drawing = [g.name for g in groups if draws_random(g.model)]
    if len(drawing) > 1:
        log.warning(
            "decode.random_parallel",
            models=drawing,
            note="these models draw random numbers inside decode and decode in parallel: their noise "
            "is not repeatable from the seed (decode_threads = 1 makes it so)",
        )
    return drawing


class ParallelDecoder:
    """Fills model groups' FIFOs; with more than one thread, each model decodes one call ahead, in the
    background, while the engine mixes and the other models decode.

    Serial (``threads`` 1): a group decodes when its FIFO runs short, in the engine thread.

    Parallel: when a group's FIFO, after this block, holds less than one call of audio, its next call's
    input is prepared (engine thread: sources, morphs, at a block fixed by the FIFO's level alone) and
    decoded by a worker thread; the engine waits for that call only when the FIFO needs its audio. A call
    then has its whole duration of audio to finish, whatever the other models do. Inputs are prepared at
    blocks that depend on the FIFO levels only, so the samples do not depend on thread timing (except the
    noise of models that draw random numbers, see the module); a control change reaches a model's audio
    one call later than in a serial decode.

    Args:
        threads: decode calls running at once besides the engine thread's work (1: serially).
    """

    def __init__(self, threads: int = 1) -> None:
        self.threads = max(1, threads)
        self._pool: ThreadPoolExecutor | None = None
        self._ahead: dict[ModelGroup, Future[np.ndarray]] = {}  # a group's call decoding in the background

    def fill(self, groups: list[ModelGroup], frames: int) -> None:
        """Make at least ``frames`` samples per row ready in every group of ``groups``.

        Raises:
            Exception: what a group's decode raised, in the engine thread (the other groups' calls
                keep their results).
        """
        if self.threads == 1 and not self._ahead:
            for group in groups:
                group.fill(frames)
            return
        for group in groups:
            ahead = self._ahead.get(group)
            if ahead is not None and group.available < frames:
                del self._ahead[group]
                group.finish(ahead.result())
            group.fill(frames)  # a call shorter than a block, or the first call: decoded here
        if self.threads == 1:
            return
        for group in groups:
            if group in self._ahead or group.available - frames >= group.chunk_samples:
                continue
            self._ahead[group] = self._workers().submit(group.run, group.prepare())

    def _workers(self) -> ThreadPoolExecutor:
        if self._pool is None:
            self._pool = ThreadPoolExecutor(self.threads, thread_name_prefix="latentd-decode")
        return self._pool

    def wait(self) -> None:
        """Wait until no call decodes in the background (before a command touches a model); the calls'
        audio stays pending, so the FIFOs, and the samples, are as if nothing had waited."""
        for future in list(self._ahead.values()):
            future.exception()

    def forget(self, group: ModelGroup) -> None:
        """Drop ``group``'s call decoding ahead (the group is released), once it has finished."""
        future = self._ahead.pop(group, None)
        if future is not None:
            future.exception()

    def pending(self, group: ModelGroup) -> np.ndarray | None:
        """The audio of ``group``'s call decoding ahead, not yet in its FIFO (waits for it); None if none.

        A checkpoint of the engine keeps it: the call's sources have already been stepped.
        """
        future = self._ahead.get(group)
        return None if future is None else future.result()

    def set_pending(self, group: ModelGroup, audio: np.ndarray) -> None:
        """Restore ``group``'s call decoding ahead from a checkpoint's :meth:`pending` audio."""
        done: Future[np.ndarray] = Future()
        done.set_result(audio)
        self._ahead[group] = done

    def close(self) -> None:
        """Stop the worker threads (after their current call)."""
        self.wait()
        if self._pool is not None:
            self._pool.shutdown(wait=True)
            self._pool = None
