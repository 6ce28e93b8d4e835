"""The ``[pools.*]`` of a piece: item pools started beside the engine and stopped with it."""

from __future__ import annotations

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
    """Load every pool's checkpoint and match its dims against the voices that play its folder.

    ``latent_sizes`` maps voice names to their model's latent size. Returns one line per pool for
    ``latentd check``.

    Raises:
        ConfigError: a checkpoint that cannot be loaded (or the ``diffusion`` extra missing), or a voice
            whose model's latent size differs from the dims of the items it would play.
    """
    from latentd.diffusion.adp import DiffusionUnavailable
    from latentd.diffusion.checkpoint import CheckpointError

    problems = []
    lines = []
    file = config.piece_file
    for name, settings in pool_settings(config).items():
        pool = config.piece.pools[name]
        try:
            model = settings.load()
        except (CheckpointError, DiffusionUnavailable, OSError) as exc:
            problems.append(Problem(file, f"pools.{name}.checkpoint", pool.checkpoint, str(exc)))
            continue
        lines.append(
            f"  pool {name}: {settings.checkpoint.name} items of {model.rave_dims} dims x "
            f"{model.latent_length} frames into {pool.folder_for(name)}"
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


class PiecePools:
    """The running pools of a piece. ``check`` reports, once each, a pool whose worker gave up (bad
    checkpoint, disk full): its voices hold the last item and the piece plays on."""

    def __init__(self, pools: dict[str, ItemPool], log: Any) -> None:
        self.pools = pools
        self.log = log
        self._reported: set[str] = set()

    @classmethod
    def start(cls, config: Config, log: Any) -> PiecePools:
        """One low-priority generator process per pool; returns at once (checkpoints load in the workers)."""
        pools = cls({}, log)
        for name, settings in pool_settings(config).items():
            pool = ItemPool(settings)
            pool.start()
            log.info("pool.started", pool=name, folder=str(settings.folder), items=len(pool.items()))
            pools.pools[name] = pool
        return pools

    def check(self) -> None:
        for name, pool in self.pools.items():
            if name in self._reported:
                continue
            error = pool.error
            if error is not None:
                self._reported.add(name)
                self.log.error("pool.failed", pool=name, error=error, items=len(pool.items()))

    def stop(self) -> None:
        for pool in self.pools.values():
            pool.stop()
