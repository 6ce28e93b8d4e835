"""``[recording]``: what the recorder writes, where, in which format, and the free-space floor."""

from __future__ import annotations

from typing import Literal

from pydantic import BaseModel, ConfigDict, Field, ValidationInfo, field_validator

GIB = 2**30


class RecordingConfig(BaseModel):
    """``[recording]`` section of the venue config.

    The default format is W64 float32: measured here, a W64 file whose writer was killed with SIGKILL
    opens in libsndfile and sox with everything written up to the kill; RF64/WAV need libsndfile's
    automatic header updates (turned on by the recorder) and FLAC needs ``latentd recover``.
    """

    model_config = ConfigDict(extra="forbid", frozen=True, strict=True, allow_inf_nan=False)

    mode: Literal["off", "always"] = Field(
        default="off",
        description='"always" records from start to stop; "off" records only on command (OSC, schedule, CLI)',
    )
    folder: str = Field(
        default="recordings",
        min_length=1,
        description="folder of session folders, relative to the config file",
    )
    format: Literal["w64", "rf64", "wav", "flac"] = Field(
        default="w64", description="file format (wav segments rotate below 4 GiB)"
    )
    subtype: Literal["float32", "pcm24"] = Field(
        default="float32", description="sample format; flac takes pcm24 only"
    )
    segment_s: float = Field(
        default=3600.0, ge=1.0, le=7 * 86400.0, description="a new file starts after this many seconds"
    )
    min_free_bytes: int = Field(
        default=2 * GIB, ge=0, description="recording stops when free space in the folder falls below this"
    )
    min_free_percent: float = Field(
        default=5.0, ge=0.0, le=100.0, description="recording stops when free space falls below this percent"
    )
    resume_when_space: bool = Field(
        default=True, description="start a new segment when free space is back above the floor"
    )
    latents: bool = Field(default=True, description="also record each voice's decoded latents")
    ring_s: float = Field(
        default=8.0, ge=0.5, le=600.0, description="audio held for the writer thread, in seconds"
    )
    flush_s: float = Field(
        default=0.5, ge=0.05, le=1.0, description="written audio is synced to disk at least this often"
    )

    @field_validator("subtype")
    @classmethod
    def _flac_is_integer(cls, value: str, info: ValidationInfo) -> str:
        if info.data.get("format") == "flac" and value != "pcm24":
            raise ValueError('flac stores integer samples only: use subtype = "pcm24" or another format')
        return value
