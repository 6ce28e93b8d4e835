"""Plain torch, the yardstick of latentd's speed, and a recorder of the decode calls latentd makes."""

from __future__ import annotations

import contextlib
import statistics
import time
from collections.abc import Iterator, Sequence

import numpy as np
import torch

from benchmarks.common import BenchModel, median_time
from latentd.installation.models import LoadedModel, ModelError
from latentd.installation.torchscript import build_info, load_module


class PlainTorch:
    """The model as plain torch uses it: the TorchScript module's ``decode`` on tensors, nothing else.

    Args:
        model: the model; a sample rate in its ``model_table`` wins over the file's (vschaos2 has none).

    Raises:
        ModelError: the file cannot be loaded, or declares no ``decode_params`` or sample rate.
    """

    def __init__(self, model: BenchModel) -> None:
        self.module = load_module(model.path)
        self.decode = self.module.decode
        try:
            in_channels, ratio = (int(v) for v in self.module.decode_params[:2])
        except (AttributeError, RuntimeError, TypeError, ValueError) as exc:
            raise ModelError(f"{model.path}: no usable decode_params ({exc})") from exc
        table_sr = model.model_table.get("samplerate")
        # The file's rate as latentd reads it (get_sample_rate(), `sr`, ...), unless the table gives one.
        sr = int(table_sr) if table_sr else build_info(self.module, model.path, "decode").sr
        self.in_channels, self.ratio, self.sr = in_channels, ratio, sr
        self.conditioning: dict[str, float] = dict(model.voice_table.get("conditioning", {}))

    def inputs(self, batch: int, frames: int, seed: int = 0) -> np.ndarray:
        """Random latents ``[batch, in_channels, frames]``, the conditioning inputs (last) at their values."""
        z = np.random.default_rng(seed).standard_normal((batch, self.in_channels, frames)).astype(np.float32)
        for i, value in enumerate(self.conditioning.values()):
            z[:, self.in_channels - len(self.conditioning) + i, :] = value
        return z

    def seconds(self, calls: Sequence[np.ndarray]) -> float:
        """Seconds of audio (per row) that ``calls`` decode."""
        return sum(z.shape[2] for z in calls) * self.ratio / self.sr

    def run(self, calls: Sequence[np.ndarray]) -> float:
        """Decode each of ``calls`` in turn; return the wall time."""
        tensors = [torch.from_numpy(z) for z in calls]
        with torch.inference_mode():
            start = time.perf_counter()
            for z in tensors:
                self.decode(z)
            return time.perf_counter() - start

    def batch_ratio(self, frames: int, n: int, repeats: int) -> float:
        """One call of ``n`` rows ÷ ``n`` one-row calls, at ``frames`` latent frames (interleaved repeats)."""
        one, many = [self.inputs(1, frames)], [self.inputs(n, frames)]
        for calls in (one, many, one, many):  # first calls of a shape are slow
            self.run(calls)
        singles, batches = [], []
        for _ in range(max(3, 2 * repeats)):  # interleaved, so load on the machine hits both alike
            singles.append(median_time(lambda: self.run(one), 3))
            batches.append(median_time(lambda: self.run(many), 3))
        return statistics.median(batches) / (n * statistics.median(singles))


@contextlib.contextmanager
def recorded_decodes() -> Iterator[list[np.ndarray]]:
    """Every ``z`` that ``LoadedModel.decode`` gets in this process (any thread) while the block runs."""
    calls: list[np.ndarray] = []
    original = LoadedModel.decode

    def recording(self: LoadedModel, z: np.ndarray) -> np.ndarray:
        calls.append(np.array(z, dtype=np.float32))  # a copy: the caller may reuse its buffer
        return original(self, z)

    LoadedModel.decode = recording  # type: ignore[method-assign]
    try:
        yield calls
    finally:
        LoadedModel.decode = original  # type: ignore[method-assign]
