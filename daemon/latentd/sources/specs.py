"""Source specifications: the strict, frozen config models of every latent source.

Each spec has a literal ``kind`` that picks the source; ``SourceSpec`` is their discriminated union, so a
TOML table like ``{kind = "noise", seeds = [1, 2]}`` validates to a ``NoiseSpec``. Per-dimension fields
take a scalar (every dimension) or a list of one value per latent dimension; list lengths are checked
against the model's ``latent_size`` by ``build_source``, which knows it.
"""

from __future__ import annotations

from typing import Annotated, Literal

from pydantic import AliasChoices, BaseModel, ConfigDict, Field, model_validator

#: Bounds of latent values a spec may ask for (offsets, constants, preset values).
LATENT_LIMIT = 100.0

LatentValue = Annotated[float, Field(ge=-LATENT_LIMIT, le=LATENT_LIMIT)]
Seed = Annotated[int, Field(ge=-(2**31), le=2**32 - 1)]
PdInstance = Annotated[int, Field(ge=1, le=1_000_000)]
Phase = Annotated[float, Field(ge=0.0, le=1.0)]
Direction = Literal[-1, 1]
LfoFreq = Annotated[float, Field(ge=0.001, le=0.1)]
Tempo = Annotated[float, Field(ge=2.0, le=2000.0)]


class SpecBase(BaseModel):
    """Options every source takes: scale (alias ``range``), offset and one-pole smoothing."""

    model_config = ConfigDict(extra="forbid", frozen=True, populate_by_name=True)

    scale: float = Field(
        1.0,
        ge=-LATENT_LIMIT,
        le=LATENT_LIMIT,
        validation_alias=AliasChoices("scale", "range"),
        description="Multiplies the raw shape (also accepted as `range`); -100..100, default 1.",
    )
    offset: LatentValue | list[LatentValue] = Field(
        0.0,
        description="Added after scaling: one value for every dimension or a list of latent_size values, "
        "each -100..100; default 0.",
    )
    smooth_s: float = Field(
        0.0,
        ge=0.0,
        le=60.0,
        description="One-pole smoothing time constant in seconds, 0..60; 0 = no smoothing.",
    )


class NoiseSpec(SpecBase):
    """Pure Data ``noise~`` streams, one per latent dimension, sampled as nn~ samples them."""

    kind: Literal["noise"] = Field(description='Source kind: "noise".')
    seeds: list[Seed] | None = Field(
        None,
        description="One Pd `noise~` seed per latent dimension (pins the streams: the voice seed is then "
        "ignored); default: voice seed + 1000 * dim (past 2^24 counting on from 1, so each one is a seed "
        "Pd takes exactly). Each -2^31..2^32-1.",
    )
    restart_on_trigger: bool = Field(
        False, description="If true, a trigger restarts the streams from their seeds."
    )
    seed_bank: list[Seed | list[Seed]] | None = Field(
        None,
        description="Seeds visited in turn, one per trigger, cycling; an entry is a base seed (dimension d "
        "gets base + 1000 * d) or a list of latent_size seeds. Starts at the first entry. "
        "Not together with `seeds`.",
    )

    seed_from: Literal["exact", "pd"] = Field(
        "exact",
        description='Where `seeds` and `seed_bank` come from: "exact" (default) plays each integer as '
        'written; "pd" plays what a Pd `seed` message makes of it (Pd holds the argument as a 32-bit '
        "float, so seeds beyond 2^24 round: 16777217 plays 16777216, and 2^31 or more plays -2^31). "
        "latentd warns, naming the key, where that changes a seed.",
    )
    pd_instance: PdInstance | list[PdInstance] | None = Field(
        None,
        description="Plays unseeded Pd `noise~` objects: k makes dimension d play the (k + d)-th `noise~` "
        "created in a Pd session (from 1; every `noise~` counts, seeded or not, in the order Pd creates "
        "them: a patch's objects in file order); or a list of one instance number per dimension. "
        "1..1000000. Pins the streams like `seeds`; not together with `seeds` or `seed_bank`.",
    )

    @model_validator(mode="after")
    def _seeds_or_bank(self) -> NoiseSpec:
        if self.seeds is not None and self.seed_bank is not None:
            raise ValueError("give either `seeds` or `seed_bank`, not both")
        if self.pd_instance is not None and (self.seeds is not None or self.seed_bank is not None):
            raise ValueError("give either `pd_instance` or `seeds`/`seed_bank`, not both")
        if self.seed_from == "pd" and self.seeds is None and self.seed_bank is None:
            raise ValueError(
                'seed_from = "pd" applies to `seeds` and `seed_bank`: give one of them '
                "(seeds derived from the voice seed are already exact in Pd)"
            )
        if self.seed_bank is not None and len(self.seed_bank) == 0:
            raise ValueError("`seed_bank` must hold at least one entry")
        return self


class LfoSpec(SpecBase):
    """Slow per-dimension oscillators (cosine or saw)."""

    kind: Literal["lfo"] = Field(description='Source kind: "lfo".')
    shape: Literal["cosine", "saw"] = Field("cosine", description='Wave shape: "cosine" or "saw".')
    freq_hz: LfoFreq | list[LfoFreq] = Field(
        0.05, description="Frequency in Hz, 0.001..0.1, for every dimension or one per dimension."
    )
    intensity: float = Field(1.0, ge=0.0, le=LATENT_LIMIT, description="Amplitude, 0..100; default 1.")
    direction: Direction | list[Direction] = Field(
        1, description="+1 (phase runs forward) or -1 (backward), for every dimension or per dimension."
    )
    phase: Phase | list[Phase] | None = Field(
        None,
        description="Start phase in cycles, 0..1, for every dimension or per dimension; a trigger returns "
        "here. Default: drawn per dimension from the voice seed.",
    )


class WalkSpec(SpecBase):
    """A mean-reverting random walk (Ornstein-Uhlenbeck), clipped to a hard bound."""

    kind: Literal["walk"] = Field(description='Source kind: "walk".')
    step_std: float = Field(
        0.5,
        ge=0.0,
        le=10.0,
        description="Standard deviation of the walk's change over one second, 0..10; default 0.5.",
    )
    pull: float = Field(
        0.2,
        ge=0.0,
        le=10.0,
        description="Mean reversion towards 0 per second, 0..10 (0 = free walk, held only by `limit`); "
        "default 0.2.",
    )
    limit: float = Field(
        3.0, gt=0.0, le=LATENT_LIMIT, description="The raw walk is clipped to +-limit, >0..100; default 3."
    )


class ConstantSpec(SpecBase):
    """Constant latent values."""

    kind: Literal["constant"] = Field(description='Source kind: "constant".')
    values: LatentValue | list[LatentValue] = Field(
        0.0, description="The value of every dimension or one per dimension, each -100..100; default 0."
    )


class TableSpec(SpecBase):
    """A loop of seeded uniform points per dimension, read with 4-point interpolation."""

    kind: Literal["table"] = Field(description='Source kind: "table".')
    loop_hz: float = Field(
        0.1, ge=0.001, le=10.0, description="Loops per second, 0.001..10; default 0.1 (a 10 s loop)."
    )
    points: int = Field(16, ge=2, le=65536, description="Points in each table, 2..65536; default 16.")
    one_point_per_frame: bool = Field(
        False,
        description="If true, the table holds ceil(latent_rate / loop_hz) points, one per latent frame "
        "(`points` is then ignored).",
    )
    width: float = Field(
        1.0, ge=0.0, le=LATENT_LIMIT, description="Points are uniform in [-width, width], 0..100; default 1."
    )


class StepsSpec(SpecBase):
    """A stepped sequence of seeded values per dimension."""

    kind: Literal["steps"] = Field(description='Source kind: "steps".')
    n_steps: int = Field(8, ge=1, le=16, description="Steps in the sequence, 1..16; default 8.")
    fill: Literal["uniform", "gaussian"] = Field(
        "uniform", description='Step values: "uniform" in [-1, 1] or "gaussian" (mean of 4 uniforms).'
    )
    advance: Literal["time", "trigger"] = Field(
        "time", description='"time": a step every `step_s` seconds; "trigger": a step per trigger.'
    )
    step_s: float = Field(1.0, ge=0.01, le=60.0, description="Seconds per step, 0.01..60; default 1.")
    bpm: Tempo | None = Field(
        None,
        description="Tempo, 2..2000 BPM: one step per beat of k latent frames, k chosen so the tempo is the "
        'nearest achievable (the source reports it). Not together with `step_s`; needs advance = "time".',
    )
    decay_s: float = Field(
        0.0,
        ge=0.0,
        le=60.0,
        description="Decay time constant of an envelope restarting at each step, 0..60 s; 0 = no decay.",
    )
    amplitude: float = Field(1.0, ge=0.0, le=LATENT_LIMIT, description="Amplitude, 0..100; default 1.")

    @model_validator(mode="after")
    def _tempo_or_step(self) -> StepsSpec:
        if self.bpm is not None and "step_s" in self.model_fields_set:
            raise ValueError("give either `step_s` or `bpm`, not both")
        if self.bpm is not None and self.advance != "time":
            raise ValueError('`bpm` sets the time between steps: it needs advance = "time"')
        return self


class PresetsSpec(SpecBase):
    """Banks of per-dimension values, switched with a ramp."""

    kind: Literal["presets"] = Field(description='Source kind: "presets".')
    banks: list[LatentValue | list[LatentValue]] = Field(
        min_length=1,
        description="At least one bank; each a value for every dimension or a list of latent_size values, "
        "each -100..100.",
    )
    bank: int = Field(0, ge=0, description="The bank to start with (0-based); default 0.")
    ramp_s: float = Field(
        0.1, ge=0.0, le=60.0, description="Seconds each switch ramps over, 0..60; default 0.1."
    )


class PatternSpec(SpecBase):
    """An UnRAVEl pattern over generated or loaded base arrays, played as a loop."""

    kind: Literal["pattern"] = Field(description='Source kind: "pattern".')
    pattern: Literal["default", "fibo", "orale", "blender", "swapper"] = Field(
        "default", description='Pattern: "default", "fibo", "orale", "blender" or "swapper".'
    )
    base: Literal["normal", "uniform", "iqr_uniform", "correlated", "file"] = Field(
        "normal",
        description='Base arrays: drawn from "normal"(mean, std), "uniform" (mean +- 3 std), '
        '"iqr_uniform" (lower..upper), "correlated" (mean, covariance), or read from "file" (and "file2").',
    )
    frames: int = Field(
        16, ge=1, le=4096, description="Frames k of a generated base array, 1..4096; default 16."
    )
    bpm: Tempo | None = Field(
        None,
        description="Tempo, 2..2000 BPM: sets `frames` to the k latent frames whose loop is the nearest "
        'achievable tempo (the source reports it). Not together with `frames`, nor with base = "file".',
    )
    num_loops: int = Field(1, ge=1, le=64, description="Repeats L inside the pattern, 1..64; default 1.")
    mean: LatentValue | list[LatentValue] = Field(
        0.0, description="Per-dimension mean (normal, uniform, correlated), scalar or list; default 0."
    )
    std: (
        Annotated[float, Field(ge=0.0, le=LATENT_LIMIT)]
        | list[Annotated[float, Field(ge=0.0, le=LATENT_LIMIT)]]
    ) = Field(
        1.0,
        description="Per-dimension std, 0..100, scalar or list (normal, uniform, and the offsets of "
        "orale); default 1.",
    )
    lower: LatentValue | list[LatentValue] = Field(
        -1.0, description="Per-dimension lower bound for iqr_uniform; default -1."
    )
    upper: LatentValue | list[LatentValue] = Field(
        1.0, description="Per-dimension upper bound for iqr_uniform; default 1."
    )
    covariance: list[list[float]] | None = Field(
        None,
        description="latent_size x latent_size covariance for the correlated base (positive semi-definite).",
    )
    file: str | None = Field(
        None,
        description='Latent file for base = "file": .npy of shape (1, d, N) or latent WAV; '
        "a relative path is read from the piece folder.",
    )
    file2: str | None = Field(
        None, description='Second latent file, needed by blender and swapper when base = "file".'
    )

    @model_validator(mode="after")
    def _inputs_present(self) -> PatternSpec:
        if self.base == "file" and self.file is None:
            raise ValueError('base = "file" needs `file`')
        if self.base == "file" and self.pattern in ("blender", "swapper") and self.file2 is None:
            raise ValueError(f'pattern "{self.pattern}" with base = "file" needs `file2`')
        if self.base == "correlated" and self.covariance is None:
            raise ValueError('base = "correlated" needs `covariance`')
        if self.bpm is not None and "frames" in self.model_fields_set:
            raise ValueError("give either `frames` or `bpm`, not both")
        if self.bpm is not None and self.base == "file":
            raise ValueError(
                '`bpm` sets the frames of generated bases; with base = "file" the file sets them'
            )
        return self


class FileSpec(SpecBase):
    """Latent frames played from a file (``.npy`` or latent WAV), looped or once, at a speed."""

    kind: Literal["file"] = Field(description='Source kind: "file".')
    path: str = Field(
        min_length=1,
        description="Latent file: .npy of shape (1, d, N) or (d, N), or a latent WAV (one float channel per "
        "dim); d must equal the model's latent_size. A relative path is read from the piece folder.",
    )
    loop: bool = Field(
        True,
        description="If true, start again at the first frame after the last; "
        "if false, hold the last frame. Default true.",
    )
    speed: float = Field(
        1.0,
        ge=0.01,
        le=16.0,
        description="File frames advanced per latent frame, 0.01..16 (fractional speeds interpolate "
        "linearly); default 1.",
    )
    start_s: float | None = Field(
        None,
        ge=0.0,
        description="Start (and trigger restart) position in seconds at the model's latent rate, >= 0. "
        "Not together with `start_frame`; default: the first frame.",
    )
    start_frame: int | None = Field(
        None,
        ge=0,
        description="Start (and trigger restart) position in file frames, >= 0. Not together with `start_s`.",
    )

    @model_validator(mode="after")
    def _one_start(self) -> FileSpec:
        if self.start_s is not None and self.start_frame is not None:
            raise ValueError("give either `start_s` or `start_frame`, not both")
        return self


class PriorSpec(SpecBase):
    """Latents from a prior model: a method mapping each latent frame to the next (MSPrior style)."""

    kind: Literal["prior"] = Field(description='Source kind: "prior".')
    path: str = Field(
        min_length=1,
        description="The prior's TorchScript file; its `<method>_params` must be [latent_size, ratio, "
        "latent_size, ratio] for the voice's model. A relative path is read from the piece folder.",
    )
    method: str = Field("prior", min_length=1, description='The prior\'s method; default "prior".')
    temperature: float = Field(
        1.0,
        ge=0.0,
        le=10.0,
        description="Sampling temperature, 0..10: the model's `temperature` attribute when it has one, else "
        "the gain of seeded noise added to every frame; default 1.",
    )


class PoolSpec(SpecBase):
    """Latent items played from a pool folder (filled by a diffusion item pool), one after another."""

    kind: Literal["pool"] = Field(description='Source kind: "pool".')
    folder: str = Field(
        min_length=1,
        description="The pool folder: items item_<index>_seed<seed>.npy of shape (1, d, N), d the model's "
        "latent_size; a relative path is read from the piece folder. A piece's [pools.<name>] writes "
        'to "pools/<name>" by default.',
    )
    poll_s: float = Field(
        0.5,
        ge=0.01,
        le=60.0,
        description="Seconds between looks for a new item while none is queued, 0.01..60; default 0.5.",
    )


SourceSpec = Annotated[
    NoiseSpec
    | LfoSpec
    | WalkSpec
    | ConstantSpec
    | TableSpec
    | StepsSpec
    | PresetsSpec
    | PatternSpec
    | FileSpec
    | PriorSpec
    | PoolSpec,
    Field(discriminator="kind"),
]
"""Any source spec, told apart by its ``kind``."""
