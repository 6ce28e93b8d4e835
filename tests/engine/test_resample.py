"""latentd's resampler: audio quality measured with tones, chunking-proof bits, a state that restores."""

from __future__ import annotations

import numpy as np
import pytest

from benchmarks.resample import SKIP, tone
from latentd.engine.resample import Resampler, resample

PAIRS = [(44100, 48000), (48000, 44100), (22050, 48000), (16000, 48000), (48000, 32000), (96000, 44100)]


@pytest.mark.parametrize(("samplerate_in", "samplerate_out"), PAIRS)
def test_the_passband_is_flat_linear_phase_and_images_and_aliases_are_80_db_down(
    samplerate_in, samplerate_out
):
    nyquist = min(samplerate_in, samplerate_out) / 2
    gains, phases, rests = zip(
        *(tone(samplerate_in, samplerate_out, f) for f in np.linspace(50, 0.9 * nyquist, 9)),
        strict=True,
    )
    assert max(gains) - min(gains) <= 0.1 and max(abs(g) for g in gains) <= 0.05
    assert max(abs(p) for p in phases) < 1e-3  # no delay: time-aligned at every frequency
    assert max(rests) <= -80.0  # images (up) and aliases (down) of passband tones
    if samplerate_in > samplerate_out:  # input above the output's Nyquist: only its aliases come out
        for f in np.linspace(nyquist, 0.98 * samplerate_in / 2, 7):
            x = np.sin(2 * np.pi * f * np.arange(samplerate_in // 4) / samplerate_in).astype(np.float32)[None]
            y = Resampler(samplerate_in, samplerate_out, 1).process(x)[0, SKIP:-SKIP]
            assert 20 * np.log10(np.sqrt(2 * np.mean(y.astype(np.float64) ** 2))) <= -80.0


@pytest.mark.parametrize(("samplerate_in", "samplerate_out"), PAIRS[:4])
def test_the_output_has_the_same_bits_however_the_input_is_chunked(samplerate_in, samplerate_out):
    rng = np.random.default_rng(samplerate_in + samplerate_out)
    x = rng.standard_normal((3, 12000)).astype(np.float32)
    whole = Resampler(samplerate_in, samplerate_out, 3).process(x)
    resampler = Resampler(samplerate_in, samplerate_out, 3)
    parts, i = [], 0
    while i < x.shape[1]:
        n = int(rng.choice([0, 1, 2, 3, 64, 500, 2049]))
        parts.append(resampler.process(x[:, i : i + n]))
        i += n
    np.testing.assert_array_equal(np.concatenate(parts, axis=1), whole)
    # All of it comes out but the held-back look-ahead, and the counters say so.
    assert resampler.samples_in == 12000 and resampler.samples_out == whole.shape[1]
    assert whole.shape[1] == int(np.ceil((12000 - resampler.latency_in) * samplerate_out / samplerate_in))


def test_a_restored_state_continues_the_stream_bit_for_bit():
    rng = np.random.default_rng(5)
    x = rng.standard_normal((2, 9000)).astype(np.float32)
    live = Resampler(44100, 48000, 2)
    head = live.process(x[:, :3001])  # mid-phase: 3001 is no multiple of 147
    state = live.state()
    tail = live.process(x[:, 3001:])
    other = Resampler(44100, 48000, 2)
    other.restore(state)
    state.pending[:] = 0  # the state handed out is a copy: the restored stream does not share it
    np.testing.assert_array_equal(other.process(x[:, 3001:]), tail)
    fresh = Resampler(44100, 48000, 2).process(x[:, 3001:])
    assert head.shape[1] > 0 and not np.array_equal(fresh, tail)
    with pytest.raises(ValueError, match="resampler state has 2 channels, expected 3"):
        Resampler(44100, 48000, 3).restore(state)
    with pytest.raises(ValueError, match=r"expects \[2, samples\], got \[3, 10\]"):
        other.process(np.zeros((3, 10), dtype=np.float32))


def test_a_constant_stays_exactly_constant():
    y = Resampler(44100, 48000, 1).process(np.full((1, 5000), 0.5, dtype=np.float32))
    np.testing.assert_allclose(y[0, 200:], 0.5, rtol=0, atol=1e-6)


def test_a_whole_signal_resamples_to_its_full_length_and_matches_the_stream():
    x = np.random.default_rng(2).standard_normal(4410).astype(np.float32)
    y = resample(x, 44100, 48000)
    assert y.shape == (4800,)
    stream = Resampler(44100, 48000, 1).process(x[None])[0]
    np.testing.assert_array_equal(y[: len(stream)], stream)  # the tail reads the end as silence
