"""Shared fixtures.

Model building: ``model_factory`` (small synth models in the nn~ format, built once per spec per session),
``demo_models`` (the demo piece's models), ``vschaos2_model`` (a stand-in with vschaos2's interface) and
``shared_models_dir`` (real RAVE exports beside the project, skipped when absent).
"""

from collections.abc import Callable, Iterator
from pathlib import Path

import pytest
import structlog

from latentd.modelkit.builder import DEMO_MODELS, SynthSpec, build_demo_models, cached_model

# Real RAVE exports live beside the project (../shared/models from the project root), not in it.
SHARED_MODELS_DIR = Path(__file__).resolve().parents[1] / ".." / "shared" / "models"


@pytest.fixture(scope="session")
def model_factory(tmp_path_factory: pytest.TempPathFactory) -> Callable[[SynthSpec], Path]:
    """A function ``(spec) -> Path`` building each spec's model once per session."""
    cache_dir = tmp_path_factory.mktemp("models")

    def make(spec: SynthSpec) -> Path:
        return cached_model(spec, cache_dir)

    return make


@pytest.fixture(scope="session")
def demo_models(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    """The demo piece's models by name (``DEMO_MODELS``), written once per session."""
    folder = tmp_path_factory.mktemp("demo-models")
    paths = build_demo_models(folder)
    return dict(zip(DEMO_MODELS, paths, strict=True))


@pytest.fixture(scope="session")
def vschaos2_model(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A vschaos2 stand-in (``latentd.modelkit.vschaos2``: 8 latent dims, pitch, octave), built once."""
    # Imported here: it needs nn-tilde, a development dependency most tests never touch.
    from latentd.modelkit.vschaos2 import build_vschaos2_standin

    return build_vschaos2_standin(tmp_path_factory.mktemp("vschaos2") / "vschaos2-standin.ts")


@pytest.fixture(scope="session")
def shared_models_dir() -> Path:
    """The folder of real RAVE exports; the test is skipped when it is absent (a clone elsewhere)."""
    folder = SHARED_MODELS_DIR.resolve()
    if not (folder / "rave-v2small-c16_streaming.ts").is_file():
        pytest.skip(f"real RAVE exports not found in {folder} (they live beside the project, not in it)")
    return folder


@pytest.fixture(autouse=True)
def _structlog_defaults() -> Iterator[None]:
    """Commands under test configure logging for the process; give every test structlog's defaults back."""
    yield
    structlog.reset_defaults()
