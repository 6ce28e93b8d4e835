"""What the benchmarks share: the models they decode, pieces written as real TOML, timing and result files."""

from __future__ import annotations

import itertools
import json
import os
import socket
import statistics
import sys
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from latentd.config import load_config
from latentd.engine.engine import Engine
from latentd.modelkit.builder import SynthSpec, cached_model
from latentd.offline.build import build_engine
from tests.pieces import write_piece

ROOT = Path(__file__).resolve().parents[1]
RESULTS_DIR = ROOT / "benchmarks" / "results"
CACHE_DIR = ROOT / ".cache" / "benchmarks"
RAVE_PATH = (ROOT / ".." / "shared" / "models" / "rave-v2small-c16_streaming.ts").resolve()
DEMO_CONFIG = ROOT / "configs" / "demo.toml"

# A builder model that costs about what a full RAVE v2 decoder costs: `python -m benchmarks.reference`
# times RAVE v2's generator shapes (capacity 96, ratios 4·4·4·2) at ~0.21 s per second of audio on one
# thread here, and the builder's stack at hidden=256 at ~0.20 s (hidden=192: 0.08 s, 320: 0.25 s).
V2_HIDDEN = 256
V2_LIKE = SynthSpec(latent_size=16, ratio=2048, sr=44100, n_channels=1, hidden=V2_HIDDEN, seed=7)
# The second model of the mixed section when the real RAVE export is absent: other ratio and rate.
SMALL_LIKE = SynthSpec(latent_size=8, ratio=512, sr=48000, n_channels=2, hidden=96, seed=8)


@dataclass(frozen=True)
class BenchModel:
    """A model a benchmark decodes: a name for tables, its file, and what its piece must say about it.

    Attributes:
        name: the model's name in tables.
        path: its ``.ts`` file.
        model_table: more keys of its ``[models.<name>]`` table (e.g. ``samplerate`` for a model that
            declares none).
        voice_table: more keys of each of its voices (e.g. ``conditioning`` for a conditioned model).
    """

    name: str
    path: Path
    model_table: dict[str, Any] = field(default_factory=dict)
    voice_table: dict[str, Any] = field(default_factory=dict)


def v2_like() -> BenchModel:
    """The builder model sized like a full RAVE v2 decoder (built once, cached in ``.cache/benchmarks``)."""
    return BenchModel(f"builder-v2like-h{V2_HIDDEN}", cached_model(V2_LIKE, CACHE_DIR))


def rave() -> BenchModel | None:
    """The shared real RAVE v2_small streaming export, or None when it is not beside the project."""
    return BenchModel("rave-v2small-c16", RAVE_PATH) if RAVE_PATH.is_file() else None


def second_model() -> BenchModel:
    """The second model of mixed sections: the real RAVE export if present, else a smaller builder model."""
    return rave() or BenchModel("builder-small-h96", cached_model(SMALL_LIKE, CACHE_DIR))


def voice(model: str, index: int) -> dict[str, Any]:
    """A voice that exercises the whole engine: a random walk, gain, and panning that rotates."""
    return {
        "model": model,
        "gain": 0.3,
        "source": {"kind": "walk", "step_std": 0.4, "pull": 0.2, "smooth_s": 0.3},
        "pan": {"azimuth_deg": float(45 * index % 360), "spread_deg": 30.0, "rotate_deg_s": 10.0},
    }


def make_engine(
    root: Path,
    models: Sequence[BenchModel],
    counts: Sequence[int],
    *,
    threads: int = 1,
    frames_per_call: int = 8,
    samplerate: int = 48000,
    blocksize: int = 256,
    audio: dict[str, Any] | None = None,
) -> Engine:
    """An engine playing ``counts[i]`` voices of ``models[i]`` on an octophonic ring, models warmed up.

    The piece is written as real TOML into ``root`` and loaded the way ``latentd run`` loads it; ``audio``
    adds keys to the venue's ``[audio]`` table (e.g. ``decode_threads``).
    """
    names = [f"m{i}" for i in range(len(models))]
    voices: dict[str, dict[str, Any]] = {}
    for name, model, count in zip(names, models, counts, strict=True):
        for k in range(count):
            voices[f"{name}v{k}"] = {**voice(name, len(voices)), **model.voice_table}
    tables = {n: {"path": str(m.path), **m.model_table} for n, m in zip(names, models, strict=True)}
    config_path = write_piece(
        root,
        models={n: m.path for n, m in zip(names, models, strict=True)},
        voices=voices,
        extra_piece={"models": tables},
        audio={
            "samplerate": samplerate,
            "blocksize": blocksize,
            "layout": "octo",
            "frames_per_call": frames_per_call,
            "torch_threads": threads,
            **(audio or {}),
        },
        output={"dc_block_hz": 5.0, "ceiling_db": -1.0},
    )
    return build_engine(load_config(config_path), fade_in_s=0.0)


def run_blocks(engine: Engine, seconds: float) -> float:
    """Produce ``seconds`` of master blocks; return the wall time it took."""
    blocks = max(1, round(seconds * engine.samplerate / engine.blocksize))
    start = time.perf_counter()
    for _ in range(blocks):
        engine.next_block()
    return time.perf_counter() - start


def audio_seconds(engine: Engine, seconds: float) -> float:
    """The audio length ``run_blocks(engine, seconds)`` really produces (whole blocks)."""
    blocks = max(1, round(seconds * engine.samplerate / engine.blocksize))
    return blocks * engine.blocksize / engine.samplerate


def max_voices(rtf_of: Callable[[int], float], cap: int, goal: float) -> tuple[int, dict[int, float]]:
    """Largest n in 1..cap with ``rtf_of(n) >= goal`` (doubling, then bisection), and every point measured.

    0 when even one voice falls short.
    """
    points: dict[int, float] = {}
    n, ok = 1, 0
    while n <= cap:
        points[n] = rtf_of(n)
        if points[n] < goal:
            break
        ok, n = n, n * 2
    low, high = ok, min(n, cap + 1)
    while high - low > 1:
        mid = (low + high) // 2
        points[mid] = rtf_of(mid)
        low, high = (mid, high) if points[mid] >= goal else (low, mid)
    return low, points


def median_time(fn: Callable[[], Any], repeats: int) -> float:
    """Median wall time of ``fn()`` over ``repeats`` calls."""
    times = []
    for _ in range(max(1, repeats)):
        start = time.perf_counter()
        fn()
        times.append(time.perf_counter() - start)
    return statistics.median(times)


def rss_mb() -> float:
    """Resident set size of this process in MiB (Linux ``/proc/self/status``)."""
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) / 1024.0
    raise RuntimeError("VmRSS not found in /proc/self/status (the memory benchmark needs Linux)")


def machine() -> dict[str, Any]:
    """What the figures were measured on."""
    import torch

    model = next(
        (
            ln.split(":", 1)[1].strip()
            for ln in Path("/proc/cpuinfo").read_text().splitlines()
            if "model name" in ln
        ),
        "unknown",
    )
    return {
        "cpu": model,
        "cores": os.cpu_count(),
        "load_avg_1min": os.getloadavg()[0],
        "python": sys.version.split()[0],
        "torch": torch.__version__,
        "numpy": np.__version__,
    }


def write_result(name: str, data: dict[str, Any], results_dir: Path = RESULTS_DIR) -> Path:
    """Write ``<results_dir>/<name>.json`` (with the machine and time of the run) and return its path."""
    results_dir.mkdir(parents=True, exist_ok=True)
    path = results_dir / f"{name}.json"
    payload = {"benchmark": name, "time": time.strftime("%Y-%m-%dT%H:%M:%S%z"), "machine": machine(), **data}
    path.write_text(json.dumps(payload, indent=2, default=str) + "\n")
    return path


def table(headers: Sequence[str], rows: Sequence[Sequence[Any]]) -> str:
    """A plain-text table, columns padded to their widest cell."""
    cells = [[str(h) for h in headers]] + [[_cell(v) for v in row] for row in rows]
    widths = [max(len(r[i]) for r in cells) for i in range(len(headers))]
    lines = ["  ".join(c.ljust(w) for c, w in zip(r, widths, strict=True)).rstrip() for r in cells]
    lines.insert(1, "  ".join("-" * w for w in widths))
    return "\n".join(lines)


def markdown_table(headers: Sequence[str], rows: Sequence[Sequence[Any]]) -> str:
    """The same table as :func:`table`, in Markdown (for README)."""
    lines = ["| " + " | ".join(str(h) for h in headers) + " |", "|" + "---|" * len(headers)]
    lines += ["| " + " | ".join(_cell(v) for v in row) + " |" for row in rows]
    return "\n".join(lines)


def _cell(value: Any) -> str:
    if isinstance(value, float):
        return f"{value:.3g}" if abs(value) < 1000 else f"{value:.0f}"
    return str(value)


def ensure_demo_models() -> None:
    """Build the demo piece's models if they are missing or stale (what ``make demo-models`` does)."""
    from latentd.modelkit.builder import build_demo_models

    build_demo_models(ROOT / "installation" / "demo" / "models")


def read_events(path: Path) -> list[dict[str, Any]]:
    """The JSON lines of a daemon log (other lines, e.g. jackd's client library, are skipped)."""
    events = []
    for line in path.read_text(errors="replace").splitlines():
        line = line.strip()
        if line.startswith("{"):
            try:
                events.append(json.loads(line))
            except json.JSONDecodeError:
                continue
    return events


def free_udp_port() -> int:
    """A UDP port on 127.0.0.1 that was free a moment ago (the OS picks it)."""
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def write_live_config(
    root: Path,
    *,
    server_name: str,
    client_name: str,
    playback_ports: Sequence[str] = (),
    extra: dict[str, Any] | None = None,
) -> Path:
    """A copy of the demo venue config that plays on an existing JACK server, logging JSON lines.

    Args:
        root: Folder for ``venue.toml``.
        server_name: The private jackd to join (the config does not start its own).
        client_name: JACK client name of the daemon.
        playback_ports: Ports to connect to, one per speaker; empty means ``system:playback_*``.
        extra: More top-level tables to merge in (e.g. ``{"osc": {...}}``).

    The OSC port is a free one, the state file and recordings are in ``root``, unless ``extra`` says
    otherwise.
    """
    import tomllib

    from tests.pieces import to_toml

    ensure_demo_models()
    venue = tomllib.loads(DEMO_CONFIG.read_text())
    venue["piece"] = str((DEMO_CONFIG.parent / venue["piece"]).resolve())
    venue["output"]["render_dir"] = str(root / "renders")
    venue["jack"] = {
        "client_name": client_name,
        "server_name": server_name,
        "start_server": False,
        "autoconnect": True,
        "playback_ports": list(playback_ports),
    }
    venue["logging"] = {"level": "info", "format": "json"}
    # Nothing fixed, nothing outside root: a free OSC port (the demo's 9000 may be taken), and the state
    # file and recordings in root (the demo's are beside the checkout).
    venue["osc"] = {**venue.get("osc", {}), "port": free_udp_port()}
    state_file = str(root / "state" / "latentd-state.json")
    venue["schedule"] = {**venue.get("schedule", {}), "state_file": state_file}
    venue["recording"] = {**venue.get("recording", {}), "folder": str(root / "recordings")}
    for key, table in (extra or {}).items():
        venue[key] = {**venue.get(key, {}), **table}
    root.mkdir(parents=True, exist_ok=True)
    path = root / "venue.toml"
    path.write_text(to_toml(venue))
    return path


class Workdir:
    """Fresh sub-folders of one temporary folder, one per piece or engine written."""

    def __init__(self, root: Path) -> None:
        self.root = root
        self._count = itertools.count()

    def new(self) -> Path:
        path = self.root / f"w{next(self._count)}"
        path.mkdir(parents=True)
        return path
