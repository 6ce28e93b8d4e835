"""The piece (``piece.toml``): models, voices, sections, programme, pools — portable between venues."""

from __future__ import annotations

import itertools
from typing import Annotated, Any, Literal

from pydantic import Field, model_validator

from latentd.config.fields import Gain, LatentNumber, Name, Strict, fail
from latentd.config.problems import MISSING
from latentd.sources.pd import PD_EXACT_LIMIT
from latentd.sources.specs import SourceSpec


class ModelConfig(Strict):
    """``[models.<name>]``: one TorchScript file."""

    path: str = Field(
        min_length=1,
        description="the model's TorchScript file (.ts, nn~ format), relative to the piece folder",
    )
    method: str = Field(
        default="decode",
        min_length=1,
        description="the model method voices call to turn latents into audio (its _params must map "
        "latents to audio)",
    )
    attributes: dict[str, bool | int | float | str | list[float]] = Field(
        default_factory=dict,
        description="model attributes set at load through the model's set_<name>(value), e.g. "
        "temperature = 0.8; a refused value is an error",
    )
    samplerate: int | None = Field(
        default=None,
        ge=1000,
        le=768000,
        description="the rate in Hz the model was trained at, 1000..768000: needed when the file declares "
        "none (vschaos2 exports: sr None, get_sample_rate() -1), and used instead of the file's own when "
        "given; latentd times latent frames and resamples to audio.samplerate from it",
    )


class PanConfig(Strict):
    """VBAP panning of a voice."""

    azimuth_deg: float = Field(
        default=0.0, ge=-360.0, le=360.0, description="direction in degrees: 0 = front, positive = left"
    )
    spread_deg: float = Field(
        default=0.0, ge=0.0, le=360.0, description="width of the source in degrees (0 = a point)"
    )
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
                raise fail("waypoints", self.waypoints, "times must start at 0 and rise strictly")
            if any(not -360.0 <= a <= 360.0 for _, a in self.waypoints):
                raise fail("waypoints", self.waypoints, "azimuths must lie in -360..360 degrees")
        return self


class VoiceConfig(Strict):
    """``[voices.<name>]``: one source feeding one model."""

    model: str = Field(min_length=1, description="the [models.<name>] entry of this piece the voice plays")
    source: SourceSpec = Field(description="the latent source, chosen by `kind`: see Latent sources")
    gain: Gain = Field(default=1.0, description="voice gain, linear (1 = unity)")
    mute: bool = Field(default=False, description="start muted (OSC /voice/<v>/mute unmutes)")
    seed: int | None = Field(
        default=None,
        ge=0,
        le=PD_EXACT_LIMIT - 1,  # every voice seed can be typed into a Pd patch and played exactly
        description="the voice's seed, 0..16777215 (what OSC /voice/<v>/seed sets; latentd snapshot writes "
        "it); unset = "
        "derived from the piece's seed and the voice's name",
    )
    route: list[Annotated[str, Field(min_length=1)] | Annotated[int, Field(ge=0)]] | None = Field(
        default=None,
        min_length=1,
        description="speakers (names, or 0-based indices) that get the voice at unit gain; one of route, "
        "matrix, pan",
    )
    matrix: list[list[Annotated[float, Field(ge=-4.0, le=4.0)]]] | None = Field(
        default=None,
        min_length=1,
        description="linear gains: one row per model output channel, one column per speaker; one of route, "
        "matrix, pan",
    )
    pan: PanConfig | None = Field(
        default=None,
        description="pairwise constant-power (VBAP) panning; the default when neither route nor matrix is "
        "given (at 0°). One of route, matrix, pan",
    )
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
        description="[low, high] limits of every latent value, applied after bias and scale",
    )
    conditioning: dict[str, Annotated[float, Field(ge=-1e6, le=1e6)] | SourceSpec] = Field(
        default_factory=dict,
        description="the model's conditioning inputs (vschaos2 style, read from its labels), by name: a "
        "constant, or a source table whose first dimension is used",
    )
    swap_targets: list[Annotated[str, Field(min_length=1)]] | None = Field(
        default=None,
        description="the [models.<name>] entries this voice may swap to (OSC /voice/<v>/model) besides its "
        "own model; `latentd check` builds the voice's source and settings on each and reports what does "
        "not fit, and a swap to a model not listed is refused. Unset = any of the piece's models whose "
        "latent size and rate the source and per-dimension settings can follow",
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
            raise fail(None, MISSING, problem)
        if self.clamp is not None and self.clamp[0] > self.clamp[1]:
            raise fail("clamp", self.clamp, CLAMP_ORDER)
        if self.matrix is not None and len({len(row) for row in self.matrix}) > 1:
            raise fail("matrix", self.matrix, MATRIX_RAGGED)
        return self


ROUTINGS = ("route", "matrix", "pan")
CLAMP_ORDER = "must be [low, high] with low <= high"
MATRIX_RAGGED = "every row must have the same number of columns (one per speaker)"


def _routing_problem(given: list[str]) -> str | None:
    return f"give one of route, matrix or pan, not {' and '.join(given)}" if len(given) > 1 else None


class SectionConfig(Strict):
    """``[[sections]]``: voices that play together for a while."""

    name: Name = Field(description="section name (logs, state file, OSC /section/goto)")
    voices: list[str] = Field(min_length=1, description="the [voices.<name>] entries playing in this section")
    duration_s: float | None = Field(
        default=None,
        gt=0.0,
        le=1e7,
        description="how long the section plays, in seconds; give this or duration_range_s",
    )
    duration_range_s: list[Annotated[float, Field(gt=0.0, le=1e7)]] | None = Field(
        default=None,
        min_length=2,
        max_length=2,
        description="[min, max] in seconds: the length is a seeded draw in this range each time the section "
        "plays; give this or duration_s",
    )
    weight: float = Field(
        default=1.0,
        gt=0.0,
        le=1e6,
        description='relative chance of the section when programme.order = "weighted"',
    )
    crossfade_in_s: float | None = Field(
        default=None,
        ge=0.0,
        le=120.0,
        description="crossfade into this section in seconds (instead of programme.crossfade_s)",
    )
    bpm: float | None = Field(
        default=None,
        ge=2.0,
        le=2000.0,
        description="tempo in BPM the section's steps and pattern sources follow (each at the nearest "
        "whole number of latent frames per beat)",
    )

    @model_validator(mode="after")
    def _one_duration(self) -> SectionConfig:
        if (self.duration_s is None) == (self.duration_range_s is None):
            raise fail(None, MISSING, "give duration_s or duration_range_s = [min, max], one of them")
        if self.duration_range_s is not None and self.duration_range_s[0] > self.duration_range_s[1]:
            raise fail("duration_range_s", self.duration_range_s, "must be [min, max] with min <= max")
        return self

    @property
    def duration_bounds_s(self) -> tuple[float, float]:
        """(shortest, longest) length in seconds; equal for a fixed duration."""
        if self.duration_range_s is not None:
            return self.duration_range_s[0], self.duration_range_s[1]
        assert self.duration_s is not None
        return self.duration_s, self.duration_s


class ProgrammeConfig(Strict):
    """``[programme]``: how sections follow each other."""

    order: Literal["sequence", "shuffle", "weighted"] = Field(
        default="sequence",
        description="sequence = as listed; shuffle = each once per cycle, seeded; weighted = seeded draw "
        "by each section's weight",
    )
    crossfade_s: float = Field(
        default=4.0, ge=0.0, le=120.0, description="equal-power crossfade between sections, in seconds"
    )
    loop: bool = Field(
        default=True, description="start again after the last section; false: hold the last section"
    )
    morph: bool = Field(
        default=False,
        description="when a voice leaves and another of the same model enters, glide its latents from the "
        "leaving voice's over the crossfade instead of crossfading two sounds",
    )


def pool_folder(name: str, folder: str = "") -> str:
    """The items folder of pool ``name``, relative to the piece: ``folder`` or "pools/<name>"."""
    return folder or f"pools/{name}"


class PoolConfig(Strict):
    """``[pools.<name>]``: a latent diffusion item pool generated in the background while the piece plays.

    Needs the ``diffusion`` extra. Voices play its items with ``source = {kind = "pool", folder = ...}``.
    """

    checkpoint: str = Field(
        min_length=1, description="RAVE-Latent-Diffusion checkpoint file, relative to the piece folder"
    )
    folder: str = Field(
        default="", description='folder the items go to, relative to the piece folder; "" = "pools/<name>"'
    )
    max_items: int = Field(
        default=8, ge=1, le=10_000, description="items kept in the folder; the oldest are removed"
    )
    seed: int | None = Field(
        default=None, ge=0, le=2**32 - 1, description="item k uses seed + k; unset = the piece's seed"
    )
    temperature: float = Field(default=1.0, ge=0.0, le=10.0, description="multiplies the starting noise")
    steps: int = Field(default=50, ge=1, le=1000, description="diffusion steps per item")
    latent_scale: float = Field(
        default=1.0, ge=0.0, le=100.0, description="standard deviation of each item after z-scoring"
    )
    slerp_t: float | None = Field(
        default=None,
        ge=0.0,
        le=1.0,
        description="start from the spherical interpolation of the noises of seeds k and k+1 at this point "
        "(0 = seed k's)",
    )
    lerp_factor: float | None = Field(
        default=None,
        ge=0.0,
        le=1.0,
        description="glide over each item from seed k's towards seed k+1's, reaching this point at its end "
        "(RAVE-Latent-Diffusion's --lerp; twice the work per item)",
    )
    interval_s: float = Field(
        default=0.0, ge=0.0, le=86_400.0, description="pause after each item, in seconds"
    )
    latent_length: int | None = Field(
        default=None,
        ge=1,
        description="latent frames per item: the length an original-format checkpoint (which does not "
        "store it) was trained at, a multiple of 2048",
    )
    rave_dims: int | None = Field(
        default=None, ge=1, description="latent dimensions per item, for checkpoints that do not store it"
    )
    architecture: dict[str, int | list[int]] | None = Field(
        default=None,
        description="UNetV0 arguments (channels, factors, items, attentions, ...) for a checkpoint trained "
        "with another architecture than the Flex'ed preset for its stored latent length or, for the "
        "original format, the original's single architecture",
    )

    def folder_for(self, name: str) -> str:
        """The items folder, relative to the piece."""
        return pool_folder(name, self.folder)


class PieceConfig(Strict):
    """A piece file: models, voices, sections, programme — portable between venues."""

    name: Name = Field(description="piece name (logs, recordings)")
    seed: int = Field(
        default=0,
        ge=0,
        le=2**32 - 1,
        description="seed of every random choice in the piece (voices, programme, pools)",
    )
    layout: Literal["stereo", "quad", "5.0", "7.0", "octo"] | None = Field(
        default=None,
        description="the layout the piece was made for; a venue with fewer speakers needs audio.downmix",
    )
    models: dict[Name, ModelConfig] = Field(
        min_length=1, description="the models, by name: see [models.<name>]"
    )
    voices: dict[Name, VoiceConfig] = Field(
        min_length=1, description="the voices, by name: see [voices.<name>]"
    )
    sections: list[SectionConfig] = Field(
        min_length=1, description="the sections in programme order: see [[sections]]"
    )
    programme: ProgrammeConfig = Field(
        default_factory=lambda: ProgrammeConfig(),
        description="how sections follow each other: see [programme]",
    )
    pools: dict[Name, PoolConfig] = Field(
        default_factory=dict,
        description="latent diffusion item pools, by name (needs the diffusion extra): see [pools.<name>]",
    )
