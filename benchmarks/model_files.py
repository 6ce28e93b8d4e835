"""The model files of the real-model benchmarks: where each is found, built, or why it is skipped."""

from __future__ import annotations

import os
import subprocess
from collections.abc import Sequence
from pathlib import Path

from benchmarks.common import CACHE_DIR, RAVE_PATH, ROOT, BenchModel

BENCH_DIR = Path(os.environ.get("LATENTD_BENCH_MODELS", Path.home() / ".cache" / "latentd-bench"))
BUILD_SCRIPT = (ROOT / ".." / "shared" / "tools" / "build-rave-v2.sh").resolve()
CAPACITIES = (96, 128)
VSCHAOS2_SR = 44100  # the rate vschaos2 models are trained at; their files do not say it
VSCHAOS2_CONDITIONING = {"pitch": 3.0, "octave": 4.0}
MODEL_NAMES = ("rave-v2-c96", "rave-v2-c128", "vschaos2", "rave-v2small-c16")


def rave_v2_path(capacity: int, bench_dir: Path = BENCH_DIR) -> Path:
    """Where the full-size RAVE v2 streaming export of ``capacity`` is looked for."""
    return bench_dir / f"rave-v2-c{capacity}_streaming.ts"


def build_command(capacities: Sequence[int], bench_dir: Path = BENCH_DIR) -> str:
    """The shell command that builds the missing full-size exports."""
    return f"bash {BUILD_SCRIPT} {bench_dir} {' '.join(str(c) for c in capacities)}"


def build_rave(capacities: Sequence[int], bench_dir: Path = BENCH_DIR) -> None:
    """Build full-size RAVE v2 exports with RAVE's own tools (minutes of CPU, GBs of RAM and disk).

    Raises:
        FileNotFoundError: the build script is not beside the project.
        subprocess.CalledProcessError: the build failed (its output went to the terminal).
    """
    if not BUILD_SCRIPT.is_file():
        raise FileNotFoundError(f"{BUILD_SCRIPT}: the RAVE v2 build script is not beside the project")
    subprocess.run(["bash", str(BUILD_SCRIPT), str(bench_dir), *map(str, capacities)], check=True)


def vschaos2_model(notes: list[str]) -> BenchModel | None:
    """The vschaos2 stand-in, built afresh into ``.cache/benchmarks`` (its piece names a sample rate)."""
    try:
        from latentd.modelkit.vschaos2 import build_vschaos2_standin
    except ImportError as exc:  # nn-tilde is a development dependency
        notes.append(f"vschaos2: stand-in not built ({exc}); install nn-tilde (`make` installs it)")
        return None
    path = build_vschaos2_standin(CACHE_DIR / "vschaos2-standin.ts")
    return BenchModel(
        "vschaos2",
        path,
        model_table={"samplerate": VSCHAOS2_SR},
        voice_table={"conditioning": dict(VSCHAOS2_CONDITIONING)},
    )


def find_models(names: Sequence[str], notes: list[str], bench_dir: Path = BENCH_DIR) -> list[BenchModel]:
    """The named models that are here, in ``MODEL_NAMES`` order; a note for each one that is not."""
    models: list[BenchModel] = []
    for name in (n for n in MODEL_NAMES if n in names):
        if name.startswith("rave-v2-c"):
            capacity = int(name.removeprefix("rave-v2-c"))
            path = rave_v2_path(capacity, bench_dir)
            if path.is_file():
                models.append(BenchModel(name, path))
            else:
                notes.append(
                    f"{name} skipped: {path} not found; build it with "
                    f"`{build_command([capacity], bench_dir)}` (about 4 min of CPU and 4 GB of RAM) "
                    "or `make bench BUILD_RAVE=1`"
                )
        elif name == "vschaos2":
            model = vschaos2_model(notes)
            if model is not None:
                models.append(model)
        elif RAVE_PATH.is_file():
            models.append(BenchModel(name, RAVE_PATH))
        else:
            notes.append(
                f"{name} skipped: {RAVE_PATH} not found (the shared models folder beside the project)"
            )
    return models
