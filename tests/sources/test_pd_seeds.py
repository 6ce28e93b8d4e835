"""Seeds as Pure Data has them: float message arguments and unseeded noise~, checked against Pd itself."""

from __future__ import annotations

import datetime as dt
import shutil
import subprocess
from pathlib import Path

import numpy as np
import pytest
import soundfile as sf
from pydantic import ValidationError

from latentd.control.scheduler import day_seed
from latentd.engine.command_base import SEED_MODULUS
from latentd.engine.voice import voice_seed
from latentd.sources.noise import derived_seeds, pd_noise_audio, pd_seed_changes
from latentd.sources.pd import PD_EXACT_LIMIT, pd_exact, pd_instance_seed, pd_seed, to_int32

from .helpers import SPEC_ADAPTER, make

INT32_MIN = -(2**31)


# ------------------------------------------------------------------------------------- Pd's arithmetic
@pytest.mark.parametrize(
    ("typed", "plays"),
    [
        (16777216, 16777216),
        (16777217, 16777216),  # the first integer a 32-bit float cannot hold
        (20261125, 20261124),  # halfway: ties to the even mantissa
        (20261127, 20261128),
        (-16777217, -16777216),
        (3000000000, INT32_MIN),  # beyond the int range: x86-64 gives the "integer indefinite" value
        (2**31 - 1, INT32_MIN),  # rounds up to 2^31, out of range
        (INT32_MIN, INT32_MIN),
        (123456789, 123456792),
        (5, 5),
    ],
)
def test_a_seed_message_argument_goes_through_a_32_bit_float(typed: int, plays: int) -> None:
    assert pd_seed(typed) == plays
    assert pd_exact(typed) == (typed == plays)


def test_fractions_are_cut_towards_zero_as_c_does() -> None:
    assert pd_seed(2.9) == 2 and pd_seed(-2.9) == -2


def test_unseeded_noise_instances_follow_pd_s_static_multiplier() -> None:
    init = 307  # Pd: static int init = 307; each new noise~ does x_val = (init *= 1319)
    for k in range(1, 2001):
        init = to_int32(init * 1319)
        assert pd_instance_seed(k) == init
    assert [pd_instance_seed(k) for k in (1, 2, 3)] == [404933, 534106627, 112004469]
    with pytest.raises(ValueError, match="count from 1"):
        pd_instance_seed(0)


# ------------------------------------------------------------------------------ seeds latentd derives
def test_voice_and_day_seeds_can_be_typed_into_pd() -> None:
    assert SEED_MODULUS == PD_EXACT_LIMIT
    for piece_seed in (0, 1, 2**32 - 1):
        for i in range(300):
            for seed in (
                voice_seed(piece_seed, f"v{i}"),
                day_seed(piece_seed, dt.date(2026, 12, 1), f"v{i}"),
            ):
                assert 0 <= seed < PD_EXACT_LIMIT and pd_exact(seed)


def test_derived_dimension_seeds_count_on_from_1_past_2_24() -> None:
    base = PD_EXACT_LIMIT - 1500
    assert derived_seeds(base, 4) == [base, base + 1000, 500, 1500]
    assert derived_seeds(PD_EXACT_LIMIT, 2) == [PD_EXACT_LIMIT, 1000]
    assert all(pd_exact(s) for b in (0, 9_999_999, PD_EXACT_LIMIT - 1) for s in derived_seeds(b, 128))
    # A base Pd cannot take exactly keeps the plain sums (the streams take them mod 2^32).
    assert derived_seeds(3_000_000_000, 2) == [3_000_000_000, 3_000_001_000]
    assert derived_seeds(-5, 2) == [-5, 995]


def test_default_seeds_of_a_voice_near_the_limit_wrap_in_the_stream_too() -> None:
    seed = PD_EXACT_LIMIT - 1500
    frames = make({"kind": "noise"}, latent_size=3, ratio=64, seed=seed).step(10)
    for dim, expected in enumerate([seed, seed + 1000, 500]):
        np.testing.assert_array_equal(frames[dim], pd_noise_audio(expected, 640)[63::64])


# ------------------------------------------------------------------------------- seeds from a Pd patch
def test_seeds_from_pd_play_what_pd_makes_of_them() -> None:
    written = [16777217, 20261125, 3000000000, 5]
    source = make({"kind": "noise", "seeds": written, "seed_from": "pd"}, latent_size=4, ratio=64)
    frames = source.step(20)
    for dim, plays in enumerate([16777216, 20261124, INT32_MIN, 5]):
        np.testing.assert_array_equal(frames[dim], pd_noise_audio(plays, 20 * 64)[63::64])
    exact = make({"kind": "noise", "seeds": written}, latent_size=4, ratio=64).step(20)
    assert not np.array_equal(exact[0], frames[0])  # the integer as written is another stream


def test_every_changed_seed_is_reported_with_its_key() -> None:
    spec = SPEC_ADAPTER.validate_python(
        {"kind": "noise", "seeds": [16777217, 5, 3000000000], "seed_from": "pd"}
    )
    changes = pd_seed_changes(spec, 3)
    assert [(c.key, c.written, c.plays) for c in changes] == [
        ("seeds[0]", 16777217, 16777216),
        ("seeds[2]", 3000000000, INT32_MIN),
    ]
    assert "seeds[0]: Pd turns seed 16777217 into 16777216" in str(changes[0])
    exact = SPEC_ADAPTER.validate_python({"kind": "noise", "seeds": [16777217, 5, 3000000000]})
    assert pd_seed_changes(exact, 3) == []


def test_a_pd_seed_bank_converts_each_entry_and_each_derived_seed() -> None:
    bank = [20261125, [16777217, 1]]
    spec = {"kind": "noise", "seed_bank": bank, "seed_from": "pd"}
    changes = pd_seed_changes(SPEC_ADAPTER.validate_python(spec), 2)
    assert [(c.key, c.written, c.plays, c.dim) for c in changes] == [
        ("seed_bank[0]", 20261125, 20261124, None),
        ("seed_bank[1][0]", 16777217, 16777216, None),
    ]
    far = SPEC_ADAPTER.validate_python({"kind": "noise", "seed_bank": [200000001], "seed_from": "pd"})
    assert [(c.key, c.written, c.plays, c.dim) for c in pd_seed_changes(far, 2)] == [
        ("seed_bank[0]", 200000001, 200000000, None),
        ("seed_bank[0]", 200001000, 200000992, 1),  # floats are 16 apart up there
    ]
    source = make(spec, latent_size=2, ratio=64)
    for i, seeds in enumerate([[20261124, 20262124], [16777216, 1]]):
        if i:
            source.trigger()
        frames = source.step(4)
        for dim, seed in enumerate(seeds):
            np.testing.assert_array_equal(frames[dim], pd_noise_audio(seed, 4 * 64)[63::64])


def test_pd_instance_plays_the_k_th_unseeded_noise() -> None:
    source = make({"kind": "noise", "pd_instance": 3}, latent_size=2, ratio=64, seed=1)
    frames = source.step(10)
    for dim, k in enumerate([3, 4]):
        np.testing.assert_array_equal(frames[dim], pd_noise_audio(pd_instance_seed(k), 640)[63::64])
    source.reseed(99)  # pinned like `seeds`: a new voice seed does not move them
    np.testing.assert_array_equal(source.step(10), frames)
    listed = make({"kind": "noise", "pd_instance": [7, 2]}, latent_size=2, ratio=64).step(1)
    assert listed[1, 0] == pd_noise_audio(pd_instance_seed(2), 64)[63]


@pytest.mark.parametrize(
    ("spec", "message"),
    [
        ({"kind": "noise", "pd_instance": 1, "seeds": [1]}, "either `pd_instance` or `seeds`"),
        ({"kind": "noise", "seed_from": "pd"}, 'seed_from = "pd" applies to `seeds` and `seed_bank`'),
        ({"kind": "noise", "pd_instance": 0}, "greater than or equal to 1"),
        ({"kind": "noise", "seed_from": "max", "seeds": [1]}, "'exact' or 'pd'"),
    ],
)
def test_pd_options_are_checked(spec: dict[str, object], message: str) -> None:
    with pytest.raises(ValidationError, match=message):
        SPEC_ADAPTER.validate_python(spec)


def test_a_list_of_instances_must_match_latent_size() -> None:
    with pytest.raises(ValueError, match=r"`pd_instance`: 1 instance numbers given, but latent_size is 2"):
        make({"kind": "noise", "pd_instance": [1]}, latent_size=2)


# ---------------------------------------------------------------------------------------- Pd itself
N_SAMPLES = 4096
RATIO = 64
# (message box before the noise~, or None for an unseeded one), in creation order.
PATCH_NOISES: list[str | None] = [
    None,
    "seed 16777217",
    None,
    "seed 20261125",
    "seed 3000000000",
    None,
    "seed -5",
]


def pd_patch(out: Path) -> str:
    """A patch recording N_SAMPLES of every noise~ in PATCH_NOISES into one float WAV, then quitting."""
    arrays = " ".join(f"n{i}" for i in range(len(PATCH_NOISES)))
    lines = [
        "#N canvas 0 0 800 400 12;",
        "#X obj 10 10 loadbang;",  # 0
        "#X obj 10 40 t b b b;",  # 1: right to left: seeds, then DSP on and recording, then the delay
        "#X msg 10 70 \\; pd dsp 1;",  # 2
        "#X obj 10 100 delay 1000;",  # 3
        f"#X msg 10 130 write -bytes 4 {out} {arrays};",  # 4
        "#X obj 10 160 soundfiler;",  # 5
        "#X msg 10 190 \\; pd quit;",  # 6
    ]
    connects = ["0 0 1 0", "1 0 3 0", "1 1 2 0", "3 0 4 0", "4 0 5 0", "5 0 6 0"]
    index = len(lines) - 2  # the last object so far (the first line is the canvas, not an object)
    for i, message in enumerate(PATCH_NOISES):
        x = 200 + 80 * i
        if message is not None:
            lines.append(f"#X msg {x} 10 {message};")
            index += 1
            connects += [f"1 2 {index} 0", f"{index} 0 {index + 1} 0"]
        lines += [
            f"#X obj {x} 40 noise~;",
            f"#X obj {x} 70 tabwrite~ n{i};",
            f"#X obj {x} 100 table n{i} {N_SAMPLES};",
        ]
        connects += [f"{index + 1} 0 {index + 2} 0", f"1 1 {index + 2} 0"]
        index += 3
    return "\n".join(lines + [f"#X connect {c};" for c in connects]) + "\n"


@pytest.mark.skipif(shutil.which("pd") is None, reason="Pure Data (puredata-core) is not installed")
def test_the_noise_source_plays_what_pd_plays(tmp_path: Path) -> None:
    out = tmp_path / "noise.wav"
    patch = tmp_path / "noise.pd"
    patch.write_text(pd_patch(out))
    run = subprocess.run(
        ["pd", "-nogui", "-batch", "-nosound", "-noprefs", "-r", "48000", "-open", str(patch)],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert out.exists(), f"pd wrote no file: {run.stderr}"
    audio, _ = sf.read(out, dtype="float32", always_2d=True)
    assert audio.shape == (N_SAMPLES, len(PATCH_NOISES))
    for column, message in enumerate(PATCH_NOISES):
        instance = column + 1  # every noise~ counts, seeded or not
        if message is None:
            spec: dict[str, object] = {"kind": "noise", "pd_instance": instance}
        else:
            spec = {"kind": "noise", "seeds": [int(message.split()[1])], "seed_from": "pd"}
        # ratio 1: the audio stream itself; RATIO: what nn~ reads from it.
        stream = make(spec, latent_size=1, ratio=1).step(N_SAMPLES)[0]
        np.testing.assert_array_equal(stream, audio[:, column], err_msg=f"noise~ number {instance}")
        frames = make(spec, latent_size=1, ratio=RATIO).step(N_SAMPLES // RATIO)[0]
        np.testing.assert_array_equal(frames, audio[RATIO - 1 :: RATIO, column])
