"""A small prior in the nn~ format: a method mapping latent frames to the next ones (MSPrior style).

``prior(z)`` takes ``[batch, latent_size, frames]`` and returns the same shape: for every frame,
``state = damping * state + (1 - damping) * tanh(W z_t) + temperature * randn`` per batch row, and the
state is the output frame. The state is kept per batch row in ``state_cache`` (streaming: splitting the
frames into calls changes nothing). Noise comes from torch's random generator, as a real prior's sampling
does, so a host seeds it.
"""

from pathlib import Path

import torch
from torch import Tensor

from latentd.installation.torchscript import save_module, script_module
from latentd.modelkit.synth import NnTildeModule

MAX_BATCH = 64


class DampedPrior(NnTildeModule):
    """Latents in, next latents out, with a ``temperature`` attribute scaling the injected noise.

    Args:
        latent_size: latent dims in and out.
        ratio: the ratio of the models it feeds (``prior_params`` in_ratio = out_ratio = ratio).
        sr: sample rate of the models it feeds.
        damping: how much of the previous state each frame keeps, 0..1.
        seed: seeds the fixed mixing matrix.
        temperature_attribute: declare ``temperature`` (else the host must inject noise itself).
    """

    prior_params: Tensor
    weight: Tensor
    state_cache: Tensor
    attributes: list[str]

    def __init__(
        self,
        latent_size: int = 4,
        ratio: int = 1024,
        sr: int = 48000,
        damping: float = 0.9,
        seed: int = 0,
        temperature_attribute: bool = True,
    ) -> None:
        super().__init__()
        gen = torch.Generator().manual_seed(seed)
        self.sr = sr
        self.damping = float(damping)
        self.temperature = (1.0 if temperature_attribute else 0.0,)
        self.attributes = ["temperature"] if temperature_attribute else []
        self.register_buffer("prior_params", torch.tensor([latent_size, ratio, latent_size, ratio]))
        self.register_buffer(
            "weight", torch.randn(latent_size, latent_size, generator=gen) / latent_size**0.5
        )
        self.register_buffer("state_cache", torch.zeros(MAX_BATCH, latent_size))

    @torch.jit.export
    def get_methods(self) -> list[str]:
        """Methods a host may call."""
        return ["prior"]

    @torch.jit.export
    def prior(self, z: Tensor) -> Tensor:
        """Latents [batch, latent_size, frames] -> next latents, same shape, continuing each row's state."""
        b, _, t = z.shape
        state = self.state_cache[:b].clone()
        out = torch.empty_like(z)
        for i in range(t):
            drive = torch.tanh(z[:, :, i] @ self.weight)
            noise = torch.randn(state.shape, dtype=state.dtype) * self.temperature[0]
            state = self.damping * state + (1.0 - self.damping) * drive + noise
            out[:, :, i] = state
        self.state_cache[:b].copy_(state)
        return out


def save_prior(path: Path, **kwargs: object) -> Path:
    """Script a ``DampedPrior(**kwargs)`` and write it to ``path`` (parent folders created)."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    module = DampedPrior(**kwargs)  # type: ignore[arg-type]
    module.eval()
    save_module(script_module(module), path)
    return path
