"""The configuration's schema: frozen pydantic models of the venue config and the piece."""

from __future__ import annotations

import itertools
import re
from typing import Annotated, Any, Literal

from pydantic import (
    AfterValidator,
    BaseModel,
    ConfigDict,
    Field,
    model_validator,
)
from pydantic_core import PydanticCustomError

from latentd.config.problems import MISSING
from latentd.control.osc_config import OscConfig
from latentd.control.schedule_config import ScheduleConfig
from latentd.installation.layout import PRESETS, Layout, Speaker, make_layout
from latentd.recording.config import RecordingConfig
from latentd.sources.specs import LATENT_LIMIT, SourceSpec

# ----------------------------------------------------------------------------------------- shared types
NAME_RE = re.compile(r"[A-Za-z0-9_.\-]{1,64}")


def _check_name(value: str) -> str:
    if not NAME_RE.fullmatch(value):
        raise ValueError(
            "names use 1..64 letters, digits, '_', '-' or '.' (they appear in file names and OSC)"
        )
    return value


def _check_blocksize(value: int) -> int:
    if not (32 <= value <= 8192 and value & (value - 1) == 0):
        raise ValueError("must be a power of two between 32 and 8192")
    return value


Name = Annotated[str, AfterValidator(_check_name)]
Gain = Annotated[float, Field(ge=0.0, le=4.0)]
LatentNumber = Annotated[float, Field(ge=-LATENT_LIMIT, le=LATENT_LIMIT)]


def _fail(field: str | None, value: object, message: str) -> PydanticCustomError:
    """An error raised from a model validator that still names the field (and value) it is about."""
    return PydanticCustomError("latentd", "{message}", {"field": field, "value": value, "message": message})


class _Strict(BaseModel):
    """Base of every config model: unknown keys refused, values frozen, types strict, no NaN/inf."""

    model_config = ConfigDict(extra="forbid", frozen=True, strict=True, allow_inf_nan=False)


# ------------------------------------------------------------------------------------------------ venue
class SpeakerConfig(_Strict):
    """One speaker of a custom layout."""

    name: Name = Field(description="speaker name; also the name of the JACK output port")
    azimuth_deg: float = Field(ge=-360.0, le=360.0, description="direction, 0 = front, positive = left")
    port: str | None = Field(
        default=None, min_length=1, description="JACK playback port to connect, e.g. system:playback_1"
    )


class AudioConfig(_Strict):
    """``[audio]``: rates, block size, speaker layout, decoding."""

    samplerate: int = Field(default=48000, ge=8000, le=192000, description="JACK sample rate in Hz")
    blocksize: Annotated[int, AfterValidator(_check_blocksize)] = Field(
        default=256, description="frames per engine block: a power of two between 32 and 8192"
    )
    layout: Literal["stereo", "quad", "5.0", "7.0", "octo", "custom"] = Field(
        default="octo", description="speaker layout preset, or custom (then list `speakers`)"
    )
    speakers: list[SpeakerConfig] | None = Field(
        default=None,
        min_length=1,
        description='the speakers in channel order; only (and required) with layout = "custom"',
    )
    frames_per_call: int = Field(default=8, ge=1, le=64, description="latent frames per decode call")
    torch_threads: int = Field(default=1, ge=1, le=16, description="torch intra-op threads for decoding")
    downmix: bool = Field(
        default=False,
        description="allow a piece made for more speakers than the venue has (explicit downmix)",
    )
    engine_process: bool = Field(
        default=True,
        description="`latentd run` decodes in its own process (no xruns from the GIL); false: a thread",
    )

    @model_validator(mode="after")
    def _speakers_fit_layout(self) -> AudioConfig:
        problem = _speakers_problem(self.layout, _speakers(self.speakers))
        if problem:
            raise _fail("speakers", MISSING, problem)
        return self

    def make_layout(self) -> Layout:
        """The speaker layout this section describes."""
        return make_layout(self.layout, _speakers(self.speakers))


def _speakers(configs: list[SpeakerConfig] | None) -> list[Speaker] | None:
    return [Speaker(s.name, s.azimuth_deg, s.port) for s in configs] if configs else None


def _speakers_problem(layout: str, speakers: list[Speaker] | None) -> str | None:
    """What is wrong with a layout name and speaker list together, if anything."""
    if layout == "custom" and not speakers:
        return 'required with layout = "custom": list the speakers as {name, azimuth_deg, port}'
    if layout != "custom" and speakers:
        return (
            f'only with layout = "custom"; preset {layout!r} has speakers {", ".join(PRESETS[layout].names)}'
        )
    try:
        make_layout(layout, speakers)
    except ValueError as exc:
        return str(exc)
    return None


class TrimConfig(_Strict):
    """``[output.trims.<speaker>]``: per-speaker calibration."""

    gain_db: float = Field(default=0.0, ge=-60.0, le=12.0, description="gain in dB")
    delay_ms: float = Field(default=0.0, ge=0.0, le=500.0, description="delay in milliseconds")


class OutputConfig(_Strict):
    """``[output]``: the master bus and offline renders."""

    master_gain: Gain = Field(default=1.0, description="master gain, linear")
    ceiling_db: float = Field(default=-1.0, ge=-60.0, le=0.0, description="limiter ceiling in dBFS")
    dc_block_hz: float = Field(
        default=5.0, ge=0.0, le=40.0, description="DC blocking high-pass corner in Hz; 0 = off"
    )
    limiter_release_ms: float = Field(
        default=200.0, ge=1.0, le=5000.0, description="limiter release time in ms"
    )
    render_dir: str = Field(
        default="renders", min_length=1, description="folder for renders, relative to the config file"
    )
    trims: dict[str, TrimConfig] = Field(
        default_factory=dict, description="per-speaker calibration, by speaker name"
    )


class JackConfig(_Strict):
    """``[jack]``: the JACK client and, optionally, a private server."""

    client_name: str = Field(default="latentd", min_length=1, max_length=63, description="JACK client name")
    server_name: str = Field(default="", description='JACK server name; "" = the default server')
    start_server: bool = Field(
        default=False,
        description="start a private jackd (dummy driver: demos, machines without a sound card)",
    )
    driver: Literal["dummy", "alsa"] = Field(
        default="dummy", description="jackd driver when start_server = true"
    )
    device: str = Field(default="", description="ALSA device for driver = alsa, e.g. hw:0")
    period: int = Field(
        default=256, ge=16, le=8192, description="jackd period in frames when start_server = true"
    )
    autoconnect: bool = Field(default=True, description="connect the outputs to playback ports at start")
    playback_ports: list[Annotated[str, Field(min_length=1)]] = Field(
        default_factory=list,
        description="explicit playback ports, one per speaker; else the layout's ports, or system:playback_*",
    )
    ring_blocks: int = Field(
        default=16,
        ge=2,
        le=1024,
        description="blocks of decoded audio between the engine and the JACK callback",
    )


class LoggingConfig(_Strict):
    """``[logging]``."""

    level: Literal["debug", "info", "warning", "error"] = Field(
        default="info", description="lowest level logged"
    )
    format: Literal["auto", "json", "console"] = Field(
        default="auto", description="auto = console on a terminal, JSON otherwise"
    )


class VenueConfig(_Strict):
    """A venue config file: where and how a piece plays. Every section is optional."""

    name: Name = Field(description="venue name (file names, logs)")
    piece: str = Field(min_length=1, description="folder holding piece.toml, relative to this config file")
    audio: AudioConfig = Field(default_factory=lambda: AudioConfig(), description="[audio] section")
    output: OutputConfig = Field(default_factory=lambda: OutputConfig(), description="[output] section")
    jack: JackConfig = Field(default_factory=lambda: JackConfig(), description="[jack] section")
    logging: LoggingConfig = Field(default_factory=lambda: LoggingConfig(), description="[logging] section")
    osc: OscConfig = Field(default_factory=lambda: OscConfig(), description="[osc] section")
    recording: RecordingConfig = Field(
        default_factory=lambda: RecordingConfig(), description="[recording] section"
    )
    schedule: ScheduleConfig = Field(
        default_factory=lambda: ScheduleConfig(), description="[schedule] section"
    )


# ------------------------------------------------------------------------------------------------ piece
class ModelConfig(_Strict):
    """``[models.<name>]``: one TorchScript file."""

    path: str = Field(min_length=1, description="model file (.ts), relative to the piece folder")
    method: str = Field(
        default="decode", min_length=1, description="model method that turns latents into audio"
    )
    attributes: dict[str, bool | int | float | str | list[float]] = Field(
        default_factory=dict, description="model attributes set at load with set_<name>(value)"
    )


class PanConfig(_Strict):
    """VBAP panning of a voice."""

    azimuth_deg: float = Field(
        default=0.0, ge=-360.0, le=360.0, description="direction, 0 = front, positive = left"
    )
    spread_deg: float = Field(default=0.0, ge=0.0, le=360.0, description="width of the source in degrees")
    rotate_deg_s: float = Field(
        default=0.0,
        ge=-360.0,
        le=360.0,
        description="rotation speed in degrees per second (positive = to the left)",
    )
    waypoints: list[Annotated[list[float], Field(min_length=2, max_length=2)]] | None = Field(
        default=None,
        min_length=2,
        description="a path: [[time_s, azimuth_deg], ...] with rising times from 0; the voice glides "
        "between them along the shorter arc and loops (instead of azimuth_deg/rotate_deg_s)",
    )

    @model_validator(mode="after")
    def _rising(self) -> PanConfig:
        if self.waypoints is not None:
            times = [t for t, _ in self.waypoints]
            if times[0] != 0.0 or any(b <= a for a, b in itertools.pairwise(times)):
                raise _fail("waypoints", self.waypoints, "times must start at 0 and rise strictly")
            if any(not -360.0 <= a <= 360.0 for _, a in self.waypoints):
                raise _fail("waypoints", self.waypoints, "azimuths must lie in -360..360 degrees")
        return self


class VoiceConfig(_Strict):
    """``[voices.<name>]``: one source feeding one model."""

    model: str = Field(min_length=1, description="a [models.*] entry of this piece")
    source: SourceSpec = Field(description="the latent source, chosen by `kind`")
    gain: Gain = Field(default=1.0, description="voice gain, linear")
    mute: bool = Field(default=False, description="start muted")
    route: list[Annotated[str, Field(min_length=1)] | Annotated[int, Field(ge=0)]] | None = Field(
        default=None,
        min_length=1,
        description="speakers (names, or 0-based integer indices) that get this voice at unit gain",
    )
    matrix: list[list[Annotated[float, Field(ge=-4.0, le=4.0)]]] | None = Field(
        default=None,
        min_length=1,
        description="gains: one row per model output channel, one column per speaker",
    )
    pan: PanConfig | None = Field(default=None, description="VBAP panning (the default: pan at 0°)")
    bias: LatentNumber | list[LatentNumber] = Field(
        default=0.0, description="added to the latents: one value for every dimension or one per dimension"
    )
    scale: LatentNumber | list[LatentNumber] = Field(
        default=1.0, description="multiplies the latents: one value for every dimension or one per dimension"
    )
    clamp: list[LatentNumber] | None = Field(
        default=None,
        min_length=2,
        max_length=2,
        description="[low, high] limits applied after bias and scale",
    )
    conditioning: dict[str, Annotated[float, Field(ge=-1e6, le=1e6)] | SourceSpec] = Field(
        default_factory=dict,
        description="the model's extra decode inputs, by name: a constant, or a source (its first dimension)",
    )

    @model_validator(mode="before")
    @classmethod
    def _default_pan(cls, data: Any) -> Any:
        # No routing given: the voice pans (at 0°), and the effective config says so.
        if isinstance(data, dict) and not set(ROUTINGS) & data.keys():
            return {**data, "pan": {}}
        return data

    @model_validator(mode="after")
    def _consistent(self) -> VoiceConfig:
        problem = _routing_problem([k for k in ROUTINGS if getattr(self, k) is not None])
        if problem:
            raise _fail(None, MISSING, problem)
        if self.clamp is not None and self.clamp[0] > self.clamp[1]:
            raise _fail("clamp", self.clamp, CLAMP_ORDER)
        if self.matrix is not None and len({len(row) for row in self.matrix}) > 1:
            raise _fail("matrix", self.matrix, MATRIX_RAGGED)
        return self


ROUTINGS = ("route", "matrix", "pan")
CLAMP_ORDER = "must be [low, high] with low <= high"
MATRIX_RAGGED = "every row must have the same number of columns (one per speaker)"


def _routing_problem(given: list[str]) -> str | None:
    return f"give one of route, matrix or pan, not {' and '.join(given)}" if len(given) > 1 else None


class SectionConfig(_Strict):
    """``[[sections]]``: voices that play together for a while."""

    name: Name = Field(description="section name (OSC /section/goto)")
    voices: list[str] = Field(min_length=1, description="[voices.*] entries playing in this section")
    duration_s: float | None = Field(
        default=None, gt=0.0, le=1e7, description="how long the section plays, in seconds"
    )
    duration_range_s: list[Annotated[float, Field(gt=0.0, le=1e7)]] | None = Field(
        default=None,
        min_length=2,
        max_length=2,
        description="[min, max]: the length is a seeded draw in this range each time the section plays",
    )
    weight: float = Field(
        default=1.0, gt=0.0, le=1e6, description="chance of the section in a weighted order"
    )
    crossfade_in_s: float | None = Field(
        default=None, ge=0.0, le=120.0, description="crossfade into this section (instead of the programme's)"
    )
    bpm: float | None = Field(
        default=None,
        ge=2.0,
        le=2000.0,
        description="tempo the section's step sequences follow (the nearest whole number of latent frames)",
    )

    @model_validator(mode="after")
    def _one_duration(self) -> SectionConfig:
        if (self.duration_s is None) == (self.duration_range_s is None):
            raise _fail(None, MISSING, "give duration_s or duration_range_s = [min, max], one of them")
        if self.duration_range_s is not None and self.duration_range_s[0] > self.duration_range_s[1]:
            raise _fail("duration_range_s", self.duration_range_s, "must be [min, max] with min <= max")
        return self

    @property
    def duration_bounds_s(self) -> tuple[float, float]:
        """(shortest, longest) length in seconds; equal for a fixed duration."""
        if self.duration_range_s is not None:
            return self.duration_range_s[0], self.duration_range_s[1]
        assert self.duration_s is not None
        return self.duration_s, self.duration_s


class ProgrammeConfig(_Strict):
    """``[programme]``: how sections follow each other."""

    order: Literal["sequence", "shuffle", "weighted"] = Field(
        default="sequence",
        description="sequence = as listed; shuffle = each once per cycle; weighted = seeded draw by weight",
    )
    crossfade_s: float = Field(
        default=4.0, ge=0.0, le=120.0, description="crossfade between sections in seconds"
    )
    loop: bool = Field(default=True, description="start again after the last section")
    morph: bool = Field(
        default=False,
        description="when a voice leaves and another of the same model enters, glide its latents from the "
        "leaving voice's over the crossfade instead of crossfading two sounds",
    )


def pool_folder(name: str, folder: str = "") -> str:
    """The items folder of pool ``name``, relative to the piece: ``folder`` or "pools/<name>"."""
    return folder or f"pools/{name}"


class PoolConfig(_Strict):
    """``[pools.<name>]``: a latent diffusion item pool generated in the background while the piece plays.

    Needs the ``diffusion`` extra. Voices play its items with ``source = {kind = "pool", folder = ...}``.
    """

    checkpoint: str = Field(
        min_length=1, description="RAVE-Latent-Diffusion checkpoint, relative to the piece"
    )
    folder: str = Field(
        default="", description='where items go, relative to the piece (default "pools/<name>")'
    )
    max_items: int = Field(default=8, ge=1, le=10_000, description="items kept; the oldest are removed")
    seed: int | None = Field(
        default=None, ge=0, le=2**32 - 1, description="item k uses seed + k (default: piece seed)"
    )
    temperature: float = Field(default=1.0, ge=0.0, le=10.0, description="noise multiplier before sampling")
    steps: int = Field(default=50, ge=1, le=1000, description="diffusion steps per item")
    latent_scale: float = Field(default=1.0, ge=0.0, le=100.0, description="std of each item after z-scoring")
    slerp_t: float | None = Field(
        default=None, ge=0.0, le=1.0, description="start from the slerp of seeds k and k+1 at this point"
    )
    lerp_factor: float | None = Field(
        default=None,
        ge=0.0,
        le=1.0,
        description="glide over each item from seed k's towards seed k+1's, reaching this point at its end "
        "(RAVE-Latent-Diffusion's --lerp; twice the work per item)",
    )
    interval_s: float = Field(default=0.0, ge=0.0, le=86_400.0, description="pause after each item")
    latent_length: int | None = Field(default=None, ge=1, description="for checkpoints that do not store it")
    rave_dims: int | None = Field(default=None, ge=1, description="for checkpoints that do not store it")
    architecture: dict[str, int | list[int]] | None = Field(
        default=None,
        description="UNetV0 arguments (channels, factors, items, attentions, ...) for a checkpoint trained "
        "with an architecture other than the preset for its latent length",
    )

    def folder_for(self, name: str) -> str:
        """The items folder, relative to the piece."""
        return pool_folder(name, self.folder)


class PieceConfig(_Strict):
    """A piece file: models, voices, sections, programme — portable between venues."""

    name: Name = Field(description="piece name")
    seed: int = Field(default=0, ge=0, le=2**32 - 1, description="seed of every random choice in the piece")
    layout: Literal["stereo", "quad", "5.0", "7.0", "octo"] | None = Field(
        default=None, description="the layout the piece was made for (checked against the venue's)"
    )
    models: dict[Name, ModelConfig] = Field(min_length=1, description="[models.<name>] tables")
    voices: dict[Name, VoiceConfig] = Field(min_length=1, description="[voices.<name>] tables")
    sections: list[SectionConfig] = Field(min_length=1, description="[[sections]] in programme order")
    programme: ProgrammeConfig = Field(
        default_factory=lambda: ProgrammeConfig(), description="[programme] section"
    )
    pools: dict[Name, PoolConfig] = Field(
        default_factory=dict, description="[pools.<name>] latent diffusion item pools (diffusion extra)"
    )
