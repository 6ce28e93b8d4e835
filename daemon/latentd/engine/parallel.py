"""Parallel decode: the models of a piece decode at the same time, each in its own thread.

Each model group owns its model instance, and torch releases the GIL inside its operators, so the
decode calls of different models run on different cores (a 4-core Raspberry Pi uses them all). What
touches shared state stays in the engine thread, in group order: stepping the sources and morphs
(``ModelGroup.prepare``) before the calls, resampling and the FIFO (``ModelGroup.finish``) after them.

Latents and every model without randomness give the same samples as a serial decode. Models that draw
from torch's one global random generator inside ``decode`` (RAVE v2's noise synthesis, vschaos2's
random phase; :func:`draws_random` tells them apart) decode one after another in one thread of their
own, the *random lane*, still beside the engine's mixing: their calls are submitted in a fixed order, so
their draws come in that order and their noise stays repeatable from the seed. With
``audio.parallel_random`` they decode in parallel too, each in its own thread: faster on many cores, but
their draws then come in an order that depends on thread timing, and their noise is no longer repeatable.
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


def sort_random(decoder: ParallelDecoder, groups: list[ModelGroup]) -> list[str]:
    """Tell ``decoder`` which of ``groups`` draw nothing random (they may decode in parallel); log
    ``decode.random_parallel`` when two or more that draw decode in parallel (``parallel_random``: their
    noise then depends on thread timing). Returns the names of the models that draw."""
    drawing = [g.name for g in groups if draws_random(g.model)]
    decoder.deterministic = {g for g in groups if g.name not in drawing}
    if len(drawing) > 1 and decoder.parallel_random:
        log.warning(
            "decode.random_parallel",
            models=drawing,
            note="these models draw random numbers inside decode and decode in parallel "
            "(parallel_random = true): their noise is not repeatable from the seed",
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

    A group not known to draw nothing random (see :func:`sort_random`; a group made later by a model
    swap, until told) decodes in the random lane, one call at a time in submission order, unless
    ``parallel_random``.

    Args:
        threads: decode calls running at once besides the engine thread's work (1: serially).
        parallel_random: models that draw random numbers decode in parallel too (not repeatable).
    """

    def __init__(self, threads: int = 1, parallel_random: bool = False) -> None:
        self.threads = max(1, threads)
        self.parallel_random = parallel_random
        self.deterministic: set[ModelGroup] = set()  # groups whose decode draws nothing random
        self._pool: ThreadPoolExecutor | None = None
        self._lane: ThreadPoolExecutor | None = None  # one thread: the random lane
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
            self._ahead[group] = self._executor(group).submit(group.run, group.prepare())

    def _executor(self, group: ModelGroup) -> ThreadPoolExecutor:
        if self.parallel_random or group in self.deterministic:
            if self._pool is None:
                self._pool = ThreadPoolExecutor(self.threads, thread_name_prefix="latentd-decode")
            return self._pool
        # One thread, first in first out: the draws come in the order the calls were submitted.
        if self._lane is None:
            self._lane = ThreadPoolExecutor(1, thread_name_prefix="latentd-decode-random")
        return self._lane

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
        for pool in (self._pool, self._lane):
            if pool is not None:
                pool.shutdown(wait=True)
        self._pool = self._lane = None
