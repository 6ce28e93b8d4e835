"""Decode-failure recovery: a model whose decode raises is re-primed, else reloaded, while the rest plays.

A decode call can raise for good on a live instance: vschaos2's ``decode`` fails after a failed call
(``forward``) until a successful ``encode`` or ``set_inversion_mode(...)``, and an attribute an operator
sets (``inversion_mode = "griffin_lim"``) can make every later decode raise. Such a failure must not
silence the model's voices for good nor stop the engine: the group plays silence, re-primes the model
(:meth:`~latentd.installation.models.LoadedModel.reprime`) and tries again at the next call; if that
call fails too, a fresh copy of the model is loaded and warmed up (in a background thread live, at once
offline so a render stays repeatable) with the attributes in force at its last good decode, and swapped
in. The other models' voices are decoded by their own groups and play on. Each episode is logged once:
``model.decode_failed`` when it starts, ``model.decode_recovered`` when the model plays again.
"""

from __future__ import annotations

import math
import queue
import threading
from dataclasses import dataclass
from typing import TYPE_CHECKING

import numpy as np
import structlog

from latentd.installation.errors import ModelError
from latentd.installation.models import LoadedModel
from latentd.installation.piece import WARM_UP_CALLS
from latentd.installation.torchscript import CALL_ERRORS

if TYPE_CHECKING:
    from latentd.engine.decode import ModelGroup

log = structlog.get_logger("latentd.decode")

DECODE_ERRORS: tuple[type[Exception], ...] = (ModelError, *CALL_ERRORS)
RELOAD_RETRY_S = 10.0  # a reload that failed is tried again after this much audio
FADE_IN_S = 0.02  # the first audio after a failure fades in over this time instead of stepping in


@dataclass(frozen=True)
class _Reloaded:
    """A fresh copy of the model, warmed up, or the reason it could not be made."""

    model: LoadedModel | None
    dropped: dict[str, object]
    error: str


class DecodeRecovery:
    """Decodes for one model group and recovers from failed calls (engine thread, except the loader).

    Attributes:
        background: reload in a thread (live); False reloads at once (offline renders, replay, check).
        failing: an episode is under way (the group plays silence).
        failures: failed decode calls since the group was made.
        episodes: failure episodes since the group was made.
        reloads: fresh copies swapped in.
        last_error: the first line of the last failure's message.
    """

    def __init__(self, group_name: str, *, background: bool = True) -> None:
        self.group_name = group_name
        self.background = background
        self.failing = False
        self.failures = 0
        self.episodes = 0
        self.reloads = 0
        self.last_error = ""
        self._action = ""
        self._failed_calls = 0
        self._loading = False
        self._retry_in = 0  # decode calls to wait before the next reload attempt
        self._reload_failures = 0  # in this episode
        self._results: queue.SimpleQueue[_Reloaded] = queue.SimpleQueue()

    def decode(self, group: ModelGroup, z: np.ndarray) -> np.ndarray:
        """Decode ``z`` with the group's model; silence while it fails or a fresh copy loads."""
        if self._loading:
            if not self._take_reload(group):
                return self._silence(group, z)
        elif self.failing and self._action == "reload":
            # The last reload failed, or its copy failed too: wait, then try again.
            self._retry_in -= 1
            if self._retry_in > 0:
                return self._silence(group, z)
            self._start_reload(group)
            if self._loading and not self._take_reload(group):
                return self._silence(group, z)
        try:
            audio = group.model.decode(z)
        except DECODE_ERRORS as exc:
            return self._failed(group, z, exc)
        if self.failing:
            self._recovered(group, audio)
        return audio

    # ------------------------------------------------------------------ failure and recovery
    def _failed(self, group: ModelGroup, z: np.ndarray, exc: Exception) -> np.ndarray:
        self.failures += 1
        self._failed_calls += 1
        reason = _first_line(exc)
        self.last_error = reason
        if not self.failing:
            self.failing = True
            self.episodes += 1
            self._failed_calls = 1
            try:
                done = group.model.reprime(group.batch)
            except DECODE_ERRORS as prime_exc:
                log.error(
                    "model.decode_failed",
                    model=self.group_name,
                    voices=[v.name for v in group.voices],
                    reason=reason[:300],
                    action="re-prime impossible; reloading the model",
                    reprime_error=_first_line(prime_exc)[:200],
                )
                self._start_reload(group)
                return self._silence(group, z)
            self._action = f"re-primed ({done})"
            log.error(
                "model.decode_failed",
                model=self.group_name,
                voices=[v.name for v in group.voices],
                reason=reason[:300],
                action=f"{done}, then retry; reload if it fails again",
            )
            return self._silence(group, z)
        if self._action != "reload":
            self._start_reload(group)  # re-priming did not help
        elif not self._loading:
            self._retry_in = self._retry_calls(group)  # the fresh copy fails too: wait before the next
        return self._silence(group, z)

    @staticmethod
    def _retry_calls(group: ModelGroup) -> int:
        chunk_s = group.frames_per_call * group.info.ratio / group.info.sr
        return max(1, math.ceil(RELOAD_RETRY_S / chunk_s))

    def _start_reload(self, group: ModelGroup) -> None:
        self._action = "reload"
        self._loading = True
        old = group.model
        batch, frames = group.batch, group.frames_per_call
        if self.background:
            threading.Thread(
                target=lambda: self._results.put_nowait(_reload(old, batch, frames, guard_rng=False)),
                name=f"latentd-reload-{self.group_name}",
                daemon=True,
            ).start()
        else:
            self._results.put_nowait(_reload(old, batch, frames, guard_rng=True))

    def _take_reload(self, group: ModelGroup) -> bool:
        """Swap in a finished reload; True when the group has a model to decode with again."""
        try:
            done = self._results.get_nowait()
        except queue.Empty:
            return False
        self._loading = False
        if done.model is None:
            self._reload_failures += 1
            if self._reload_failures == 1:
                log.error(
                    "model.reload_failed",
                    model=self.group_name,
                    reason=done.error[:300],
                    action=f"silent; tried again every {RELOAD_RETRY_S:g} s",
                )
            self._retry_in = self._retry_calls(group)
            return False
        fresh = done.model
        # Readers hold the group's info (snapshots, commands): keep it, with the fresh attributes.
        group.info.attributes.update(fresh.info.attributes)
        fresh.info = group.info
        group.model = fresh
        self.reloads += 1
        if done.dropped:
            log.warning(
                "model.attributes_dropped",
                model=self.group_name,
                attributes={k: repr(v) for k, v in done.dropped.items()},
                reason="set after the last good decode; the reloaded model plays without them",
            )
        return True

    def _recovered(self, group: ModelGroup, audio: np.ndarray) -> None:
        fade = min(audio.shape[2], max(1, int(FADE_IN_S * group.info.sr)))
        audio[:, :, :fade] *= np.linspace(0.0, 1.0, fade, endpoint=False, dtype=np.float32)
        chunk_s = group.frames_per_call * group.info.ratio / group.info.sr
        log.info(
            "model.decode_recovered",
            model=self.group_name,
            how=self._action,
            failed_calls=self._failed_calls,
            silent_s=round(self._failed_calls * chunk_s, 3),
        )
        self.failing = False
        self._action = ""
        self._failed_calls = 0
        self._retry_in = 0
        self._reload_failures = 0

    @staticmethod
    def _silence(group: ModelGroup, z: np.ndarray) -> np.ndarray:
        return np.zeros((z.shape[0], group.info.n_channels, z.shape[2] * group.info.ratio), dtype=np.float32)


def _first_line(exc: Exception) -> str:
    text = str(exc).strip()
    return text.splitlines()[0] if text else type(exc).__name__


def _reload(old: LoadedModel, batch: int, frames: int, *, guard_rng: bool) -> _Reloaded:
    """A fresh, warmed-up copy of ``old`` (loader thread live); any failure comes back as a reason."""
    try:
        fresh, dropped = old.reloaded()
        fresh.warm_up(batch=batch, n_frames=frames, calls=WARM_UP_CALLS, guard_rng=guard_rng)
    except Exception as exc:  # any failure at all must leave the engine playing
        reason = str(exc) if isinstance(exc, ModelError) else f"{type(exc).__name__}: {exc}"
        return _Reloaded(None, {}, reason)
    return _Reloaded(fresh, dropped, "")
