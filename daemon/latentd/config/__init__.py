"""Strict configuration: the venue config (``configs/<venue>.toml``) and the piece (``piece.toml``).

Both files are TOML, validated into frozen pydantic models that forbid unknown keys and take no strings
for numbers. :func:`load_config` reads both and reports EVERY problem found in either file at once, each
as ``file: key.path = value: what is wrong and what is allowed`` (a :class:`ConfigError` holding
:class:`Problem` values).

The package: ``schema`` (every model, defined in ``venue``, ``piece`` and beside the code that uses a
table, on the building blocks in ``fields``), ``loader`` (reading both files, :class:`Config`),
``checks`` (references between keys and files), ``writable`` (the places latentd writes: can this
user write them?), ``explain`` (pydantic's errors as readable problems, "did you mean"), ``problems``
(:class:`Problem`, :class:`ConfigError`), ``toml_out`` (the effective config) and ``reference`` (every
key documented, from the models: ``docs/configuration.md``).
"""

from latentd.config.loader import Config, load_config, print_effective
from latentd.config.problems import MISSING, PIECE_FILE, ConfigError, Problem
from latentd.config.schema import (
    AudioConfig,
    JackConfig,
    LoggingConfig,
    ModelConfig,
    OutputConfig,
    PanConfig,
    PieceConfig,
    ProgrammeConfig,
    SectionConfig,
    SpeakerConfig,
    TrimConfig,
    VenueConfig,
    VoiceConfig,
)
from latentd.config.toml_out import to_toml

__all__ = [
    "MISSING",
    "PIECE_FILE",
    "AudioConfig",
    "Config",
    "ConfigError",
    "JackConfig",
    "LoggingConfig",
    "ModelConfig",
    "OutputConfig",
    "PanConfig",
    "PieceConfig",
    "Problem",
    "ProgrammeConfig",
    "SectionConfig",
    "SpeakerConfig",
    "TrimConfig",
    "VenueConfig",
    "VoiceConfig",
    "load_config",
    "print_effective",
    "to_toml",
]
