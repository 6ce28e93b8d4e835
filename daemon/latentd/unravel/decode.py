"""``unravel decode``: latent files (``.npy`` or latent WAV) through a model's ``decode`` into audio WAV."""

from __future__ import annotations

import math
from collections.abc import Sequence
from pathlib import Path

import numpy as np
import soundfile
import torch
from tqdm import tqdm

from latentd.installation.models import LoadedModel, ModelInfo
from latentd.unravel.inputs import UnravelError, find_inputs, output_names
from latentd.unravel.latentio import (
    LATENT_SUFFIXES,
    latent_rate_of,
    latent_wav_rate,
    read_latents,
    wav_header_rate,
)

#: Latent frames per decode call for streaming models (their state makes the chunks join exactly).
CHUNK_FRAMES = 64
#: Marks generated latent WAVs (``x.latent.wav``) so that their audio can be ``x.wav`` beside them.
LATENT_WAV_MARK = ".latent"


def latent_inputs(inputs: Sequence[Path]) -> list[Path]:
    """Latent files named by ``inputs``; in folders, a latent WAV whose ``.npy`` twin (same stem, or
    ``x.npy`` for ``x.latent.wav``) is there too is skipped: they hold the same latents.

    Raises:
        UnravelError: no latent files found.
    """
    files = find_inputs(inputs, LATENT_SUFFIXES, "latent (.npy or latent WAV)")
    named = {Path(p).resolve() for p in inputs}
    kept = []
    for f in files:
        if f.suffix.lower() == ".wav" and f.resolve() not in named:
            stem = f.stem.removesuffix(LATENT_WAV_MARK) or f.stem
            if (f.parent / f"{stem}.npy").is_file():
                continue
        kept.append(f)
    return kept


def allowed_dims(info: ModelInfo) -> tuple[int, int]:
    """The smallest and largest number of latent dims a model's ``decode`` takes."""
    full = info.full_latent_size
    high = full if full is not None and not info.conditioning else info.in_channels
    return info.in_channels, high


def load_z(model: LoadedModel, path: Path) -> np.ndarray:
    """Latents ``(1, d, N)`` float32 from a latent file, checked against the model.

    Raises:
        UnravelError: dims the model does not take, or a latent WAV whose header rate is not the model's.
        ValueError: an unreadable latent file.
    """
    frames = read_latents(path)
    low, high = allowed_dims(model.info)
    d = frames.shape[1]
    if not low <= d <= high:
        allowed = f"{low}" if low == high else f"{low}..{high}"
        raise UnravelError(
            f"{path}: {d} latent dims, but {model.path.name} decodes {allowed} "
            f"(latent_size {model.info.latent_size}); use latents made for this model"
        )
    exact = latent_rate_of(path)
    if exact is not None and not math.isclose(exact, model.info.latent_rate_hz, rel_tol=1e-9):
        raise UnravelError(
            f"{path}: latents at {exact:g} Hz (recorded in the file), but {model.path.name} runs at "
            f"{model.info.latent_rate_hz:g} Hz (sr {model.info.sr} / ratio {model.info.ratio}); "
            "use latents made for this model"
        )
    if exact is None and path.suffix.lower() == ".wav":
        rate = wav_header_rate(path)
        expected = latent_wav_rate(model.info.sr, model.info.ratio)
        if rate != expected:
            raise UnravelError(
                f"{path}: header rate {rate} Hz, but a latent WAV for {model.path.name} has rate {expected} "
                f"(sr {model.info.sr} // ratio {model.info.ratio}); is it audio, or latents of another model?"
            )
    return np.ascontiguousarray(frames.T[None, :, :], dtype=np.float32)


def decode_z(model: LoadedModel, z: np.ndarray, *, seed: int = 0, progress: bool = False) -> np.ndarray:
    """Decode latents ``(1, d, N)`` into audio ``(n_channels, N * ratio)`` float32.

    A streaming model decodes ``CHUNK_FRAMES`` frames per call from its reset state; any other model
    decodes in one call (block-wise decoding would click at every block edge). Torch is seeded with
    ``seed`` first: variational RAVE exports fill the dims up to ``full_latent_size`` with ``torch.randn``.
    """
    model.reset()
    torch.manual_seed(seed)
    n_frames = z.shape[2]
    step = CHUNK_FRAMES if model.info.streaming else n_frames
    starts = range(0, n_frames, step)
    parts = [
        model.decode(z[:, :, start : start + step])
        for start in tqdm(
            starts, desc="decode", unit="chunk", leave=False, disable=None if progress else True
        )
    ]
    return np.concatenate(parts, axis=2)[0]


def decode_files(
    model_path: Path, inputs: Sequence[Path], output: Path, *, seed: int = 0, progress: bool = True
) -> list[Path]:
    """Decode latent files (or the latent files in folders) into ``output/<stem>.wav`` at the model's rate.

    Audio is written as 32-bit float WAV, one channel per model output channel. ``x.latent.wav``
    becomes ``x.wav``.

    Returns:
        the written files, in input order.

    Raises:
        UnravelError: no latent files, wrong dims, two inputs with one output name.
        ModelError: the model cannot be loaded or fails.
    """
    files = latent_inputs(inputs)
    outs = output_names(files, ".wav", Path(output), strip=LATENT_WAV_MARK)
    model = LoadedModel(Path(model_path))
    zs = [load_z(model, f) for f in files]  # every file is checked before any work is done
    Path(output).mkdir(parents=True, exist_ok=True)
    for z, out in tqdm(
        list(zip(zs, outs, strict=True)), desc="files", unit="file", disable=None if progress else True
    ):
        audio = decode_z(model, z, seed=seed, progress=progress)
        soundfile.write(str(out), audio.T, model.info.sr, subtype="FLOAT", format="WAV")
    return outs
