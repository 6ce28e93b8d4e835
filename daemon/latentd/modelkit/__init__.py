"""Small synth models in the nn~ TorchScript format, for tests, the demo piece and benchmarks."""

from latentd.modelkit.builder import (
    DEMO_MODELS,
    SynthSpec,
    build_demo_models,
    build_model,
    cached_model,
    save_model,
)

__all__ = ["DEMO_MODELS", "SynthSpec", "build_demo_models", "build_model", "cached_model", "save_model"]
