"""Batched decoding: the voices of one model decoded together, resampled into a FIFO at the output rate."""

from __future__ import annotations

import time
from collections.abc import Callable

import numpy as np
import structlog

from latentd.engine.recovery import DecodeRecovery
from latentd.engine.resample import Resampler
from latentd.engine.voice import Voice
from latentd.installation.models import LoadedModel

log = structlog.get_logger("latentd.decode")


class ModelGroup:
    """All voices of one model: one batch row each, decoded in one call of several latent frames.

    Rows are positional (a streaming model keeps its cache per batch row), so every call decodes every
    voice of the model, in the same order, for the model's lifetime.
    """

    def __init__(
        self,
        name: str,
        model: LoadedModel,
        voices: list[Voice],
        samplerate: int,
        frames_per_call: int,
        batch: int | None = None,
    ):
        self.name = name
        self.model = model
        self.voices = voices
        self.info = model.info
        self.frames_per_call = frames_per_call
        self.samplerate = samplerate
        self.n_rows = len(voices)
        # Rows decoded per call: the voices, then padding rows of zeros when a larger batch decodes faster
        # (see latentd.engine.callshape). Constant for the group's lifetime: a streaming model keeps its
        # state per row, and vschaos2 resets its state whenever the batch size changes.
        self.batch = max(self.n_rows, batch or self.n_rows)
        ch = self.info.n_channels
        # latentd's own resampler: its state goes into checkpoints, so replay is exact.
        self.resampler = (
            Resampler(self.info.sr, samplerate, self.n_rows * ch) if self.info.sr != samplerate else None
        )
        chunk_out = int(np.ceil(frames_per_call * self.info.ratio * samplerate / self.info.sr)) + 64
        # Output samples one call makes, about (the resampler holds its look-ahead back at first).
        self.chunk_samples = int(frames_per_call * self.info.ratio * samplerate / self.info.sr)
        self._buf = np.zeros((self.n_rows, ch, 4 * chunk_out), dtype=np.float32)
        self._start = 0
        self._end = 0
        self.faulted_rows: list[int] = []
        self.calls = 0
        self.decode_s = 0.0  # seconds spent in decode calls, and seconds of audio they made (see run)
        self.decoded_s = 0.0
        # A decode call that raises: silence, re-prime, else reload (live: in the background).
        self.recovery = DecodeRecovery(name)
        # Each prepared call's latents, one array per voice in ``voices`` order, until the engine reports
        # them: every call's, in order, however many calls a block makes or how far ahead they decode.
        self.prepared_latents: list[list[np.ndarray | None]] = []
        # Calls decoding ahead whose audio is not in the FIFO yet (parallel decode): a call prepared now is
        # heard after them, as well as after what the FIFO holds (see ``ahead_samples``).
        self.in_flight = 0
        # Called with (group, z) before each decode, to change the latents in place (section morphs).
        self.shape_latents: Callable[[ModelGroup, np.ndarray], None] | None = None

    @property
    def available(self) -> int:
        """Samples per row ready in the FIFO."""
        return self._end - self._start

    @property
    def ahead_samples(self) -> int:
        """How far ahead of the mix the next prepared call will be heard, in output samples (about one
        call's worth for each call decoding ahead)."""
        return self.available + self.in_flight * self.chunk_samples

    def fill(self, frames: int) -> None:
        """Decode until at least ``frames`` samples per row are ready."""
        while self.available < frames:
            self._decode_chunk()

    def take(self, frames: int) -> np.ndarray:
        """The next ``frames`` samples of every row, [rows, channels, frames].

        A view into the FIFO: valid until the next ``fill``.
        """
        out = self._buf[:, :, self._start : self._start + frames]
        self._start += frames
        return out

    def _decode_chunk(self) -> None:
        self.finish(self.run(self.prepare()))

    def prepare(self) -> np.ndarray:
        """The next call's input [batch, in_channels, frames_per_call]: each voice's latents in its row,
        zeros in the padding rows (engine thread: sources and morphs are stepped here)."""
        n = self.frames_per_call
        z = np.zeros((self.batch, self.info.in_channels, n), dtype=np.float32)
        for voice in self.voices:
            z[voice.row] = voice.latents(n)
        if self.batch > self.n_rows and self.info.conditioning_ranges:
            # Padding rows get valid conditioning (the lowest of each range): zero may be outside it.
            for index, bounds in enumerate(self.info.conditioning_ranges):
                if bounds is not None:
                    z[self.n_rows :, self.info.latent_size + index] = bounds[0]
        if self.shape_latents is not None:
            self.shape_latents(self, z)
        # After the morph, which glides an entering voice's ``last_z`` too: what the model is given.
        self.prepared_latents.append([voice.last_z for voice in self.voices])
        return z

    def run(self, z: np.ndarray) -> np.ndarray:
        """Decode ``z`` and return the voices' rows [rows, channels, samples] at the model's rate.

        Touches only this group's model, so groups may run in parallel threads.
        """
        started = time.perf_counter()
        audio = self.recovery.decode(self, z)
        if not np.isfinite(audio).all():
            # Cached convolutions now hold NaN: restore the state taken after load so the model recovers.
            # Here, in the thread that decodes this model, before its next call is made.
            self.model.reset()
        # Read by the status page (decode load = time spent / audio made); never feeds back into audio.
        self.decode_s += time.perf_counter() - started
        self.decoded_s += self.frames_per_call * self.info.ratio / self.info.sr
        return audio[: self.n_rows] if self.batch > self.n_rows else audio

    def finish(self, audio: np.ndarray) -> None:
        """Note the voices whose audio is not finite (zeroed; ``run`` has reset the model), resample the
        audio and append it to the FIFO (engine thread)."""
        self.calls += 1
        finite = np.isfinite(audio).all(axis=(1, 2))
        self.faulted_rows = [int(r) for r in np.flatnonzero(~finite)]
        if self.faulted_rows:
            audio = np.where(np.isfinite(audio), audio, 0.0).astype(np.float32)
        if self.resampler is not None:
            rows, ch, samples = audio.shape
            audio = self.resampler.process(audio.reshape(rows * ch, samples)).reshape(rows, ch, -1)
        self._append(audio)

    def _append(self, audio: np.ndarray) -> None:
        n = audio.shape[2]
        if self._end + n > self._buf.shape[2]:
            live = self.available
            self._buf[:, :, :live] = self._buf[:, :, self._start : self._end]
            self._start, self._end = 0, live
            if live + n > self._buf.shape[2]:
                grown = np.zeros((*self._buf.shape[:2], 2 * (live + n)), dtype=np.float32)
                grown[:, :, :live] = self._buf[:, :, :live]
                self._buf = grown
        self._buf[:, :, self._end : self._end + n] = audio
        self._end += n
