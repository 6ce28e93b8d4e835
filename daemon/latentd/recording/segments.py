"""A session's audio files: contiguous segments, rotated every ``segment_s`` (and below 4 GiB for WAV).

Runs in the recorder's writer thread only. Formats: W64 by default (libsndfile and sox read a killed W64
to its last write), RF64/WAV with libsndfile's automatic header updates, FLAC closed by
``latentd recover``.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import soundfile as sf
import structlog

from latentd.atomic import fsync_dir
from latentd.audiofile import set_header_auto, wav_max_frames
from latentd.recording.config import RecordingConfig
from latentd.recording.session_file import SegmentInfo

log = structlog.get_logger("latentd.recorder")

FORMATS = {
    "w64": ("W64", ".w64"),
    "rf64": ("RF64", ".wav"),
    "wav": ("WAV", ".wav"),
    "flac": ("FLAC", ".flac"),
}
SUBTYPES = {"float32": ("FLOAT", 4), "pcm24": ("PCM_24", 3)}
WRITE_ERRORS: tuple[type[BaseException], ...] = (OSError, sf.SoundFileError, RuntimeError)  # a full disk


def segment_frames(config: RecordingConfig, samplerate: int, blocksize: int, n_channels: int) -> int:
    """Frames per segment: ``segment_s``, and below 4 GiB (ending on a block boundary) for WAV."""
    frames = max(1, round(config.segment_s * samplerate))
    if config.format == "wav":
        frames = min(frames, wav_max_frames(n_channels, SUBTYPES[config.subtype][1], blocksize))
    return frames


@dataclass
class Segment:
    """One audio file of a session, open while it is the one being written.

    ``start_block`` is the engine block holding its first frame; ``checkpoint`` names the file with the
    engine's state before that block (None until the recorder has written it).
    """

    path: Path
    start_block: int
    start_frame: int  # from the session's first sample
    file: sf.SoundFile | None
    frames: int = 0
    checkpoint: str | None = None

    def info(self) -> SegmentInfo:
        """As recorded in ``session.json``."""
        return SegmentInfo(self.path.name, self.start_block, self.start_frame, self.frames, self.checkpoint)


class SegmentFiles:
    """The audio segments of one session folder, written frame-exact across rotations.

    Args:
        config: The ``[recording]`` section (format, subtype, segment length).
        folder: The session folder.
        base: The file name stem; segment ``n`` is ``<base>_<nnn><ext>``.
        samplerate: Frames per second.
        blocksize: Frames per engine block (WAV segments end on a block boundary).
        n_channels: Channels per frame.
    """

    def __init__(
        self,
        config: RecordingConfig,
        folder: Path,
        base: str,
        *,
        samplerate: int,
        blocksize: int,
        n_channels: int,
    ) -> None:
        self.folder = folder
        self.base = base
        self.samplerate = samplerate
        self.n_channels = n_channels
        self.segments: list[Segment] = []
        self._format, self._ext = FORMATS[config.format]
        self._subtype = SUBTYPES[config.subtype][0]
        self.segment_frames = segment_frames(config, samplerate, blocksize, n_channels)

    @property
    def current(self) -> Segment | None:
        """The segment being written, or None (closed: paused, or before the first)."""
        seg = self.segments[-1] if self.segments else None
        return seg if seg is not None and seg.file is not None else None

    @property
    def frames(self) -> int:
        """Frames written to every segment so far."""
        return sum(s.frames for s in self.segments)

    def open(self, block: int, start_frame: int) -> Segment:
        """Open the next segment; it starts at engine block ``block`` and frame ``start_frame``.

        Raises:
            OSError, soundfile.SoundFileError, RuntimeError: the file cannot be made (no segment is added).
        """
        path = self.folder / f"{self.base}_{len(self.segments):03d}{self._ext}"
        f = sf.SoundFile(
            path, "w", self.samplerate, self.n_channels, subtype=self._subtype, format=self._format
        )
        if self._format in ("WAV", "RF64"):
            set_header_auto(f)
        segment = Segment(path, block, start_frame, f)
        self.segments.append(segment)
        fsync_dir(self.folder)
        return segment

    def close(self, quiet: bool = False) -> None:
        """Close the current segment, if one is open (the file is as good as it gets).

        An error is logged, unless ``quiet`` (a write error has paused recording and said why).
        """
        seg = self.current
        if seg is not None and seg.file is not None:
            try:
                seg.file.close()
            except WRITE_ERRORS as exc:
                if not quiet:
                    log.error("recording.close_failed", file=str(seg.path), error=str(exc))
            seg.file = None

    def settle(self) -> None:
        """After a write error: close the last segment and count the frames its file really holds.

        A write the disk refused part-way may have left part of a block; what reads back is what the
        segment holds (``session.json`` must not claim more, or less).
        """
        self.close(quiet=True)
        if not self.segments:
            return
        seg = self.segments[-1]
        try:
            with sf.SoundFile(seg.path) as f:
                n = 0
                while True:
                    got = len(f.read(65536, dtype="float32", always_2d=True))
                    if got == 0:
                        break
                    n += got
        except (sf.LibsndfileError, RuntimeError, OSError):
            return  # unreadable: keep the count of the writes that succeeded
        seg.frames = n

    def write(self, index: int, frames: np.ndarray, rotated: Callable[[], None]) -> None:
        """Append ``frames`` (frames × channels) of engine block ``index``; rotate exactly at the boundary.

        Args:
            index: The engine block the frames belong to (a segment opened inside it starts there).
            frames: The audio, frames × channels.
            rotated: Called after each rotation (the session then saves its latents and session file).

        Raises:
            OSError, soundfile.SoundFileError, RuntimeError: the disk refused the write.
        """
        done = 0
        while done < frames.shape[0]:
            seg = self.current
            assert seg is not None and seg.file is not None
            take = min(frames.shape[0] - done, self.segment_frames - seg.frames)
            seg.file.write(frames[done : done + take])
            seg.frames += take
            done += take
            if seg.frames >= self.segment_frames:
                # Rotate exactly at the boundary, even inside a block: segments stay contiguous. A
                # boundary at the block's end starts the next segment with the next block.
                self.close()
                self.open(index if done < frames.shape[0] else index + 1, seg.start_frame + seg.frames)
                rotated()

    def sync(self) -> None:
        """Push the current segment to the disk (``sf_write_sync``: fsync of the file and its header)."""
        seg = self.current
        if seg is not None and seg.file is not None:
            seg.file.flush()
