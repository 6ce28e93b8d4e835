"""The engine: sources → batched decode → resample → voice gain → routing → master, one block at a time.

The same engine serves offline rendering and live playback. It runs in one worker thread (or process);
everything else talks to it through :meth:`Engine.submit` and reads ``engine.snapshot``, the immutable
:class:`~latentd.engine.snapshot.EngineSnapshot` it publishes after every block. Voices come built and
checked from the installation (:mod:`latentd.installation.voices`), commands carry their own checks and
handlers (:mod:`latentd.engine.commands`), model swaps live in :mod:`latentd.engine.swaps`.
"""

from __future__ import annotations

import queue
from collections.abc import Callable
from dataclasses import dataclass, field

import numpy as np
import structlog
import torch

from latentd.engine import commands as c
from latentd.engine.decode import ModelGroup
from latentd.engine.faults import FAULT_HOLD_S, note_faults
from latentd.engine.mix import DcBlocker, Limiter, Ramp, Trims
from latentd.engine.morph import Morph
from latentd.engine.node_bus import NodeBus
from latentd.engine.node_sync import CommandLead
from latentd.engine.parallel import ParallelDecoder
from latentd.engine.programme import Programme, SectionPlan
from latentd.engine.remote_voices import RemoteVoices
from latentd.engine.snapshot import EngineSnapshot, SnapshotMaker, VoiceInfo
from latentd.engine.swaps import Swaps
from latentd.engine.voice import GLIDE_S, Voice
from latentd.installation.piece import Installation
from latentd.installation.voices import swap_rules

log = structlog.get_logger("latentd.engine")

COMMAND_TAIL = 256  # applied commands kept in memory (readers see the last 256..511)


@dataclass
class EngineCounters:
    """Read-only figures for status lines (written by the worker only)."""

    blocks: int = 0
    decode_calls: int = 0
    nonfinite_blocks: int = 0
    voice_faults: int = 0
    refused_commands: int = 0
    swaps: int = 0
    swap_failures: int = 0
    peaks: list[float] = field(default_factory=list)


class Engine:
    """Produces the master bus block by block: ``next_block()`` → float32 [n_speakers, blocksize].

    Args:
        installation: the loaded piece.
        fade_in_s: start-up fade of the master bus.
        live_loads: ``SwapModel`` loads the model in a background thread and the swap lands at the first
            block after the load (logged as ``ModelSwapped``). False (replay, offline renders):
            ``SwapModel`` is only logged, and ``ModelSwapped`` loads synchronously and swaps at once, so
            the swap lands at exactly the logged block.

    Threads: everything runs in the engine thread except :meth:`submit` (any thread, never blocks);
    other threads read ``snapshot`` only, and check a command before submitting it with
    ``commands.check(command, engine.snapshot)``. A sender that wants to hear of refusals made here
    appends a callable to ``refusal_listeners``; it is called in the engine thread and must only queue.
    Constructing an engine raises no configuration error: the installation has checked everything.
    """

    def __init__(
        self, installation: Installation, *, fade_in_s: float = 0.5, live_loads: bool = True
    ) -> None:
        cfg = installation.config
        audio = cfg.venue.audio
        out = cfg.venue.output
        self.installation = installation
        self.fade_in_s = fade_in_s
        self.layout = installation.layout
        self.samplerate = audio.samplerate
        self.blocksize = audio.blocksize
        self.n_channels = self.layout.n_channels
        self.seed = installation.seed
        # Variational RAVE decoders fill the unused latent dims with torch.randn: seed torch so the same
        # piece and seed give the same audio (decode calls happen in a fixed order in this one worker).
        torch.manual_seed(self.seed)
        self._commands: queue.SimpleQueue[c.Command | tuple[int, c.Command]] = queue.SimpleQueue()
        # The most recent applied commands only (at most 2 × COMMAND_TAIL): the whole log streams to disk
        # through ``command_listeners`` (the recorder's journal). Trimming replaces the list, so a
        # published CommandLogView (a prefix of the old list) never changes.
        self.command_log: list[tuple[int, c.Command]] = []
        self.command_listeners: list[Callable[[int, c.Command], None]] = []
        # (command, reason) for every command refused here, so its sender (``command.origin``) hears why.
        self.refusal_listeners: list[Callable[[c.Command, str], None]] = []
        self.block_listeners: list[Callable[[int, np.ndarray], None]] = []
        # Worker nodes' speaker channels, added before the master section (a venue of several machines).
        self.buses: list[NodeBus] = []
        # Commands at a block, on every node of a venue of several machines (None: at once, as always).
        self.lead: CommandLead | None = None
        # The piece's voices on the other nodes of several machines: commands naming them are theirs.
        self.remote = RemoteVoices({})
        # Called with the block index once its commands are applied, right before it is rendered
        # (the recorder takes its checkpoints here).
        self.block_start_listeners: list[Callable[[int], None]] = []
        # (block index, voice name, z [latent_size, n_frames]) for every chunk a voice decodes.
        self.latent_listeners: list[Callable[[int, str, np.ndarray], None]] = []
        # Commands the engine sequences and logs but whose effect lives outside it (e.g. recording).
        self.handlers: dict[type[c.Command], Callable[[c.Command], None]] = {}
        self.counters = EngineCounters(peaks=[0.0] * self.n_channels)
        self.overrides = c.Overrides()
        self.live_loads = live_loads
        self.voices: dict[str, Voice] = dict(installation.claim_voices())
        self.groups = self._groups(installation)
        for group in self.groups:
            group.recovery.background = live_loads  # offline a failed model reloads at once: renders repeat
        self.decoder = ParallelDecoder(audio.decode_threads, audio.parallel_random)
        # Made once per voice (here, and by a swap for the new voice): every snapshot shares them.
        self.voice_infos: dict[str, VoiceInfo] = {
            v.name: VoiceInfo.of(v, g.name, g.info.attributes) for g in self.groups for v in g.voices
        }
        self.swaps = Swaps(self)
        self._ramp_cache: np.ndarray | None = None
        # Per-block work kept while nothing changes (see _mix_voice, _master_level, _note_peaks).
        self._levels: dict[int, tuple[np.ndarray, np.ndarray, float, np.ndarray]] = {}
        self._master_cache: tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray] | None = None
        self._peaks_of: list[float] | None = None
        self._peaks = np.zeros(0)
        glide = int(GLIDE_S * self.samplerate)
        self.master_gain = Ramp(out.master_gain, glide)
        self.master_mute = Ramp(1.0, glide)
        # The master fade: the start-up fade-in, then the venue's opening and closing fades.
        self.fade = Ramp(0.0 if fade_in_s > 0 else 1.0, max(1, int(fade_in_s * self.samplerate)))
        self.fade.set(1.0)
        trims = out.trims
        names = [s.name for s in self.layout.speakers]
        self.trims = Trims(
            np.array([trims[n].gain_db if n in trims else 0.0 for n in names]),
            np.array([trims[n].delay_ms if n in trims else 0.0 for n in names]),
            self.samplerate,
        )
        self.dc = DcBlocker(self.n_channels, out.dc_block_hz, self.samplerate)
        self.limiter = Limiter(
            self.n_channels, self.blocksize, out.ceiling_db, out.limiter_release_ms, self.samplerate
        )
        self._section_bpm = {s.name: s.bpm for s in cfg.piece.sections}
        self._piece_models = tuple(cfg.piece.models)
        self._tempo_section: str | None = None
        crossfade = int(cfg.piece.programme.crossfade_s * self.samplerate)
        self.programme = Programme(
            [
                SectionPlan(
                    s.name,
                    frozenset(s.voices),
                    max(1, int(s.duration_bounds_s[0] * self.samplerate)),
                    max(1, int(s.duration_bounds_s[1] * self.samplerate)),
                    s.weight,
                    None if s.crossfade_in_s is None else int(s.crossfade_in_s * self.samplerate),
                )
                for s in cfg.piece.sections
            ],
            crossfade,
            cfg.piece.programme.loop,
            cfg.piece.programme.order,
            self.seed,
        )
        self.morph = cfg.piece.programme.morph
        # Called with (group, z) before each decode: glides latents during morphing crossfades.
        self.shape_latents: Callable[[ModelGroup, np.ndarray], None] | None = None
        if self.morph:
            self.shape_latents = Morph(self).latents
            for group in self.groups:
                group.shape_latents = self.shape_latents
        infos = {name: model.info for name, model in installation.models.items()}
        self.swap_rules = swap_rules(installation.builder, infos)  # read by SwapModel's refusal
        self._snapshots = SnapshotMaker(self)
        self.snapshot: EngineSnapshot = self._make_snapshot()

    # ------------------------------------------------------------------ construction
    def _groups(self, inst: Installation) -> list[ModelGroup]:
        """One group per model, its voices in piece order (their batch rows)."""
        by_model: dict[str, list[Voice]] = {}
        for name, voice in self.voices.items():
            by_model.setdefault(inst.config.piece.voices[name].model, []).append(voice)
        return [
            ModelGroup(
                model,
                inst.models[model],
                voices,
                self.samplerate,
                inst.frames_per_call[model],
                batch=inst.call_shapes[model].batch if model in inst.call_shapes else None,
            )
            for model, voices in by_model.items()
        ]

    @property
    def voice_models(self) -> dict[str, str]:
        """The model each voice plays now."""
        return self.swaps.voice_models

    @property
    def swaps_loading(self) -> dict[str, str]:
        """Voice → the model being loaded for it."""
        return self.swaps.loading

    def group_of(self, voice_name: str) -> ModelGroup:
        """The model group (model and batch rows) a voice decodes in."""
        voice = self.voices[voice_name]
        for group in self.groups:
            if any(v is voice for v in group.voices):
                return group
        raise KeyError(voice_name)

    # ------------------------------------------------------------------ control
    def submit(self, command: c.Command) -> None:
        """Queue a command; it is applied before the next block (``lead.lead_blocks`` later on the master
        of several machines). Never blocks; callable from any thread."""
        self._commands.put_nowait(command)

    def submit_at(self, block: int, command: c.Command) -> None:
        """Queue a command to apply before block ``block`` (a worker node; needs ``lead``). Any thread."""
        self._commands.put_nowait((block, command))

    def check(self, command: c.Command, view: EngineSnapshot | None = None) -> str | None:
        """Why ``command`` would be refused, or None if it is valid (engine thread).

        Runs :func:`~latentd.engine.commands.check` against ``view``, by default a snapshot of now (the
        commands applied before it in this block count). Other threads call that function with
        ``engine.snapshot`` instead.
        """
        return c.check(command, self._make_snapshot() if view is None else view)

    def refuse(self, cmd: c.Command, reason: str) -> None:
        """Count, log and publish a refusal (engine thread): the listeners tell the sender why."""
        self.counters.refused_commands += 1
        log.warning("command.refused", block=self.counters.blocks, command=cmd.to_json(), reason=reason)
        for listener in self.refusal_listeners:
            listener(cmd, reason)

    def _apply(self, cmd: c.Command) -> None:
        """Check, resolve, apply and log one command (engine thread, between blocks)."""
        node = self.remote.owners.get(getattr(cmd, "voice", None) or "")
        if node is not None:
            # Another node's voice: checked and sent to that node a lead ahead (RemoteVoices.admit);
            # journalled here, at the block it takes effect there.
            self._log_applied(cmd, node=node)
            return
        sent = cmd  # keeps the sender's origin for a refusal
        reason = self.check(cmd)
        if reason is None:
            try:
                cmd = cmd.resolve(self)
                cmd.apply(self)
            except ValueError as exc:
                reason = str(exc)
        if reason is not None:
            self.refuse(sent, reason)
            return
        self.overrides.note(cmd)
        self._log_applied(cmd)

    def _log_applied(self, cmd: c.Command, **where: str) -> None:
        """Journal an applied command: the log tail, the log, the command listeners (engine thread)."""
        self.command_log.append((self.counters.blocks, cmd))
        if len(self.command_log) >= 2 * COMMAND_TAIL:
            self.command_log = self.command_log[-COMMAND_TAIL:]
        log.info("command.applied", block=self.counters.blocks, **where, **cmd.to_json())
        for listener in self.command_listeners:
            listener(self.counters.blocks, cmd)

    # ------------------------------------------------------------------ audio
    def next_block(self) -> np.ndarray:
        """Apply pending commands and produce the next master block, float32 [n_speakers, blocksize]."""
        pending = self._commands
        lead = self.lead
        while not pending.empty():  # one consumer: what empty() saw stays there
            item = pending.get_nowait()
            if lead is None:
                self._apply(item if not isinstance(item, tuple) else item[1])
            else:
                taken = item if isinstance(item, tuple) else self.remote.admit(self, item)
                if taken is not None:  # None: refused (another node's voice)
                    lead.take(self.counters.blocks, taken)
        if lead is not None:
            for due in lead.due(self.counters.blocks):
                self._apply(due)
        if self.live_loads:
            for landed in self.swaps.landed():
                self._apply(landed)
        counters = self.counters
        for on_start in self.block_start_listeners:
            on_start(counters.blocks)
        n = self.blocksize
        crossfades = self.swaps.crossfade_gains(n)
        if self.programme.current.name != self._tempo_section:
            self._follow_tempo()
        audible = self.programme.audible()
        envelopes = self.programme.envelopes(n, list(self.voices))
        mix = np.zeros((self.n_channels, n), dtype=np.float32)
        # A voice retired at the end of its fade is still mixed in this block (its crossfade's last part).
        active = [
            g
            for g in self.groups
            if any(v.name in audible and (not v.retired or id(v) in crossfades) for v in g.voices)
        ]
        calls_before = [g.calls for g in active]
        self.decoder.fill(active, n)  # the models decode in parallel when the venue allows threads
        for group, before in zip(active, calls_before, strict=True):
            if group.calls != before:
                self.counters.decode_calls += group.calls - before
                # Once per decode call, not per block: a call's audio spans many blocks.
                self._fault(group)
            if group.prepared_latents:
                self._report_latents(group)
            rows = group.take(n)
            for voice in group.voices:
                env = envelopes.get(voice.name)
                if env is None or (voice.retired and id(voice) not in crossfades):
                    continue
                self._mix_voice(mix, voice, rows[voice.row], env, crossfades.get(id(voice)))
        if crossfades:
            self._end_crossfades()
        for bus in self.buses:
            bus.add_into(mix, counters.blocks)
        mix *= self._master_level(n)
        if not np.isfinite(mix).all():
            # A poisoned sample must never reach the speakers or the DC filter's state.
            counters.nonfinite_blocks += 1
            np.nan_to_num(mix, copy=False, nan=0.0, posinf=0.0, neginf=0.0)
        self.trims.process(mix)
        self.dc.process(mix)
        block = self.limiter.process(mix)
        self._note_peaks()
        for on_block in self.block_listeners:
            on_block(counters.blocks, block)
        counters.blocks += 1
        self.snapshot = self._make_snapshot()
        return block

    def _report_latents(self, group: ModelGroup) -> None:
        """Tell the latent listeners the latents of every call ``group`` prepared since the last block."""
        prepared, group.prepared_latents = group.prepared_latents, []
        if not self.latent_listeners:
            return
        for latents in prepared:
            for voice, z in zip(group.voices, latents, strict=True):
                if self.voices[voice.name] is not voice:
                    continue  # a voice being replaced: its successor reports the latents
                for listener in self.latent_listeners:
                    listener(self.counters.blocks, voice.name, z)  # type: ignore[arg-type]

    def _mix_voice(
        self,
        mix: np.ndarray,
        voice: Voice,
        row: np.ndarray,
        env: np.ndarray | float,
        fade: np.ndarray | None,
    ) -> None:
        """Add one voice's block (``row``: [channels, n]) to ``mix`` at its level, through its routing."""
        n = row.shape[1]
        gain, mute = voice.gain.values(n), voice.mute.values(n)
        silenced = voice.fault_until >= self.counters.blocks
        if fade is None and not silenced and type(env) is float:
            # A voice at rest keeps its level array block after block (the ramps hand back the same
            # steady arrays): it is computed once, exactly as below.
            cached = self._levels.get(id(voice))
            if cached is not None and cached[0] is gain and cached[1] is mute and cached[2] == env:
                level = cached[3]
            else:
                level = (gain * mute * env).astype(np.float32)
                self._levels[id(voice)] = (gain, mute, env, level)
        else:
            product = gain * mute * env
            if fade is not None:
                product = product * fade
            if silenced:
                product = product * 0.0
            level = product.astype(np.float32)
        sig = row * level
        start, delta = voice.routing.block(n, self.samplerate)
        if sig.shape[0] == 1:
            # One channel: each output sample is one product, so broadcasting gives the matmul's values.
            mix += start.T * sig
            if delta is not None:
                mix += delta.T * (sig * self._ramp(n))
        else:
            mix += start.T @ sig
            if delta is not None:
                mix += delta.T @ (sig * self._ramp(n))

    def _master_level(self, n: int) -> np.ndarray:
        """The master gain × mute × fade over the next ``n`` frames, float32 (advances the three ramps)."""
        gain, mute, fade = self.master_gain.values(n), self.master_mute.values(n), self.fade.values(n)
        cached = self._master_cache
        if cached is not None and cached[0] is gain and cached[1] is mute and cached[2] is fade:
            return cached[3]  # all three at rest: the same steady arrays as the last block
        level = (gain * mute * fade).astype(np.float32)
        self._master_cache = (gain, mute, fade, level)
        return level

    def _note_peaks(self) -> None:
        """Raise ``counters.peaks`` to the last block's peaks (a new list only when one rises)."""
        counters = self.counters
        if self._peaks_of is not counters.peaks:  # replaced from outside (a checkpoint restored)
            self._peaks_of = counters.peaks
            self._peaks = np.array(counters.peaks, dtype=np.float64)
        block_peaks = self.limiter.out_peaks  # np.max(np.abs(block), axis=1), found by the limiter
        if (block_peaks > self._peaks).any():
            self._peaks = np.fmax(self._peaks, block_peaks)  # fmax: a NaN never replaces a peak
            counters.peaks = self._peaks_of = self._peaks.tolist()

    def _ramp(self, n: int) -> np.ndarray:
        """(1..n) / n, float32: how far a per-block gain change has gone at each frame (made once)."""
        if self._ramp_cache is None or self._ramp_cache.shape[0] != n:
            self._ramp_cache = np.arange(1, n + 1, dtype=np.float32) / n
        return self._ramp_cache

    def _end_crossfades(self) -> None:
        """Forget finished crossfades; drop groups whose voices are all retired (no longer decoded)."""
        self.swaps.end_crossfades()
        kept = [g for g in self.groups if not all(v.retired for v in g.voices)]
        for group in self.groups:
            if group not in kept:
                self.decoder.forget(group)
                log.info("model.released", model=group.name, voices=[v.name for v in group.voices])
        self.groups = kept

    def _follow_tempo(self) -> None:
        """A section that sets a BPM: its voices' step sequences follow the nearest achievable tempo."""
        section = self.programme.current
        self._tempo_section = section.name
        bpm = self._section_bpm.get(section.name)
        if bpm is None:
            return
        for name in sorted(section.voices):
            source = self.voices[name].source
            if "bpm" not in source.params():
                continue
            source.set_param("bpm", bpm)
            tempo = getattr(source, "tempo", None)
            log.info(
                "tempo.followed",
                section=section.name,
                voice=name,
                asked_bpm=bpm,
                bpm=round(tempo.bpm, 3) if tempo else None,
                frames_per_beat=tempo.k if tempo else None,
                note=tempo.message if tempo and not tempo.exact else "",
            )

    def _fault(self, group: ModelGroup) -> None:
        """Silence the voices whose rows of the last call were not finite; forgive the others' faults."""
        note_faults(group, self.counters, int(FAULT_HOLD_S * self.samplerate / self.blocksize))

    @property
    def is_open(self) -> bool:
        """Whether the venue is open (fading in or playing) rather than closed (fading out or silent)."""
        return bool(self.fade.target >= 0.5)

    def _make_snapshot(self) -> EngineSnapshot:
        """The engine's state now, as an immutable value for other threads (the engine thread only)."""
        return self._snapshots.make()

    def status(self) -> dict[str, object]:
        """A snapshot for status lines and ``/status`` (engine thread; other threads read ``snapshot``)."""
        return self._make_snapshot().status()
