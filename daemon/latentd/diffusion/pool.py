"""A pool of latent diffusion items, generated in the background into a bounded folder.

``ItemPool`` runs a separate process (multiprocessing "spawn": its niceness and torch threads are its
own, so it cannot take CPU time from the audio worker beyond what the scheduler gives a niced process).
It loads the checkpoint, then generates items one after another — item ``k`` from seed ``seed + k`` — and
writes each as ``item_<k>_seed<s>.npy`` (shape (1, rave_dims, latent_length)) atomically into the folder,
removing the oldest items beyond ``max_items``. The ``pool`` source plays the folder. Nothing here
blocks the caller: ``start`` returns once the process is launched, and ``stop`` waits a bounded time.
"""

from __future__ import annotations

import contextlib
import multiprocessing
import multiprocessing.connection
import os
import re
import time
from dataclasses import dataclass, field, fields
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np
from pydantic import ValidationError

from latentd.atomic import open_atomic
from latentd.config.piece import PoolConfig

if TYPE_CHECKING:
    from latentd.diffusion.checkpoint import LatentDiffusion

#: Names of pool items; the zero-padded index makes name order creation order.
ITEM_PATTERN = re.compile(r"^item_(\d{8})_seed(-?\d+)\.npy$")


@dataclass(frozen=True)
class PoolSettings:
    """What an ``ItemPool`` generates, and where.

    Attributes:
        checkpoint: the RAVE-Latent-Diffusion checkpoint file.
        folder: where items are written (created if missing).
        max_items: items kept; the oldest are removed beyond this (>= 1).
        seed: item ``k`` is generated from seed ``seed + k``.
        temperature: noise multiplier before sampling (>= 0).
        steps: diffusion steps per item (>= 1).
        latent_scale: standard deviation of each item after global z-scoring.
        slerp_t: when set (0..1), item ``k`` starts from the slerp of the noises of seeds ``seed + k`` and
            ``seed + k + 1`` at this position.
        lerp_factor: when set (0..1), item ``k`` glides over its length from the item of seed
            ``seed + k`` towards that of ``seed + k + 1``, reaching this point at its end (twice the work).
        interval_s: pause after each item (0: back to back).
        niceness: added to the worker process's nice value (0..19).
        torch_threads: intra-op threads of the worker (>= 1).
        latent_length: for checkpoints that do not store it.
        rave_dims: for checkpoints that do not store it.
        architecture: UNetV0 arguments instead of the preset for the latent length.
    """

    checkpoint: Path
    folder: Path
    max_items: int = 8
    seed: int = 0
    temperature: float = 1.0
    steps: int = 50
    latent_scale: float = 1.0
    slerp_t: float | None = None
    lerp_factor: float | None = None
    interval_s: float = 0.0
    niceness: int = 10
    torch_threads: int = 1
    latent_length: int | None = None
    rave_dims: int | None = None
    architecture: dict[str, Any] | None = field(default=None, hash=False)

    def __post_init__(self) -> None:
        # The generation fields are checked by the piece's own schema (``[pools.<name>]``), so a pool
        # built here and one built from piece.toml accept exactly the same values.
        problems = _config_problems(self)
        if not 0 <= self.niceness <= 19:
            problems.append(f"niceness must be in 0..19, got {self.niceness}")
        if self.torch_threads < 1:
            problems.append(f"torch_threads must be >= 1, got {self.torch_threads}")
        if problems:
            raise ValueError("item pool settings: " + "; ".join(problems))

    @classmethod
    def from_config(cls, pool: PoolConfig, *, checkpoint: Path, folder: Path, seed: int) -> PoolSettings:
        """The settings of a ``[pools.<name>]`` table, with its paths resolved and its seed decided."""
        params = pool.model_dump(exclude={"checkpoint", "folder", "seed"})
        return cls(checkpoint=checkpoint, folder=folder, seed=seed, **params)

    def load(self) -> LatentDiffusion:
        """The diffusion model of these settings (imports torch and the ``diffusion`` extra).

        Raises:
            CheckpointError: the checkpoint is missing, unreadable or does not fit these settings.
            DiffusionUnavailable: the ``diffusion`` extra is not installed.
        """
        from latentd.diffusion.checkpoint import load_checkpoint

        return load_checkpoint(
            self.checkpoint,
            latent_length=self.latent_length,
            rave_dims=self.rave_dims,
            architecture=self.architecture,
        )


_BOUNDS = {"greater_than_equal": ">=", "less_than_equal": "<=", "greater_than": ">", "less_than": "<"}
_BOUND_KEYS = {"greater_than_equal": "ge", "less_than_equal": "le", "greater_than": "gt", "less_than": "lt"}


def _config_problems(settings: PoolSettings) -> list[str]:
    """What ``[pools.<name>]``'s schema refuses in ``settings``, one ``<field> must be ...`` each."""
    data = {f.name: getattr(settings, f.name) for f in fields(settings) if f.name in PoolConfig.model_fields}
    data.update(checkpoint=str(settings.checkpoint), folder=str(settings.folder), seed=None)
    try:
        PoolConfig.model_validate(data)
    except ValidationError as exc:
        problems = []
        for error in exc.errors():
            name = ".".join(str(part) for part in error["loc"])
            kind = error["type"]
            if kind in _BOUNDS:
                bound = error.get("ctx", {})[_BOUND_KEYS[kind]]
                problems.append(f"{name} must be {_BOUNDS[kind]} {bound:g}, got {error['input']:g}")
            else:
                problems.append(f"{name}: {error['msg']}")
        return problems
    return []


def pool_items(folder: Path) -> list[Path]:
    """The pool items in ``folder``, oldest first."""
    try:
        names = [entry.name for entry in os.scandir(folder) if ITEM_PATTERN.match(entry.name)]
    except FileNotFoundError:
        return []
    return [Path(folder) / name for name in sorted(names)]


def next_index(folder: Path) -> int:
    """The index of the next item: one past the newest in ``folder`` (0 when empty)."""
    items = pool_items(folder)
    if not items:
        return 0
    match = ITEM_PATTERN.match(items[-1].name)
    assert match is not None  # pool_items only lists matching names
    return int(match.group(1)) + 1


def write_item(folder: Path, index: int, seed: int, z: np.ndarray) -> Path:
    """Write one item atomically (a reader never sees a partial file) and return its path."""
    path = Path(folder) / f"item_{index:08d}_seed{seed}.npy"
    # Not synced: items are regenerated after a power cut; readers only need to never see half of one.
    with open_atomic(path, "wb", durable=False) as handle:
        np.save(handle, z)
    return path


def prune(folder: Path, max_items: int) -> list[Path]:
    """Remove the oldest items beyond ``max_items``; return the removed paths."""
    items = pool_items(folder)
    removed = items[: max(0, len(items) - max_items)]
    for path in removed:
        path.unlink(missing_ok=True)
    return removed


class _Stopped(Exception):
    """Raised inside sampling when the pool is asked to stop."""


def _worker(
    settings: PoolSettings,
    stop: multiprocessing.connection.Connection,
    events: multiprocessing.connection.Connection,
) -> None:
    """The pool process: load the checkpoint, then generate items until ``stop`` becomes readable.

    The parent closes its end of the ``stop`` pipe to stop the worker; a parent that dies closes it too,
    so an orphaned generator cannot take CPU time from the next daemon for good. (A pipe, not a
    ``multiprocessing.Event``: a worker killed while waiting on an Event leaves its lock taken, and the
    parent's ``set()`` would then wait for ever.) It reports on ``events``: ``("item", index)`` after
    each item written, ``("error", reason)`` before it gives up.
    """
    parent = os.getppid()

    def should_stop() -> bool:
        return stop.poll() or os.getppid() != parent

    # Where renicing is refused, run at the inherited priority rather than not at all.
    with contextlib.suppress(OSError):
        os.nice(settings.niceness)
    import torch

    torch.set_num_threads(settings.torch_threads)
    try:
        model = settings.load()
    except Exception as exc:
        events.send(("error", f"item pool {settings.folder}: {exc}"))
        return

    def check_stop(_step: int) -> None:
        if should_stop():
            raise _Stopped

    while not should_stop():
        index = next_index(settings.folder)
        seed = settings.seed + index
        try:
            z = model.generate(
                seed,
                temperature=settings.temperature,
                steps=settings.steps,
                latent_scale=settings.latent_scale,
                slerp_to_seed=seed + 1 if settings.slerp_t is not None else None,
                slerp_t=settings.slerp_t if settings.slerp_t is not None else 0.5,
                step_callback=check_stop,
                lerp_to_seed=seed + 1 if settings.lerp_factor is not None else None,
                lerp_factor=settings.lerp_factor if settings.lerp_factor is not None else 1.0,
            )
        except _Stopped:
            return
        except Exception as exc:
            events.send(("error", f"item pool {settings.folder}: generating item {index} failed: {exc}"))
            return
        try:
            write_item(settings.folder, index, seed, z)
            prune(settings.folder, settings.max_items)
        except OSError as exc:
            events.send(("error", f"item pool {settings.folder}: cannot write items: {exc}"))
            return
        events.send(("item", index))
        deadline = time.monotonic() + settings.interval_s
        while not should_stop() and (left := deadline - time.monotonic()) > 0:
            stop.poll(min(left, 1.0))


class ItemPool:
    """Generates diffusion items into a bounded folder from a low-priority background process.

    Use ``start()`` / ``stop()`` or ``with ItemPool(settings) as pool:``. ``items()`` lists the folder;
    ``error`` says why the worker gave up since it was last started (unreadable checkpoint, an item that
    could not be generated, unwritable folder, the process killed), else ``None``; ``items_made`` counts
    the items it wrote since then. ``restart()`` tries again.
    """

    def __init__(self, settings: PoolSettings) -> None:
        self.settings = settings
        Path(settings.folder).mkdir(parents=True, exist_ok=True)
        self._ctx = multiprocessing.get_context("spawn")
        self._stop_out: multiprocessing.connection.Connection | None = None
        self._stopping = False
        self._process: multiprocessing.process.BaseProcess | None = None
        self._events_in: multiprocessing.connection.Connection | None = None
        self._error: str | None = None
        self._items_made = 0

    def start(self) -> None:
        """Launch the worker process and return at once (the model loads in the worker)."""
        if self._process is not None:
            raise RuntimeError(f"item pool {self.settings.folder} is already started")
        self._stopping = False
        self._error = None
        self._items_made = 0
        events_in, events_out = self._ctx.Pipe(duplex=False)
        stop_in, stop_out = self._ctx.Pipe(duplex=False)
        self._events_in, self._stop_out = events_in, stop_out
        self._process = self._ctx.Process(
            target=_worker,
            args=(self.settings, stop_in, events_out),
            name=f"latentd-pool-{Path(self.settings.folder).name}",
            daemon=True,
        )
        self._process.start()
        # The child holds its own copies; ours would keep the pipes from reporting their end.
        events_out.close()
        stop_in.close()

    def restart(self, timeout_s: float = 10.0) -> None:
        """Stop the worker if it runs, then start a new one (it loads the checkpoint afresh)."""
        self.stop(timeout_s)
        self.start()

    def stop(self, timeout_s: float = 10.0) -> None:
        """Ask the worker to stop (it abandons the item in progress) and wait at most ``timeout_s``."""
        process = self._process
        if process is None:
            return
        self._stopping = True
        if self._stop_out is not None:
            self._stop_out.close()  # the worker sees its end of the pipe readable and stops
            self._stop_out = None
        process.join(timeout_s)
        if process.is_alive():
            process.terminate()  # items are written atomically: no partial file is left behind
            process.join(timeout_s)
        self._read_events()
        process.close()
        if self._events_in is not None:
            self._events_in.close()
            self._events_in = None
        self._process = None

    @property
    def running(self) -> bool:
        """Whether the worker process is alive."""
        return self._process is not None and self._process.is_alive()

    @property
    def error(self) -> str | None:
        """Why the worker stopped on its own since it was last started, if it did."""
        self._read_events()
        process = self._process
        if self._error is None and process is not None and not self._stopping:
            code = process.exitcode  # None while it runs
            if code is not None:
                self._read_events()  # a last report may have come in just before it ended
            if self._error is None and code is not None:
                # Killed (the kernel's out-of-memory killer, an operator) or crashed in native code.
                how = f"by signal {-code}" if code < 0 else f"with exit code {code}"
                self._error = f"item pool {self.settings.folder}: the generator process ended {how}"
        return self._error

    @property
    def items_made(self) -> int:
        """Items the worker wrote since it was last started."""
        self._read_events()
        return self._items_made

    def items(self) -> list[Path]:
        """The items in the folder, oldest first."""
        return pool_items(self.settings.folder)

    def _read_events(self) -> None:
        conn = self._events_in
        try:
            while conn is not None and conn.poll():
                kind, value = conn.recv()
                if kind == "item":
                    self._items_made += 1
                else:
                    self._error = str(value)
        except (EOFError, OSError):
            pass  # the worker ended without reporting: nothing more to read

    def __enter__(self) -> ItemPool:
        self.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop()
