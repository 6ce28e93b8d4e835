"""Voices from the configuration: sources, per-dimension settings, conditioning and routing, checked.

The piece's voices are built once, while the configuration becomes an :class:`~latentd.installation.piece.
Installation`, so every problem is reported there (a ``ConfigError`` naming the file and the key) and an
engine built from an installation never meets a configuration error. Model swaps build their voice with
the same :class:`VoiceBuilder`; there the problems are only warnings (the piece's values do not fit the
new model and fall back to defaults).
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from types import MappingProxyType

import numpy as np
import structlog

from latentd.config import Config, ConfigError, Problem
from latentd.config.schema import VoiceConfig
from latentd.engine.snapshot import SwapRules
from latentd.engine.voice import Routing, Voice, voice_seed
from latentd.installation.conditioning import constant_problem, source_problem
from latentd.installation.layout import Layout, make_layout
from latentd.installation.models import ModelInfo
from latentd.sources import NoiseSpec, SourceSpec, build_source
from latentd.sources.base import Source, per_dim
from latentd.sources.noise import pd_seed_changes


def warn_pd_seeds(spec: SourceSpec, latent_size: int, file: Path, key: str) -> None:
    """Log a warning for each seed that ``seed_from = "pd"`` changes, naming the file and the key."""
    if isinstance(spec, NoiseSpec):
        for change in pd_seed_changes(spec, latent_size):
            structlog.get_logger("latentd.voices").warning(
                "source.pd_seed_changed",
                file=str(file),
                key=f"{key}.{change.key}",
                **({} if change.dim is None else {"dim": change.dim}),
                written=change.written,
                plays=change.plays,
                reason="Pd holds a seed message's argument as a 32-bit float",
            )


def piece_to_venue(piece_layout: Layout, venue: Layout) -> np.ndarray:
    """[piece speakers, venue speakers]: each of the piece's speakers panned at its azimuth on the venue's."""
    return np.asarray([venue.pan_gains(s.azimuth_deg) for s in piece_layout.speakers], dtype=np.float32)


@dataclass(frozen=True)
class VoiceBuilder:
    """Builds the voices of one piece on one venue.

    Attributes:
        config: the validated configuration.
        layout: the venue's speaker layout.
        seed: the piece seed in force (each voice derives its own from it).
        piece_layout: the layout the piece was made for, when it differs from the venue's (explicit
            matrices and routes then address the piece's speakers and are panned onto the venue's).
    """

    config: Config
    layout: Layout
    seed: int
    piece_layout: Layout | None = None

    @classmethod
    def for_config(cls, config: Config, layout: Layout, seed: int) -> VoiceBuilder:
        """The builder for ``config`` on the venue ``layout`` with the piece seed ``seed``."""
        piece_layout = None
        if config.piece.layout is not None and config.piece.layout != layout.name:
            piece_layout = make_layout(config.piece.layout)
        return cls(config, layout, seed, piece_layout)

    @property
    def piece_file(self) -> Path:
        """The file the voices are configured in (problems name it)."""
        return self.config.piece_dir / "piece.toml"

    def source(self, name: str, info: ModelInfo, seed: int, problems: list[Problem]) -> Source | None:
        """Voice ``name``'s latent source for a model described by ``info``; None (a problem appended to
        ``problems``, naming ``voices.<name>.source``) when it cannot be built for that model."""
        vc = self.config.piece.voices[name]
        try:
            return build_source(
                vc.source,
                latent_size=info.latent_size,
                latent_rate_hz=info.latent_rate_hz,
                ratio=info.ratio,
                seed=seed,
                base_dir=self.config.piece_dir,
            )
        except ValueError as exc:
            problems.append(Problem(self.piece_file, f"voices.{name}.source", vc.source.kind, str(exc)))
            return None

    def build(
        self,
        name: str,
        info: ModelInfo,
        row: int,
        problems: list[Problem],
        *,
        source: Source | None = None,
        seed: int | None = None,
    ) -> Voice | None:
        """Voice ``name`` of the piece on a model described by ``info``, in batch row ``row``.

        Problems are appended to ``problems``; a setting that does not fit falls back to its default.

        Args:
            name: the voice's name in the piece.
            info: the model the voice plays.
            row: the voice's batch row in its model group.
            problems: receives every problem found.
            source: used as it is when given (a swap keeps the source running).
            seed: the voice seed (default: the voice's seed in the piece).

        Returns:
            The voice, or None when its source cannot be built.
        """
        vc = self.config.piece.voices[name]
        file = self.piece_file
        key = f"voices.{name}"
        if seed is None:
            seed = voice_seed(self.seed, name) if vc.seed is None else vc.seed
        if source is None:
            source = self.source(name, info, seed, problems)
            if source is None:
                return None
            warn_pd_seeds(vc.source, info.latent_size, file, f"{key}.source")
        constants = {k: float(v) for k, v in vc.conditioning.items() if isinstance(v, int | float)}
        driven = self._conditioning_sources(name, vc, info, problems)
        self._check_ranges(name, vc, info, problems)
        clamp = (float(vc.clamp[0]), float(vc.clamp[1])) if vc.clamp is not None else None
        return Voice(
            name,
            row,
            source,
            latent_size=info.latent_size,
            latent_rate_hz=info.latent_rate_hz,
            samplerate=self.config.venue.audio.samplerate,
            conditioning=constants,
            conditioning_names=info.conditioning,
            conditioning_sources=driven,
            conditioning_ranges=info.conditioning_ranges,
            gain=vc.gain,
            mute=vc.mute,
            bias=self._per_dim(vc.bias, 0.0, info.latent_size, f"{key}.bias", problems),
            scale=self._per_dim(vc.scale, 1.0, info.latent_size, f"{key}.scale", problems),
            clamp=clamp,
            routing=self._routing(vc, info.n_channels, key, problems),
            seed=seed,
        )

    def _conditioning_sources(
        self, name: str, vc: VoiceConfig, info: ModelInfo, problems: list[Problem]
    ) -> dict[str, Source]:
        """The voice's conditioning inputs driven by a source; unknown inputs are problems."""
        key = f"voices.{name}"
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
                        base_dir=self.config.piece_dir,
                    )
                    warn_pd_seeds(spec, 1, self.piece_file, f"{key}.conditioning.{cond_name}")
                except ValueError as exc:
                    problems.append(
                        Problem(self.piece_file, f"{key}.conditioning.{cond_name}", spec.kind, str(exc))
                    )
        unknown = sorted(set(vc.conditioning) - set(info.conditioning))
        if unknown:
            allowed = ", ".join(info.conditioning) or "none (the model has no conditioning inputs)"
            problems.append(
                Problem(
                    self.piece_file,
                    f"{key}.conditioning",
                    unknown,
                    f"unknown conditioning input; allowed: {allowed}",
                )
            )
        return driven

    def _check_ranges(self, name: str, vc: VoiceConfig, info: ModelInfo, problems: list[Problem]) -> None:
        """Conditioning constants and bounded sources must stay inside the ranges the model's labels give."""
        ranges = dict(zip(info.conditioning, info.conditioning_ranges, strict=False))
        for cond_name, spec in vc.conditioning.items():
            if cond_name not in ranges:
                continue  # an unknown input, reported by _conditioning_sources
            if isinstance(spec, int | float):
                message = constant_problem(cond_name, float(spec), ranges[cond_name])
            else:
                message = source_problem(cond_name, spec, ranges[cond_name])
            if message is not None:
                value = spec if isinstance(spec, int | float) else spec.kind
                key = f"voices.{name}.conditioning.{cond_name}"
                problems.append(Problem(self.piece_file, key, value, message))

    def _per_dim(
        self, value: float | list[float] | None, default: float, size: int, key: str, problems: list[Problem]
    ) -> np.ndarray:
        """A per-dimension setting as ``size`` values; one that does not fit is a problem (default used)."""
        if value is None:
            return np.full(size, default, dtype=np.float64)
        try:
            return per_dim(value, key.rsplit(".", 1)[-1], size)
        except ValueError as exc:
            problems.append(Problem(self.piece_file, key, value, str(exc)))
            return np.full(size, default, dtype=np.float64)

    def _routing(self, vc: VoiceConfig, n_channels: int, key: str, problems: list[Problem]) -> Routing:
        """How the voice reaches the venue's speakers: a matrix, a route or panning."""
        layout = self.layout
        if self.piece_layout is not None and (vc.matrix is not None or vc.route is not None):
            # Explicit downmix: resolve against the piece's layout, then map its speakers onto the venue's.
            piece = VoiceBuilder(self.config, self.piece_layout, self.seed)
            resolved = piece._routing(vc, n_channels, key, problems)
            assert resolved.matrix is not None
            return Routing(
                layout, n_channels, matrix=resolved.matrix @ piece_to_venue(self.piece_layout, layout)
            )
        if vc.matrix is not None:
            m = np.asarray(vc.matrix, dtype=np.float32)
            if m.shape != (n_channels, layout.n_channels):
                problems.append(
                    Problem(
                        self.piece_file,
                        f"{key}.matrix",
                        vc.matrix,
                        f"must be {n_channels} row(s) (model channels) × "
                        f"{layout.n_channels} columns (speakers)",
                    )
                )
                m = np.zeros((n_channels, layout.n_channels), dtype=np.float32)
            return Routing(layout, n_channels, matrix=m)
        if vc.route is not None:
            m = np.zeros((n_channels, layout.n_channels), dtype=np.float32)
            try:
                targets = [layout.index(s) for s in vc.route]
            except (KeyError, ValueError, IndexError) as exc:
                problems.append(Problem(self.piece_file, f"{key}.route", vc.route, str(exc)))
                return Routing(layout, n_channels, matrix=m)
            if len(targets) == n_channels:
                for ch, t in enumerate(targets):
                    m[ch, t] = 1.0
            else:
                m[:, targets] = 1.0
            return Routing(layout, n_channels, matrix=m)
        pan = vc.pan
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


def build_voices(builder: VoiceBuilder, infos: dict[str, ModelInfo]) -> dict[str, Voice]:
    """Every voice of the piece, in piece order, each in the next batch row of its model.

    Args:
        builder: the piece's voice builder.
        infos: the piece's models by name.

    Raises:
        ConfigError: every problem of every voice, at once.
    """
    problems: list[Problem] = []
    voices: dict[str, Voice] = {}
    rows: dict[str, int] = {}
    for name, vc in builder.config.piece.voices.items():
        row = rows.get(vc.model, 0)
        voice = builder.build(name, infos[vc.model], row, problems)
        if voice is None:
            continue
        rows[vc.model] = row + 1
        voices[name] = voice
    problems += swap_target_problems(builder, infos)
    if problems:
        raise ConfigError(problems)
    return voices


def fit_problems(builder: VoiceBuilder, name: str, info: ModelInfo, *, every_setting: bool) -> list[Problem]:
    """A dry run of voice ``name`` built again on a model described by ``info``: what does not fit.

    Builds the voice's source (and closes it: a pool source starts a loader thread) and checks its
    per-dimension settings; with ``every_setting`` also its conditioning and routing (which a swap
    otherwise lets fall back to defaults).
    """
    vc = builder.config.piece.voices[name]
    key = f"voices.{name}"
    problems: list[Problem] = []
    seed = voice_seed(builder.seed, name) if vc.seed is None else vc.seed
    source = builder.source(name, info, seed, problems)
    if source is not None:
        _close(source)
    builder._per_dim(vc.bias, 0.0, info.latent_size, f"{key}.bias", problems)
    builder._per_dim(vc.scale, 1.0, info.latent_size, f"{key}.scale", problems)
    if every_setting:
        for driven in builder._conditioning_sources(name, vc, info, problems).values():
            _close(driven)
        builder._check_ranges(name, vc, info, problems)
        builder._routing(vc, info.n_channels, key, problems)
    return problems


def swap_target_problems(builder: VoiceBuilder, infos: dict[str, ModelInfo]) -> list[Problem]:
    """Every setting of a voice that does not fit one of its declared ``swap_targets``.

    Each problem names ``voices.<v>.swap_targets[i]`` and says which setting does not fit and why.
    Names that are not models of the piece are reported by the configuration checks.
    """
    problems: list[Problem] = []
    for name, vc in builder.config.piece.voices.items():
        for i, target in enumerate(vc.swap_targets or ()):
            info = infos.get(target)
            if info is None or target == vc.model:
                continue
            for found in fit_problems(builder, name, info, every_setting=True):
                message = f"model {target!r} ({_shape(info)}): {found.key} = {found.value!r}: {found.message}"
                key = f"voices.{name}.swap_targets[{i}]"
                problems.append(Problem(builder.piece_file, key, target, message))
    return problems


def swap_rules(builder: VoiceBuilder, infos: dict[str, ModelInfo]) -> SwapRules:
    """Which models each voice of the piece can swap to, decided once (a dry run per voice and model).

    Only models of another latent size or rate than the voice's own are tried: on the others the voice
    keeps a source of the same shape.
    """
    shapes = {model: (info.latent_size, info.latent_rate_hz) for model, info in infos.items()}
    targets: dict[str, tuple[str, ...]] = {}
    refusals: dict[str, Mapping[str, str]] = {}
    for name, vc in builder.config.piece.voices.items():
        if vc.swap_targets is not None:
            targets[name] = (vc.model, *(t for t in vc.swap_targets if t != vc.model))
        own_size, own_rate = shapes[vc.model]
        refused: dict[str, str] = {}
        for model, info in infos.items():
            if info.latent_size == own_size and math.isclose(info.latent_rate_hz, own_rate):
                continue
            if name in targets and model not in targets[name]:
                continue  # refused for that already
            found = fit_problems(builder, name, info, every_setting=False)
            if found:
                reasons = "; ".join(f"{p.key}: {p.message}" for p in found)
                refused[model] = f"voice {name!r} cannot play model {model!r} ({_shape(info)}): {reasons}"
        if refused:
            refusals[name] = MappingProxyType(refused)
    return SwapRules(MappingProxyType(shapes), MappingProxyType(targets), MappingProxyType(refusals))


def _shape(info: ModelInfo) -> str:
    return f"latent_size {info.latent_size} at {info.latent_rate_hz:g} Hz"


def _close(source: Source) -> None:
    """Stop what a source runs in the background (a dry run's source is never stepped)."""
    close = getattr(source, "close", None)
    if callable(close):
        close()
