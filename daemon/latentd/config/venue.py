"""The venue config (``configs/<venue>.toml``): where and how a piece plays.

Its tables: ``[audio]``, ``[output]``, ``[jack]``, ``[logging]`` here; ``[osc]``, ``[recording]``,
``[schedule]`` and ``[web]`` beside the code that uses them (``control/``, ``recording/``, ``web/``).
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Annotated, Literal

from pydantic import AfterValidator, Field, model_validator

from latentd.config.fields import Gain, Name, Strict, fail
from latentd.config.nodes import NodeConfig
from latentd.config.problems import MISSING
from latentd.control.osc_config import OscConfig
from latentd.control.schedule_config import ScheduleConfig
from latentd.installation.layout import PRESETS, Layout, SpeakerLike, make_layout
from latentd.recording.config import RecordingConfig
from latentd.web.config import WebConfig


def _check_blocksize(value: int) -> int:
    """A power of two from 32 to 8192."""
    if not (32 <= value <= 8192 and value & (value - 1) == 0):
        raise ValueError("must be a power of two between 32 and 8192")
    return value


class SpeakerConfig(Strict):
    """One speaker of a custom layout."""

    name: Name = Field(
        description="speaker name; also the name of its JACK output port and of its trims table"
    )
    azimuth_deg: float = Field(
        ge=-360.0, le=360.0, description="direction in degrees: 0 = front, positive = left"
    )
    port: str | None = Field(
        default=None,
        min_length=1,
        description="JACK playback port this speaker's output connects to, e.g. system:playback_1 (used when "
        "every speaker names one and jack.playback_ports is empty)",
    )


class AudioConfig(Strict):
    """``[audio]``: rates, block size, speaker layout, decoding."""

    samplerate: int = Field(
        default=48000,
        ge=8000,
        le=192000,
        description="sample rate of JACK and of the output, in Hz; a JACK server at another rate is refused",
    )
    blocksize: Annotated[int, AfterValidator(_check_blocksize)] = Field(
        default=256,
        description="audio frames the engine produces per block; divides the JACK period or is a multiple "
        "of it",
    )
    layout: Literal["stereo", "quad", "5.0", "7.0", "octo", "custom"] = Field(
        default="octo",
        description="speaker layout: a preset (stereo L R at ±30°, quad at ±45°/±135°, 5.0, 7.0, octo ring "
        "from +22.5°) or custom (then list `speakers`)",
    )
    speakers: list[SpeakerConfig] | None = Field(
        default=None,
        min_length=1,
        description='the speakers in channel order; only (and required) with layout = "custom"',
    )
    frames_per_call: int = Field(
        default=8,
        ge=1,
        le=64,
        description="latent frames each decode call makes per voice (raised to fit a model's "
        "min_buffer_size); more cost less per frame, fewer let changes reach the output sooner",
    )
    torch_threads: int = Field(
        default=1, ge=1, le=16, description="torch intra-op threads for decoding (leave a core for JACK)"
    )
    decode_latency_ms: float | None = Field(
        default=None,
        gt=0,
        le=2000,
        description="most audio one decode call may make, in ms: when set, each model's frames per call "
        "are chosen at load by measurement among those that fit (1, 2, 4 … 64 frames; fewer unless more "
        "are clearly cheaper), instead of frames_per_call; unset: frames_per_call",
    )
    batch_padding: bool = Field(
        default=True,
        description="measure at load whether a model's voices decode faster beside a padding row of "
        "zeros, and decode so when they do (torch is slow at a batch of 1 and few frames: a full-size "
        "RAVE export decodes a batch of 2 in about half the time); the choice is logged as "
        "model.call_shape",
    )
    decode_threads: int = Field(
        default=1,
        ge=1,
        le=16,
        description="decode calls running at once: above 1, each model decodes its next call ahead in a "
        "thread of its own while the engine mixes (a piece of several models uses that many cores; each "
        "thread also uses torch_threads; control changes reach a model one call later); models that draw "
        "random numbers inside decode (RAVE v2 noise, vschaos2 phase) share one of these threads, one "
        "call after another, so their noise stays repeatable from the seed (see parallel_random)",
    )
    parallel_random: bool = Field(
        default=False,
        description="with decode_threads above 1: models that draw random numbers inside decode also "
        "decode in parallel, each in its own thread (faster with several such models on many cores), but "
        "their noise then depends on thread timing and no longer repeats exactly from the seed",
    )
    downmix: bool = Field(
        default=False,
        description="allow a piece made for more speakers than the venue has: its speakers are panned onto "
        "the venue's by azimuth",
    )
    engine_process: bool = Field(
        default=True,
        description="true: `latentd run` decodes in its own process, so the decoder's GIL never delays the "
        "JACK callback; false: in a thread of the JACK process",
    )

    @model_validator(mode="after")
    def _speakers_fit_layout(self) -> AudioConfig:
        problem = _speakers_problem(self.layout, self.speakers)
        if problem:
            raise fail("speakers", MISSING, problem)
        return self

    def make_layout(self) -> Layout:
        """The speaker layout this section describes."""
        return make_layout(self.layout, self.speakers)


def _speakers_problem(layout: str, speakers: Sequence[SpeakerLike] | None) -> str | None:
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


class TrimConfig(Strict):
    """``[output.trims.<speaker>]``: per-speaker calibration."""

    gain_db: float = Field(default=0.0, ge=-60.0, le=12.0, description="gain of this speaker in dB")
    delay_ms: float = Field(
        default=0.0, ge=0.0, le=500.0, description="delay of this speaker in milliseconds"
    )


class OutputConfig(Strict):
    """``[output]``: the master bus and offline renders."""

    master_gain: Gain = Field(default=1.0, description="master gain, linear (1 = unity)")
    ceiling_db: float = Field(
        default=-1.0,
        ge=-60.0,
        le=0.0,
        description="limiter ceiling in dBFS: no sample at the speakers exceeds it",
    )
    dc_block_hz: float = Field(
        default=5.0, ge=0.0, le=40.0, description="DC blocking high-pass corner in Hz; 0 = off"
    )
    limiter_release_ms: float = Field(
        default=200.0,
        ge=1.0,
        le=5000.0,
        description="time in ms the limiter takes to give back gain after a peak (longer: smoother, "
        "quieter after loud passages)",
    )
    render_dir: str = Field(
        default="renders",
        min_length=1,
        description="folder for `latentd render` output, relative to the venue config file",
    )
    trims: dict[str, TrimConfig] = Field(
        default_factory=dict, description="per-speaker calibration, one table per speaker name of the layout"
    )


class JackConfig(Strict):
    """``[jack]``: the JACK client and, optionally, a private server."""

    client_name: str = Field(
        default="latentd",
        min_length=1,
        max_length=63,
        description="JACK client name; must differ from the server's name",
    )
    server_name: str = Field(
        default="", description='name of the JACK server to use (or to start); "" = the default server'
    )
    start_server: bool = Field(
        default=False,
        description="start a private jackd at audio.samplerate and stop it on exit (with the dummy driver: "
        "demos, machines without a sound card)",
    )
    driver: Literal["dummy", "alsa"] = Field(
        default="dummy", description="driver of the private jackd (start_server = true)"
    )
    device: str = Field(
        default="",
        description='ALSA device of the private jackd with driver = "alsa", e.g. hw:0; "" = jackd\'s default',
    )
    period: int = Field(
        default=256, ge=16, le=8192, description="period of the private jackd in frames (start_server = true)"
    )
    autoconnect: bool = Field(
        default=True,
        description="connect the output ports to playback ports at start (playback_ports, else the speakers' "
        "ports, else system:playback_1..N; a missing port is a warning); false: leave connecting to others",
    )
    playback_ports: list[Annotated[str, Field(min_length=1)]] = Field(
        default_factory=list,
        description="playback ports to connect, one per speaker in channel order; empty: the speakers' "
        "ports, or system:playback_1..N",
    )
    ring_blocks: int = Field(
        default=16,
        ge=2,
        le=1024,
        description="blocks of decoded audio the ring between the engine and the JACK callback holds; more "
        "absorbs slower decodes, and delays every change by up to as many blocks",
    )


class LoggingConfig(Strict):
    """``[logging]``: how much is logged, and in which format (to stdout)."""

    level: Literal["debug", "info", "warning", "error"] = Field(
        default="info", description="lowest level of the events logged"
    )
    format: Literal["auto", "json", "console"] = Field(
        default="auto", description="auto = readable lines on a terminal, JSON lines otherwise (journald)"
    )


class VenueConfig(Strict):
    """A venue config file: where and how a piece plays. Every section is optional."""

    name: Name = Field(description="venue name (in file names and logs)")
    piece: str = Field(min_length=1, description="folder holding piece.toml, relative to this config file")
    audio: AudioConfig = Field(
        default_factory=lambda: AudioConfig(),
        description="rates, block size, speaker layout, decoding: see [audio]",
    )
    output: OutputConfig = Field(
        default_factory=lambda: OutputConfig(),
        description="master bus, limiter, trims, renders: see [output]",
    )
    jack: JackConfig = Field(
        default_factory=lambda: JackConfig(), description="JACK client and private server: see [jack]"
    )
    logging: LoggingConfig = Field(
        default_factory=lambda: LoggingConfig(), description="log level and format: see [logging]"
    )
    osc: OscConfig = Field(
        default_factory=lambda: OscConfig(), description="the OSC control server: see [osc]"
    )
    web: WebConfig = Field(
        default_factory=lambda: WebConfig(), description="the status page for the staff: see [web]"
    )
    recording: RecordingConfig = Field(
        default_factory=lambda: RecordingConfig(),
        description="what is recorded, where and how: see [recording]",
    )
    schedule: ScheduleConfig = Field(
        default_factory=lambda: ScheduleConfig(),
        description="opening hours, scheduled recordings, daily reseed, state file: see [schedule]",
    )
    node: str = Field(
        default="",
        description="which node of [nodes] this machine is (latentd run --node overrides it); "
        '"" without [nodes]',
    )
    nodes: dict[Name, NodeConfig] = Field(
        default_factory=dict,
        description="the machines one piece plays on over netjack2, by name: see [nodes.<name>]; none = "
        "this machine alone",
    )
