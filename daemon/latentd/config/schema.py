"""The configuration's schema: frozen pydantic models of the venue config and the piece.

The models live in :mod:`latentd.config.venue` and :mod:`latentd.config.piece` (the ``[osc]``,
``[recording]`` and ``[schedule]`` tables beside the code that uses them); this module names them all in
one place. ``latentd config --reference`` (:mod:`latentd.config.reference`) documents every key.
"""

from latentd.config.nodes import NodeConfig
from latentd.config.piece import (
    ModelConfig,
    PanConfig,
    PieceConfig,
    PoolConfig,
    ProgrammeConfig,
    SectionConfig,
    VoiceConfig,
    pool_folder,
)
from latentd.config.venue import (
    AudioConfig,
    JackConfig,
    LoggingConfig,
    OutputConfig,
    SpeakerConfig,
    TrimConfig,
    VenueConfig,
)
from latentd.control.osc_config import OscConfig
from latentd.control.schedule_config import ExceptionDay, RecordingSchedule, ScheduleConfig
from latentd.recording.config import RecordingConfig
from latentd.sources.specs import SourceSpec
from latentd.web.config import WebConfig

__all__ = [
    "AudioConfig",
    "ExceptionDay",
    "JackConfig",
    "LoggingConfig",
    "ModelConfig",
    "NodeConfig",
    "OscConfig",
    "OutputConfig",
    "PanConfig",
    "PieceConfig",
    "PoolConfig",
    "ProgrammeConfig",
    "RecordingConfig",
    "RecordingSchedule",
    "ScheduleConfig",
    "SectionConfig",
    "SourceSpec",
    "SpeakerConfig",
    "TrimConfig",
    "VenueConfig",
    "VoiceConfig",
    "WebConfig",
    "pool_folder",
]
