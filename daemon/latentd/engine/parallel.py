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

import threading
from collections import deque
from collections.abc import Callable
from concurrent.futures import Future, ThreadPoolExecutor
from typing import TypeVar

import numpy as np
import structlog
import torch

from latentd.engine.callshape import decode_input
from latentd.engine.decode import ModelGroup
from latentd.installation.models import LoadedModel

log = structlog.get_logger("latentd.parallel")

T = TypeVar("T")


def _finished(value: T) -> Future[T]:
    """A future already holding ``value``."""
    future: Future[T] = Future()
    future.set_result(value)
    return future


def _done(read: Callable[[], T]) -> Future[T]:
    """A future already holding ``read()``'s value (or its exception)."""
    try:
        return _finished(read())
    except Exception as exc:
        future: Future[T] = Future()
        future.set_exception(exc)
        return future


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
    """Fills model groups' FIFOs; with more than one thread, each model decodes ahead, in the background,
    while the engine mixes and the other models decode.

    Serial (``threads`` 1): a group decodes when its FIFO runs short, in the engine thread.

    Parallel: a group always has a call decoding ahead. The first call is decoded in the engine thread;
    the first call ahead is submitted when the FIFO, after this block, holds less than one call of audio.
    One block before the FIFO needs a call's audio, the next call's input is prepared (engine thread:
    sources, morphs) and queued behind it, so the model's thread goes from one call to the next without
    waiting for the engine thread, which takes the finished call's audio, resamples and mixes it
    meanwhile. A call then has its whole duration of audio to finish, whatever the other models do.
    Inputs are prepared at blocks that depend on the FIFO levels alone, so the samples do not depend on
    thread timing (except the noise of models that draw random numbers, see the module); a control change
    reaches a model's audio one call and one block later than in a serial decode.

    Each group decodes in its own thread, in call order; at most ``threads`` calls decode at once. A
    group not known to draw nothing random (see :func:`sort_random`; a group made later by a model swap,
    until told) decodes in the random lane, one thread shared by all such groups, in submission order,
    unless ``parallel_random``.

    Args:
        threads: decode calls running at once besides the engine thread's work (1: serially).
        parallel_random: models that draw random numbers decode in parallel too (not repeatable).
    """

    def __init__(self, threads: int = 1, parallel_random: bool = False) -> None:
        self.threads = max(1, threads)
        self.parallel_random = parallel_random
        self.deterministic: set[ModelGroup] = set()  # groups whose decode draws nothing random
        self._lanes: dict[ModelGroup, ThreadPoolExecutor] = {}  # one thread per group: calls in order
        self._lane: ThreadPoolExecutor | None = None  # one thread: the random lane
        self._running = threading.BoundedSemaphore(self.threads)  # calls decoding at once
        self._ahead: dict[ModelGroup, deque[Future[np.ndarray]]] = {}  # calls decoding in the background

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
            while group.available < frames:
                if not ahead:
                    group.fill(frames)  # the first call, or serially the calls pending from a checkpoint
                    break
                audio = ahead.popleft().result()
                if not ahead:
                    del self._ahead[group]
                group.finish(audio)
        if self.threads == 1:
            return
        for group in groups:
            left = group.available - frames  # in the FIFO after this block
            ahead = self._ahead.get(group)
            if not ahead:
                if left < group.chunk_samples:
                    self._submit(group)
            elif len(ahead) == 1 and left < frames:
                # The next block takes the call ahead: queue the one after it now.
                self._submit(group)

    def _submit(self, group: ModelGroup) -> None:
        ahead = self._ahead.setdefault(group, deque())
        group.in_flight = len(ahead)
        try:
            z = group.prepare()
        finally:
            group.in_flight = 0
        ahead.append(self._executor(group).submit(self._run, group, z))

    def _run(self, group: ModelGroup, z: np.ndarray) -> np.ndarray:
        with self._running:
            return group.run(z)

    def _executor(self, group: ModelGroup) -> ThreadPoolExecutor:
        if self.parallel_random or group in self.deterministic:
            lane = self._lanes.get(group)
            if lane is None:
                lane = self._lanes[group] = ThreadPoolExecutor(
                    1, thread_name_prefix=f"latentd-decode-{group.name}"
                )
            return lane
        # One thread, first in first out: the draws come in the order the calls were submitted.
        if self._lane is None:
            self._lane = ThreadPoolExecutor(1, thread_name_prefix="latentd-decode-random")
        return self._lane

    def wait(self, group: ModelGroup | None = None) -> None:
        """Wait until no call of ``group`` (None: of any group) decodes in the background, before a
        command touches its model; the calls' audio stays pending, so the FIFOs, and the samples, are as
        if nothing had waited."""
        for calls in [self._ahead.get(group, ())] if group is not None else list(self._ahead.values()):
            for future in calls:
                future.exception()

    def forget(self, group: ModelGroup) -> None:
        """Drop ``group``'s calls decoding ahead (the group is released), once they have finished."""
        for future in self._ahead.pop(group, ()):
            future.exception()
        lane = self._lanes.pop(group, None)
        if lane is not None:
            lane.shutdown(wait=True)

    def ahead(self, group: ModelGroup) -> list[Future[np.ndarray]]:
        """``group``'s calls decoding ahead, whose audio is not in its FIFO yet, in order (no wait).

        A checkpoint of the engine keeps their audio: the calls' sources have already been stepped.
        """
        return list(self._ahead.get(group, ()))

    def after_calls(self, group: ModelGroup, read: Callable[[], T]) -> Future[T]:
        """``read()`` run once ``group``'s calls decoding ahead are done and before any later one (in the
        group's thread; at once when none is running): a checkpoint reads the model's caches so."""
        if all(call.done() for call in self._ahead.get(group, ())):
            return _done(read)
        return self._executor(group).submit(read)

    def after_random_calls(self, read: Callable[[], T]) -> Future[T]:
        """``read()`` run after the random lane's calls so far, before any later one (at once without a
        lane): a checkpoint reads torch's generator so."""
        if self._lane is None:
            return _done(read)
        return self._lane.submit(read)

    def set_pending(self, group: ModelGroup, calls: list[np.ndarray]) -> None:
        """Restore ``group``'s calls decoding ahead from the audio a checkpoint kept of them (see
        :meth:`ahead`)."""
        if calls:
            self._ahead[group] = deque(_finished(audio) for audio in calls)

    def close(self) -> None:
        """Stop the worker threads (after their current call)."""
        self.wait()
        for pool in (*self._lanes.values(), self._lane):
            if pool is not None:
                pool.shutdown(wait=True)
        self._lanes.clear()
        self._lane = None
