"""``latentd replay SESSION --output OUT.wav [--segment N]``: re-render a recorded session offline.

A session is a deterministic function of (config, seed, checkpoints, command log with block indices):
replay loads the venue config the session names (or ``--config``), builds the engine with the session's
seed, fade-in and torch thread count, restores the checkpoint the segment begins with (the engine's
state before that block, see :mod:`latentd.engine.checkpoint`), submits each logged command right
before the block it was applied at, and writes the frames the recording holds. ``--segment N`` renders
segment N alone (``_NNN`` in its file name); without it, the whole session from its first frame.

When the segment's checkpoint cannot be restored exactly (a resampled model, a model swap, a pool or
prior source; the checkpoint says which) or is missing, replay restores the nearest earlier exact one
and renders forward to the segment, still sample for sample. A session recorded before checkpoints
existed is rendered from engine block 0 (its command log holds the history since then).

Exactness: with the same model files (their SHA-256 is checked) and the same ``torch_threads``, the
output equals the recording sample for sample — decode calls happen in the same order on the same
shapes, and torch's generator is restored. With a different number of torch intra-op threads,
convolutions may sum in another order and differ within float32 rounding (~1e-7 relative); replay
therefore uses the thread count stored in ``session.json``. Blocks the recorder dropped (counted in
``session.json``) are present in a whole-session replay and missing from the files. A paused recording
resumed in a new segment with its own checkpoint: a whole-session replay renders each part from the
checkpoint it begins with and, like the files, leaves the paused spans out (the commands applied while
paused are in no log).
"""

from __future__ import annotations

import dataclasses
import math
from dataclasses import dataclass
from pathlib import Path

import soundfile as sf

from latentd.config import Config, load_config
from latentd.engine import commands as c
from latentd.engine.checkpoint import Checkpoint, CheckpointError, restore
from latentd.offline.build import build_engine
from latentd.offline.loop import RenderedFile, file_format, render_to_file
from latentd.recording.session import COMMANDS_FILE, config_hash, read_command_log, sha256_file
from latentd.recording.session_file import SessionFileError, SessionInfo, SessionStatic


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


@dataclass(frozen=True)
class _Plan:
    """What to render: from which checkpoint (None: block 0), which frames, and what to say about it."""

    checkpoint: Checkpoint | None
    start_frame: int  # from the session's first frame
    frames: int
    warnings: tuple[str, ...]


def _load_checkpoint(folder: Path, name: str) -> Checkpoint:
    path = folder / name
    try:
        return Checkpoint.loads(path.read_bytes())
    except OSError as exc:
        raise ReplayError(f"{path}: cannot read the checkpoint: {exc.strerror or exc}") from exc
    except CheckpointError as exc:
        raise ReplayError(f"{path}: {exc}") from exc


def _runs(session: SessionInfo) -> list[list[int]]:
    """The session's segments in runs that join without a gap (a pause starts a new run)."""
    runs: list[list[int]] = []
    for i, seg in enumerate(session.segments):
        prev = session.segments[i - 1] if i else None
        if prev is None or seg.start_frame != prev.start_frame + prev.frames:
            runs.append([i])
        else:
            runs[-1].append(i)
    return runs


def _frames_of(folder: Path, session: SessionInfo, index: int) -> int:
    seg = session.segments[index]
    path = folder / seg.file
    return _readable_frames(path) if path.exists() else seg.frames


def _plans(folder: Path, session: SessionInfo, segment: int | None) -> list[_Plan]:
    """What to render, run by run: one plan for a segment, one per run of joined segments otherwise."""
    segments = session.segments
    if segment is not None and not 0 <= segment < len(segments):
        have = f"0..{len(segments) - 1}" if segments else "none"
        raise ReplayError(f"{folder}: no segment {segment}; the session has segments {have}")
    if not any(s.checkpoint for s in segments):  # recorded before checkpoints: from block 0
        if segment is not None:
            seg = segments[segment]
            return [_Plan(None, seg.start_frame, _frames_of(folder, session, segment), ())]
        if session.stop_block is not None:
            frames = (session.stop_block - session.start_block) * session.static.blocksize
        else:  # the process died: render what the files hold
            frames = session_frames(folder, session)
        return [_Plan(None, 0, frames, ())]
    runs = _runs(session)
    if segment is not None:
        run = next(r for r in runs if segment in r)
        seg = segments[segment]
        return [
            _plan(folder, session, run[0], segment, seg.start_frame, _frames_of(folder, session, segment))
        ]
    plans = []
    for run in runs:
        first = segments[run[0]]
        if len(runs) == 1 and session.stop_block is not None:  # dropped blocks are rendered too
            end = (session.stop_block - session.start_block) * session.static.blocksize
        else:
            end = segments[run[-1]].start_frame + _frames_of(folder, session, run[-1])
        plans.append(_plan(folder, session, run[0], run[0], first.start_frame, end - first.start_frame))
    if len(runs) > 1:
        gaps = len(runs) - 1
        plans[0] = dataclasses.replace(
            plans[0],
            warnings=(
                *plans[0].warnings,
                f"recording was paused {gaps} time(s): the replay, like the files, leaves the paused "
                "spans out (each part after a pause starts from its own checkpoint)",
            ),
        )
    return plans


def _plan(folder: Path, session: SessionInfo, first: int, index: int, start_frame: int, frames: int) -> _Plan:
    """The checkpoint segment ``index`` starts from: its own, or the nearest earlier exact one of its run.

    A run starts after a pause (the commands applied while paused are in no log): ``first`` is its
    first segment, and no checkpoint before it is used.
    """
    segments = session.segments
    target = session.start_block + start_frame // session.static.blocksize
    warnings: list[str] = []
    fallback: Checkpoint | None = None
    for k in range(index, first - 1, -1):
        name = segments[k].checkpoint
        if not name:
            continue
        checkpoint = _load_checkpoint(folder, name)
        if checkpoint.block > target:
            continue
        if checkpoint.exact:
            if k != index:
                warnings.append(
                    f"segment {index} is rendered from the checkpoint of segment {k} (block "
                    f"{checkpoint.block}): {_why_not(folder, segments[index].checkpoint)}"
                )
            return _Plan(checkpoint, start_frame, frames, tuple(warnings))
        fallback = fallback or checkpoint
    if fallback is None:
        raise ReplayError(
            f"{folder}: segment {index} has no checkpoint to start from (nor one since the last pause)"
        )
    warnings.append(
        "no exact checkpoint to start from; the replay may differ: " + "; ".join(fallback.inexact)
    )
    return _Plan(fallback, start_frame, frames, tuple(warnings))


def _why_not(folder: Path, name: str | None) -> str:
    if not name:
        return "it has no checkpoint of its own"
    return "its own cannot be restored exactly (" + "; ".join(_load_checkpoint(folder, name).inexact) + ")"


def replay(
    folder: Path, output: Path, config_path: Path | None = None, segment: int | None = None
) -> ReplayResult:
    """Re-render the session in ``folder`` (or only its segment ``segment``) into ``output``.

    See the module docstring.

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
    if recorded.decode_threads > 1:
        warnings.append(
            f"the session decoded its models in parallel (decode_threads {recorded.decode_threads}): "
            "the noise of models that draw random numbers inside decode (RAVE v2, vschaos2) will differ"
        )
    plans = _plans(folder, session, segment)
    for plan in plans:
        warnings.extend(plan.warnings)
    by_block = _commands(folder)
    if len(plans) == 1:
        rendered = _render(config, recorded, session, plans[0], by_block, output)
        return ReplayResult(
            output, rendered.frames, rendered.samplerate, rendered.n_channels, tuple(warnings)
        )
    # Parts after pauses: each rendered from its own checkpoint, then joined in the output file.
    parts = [output.with_name(f".{output.stem}.part{i}{output.suffix}") for i in range(len(plans))]
    try:
        results = [
            _render(config, recorded, session, p, by_block, part)
            for p, part in zip(plans, parts, strict=True)
        ]
        frames = sum(r.frames for r in results)
        fmt, subtype = file_format(output, results[0].n_channels, frames)
        with sf.SoundFile(
            output, "w", results[0].samplerate, results[0].n_channels, subtype, format=fmt
        ) as out:
            for part in parts:
                with sf.SoundFile(part) as f:
                    while len(block := f.read(65536, dtype="float32", always_2d=True)):
                        out.write(block)
    finally:
        for part in parts:
            part.unlink(missing_ok=True)
    return ReplayResult(output, frames, results[0].samplerate, results[0].n_channels, tuple(warnings))


def _render(
    config: Config,
    recorded: SessionStatic,
    session: SessionInfo,
    plan: _Plan,
    by_block: dict[int, list[c.Command]],
    output: Path,
) -> RenderedFile:
    """Build the engine as it played, restore the plan's checkpoint and render the plan's frames."""
    # live_loads=False: model swaps land at their logged block (loaded synchronously there).
    engine = build_engine(
        config,
        seed=recorded.seed,
        fade_in_s=recorded.fade_in_s,
        live_loads=False,
        torch_threads=recorded.torch_threads or config.venue.audio.torch_threads,  # 0: not recorded
        call_shapes=recorded.call_shapes,  # the shapes measured live, not measured again
        decode_threads=recorded.decode_threads,  # parallel decode prepares calls one call ahead
    )
    # Recording commands were applied live; accept them here too so the engine's state matches.
    engine.handlers[c.StartRecording] = lambda cmd: None
    engine.handlers[c.StopRecording] = lambda cmd: None
    engine.handlers[c.SnapshotPiece] = lambda cmd: None  # a file written live, not sound
    if plan.checkpoint is not None:
        try:
            restore(engine, plan.checkpoint)
        except CheckpointError as exc:
            raise ReplayError(f"{exc}") from exc
    first = engine.counters.blocks  # a checkpoint holds the commands of its own block

    def submit_logged(block: int) -> None:
        if block > first or plan.checkpoint is None:
            for cmd in by_block.get(block, ()):
                engine.submit(cmd)

    blocksize = engine.blocksize
    return render_to_file(
        engine,
        output,
        stop_block=session.start_block + math.ceil((plan.start_frame + plan.frames) / blocksize),
        start_block=session.start_block + plan.start_frame // blocksize,
        skip_frames=plan.start_frame % blocksize,
        frames=plan.frames,
        before_block=submit_logged,
    )
