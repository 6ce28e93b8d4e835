"""An installation: a validated configuration with its layout and its models loaded and warmed up."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from latentd.config import Config, ConfigError, Problem
from latentd.installation.layout import Layout, Speaker, make_layout
from latentd.installation.models import LoadedModel, ModelError, check_audio_method, frames_per_call_for

WARM_UP_CALLS = 3  # the first calls of a model are slow (150–430 ms): never let them happen live


@dataclass
class Installation:
    """Everything the engine needs, loaded: config, layout, models (by name) and the seed in force."""

    config: Config
    layout: Layout
    models: dict[str, LoadedModel]
    seed: int

    @property
    def piece_file(self) -> Path:
        return self.config.piece_dir / "piece.toml"


def venue_layout(config: Config) -> Layout:
    """The venue's speaker layout (a preset, or the custom speakers listed in the venue config)."""
    audio = config.venue.audio
    speakers = None
    if audio.speakers:
        speakers = [Speaker(s.name, s.azimuth_deg, s.port) for s in audio.speakers]
    return make_layout(audio.layout, speakers)


def load_installation(config: Config, *, seed: int | None = None, warm_up: bool = True) -> Installation:
    """Load and warm up every model of the piece; every failure is reported at once as a ConfigError."""
    problems: list[Problem] = []
    models: dict[str, LoadedModel] = {}
    piece_file = config.piece_dir / "piece.toml"
    rows: dict[str, int] = {}
    for voice in config.piece.voices.values():
        rows[voice.model] = rows.get(voice.model, 0) + 1
    frames = config.venue.audio.frames_per_call
    for name, spec in config.piece.models.items():
        key: str = f"models.{name}.path"
        value: object = str(spec.path)
        try:
            model = LoadedModel(config.model_path(name), method=spec.method)
            key, value = f"models.{name}.method", spec.method
            check_audio_method(model.info)
            for attr, attr_value in spec.attributes.items():
                key, value = f"models.{name}.attributes.{attr}", attr_value
                model.set_attribute(attr, attr_value)
            key, value = f"models.{name}.path", str(spec.path)
            n_frames = frames_per_call_for(model.info, frames)
            if warm_up:
                model.warm_up(batch=max(1, rows.get(name, 1)), n_frames=n_frames, calls=WARM_UP_CALLS)
            models[name] = model
        except ModelError as exc:
            problems.append(Problem(piece_file, key, value, str(exc)))
    if problems:
        raise ConfigError(problems)
    return Installation(
        config=config,
        layout=venue_layout(config),
        models=models,
        seed=config.piece.seed if seed is None else seed,
    )
