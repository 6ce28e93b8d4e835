"""RAVE-Latent-Diffusion checkpoints: load one, generate latent items from seeds.

A checkpoint is a ``torch.save``d dict holding ``model_state_dict`` (an audio-diffusion-pytorch
``DiffusionModel`` with a ``UNetV0`` net) and, in the "Flex'ed" fork's format, ``latent_length`` and
``rave_dims``; the fork builds the net of its preset for that length. The original format stores
neither, and its net is always the original's single architecture: pass the length it was trained at to
``load_checkpoint`` (the dims are read from the weights).
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
import torch

from latentd.diffusion.adp import DiffusionModel, UNetV0, VDiffusion, VSampler
from latentd.diffusion.presets import get_architecture, length_multiple, original_architecture


class CheckpointError(ValueError):
    """A file is not a usable RAVE-Latent-Diffusion checkpoint (the message says why)."""


class GenerationError(RuntimeError):
    """A loaded checkpoint could not make a usable item (the message says why)."""


def slerp(low: torch.Tensor, high: torch.Tensor, t: float | torch.Tensor) -> torch.Tensor:
    """Spherical interpolation from ``low`` (t = 0) to ``high`` (t = 1) along the last axis.

    The angle is taken per batch row and channel over time, as RAVE-Latent-Diffusion's ``slerp`` does;
    where the two are (anti)parallel the interpolation is linear. ``t`` is one position or one per
    time frame (a ramp along the last axis).
    """
    t = torch.as_tensor(t, dtype=low.dtype)
    low_dir = low / torch.linalg.vector_norm(low, dim=-1, keepdim=True).clamp_min(1e-12)
    high_dir = high / torch.linalg.vector_norm(high, dim=-1, keepdim=True).clamp_min(1e-12)
    omega = torch.acos((low_dir * high_dir).sum(dim=-1, keepdim=True).clamp(-1.0, 1.0))
    so = torch.sin(omega)
    safe = so.abs() > 1e-6
    so_safe = torch.where(safe, so, torch.ones_like(so))
    w_low = torch.where(safe, torch.sin((1.0 - t) * omega) / so_safe, (1.0 - t) * torch.ones_like(so))
    w_high = torch.where(safe, torch.sin(t * omega) / so_safe, t * torch.ones_like(so))
    return w_low * low + w_high * high


class LatentDiffusion:
    """A loaded diffusion model that turns seeds into RAVE latent items.

    Attributes:
        model: the ``DiffusionModel`` (eval mode, CPU).
        latent_length: frames of one item.
        rave_dims: latent dims of the RAVE model the items are for.
        architecture: the ``UNetV0`` arguments the model was built with.
        path: the checkpoint file (None when built in memory).
        flexed: whether the checkpoint is in the Flex'ed fork's format (it stores ``latent_length``);
            False for the original format.
    """

    def __init__(
        self,
        model: DiffusionModel,
        *,
        latent_length: int,
        rave_dims: int,
        architecture: dict[str, Any],
        path: Path | None = None,
        flexed: bool = True,
    ) -> None:
        self.model = model.eval()
        self.latent_length = latent_length
        self.rave_dims = rave_dims
        self.architecture = architecture
        self.path = path
        self.flexed = flexed

    def noise(
        self,
        seed: int,
        temperature: float = 1.0,
        slerp_to_seed: int | None = None,
        slerp_t: float = 0.5,
    ) -> torch.Tensor:
        """The starting noise of an item: ``randn(1, rave_dims, latent_length)`` from ``seed`` × temperature.

        With ``slerp_to_seed``, the noise lies on the great circle from this seed's noise (``slerp_t``
        = 0) to that seed's (``slerp_t`` = 1).
        """
        if not 0.0 <= slerp_t <= 1.0:
            raise ValueError(f"slerp_t must be in 0..1, got {slerp_t:g}")
        if temperature < 0:
            raise ValueError(f"temperature must be >= 0, got {temperature:g}")
        noise = self._seeded_noise(seed) * temperature
        if slerp_to_seed is not None:
            noise = slerp(noise, self._seeded_noise(slerp_to_seed) * temperature, slerp_t)
        return noise

    def generate(
        self,
        seed: int,
        temperature: float = 1.0,
        steps: int = 100,
        latent_scale: float = 1.0,
        slerp_to_seed: int | None = None,
        slerp_t: float = 0.5,
        step_callback: Callable[[int], None] | None = None,
        lerp_to_seed: int | None = None,
        lerp_factor: float = 1.0,
    ) -> np.ndarray:
        """One item: noise sampled over ``steps``, z-scored globally, × ``latent_scale``.

        Args:
            seed: seeds the noise (the same seed gives the same item).
            temperature: multiplies the noise before sampling (>= 0).
            steps: diffusion steps (>= 1); more is slower and smoother.
            latent_scale: the item's standard deviation after normalisation.
            slerp_to_seed: when given, start from the slerp of the two seeds' noises.
            slerp_t: position of that slerp, 0 (this seed) .. 1 (the other).
            step_callback: called with each step index (raise in it to abandon the item).
            lerp_to_seed: when given, also sample that seed and glide from this seed's item to that one
                over the item's length (slerp per frame), as RAVE-Latent-Diffusion's ``--lerp`` does;
                twice the work.
            lerp_factor: where that glide ends, 0..1 (1: at the other seed's item).

        Returns:
            float32 latents of shape (1, rave_dims, latent_length).

        Raises:
            ValueError: an argument is out of range.
            GenerationError: the sampled item holds NaN or Inf (weights that are not finite, as a
                diverged training run saves them, or values that overflow).
        """
        if steps < 1:
            raise ValueError(f"steps must be >= 1, got {steps}")
        if lerp_to_seed is not None and not 0.0 <= lerp_factor <= 1.0:
            raise ValueError(f"lerp_factor must be in 0..1, got {lerp_factor:g}")
        noise = self.noise(seed, temperature, slerp_to_seed, slerp_t)
        with torch.inference_mode():
            diff = self.model.sample(noise, num_steps=steps, step_callback=step_callback)
            if lerp_to_seed is not None:
                other = self.model.sample(
                    self.noise(lerp_to_seed, temperature), num_steps=steps, step_callback=step_callback
                )
                ramp = torch.linspace(0.0, lerp_factor, self.latent_length, dtype=diff.dtype)
                diff = slerp(diff, other, ramp)
            centred = diff - diff.mean()
            std = diff.std()
            # A constant result (e.g. temperature 0 on a degenerate model) has no spread to divide by.
            normalised = centred / std if float(std) > 1e-12 else centred
        if not bool(torch.isfinite(normalised).all()):
            # A voice would decode NaN into the mix: such an item is never handed out.
            source = self.path if self.path is not None else "diffusion model"
            raise GenerationError(
                f"{source}: the item of seed {seed} holds NaN/Inf values; the checkpoint's weights are "
                "not finite (a diverged training run) or overflow"
            )
        return (normalised * latent_scale).numpy().astype(np.float32)

    def _seeded_noise(self, seed: int) -> torch.Tensor:
        generator = torch.Generator().manual_seed(int(seed))
        return torch.randn(1, self.rave_dims, self.latent_length, generator=generator)


def build_model(rave_dims: int, architecture: dict[str, Any]) -> DiffusionModel:
    """A ``DiffusionModel`` with a ``UNetV0`` net as RAVE-Latent-Diffusion builds it."""
    return DiffusionModel(
        net_t=UNetV0,
        in_channels=rave_dims,
        diffusion_t=VDiffusion,
        sampler_t=VSampler,
        **architecture,
    )


def _positive_int(value: object, key: str, path: Path) -> int:
    if isinstance(value, torch.Tensor) and value.numel() == 1:
        value = value.item()
    if isinstance(value, bool) or not isinstance(value, int) or value < 1:
        raise CheckpointError(f"{path}: `{key}` must be a positive integer, got {value!r}")
    return value


def _pick(stored: object, given: int | None, key: str, path: Path) -> int:
    if stored is None:
        if given is None:
            raise CheckpointError(
                f"{path}: the checkpoint does not store `{key}` (original RAVE-Latent-Diffusion format); "
                f"pass {key}= with the value it was trained with"
            )
        return _positive_int(given, key, path)
    value = _positive_int(stored, key, path)
    if given is not None and given != value:
        raise CheckpointError(
            f"{path}: {key}={given} was asked for, but the checkpoint was trained with {value}"
        )
    return value


def _dims_from_weights(state: object) -> int | None:
    """The RAVE dims an original-format checkpoint was trained for: the UNet's last convolution maps
    back to them. A wrong guess cannot slip through: the strict load below checks every shape."""
    if not isinstance(state, dict):
        return None
    convs = [v for v in state.values() if isinstance(v, torch.Tensor) and v.dim() == 3]
    return int(convs[-1].shape[0]) if convs else None


def load_checkpoint(
    path: str | Path,
    *,
    latent_length: int | None = None,
    rave_dims: int | None = None,
    architecture: dict[str, Any] | None = None,
) -> LatentDiffusion:
    """Load a RAVE-Latent-Diffusion checkpoint (original or "Flex'ed" format) onto the CPU.

    Args:
        path: the ``.pt`` file.
        latent_length: frames per item; needed when the checkpoint does not store it, else checked.
        rave_dims: RAVE latent dims; read from the weights when the checkpoint does not store them,
            else checked.
        architecture: ``UNetV0`` arguments (besides ``in_channels``) to build the net with; default: the
            Flex'ed preset for the stored latent length, or for an original-format checkpoint (no
            stored length) the original's single architecture, whatever the length.

    Raises:
        DiffusionUnavailable: the ``diffusion`` extra is not installed.
        CheckpointError: the file is missing or not such a checkpoint, a value contradicts it, there is
            no preset for its latent length, the length does not fit the architecture, or its weights
            do not fit the architecture.
    """
    path = Path(path)
    if not path.is_file():
        raise CheckpointError(f"{path}: no such diffusion checkpoint file")
    try:
        # weights_only: a checkpoint is tensors and plain values; never run pickled code from a file.
        checkpoint = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as exc:
        raise CheckpointError(
            f"{path}: not a readable torch checkpoint ({type(exc).__name__}: {exc})"
        ) from exc
    if not isinstance(checkpoint, dict) or "model_state_dict" not in checkpoint:
        found = (
            ", ".join(sorted(map(str, checkpoint)))
            if isinstance(checkpoint, dict)
            else type(checkpoint).__name__
        )
        raise CheckpointError(
            f"{path}: not a RAVE-Latent-Diffusion checkpoint: expected a dict with `model_state_dict` "
            f"(and `latent_length`, `rave_dims`), found {found or 'an empty dict'}"
        )
    flexed = checkpoint.get("latent_length") is not None
    length = _pick(checkpoint.get("latent_length"), latent_length, "latent_length", path)
    stored_dims = checkpoint.get("rave_dims")
    if stored_dims is None and rave_dims is None:
        stored_dims = _dims_from_weights(checkpoint["model_state_dict"])
    dims = _pick(stored_dims, rave_dims, "rave_dims", path)
    if architecture is not None:
        which = "the architecture given"
    elif flexed:
        which = f"the Flex'ed preset for latent_length {length}"
        try:
            architecture = get_architecture(length)
        except ValueError as exc:
            raise CheckpointError(f"{path}: {exc}") from exc
    else:
        # The original repository builds this one net for every length it trains and generates at.
        which = "the original RAVE-Latent-Diffusion architecture (the same for every latent length)"
        architecture = original_architecture()
    multiple = length_multiple(architecture)
    if length % multiple:
        raise CheckpointError(
            f"{path}: latent_length {length} does not fit {which}: its factors divide the length by "
            f"{multiple}, so the length must be a multiple of {multiple} (e.g. {multiple}, {2 * multiple})"
        )
    state = checkpoint["model_state_dict"]
    if not isinstance(state, dict):
        raise CheckpointError(f"{path}: `model_state_dict` is a {type(state).__name__}, not a state dict")
    # Keys and shapes are compared on a net without memory first: a misfit is told at once, before the
    # hundreds of megabytes of a full-size net are allocated and initialised.
    with torch.device("meta"):
        expected = {key: tuple(t.shape) for key, t in build_model(dims, architecture).state_dict().items()}
    missing = [key for key in expected if key not in state]
    unexpected = [key for key in state if key not in expected]
    resized = [
        f"{key} {tuple(getattr(state[key], 'shape', ()))} instead of {shape}"
        for key, shape in expected.items()
        if key in state and tuple(getattr(state[key], "shape", ())) != shape
    ]
    if missing or unexpected or resized:
        misfits = [
            f"{len(found)} {what} (e.g. {found[:n]})"
            for found, what, n in (
                (missing, "missing keys", 3),
                (unexpected, "unexpected keys", 3),
                (resized, "weights of other shapes", 2),
            )
            if found
        ]
        raise CheckpointError(
            f"{path}: the weights do not fit the architecture ({which}) for latent_length {length}, "
            f"rave_dims {dims}: {', '.join(misfits)}"
        )
    model = build_model(dims, architecture)
    try:
        model.load_state_dict(state, strict=True)
    except RuntimeError as exc:
        raise CheckpointError(
            f"{path}: the weights do not fit the architecture ({which}) for latent_length {length}, "
            f"rave_dims {dims}: {exc}"
        ) from exc
    return LatentDiffusion(
        model, latent_length=length, rave_dims=dims, architecture=architecture, path=path, flexed=flexed
    )
