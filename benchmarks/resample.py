"""latentd's resampler: its quality measured with tones, and its cost per second of audio beside soxr's "HQ".

Quality: unit sines through the whole passband (up to 0.9 × the lower Nyquist frequency) give the gain
ripple, the phase error against the ideal time-aligned sine, and what else comes out (images when going
up, aliases when going down); sines between the output's Nyquist frequency and the input's give the
aliases left when going down. Cost: a 1 s signal fed in chunks of 2048 input samples (about what a
model group hands over per decode call), the best of a few repeats, in the same run for both resamplers
(soxr only when it is installed: latentd no longer needs it).

Run ``python -m benchmarks.resample`` (``--quick``: fewer tones and repeats).
"""

from __future__ import annotations

import argparse
import time
from typing import Any

import numpy as np

from benchmarks.common import table, write_result
from latentd.engine.resample import Resampler

PAIRS = [(44100, 48000), (48000, 44100), (22050, 48000), (16000, 48000), (48000, 32000), (96000, 48000)]
CHUNK = 2048
SKIP = 1000  # output samples left out at each end (the stream's start and its held-back look-ahead)


def tone(samplerate_in: int, samplerate_out: int, freq_hz: float) -> tuple[float, float, float]:
    """Resample a 0.25 s unit sine: its gain (dB), its phase error (rad), and the rest of the output (dB).

    The fit is against the same sine at the output's sample times, so a delay shows as a phase error
    and anything that is not the sine (images, aliases, noise) as the rest. A sine above the output's
    Nyquist frequency should vanish: its gain is then the level of what came out.
    """
    n = samplerate_in // 4
    x = np.sin(2 * np.pi * freq_hz * np.arange(n) / samplerate_in).astype(np.float32)[None]
    y = Resampler(samplerate_in, samplerate_out, 1).process(x)[0, SKIP:-SKIP].astype(np.float64)
    if freq_hz >= samplerate_out / 2:
        return _db(np.sqrt(2 * np.mean(y**2))), 0.0, -np.inf
    t = (SKIP + np.arange(len(y))) / samplerate_out
    basis = np.stack([np.sin(2 * np.pi * freq_hz * t), np.cos(2 * np.pi * freq_hz * t)], axis=1)
    (s, c), *_ = np.linalg.lstsq(basis, y, rcond=None)
    rest = y - basis @ (s, c)
    return _db(np.hypot(s, c)), float(np.arctan2(c, s)), _db(np.sqrt(2 * np.mean(rest**2)))


def _db(value: float) -> float:
    return float(20 * np.log10(max(value, 1e-12)))


def quality(samplerate_in: int, samplerate_out: int, tones: int) -> dict[str, float]:
    """Passband ripple (dB), largest phase error (rad), worst image or alias (dB) for one rate pair."""
    nyquist = min(samplerate_in, samplerate_out) / 2
    passband = [tone(samplerate_in, samplerate_out, f) for f in np.linspace(50, 0.9 * nyquist, tones)]
    gains = [g for g, _, _ in passband]
    worst = max(r for _, _, r in passband)
    if samplerate_in > samplerate_out:
        for f in np.linspace(nyquist, 0.98 * samplerate_in / 2, tones):
            worst = max(worst, tone(samplerate_in, samplerate_out, f)[0])
    return {
        "ripple_db": max(gains) - min(gains),
        "phase_error_rad": max(abs(p) for _, p, _ in passband),
        "worst_image_or_alias_db": worst,
    }


def cost(samplerate_in: int, samplerate_out: int, channels: int, repeats: int) -> dict[str, float]:
    """Seconds of work per second of audio, latentd's resampler and soxr's HQ stream (when installed)."""
    x = np.random.default_rng(0).standard_normal((channels, samplerate_in)).astype(np.float32)
    chunks = range(0, samplerate_in, CHUNK)

    def ours() -> None:
        resampler = Resampler(samplerate_in, samplerate_out, channels)
        for start in chunks:
            resampler.process(x[:, start : start + CHUNK])

    out = {"latentd_s": _best(ours, repeats)}
    try:
        import soxr
    except ImportError:
        return out
    rows = np.ascontiguousarray(x.T)  # soxr takes [samples, channels]

    def theirs() -> None:
        stream = soxr.ResampleStream(samplerate_in, samplerate_out, channels, dtype="float32", quality="HQ")
        for start in chunks:
            stream.resample_chunk(rows[start : start + CHUNK])

    out["soxr_s"] = _best(theirs, repeats)
    out["ratio"] = out["latentd_s"] / out["soxr_s"]
    return out


def _best(run: Any, repeats: int) -> float:
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        run()
        times.append(time.perf_counter() - start)
    return min(times)


def main(argv: list[str] | None = None) -> int:
    """Print both tables and write ``benchmarks/results/resample.json``."""
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--quick", action="store_true", help="fewer tones and repeats")
    args = parser.parse_args(argv)
    tones, repeats = (5, 2) if args.quick else (25, 7)
    rows: list[dict[str, Any]] = []
    for samplerate_in, samplerate_out in PAIRS:
        row: dict[str, Any] = {"pair": f"{samplerate_in}->{samplerate_out}"}
        row.update(quality(samplerate_in, samplerate_out, tones))
        for channels in (1, 8):
            row.update(
                {
                    f"{k}_{channels}ch": v
                    for k, v in cost(samplerate_in, samplerate_out, channels, repeats).items()
                }
            )
        rows.append(row)
    print("## resample: quality (tones up to 0.9 × the lower Nyquist frequency)")
    print(
        table(
            ["pair", "ripple dB", "phase error rad", "worst image/alias dB"],
            [[r["pair"], r["ripple_db"], r["phase_error_rad"], r["worst_image_or_alias_db"]] for r in rows],
        )
    )
    print("\n## resample: seconds of work per second of audio (chunks of 2048 input samples)")
    print(
        table(
            ["pair", "latentd 1 ch", "soxr 1 ch", "ratio", "latentd 8 ch", "soxr 8 ch", "ratio"],
            [
                [r["pair"]]
                + [r.get(f"{k}_{ch}ch", "-") for ch in (1, 8) for k in ("latentd_s", "soxr_s", "ratio")]
                for r in rows
            ],
        )
    )
    write_result("resample", {"rows": rows})
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
