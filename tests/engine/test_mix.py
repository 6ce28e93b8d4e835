"""The master bus's DC blocker and limiter against their plain formulas, and snapshots that share parts."""

from __future__ import annotations

import numpy as np

from latentd.config import load_config
from latentd.engine import commands as c
from latentd.engine.engine import Engine
from latentd.engine.mix import DcBlocker, Limiter
from latentd.installation.piece import load_installation
from latentd.modelkit.builder import SynthSpec
from tests.pieces import write_piece


def reference_dc(blocks: list[np.ndarray], r: float) -> list[np.ndarray]:
    """The DC blocker's closed form with numpy's diff and cumsum, block by block."""
    x1 = np.zeros(blocks[0].shape[0])
    y1 = np.zeros(blocks[0].shape[0])
    out = []
    for block in blocks:
        x = block.astype(np.float64)
        d = np.diff(x, axis=1, prepend=x1[:, None])
        n = x.shape[1]
        powers = r ** np.arange(n + 1)
        y = np.cumsum(d / powers[:n], axis=1) * powers[:n] + y1[:, None] * powers[1:]
        x1, y1 = x[:, -1].copy(), y[:, -1].copy()
        out.append(y.astype(np.float32))
    return out


def test_dc_blocker_gives_the_closed_form_bit_for_bit():
    rng = np.random.default_rng(3)
    blocks = [(rng.standard_normal((8, 256)) * 0.3 + 0.2).astype(np.float32) for _ in range(40)]
    dc = DcBlocker(8, 5.0, 48000)
    got = [dc.process(b.copy()) for b in blocks]
    want = reference_dc(blocks, dc.r)
    for g, w in zip(got, want, strict=True):
        np.testing.assert_array_equal(g.view(np.uint32), w.view(np.uint32))
    assert abs(float(np.mean(got[-1]))) < 0.05, "the offset is not removed"


def test_limiter_passes_quiet_blocks_unchanged_and_holds_loud_ones_under_the_ceiling():
    rng = np.random.default_rng(4)
    limiter = Limiter(2, 128, -1.0, 50.0, 48000)
    ceiling = 10 ** (-1.0 / 20)
    quiet = [(rng.standard_normal((2, 128)) * 0.1).astype(np.float32) for _ in range(3)]
    loud = [(rng.standard_normal((2, 128)) * 2.0).astype(np.float32) for _ in range(3)]
    outs = []
    for block in [*quiet, *loud, *quiet]:
        outs.append(limiter.process(block.copy()))
        np.testing.assert_array_equal(limiter.out_peaks, np.max(np.abs(outs[-1]), axis=1))
    # One block of delay: the quiet blocks before the loud ones come out exactly as they went in.
    for got, sent in zip(outs[1:3], quiet[:2], strict=True):
        np.testing.assert_array_equal(got, sent)
    assert max(float(np.abs(out).max()) for out in outs) <= ceiling
    assert float(np.abs(outs[4]).max()) > 0.5 * ceiling, "the loud blocks are silenced instead of limited"
    assert limiter.reduction_db > 0.0, "the limiter released at once"


def test_snapshots_share_what_did_not_change_and_show_every_change(tmp_path, model_factory):
    model = model_factory(SynthSpec(latent_size=4, ratio=1024, sr=48000))
    config = write_piece(
        tmp_path, models={"m": model}, voices={"v": {"model": "m", "source": {"kind": "walk"}}}
    )
    engine = Engine(load_installation(load_config(config)), fade_in_s=0.0)
    engine.next_block()
    first = engine.snapshot
    engine.next_block()
    second = engine.snapshot
    assert second.block == first.block + 1 and second.voices is first.voices
    engine.submit(c.SetVoiceGain("v", 0.25))
    engine.next_block()
    assert engine.snapshot.voices["v"].gain == 0.25 and first.voices["v"].gain != 0.25
    engine.voices["v"].mute.set(0.0)  # a change made outside a command shows too
    engine.next_block()
    assert engine.snapshot.voices["v"].muted and not second.voices["v"].muted
    assert engine.snapshot.counters["blocks"] == engine.snapshot.block == 4
