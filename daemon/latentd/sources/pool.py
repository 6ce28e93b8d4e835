"""Pool source: plays the items of a diffusion item pool folder as latents, one after another."""

from __future__ import annotations

import threading
import weakref
from pathlib import Path

import numpy as np

from latentd.diffusion.pool import pool_items
from latentd.sources.base import Source
from latentd.sources.latentfile import resolve
from latentd.sources.specs import PoolSpec
from latentd.unravel.latentio import read_latents


class PoolSource(Source):
    """Plays pool items (``item_<index>_seed<seed>.npy``, oldest name first) frame by frame.

    When built it reads the newest item in the folder. When an item ends, the next one (the oldest item
    newer than the last one queued) follows if a loader thread has read it in advance; otherwise the
    current item plays again, so an empty or stalled pool holds the last item. Until a first item exists
    the frames are zero. ``step`` never touches the disk: it only swaps in an array the loader thread
    has read. A trigger moves on to the queued item (or restarts the current one); ``reseed`` restarts
    the current item (items do not depend on the voice seed). Items whose dims differ from
    ``latent_size`` or that cannot be read are skipped (counted in ``skipped_items``).

    Raises:
        ValueError: the newest item in the folder does not fit ``latent_size``.
    """

    checkpoint_skip = Source.checkpoint_skip | {"_wake", "_closed", "_loader", "_next", "folder"}
    checkpoint_inexact = "a pool source plays items a background process writes as it goes"

    def __init__(
        self, spec: PoolSpec, *, latent_size: int, latent_rate_hz: float, seed: int, base_dir: Path | None
    ) -> None:
        super().__init__(spec, latent_size=latent_size, latent_rate_hz=latent_rate_hz, seed=seed)
        # The folder may not exist yet: a piece's [pools.*] creates it once it starts (the config check
        # makes sure some pool writes there or the folder exists).
        self.folder = resolve(spec.folder, base_dir)
        self.skipped_items = 0
        self.item_name: str | None = None
        self._current: np.ndarray | None = None  # (latent_size, N) float64
        self._pos = 0
        # The loader thread sets _next only while it is None; step only clears it: no lock is needed.
        self._next: tuple[str, np.ndarray] | None = None
        self._last_queued: str = ""
        items = pool_items(self.folder)
        if items:
            newest = items[-1]
            self._current = self._frames(read_latents(newest), newest)
            self.item_name = newest.name
            self._last_queued = newest.name
        self._wake = threading.Event()
        self._closed = threading.Event()
        self._loader = threading.Thread(
            target=_load_loop,
            args=(weakref.ref(self), self._wake, self._closed, spec.poll_s),
            name=f"latentd-pool-loader-{self.folder.name}",
            daemon=True,
        )
        self._loader.start()

    def close(self) -> None:
        """Stop the loader thread (it also ends by itself once the source is garbage)."""
        self._closed.set()
        self._wake.set()
        self._loader.join(timeout=5.0)

    def trigger(self) -> None:
        """Move on to the queued item now, or restart the current one when none is queued."""
        if not self._adopt_next():
            self._pos = 0

    def _restart(self, seed: int) -> None:
        self._pos = 0

    def _generate(self, n_frames: int) -> np.ndarray:
        if self._current is None and not self._adopt_next():
            return np.zeros((self.latent_size, n_frames))
        out = np.empty((self.latent_size, n_frames))
        filled = 0
        while filled < n_frames:
            current = self._current
            assert current is not None  # set above and never cleared
            take = min(n_frames - filled, current.shape[1] - self._pos)
            out[:, filled : filled + take] = current[:, self._pos : self._pos + take]
            filled += take
            self._pos += take
            if self._pos >= current.shape[1] and not self._adopt_next():
                self._pos = 0  # nothing new yet: play the current item again
        return out

    def _adopt_next(self) -> bool:
        queued = self._next
        if queued is None:
            return False
        self._next = None
        self.item_name, self._current = queued
        self._pos = 0
        self._wake.set()  # let the loader read the following item now
        return True

    def _frames(self, frames: np.ndarray, path: Path) -> np.ndarray:
        n_frames, dims = frames.shape
        if dims != self.latent_size:
            raise ValueError(
                f"pool item {path}: {dims} latent dims (shape (1, {dims}, {n_frames})), but the model's "
                f"latent_size is {self.latent_size}; the pool's checkpoint must match the voice's model"
            )
        return np.ascontiguousarray(frames.T, dtype=np.float64)

    def _load_following(self) -> None:
        """Read the oldest item newer than the last queued one into ``_next`` (loader thread)."""
        for path in pool_items(self.folder):
            if path.name <= self._last_queued:
                continue
            self._last_queued = path.name
            try:
                frames = self._frames(read_latents(path), path)
            except (ValueError, OSError):
                # A bad or vanished item (pruned meanwhile) is skipped: the next one will do.
                self.skipped_items += 1
                continue
            self._next = (path.name, frames)
            return


def _load_loop(
    ref: weakref.ReferenceType[PoolSource], wake: threading.Event, closed: threading.Event, poll_s: float
) -> None:
    """Keep one item queued for the source behind ``ref`` until it is closed or collected."""
    while not closed.is_set():
        wake.clear()  # before looking: a wake-up from here on is not lost
        source = ref()
        if source is None:
            return
        if source._next is None:
            source._load_following()
        del source  # hold no reference while waiting, so the source can be collected
        wake.wait(poll_s)
