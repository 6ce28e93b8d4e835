"""A prior source: a model method that maps latent frames to the next ones (MSPrior style), fed back.

The one source that runs a model. The model is its own ``LoadedModel`` (TorchScript stays in
``latentd.installation.models``), called once per frame with the previous output, with its own seeded torch
generator state so the frames depend only on the seed.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np

from latentd.installation.errors import ModelError
from latentd.installation.models import LoadedModel, rng_state
from latentd.sources.base import Source
from latentd.sources.specs import PriorSpec


class PriorSource(Source):
    """Latent frames from a prior model, ``temperature`` settable at run time (0..10).

    Raises:
        ValueError: the model cannot be loaded, or its method does not map ``latent_size`` latents at the
            voice model's ``ratio`` to as many latents at the same ratio.
    """

    checkpoint_skip = Source.checkpoint_skip | {"_model"}

    def __init__(
        self,
        spec: PriorSpec,
        *,
        latent_size: int,
        latent_rate_hz: float,
        ratio: int,
        seed: int,
        base_dir: Path | None = None,
    ) -> None:
        super().__init__(spec, latent_size=latent_size, latent_rate_hz=latent_rate_hz, seed=seed)
        path = Path(spec.path)
        if not path.is_absolute() and base_dir is not None:
            path = Path(base_dir) / path
        self._method = spec.method
        try:
            self._model = LoadedModel(path, method=spec.method)
        except ModelError as exc:
            raise ValueError(str(exc)) from exc
        p = self._model.info.params[spec.method]
        shape = f"[{p.in_channels}, {p.in_ratio}, {p.out_channels}, {p.out_ratio}]"
        if p.in_ratio != p.out_ratio or p.in_channels != p.out_channels:
            raise ValueError(
                f"{path}: method {spec.method!r} has `{spec.method}_params` = {shape}: a prior maps latents "
                "to as many latents at the same ratio ([d, ratio, d, ratio])"
            )
        if p.in_channels != latent_size or p.in_ratio != ratio:
            raise ValueError(
                f"{path}: method {spec.method!r} has `{spec.method}_params` = {shape}, but the voice's model "
                f"needs [{latent_size}, {ratio}, {latent_size}, {ratio}] "
                f"(latent_size {latent_size}, ratio {ratio})"
            )
        self._model_temperature = "temperature" in self._model.info.attributes
        self._temperature = spec.temperature
        self._add_param("temperature", 0.0, 10.0, lambda: self._temperature, self._set_temperature)
        self._set_temperature(spec.temperature)
        self._restart(seed)

    def _set_temperature(self, value: float) -> None:
        self._temperature = value
        if self._model_temperature:
            try:
                self._model.set_attribute("temperature", value)
            except ModelError as exc:
                raise ValueError(str(exc)) from exc

    def _restart(self, seed: int) -> None:
        self._rng = np.random.default_rng(seed)
        self._torch_rng = rng_state(seed)
        self._model.reset()
        self._z = np.zeros((1, self.latent_size, 1), dtype=np.float32)

    def checkpoint_state(self) -> dict[str, Any]:
        """The source's state plus its model's buffers (a recurrent prior keeps its memory there)."""
        return {**super().checkpoint_state(), "model_buffers": self._model.buffers()}

    def restore_checkpoint(self, state: dict[str, Any]) -> None:
        """Take back what :meth:`checkpoint_state` returned, the model's buffers and temperature too."""
        state = dict(state)
        self._model.set_buffers(state.pop("model_buffers"))
        super().restore_checkpoint(state)
        self._set_temperature(self._temperature)

    def _generate(self, n_frames: int) -> np.ndarray:
        out = np.empty((self.latent_size, n_frames), dtype=np.float64)
        for i in range(n_frames):
            y, self._torch_rng = self._model.call(self._method, self._z, self._torch_rng)
            if not self._model_temperature:
                y = y + (self._temperature * self._rng.standard_normal(y.shape)).astype(np.float32)
            self._z = y
            out[:, i] = y[0, :, 0]
        return out
