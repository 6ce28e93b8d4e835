"""Model swaps: a voice crossfades to another of the piece's models while the music plays.

Live (``live_loads``), ``SwapModel`` starts a loader thread that loads and warms the model up; the engine
thread polls finished loads between blocks and lands each as a logged ``ModelSwapped`` command. Offline
(replay, renders), ``SwapModel`` is only logged and ``ModelSwapped`` loads synchronously, so the swap
lands at exactly the logged block. The new voice is built by the installation's voice builder; piece
settings that do not fit the new model fall back to defaults with a warning.
"""

from __future__ import annotations

import copy
import math
import queue
import threading
from collections.abc import Iterator
from dataclasses import dataclass
from typing import TYPE_CHECKING

import numpy as np
import structlog

from latentd.config import Problem
from latentd.engine import commands as c
from latentd.engine.decode import ModelGroup
from latentd.engine.snapshot import VoiceInfo
from latentd.engine.voice import SWAP_CROSSFADE_S, Voice
from latentd.installation.errors import ModelError
from latentd.installation.models import LoadedModel, check_audio_method, frames_per_call_for
from latentd.installation.piece import WARM_UP_CALLS

if TYPE_CHECKING:
    from latentd.engine.engine import Engine

log = structlog.get_logger("latentd.engine")


@dataclass(frozen=True)
class _Load:
    """A model loaded (and warmed up) for a swap, or the reason it could not be."""

    voice: str
    model: str
    loaded: LoadedModel | None
    frames_per_call: int
    error: str


class Swaps:
    """The model swaps of one engine.

    Threads: loader threads only run :meth:`_load` (no engine state, no lock) and hand their result
    over through a queue; everything else runs in the engine thread.

    Attributes:
        voice_models: the model each voice plays now.
        loading: voice → model being loaded for it.
        crossfading: voices in a swap crossfade (the old one fading out, the new one in).
    """

    def __init__(self, engine: Engine) -> None:
        self.engine = engine
        self.voice_models = {name: vc.model for name, vc in engine.installation.config.piece.voices.items()}
        self.loading: dict[str, str] = {}
        self.crossfading: list[Voice] = []
        self._loads: queue.SimpleQueue[_Load] = queue.SimpleQueue()
        self._ready: dict[str, _Load] = {}
        self._origins: dict[str, object] = {}  # voice → who asked for its swap, told if it fails

    def start(self, voice: str, model: str, origin: object = None) -> None:
        """``SwapModel``: start loading (live); offline, the logged ``ModelSwapped`` does the work."""
        if not self.engine.live_loads:
            return
        self.loading[voice] = model
        self._origins[voice] = origin
        threading.Thread(
            target=self._load, args=(voice, model), name=f"latentd-load-{model}", daemon=True
        ).start()
        log.info("model.loading", voice=voice, model=model)

    def land(self, voice: str, model: str) -> None:
        """``ModelSwapped``: swap the loaded model in (offline: load it now first).

        Raises:
            ValueError: live, no load of this swap is ready (the command was not logged by the engine);
                the model failed to load or the voice cannot be built on it.
        """
        if self.engine.live_loads and voice not in self._ready:
            raise ValueError(
                "voice.model_swapped is logged by the engine when a swap lands; send voice.model instead"
            )
        ready = self._ready.pop(voice) if self.engine.live_loads else self._load_now(voice, model)
        if ready.loaded is None:
            self.engine.counters.swap_failures += 1
            log.error("model.swap_failed", voice=voice, model=model, reason=ready.error)
            raise ValueError(f"model {model!r} failed to load: {ready.error}")
        try:
            self._swap_in(voice, model, ready.loaded, ready.frames_per_call)
        except ValueError as exc:
            self.engine.counters.swap_failures += 1
            log.error("model.swap_failed", voice=voice, model=model, reason=str(exc))
            raise

    def landed(self) -> Iterator[c.ModelSwapped]:
        """Engine thread, between blocks: a ``ModelSwapped`` to apply for every finished load.

        Failed loads are reported here and the voice keeps its model.
        """
        while True:
            try:
                done = self._loads.get_nowait()
            except queue.Empty:
                return
            self.loading.pop(done.voice, None)
            origin = self._origins.pop(done.voice, None)
            if done.loaded is None:
                self.engine.counters.swap_failures += 1
                log.error(
                    "model.swap_failed",
                    voice=done.voice,
                    model=done.model,
                    reason=done.error,
                    action=f"keeps playing {self.voice_models[done.voice]!r}",
                )
                # The swap was accepted when asked for: its sender hears of the failure now.
                reason = f"model {done.model!r} failed to load: {done.error}"
                self.engine.refuse(c.SwapModel(done.voice, done.model, origin=origin), reason)
                continue
            self._ready[done.voice] = done
            # Applied like a command at this block, so replay lands the swap at the same block.
            yield c.ModelSwapped(done.voice, done.model, origin=origin)
            self._ready.pop(done.voice, None)

    def crossfade_gains(self, n: int) -> dict[int, np.ndarray | None]:
        """id(voice) → its next ``n`` crossfade gains, for every voice in a crossfade."""
        return {id(v): v.crossfade_gain(n) for v in self.crossfading}

    def end_crossfades(self) -> None:
        """Forget finished crossfades."""
        self.crossfading = [v for v in self.crossfading if v.crossfading]

    def _load_now(self, voice: str, model: str) -> _Load:
        """Load and warm up ``model`` for ``voice``; failures come back as a ``_Load`` with the reason."""
        cfg = self.engine.installation.config
        spec = cfg.piece.models[model]
        try:
            loaded = LoadedModel(cfg.model_path(model), method=spec.method, sr=spec.samplerate)
            check_audio_method(loaded.info)
            for attr, value in spec.attributes.items():
                loaded.set_attribute(attr, value)
            frames = frames_per_call_for(loaded.info, cfg.venue.audio.frames_per_call)
            # In the loader thread torch's generator must not be saved and restored (the worker draws).
            loaded.warm_up(
                batch=1, n_frames=frames, calls=WARM_UP_CALLS, guard_rng=not self.engine.live_loads
            )
        except Exception as exc:  # any failure at all must leave the old model playing
            reason = str(exc) if isinstance(exc, ModelError) else f"{type(exc).__name__}: {exc}"
            return _Load(voice, model, None, 0, reason)
        return _Load(voice, model, loaded, frames, "")

    def _load(self, voice: str, model: str) -> None:
        """Loader thread: load, warm up, hand the result to the engine thread."""
        self._loads.put_nowait(self._load_now(voice, model))

    def _swap_in(self, name: str, model: str, loaded: LoadedModel, frames_per_call: int) -> None:
        """Replace voice ``name`` by a voice on ``loaded`` in a group of its own, and start the crossfade."""
        engine = self.engine
        old = engine.voices[name]
        info = loaded.info
        same_source = info.latent_size == old.latent_size and math.isclose(
            info.latent_rate_hz, old.latent_rate_hz
        )
        problems: list[Problem] = []
        source = old.source if same_source else None
        new = engine.installation.builder.build(name, info, 0, problems, source=source, seed=old.seed)
        if new is None:  # only when the source could not be built for the new model
            raise ValueError(f"voice {name!r}: source for model {model!r}: {problems[0].message}")
        if problems:
            # Per-dimension settings of the piece that do not fit the new model fall back to defaults.
            log.warning("model.swap_defaults", voice=name, model=model, problems=[str(p) for p in problems])
        carry_overrides(old, new)
        if same_source:
            old.hold()  # the source now belongs to the new voice: stepping it twice would skip frames
        steps = max(1, int(SWAP_CROSSFADE_S * engine.samplerate))
        old.start_crossfade(steps, fading_out=True)
        new.start_crossfade(steps, fading_out=False)
        self.crossfading += [old, new]
        # Rows are positional in a model's streaming state: the new voice gets a group of its own.
        group = ModelGroup(model, loaded, [new], engine.samplerate, frames_per_call)
        group.shape_latents = engine.shape_latents
        group.recovery.background = engine.live_loads
        engine.groups.append(group)
        engine.voices[name] = new
        self.voice_models[name] = model
        engine.voice_infos[name] = VoiceInfo.of(new, model, info.attributes)
        engine.counters.swaps += 1
        log.info("model.swapped", voice=name, model=model, crossfade_s=SWAP_CROSSFADE_S)


def carry_overrides(old: Voice, new: Voice) -> None:
    """Give the new voice the old one's current settings, where the dimensions allow."""
    new.gain.set(old.gain.target, now=True)
    new.mute.set(old.mute.target, now=True)
    new.faults, new.fault_until = old.faults, old.fault_until
    new.frozen = old.frozen
    if new.latent_size == old.latent_size:
        new.bias.set(old.bias.target, now=True)
        new.scale.set(old.scale.target, now=True)
        new.clamp_low[:] = old.clamp_low
        new.clamp_high[:] = old.clamp_high
    for index, cond_name in enumerate(new.conditioning_names):
        if cond_name in old.conditioning_names:
            i = old.conditioning_names.index(cond_name)
            new.cond.set_at(index, float(old.cond.target[i]))
            if i in old.cond_overridden:
                new.cond_overridden.add(index)
    if new.routing.n_channels == old.routing.n_channels:
        new.routing = copy.copy(old.routing)
    else:
        r = new.routing
        r.matrix = None if old.routing.matrix is None else r.matrix
        r.azimuth_deg, r.spread_deg = old.routing.azimuth_deg, old.routing.spread_deg
        r.rotate_deg_s, r.waypoints = old.routing.rotate_deg_s, old.routing.waypoints
