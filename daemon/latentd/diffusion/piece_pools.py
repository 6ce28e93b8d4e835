"""The ``[pools.*]`` of a piece: item pools started beside the engine and stopped with it."""

from __future__ import annotations

import time
from dataclasses import dataclass, replace
from typing import Any

from latentd.config import Config, ConfigError
from latentd.config.problems import Problem
from latentd.diffusion.pool import ItemPool, PoolSettings


def pool_settings(config: Config) -> dict[str, PoolSettings]:
    """The settings of every pool of the piece, paths resolved against the piece folder."""
    piece = config.piece
    settings = {}
    for name, pool in piece.pools.items():
        settings[name] = PoolSettings.from_config(
            pool,
            checkpoint=config.piece_path(pool.checkpoint),
            folder=config.piece_path(pool.folder_for(name)),
            seed=piece.seed if pool.seed is None else pool.seed,
        )
    return settings


def check_pools(config: Config, latent_sizes: dict[str, int]) -> list[str]:
    """Load every pool's checkpoint, generate one trial item, and match its dims against the voices.

    The trial item takes one diffusion step (the whole net runs once): a pool that cannot generate is
    found here rather than by a silent voice at the venue. ``latent_sizes`` maps voice names to their
    model's latent size. Returns one line per pool for ``latentd check``.

    Raises:
        ConfigError: a checkpoint that cannot be loaded (or the ``diffusion`` extra missing), one that
            cannot generate an item, or a voice whose model's latent size differs from the dims of the
            items it would play; every problem at once.
    """
    from latentd.diffusion.adp import DiffusionUnavailable
    from latentd.diffusion.checkpoint import CheckpointError, GenerationError

    problems = []
    lines = []
    file = config.piece_file
    for name, settings in pool_settings(config).items():
        pool = config.piece.pools[name]
        key = f"pools.{name}.checkpoint"
        try:
            model = settings.load()
        except (CheckpointError, DiffusionUnavailable, OSError) as exc:
            problems.append(Problem(file, key, pool.checkpoint, str(exc)))
            continue
        try:
            model.generate(
                settings.seed, temperature=settings.temperature, steps=1, latent_scale=settings.latent_scale
            )
        except (GenerationError, RuntimeError, ValueError, MemoryError) as exc:
            problems.append(Problem(file, key, pool.checkpoint, f"loads, but cannot generate an item: {exc}"))
            continue
        kind = "" if model.flexed else " (original RAVE-Latent-Diffusion format)"
        lines.append(
            f"  pool {name}: {settings.checkpoint.name} items of {model.rave_dims} dims x "
            f"{model.latent_length} frames into {pool.folder_for(name)}{kind}"
        )
        for voice_name, voice in config.piece.voices.items():
            folder = getattr(voice.source, "folder", None)
            if voice.source.kind != "pool" or folder is None or config.piece_path(folder) != settings.folder:
                continue
            size = latent_sizes.get(voice_name)
            if size is not None and size != model.rave_dims:
                problems.append(
                    Problem(
                        file,
                        f"voices.{voice_name}.source.folder",
                        folder,
                        f"pool {name} makes items of {model.rave_dims} latent dims but model "
                        f"{voice.model!r} of this voice takes {size}",
                    )
                )
    if problems:
        raise ConfigError(problems)
    return lines


#: First wait before a failed pool is started again; it doubles after each failed try, up to the max.
RETRY_FIRST_S = 10.0
RETRY_MAX_S = 300.0


@dataclass(frozen=True)
class PoolHealth:
    """How one running pool is doing, as ``/status`` and the status lines show it.

    Attributes:
        failing_since: ``time.monotonic()`` of the first failure of the current run of failures, or
            None while the pool generates.
        error: the latest reason it failed (kept after it recovers, for the record).
        retries: tries since the current run of failures began.
        retry_at: ``time.monotonic()`` of the next try while failing.
    """

    failing_since: float | None = None
    error: str | None = None
    retries: int = 0
    retry_at: float = 0.0


class PiecePools:
    """The running pools of a piece, and their health.

    A pool whose worker gives up (checkpoint that cannot load, item that cannot be generated, disk full,
    the process killed) is failing: its voices hold their last item (silence if none came) and the piece
    plays on. ``check`` notices it (``pool.failed``, once per run of failures) and starts the worker again
    after ``retry_first_s``, doubling up to ``retry_max_s`` (a checkpoint replaced meanwhile, or freed
    disk space, brings it back: ``pool.recovered``). ``report`` logs ``pool.failing`` for each failing
    pool (call it every status interval); ``status`` gives the same for ``/status``.

    Threads: ``check``, ``report`` and ``stop`` run in the main loop; ``status`` may be called from any
    thread (it reads the published ``PoolHealth`` records, which are replaced, never changed).
    """

    def __init__(
        self,
        pools: dict[str, ItemPool],
        log: Any,
        *,
        retry_first_s: float = RETRY_FIRST_S,
        retry_max_s: float = RETRY_MAX_S,
    ) -> None:
        self.pools = pools
        self.log = log
        self.retry_first_s = retry_first_s
        self.retry_max_s = retry_max_s
        self.health: dict[str, PoolHealth] = {name: PoolHealth() for name in pools}

    @classmethod
    def start(cls, config: Config, log: Any, **retry: float) -> PiecePools:
        """One low-priority generator process per pool; returns at once (checkpoints load in the workers).

        Args:
            config: the venue and piece.
            log: a structlog logger.
            **retry: ``retry_first_s`` and ``retry_max_s`` (see the class).
        """
        pools = cls({}, log, **retry)
        for name, settings in pool_settings(config).items():
            pool = ItemPool(settings)
            pool.start()
            log.info("pool.started", pool=name, folder=str(settings.folder), items=len(pool.items()))
            pools.pools[name] = pool
            pools.health[name] = PoolHealth()
        return pools

    def check(self, now: float | None = None) -> None:
        """Notice failures and recoveries and start failed workers again when their wait is over."""
        now = time.monotonic() if now is None else now
        for name, pool in self.pools.items():
            health = self.health[name]
            error = pool.error
            if error is None:
                if health.failing_since is not None and pool.items_made > 0:
                    self.log.info(
                        "pool.recovered",
                        pool=name,
                        failed_for_s=round(now - health.failing_since, 1),
                        retries=health.retries,
                    )
                    self.health[name] = replace(health, failing_since=None, retries=0)
                continue
            if health.failing_since is None:
                self.log.error("pool.failed", pool=name, error=error, items=len(pool.items()))
                health = PoolHealth(failing_since=now, error=error, retry_at=now + self.retry_first_s)
            elif error != health.error:
                health = replace(health, error=error)
            if now >= health.retry_at:
                wait_s = min(self.retry_first_s * 2.0 ** (health.retries + 1), self.retry_max_s)
                health = replace(health, retries=health.retries + 1, retry_at=now + wait_s)
                self.log.info("pool.retrying", pool=name, retries=health.retries)
                pool.restart()
            self.health[name] = health

    def report(self, now: float | None = None) -> None:
        """Log ``pool.failing`` (reason, for how long, next try) for each failing pool."""
        now = time.monotonic() if now is None else now
        for name, health in self.health.items():
            if health.failing_since is None:
                continue
            self.log.error(
                "pool.failing",
                pool=name,
                error=health.error,
                failing_s=round(now - health.failing_since, 1),
                retries=health.retries,
                next_try_s=round(max(0.0, health.retry_at - now), 1),
                items=len(self.pools[name].items()),
            )

    def status(self, now: float | None = None) -> dict[str, dict[str, object]]:
        """Per pool, JSON-ready: ``state`` ("generating" or "failing"), ``items`` in the folder, and while
        failing ``error``, ``failing_s`` and ``retries``."""
        now = time.monotonic() if now is None else now
        out: dict[str, dict[str, object]] = {}
        for name, pool in self.pools.items():
            health = self.health[name]
            entry: dict[str, object] = {"items": len(pool.items())}
            if health.failing_since is None:
                entry["state"] = "generating"
            else:
                entry |= {
                    "state": "failing",
                    "error": health.error,
                    "failing_s": round(now - health.failing_since, 1),
                    "retries": health.retries,
                }
            out[name] = entry
        return out

    def stop(self) -> None:
        for pool in self.pools.values():
            pool.stop()
