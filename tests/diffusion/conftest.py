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


#: The original repository's generate.py builds this net, whatever the latent length (written out here,
#: not read from the presets, so the test checks the presets against the original).
ORIGINAL_NET: dict[str, Any] = {
    "channels": [256, 256, 256, 256, 512, 512, 512, 768, 768],
    "factors": [1, 4, 4, 4, 2, 2, 2, 2, 2],
    "items": [1, 2, 2, 2, 2, 2, 2, 4, 4],
    "attentions": [0, 0, 0, 0, 0, 1, 1, 1, 1],
    "attention_heads": 12,
    "attention_features": 64,
}
#: The original's default dims (generate.py's `in_channels=16`).
ORIGINAL_DIMS = 16


def save_full_size(
    path: Path,
    architecture: dict[str, Any],
    *,
    rave_dims: int,
    latent_length: int | None = None,
    seed: int = 0,
) -> Path:
    """Save a checkpoint of a full-size architecture, small on disk.

    The original architecture has 191 M parameters (764 MB as float32). Here every tensor of the state
    dict is a window of one shared random storage (overlapping strides), which ``torch.save`` writes
    once: the file holds every key at its real shape, and loading copies the values into the model's own
    parameters as with any checkpoint. With ``latent_length`` it is in the Flex'ed format (which also
    stores ``rave_dims``), else in the original format.
    """
    with torch.device("meta"):  # shapes only: no memory for 191 M parameters
        shapes = {key: tuple(t.shape) for key, t in build_model(rave_dims, architecture).state_dict().items()}
    base = 0.02 * torch.randn(1 << 16, generator=torch.Generator().manual_seed(seed))
    strides = (17, 13, 7, 1)  # the largest shape, (768, 768, 3), spans 23 k of the 65 k values
    state = {
        key: base.as_strided(shape, strides[len(strides) - len(shape) :]) for key, shape in shapes.items()
    }
    checkpoint: dict[str, Any] = {"model_state_dict": state, "epoch": 1}
    if latent_length is not None:
        checkpoint |= {"latent_length": latent_length, "rave_dims": rave_dims}
    torch.save(checkpoint, path)
    return path


@pytest.fixture(scope="session")
def original_2048(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """An original-format checkpoint (no `latent_length`) of the original architecture, trained at 2048."""
    return save_full_size(
        tmp_path_factory.mktemp("original") / "original_2048.pt", ORIGINAL_NET, rave_dims=16
    )


def save_nan_checkpoint(path: Path) -> Path:
    """A Flex'ed TINY checkpoint with one weight NaN, as a diverged training run leaves them: it loads,
    but every item it samples is NaN."""
    save_checkpoint(path)
    checkpoint = torch.load(path, weights_only=True)
    state = checkpoint["model_state_dict"]
    key = next(k for k, v in state.items() if k.startswith("net.") and v.dim() == 3)
    # The net's weights appear under net., diffusion.net. and sampler.net.: spoil all three.
    for alias in (key, f"diffusion.{key}", f"sampler.{key}"):
        state[alias] = torch.full_like(state[alias], float("nan"))
    torch.save(checkpoint, path)
    return path
