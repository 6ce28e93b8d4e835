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

import math
from dataclasses import dataclass
from pathlib import Path

import soundfile as sf

from latentd.config import load_config
from latentd.engine import commands as c
from latentd.offline.build import build_engine
from latentd.offline.loop import render_to_file
from latentd.recording.session import COMMANDS_FILE, config_hash, read_command_log, sha256_file
from latentd.recording.session_file import SessionFileError, SessionInfo


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


def load_session(folder: Path) -> SessionInfo:
    """``session.json`` of a session folder (or the file itself).

    Raises:
        ReplayError: the file cannot be read or is not a session file.
    """
    try:
        return SessionInfo.read(folder)
    except SessionFileError as exc:
        raise ReplayError(str(exc)) from exc


def session_frames(folder: Path, session: SessionInfo) -> int:
    """Frames the recording holds: from the audio files themselves (session.json may predate a kill)."""
    total = 0
    for seg in session.segments:
        path = folder / seg.file
        if path.exists():
            total = max(total, seg.start_frame + _readable_frames(path))
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
    # A config given on the command line is checked first: its errors are the ones the user can fix.
    given = load_config(Path(config_path)) if config_path is not None else None
    session = load_session(folder)
    recorded = session.static
    config = given if given is not None else load_config(recorded.venue_path)
    warnings: list[str] = []
    if config_hash(config.venue_path, config.piece_file) != recorded.config_hash:
        warnings.append(
            f"the config files differ from the recorded ones (copies are in {folder}): the replay may differ"
        )
    for name, model in recorded.models.items():
        path = config.model_path(name) if name in config.piece.models else None
        if path is None or not path.exists() or sha256_file(path) != model.sha256:
            warnings.append(
                f"model {name!r} differs from the recorded one ({model.path}): the replay will differ"
            )
    # live_loads=False: model swaps land at their logged block (loaded synchronously there).
    engine = build_engine(
        config,
        seed=recorded.seed,
        fade_in_s=recorded.fade_in_s,
        live_loads=False,
        torch_threads=recorded.torch_threads or config.venue.audio.torch_threads,  # 0: not recorded
    )
    # Recording commands were applied live; accept them here too so the engine's state matches.
    engine.handlers[c.StartRecording] = lambda cmd: None
    engine.handlers[c.StopRecording] = lambda cmd: None
    by_block = _commands(folder)
    start = session.start_block
    stop = session.stop_block
    if stop is None:  # the process died: render what the files hold
        stop = start + math.ceil(session_frames(folder, session) / engine.blocksize)

    def submit_logged(block: int) -> None:
        for cmd in by_block.get(block, ()):
            engine.submit(cmd)

    rendered = render_to_file(engine, output, stop_block=stop, start_block=start, before_block=submit_logged)
    return ReplayResult(output, rendered.frames, rendered.samplerate, rendered.n_channels, tuple(warnings))
