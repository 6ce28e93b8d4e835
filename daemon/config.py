"""Strict configuration: the venue config (``configs/<venue>.toml``) and the piece (``piece.toml``).

Both files are TOML, validated into frozen pydantic models that forbid unknown keys and take no strings
for numbers. :func:`load_config` reads both and reports EVERY problem found in either file at once, each
as ``file: key.path = value: what is wrong and what is allowed`` (a :class:`ConfigError` holding
:class:`Problem` values). It checks types and ranges (pydantic), then the references between and across
the files: voices → models, sections → voices, routes → the venue's speakers, trims → speakers, the
piece's layout → the venue's layout, model files on disk.

Relative paths: ``piece`` and ``output.render_dir`` are relative to the venue config file; model paths are
relative to the piece folder.

Adding a venue section (``[osc]``, ``[recording]``, ``[schedule]``, ...): write a ``_Strict`` model whose
fields all have defaults, add it to :class:`VenueConfig` with ``Field(default_factory=...)``, and put any
check that needs another section or the layout in :func:`_check_venue`.
"""

from __future__ import annotations

import difflib
import itertools
import json
import math
import os
import re
import tomllib
import types
import typing
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import IO, Annotated, Any, Literal, TypeGuard

import annotated_types as at
from pydantic import (
    AfterValidator,
    BaseModel,
    ConfigDict,
    Field,
    TypeAdapter,
    ValidationError,
    model_validator,
)
from pydantic.fields import FieldInfo
from pydantic_core import PydanticCustomError

from latentd.control.osc_config import OscConfig
from latentd.control.schedule_config import ScheduleConfig
from latentd.installation.layout import PRESETS, Layout, Speaker, make_layout
from latentd.outputs.recording_config import RecordingConfig
from latentd.sources.specs import LATENT_LIMIT, SourceSpec

PIECE_FILE = "piece.toml"


# ---------------------------------------------------------------------------------------------- problems
class _Missing:
    """The value of a key that is not there."""

    def __repr__(self) -> str:
        return "MISSING"


MISSING: Any = _Missing()
"""``Problem.value`` of a key that is absent (or of a problem about a whole table)."""


@dataclass(frozen=True)
class Problem:
    """One thing wrong in a configuration file.

    Attributes:
        file: The file, as the user named it (relative paths stay relative).
        key: Dotted key path, e.g. ``voices.low.source.freq_hz`` or ``sections[1].voices[0]``; empty for
            problems with the file as a whole (unreadable, TOML syntax).
        value: The offending value, or ``MISSING``.
        message: What is wrong and what is allowed.
    """

    file: Path
    key: str
    value: object
    message: str

    def __str__(self) -> str:
        where = f"{self.file}: {self.key}" if self.key else str(self.file)
        if self.value is not MISSING:
            where += f" = {_show(self.value)}"
        return f"{where}: {self.message}"


class ConfigError(Exception):
    """Invalid configuration; ``problems`` lists everything found, ``str()`` prints one per line."""

    def __init__(self, problems: list[Problem]) -> None:
        self.problems = list(problems)
        super().__init__("\n".join(str(p) for p in self.problems))

    @classmethod
    def single(cls, file: Path, key: str, value: object, message: str) -> ConfigError:
        """An error with one problem."""
        return cls([Problem(file, key, value, message)])


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


# ----------------------------------------------------------------------------------- the loaded config
@dataclass(frozen=True)
class Config:
    """The effective configuration: both files validated, with the places they were read from.

    Attributes:
        venue: The venue config.
        piece: The piece.
        venue_path: Absolute path of the venue config file.
        piece_dir: Absolute path of the piece folder.
    """

    venue: VenueConfig
    piece: PieceConfig
    venue_path: Path
    piece_dir: Path

    @property
    def piece_file(self) -> Path:
        """Absolute path of ``piece.toml``."""
        return self.piece_dir / PIECE_FILE

    @property
    def render_dir(self) -> Path:
        """Absolute folder for renders (``output.render_dir`` is relative to the venue config)."""
        return _join(self.venue_path.parent, self.venue.output.render_dir)

    @property
    def layout(self) -> Layout:
        """The venue's speaker layout."""
        return self.venue.audio.make_layout()

    def model_path(self, name: str) -> Path:
        """Absolute path of the file of model ``name`` (model paths are relative to the piece folder)."""
        if name not in self.piece.models:
            raise KeyError(f"no model {name!r}; models: {', '.join(self.piece.models)}")
        return _join(self.piece_dir, self.piece.models[name].path)

    def to_toml_dict(self) -> dict[str, Any]:
        """The effective configuration as plain data, defaults filled and paths made absolute."""
        venue = self.venue.model_dump(mode="json", exclude_none=True)
        venue["piece"] = str(self.piece_dir)
        venue["output"]["render_dir"] = str(self.render_dir)
        piece = self.piece.model_dump(mode="json", exclude_none=True)
        for name, model in piece["models"].items():
            model["path"] = str(self.model_path(name))
        return {"venue": venue, "piece": piece}


def load_config(path: Path | str) -> Config:
    """Read and check a venue config and the piece it names.

    Args:
        path: The venue config file.

    Raises:
        ConfigError: with every problem found in both files (the piece is checked even when the venue
            file has problems, as long as its ``piece`` entry leads to a piece file).
    """
    venue_file = Path(path)
    problems: list[Problem] = []
    venue: VenueConfig | None = None
    piece: PieceConfig | None = None
    piece_dir: Path | None = None
    layout: Layout | None = None
    downmix = False
    venue_raw = _read_toml(venue_file, problems)
    if venue_raw is not None:
        venue = _validate(VenueConfig, venue_raw, venue_file, problems)
        layout, downmix = _check_venue(venue_raw, venue_file, problems)
        piece_dir = _find_piece(venue_raw, venue_file, problems)
    if piece_dir is not None:
        piece_file = piece_dir / PIECE_FILE
        piece_raw = _read_toml(piece_file, problems)
        if piece_raw is not None:
            piece = _validate(PieceConfig, piece_raw, piece_file, problems)
            _check_piece(piece_raw, piece_dir, piece_file, layout, downmix, venue_file, problems)
    if problems or venue is None or piece is None or piece_dir is None:
        raise ConfigError(_unique(problems))
    return Config(venue=venue, piece=piece, venue_path=venue_file.resolve(), piece_dir=piece_dir.resolve())


def print_effective(config: Config, out: IO[str]) -> None:
    """Write the effective configuration to ``out`` as TOML (it reads back with tomllib)."""
    out.write("# latentd: effective configuration (defaults filled, paths absolute)\n")
    out.write(f"# venue config: {config.venue_path}\n")
    out.write(f"# piece: {config.piece_file}\n")
    out.write(to_toml(config.to_toml_dict()))


# --------------------------------------------------------------------------------------- reading files
def _join(base: Path, relative: str) -> Path:
    """``relative`` resolved against ``base`` (absolute paths stay as they are), made absolute."""
    return Path(os.path.normpath(Path(base).absolute() / relative))


def _read_toml(file: Path, problems: list[Problem]) -> dict[str, Any] | None:
    try:
        text = file.read_bytes().decode("utf-8")
    except OSError as exc:
        problems.append(Problem(file, "", MISSING, f"cannot read the file: {exc.strerror or exc}"))
        return None
    except UnicodeDecodeError as exc:
        problems.append(
            Problem(file, "", MISSING, f"not UTF-8 text (byte {exc.start}): TOML files are UTF-8")
        )
        return None
    try:
        return tomllib.loads(text)
    except tomllib.TOMLDecodeError as exc:
        message = str(exc)
        found = re.search(r"\s*\(at line (\d+), column (\d+)\)$", message)
        if found:
            where = f"line {found.group(1)}, column {found.group(2)}"
            message = message[: found.start()]
        else:
            where = "the end of the file" if "end of document" in message else "an unknown position"
            message = re.sub(r"\s*\(at end of document\)$", "", message)
        problems.append(Problem(file, "", MISSING, f"TOML syntax error at {where}: {message}"))
        return None


def _find_piece(venue_raw: dict[str, Any], venue_file: Path, problems: list[Problem]) -> Path | None:
    """The piece folder named by the venue config, if it holds a piece file (else a problem, or None)."""
    rel = venue_raw.get("piece")
    if not isinstance(rel, str) or not rel:
        return None  # already reported by the venue validation
    folder = Path(os.path.normpath(venue_file.parent / rel))
    if not folder.is_dir():
        message = f"no such folder: {_join(venue_file.parent, rel)} (the piece folder, relative to this file)"
        problems.append(Problem(venue_file, "piece", rel, message))
        return None
    if not (folder / PIECE_FILE).is_file():
        problems.append(
            Problem(venue_file, "piece", rel, f"the folder {folder.absolute()} has no {PIECE_FILE}")
        )
        return None
    return folder


# ---------------------------------------------------------------------------------------- validation
def _unique(problems: list[Problem]) -> list[Problem]:
    """Problems in order, each reported once (a model check and a cross-check may both find it)."""
    seen: set[tuple[str, str, str]] = set()
    out = []
    for p in problems:
        mark = (str(p.file), p.key, p.message)
        if mark not in seen:
            seen.add(mark)
            out.append(p)
    return out


def _partial(adapter: type[BaseModel] | TypeAdapter[Any], data: object) -> Any:
    """``data`` validated, or None when invalid (its problems are reported by the full validation)."""
    try:
        if isinstance(adapter, TypeAdapter):
            return adapter.validate_python(data, strict=True)
        return adapter.model_validate(data, strict=True)
    except ValidationError:
        return None


def _validate(model: type[BaseModel], data: dict[str, Any], file: Path, problems: list[Problem]) -> Any:
    """Validate strictly; on failure add readable problems and return None."""
    try:
        return model.model_validate(data, strict=True)
    except ValidationError as exc:
        errors: list[Any] = exc.errors(include_url=False)
        for key, value, message in _translate(model, errors):
            problems.append(Problem(file, key, value, message))
        return None


_SPEAKER_LIST = TypeAdapter(list[SpeakerConfig])


def _table(raw: object, key: str) -> dict[str, Any]:
    value = raw.get(key) if isinstance(raw, dict) else None
    return value if isinstance(value, dict) else {}


def _check_venue(raw: dict[str, Any], file: Path, problems: list[Problem]) -> tuple[Layout | None, bool]:
    """Checks that involve the layout (which speakers, trims, ports); returns the layout and downmix.

    They read the raw tables, so they run even when other keys of the same table are invalid.
    """
    audio = _table(raw, "audio")
    downmix = audio.get("downmix") is True
    name = audio.get("layout", AudioConfig.model_fields["layout"].default)
    if not isinstance(name, str) or name not in typing.get_args(
        AudioConfig.model_fields["layout"].annotation
    ):
        return None, downmix
    speakers = None
    if "speakers" in audio:
        configs = _partial(_SPEAKER_LIST, audio["speakers"])
        if configs is None:
            return None, downmix
        speakers = _speakers(configs)
    problem = _speakers_problem(name, speakers)
    if problem:
        problems.append(Problem(file, "audio.speakers", MISSING, problem))
        return None, downmix
    layout = make_layout(name, speakers)
    for speaker in _table(_table(raw, "output"), "trims"):
        if speaker not in layout.names:
            problems.append(
                Problem(file, f"output.trims.{_key(speaker)}", MISSING, _unknown_speaker(speaker, layout))
            )
    ports = _table(raw, "jack").get("playback_ports")
    if isinstance(ports, list) and ports and len(ports) != layout.n_channels:
        message = (
            f"has {len(ports)} port(s) but layout {layout.name!r} has {layout.n_channels} speakers: "
            "give one port per speaker, or none"
        )
        problems.append(Problem(file, "jack.playback_ports", ports, message))
    return layout, downmix


def _check_piece(
    raw: dict[str, Any],
    piece_dir: Path,
    file: Path,
    layout: Layout | None,
    downmix: bool,
    venue_file: Path,
    problems: list[Problem],
) -> None:
    """References inside the piece, model files on disk, and the piece against the venue's layout.

    They read the raw tables, so a voice with a bad source still has its model and route checked.
    """
    models, voices = _table(raw, "models"), _table(raw, "voices")
    piece_layout = raw.get("layout")
    if layout is not None and isinstance(piece_layout, str) and piece_layout in PRESETS:
        needed = PRESETS[piece_layout].n_channels
        if needed > layout.n_channels and not downmix:
            message = (
                f"the piece is made for {needed} speakers but the venue layout {layout.name!r} has "
                f"{layout.n_channels}; set audio.downmix = true in {venue_file} to allow a downmix"
            )
            problems.append(Problem(file, "layout", piece_layout, message))
    for name, entry in models.items():
        path = entry.get("path") if isinstance(entry, dict) else None
        if isinstance(path, str) and path and not _join(piece_dir, path).is_file():
            problems.append(
                Problem(file, f"models.{_key(name)}.path", path, f"file not found: {_join(piece_dir, path)}")
            )
    # Routes and matrices name the piece's own speakers when the piece declares another layout: the
    # engine maps each of them onto the venue's speakers by azimuth.
    route_layout = layout
    if layout is not None and isinstance(piece_layout, str) and piece_layout in PRESETS:
        route_layout = PRESETS[piece_layout] if piece_layout != layout.name else layout
    for name, entry in voices.items():
        if isinstance(entry, dict):
            problems.extend(_check_voice(entry, f"voices.{_key(name)}", models, route_layout, file))
    _check_sections(raw.get("sections"), voices, file, problems)


def _check_voice(
    entry: dict[str, Any], key: str, models: dict[str, Any], layout: Layout | None, file: Path
) -> list[Problem]:
    found: list[Problem] = []
    target = entry.get("model")
    if isinstance(target, str) and target and target not in models:
        found.append(Problem(file, f"{key}.model", target, _unknown("model", target, models, "[models.*]")))
    routing = _routing_problem([k for k in ROUTINGS if k in entry])
    if routing:
        found.append(Problem(file, key, MISSING, routing))
    clamp = entry.get("clamp")
    if _numbers(clamp) and len(clamp) == 2 and clamp[0] > clamp[1]:
        found.append(Problem(file, f"{key}.clamp", clamp, CLAMP_ORDER))
    matrix = entry.get("matrix")
    if isinstance(matrix, list) and matrix and all(_numbers(row) for row in matrix):
        widths = {len(row) for row in matrix}
        if len(widths) > 1:
            found.append(Problem(file, f"{key}.matrix", matrix, MATRIX_RAGGED))
        elif layout is not None and widths != {layout.n_channels}:
            message = (
                f"has {widths.pop()} column(s); the venue layout {layout.name!r} has {layout.n_channels} "
                f"speakers ({', '.join(layout.names)}): one column per speaker"
            )
            found.append(Problem(file, f"{key}.matrix", matrix, message))
    route = entry.get("route")
    if isinstance(route, list) and layout is not None:
        first: dict[int, int] = {}
        for i, speaker in enumerate(route):
            if not isinstance(speaker, str | int) or isinstance(speaker, bool):
                continue  # a type error, reported by the validation
            try:
                index = layout.index(speaker)
            except (KeyError, ValueError) as exc:
                found.append(Problem(file, f"{key}.route[{i}]", speaker, str(exc)))
                continue
            if index in first:
                found.append(
                    Problem(file, f"{key}.route[{i}]", speaker, f"the same speaker as route[{first[index]}]")
                )
            first.setdefault(index, i)
    return found


def _numbers(value: object) -> TypeGuard[list[float]]:
    return isinstance(value, list) and all(
        isinstance(x, int | float) and not isinstance(x, bool) for x in value
    )


def _check_sections(sections: object, voices: dict[str, Any], file: Path, problems: list[Problem]) -> None:
    if not isinstance(sections, list):
        return
    first: dict[str, int] = {}
    for i, entry in enumerate(sections):
        if not isinstance(entry, dict):
            continue
        name = entry.get("name")
        if isinstance(name, str):
            if name in first:
                problems.append(
                    Problem(file, f"sections[{i}].name", name, f"used twice (also sections[{first[name]}])")
                )
            first.setdefault(name, i)
        listed = entry.get("voices")
        for j, voice in enumerate(listed if isinstance(listed, list) else []):
            if isinstance(voice, str) and voice not in voices:
                message = _unknown("voice", voice, voices, "[voices.*]")
                problems.append(Problem(file, f"sections[{i}].voices[{j}]", voice, message))


def _unknown(what: str, name: str, known: Mapping[str, Any], tables: str) -> str:
    close = difflib.get_close_matches(name, list(known), n=1)
    hint = f"did you mean {close[0]!r}? " if close else ""
    allowed = ", ".join(known) if known else "none defined"
    return f"no {what} of this name; {hint}{tables} entries: {allowed}"


def _unknown_speaker(name: str, layout: Layout) -> str:
    close = difflib.get_close_matches(name, layout.names, n=1)
    hint = f"did you mean {close[0]!r}? " if close else ""
    return f"no speaker {name!r} in layout {layout.name!r}; {hint}speakers: {', '.join(layout.names)}"


# ------------------------------------------------------------------- pydantic errors → readable problems
@dataclass
class _Node:
    """A type met while following an error's location through the models."""

    tp: Any
    constraints: tuple[Any, ...] = ()
    discriminator: str | None = None
    description: str | None = None


@dataclass
class _Walked:
    parts: list[str]  # key parts: ".name" or "[3]"
    node: _Node | None  # the type at the end of the location, if known
    owner: type[BaseModel] | None  # the model whose field the location names last
    unions: list[tuple[int, int, _Node]]  # plain unions passed: (loc index of member tag, len(parts), union)


def _unwrap(
    tp: Any, constraints: tuple[Any, ...] = (), disc: str | None = None, desc: str | None = None
) -> _Node:
    while typing.get_origin(tp) is Annotated:
        base, *extra = typing.get_args(tp)
        for item in extra:
            if isinstance(item, FieldInfo):
                constraints += tuple(item.metadata)
                disc = item.discriminator if isinstance(item.discriminator, str) else disc
                desc = desc or item.description
            else:
                constraints += (item,)
        tp = base
    return _Node(tp, constraints, disc, desc)


def _discriminator(info: FieldInfo) -> str | None:
    return info.discriminator if isinstance(info.discriminator, str) else None


def _is_model(tp: Any) -> bool:
    return isinstance(tp, type) and issubclass(tp, BaseModel)


def _members(tp: Any) -> list[Any] | None:
    if typing.get_origin(tp) in (typing.Union, types.UnionType):
        return [a for a in typing.get_args(tp) if a is not type(None)]
    return None


def _field_names(model: type[BaseModel]) -> dict[str, FieldInfo]:
    """Every key a model accepts (field names and validation aliases) → its field."""
    names: dict[str, FieldInfo] = {}
    for name, info in model.model_fields.items():
        names[name] = info
        alias = info.validation_alias
        for choice in getattr(alias, "choices", [alias] if isinstance(alias, str) else []):
            if isinstance(choice, str):
                names.setdefault(choice, info)
    return names


def _tag_values(model: Any, field: str) -> list[Any]:
    if not _is_model(model) or field not in model.model_fields:
        return []
    return list(typing.get_args(_unwrap(model.model_fields[field].annotation).tp))


def _walk(root: type[BaseModel], loc: tuple[str | int, ...]) -> _Walked:
    """Follow a pydantic error location through the model types: key parts, end type, owning model."""
    node: _Node | None = _Node(root)
    w = _Walked([], None, None, [])
    i = 0
    while i < len(loc):
        item = loc[i]
        if node is None:
            w.parts.append(f"[{item}]" if isinstance(item, int) else f".{_key(str(item))}")
            i += 1
            continue
        members = _members(node.tp)
        if members is not None:
            if len(members) == 1:  # Optional[X]: pydantic adds nothing to the location
                inner = _unwrap(members[0])
                node = _Node(
                    inner.tp, node.constraints + inner.constraints, inner.discriminator, node.description
                )
                continue
            if node.discriminator:  # the location names the tag, which is no key of the file
                picked = [m for m in members if item in _tag_values(_unwrap(m).tp, node.discriminator)]
            else:
                w.unions.append((i, len(w.parts), node))
                picked = [m for m in members if _label_matches(str(item), _unwrap(m).tp)]
            node = _unwrap(picked[0]) if picked else None
            i += 1
            continue
        if _is_model(node.tp):
            w.owner = node.tp
            info = _field_names(node.tp).get(str(item))
            w.parts.append(f".{_key(str(item))}")
            node = (
                None
                if info is None
                else _unwrap(info.annotation, tuple(info.metadata), _discriminator(info), info.description)
            )
            i += 1
            continue
        origin, args = typing.get_origin(node.tp), typing.get_args(node.tp)
        if origin in (list, tuple) and args:
            w.parts.append(f"[{item}]")
            node = _unwrap(args[0])
        elif origin is dict and args:
            w.parts.append(f".{_key(str(item))}")
            if i + 1 < len(loc) and loc[i + 1] == "[key]":  # the error is about the key itself
                node = _unwrap(args[0])
                i += 1
            else:
                node = _unwrap(args[1])
        else:
            w.parts.append(f"[{item}]" if isinstance(item, int) else f".{_key(str(item))}")
            node = None
        i += 1
    w.node = node
    return w


def _label_matches(label: str, tp: Any) -> bool:
    """Whether pydantic's union member label (``float``, ``list[constrained-int]``...) names ``tp``."""
    origin = typing.get_origin(tp)
    if origin is not None:
        return label.startswith(f"{getattr(origin, '__name__', origin)}[")
    name = getattr(tp, "__name__", None)
    return name is not None and (label == name or label.endswith(f"-{name}"))


_TYPE_ERRORS = {
    "int_from_float",
    "float_parsing",
    "int_parsing",
    "bool_parsing",
    "is_instance_of",
    "none_required",
}


def _mismatch(err: dict[str, Any], tag_pos: int) -> bool:
    """An error saying only 'the value is not of this union member's type'."""
    at_member_root = len(err["loc"]) == tag_pos + 1
    kind = err["type"]
    return at_member_root and (kind.endswith("_type") or kind in _TYPE_ERRORS)


_Error = tuple[int, dict[str, Any], _Walked]  # (position in pydantic's list, error, where it points)


def _translate(root: type[BaseModel], errors: list[dict[str, Any]]) -> list[tuple[str, object, str]]:
    """Pydantic errors → (key, value, message), one per real problem, in the order pydantic found them.

    A value that fits no member of a union gets one problem describing every allowed form; when it has
    the type of one member but breaks its rules, only that member's errors are kept.
    """
    walked = [(i, err, _walk(root, tuple(err["loc"]))) for i, err in enumerate(errors)]
    return [result for _, result in sorted(_reduce(walked, 0), key=lambda r: r[0])]


def _reduce(walked: list[_Error], level: int) -> list[tuple[int, tuple[str, object, str]]]:
    out: list[tuple[int, tuple[str, object, str]]] = []
    groups: dict[tuple[Any, ...], list[_Error]] = {}
    for i, err, w in walked:
        if len(w.unions) <= level:
            out.append((i, _explain(err, w)))
        else:
            tag_pos = w.unions[level][0]
            groups.setdefault(tuple(err["loc"][:tag_pos]), []).append((i, err, w))
    for group in groups.values():
        first, err, w = group[0]
        tag_pos, n_parts, union = w.unions[level]
        specific = [e for e in group if not _mismatch(e[1], tag_pos)]
        if specific:
            out.extend(_reduce(specific, level + 1))
        else:
            out.append((first, (_join_key(w.parts[:n_parts]), err["input"], f"must be {_describe(union)}")))
    return out


def _explain(err: dict[str, Any], w: _Walked) -> tuple[str, object, str]:
    """One pydantic error as (key, value, message)."""
    kind, ctx, value = err["type"], err.get("ctx") or {}, err["input"]
    parts = list(w.parts)
    node = w.node
    if w.unions and w.unions[-1][0] == len(err["loc"]) - 1:
        node = w.unions[-1][2]  # the error is about the union member as a whole: describe every form
    if kind == "latentd":
        if ctx.get("field"):
            parts.append(f".{ctx['field']}")
        return _join_key(parts), ctx.get("value", MISSING), str(ctx["message"])
    if kind == "missing":
        what = f": {w.node.description}" if w.node and w.node.description else ""
        return _join_key(parts), MISSING, f"required{what}"
    if kind == "extra_forbidden":
        keys = sorted(_field_names(w.owner)) if w.owner else []
        close = difflib.get_close_matches(str(err["loc"][-1]), keys, n=1)
        hint = f"did you mean {close[0]!r}? " if close else ""
        return _join_key(parts), value, f"unknown key; {hint}allowed keys: {', '.join(keys)}"
    if kind in ("union_tag_invalid", "union_tag_not_found"):
        field = str(ctx.get("discriminator", "kind")).strip("'\"")
        tags = [
            t for m in (_members(node.tp) if node else None) or [] for t in _tag_values(_unwrap(m).tp, field)
        ]
        allowed = ", ".join(f'"{t}"' for t in tags)
        parts.append(f".{field}")
        if kind == "union_tag_not_found":
            return _join_key(parts), MISSING, f"required: one of {allowed}"
        tag = ctx.get("tag")
        close = difflib.get_close_matches(str(tag), [str(t) for t in tags], n=1)
        hint = f"did you mean {close[0]!r}? " if close else ""
        return _join_key(parts), tag, f"unknown {field}; {hint}allowed: {allowed}"
    if kind == "literal_error" and node is not None:
        choices = [str(c) for c in typing.get_args(node.tp)]
        close = difflib.get_close_matches(str(value), choices, n=1) if isinstance(value, str) else []
        hint = f"; did you mean {close[0]!r}?" if close else ""
        return _join_key(parts), value, f"must be {_describe(node)}{hint}"
    if kind in ("value_error", "assertion_error"):
        return _join_key(parts), value, re.sub(r"^(Value|Assertion) error, ", "", err["msg"])
    if node is not None:
        return _join_key(parts), value, f"must be {_describe(node)}"
    return _join_key(parts), value, err["msg"]


def _join_key(parts: list[str]) -> str:
    return "".join(parts).lstrip(".")


def _key(name: str) -> str:
    """A TOML key: bare when it can be, quoted otherwise."""
    return name if re.fullmatch(r"[A-Za-z0-9_\-]+", name) else json.dumps(name, ensure_ascii=False)


def _num(x: float) -> str:
    return str(int(x)) if isinstance(x, float) and x.is_integer() and abs(x) < 1e15 else str(x)


def _range(constraints: tuple[Any, ...]) -> str:
    lo: Any = None
    hi: Any = None
    lo_open = hi_open = False
    for c in constraints:
        if isinstance(c, at.Ge):
            lo = c.ge
        elif isinstance(c, at.Gt):
            lo, lo_open = c.gt, True
        elif isinstance(c, at.Le):
            hi = c.le
        elif isinstance(c, at.Lt):
            hi, hi_open = c.lt, True
    if lo is not None and hi is not None:
        if not lo_open and not hi_open:
            return f" between {_num(lo)} and {_num(hi)}"
        return f" {'>' if lo_open else '>='} {_num(lo)} and {'<' if hi_open else '<='} {_num(hi)}"
    if lo is not None:
        return f" {'>' if lo_open else '>='} {_num(lo)}"
    if hi is not None:
        return f" {'<' if hi_open else '<='} {_num(hi)}"
    return ""


def _count(constraints: tuple[Any, ...]) -> str:
    """How many items a list takes, as a prefix: '2 ', '1 or more ', '' (any number)."""
    lo = next((c.min_length for c in constraints if isinstance(c, at.MinLen)), None)
    hi = next((c.max_length for c in constraints if isinstance(c, at.MaxLen)), None)
    if lo is not None and lo == hi:
        return f"{lo} "
    if lo and hi is not None:
        return f"{lo} to {hi} "
    if lo:
        return f"{lo} or more "
    if hi is not None:
        return f"at most {hi} "
    return ""


def _length(constraints: tuple[Any, ...], unit: str) -> str:
    lo = next((c.min_length for c in constraints if isinstance(c, at.MinLen)), None)
    hi = next((c.max_length for c in constraints if isinstance(c, at.MaxLen)), None)
    if lo is not None and lo == hi:
        return f" of exactly {lo} {unit}"
    if lo and hi is not None:
        return f" of {lo} to {hi} {unit}"
    if lo:
        return f" of at least {lo} {unit}"
    if hi is not None:
        return f" of at most {hi} {unit}"
    return ""


def _describe(node: _Node, plural: bool = False) -> str:
    """What a type allows, in words: 'a number between 0 and 4', 'a list of at least 1 strings'."""
    tp, cons = node.tp, node.constraints
    members = _members(tp)
    if members is not None:
        return " or ".join(_describe(_unwrap(m, cons), plural) for m in members)
    if typing.get_origin(tp) is Literal:
        return "one of " + ", ".join(
            json.dumps(c) if isinstance(c, str) else str(c) for c in typing.get_args(tp)
        )
    origin, args = typing.get_origin(tp), typing.get_args(tp)
    if origin in (list, tuple):
        items = _describe(_unwrap(args[0]), plural=True) if args else "values"
        return f"{'lists' if plural else 'a list'} of {_count(cons)}{items}"
    if origin is dict or tp is dict or _is_model(tp):
        return ("tables" if plural else "a table") + _length(cons, "entries")
    if tp is bool:
        return "true or false"
    if tp is int:
        return ("integers" if plural else "an integer") + _range(cons)
    if tp is float:
        return ("numbers" if plural else "a number") + _range(cons)
    if tp is str:
        if any(isinstance(c, AfterValidator) for c in cons):
            return (
                "names (letters, digits, '_', '-', '.')"
                if plural
                else "a name (letters, digits, '_', '-', '.')"
            )
        return ("strings" if plural else "a string") + _length(cons, "characters")
    return getattr(tp, "__name__", str(tp))


# ----------------------------------------------------------------------------------------- TOML output
def to_toml(data: Mapping[str, Any]) -> str:
    """A TOML document for plain data (dicts, lists, str, int, float, bool); ``None`` values are left out."""
    lines: list[str] = []
    _emit_table(lines, [], data, None)
    return "\n".join(lines).lstrip("\n") + "\n"


def _is_table(v: Any) -> bool:
    return isinstance(v, Mapping) and len(v) > 0


def _is_table_array(v: Any) -> bool:
    return isinstance(v, list) and len(v) > 0 and all(isinstance(x, Mapping) for x in v)


def _emit_table(lines: list[str], path: list[str], table: Mapping[str, Any], header: str | None) -> None:
    plain = [
        (k, v) for k, v in table.items() if v is not None and not _is_table(v) and not _is_table_array(v)
    ]
    tables = [(k, v) for k, v in table.items() if _is_table(v)]
    arrays = [(k, v) for k, v in table.items() if _is_table_array(v)]
    if header is not None:
        lines.extend(["", header])
    elif path and (plain or not (tables or arrays)):
        lines.extend(["", f"[{'.'.join(path)}]"])
    lines.extend(f"{_key(k)} = {_inline(v)}" for k, v in plain)
    for k, v in tables:
        _emit_table(lines, [*path, _key(k)], v, None)
    for k, items in arrays:
        sub = [*path, _key(k)]
        for item in items:
            _emit_table(lines, sub, item, f"[[{'.'.join(sub)}]]")


def _inline(v: Any) -> str:
    """One TOML value on one line."""
    if isinstance(v, bool):
        return "true" if v else "false"
    if isinstance(v, int):
        return str(v)
    if isinstance(v, float):
        if math.isnan(v):
            return "nan"
        if math.isinf(v):
            return "inf" if v > 0 else "-inf"
        return repr(v)
    if isinstance(v, str | Path):
        return json.dumps(str(v), ensure_ascii=False)
    if isinstance(v, list | tuple):
        return "[" + ", ".join(_inline(x) for x in v) + "]"
    if isinstance(v, Mapping):
        if not v:
            return "{}"
        return (
            "{ " + ", ".join(f"{_key(str(k))} = {_inline(x)}" for k, x in v.items() if x is not None) + " }"
        )
    raise TypeError(f"cannot write {type(v).__name__} as TOML")


def _show(value: object, limit: int = 80) -> str:
    """A value as it would be written in TOML, shortened for a message."""
    try:
        text = _inline(value)
    except TypeError:
        text = repr(value)
    return text if len(text) <= limit else text[: limit - 3] + "..."
