"""``session.json``, typed: what a recording holds and how it was made (the recorder writes, replay reads).

The JSON keys are spelled in this module only: the recorder builds a :class:`SessionInfo` and writes
:meth:`SessionInfo.to_json`; ``latentd replay`` reads :meth:`SessionInfo.read`.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

SESSION_FILE = "session.json"


class SessionFileError(ValueError):
    """A ``session.json`` that cannot be read or lacks a key replay needs."""


@dataclass(frozen=True)
class ModelFile:
    """A model file a session played, and its SHA-256 (replay checks it)."""

    path: str
    sha256: str


@dataclass(frozen=True)
class SessionStatic:
    """What a session records about the installation (the same for every session of a run).

    Attributes:
        latent_rates: voice → latent rate of its latent WAV (``sr / ratio``, Hz); not written to the file.
    """

    piece: str
    venue: str
    venue_path: Path
    piece_file: Path
    config_hash: str
    models: dict[str, ModelFile]
    seed: int
    samplerate: int
    blocksize: int
    speakers: list[str]
    torch_threads: int
    fade_in_s: float
    latent_rates: dict[str, float] = field(default_factory=dict)
    call_shapes: dict[str, list[int]] = field(default_factory=dict)  # model → [batch, frames]
    decode_threads: int = 1

    def to_json(self) -> dict[str, Any]:
        """The installation's part of ``session.json``."""
        return {
            "piece": self.piece,
            "venue": self.venue,
            "venue_config": str(self.venue_path),
            "piece_file": str(self.piece_file),
            "config_sha256": self.config_hash,
            "models": {name: {"path": m.path, "sha256": m.sha256} for name, m in self.models.items()},
            "seed": self.seed,
            "samplerate": self.samplerate,
            "blocksize": self.blocksize,
            "channels": len(self.speakers),
            "speakers": self.speakers,
            "torch_threads": self.torch_threads,
            "fade_in_s": self.fade_in_s,
            "call_shapes": self.call_shapes,
            "decode_threads": self.decode_threads,
        }

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> SessionStatic:
        """Read the installation's part back; a missing hash, model list or thread count reads as empty."""
        return cls(
            piece=str(data["piece"]),
            venue=str(data["venue"]),
            venue_path=Path(data["venue_config"]),
            piece_file=Path(data["piece_file"]),
            config_hash=str(data.get("config_sha256", "")),
            models={
                name: ModelFile(str(m["path"]), str(m["sha256"]))
                for name, m in data.get("models", {}).items()
            },
            seed=int(data["seed"]),
            samplerate=int(data["samplerate"]),
            blocksize=int(data["blocksize"]),
            speakers=[str(s) for s in data.get("speakers", [])],
            torch_threads=int(data.get("torch_threads", 0)),
            fade_in_s=float(data["fade_in_s"]),
            call_shapes={
                str(name): [int(v) for v in shape] for name, shape in data.get("call_shapes", {}).items()
            },
            decode_threads=int(data.get("decode_threads", 1)),
        )


@dataclass(frozen=True)
class SegmentInfo:
    """One audio file of a session: where it starts (engine block, frame from the session's start).

    ``checkpoint`` names the file holding the engine's state before ``start_block`` (what replay of this
    segment alone starts from), None when the segment has none.
    """

    file: str
    start_block: int
    start_frame: int
    frames: int
    checkpoint: str | None = None

    def to_json(self) -> dict[str, Any]:
        """As stored in ``session.json``."""
        return {
            "file": self.file,
            "start_block": self.start_block,
            "start_frame": self.start_frame,
            "frames": self.frames,
            "checkpoint": self.checkpoint,
        }

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> SegmentInfo:
        """Read one segment back."""
        checkpoint = data.get("checkpoint")
        return cls(
            str(data["file"]),
            int(data["start_block"]),
            int(data["start_frame"]),
            int(data["frames"]),
            None if checkpoint is None else str(checkpoint),
        )


@dataclass(frozen=True)
class LatentFiles:
    """The latent files of one voice (``<voice>_latents.wav`` and ``<voice>.npy``) and their length."""

    wav: str
    npy: str
    frames: int


@dataclass(frozen=True)
class SessionInfo:
    """Everything ``session.json`` says about one recording.

    Attributes:
        format: ``[recording] format`` (w64, rf64, wav, flac).
        subtype: ``[recording] subtype`` (float32, pcm24).
        static: the installation: piece, venue, files, hashes, seed, rates, speakers.
        label: the label given at start ("" for none).
        voice_seeds: every voice's seed when the recording started.
        start_utc: ISO time of the start.
        end_utc: ISO time of the stop; None while recording (or after a kill).
        start_block: the engine block of the first recorded frame.
        stop_block: the first engine block not recorded; None while recording (or after a kill).
        stop_reason: command, shutdown, restarted, disk_floor, error, or interrupted (the process was
            killed; set by ``latentd recover``); None while recording.
        paused: why recording is paused (a write error, the disk floor), None while it writes.
        segments: the audio files, contiguous.
        dropped_blocks: blocks missing from the files because the writer fell behind.
        ring_dropped_blocks: blocks the recorder's ring refused since the recorder started.
        paused_blocks: blocks not recorded while paused at the disk floor.
        disk_floor_hits: how often free space fell below the floor.
        latents: latent files by voice (``<voice>#<n>`` for the earlier files of a swapped voice).
        stats: counters from the running daemon (xruns, underruns), when it gives them.
    """

    format: str
    subtype: str
    static: SessionStatic
    label: str
    voice_seeds: dict[str, int]
    start_utc: str
    end_utc: str | None
    start_block: int
    stop_block: int | None
    stop_reason: str | None
    segments: list[SegmentInfo] = field(default_factory=list)
    dropped_blocks: int = 0
    ring_dropped_blocks: int = 0
    paused_blocks: int = 0
    disk_floor_hits: int = 0
    latents: dict[str, LatentFiles] = field(default_factory=dict)
    stats: dict[str, Any] | None = None
    paused: str | None = None

    @property
    def frames(self) -> int:
        """Frames in the audio files, as far as the writer knew."""
        return sum(s.frames for s in self.segments)

    def to_json(self) -> dict[str, Any]:
        """The document written to ``session.json``."""
        data: dict[str, Any] = {
            "format": self.format,
            "subtype": self.subtype,
            **self.static.to_json(),
            "label": self.label,
            "voice_seeds": self.voice_seeds,
            "start_utc": self.start_utc,
            "end_utc": self.end_utc,
            "start_block": self.start_block,
            "stop_block": self.stop_block,
            "stop_reason": self.stop_reason,
            "paused": self.paused,
            "segments": [s.to_json() for s in self.segments],
            "frames": self.frames,
            "dropped_blocks": self.dropped_blocks,
            "ring_dropped_blocks": self.ring_dropped_blocks,
            "paused_blocks": self.paused_blocks,
            "disk_floor_hits": self.disk_floor_hits,
            "latents": {v: {"wav": f.wav, "npy": f.npy, "frames": f.frames} for v, f in self.latents.items()},
        }
        if self.stats is not None:
            data["stats"] = self.stats
        return data

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> SessionInfo:
        """Read a ``session.json`` document.

        Raises:
            SessionFileError: a key replay needs is missing or has the wrong type.
        """
        try:
            stop = data.get("stop_block")
            return cls(
                format=str(data.get("format", "")),
                subtype=str(data.get("subtype", "")),
                static=SessionStatic.from_json(data),
                label=str(data.get("label", "")),
                voice_seeds={str(k): int(v) for k, v in data.get("voice_seeds", {}).items()},
                start_utc=str(data.get("start_utc", "")),
                end_utc=data.get("end_utc"),
                start_block=int(data["start_block"]),
                stop_block=None if stop is None else int(stop),
                stop_reason=data.get("stop_reason"),
                segments=[SegmentInfo.from_json(s) for s in data.get("segments", [])],
                dropped_blocks=int(data.get("dropped_blocks", 0)),
                ring_dropped_blocks=int(data.get("ring_dropped_blocks", 0)),
                paused_blocks=int(data.get("paused_blocks", 0)),
                disk_floor_hits=int(data.get("disk_floor_hits", 0)),
                latents={
                    v: LatentFiles(str(f["wav"]), str(f["npy"]), int(f["frames"]))
                    for v, f in data.get("latents", {}).items()
                },
                stats=data.get("stats"),
                paused=data.get("paused"),
            )
        except KeyError as exc:
            raise SessionFileError(f"no {exc.args[0]!r} in the session file") from exc
        except (TypeError, ValueError, AttributeError) as exc:
            raise SessionFileError(f"not a session file: {exc}") from exc

    @classmethod
    def read(cls, path: Path) -> SessionInfo:
        """Read ``session.json`` of a session folder (or the file itself).

        Raises:
            SessionFileError: the file cannot be read, is not JSON, or lacks a key replay needs.
        """
        path = path / SESSION_FILE if path.is_dir() else path
        try:
            data = json.loads(path.read_text(encoding="utf-8"))
        except OSError as exc:
            raise SessionFileError(f"{path}: cannot read the session file: {exc.strerror or exc}") from exc
        except ValueError as exc:
            raise SessionFileError(f"{path}: not a session file: {exc}") from exc
        if not isinstance(data, dict):
            raise SessionFileError(f"{path}: not a session file: a JSON object was expected")
        try:
            return cls.from_json(data)
        except SessionFileError as exc:
            raise SessionFileError(f"{path}: {exc}") from exc
