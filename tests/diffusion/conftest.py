"""A small RAVE-Latent-Diffusion checkpoint of the real format, built locally."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
import torch

from latentd.diffusion import build_model

#: A tiny UNetV0 (the real presets have 256..768 channels): 3 layers, attention in the last.
TINY: dict[str, Any] = {
    "channels": [8, 8, 16],
    "factors": [1, 2, 2],
    "items": [1, 1, 1],
    "attentions": [0, 0, 1],
    "attention_heads": 2,
    "attention_features": 8,
    "modulation_features": 16,
}
LATENT_LENGTH = 64
RAVE_DIMS = 4


def save_checkpoint(path: Path, *, flexed: bool = True, seed: int = 0) -> Path:
    """Save a checkpoint as RAVE-Latent-Diffusion's train.py does (the Flex'ed fork adds two keys)."""
    torch.manual_seed(seed)
    model = build_model(RAVE_DIMS, TINY)
    with torch.no_grad():
        # Trained weights are not zero where a fresh net's output layers are: make every weight count.
        for param in model.parameters():
            param.add_(0.05 * torch.randn_like(param))
    optimizer = torch.optim.AdamW(model.parameters(), lr=1e-4, weight_decay=1e-5)
    scheduler = torch.optim.lr_scheduler.StepLR(optimizer, step_size=100, gamma=0.99)
    checkpoint: dict[str, Any] = {
        "model_state_dict": model.state_dict(),
        "optimizer_state_dict": optimizer.state_dict(),
        "scheduler_state_dict": scheduler.state_dict(),
        "epoch": 3,
    }
    if flexed:
        checkpoint |= {"latent_length": LATENT_LENGTH, "rave_dims": RAVE_DIMS}
    torch.save(checkpoint, path)
    return path


@pytest.fixture(scope="session")
def tiny_checkpoint(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A Flex'ed-format checkpoint: latent_length 64, rave_dims 4, the TINY architecture."""
    return save_checkpoint(tmp_path_factory.mktemp("diffusion") / "tiny.pt")
