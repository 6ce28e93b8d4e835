"""Config → Engine: the one sequence every caller uses (``latentd run``, ``render``, ``check``, replay).

Process settings come first, because torch's thread count must be set before the first model loads and
cannot be changed for inter-op threads afterwards; then the installation (models loaded and warmed up,
every problem reported at once as a ``ConfigError``); then the engine, which never raises a config error.
"""

from __future__ import annotations

from latentd.config import Config
from latentd.engine.engine import Engine
from latentd.installation.piece import load_installation
from latentd.runtime.process import configure_process


def build_engine(
    config: Config,
    *,
    seed: int | None = None,
    fade_in_s: float | None = None,
    live_loads: bool = True,
    warm_up: bool = True,
    torch_threads: int | None = None,
) -> Engine:
    """Apply the process settings, load the piece's models and build the engine at block 0.

    Args:
        config: the validated venue and piece.
        seed: overrides the piece's seed (``latentd render --seed``, a replayed session's seed).
        fade_in_s: start-up fade of the master bus; 0 starts at full level, None keeps the engine's
            default (the live fade, recorded in ``session.json`` for replay).
        live_loads: True for live playback (model swaps load in the background); False offline, where a
            swap lands at exactly the block it was asked for.
        warm_up: run each model a few times first, so the slow first calls never happen while playing.
        torch_threads: intra-op threads for decoding; defaults to the venue's ``audio.torch_threads``
            (replay passes the recorded count: another count may change the last bits of the audio).

    Raises:
        ConfigError: a model cannot be loaded or does not fit the piece (every problem at once).
    """
    configure_process(config.venue.audio.torch_threads if torch_threads is None else torch_threads)
    installation = load_installation(config, seed=seed, warm_up=warm_up)
    if fade_in_s is None:
        return Engine(installation, live_loads=live_loads)
    return Engine(installation, fade_in_s=fade_in_s, live_loads=live_loads)
