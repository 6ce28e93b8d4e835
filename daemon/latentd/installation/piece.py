"""An installation: a validated configuration with its layout, its models loaded and its voices built.

This is where the configuration's last checks happen (models load, voices fit their models), so an
engine built from an installation never meets a configuration error.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path

from latentd.config import Config, ConfigError, Problem
from latentd.config.problems import MISSING
from latentd.engine.callshape import CallShape, shape_for
from latentd.engine.shape_cache import CACHE_NAME, ShapeCache
from latentd.engine.voice import Voice
from latentd.installation.layout import Layout
from latentd.installation.models import (
    LoadedModel,
    MissingSampleRate,
    ModelError,
    check_audio_method,
    frames_per_call_for,
)
from latentd.installation.voices import VoiceBuilder, build_voices

WARM_UP_CALLS = 3  # the first calls of a model are slow (150–430 ms): never let them happen live


@dataclass
class Installation:
    """Everything the engine needs, loaded and checked.

    An installation feeds one engine: the engine plays (and changes) its voices.

    Attributes:
        config: the validated configuration.
        layout: the venue's speaker layout.
        models: the piece's models by name, loaded and warmed up.
        seed: the piece seed in force.
        builder: builds voices of this piece (the engine's model swaps use it too).
        voices: the piece's voices by name, in piece order, each in its batch row.
        frames_per_call: latent frames each model decodes per call, by model name.
        call_shapes: each model's decode call shape (batch with padding rows, frames), by model name.
    """

    config: Config
    layout: Layout
    models: dict[str, LoadedModel]
    seed: int
    builder: VoiceBuilder
    voices: dict[str, Voice]
    frames_per_call: dict[str, int]
    call_shapes: dict[str, CallShape] = field(default_factory=dict)
    _claimed: bool = field(default=False, repr=False)

    @property
    def piece_file(self) -> Path:
        """The piece's configuration file."""
        return self.config.piece_file

    def claim_voices(self) -> dict[str, Voice]:
        """Hand the voices to the one engine that will play them.

        Raises:
            RuntimeError: an engine already plays them (load the installation again for another).
        """
        if self._claimed:
            raise RuntimeError("an installation's voices play in one engine; load it again for another")
        self._claimed = True
        return self.voices


def load_installation(
    config: Config,
    *,
    seed: int | None = None,
    warm_up: bool = True,
    call_shapes: Mapping[str, tuple[int, int]] | None = None,
    remeasure: bool = False,
) -> Installation:
    """Load and warm up every model of the piece, choose its call shape, then build its voices.

    Args:
        config: the validated configuration.
        seed: the piece seed (default: the piece's own).
        warm_up: run each model a few times first (its first calls are slow), and choose its call
            shape by measurement (``audio.batch_padding``, ``audio.decode_latency_ms``).
        call_shapes: model name → ``(batch, frames)`` to use instead of measuring (a replayed session's).
        remeasure: measure every call shape again, and replace what this machine's shape cache
            (``call-shapes.json`` beside the state file) held; otherwise a shape measured before is reused.

    Raises:
        ConfigError: every model that fails to load, or else every voice setting that does not fit its
            model, reported at once with the file and the key.
    """
    problems: list[Problem] = []
    models: dict[str, LoadedModel] = {}
    piece_file = config.piece_file
    rows: dict[str, int] = {}
    for voice in config.piece.voices.values():
        rows[voice.model] = rows.get(voice.model, 0) + 1
    frames = config.venue.audio.frames_per_call
    frames_per_call: dict[str, int] = {}
    shapes: dict[str, CallShape] = {}
    audio = config.venue.audio
    cache = ShapeCache(
        config.state_file.parent / CACHE_NAME,
        samplerate=audio.samplerate,
        blocksize=audio.blocksize,
        remeasure=remeasure,
    )
    for name, spec in config.piece.models.items():
        key: str = f"models.{name}.path"
        value: object = str(spec.path)
        try:
            try:
                model = LoadedModel(config.model_path(name), method=spec.method, sr=spec.samplerate)
            except MissingSampleRate:
                key, value = f"models.{name}.samplerate", MISSING
                raise
            key, value = f"models.{name}.method", spec.method
            check_audio_method(model.info)
            for attr, attr_value in spec.attributes.items():
                key, value = f"models.{name}.attributes.{attr}", attr_value
                model.set_attribute(attr, attr_value)
            key, value = f"models.{name}.path", str(spec.path)
            n_frames = frames_per_call_for(model.info, frames)
            if warm_up:
                model.warm_up(batch=max(1, rows.get(name, 1)), n_frames=n_frames, calls=WARM_UP_CALLS)
            shape = shape_for(
                model,
                name,
                rows.get(name, 1),
                frames_per_call=frames,
                latency_ms=audio.decode_latency_ms,
                pad=audio.batch_padding,
                measure=warm_up,
                recorded=(call_shapes or {}).get(name),
                cache=cache,
            )
            models[name] = model
            frames_per_call[name] = shape.frames
            shapes[name] = shape
        except ModelError as exc:
            problems.append(Problem(piece_file, key, value, str(exc)))
    if problems:
        raise ConfigError(problems)
    layout = config.layout
    seed = config.piece.seed if seed is None else seed
    builder = VoiceBuilder.for_config(config, layout, seed)
    return Installation(
        config=config,
        layout=layout,
        models=models,
        seed=seed,
        builder=builder,
        voices=build_voices(builder, {name: m.info for name, m in models.items()}),
        frames_per_call=frames_per_call,
        call_shapes=shapes,
    )
