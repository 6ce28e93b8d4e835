"""Latent diffusion (RAVE-Latent-Diffusion checkpoints): items generated from seeds, and pools of them.

Needs the optional ``diffusion`` extra (``pip install 'latentd[diffusion]'``: a-unet, einops), imported
only when a model is built.
"""

from __future__ import annotations

from latentd.diffusion.adp import INSTALL_HINT, DiffusionUnavailable
from latentd.diffusion.checkpoint import (
    CheckpointError,
    GenerationError,
    LatentDiffusion,
    build_model,
    load_checkpoint,
    slerp,
)
from latentd.diffusion.presets import ARCHITECTURE_PRESETS, get_architecture, original_architecture

__all__ = [
    "ARCHITECTURE_PRESETS",
    "INSTALL_HINT",
    "CheckpointError",
    "DiffusionUnavailable",
    "GenerationError",
    "LatentDiffusion",
    "build_model",
    "get_architecture",
    "load_checkpoint",
    "original_architecture",
    "slerp",
]
