"""The engine: sources → batched decode → resample → voice gain → routing → master, one block at a time.

The same engine serves offline rendering and live playback. It runs in one worker thread (or process);
everything else talks to it through :meth:`Engine.submit` and reads :meth:`Engine.status`.
"""

from __future__ import annotations

import copy
import math
import queue
import threading
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import cast

import numpy as np
import structlog
import torch

from latentd.config import ConfigError, Problem
from latentd.engine import commands as c
from latentd.engine.decode import ModelGroup
from latentd.engine.mix import DcBlocker, Limiter, Ramp, Trims
from latentd.engine.programme import Programme, SectionPlan
from latentd.engine.snapshot import CommandLogView, EngineSnapshot, VoiceState, frozen_mapping
from latentd.engine.voice import GLIDE_S, SWAP_CROSSFADE_S, Routing, Voice, voice_seed
from latentd.installation.errors import ModelError
from latentd.installation.layout import Layout, make_layout
from latentd.installation.models import LoadedModel, ModelInfo, check_audio_method, frames_per_call_for
from latentd.installation.piece import WARM_UP_CALLS, Installation
from latentd.sources import build_source
from latentd.sources.base import Source

log = structlog.get_logger("latentd.engine")

MORPH_HANDOVER_S = 0.05  # a morphing pair hands the sound over this fast; the latents glide for the rest
FAULT_HOLD_S = 2.0  # a voice whose model emitted NaN/Inf stays silent this long before it is tried again
MAX_FAULTS = 3  # after this many faults in a row the voice stays muted until an operator command


@dataclass(frozen=True)
class _Load:
    """A model loaded (and warmed up) for a swap, or the reason it could not be."""

    voice: str
    model: str
    loaded: LoadedModel | None
    frames_per_call: int
    error: str


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


def _per_dim(
    value: float | list[float] | None, default: float, size: int, key: str, problems, file
) -> np.ndarray:
    if value is None:
        return np.full(size, default, dtype=np.float64)
    if isinstance(value, int | float):
        return np.full(size, float(value), dtype=np.float64)
    if len(value) != size:
        problems.append(
            Problem(
                file,
                key,
                value,
                f"has {len(value)} values; the model has latent_size {size}: give {size} or one",
            )
        )
        return np.full(size, default, dtype=np.float64)
    return np.asarray(value, dtype=np.float64)


def piece_to_venue(piece_layout: Layout, venue: Layout) -> np.ndarray:
    """[piece speakers, venue speakers]: each of the piece's speakers panned at its azimuth on the venue's."""
    return np.asarray([venue.pan_gains(s.azimuth_deg) for s in piece_layout.speakers], dtype=np.float32)


def _routing(
    voice_cfg, layout: Layout, n_channels: int, key: str, problems, file, piece_layout=None
) -> Routing:
    if piece_layout is not None and (voice_cfg.matrix is not None or voice_cfg.route is not None):
        # Explicit downmix: resolve against the piece's layout, then map its speakers onto the venue's.
        inner = _routing(voice_cfg, piece_layout, n_channels, key, problems, file)
        assert inner.matrix is not None
        return Routing(layout, n_channels, matrix=inner.matrix @ piece_to_venue(piece_layout, layout))
    if voice_cfg.matrix is not None:
        m = np.asarray(voice_cfg.matrix, dtype=np.float32)
        if m.shape != (n_channels, layout.n_channels):
            problems.append(
                Problem(
                    file,
                    f"{key}.matrix",
                    voice_cfg.matrix,
                    f"must be {n_channels} row(s) (model channels) × {layout.n_channels} columns (speakers)",
                )
            )
            m = np.zeros((n_channels, layout.n_channels), dtype=np.float32)
        return Routing(layout, n_channels, matrix=m)
    if voice_cfg.route is not None:
        m = np.zeros((n_channels, layout.n_channels), dtype=np.float32)
        try:
            targets = [layout.index(s) for s in voice_cfg.route]
        except (KeyError, ValueError, IndexError) as exc:
            problems.append(Problem(file, f"{key}.route", voice_cfg.route, str(exc)))
            return Routing(layout, n_channels, matrix=m)
        if len(targets) == n_channels:
            for ch, t in enumerate(targets):
                m[ch, t] = 1.0
        else:
            m[:, targets] = 1.0
        return Routing(layout, n_channels, matrix=m)
    pan = voice_cfg.pan
    if pan is None:
        return Routing(layout, n_channels)
    return Routing(
        layout,
        n_channels,
        azimuth_deg=pan.azimuth_deg,
        spread_deg=pan.spread_deg,
        rotate_deg_s=pan.rotate_deg_s,
        waypoints=[(t, a) for t, a in pan.waypoints] if pan.waypoints else None,
    )


class Engine:
    """Produces the master bus block by block: ``next_block()`` → float32 [n_speakers, blocksize].

    Args:
        installation: the loaded piece.
        fade_in_s: start-up fade of the master bus.
        live_loads: ``SwapModel`` loads the model in a background thread and the swap lands at the first
            block after the load (logged as ``ModelSwapped``). False (replay, offline renders):
            ``SwapModel`` is only logged, and ``ModelSwapped`` loads synchronously and swaps at once, so
            the swap lands at exactly the logged block.
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
        self._commands: queue.SimpleQueue[c.Command] = queue.SimpleQueue()
        self.command_log: list[tuple[int, c.Command]] = []
        self.command_listeners: list[Callable[[int, c.Command], None]] = []
        self.block_listeners: list[Callable[[int, np.ndarray], None]] = []
        # (block index, voice name, z [latent_size, n_frames]) for every chunk a voice decodes.
        self.latent_listeners: list[Callable[[int, str, np.ndarray], None]] = []
        # Commands the engine sequences and logs but whose effect lives outside it (e.g. recording).
        self.handlers: dict[type[c.Command], Callable[[c.Command], None]] = {}
        self.counters = EngineCounters(peaks=[0.0] * self.n_channels)
        self.voices: dict[str, Voice] = {}
        self.groups: list[ModelGroup] = []
        self.live_loads = live_loads
        # Model swaps: the model each voice plays, swaps being loaded, finished loads (from loader
        # threads; the worker only polls this queue between blocks) and voices in a swap crossfade.
        self.voice_models = {name: vc.model for name, vc in cfg.piece.voices.items()}
        self.swaps_loading: dict[str, str] = {}
        self._loads: queue.SimpleQueue[_Load] = queue.SimpleQueue()
        self._ready: dict[str, _Load] = {}
        self._crossfading: list[Voice] = []
        self._ramp_cache: np.ndarray | None = None
        self._build(installation)
        glide = int(GLIDE_S * self.samplerate)
        self.master_gain = Ramp(out.master_gain, glide)
        self.master_mute = Ramp(1.0, glide)
        self._fade_in = Ramp(0.0 if fade_in_s > 0 else 1.0, max(1, int(fade_in_s * self.samplerate)))
        self._fade_in.set(1.0)
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
        if self.morph:
            self.programme.pair_voices = self._morph_pairs
            self.programme.morph_handover = int(MORPH_HANDOVER_S * self.samplerate)
            for group in self.groups:
                group.shape_latents = self._morph_latents
        self.snapshot: EngineSnapshot = self._make_snapshot()

    # ------------------------------------------------------------------ construction
    def _build(self, inst: Installation) -> None:
        cfg = inst.config
        file = inst.piece_file
        problems: list[Problem] = []
        by_model: dict[str, list[Voice]] = {}
        self._piece_layout = None
        if cfg.piece.layout is not None and cfg.piece.layout != self.layout.name:
            self._piece_layout = make_layout(cfg.piece.layout)
        for name, vc in cfg.piece.voices.items():
            voices = by_model.setdefault(vc.model, [])
            voice = self._make_voice(name, vc, inst.models[vc.model].info, len(voices), problems)
            if voice is None:
                continue
            voices.append(voice)
            self.voices[name] = voice
        if problems:
            raise ConfigError(problems)
        frames = cfg.venue.audio.frames_per_call
        for model_name, voices in by_model.items():
            model = inst.models[model_name]
            try:
                # A model with a minimum buffer (vschaos2) decodes more frames per call than the venue asks.
                group_frames = frames_per_call_for(model.info, frames)
            except ModelError as exc:
                problems.append(Problem(file, f"models.{model_name}", str(model.path), str(exc)))
                continue
            self.groups.append(ModelGroup(model_name, model, voices, self.samplerate, group_frames))
        if problems:
            raise ConfigError(problems)

    def _make_voice(
        self,
        name: str,
        vc,
        info: ModelInfo,
        row: int,
        problems: list[Problem],
        source: Source | None = None,
        seed: int | None = None,
    ) -> Voice | None:
        """A voice of the piece on a model described by ``info`` (None when its source cannot be built).

        ``source`` is used as it is when given; ``seed`` defaults to the voice's seed in the piece.
        """
        cfg = self.installation.config
        file = self.installation.piece_file
        key = f"voices.{name}"
        if seed is None:
            seed = voice_seed(self.seed, name)
        if source is None:
            try:
                source = build_source(
                    vc.source,
                    latent_size=info.latent_size,
                    latent_rate_hz=info.latent_rate_hz,
                    ratio=info.ratio,
                    seed=seed,
                    base_dir=cfg.piece_dir,
                )
            except ValueError as exc:
                problems.append(Problem(file, f"{key}.source", vc.source.kind, str(exc)))
                return None
        constants = {k: v for k, v in vc.conditioning.items() if isinstance(v, int | float)}
        driven: dict[str, Source] = {}
        for cond_name, spec in vc.conditioning.items():
            if cond_name in info.conditioning and not isinstance(spec, int | float):
                try:
                    driven[cond_name] = build_source(
                        spec,
                        latent_size=1,
                        latent_rate_hz=info.latent_rate_hz,
                        ratio=info.ratio,
                        seed=voice_seed(self.seed, f"{name}.{cond_name}"),
                        base_dir=cfg.piece_dir,
                    )
                except ValueError as exc:
                    problems.append(Problem(file, f"{key}.conditioning.{cond_name}", spec.kind, str(exc)))
        unknown = sorted(set(vc.conditioning) - set(info.conditioning))
        if unknown:
            allowed = ", ".join(info.conditioning) or "none (the model has no conditioning inputs)"
            problems.append(
                Problem(
                    file,
                    f"{key}.conditioning",
                    unknown,
                    f"unknown conditioning input; allowed: {allowed}",
                )
            )
        clamp = tuple(vc.clamp) if vc.clamp is not None else None
        return Voice(
            name,
            row,
            source,
            latent_size=info.latent_size,
            latent_rate_hz=info.latent_rate_hz,
            samplerate=self.samplerate,
            conditioning=constants,
            conditioning_names=info.conditioning,
            conditioning_sources=driven,
            gain=vc.gain,
            mute=vc.mute,
            bias=_per_dim(vc.bias, 0.0, info.latent_size, f"{key}.bias", problems, file),
            scale=_per_dim(vc.scale, 1.0, info.latent_size, f"{key}.scale", problems, file),
            clamp=clamp,  # type: ignore[arg-type]
            routing=_routing(vc, self.layout, info.n_channels, key, problems, file, self._piece_layout),
            seed=seed,
        )

    def group_of(self, voice_name: str) -> ModelGroup:
        """The model group (model and batch rows) a voice decodes in."""
        voice = self.voices[voice_name]
        for group in self.groups:
            if any(v is voice for v in group.voices):
                return group
        raise KeyError(voice_name)

    # ------------------------------------------------------------------ control
    def submit(self, command: c.Command) -> None:
        """Queue a command; it is applied before the next block. Never blocks; callable from any thread."""
        self._commands.put_nowait(command)

    def check(self, command: c.Command) -> str | None:
        """Why ``command`` would be refused (unknown voice, section, dimension...), or None if it is valid."""
        voice_name = getattr(command, "voice", None)
        if voice_name is not None:
            voice = self.voices.get(voice_name)
            if voice is None:
                return f"unknown voice {voice_name!r}; voices: {', '.join(self.voices)}"
            dim = getattr(command, "dim", None)
            if dim is not None and not 0 <= dim < voice.latent_size:
                return f"dim {dim} out of range 0..{voice.latent_size - 1} for voice {voice_name!r}"
            if isinstance(command, c.SetConditioning) and command.input not in voice.conditioning_names:
                allowed = ", ".join(voice.conditioning_names) or "none"
                return f"unknown conditioning input {command.input!r}; allowed: {allowed}"
            if isinstance(command, c.SetSourceParam) and command.key not in voice.source.params():
                return (
                    f"unknown source parameter {command.key!r}; allowed: {', '.join(voice.source.params())}"
                )
            if isinstance(command, c.SetSourceParam):
                low, high = voice.source.param_range(command.key)
                if not low <= command.value <= high:
                    return f"parameter {command.key!r} must be in {low:g}..{high:g}, got {command.value:g}"
            if isinstance(command, c.SetLatentClamp) and command.low > command.high:
                return f"clamp low {command.low} is above high {command.high}"
            if isinstance(command, c.SwapModel | c.ModelSwapped):
                reason = self._check_swap(command)
                if reason is not None:
                    return reason
            if isinstance(command, c.SetModelAttribute):
                model = self.group_of(voice_name).model
                if command.attribute not in model.info.attributes:
                    allowed = ", ".join(model.info.attributes) or "none (the model declares no attributes)"
                    return (
                        f"model of voice {voice_name!r} has no attribute {command.attribute!r}; "
                        f"attributes: {allowed}"
                    )
        if isinstance(command, c.StartRecording | c.StopRecording) and type(command) not in self.handlers:
            return "recording is not available in this process"
        if (
            isinstance(command, c.GotoSection | c.RestoreProgramme)
            and command.section not in self.programme.names()
        ):
            return f"unknown section {command.section!r}; sections: {', '.join(self.programme.names())}"
        for attr in ("gain", "value", "low", "high", "azimuth_deg", "deg_per_s"):
            v = getattr(command, attr, None)
            if isinstance(v, float) and not math.isfinite(v):
                return f"{attr} must be a finite number, got {v}"
        return None

    def _check_swap(self, command: c.SwapModel | c.ModelSwapped) -> str | None:
        models = self.installation.config.piece.models
        if command.model not in models:
            return f"unknown model {command.model!r}; models of the piece: {', '.join(models)}"
        if self.voice_models[command.voice] == command.model:
            return f"voice {command.voice!r} already plays model {command.model!r}"
        if not self.live_loads:
            return None
        loading = self.swaps_loading.get(command.voice)
        if isinstance(command, c.SwapModel) and loading is not None:
            return f"voice {command.voice!r} is already swapping to model {loading!r}; wait until it lands"
        if isinstance(command, c.ModelSwapped) and command.voice not in self._ready:
            return "voice.model_swapped is logged by the engine when a swap lands; send voice.model instead"
        return None

    def _apply(self, cmd: c.Command) -> None:
        reason = self.check(cmd)
        if reason is None:
            try:
                self._apply_checked(cmd)
            except ValueError as exc:
                reason = str(exc)
        if reason is not None:
            self.counters.refused_commands += 1
            log.warning("command.refused", block=self.counters.blocks, command=cmd.to_json(), reason=reason)
            return
        self.command_log.append((self.counters.blocks, cmd))
        log.info("command.applied", block=self.counters.blocks, **cmd.to_json())
        for listener in self.command_listeners:
            listener(self.counters.blocks, cmd)

    def _apply_checked(self, cmd: c.Command) -> None:
        # check() has refused every command naming a voice that does not exist.
        v = cast(Voice, self.voices.get(getattr(cmd, "voice", "")))
        match cmd:
            case c.SetVoiceGain(gain=g):
                v.gain.set(g)
            case c.SetVoiceMute(mute=m):
                v.mute.set(0.0 if m else 1.0)
                if not m:
                    v.faults, v.fault_until = 0, -1
            case c.SetLatentBias(dim=d, value=x):
                v.bias.set_at(d, x)
            case c.SetLatentScale(dim=d, value=x):
                v.scale.set_at(d, x)
            case c.SetLatentClamp(dim=d, low=lo, high=hi):
                v.clamp_low[d], v.clamp_high[d] = lo, hi
            case c.FreezeVoice(frozen=f):
                v.frozen = f
            case c.ReseedVoice(seed=s):
                v.source.reseed(s)
                v.seed = s
            case c.TriggerVoice():
                v.source.trigger()
            case c.SetSourceParam(key=k, value=x):
                v.source.set_param(k, x)
            case c.SetVoicePan(azimuth_deg=a):
                v.routing.matrix = None
                v.routing.waypoints = None
                v.routing.azimuth_deg = a
            case c.SetVoiceRotation(deg_per_s=r):
                v.routing.matrix = None
                v.routing.waypoints = None
                v.routing.rotate_deg_s = r
            case c.SetConditioning(input=name, value=x):
                index = v.conditioning_names.index(name)
                v.cond.set_at(index, x)
                v.cond_overridden.add(index)
            case c.SetModelAttribute(attribute=a, value=x):
                group = self.group_of(v.name)
                try:
                    group.model.set_attribute(a, x)
                except ModelError as exc:
                    raise ValueError(str(exc)) from exc
                others = [u.name for u in group.voices if u is not v]
                if others:
                    log.info("model.attribute_shared", model=group.name, attribute=a, voices=others)
            case c.SwapModel(voice=name, model=model):
                if self.live_loads:
                    self.swaps_loading[name] = model
                    threading.Thread(
                        target=self._load, args=(name, model), name=f"latentd-load-{model}", daemon=True
                    ).start()
                    log.info("model.loading", voice=name, model=model)
            case c.ModelSwapped(voice=name, model=model):
                ready = self._ready.pop(name) if self.live_loads else self._load_now(name, model)
                if ready.loaded is None:
                    self.counters.swap_failures += 1
                    log.error("model.swap_failed", voice=name, model=model, reason=ready.error)
                    raise ValueError(f"model {model!r} failed to load: {ready.error}")
                try:
                    self._swap_in(name, model, ready.loaded, ready.frames_per_call)
                except ValueError as exc:
                    self.counters.swap_failures += 1
                    log.error("model.swap_failed", voice=name, model=model, reason=str(exc))
                    raise
            case c.SetMasterGain(gain=g):
                self.master_gain.set(g)
            case c.SetMasterMute(mute=m):
                self.master_mute.set(0.0 if m else 1.0)
            case c.NextSection():
                self.programme.next()
            case c.GotoSection(section=s):
                self.programme.goto(self.programme.names().index(s))
            case c.HoldSection(hold=h):
                self.programme.hold = h
            case c.RestoreProgramme(step=k, section=s, position_s=t, hold=h):
                self.programme.restore(k, self.programme.names().index(s), int(t * self.samplerate), h)
            case c.SetOpen(open=o, fade_s=f):
                # The opening fade reuses the start-up fade: one gain stage, so the two never fight.
                self._fade_in.ramp_steps = max(1, int(max(0.0, f) * self.samplerate))
                self._fade_in.set(1.0 if o else 0.0)
            case c.ResetOverrides():
                for voice in self.voices.values():
                    voice.reset_overrides()
                self.master_gain.set(self.installation.config.venue.output.master_gain)
                self.master_mute.set(1.0)
                self.programme.hold = False
            case _ if type(cmd) in self.handlers:
                self.handlers[type(cmd)](cmd)
            case _:
                raise ValueError(f"unknown command {cmd.name!r}")

    # ------------------------------------------------------------------ model swaps
    def _load_now(self, voice: str, model: str) -> _Load:
        """Load and warm up ``model`` for ``voice``; failures come back as a ``_Load`` with the reason."""
        cfg = self.installation.config
        spec = cfg.piece.models[model]
        try:
            loaded = LoadedModel(cfg.model_path(model), method=spec.method)
            check_audio_method(loaded.info)
            for attr, value in spec.attributes.items():
                loaded.set_attribute(attr, value)
            frames = frames_per_call_for(loaded.info, cfg.venue.audio.frames_per_call)
            # In the loader thread torch's generator must not be saved and restored (the worker draws).
            loaded.warm_up(batch=1, n_frames=frames, calls=WARM_UP_CALLS, guard_rng=not self.live_loads)
        except Exception as exc:  # any failure at all must leave the old model playing
            reason = str(exc) if isinstance(exc, ModelError) else f"{type(exc).__name__}: {exc}"
            return _Load(voice, model, None, 0, reason)
        return _Load(voice, model, loaded, frames, "")

    def _load(self, voice: str, model: str) -> None:
        """Loader thread: load, warm up, hand the result to the worker. Holds no engine state or lock."""
        self._loads.put_nowait(self._load_now(voice, model))

    def _land_swaps(self) -> None:
        """Worker, between blocks: swap in every finished load; report the failed ones."""
        while True:
            try:
                done = self._loads.get_nowait()
            except queue.Empty:
                return
            self.swaps_loading.pop(done.voice, None)
            if done.loaded is None:
                self.counters.swap_failures += 1
                log.error(
                    "model.swap_failed",
                    voice=done.voice,
                    model=done.model,
                    reason=done.error,
                    action=f"keeps playing {self.voice_models[done.voice]!r}",
                )
                continue
            self._ready[done.voice] = done
            # Logged like a command at this block, so replay lands the swap at the same block.
            self._apply(c.ModelSwapped(done.voice, done.model))
            self._ready.pop(done.voice, None)

    def _swap_in(self, name: str, model: str, loaded: LoadedModel, frames_per_call: int) -> None:
        """Replace voice ``name`` by a voice on ``loaded`` in a group of its own, and start the crossfade."""
        old = self.voices[name]
        info = loaded.info
        vc = self.installation.config.piece.voices[name]
        same_source = info.latent_size == old.latent_size and math.isclose(
            info.latent_rate_hz, old.latent_rate_hz
        )
        problems: list[Problem] = []
        source = old.source if same_source else None
        new = self._make_voice(name, vc, info, 0, problems, source=source, seed=old.seed)
        if new is None:  # only when the source could not be built for the new model
            raise ValueError(f"voice {name!r}: source for model {model!r}: {problems[0].message}")
        if problems:
            # Per-dimension settings of the piece that do not fit the new model fall back to defaults.
            log.warning("model.swap_defaults", voice=name, model=model, problems=[str(p) for p in problems])
        self._carry_overrides(old, new)
        if same_source:
            old.hold()  # the source now belongs to the new voice: stepping it twice would skip frames
        steps = max(1, int(SWAP_CROSSFADE_S * self.samplerate))
        old.start_crossfade(steps, fading_out=True)
        new.start_crossfade(steps, fading_out=False)
        self._crossfading += [old, new]
        # Rows are positional in a model's streaming state: the new voice gets a group of its own.
        group = ModelGroup(model, loaded, [new], self.samplerate, frames_per_call)
        if self.morph:
            group.shape_latents = self._morph_latents
        self.groups.append(group)
        self.voices[name] = new
        self.voice_models[name] = model
        self.counters.swaps += 1
        log.info("model.swapped", voice=name, model=model, crossfade_s=SWAP_CROSSFADE_S)

    @staticmethod
    def _carry_overrides(old: Voice, new: Voice) -> None:
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

    # ------------------------------------------------------------------ audio
    def next_block(self) -> np.ndarray:
        """Apply pending commands and produce the next master block, float32 [n_speakers, blocksize]."""
        while True:
            try:
                self._apply(self._commands.get_nowait())
            except queue.Empty:
                break
        if self.live_loads:
            self._land_swaps()
        n = self.blocksize
        crossfades = {id(v): v.crossfade_gain(n) for v in self._crossfading}
        if self.programme.current.name != self._tempo_section:
            self._follow_tempo()
        audible = self.programme.audible()
        envelopes = self.programme.envelopes(n, list(self.voices))
        mix = np.zeros((self.n_channels, n), dtype=np.float32)
        for group in self.groups:
            # A voice retired at the end of its fade is still mixed in this block (its crossfade's last part).
            if not any(v.name in audible and (not v.retired or id(v) in crossfades) for v in group.voices):
                continue
            before = group.calls
            group.fill(n)
            self.counters.decode_calls += group.calls - before
            if self.latent_listeners and group.calls != before:
                for voice in group.voices:
                    if self.voices[voice.name] is not voice:
                        continue  # a voice being replaced: its successor reports the latents
                    for listener in self.latent_listeners:
                        listener(self.counters.blocks, voice.name, voice.last_z)  # type: ignore[arg-type]
            if group.faulted_rows:
                self._fault(group)
            rows = group.take(n)
            for voice in group.voices:
                env = envelopes.get(voice.name)
                if env is None or (voice.retired and id(voice) not in crossfades):
                    continue
                level = voice.gain.values(n) * voice.mute.values(n) * env
                fade = crossfades.get(id(voice))
                if fade is not None:
                    level = level * fade
                if voice.fault_until >= self.counters.blocks:
                    level = level * 0.0
                sig = rows[voice.row] * level.astype(np.float32)
                start, delta = voice.routing.block(n, self.samplerate)
                mix += start.T @ sig
                if delta is not None:
                    mix += delta.T @ (sig * self._ramp(n))
        if crossfades:
            self._end_crossfades()
        mix *= (self.master_gain.values(n) * self.master_mute.values(n) * self._fade_in.values(n)).astype(
            np.float32
        )
        if not np.isfinite(mix).all():
            # A poisoned sample must never reach the speakers or the DC filter's state.
            self.counters.nonfinite_blocks += 1
            np.nan_to_num(mix, copy=False, nan=0.0, posinf=0.0, neginf=0.0)
        self.trims.process(mix)
        self.dc.process(mix)
        block = self.limiter.process(mix)
        peaks = np.max(np.abs(block), axis=1)
        self.counters.peaks = [max(a, float(b)) for a, b in zip(self.counters.peaks, peaks, strict=True)]
        for on_block in self.block_listeners:
            on_block(self.counters.blocks, block)
        self.counters.blocks += 1
        self.snapshot = self._make_snapshot()
        return block

    def _ramp(self, n: int) -> np.ndarray:
        """(1..n) / n, float32: how far a per-block gain change has gone at each frame (made once)."""
        if self._ramp_cache is None or self._ramp_cache.shape[0] != n:
            self._ramp_cache = np.arange(1, n + 1, dtype=np.float32) / n
        return self._ramp_cache

    def _end_crossfades(self) -> None:
        """Forget finished crossfades; drop groups whose voices are all retired (no longer decoded)."""
        self._crossfading = [v for v in self._crossfading if v.crossfading]
        kept = [g for g in self.groups if not all(v.retired for v in g.voices)]
        for group in self.groups:
            if group not in kept:
                log.info("model.released", model=group.name, voices=[v.name for v in group.voices])
        self.groups = kept

    def _morph_pairs(self, leaving: frozenset[str], entering: frozenset[str]) -> dict[str, str]:
        """Pair each entering voice with a leaving voice of the same model (each used once)."""
        pairs: dict[str, str] = {}
        free = sorted(leaving)
        for name in sorted(entering):
            partner = next((x for x in free if self.group_of(x) is self.group_of(name)), None)
            if partner is not None:
                free.remove(partner)
                pairs[name] = partner
        if pairs:
            log.info("section.morph", section=self.programme.current.name, pairs=pairs)
        return pairs

    def _morph_latents(self, group: ModelGroup, z: np.ndarray) -> None:
        """During a morphing crossfade, glide each entering voice's latents from its partner's."""
        pairs = self.programme.morph_pairs
        if not pairs or not self.programme.fading:
            return
        frames = z.shape[2]
        samples_per_frame = self.samplerate / group.info.latent_rate_hz
        # Decoding runs ahead of the mix by what the FIFO holds: place the glide where it will be heard.
        ahead = group.available + samples_per_frame * np.arange(1, frames + 1)
        p = np.array([self.programme.morph_progress(int(a)) for a in ahead], dtype=np.float32)
        size = group.info.latent_size
        for entering, leaving in pairs.items():
            a, b = self.voices[entering], self.voices[leaving]
            if a not in group.voices or b not in group.voices:
                continue
            z[a.row, :size] = (1.0 - p) * z[b.row, :size] + p * z[a.row, :size]
            a.last_z = z[a.row, :size].copy()

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
        hold_blocks = int(FAULT_HOLD_S * self.samplerate / self.blocksize)
        for row in group.faulted_rows:
            voice = group.voices[row]
            voice.faults += 1
            self.counters.voice_faults += 1
            if voice.faults >= MAX_FAULTS:
                voice.mute.set(0.0, now=True)
                voice.fault_until = -1
            else:
                voice.fault_until = self.counters.blocks + hold_blocks
            log.error(
                "voice.nonfinite",
                voice=voice.name,
                model=group.name,
                faults=voice.faults,
                action="muted until an operator unmutes it"
                if voice.faults >= MAX_FAULTS
                else "silenced, model reset",
            )

    @property
    def is_open(self) -> bool:
        """Whether the venue is open (fading in or playing) rather than closed (fading out or silent)."""
        return bool(self._fade_in.target >= 0.5)

    def _make_snapshot(self) -> EngineSnapshot:
        """The engine's state now, as an immutable value for other threads (the engine thread only)."""
        p = self.programme
        counters = self.counters
        return EngineSnapshot(
            block=counters.blocks,
            seconds=counters.blocks * self.blocksize / self.samplerate,
            piece=self.installation.config.piece.name,
            sections=tuple(p.names()),
            section=p.current.name,
            step=p.step,
            section_index=p.index,
            position_s=p.position / self.samplerate,
            hold=p.hold,
            open=self.is_open,
            voices=frozen_mapping(
                {
                    name: VoiceState(
                        seed=v.seed,
                        gain=float(v.gain.target),
                        muted=bool(v.mute.target == 0.0),
                        frozen=v.frozen,
                        faults=v.faults,
                        model=self.voice_models[name],
                        loading=self.swaps_loading.get(name),
                        latent_size=v.latent_size,
                        latent_rate_hz=v.latent_rate_hz,
                    )
                    for name, v in self.voices.items()
                }
            ),
            master_gain=float(self.master_gain.target),
            limiter_db=self.limiter.reduction_db,
            peaks=tuple(counters.peaks),
            counters=frozen_mapping(
                {
                    "blocks": counters.blocks,
                    "decode_calls": counters.decode_calls,
                    "nonfinite_blocks": counters.nonfinite_blocks,
                    "voice_faults": counters.voice_faults,
                    "refused_commands": counters.refused_commands,
                    "swaps": counters.swaps,
                    "swap_failures": counters.swap_failures,
                }
            ),
            command_log=CommandLogView(self.command_log, len(self.command_log)),
        )

    def status(self) -> dict[str, object]:
        """A snapshot for status lines and ``/status`` (engine thread; other threads read ``snapshot``)."""
        return self._make_snapshot().status()
