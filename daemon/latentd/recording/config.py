"""``[recording]``: what the recorder writes, where, in which format, and the free-space floor."""

from __future__ import annotations

from typing import Literal

from pydantic import BaseModel, ConfigDict, Field, ValidationInfo, field_validator

GIB = 2**30


class RecordingConfig(BaseModel):
    """``[recording]``: what the recorder writes, where, in which format, and the free-space floor.

    The default format is W64 float32: measured here, a W64 file whose writer was killed with SIGKILL
    opens in libsndfile and sox with everything written up to the kill; RF64/WAV need libsndfile's
    automatic header updates (turned on by the recorder) and FLAC needs ``latentd recover``.
    """

    model_config = ConfigDict(extra="forbid", frozen=True, strict=True, allow_inf_nan=False)

    mode: Literal["off", "always"] = Field(
        default="off",
        description='"always" records from start to stop; "off" records only when asked (`latentd run '
        "--record`, OSC /record/start, a scheduled recording)",
    )
    folder: str = Field(
        default="recordings",
        min_length=1,
        description="folder that holds one folder per recording session, relative to the venue config file",
    )
    format: Literal["w64", "rf64", "wav", "flac"] = Field(
        default="w64",
        description="audio file format: w64 (default; readable after a kill), rf64, wav (segments rotate "
        "below 4 GiB) or flac (closed by `latentd recover` after a kill)",
    )
    subtype: Literal["float32", "pcm24"] = Field(
        default="float32", description="sample format: 32-bit float or 24-bit integer; flac takes pcm24 only"
    )
    segment_s: float = Field(
        default=3600.0,
        ge=1.0,
        le=7 * 86400.0,
        description="length of each audio file in seconds; the next file continues without a gap",
    )
    min_free_bytes: int = Field(
        default=2 * GIB,
        ge=0,
        description="recording stops (playback goes on) when free space in the folder falls below this many "
        "bytes",
    )
    min_free_percent: float = Field(
        default=5.0,
        ge=0.0,
        le=100.0,
        description="recording stops (playback goes on) when free space falls below this percent of the disk",
    )
    resume_when_space: bool = Field(
        default=True, description="start a new file when free space is back above both floors"
    )
    latents: bool = Field(
        default=True,
        description="also record the latents each voice decoded (<voice>.npy and <voice>_latents.wav in the "
        "session folder)",
    )
    ring_s: float = Field(
        default=8.0,
        ge=0.5,
        le=600.0,
        description="seconds of audio the recorder's ring holds while its writer thread is busy; when the "
        "writer falls further behind, blocks are dropped and counted",
    )
    flush_s: float = Field(
        default=0.5,
        ge=0.05,
        le=1.0,
        description="seconds of audio between syncs to disk (fsync): at most this much is lost to a power "
        "cut",
    )

    @field_validator("subtype")
    @classmethod
    def _flac_is_integer(cls, value: str, info: ValidationInfo) -> str:
        if info.data.get("format") == "flac" and value != "pcm24":
            raise ValueError('flac stores integer samples only: use subtype = "pcm24" or another format')
        return value
