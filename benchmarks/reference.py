"""A stand-in for a full RAVE v2 decoder's cost: RAVE v2's generator convolution shapes, random weights.

Used to choose the builder's ``hidden`` width so that the benchmark model costs about what a real RAVE v2
decoder (``configs/v2.gin``: capacity 96, ratios 4·4·4·2, dilations 1·3·9, 16 PQMF bands → ratio 2048,
latent 16) costs on the machine at hand. The weights do not matter for the time a convolution takes. The
noise branch and the PQMF synthesis filter are left out, so this is a lower bound of the real cost.

Run ``python -m benchmarks.reference`` to print the seconds of decoding per second of audio of the
reference stack and of builder models of several ``hidden`` widths, at 1 and 2 torch threads.
"""

from __future__ import annotations

import argparse
import statistics
import time

import torch
from torch import nn

from latentd.modelkit.builder import SynthSpec, build_model
from latentd.runtime.process import configure_process

CAPACITY = 96
RATIOS = (4, 4, 4, 2)
DILATIONS = (1, 3, 9)
N_BANDS = 16
LATENT_SIZE = 16
SR = 44100
RATIO = 2048  # prod(RATIOS) * N_BANDS


class _Residual(nn.Module):
    def __init__(self, channels: int, dilation: int) -> None:
        super().__init__()
        self.net = nn.Sequential(
            nn.LeakyReLU(0.2),
            nn.Conv1d(channels, channels, 3, dilation=dilation, padding=dilation),
            nn.LeakyReLU(0.2),
            nn.Conv1d(channels, channels, 1),
        )

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x + self.net(x)


def rave_v2_like_decoder() -> nn.Module:
    """RAVE v2's generator shapes: latent → 1536 channels, four upsampling stages with residual stacks."""
    width = CAPACITY * 2 ** len(RATIOS)
    layers: list[nn.Module] = [nn.Conv1d(LATENT_SIZE, width, 3, padding=1)]
    for r in RATIOS:
        out = width // 2
        layers += [
            nn.LeakyReLU(0.2),
            nn.ConvTranspose1d(width, out, 2 * r, stride=r, padding=r // 2),
            *[_Residual(out, d) for d in DILATIONS],
        ]
        width = out
    layers += [nn.LeakyReLU(0.2), nn.Conv1d(width, 2 * N_BANDS, 3, padding=1)]
    return nn.Sequential(*layers).eval()


def seconds_per_audio_second(fn, z: torch.Tensor, audio_s: float, repeats: int) -> float:
    """Median wall seconds of ``fn(z)`` divided by the seconds of audio it yields."""
    with torch.inference_mode():
        for _ in range(3):
            fn(z)
        times = []
        for _ in range(repeats):
            t0 = time.perf_counter()
            fn(z)
            times.append(time.perf_counter() - t0)
    return statistics.median(times) / audio_s


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--frames", type=int, default=8, help="latent frames per call")
    parser.add_argument("--repeats", type=int, default=20)
    parser.add_argument("--hidden", type=int, nargs="+", default=[64, 128, 192, 256, 320])
    args = parser.parse_args(argv)
    configure_process(1)
    z = torch.randn(1, LATENT_SIZE, args.frames)
    audio_s = args.frames * RATIO / SR
    reference = rave_v2_like_decoder()
    builders = {
        h: build_model(SynthSpec(latent_size=LATENT_SIZE, ratio=RATIO, sr=SR, hidden=h)) for h in args.hidden
    }
    print(f"decode seconds per second of audio ({args.frames} frames per call, batch 1; lower is faster)")
    print(f"{'model':<28} {'1 thread':>10} {'2 threads':>10}")
    for name, fn in [("RAVE v2 shapes (reference)", reference)] + [
        (f"builder hidden={h}", m.decode) for h, m in builders.items()
    ]:
        row = []
        for threads in (1, 2):
            torch.set_num_threads(threads)
            row.append(seconds_per_audio_second(fn, z, audio_s, args.repeats))
        print(f"{name:<28} {row[0]:10.4f} {row[1]:10.4f}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
