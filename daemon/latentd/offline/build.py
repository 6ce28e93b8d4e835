"""Config → Engine: the one sequence every caller uses (``latentd run``, ``render``, ``check``, replay).

Process settings come first, because torch's thread count must be set before the first model loads and
cannot be changed for inter-op threads afterwards; then the installation (models loaded and warmed up,
every problem reported at once as a ``ConfigError``); then the engine, which never raises a config error.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence

from latentd.config import Config
from latentd.engine.engine import Engine
from latentd.engine.parallel import ParallelDecoder, sort_random
from latentd.installation.piece import load_installation
from latentd.runtime.process import configure_process, shorten_gil_switch


def build_engine(
    config: Config,
    *,
    seed: int | None = None,
    fade_in_s: float | None = None,
    live_loads: bool = True,
    warm_up: bool = True,
    torch_threads: int | None = None,
    call_shapes: Mapping[str, Sequence[int]] | None = None,
    decode_threads: int | None = None,
    remeasure: bool = False,
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
        call_shapes: model name → ``[batch, frames]`` decode call shape to use instead of measuring one
            (replay passes the recorded shapes: another shape may change the last bits of the audio).
        decode_threads: models decoded at once; defaults to the venue's ``audio.decode_threads``.
        remeasure: measure each call shape again and replace this machine's cached one
            (``latentd check --remeasure``); otherwise a shape measured before on this machine is reused.

    Raises:
        ConfigError: a model cannot be loaded or does not fit the piece (every problem at once).
    """
    configure_process(config.venue.audio.torch_threads if torch_threads is None else torch_threads)
    recorded = {name: (int(s[0]), int(s[1])) for name, s in (call_shapes or {}).items()}
    installation = load_installation(
        config, seed=seed, warm_up=warm_up, call_shapes=recorded, remeasure=remeasure
    )
    if fade_in_s is None:
        engine = Engine(installation, live_loads=live_loads)
    else:
        engine = Engine(installation, fade_in_s=fade_in_s, live_loads=live_loads)
    if decode_threads is not None and decode_threads != engine.decoder.threads:
        engine.decoder = ParallelDecoder(decode_threads, config.venue.audio.parallel_random)
    if engine.decoder.threads > 1:
        sort_random(engine.decoder, engine.groups)
        shorten_gil_switch()  # each decode call takes the GIL back from the busy engine thread
    return engine
