"""What the soak benchmark measures and breaks: process figures, a recording disk, segments, the daemon's log.

Used by ``benchmarks.soak``: resident memory and open files of a process and its engine child (from
``/proc``), a tmpfs for the recordings and a ballast file that fills it, every segment read back and some
replayed with ``latentd replay --segment N``, and the daemon's JSON log lines split into what happened
during a JACK outage and what happened outside one.
"""

from __future__ import annotations

import datetime as dt
import json
import os
import subprocess
import sys
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import soundfile as sf

LATENTD = Path(sys.executable).with_name("latentd")
CHUNK_FRAMES = 1 << 16
OUTAGE_GRACE_S = 2.0  # after jack.reconnected: the new client's first cycles still belong to the outage


# ---------------------------------------------------------------------------------------------- processes
def rss_mib(pid: int) -> float | None:
    """Resident memory of ``pid`` in MiB, None when the process is gone."""
    try:
        for line in Path(f"/proc/{pid}/status").read_text().splitlines():
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) / 1024.0
    except OSError:
        return None
    return None


def open_fds(pid: int) -> int | None:
    """Open file descriptors of ``pid``, None when the process is gone."""
    try:
        return len(os.listdir(f"/proc/{pid}/fd"))
    except OSError:
        return None


def engine_child(pid: int) -> int | None:
    """The engine process ``latentd run`` started (its multiprocessing child that is not the tracker)."""
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            stat = (entry / "stat").read_text()
            cmdline = (entry / "cmdline").read_bytes().replace(b"\0", b" ").decode(errors="replace")
        except OSError:
            continue
        ppid = int(stat.rsplit(")", 1)[1].split()[1])
        if ppid == pid and "multiprocessing.spawn" in cmdline:
            return int(entry.name)
    return None


def slope_per_hour(times_s: Sequence[float], values: Sequence[float]) -> float | None:
    """Least-squares slope of ``values`` against ``times_s``, per hour; None with fewer than 3 points."""
    if len(times_s) < 3 or max(times_s) - min(times_s) <= 0:
        return None
    return float(np.polyfit(np.asarray(times_s), np.asarray(values), 1)[0] * 3600.0)


def series(samples: Sequence[dict[str, Any]], key: str) -> dict[str, Any]:
    """Start, end, min, max and slope per hour of one sampled figure (samples hold ``t`` and ``key``)."""
    points = [(s["t"], s[key]) for s in samples if s.get(key) is not None]
    if not points:
        return {"start": None, "end": None, "min": None, "max": None, "per_hour": None}
    ts, vs = zip(*points, strict=True)
    return {
        "start": vs[0],
        "end": vs[-1],
        "min": min(vs),
        "max": max(vs),
        "per_hour": slope_per_hour(ts, vs),
    }


# ------------------------------------------------------------------------------------------ the disk
def mount_tmpfs(path: Path, size_bytes: int) -> str | None:
    """Mount a tmpfs of ``size_bytes`` at ``path``; None on success, else why it could not."""
    path.mkdir(parents=True, exist_ok=True)
    size_mib = max(16, size_bytes // 2**20)
    try:
        done = subprocess.run(
            ["mount", "-t", "tmpfs", "-o", f"size={size_mib}m,mode=0755", "tmpfs", str(path)],
            capture_output=True,
            text=True,
            timeout=30,
        )
    except (OSError, subprocess.TimeoutExpired) as exc:
        return f"mount failed: {exc}"
    if done.returncode != 0:
        return f"mount -t tmpfs failed (exit {done.returncode}): {done.stderr.strip()}"
    return None


def unmount(path: Path) -> None:
    """Unmount ``path`` (lazily: a file still open there does not keep the memory forever)."""
    subprocess.run(["umount", "-l", str(path)], capture_output=True, timeout=30, check=False)


def fill_disk(path: Path) -> int:
    """Write ``path`` until the file system is full; return the bytes written."""
    chunk = b"\0" * (4 << 20)
    written = 0
    with path.open("wb", buffering=0) as f:
        while True:
            try:
                written += f.write(chunk)
            except OSError:
                # The last partial chunk may still fit: fill the last bytes too.
                small = b"\0" * 4096
                try:
                    while True:
                        written += f.write(small)
                except OSError:
                    return written


def free_bytes(path: Path) -> int:
    """Free bytes of the file system holding ``path``."""
    st = os.statvfs(path)
    return st.f_bavail * st.f_frsize


# ------------------------------------------------------------------------------------------ segments
@dataclass(frozen=True)
class SegmentCheck:
    """One audio segment read back."""

    session: str
    index: int
    file: str
    frames: int
    frames_in_session_json: int | None
    readable: bool
    finite: bool
    error: str = ""


def segment_index(path: Path) -> int:
    """N of a ``..._NNN.w64`` segment file."""
    return int(path.stem.rsplit("_", 1)[1])


def audio_segments(session: Path) -> list[Path]:
    """The session's audio segments in order (not the latent files)."""
    files = [
        p
        for p in session.iterdir()
        if p.suffix in (".w64", ".wav", ".flac") and not p.stem.endswith("_latents")
        if p.stem.rsplit("_", 1)[-1].isdigit()
    ]
    return sorted(files, key=segment_index)


def check_segments(session: Path) -> list[SegmentCheck]:
    """Read every segment of ``session`` to its end; frames against ``session.json``, all samples finite."""
    info = json.loads((session / "session.json").read_text())
    declared = {s["file"]: int(s["frames"]) for s in info.get("segments", [])}
    out = []
    for path in audio_segments(session):
        frames, finite, error = 0, True, ""
        try:
            with sf.SoundFile(path) as f:
                for block in f.blocks(blocksize=CHUNK_FRAMES, dtype="float32", always_2d=True):
                    frames += block.shape[0]
                    finite = finite and bool(np.isfinite(block).all())
            readable = True
        except (sf.SoundFileError, RuntimeError, OSError) as exc:
            readable, error = False, str(exc)
        out.append(
            SegmentCheck(
                session.name,
                segment_index(path),
                path.name,
                frames,
                declared.get(path.name),
                readable,
                finite,
                error,
            )
        )
    return out


def segments_after_gap(session: Path) -> list[int]:
    """Indices of the segments that begin after a gap in the recording (a pause), from ``session.json``."""
    info = json.loads((session / "session.json").read_text())
    segs, blocksize = info.get("segments", []), int(info["blocksize"])
    return [
        i
        for i in range(1, len(segs))
        if segs[i]["frames"] > 0
        and segs[i]["start_block"] * blocksize
        > segs[i - 1]["start_block"] * blocksize + segs[i - 1]["frames"]
    ]


def replay_segment(session: Path, index: int, output: Path, timeout_s: float) -> dict[str, Any]:
    """``latentd replay SESSION --segment N``, compared sample for sample with the recorded segment."""
    recorded = next((p for p in audio_segments(session) if segment_index(p) == index), None)
    result: dict[str, Any] = {"session": session.name, "segment": index, "exact": False}
    if recorded is None:
        result["error"] = f"no segment {index} in {session}"
        return result
    started = dt.datetime.now(dt.UTC)
    try:
        done = subprocess.run(
            [str(LATENTD), "replay", str(session), "--segment", str(index), "-o", str(output)],
            capture_output=True,
            text=True,
            timeout=timeout_s,
        )
    except subprocess.TimeoutExpired:
        result["error"] = f"latentd replay took longer than {timeout_s:g} s"
        return result
    result["replay_s"] = round((dt.datetime.now(dt.UTC) - started).total_seconds(), 1)
    result["exit_code"] = done.returncode
    result["warnings"] = [ln for ln in done.stderr.splitlines() if ln.strip()][-3:]
    if done.returncode != 0:
        result["error"] = (done.stderr or done.stdout).strip()[-500:]
        return result
    result.update(compare_files(recorded, output))
    output.unlink(missing_ok=True)
    return result


def compare_files(recorded: Path, replayed: Path) -> dict[str, Any]:
    """Frames of each, and whether the replay equals the recording sample for sample over its length."""
    frames = mismatched = 0
    max_diff = 0.0
    first: int | None = None
    with sf.SoundFile(recorded) as a, sf.SoundFile(replayed) as b:
        out: dict[str, Any] = {"recorded_frames": a.frames, "replayed_frames": b.frames}
        while True:
            x = a.read(CHUNK_FRAMES, dtype="float32", always_2d=True)
            y = b.read(x.shape[0], dtype="float32", always_2d=True)
            if x.shape[0] == 0:
                break
            if y.shape != x.shape:
                out["error"] = f"replay ends at frame {frames + y.shape[0]}, the recording goes on"
                mismatched += x.shape[0] - y.shape[0]
                break
            diff = np.abs(x - y)
            rows = np.flatnonzero(diff.max(axis=1) > 0)
            if rows.size and first is None:
                first = frames + int(rows[0])
            mismatched += int(rows.size)
            max_diff = max(max_diff, float(diff.max()))
            frames += x.shape[0]
    out.update(
        frames_compared=frames,
        frames_differing=mismatched,
        first_differing_frame=first,
        max_abs_diff=max_diff,
    )
    out["exact"] = mismatched == 0 and frames == out["recorded_frames"] and "error" not in out
    return out


# ----------------------------------------------------------------------------------------------- the log
def _ts(event: dict[str, Any]) -> float | None:
    stamp = event.get("timestamp")
    if not isinstance(stamp, str):
        return None
    return dt.datetime.fromisoformat(stamp.replace("Z", "+00:00")).timestamp()


def split_counters(events: list[dict[str, Any]], kills: Sequence[float]) -> dict[str, Any]:
    """Underruns and xruns from the 5-second ``status`` lines, split into start-up, outages and the rest.

    An outage runs from a jackd kill (wall-clock ``kills``) to the next ``jack.reconnected`` plus
    :data:`OUTAGE_GRACE_S`; an interval between two status lines that touches an outage counts there.
    """
    reconnects = sorted(
        t for e in events if e.get("event") == "jack.reconnected" and (t := _ts(e)) is not None
    )
    outages = []
    for kill in sorted(kills):
        back = next((r for r in reconnects if r >= kill), None)
        outages.append((kill - 1.0, (back if back is not None else float("inf")) + OUTAGE_GRACE_S))
    status = [(t, e) for e in events if e.get("event") == "status" and (t := _ts(e)) is not None]
    out: dict[str, Any] = {
        f"{k}_{w}": 0 for k in ("underruns", "xruns") for w in ("startup", "outages", "outside")
    }
    previous: tuple[float, dict[str, Any]] | None = None
    for t, e in status:
        for key in ("underruns", "xruns"):
            before = int(previous[1][key]) if previous is not None else 0
            delta = int(e[key]) - before
            if previous is None:
                where = "startup"
            elif any(a <= t and previous[0] <= b for a, b in outages):
                where = "outages"
            else:
                where = "outside"
            out[f"{key}_{where}"] += delta
        previous = (t, e)
    stopping = next((e for e in reversed(events) if e.get("event") == "stopping"), None)
    if stopping is not None and previous is not None:
        # The last lines between the final status line and the stop.
        for key in ("underruns", "xruns"):
            out[f"{key}_outside"] += int(stopping[key]) - int(previous[1][key])
    out["underruns"] = int(stopping["underruns"]) if stopping else None
    out["xruns"] = int(stopping["xruns"]) if stopping else None
    out["outages"] = [
        {"from": round(a, 1), "to": None if b == float("inf") else round(b, 1)} for a, b in outages
    ]
    out["reconnects"] = len(reconnects)
    return out


def count_events(events: list[dict[str, Any]], names: Sequence[str]) -> dict[str, int]:
    """How many log lines carry each of ``names`` as their event."""
    return {n: sum(1 for e in events if e.get("event") == n) for n in names}
