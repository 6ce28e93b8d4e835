"""``latentd replay SESSION --output OUT.wav``: re-render a recorded session offline.

A session is a deterministic function of (config, seed, command log with block indices): replay loads
the venue config the session names (or ``--config``), builds the engine with the session's seed, fade-in
and torch thread count, renders from engine block 0, submits each logged command right before the block
it was applied at, and keeps the blocks the recording holds (``start_block`` .. ``stop_block - 1``).

Exactness: with the same model files (their SHA-256 is checked) and the same ``torch_threads``, the
output equals the recording sample for sample — decode calls happen in the same order on the same
shapes, and torch's generator is seeded by the engine. With a different number of torch intra-op
threads, convolutions may sum in another order and differ within float32 rounding (~1e-7 relative);
replay therefore uses the thread count stored in ``session.json``. Blocks the recorder dropped (counted
in ``session.json``) are present in the replay and missing from the recording.
"""

from __future__ import annotations

import json
import math
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import soundfile as sf

from latentd.config import load_config
from latentd.engine import commands as c
from latentd.engine.engine import Engine
from latentd.installation.piece import load_installation
from latentd.offline.render import file_format
from latentd.recording.session import COMMANDS_FILE, SESSION_FILE, config_hash, read_command_log, sha256_file
from latentd.runtime.process import configure_process


class ReplayError(Exception):
    """A session that cannot be replayed (missing files, unknown commands...)."""


@dataclass(frozen=True)
class ReplayResult:
    """What a replay wrote, and what differs from the recorded session's setup."""

    output: Path
    frames: int
    samplerate: int
    channels: int
    warnings: tuple[str, ...]


def load_session(folder: Path) -> dict[str, Any]:
    """``session.json`` of a session folder (or the file itself)."""
    path = folder / SESSION_FILE if folder.is_dir() else folder
    try:
        return dict(json.loads(path.read_text(encoding="utf-8")))
    except OSError as exc:
        raise ReplayError(f"{path}: cannot read the session file: {exc.strerror or exc}") from exc
    except ValueError as exc:
        raise ReplayError(f"{path}: not a session file: {exc}") from exc


def session_frames(folder: Path, session: dict[str, Any]) -> int:
    """Frames the recording holds: from the audio files themselves (session.json may predate a kill)."""
    total = 0
    for seg in session.get("segments", []):
        path = folder / seg["file"]
        if path.exists():
            end = int(seg["start_frame"]) + _readable_frames(path)
            total = max(total, end)
    return total


def _readable_frames(path: Path) -> int:
    with sf.SoundFile(path) as f:
        if f.format != "FLAC":
            return int(f.frames)
        n = 0
        while True:  # an interrupted FLAC has no length: count what decodes
            try:
                got = len(f.read(65536, dtype="float32"))
            except (sf.LibsndfileError, RuntimeError):
                break
            if got == 0:
                break
            n += got
        return n


def _commands(folder: Path) -> dict[int, list[c.Command]]:
    by_block: dict[int, list[c.Command]] = {}
    path = folder / COMMANDS_FILE
    if not path.exists():
        raise ReplayError(f"{path}: no command log in the session folder")
    for block, data in read_command_log(path):
        try:
            cmd = c.command_from_json(data)
        except (KeyError, TypeError) as exc:
            raise ReplayError(f"{path}: block {block}: not a known command: {data}") from exc
        by_block.setdefault(block, []).append(cmd)
    return by_block


def replay(folder: Path, output: Path, config_path: Path | None = None) -> ReplayResult:
    """Re-render the session in ``folder`` into ``output``; see the module docstring.

    Raises:
        ReplayError: the session cannot be read. ``ConfigError`` from loading the config passes through.
    """
    folder = Path(folder)
    session = load_session(folder)
    venue = Path(config_path or session["venue_config"])
    warnings: list[str] = []
    config = load_config(venue)
    if config_hash(config.venue_path, config.piece_file) != session.get("config_sha256"):
        warnings.append(
            f"the config files differ from the recorded ones (copies are in {folder}): the replay may differ"
        )
    for name, model in session.get("models", {}).items():
        path = config.model_path(name) if name in config.piece.models else None
        if path is None or not path.exists() or sha256_file(path) != model["sha256"]:
            warnings.append(
                f"model {name!r} differs from the recorded one ({model['path']}): the replay will differ"
            )
    configure_process(int(session.get("torch_threads", config.venue.audio.torch_threads)))
    # live_loads=False: model swaps land at their logged block (loaded synchronously there).
    engine = Engine(
        load_installation(config, seed=int(session["seed"])),
        fade_in_s=float(session["fade_in_s"]),
        live_loads=False,
    )
    # Recording commands were applied live; accept them here too so the engine's state matches.
    engine.handlers[c.StartRecording] = lambda cmd: None
    engine.handlers[c.StopRecording] = lambda cmd: None
    by_block = _commands(folder)
    start = int(session["start_block"])
    frames = session_frames(folder, session)
    stop = session.get("stop_block")
    if stop is None:  # the process died: render what the files hold
        stop = start + math.ceil(frames / engine.blocksize)
    stop = int(stop)
    fmt, subtype = file_format(output, engine.n_channels, (stop - start) * engine.blocksize)
    output.parent.mkdir(parents=True, exist_ok=True)
    written = 0
    with sf.SoundFile(output, "w", engine.samplerate, engine.n_channels, subtype=subtype, format=fmt) as f:
        for block in range(stop):
            for cmd in by_block.get(block, ()):
                engine.submit(cmd)
            audio = engine.next_block()
            if block >= start:
                f.write(audio.T)
                written += audio.shape[1]
    return ReplayResult(output, written, engine.samplerate, engine.n_channels, tuple(warnings))
