"""Engine checkpoints: what replay needs to render on from a block, captured between two blocks.

A checkpoint is taken in the engine thread once the commands of its block are applied and before the
block is rendered (``engine.block_start_listeners``). It holds the programme position, every voice
(gains, overrides, routing, its source's state and seed), the operator overrides, the master bus
(ramps, trims, DC blocker, limiter), each model group's FIFO, resampler state (latentd's own,
:mod:`latentd.engine.resample`) and streaming caches (the model's buffers), the model attributes
set while playing, and torch's and numpy's global random generators.
An engine built from the same config and seed and given the checkpoint renders the same samples from
that block on, given the commands logged after it.

What cannot be captured exactly is named in :attr:`Checkpoint.inexact`; replay then starts from an
earlier exact checkpoint and renders forward:

- a model swap under way or done (the engine's voices and groups no longer match a fresh build);
- a source that declares it (``Source.checkpoint_inexact``: pool sources, whose items a background
  process writes as it goes).

With parallel decode (``audio.decode_threads`` > 1) a model's next calls may be decoding in the
background. Capturing does not wait for them (the engine thread must not stall while JACK plays): their
audio, the model's buffers after them and torch's generator after the random lane's calls are taken in
the decode threads, right after those calls and before any later one, and filled in by
:meth:`Checkpoint.complete` (the recorder's writer thread, or :meth:`Checkpoint.dumps`, or
:func:`restore`). The restored engine has those calls due as well.

Capturing copies memory only (no I/O); the recorder's writer thread serializes it (:meth:`Checkpoint.dumps`).
"""

from __future__ import annotations

import copy
import pickle
import threading
from concurrent.futures import Future
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

import numpy as np
import torch

if TYPE_CHECKING:
    from latentd.engine.engine import Engine

VERSION = 1
_MIX = ("master_gain", "master_mute", "fade", "trims", "dc", "limiter")
_VOICE_SKIP = frozenset({"source", "cond_sources", "routing"})


class CheckpointError(ValueError):
    """A checkpoint that cannot be read or does not fit the engine it is restored into."""


class DecodeParts:
    """The parts of a checkpoint that the decode threads give: per model its calls decoding ahead and its
    buffers after them, and torch's generator after the random lane's calls (see the module)."""

    def __init__(
        self,
        calls: dict[str, list[Future[np.ndarray]]],
        buffers: dict[str, Future[dict[str, torch.Tensor]]],
        torch_rng: Future[torch.Tensor],
    ) -> None:
        self.calls = calls
        self.buffers = buffers
        self.torch_rng = torch_rng
        self._lock = threading.Lock()
        self.done = False

    def fill(self, state: dict[str, Any]) -> None:
        """Wait for the parts and put them into ``state`` (once; any thread).

        Raises:
            Exception: what a call decoding ahead raised (the checkpoint is then not usable).
        """
        with self._lock:
            if self.done:
                return
            for name, calls in self.calls.items():
                group = state["groups"][name]
                group["pending"] = [np.array(call.result(), copy=True) for call in calls]
                group["buffers"] = self.buffers[name].result()
            state["torch_rng"] = self.torch_rng.result()
            self.done = True


@dataclass(frozen=True)
class Checkpoint:
    """The engine's state before block ``block`` is rendered (its commands applied).

    Attributes:
        block: the engine block rendered next after a restore.
        state: the captured state (private copies; see :func:`capture`); complete once
            :meth:`complete` has returned.
        inexact: why restoring it would not reproduce the live audio exactly (empty: it would).
        parts: what the decode threads still give (None: nothing, the state is complete).
    """

    block: int
    state: dict[str, Any]
    inexact: tuple[str, ...] = ()
    parts: DecodeParts | None = field(default=None, compare=False, repr=False)

    def complete(self) -> Checkpoint:
        """Wait for the parts the decode threads give and fill them in (not in the engine thread: it
        would wait for calls decoding ahead); returns the checkpoint."""
        if self.parts is not None:
            self.parts.fill(self.state)
        return self

    @property
    def exact(self) -> bool:
        """True when restoring it reproduces the live audio sample for sample."""
        return not self.inexact

    def dumps(self) -> bytes:
        """The checkpoint as bytes (a pickle: written and read by latentd only, like its own models);
        completes it first (see :meth:`complete`)."""
        self.complete()
        data = {"version": VERSION, "block": self.block, "state": self.state, "inexact": list(self.inexact)}
        return pickle.dumps(data, protocol=pickle.HIGHEST_PROTOCOL)

    @classmethod
    def loads(cls, data: bytes) -> Checkpoint:
        """Read what :meth:`dumps` wrote.

        Raises:
            CheckpointError: the bytes are not a checkpoint of this version.
        """
        try:
            doc = pickle.loads(data)
            if not isinstance(doc, dict) or doc.get("version") != VERSION:
                raise CheckpointError(f"not a version {VERSION} checkpoint")
            return cls(int(doc["block"]), dict(doc["state"]), tuple(str(r) for r in doc["inexact"]))
        except CheckpointError:
            raise
        except Exception as exc:  # a torn or foreign file: whatever unpickling raised
            raise CheckpointError(f"not a readable checkpoint: {exc}") from exc


def inexact_reasons(engine: Engine) -> list[str]:
    """Why a checkpoint of ``engine`` now would not restore exactly (engine thread)."""
    reasons = []
    piece_models = {name: vc.model for name, vc in engine.installation.config.piece.voices.items()}
    if engine.swaps.loading or engine.swaps.crossfading or engine.swaps.voice_models != piece_models:
        reasons.append("a voice changed model while playing (a model swap)")
    for name, voice in engine.voices.items():
        for source in (voice.source, *voice.cond_sources.values()):
            if source.checkpoint_inexact:
                reasons.append(f"voice {name!r}: {source.checkpoint_inexact}")
    return reasons


def capture(engine: Engine, model_attributes: dict[str, dict[str, float | str]] | None = None) -> Checkpoint:
    """The engine's state now, between blocks (engine thread; copies memory, no I/O).

    Args:
        engine: the engine, its commands for the coming block applied.
        model_attributes: model → attribute → value set while playing (``voice.attr`` commands).
    """
    voices = {}
    for name, voice in engine.voices.items():
        voices[name] = {
            "voice": {k: v for k, v in vars(voice).items() if k not in _VOICE_SKIP},
            "routing": {k: v for k, v in vars(voice.routing).items() if k != "layout"},
            "source": voice.source.checkpoint_state(),
            "cond_sources": {i: s.checkpoint_state() for i, s in voice.cond_sources.items()},
        }
    groups = {
        g.name: {
            "fifo": g._buf[:, :, g._start : g._end],
            "calls": g.calls,
            "faulted_rows": g.faulted_rows,
            "resampler": g.resampler.state() if g.resampler is not None else None,
        }
        for g in engine.groups
    }
    state: dict[str, Any] = copy.deepcopy(
        {
            "counters": vars(engine.counters),
            "overrides": vars(engine.overrides),
            "tempo_section": engine._tempo_section,
            "mix": {name: vars(getattr(engine, name)) for name in _MIX},
            "programme": {
                k: v for k, v in vars(engine.programme).items() if k not in ("pair_voices", "sections")
            },
            "voices": voices,
            "groups": groups,
            "model_attributes": model_attributes or {},
            "numpy_rng": np.random.get_state(),
        }
    )
    # Calls decoding ahead (parallel decode): their sources were stepped, their audio is due. The model's
    # buffers (its caches) and torch's generator are read after them, in the threads that run them.
    decoder = engine.decoder
    parts = DecodeParts(
        calls={g.name: decoder.ahead(g) for g in engine.groups},
        buffers={g.name: decoder.after_calls(g, g.model.buffers) for g in engine.groups},
        torch_rng=decoder.after_random_calls(torch.get_rng_state),
    )
    return Checkpoint(engine.counters.blocks, state, tuple(inexact_reasons(engine)), parts)


def restore(engine: Engine, checkpoint: Checkpoint) -> None:
    """Put a fresh engine (same config and seed, at block 0) in the state of ``checkpoint``.

    The engine then renders block ``checkpoint.block`` next; the commands logged after that block are
    for the caller to submit.

    Raises:
        CheckpointError: the engine's voices or models are not the ones the checkpoint holds.
    """
    state = copy.deepcopy(checkpoint.complete().state)  # the checkpoint stays usable for another restore
    groups = {g.name: g for g in engine.groups}
    if set(state["voices"]) != set(engine.voices) or set(state["groups"]) != set(groups):
        raise CheckpointError(
            f"the checkpoint holds voices {sorted(state['voices'])} on models {sorted(state['groups'])}, "
            f"the piece has voices {sorted(engine.voices)} on models {sorted(groups)}"
        )
    vars(engine.counters).update(state["counters"])
    vars(engine.overrides).update(state["overrides"])
    engine._tempo_section = state["tempo_section"]
    for name, saved in state["mix"].items():
        vars(getattr(engine, name)).update(saved)
    vars(engine.programme).update(state["programme"])
    for name, saved in state["voices"].items():
        voice = engine.voices[name]
        vars(voice).update(saved["voice"])
        vars(voice.routing).update(saved["routing"])
        voice.source.restore_checkpoint(saved["source"])
        for index, source_state in saved["cond_sources"].items():
            voice.cond_sources[index].restore_checkpoint(source_state)
    for name, saved in state["groups"].items():
        group = groups[name]
        fifo = saved["fifo"]
        n = fifo.shape[2]
        if group._buf.shape[2] < n:
            group._buf = np.zeros((*group._buf.shape[:2], 2 * n), dtype=np.float32)
        group._buf[:, :, :n] = fifo
        group._start, group._end = 0, n
        group.calls = saved["calls"]
        group.faulted_rows = saved["faulted_rows"]
        if group.resampler is not None and saved.get("resampler") is not None:
            group.resampler.restore(saved["resampler"])
        group.model.set_buffers(saved["buffers"])
        pending = saved.get("pending")
        if pending is not None:
            # A list of calls; a checkpoint written before calls were queued two deep holds one array.
            engine.decoder.set_pending(group, pending if isinstance(pending, list) else [pending])
        for attribute, value in state["model_attributes"].get(name, {}).items():
            group.model.set_attribute(attribute, value)
    np.random.set_state(state["numpy_rng"])
    torch.set_rng_state(state["torch_rng"])
    engine.snapshot = engine._make_snapshot()
