"""``unravel encode``: audio files through a model's ``encode`` into latents ``(1, d, T)`` (``.npy``)."""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

import numpy as np
import soundfile
import torch
from tqdm import tqdm

from latentd.engine.resample import resample
from latentd.installation.models import LoadedModel
from latentd.unravel.inputs import UnravelError, find_inputs, output_names

#: Audio file suffixes the encoder reads (through soundfile).
AUDIO_SUFFIXES = (".wav", ".flac", ".aiff", ".aif", ".ogg")
#: Latent frames per encode call: long enough to be efficient, short enough to keep memory small.
CHUNK_FRAMES = 64


def load_mono(path: Path, sr: int) -> np.ndarray:
    """An audio file mixed to mono (the mean of its channels) and resampled to ``sr``, float32.

    Raises:
        UnravelError: unreadable file, or no samples.
    """
    try:
        data, file_sr = soundfile.read(str(path), dtype="float32", always_2d=True)
    except (RuntimeError, soundfile.LibsndfileError) as exc:
        raise UnravelError(f"{path}: not a readable audio file ({exc})") from exc
    if data.shape[0] == 0:
        raise UnravelError(f"{path}: holds no audio samples")
    mono = data.mean(axis=1)
    if file_sr != sr:
        mono = resample(mono, file_sr, sr)
    return np.ascontiguousarray(mono, dtype=np.float32)


def encode_audio(
    model: LoadedModel, mono: np.ndarray, *, chunk_frames: int = CHUNK_FRAMES, progress: bool = False
) -> np.ndarray:
    """Encode mono audio at the model's rate into latents ``(1, d, T)`` float32, T = ceil(samples / ratio).

    The audio is zero-padded to whole latent frames and encoded ``chunk_frames`` frames per call (a
    streaming model's state carries over between calls, so it starts from ``model.reset()``).

    Raises:
        UnravelError: the model has no encode method.
    """
    params = model.info.params.get("encode")
    if params is None or "encode" not in model.info.methods:
        methods = ", ".join(model.info.methods) or "none"
        raise UnravelError(f"{model.path}: the model has no encode method (methods: {methods})")
    if chunk_frames < 1:
        raise UnravelError(f"chunk_frames must be >= 1, got {chunk_frames}")
    hop = params.out_ratio
    n_frames = max(1, -(-len(mono) // hop))
    padded = np.zeros(n_frames * hop, dtype=np.float32)
    padded[: len(mono)] = mono
    # Stereo encoders get the mono mix on every input channel.
    audio = np.repeat(padded[None, None, :], params.in_channels, axis=1)
    model.reset()
    chunk = chunk_frames * hop
    starts = range(0, audio.shape[2], chunk)
    parts = [
        model.encode(audio[:, :, start : start + chunk])
        for start in tqdm(
            starts, desc="encode", unit="chunk", leave=False, disable=None if progress else True
        )
    ]
    return np.concatenate(parts, axis=2).astype(np.float32)


def encode_files(
    model_path: Path,
    inputs: Sequence[Path],
    output: Path,
    *,
    seed: int = 0,
    chunk_frames: int = CHUNK_FRAMES,
    progress: bool = True,
) -> list[Path]:
    """Encode audio files (or the audio files in folders) into ``output/<stem>.npy``, shape (1, d, T).

    Each file is mixed to mono, resampled to the model's rate (:func:`latentd.engine.resample.resample`)
    and encoded; torch is seeded with ``seed`` before each file, since variational encoders may sample.

    Returns:
        the written files, in input order.

    Raises:
        UnravelError: no audio files, an unreadable file, two inputs with the same stem, no encode method.
        ModelError: the model cannot be loaded or fails.
    """
    files = find_inputs(inputs, AUDIO_SUFFIXES, "audio")
    outs = output_names(files, ".npy", Path(output))
    model = LoadedModel(Path(model_path))
    Path(output).mkdir(parents=True, exist_ok=True)
    for file, out in tqdm(
        list(zip(files, outs, strict=True)), desc="files", unit="file", disable=None if progress else True
    ):
        mono = load_mono(file, model.info.sr)
        torch.manual_seed(seed)
        z = encode_audio(model, mono, chunk_frames=chunk_frames, progress=progress)
        np.save(out, z)
    return outs
