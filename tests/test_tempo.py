"""Tempo of latent loops: the BPM table and the nearest achievable tempo."""

from __future__ import annotations

import argparse

import numpy as np
import pytest

from latentd.cli.tempo import add_commands
from latentd.tempo import bpm, nearest_k, tempo_table
from tests.sources.helpers import make


def test_bpm_of_a_loop_of_k_frames() -> None:
    assert bpm(44100, 2048, 11) == pytest.approx(117.45, abs=0.005)
    assert bpm(48000, 1024, 1) == pytest.approx(60 * 48000 / 1024)


def test_table_rows_hold_k_bpm_and_double_time() -> None:
    table = tempo_table(44100, 2048)
    assert [row[0] for row in table] == list(range(1, 33))
    k, one, two = table[10]
    assert k == 11 and one == pytest.approx(117.45, abs=0.005) and two == pytest.approx(234.91, abs=0.005)


def test_nearest_tempo_and_its_message() -> None:
    match = nearest_k(44100, 2048, 120)
    assert (match.k, round(match.bpm, 2)) == (11, 117.45)
    assert not match.exact
    assert "120.00 BPM is not achievable exactly; nearest is 117.45 BPM with k = 11" in match.message
    assert "k = 10: 129.20 BPM" in match.message
    exact = nearest_k(44100, 2048, bpm(44100, 2048, 7))
    assert exact.k == 7 and exact.exact and "is exact" in exact.message
    # Very fast tempi stay at one frame per beat.
    assert nearest_k(44100, 2048, 5000).k == 1


def test_bad_numbers_are_refused() -> None:
    with pytest.raises(ValueError, match="tempo must be a positive number of BPM, got 0"):
        nearest_k(44100, 2048, 0)
    with pytest.raises(ValueError, match="ratio >= 1"):
        bpm(44100, 0, 1)
    with pytest.raises(ValueError, match=r"k \(latent frames per beat\) must be >= 1"):
        bpm(44100, 2048, 0)


def run(argv: list[str]) -> int:
    parser = argparse.ArgumentParser(prog="latentd")
    add_commands(parser.add_subparsers())
    args = parser.parse_args(argv)
    return int(args.func(args))


def test_tempo_command_prints_the_table_and_the_nearest_tempo(capsys: pytest.CaptureFixture[str]) -> None:
    assert run(["tempo", "--samplerate", "44100", "--ratio", "2048", "--bpm", "120"]) == 0
    out = capsys.readouterr().out
    rows = [line.split() for line in out.splitlines() if line.split() and line.split()[0].isdigit()]
    assert [int(r[0]) for r in rows] == list(range(1, 33))
    assert rows[10] == ["11", "117.45", "234.91"]
    assert "nearest is 117.45 BPM with k = 11" in out


def test_tempo_command_without_a_rate_is_an_error(capsys: pytest.CaptureFixture[str]) -> None:
    assert run(["tempo", "--samplerate", "44100"]) == 2
    assert "give --model M.ts, or both --samplerate and --ratio" in capsys.readouterr().err


def test_steps_follow_a_tempo_as_whole_latent_frames() -> None:
    source = make({"kind": "steps", "n_steps": 4, "bpm": 120}, latent_size=2, latent_rate_hz=44100 / 2048)
    assert source.tempo is not None and source.tempo.k == 11  # type: ignore[attr-defined]
    assert "nearest is 117.45 BPM" in source.tempo.message  # type: ignore[attr-defined]
    frames = source.step(44)
    changes = np.flatnonzero(np.any(np.diff(frames, axis=1) != 0, axis=0)) + 1
    assert list(changes) == [11, 22, 33]
    with pytest.raises(ValueError, match="either `step_s` or `bpm`"):
        make({"kind": "steps", "bpm": 120, "step_s": 0.5})
    with pytest.raises(ValueError, match='needs advance = "time"'):
        make({"kind": "steps", "bpm": 120, "advance": "trigger"})


def test_pattern_bases_follow_a_tempo() -> None:
    source = make({"kind": "pattern", "bpm": 120}, latent_size=2, latent_rate_hz=44100 / 2048)
    assert source.tempo.k == 11  # type: ignore[attr-defined]
    assert source.frames.shape == (11, 2)  # type: ignore[attr-defined]
    with pytest.raises(ValueError, match="either `frames` or `bpm`"):
        make({"kind": "pattern", "bpm": 120, "frames": 8})
