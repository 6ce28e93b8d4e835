"""The parts of audio-diffusion-pytorch 0.1.3 that RAVE-Latent-Diffusion checkpoints need.

``UNetV0`` (built from ``a_unet`` primitives), the v-objective ``VDiffusion`` and ``VSampler`` with their
``UniformDistribution`` and ``LinearSchedule``, and the ``DiffusionModel`` wrapper, adapted from
audio-diffusion-pytorch 0.1.3 (https://github.com/archinetai/audio-diffusion-pytorch). Parameter and
module names mirror the original so that a checkpoint's ``model_state_dict`` loads strictly. Left out:
the plugins, mel spectrogram and other models of the original (they pull in torchaudio, which the CPU
torch build used here cannot install beside it), and the tqdm progress bar of the sampler.

Original copyright and licence::

    MIT License

    Copyright (c) 2022 archinet.ai

    Permission is hereby granted, free of charge, to any person obtaining a copy
    of this software and associated documentation files (the "Software"), to deal
    in the Software without restriction, including without limitation the rights
    to use, copy, modify, merge, publish, distribute, sublicense, and/or sell
    copies of the Software, and to permit persons to whom the Software is
    furnished to do so, subject to the following conditions:

    The above copyright notice and this permission notice shall be included in all
    copies or substantial portions of the Software.

    THE SOFTWARE IS PROVIDED "AS IS", WITHOUT WARRANTY OF ANY KIND, EXPRESS OR
    IMPLIED, INCLUDING BUT NOT LIMITED TO THE WARRANTIES OF MERCHANTABILITY,
    FITNESS FOR A PARTICULAR PURPOSE AND NONINFRINGEMENT. IN NO EVENT SHALL THE
    AUTHORS OR COPYRIGHT HOLDERS BE LIABLE FOR ANY CLAIM, DAMAGES OR OTHER
    LIABILITY, WHETHER IN AN ACTION OF CONTRACT, TORT OR OTHERWISE, ARISING FROM,
    OUT OF OR IN CONNECTION WITH THE SOFTWARE OR THE USE OR OTHER DEALINGS IN THE
    SOFTWARE.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from math import pi
from types import ModuleType
from typing import Any

import torch
import torch.nn.functional as F
from torch import Tensor, nn

#: How to install what this module needs.
INSTALL_HINT = "pip install 'latentd[diffusion]'"


class DiffusionUnavailable(ImportError):
    """The optional packages of the ``diffusion`` extra (a-unet, einops) are not installed."""


def require_a_unet() -> tuple[ModuleType, ModuleType]:
    """Import ``a_unet`` and ``a_unet.apex`` (the UNet building blocks) on first use.

    Raises:
        DiffusionUnavailable: a-unet or einops is missing; the message says how to install them.
    """
    try:
        import a_unet
        import a_unet.apex
    except ImportError as exc:
        raise DiffusionUnavailable(
            f"latent diffusion needs the optional packages a-unet and einops ({exc}); "
            f"install them with: {INSTALL_HINT}"
        ) from exc
    return a_unet, a_unet.apex


def UNetV0(
    dim: int,
    in_channels: int,
    channels: Sequence[int],
    factors: Sequence[int],
    items: Sequence[int],
    attentions: Sequence[int] | None = None,
    cross_attentions: Sequence[int] | None = None,
    linear_attentions: Sequence[int] | None = None,
    context_channels: Sequence[int] | None = None,
    attention_features: int | None = None,
    attention_heads: int | None = None,
    embedding_features: int | None = None,
    resnet_groups: int = 8,
    use_modulation: bool = True,
    modulation_features: int = 1024,
    use_time_conditioning: bool = True,
    out_channels: int | None = None,
) -> nn.Module:
    """The UNet of audio-diffusion-pytorch 0.1.3 (its name kept), without its embedding and text plugins.

    Returns a module called as ``net(x, time)`` with ``x`` of shape (batch, in_channels, length) and
    ``time`` the noise level per batch row.

    Raises:
        DiffusionUnavailable: a-unet is not installed.
        ValueError: the per-layer lists differ in length.
    """
    a_unet, apex = require_a_unet()
    num_layers = len(channels)
    attentions = list(attentions) if attentions is not None else [0] * num_layers
    cross_attentions = list(cross_attentions) if cross_attentions is not None else [0] * num_layers
    linear_attentions = list(linear_attentions) if linear_attentions is not None else [0] * num_layers
    context_channels = list(context_channels) if context_channels is not None else [0] * num_layers
    xs = (channels, factors, items, attentions, cross_attentions, linear_attentions, context_channels)
    if not all(len(x) == num_layers for x in xs):
        lengths = ", ".join(str(len(x)) for x in xs)
        raise ValueError(
            "UNetV0: channels, factors, items, attentions, cross_attentions, linear_attentions and "
            f"context_channels need one entry per layer; lengths are {lengths}"
        )
    net_t: Callable[..., nn.Module] = apex.XUNet
    if use_time_conditioning:
        if not use_modulation:
            raise ValueError("UNetV0: use_time_conditioning requires use_modulation=True")
        net_t = a_unet.TimeConditioningPlugin(net_t)
    return net_t(
        dim=dim,
        in_channels=in_channels,
        out_channels=out_channels,
        blocks=[
            apex.XBlock(
                channels=n_channels,
                factor=factor,
                context_channels=ctx_channels,
                items=(
                    [apex.ResnetItem]
                    + [apex.ModulationItem] * use_modulation
                    + [apex.InjectChannelsItem] * (ctx_channels > 0)
                    + [apex.AttentionItem] * att
                    + [apex.CrossAttentionItem] * cross
                    + [apex.LinearAttentionItem] * linear
                )
                * n_items,
            )
            for n_channels, factor, n_items, att, cross, linear, ctx_channels in zip(*xs, strict=True)
        ],
        skip_t=apex.SkipModulate if use_modulation else apex.SkipCat,
        attention_features=attention_features,
        attention_heads=attention_heads,
        embedding_features=embedding_features,
        modulation_features=modulation_features,
        resnet_groups=resnet_groups,
    )


class UniformDistribution:
    """Noise levels drawn uniformly in [vmin, vmax] (the training distribution of ``VDiffusion``)."""

    def __init__(self, vmin: float = 0.0, vmax: float = 1.0) -> None:
        self.vmin, self.vmax = vmin, vmax

    def __call__(self, num_samples: int, device: torch.device | None = None) -> Tensor:
        """``num_samples`` noise levels."""
        return (self.vmax - self.vmin) * torch.rand(num_samples, device=device) + self.vmin


def extend_dim(x: Tensor, dim: int) -> Tensor:
    """Append singleton dims up to ``dim`` (shape [b] -> [b, 1, 1] for dim 3)."""
    return x.view(*x.shape + (1,) * (dim - x.ndim))


def alpha_beta(sigmas: Tensor) -> tuple[Tensor, Tensor]:
    """Signal and noise weights of the v-objective: a quarter circle over the noise level."""
    angle = sigmas * pi / 2
    return torch.cos(angle), torch.sin(angle)


class VDiffusion(nn.Module):
    """The v-objective training loss (kept so a checkpoint's module tree matches the original)."""

    def __init__(self, net: nn.Module, sigma_distribution: UniformDistribution | None = None) -> None:
        super().__init__()
        self.net = net
        self.sigma_distribution = sigma_distribution or UniformDistribution()

    def forward(self, x: Tensor, **kwargs: Any) -> Tensor:
        """The mean squared error of the predicted velocity for ``x`` noised at random levels."""
        sigmas = self.sigma_distribution(num_samples=x.shape[0], device=x.device)
        alphas, betas = alpha_beta(extend_dim(sigmas, dim=x.ndim))
        noise = torch.randn_like(x)
        x_noisy = alphas * x + betas * noise
        v_target = alphas * noise - betas * x
        return F.mse_loss(self.net(x_noisy, sigmas, **kwargs), v_target)


class LinearSchedule(nn.Module):
    """Noise levels falling linearly from ``start`` to ``end``."""

    def __init__(self, start: float = 1.0, end: float = 0.0) -> None:
        super().__init__()
        self.start, self.end = start, end

    def forward(self, num_steps: int, device: torch.device | None = None) -> Tensor:
        """``num_steps`` levels from start to end inclusive."""
        return torch.linspace(self.start, self.end, num_steps, device=device)


class VSampler(nn.Module):
    """Deterministic v-objective sampler: from pure noise to data in ``num_steps`` steps."""

    def __init__(self, net: nn.Module, schedule: LinearSchedule | None = None) -> None:
        super().__init__()
        self.net = net
        self.schedule = schedule or LinearSchedule()

    @torch.no_grad()
    def forward(
        self,
        x_noisy: Tensor,
        num_steps: int,
        step_callback: Callable[[int], None] | None = None,
        **kwargs: Any,
    ) -> Tensor:
        """Denoise ``x_noisy`` (batch, channels, length) over ``num_steps`` steps.

        Args:
            x_noisy: the starting noise.
            num_steps: denoising steps (>= 1).
            step_callback: called with the step index before each step (lets a caller stop early by
                raising).
            **kwargs: passed on to the net.
        """
        b = x_noisy.shape[0]
        sigmas = self.schedule(num_steps + 1, device=x_noisy.device)
        sigmas = sigmas[:, None].expand(num_steps + 1, b)
        alphas, betas = alpha_beta(extend_dim(sigmas, dim=x_noisy.ndim + 1))
        for i in range(num_steps):
            if step_callback is not None:
                step_callback(i)
            v_pred = self.net(x_noisy, sigmas[i], **kwargs)
            x_pred = alphas[i] * x_noisy - betas[i] * v_pred
            noise_pred = betas[i] * x_noisy + alphas[i] * v_pred
            x_noisy = alphas[i + 1] * x_pred + betas[i + 1] * noise_pred
        return x_noisy


def _group_by_prefix(prefix: str, kwargs: dict[str, Any]) -> tuple[dict[str, Any], dict[str, Any]]:
    grouped = {k.removeprefix(prefix): v for k, v in kwargs.items() if k.startswith(prefix)}
    rest = {k: v for k, v in kwargs.items() if not k.startswith(prefix)}
    return grouped, rest


class DiffusionModel(nn.Module):
    """A net shared by a diffusion (training loss) and a sampler, as in audio-diffusion-pytorch.

    Keyword arguments starting with ``diffusion_`` go to ``diffusion_t``, those starting with
    ``sampler_`` to ``sampler_t``, the rest to ``net_t``. The state dict holds the net under ``net.``,
    ``diffusion.net.`` and ``sampler.net.``, like the original's.
    """

    def __init__(
        self,
        net_t: Callable[..., nn.Module],
        diffusion_t: Callable[..., nn.Module] = VDiffusion,
        sampler_t: Callable[..., nn.Module] = VSampler,
        dim: int = 1,
        **kwargs: Any,
    ) -> None:
        super().__init__()
        diffusion_kwargs, kwargs = _group_by_prefix("diffusion_", kwargs)
        sampler_kwargs, kwargs = _group_by_prefix("sampler_", kwargs)
        self.net = net_t(dim=dim, **kwargs)
        self.diffusion = diffusion_t(net=self.net, **diffusion_kwargs)
        self.sampler = sampler_t(net=self.net, **sampler_kwargs)

    def forward(self, *args: Any, **kwargs: Any) -> Tensor:
        """The training loss of the diffusion."""
        return self.diffusion(*args, **kwargs)

    @torch.no_grad()
    def sample(self, *args: Any, **kwargs: Any) -> Tensor:
        """Sample with the sampler (``sample(noise, num_steps=...)``)."""
        return self.sampler(*args, **kwargs)
