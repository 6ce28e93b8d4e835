"""The capacity verdict: ``latentd check --load`` on a real piece, and the verdict's wording."""

from __future__ import annotations

import re

from latentd.cli import main
from latentd.engine.callshape import CallShape
from latentd.modelkit.builder import SynthSpec
from latentd.offline.capacity import MARGIN, ModelLoad, Verdict, spread
from tests.pieces import write_piece


def test_check_load_prints_each_model_the_engine_and_the_piece(tmp_path, model_factory, capsys):
    config = write_piece(
        tmp_path,
        models={
            "a": model_factory(SynthSpec(latent_size=4, ratio=1024, sr=48000)),
            "b": model_factory(SynthSpec(latent_size=8, ratio=512, sr=44100, base_hz=440.0)),
        },
        voices={
            "x": {"model": "a", "source": {"kind": "walk"}},
            "y": {"model": "b", "source": {"kind": "walk"}},
            "z": {"model": "b", "source": {"kind": "noise", "smooth_s": 0.2}},
        },
    )
    code = main(["check", "--config", str(config), "--load"])
    out = capsys.readouterr().out
    assert re.search(r"^ok: ", out, re.MULTILINE)
    assert re.search(r"model a \(.*\): batch \d+ \(1 voice.*\) × 4 frames: [\d.]+ ms per call .*: \d+ %", out)
    assert re.search(r"model b \(.*\): batch \d+ \(2 voices.*\) × 4 frames", out)
    assert re.search(r"engine \(sources, resampling, mixing\): \d+ %", out)
    piece = re.search(r"piece: (\d+) % of real time, margin ([\d.]+)× \(predicted render speed", out)
    assert piece, out
    keeps_up = float(piece.group(2)) >= MARGIN
    assert ("keeps up" in out) == keeps_up and ("WILL NOT KEEP UP" in out) == (not keeps_up)
    assert code == (0 if keeps_up else 1)


def load(name: str, ms: float, rows: int = 1, fewer: float | None = None, **more: float) -> ModelLoad:
    shape = CallShape(rows, max(rows, 2), 2)
    frames = {int(k[1:]): v for k, v in more.items()}
    return ModelLoad(name, f"{name}.ts", shape, ms / 1000, 0.0929, fewer, frames)


def test_a_piece_below_the_margin_will_not_keep_up_and_says_what_to_change():
    verdict = Verdict(
        models=(load("rave", 60.0, rows=2, fewer=0.45, f4=0.30), load("chaos", 20.0)),
        engine_share=0.05,
        decode_threads=1,
        torch_threads=1,
        cores=4,
    )
    assert verdict.margin < MARGIN and not verdict.keeps_up
    text = "\n".join(verdict.lines())
    assert "WILL NOT KEEP UP: the margin is below 1.3×" in text
    assert (
        "model rave (rave.ts): batch 2 (2 voices) × 2 frames: 60.0 ms per call of 92.9 ms audio: 65 %" in text
    )
    assert "to change:" in text
    assert "model rave: 4 frames per call (frames_per_call, or decode_latency_ms >= 186) needs 30 %" in text
    assert "model rave: one voice fewer (1) needs 45 %" in text
    # Beside the mixing, on two threads: the larger of rave (65 %) and chaos + engine spread on the cores.
    assert (
        "decode_threads = 2 (models decoded beside the mixing and each other, on 4 cores): the piece 65 %"
        in text
    )


def test_a_piece_with_margin_keeps_up_and_parallel_decode_counts_the_largest_model():
    verdict = Verdict(
        models=(load("a", 30.0), load("b", 30.0)),
        engine_share=0.02,
        decode_threads=2,
        torch_threads=1,
        cores=4,
    )
    # The two models at once, beside the engine's own work: the larger model sets the pace.
    assert abs(verdict.share - 0.3229) < 0.001
    assert verdict.keeps_up and "to change" not in "\n".join(verdict.lines())
    assert abs(spread([0.2] * 3, 2, 4) - 0.3) < 1e-9  # three models on two threads
    assert spread([0.5, 0.1], 4, 1) == 0.6  # one core: the sum


def test_models_that_draw_random_numbers_count_as_one_lane_and_the_advice_names_parallel_random():
    verdict = Verdict(
        models=(load("rave", 60.0), load("chaos", 40.0), load("plain", 30.0)),
        engine_share=0.05,
        decode_threads=3,
        torch_threads=1,
        cores=4,
        lane=frozenset({"rave", "chaos"}),
    )
    # rave and chaos one after another (0.646 + 0.431), beside plain: the lane is the larger.
    assert abs(verdict.share - 1.0764) < 0.001
    text = "\n".join(verdict.lines())
    assert "decode_threads = " not in text  # more threads would not help the lane
    assert "parallel_random = true (models chaos, rave draw random numbers" in text
    assert re.search(r"parallel_random = true .*: the piece 65 %, margin 1\.55×", text), text


def test_one_model_whose_mixing_adds_too_much_is_told_to_decode_beside_it():
    verdict = Verdict(
        models=(load("rave", 60.0),), engine_share=0.2, decode_threads=1, torch_threads=1, cores=2
    )
    assert abs(verdict.share - (0.6459 + 0.2)) < 0.001 and not verdict.keeps_up  # in the engine's thread
    text = "\n".join(verdict.lines())
    assert (
        "decode_threads = 2 (models decoded beside the mixing and each other, on 2 cores): the piece 65 %"
        in text
    )
    beside = Verdict(
        models=(load("rave", 60.0),), engine_share=0.2, decode_threads=2, torch_threads=1, cores=2
    )
    assert abs(beside.share - 0.6459) < 0.001 and beside.keeps_up
    one_core = Verdict(
        models=(load("rave", 60.0),), engine_share=0.2, decode_threads=2, torch_threads=1, cores=1
    )
    assert abs(one_core.share - (0.6459 + 0.2)) < 0.001  # nothing runs beside on one core
