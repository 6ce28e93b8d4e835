"""``latentd seeds``: each voice's seeds and source settings as Pd message boxes."""

from __future__ import annotations

import re
from pathlib import Path

import numpy as np
import pytest

from latentd.cli import main
from latentd.cli.common import EXIT_INVALID, EXIT_OK
from latentd.config import load_config
from latentd.installation.piece import load_installation
from latentd.modelkit.builder import SynthSpec
from latentd.sources.pd import pd_instance_seed
from tests.pieces import write_piece

VOICES = {
    "n": {"model": "a", "source": {"kind": "noise"}},
    "p": {"model": "a", "source": {"kind": "noise", "seeds": [16777217, 2, 3, 4], "seed_from": "pd"}},
    "i": {"model": "a", "source": {"kind": "noise", "pd_instance": 5}},
    "t": {"model": "a", "source": {"kind": "table", "points": 8, "width": 0.5}},
    "s": {"model": "a", "source": {"kind": "steps", "n_steps": 3}},
    "l": {"model": "a", "source": {"kind": "lfo", "freq_hz": [0.01, 0.02, 0.03, 0.04]}},
}


@pytest.fixture
def piece(tmp_path: Path, model_factory) -> Path:
    model = model_factory(SynthSpec(latent_size=4, ratio=1024, sr=48000))
    return write_piece(tmp_path, models={"a": model}, voices=VOICES)


def boxes(line: str) -> list[str]:
    """The message boxes ``[...(`` of an output line, their text only."""
    return re.findall(r"\[([^\[]*)\(", line)


def test_seeds_prints_what_each_voice_plays_as_pd_messages(piece: Path, capsys) -> None:
    assert main(["seeds", "-c", str(piece)]) == EXIT_OK
    captured = capsys.readouterr()
    out = captured.out.splitlines()
    voices = load_installation(load_config(piece), warm_up=False).voices

    def lines(prefix: str) -> list[str]:
        return [line for line in out if line.startswith(prefix)]

    # The voice seed and its per-dimension seeds, each one a seed Pd takes exactly.
    seed = voices["n"].seed
    assert f"source noise; voice seed {seed}" in captured.out
    assert [boxes(line) for line in lines("n.")] == [[f"seed {seed + 1000 * d}"] for d in range(4)]
    # Seeds from a Pd patch are shown as Pd plays them, and the change is a warning naming file and key.
    assert boxes(lines("p.0")[0]) == ["seed 16777216"]
    assert "voices.p.source.seeds[0]" in captured.err and "piece.toml" in captured.err
    assert "16777217" in captured.err and "seeds[1]" not in captured.err
    # Unseeded noise~ objects are told by their creation order.
    assert lines("i.1") == [
        f"i.1: noise~ number 6 created in the Pd session, unseeded (state {pd_instance_seed(6)})"
    ]
    # Tables and steps as array messages whose values are the source's, to float32 precision.
    table = voices["t"].source.points  # type: ignore[attr-defined]
    for d in range(4):
        (box,) = boxes(lines(f"t.{d}")[0])
        head, values = box.split(" 0 ", 1)
        assert head == f"; t-{d} resize 8; t-{d}"
        np.testing.assert_array_equal(np.float32(values.split()), table[d].astype(np.float32))
    steps = voices["s"].source.sequence  # type: ignore[attr-defined]
    (box,) = boxes(lines("s.2")[0])
    np.testing.assert_array_equal(np.float32(box.split(" 0 ", 1)[1].split()), steps[2].astype(np.float32))
    phases = voices["l"].source.start_phase  # type: ignore[attr-defined]
    (box,) = boxes(lines("l:")[0])
    np.testing.assert_array_equal(np.float32(box.split()[1:]), phases.astype(np.float32))
    # Every setting as a message box.
    assert "[freq_hz 0.01 0.02 0.03 0.04(" in out and "[width 0.5(" in out and "[n_steps 3(" in out


def test_a_seed_pd_cannot_take_is_marked(tmp_path: Path, model_factory, capsys) -> None:
    model = model_factory(SynthSpec(latent_size=4, ratio=1024, sr=48000))
    voices = {"x": {"model": "a", "source": {"kind": "noise", "seeds": [123456789, -5, 16777216, 1]}}}
    assert main(["seeds", "-c", str(write_piece(tmp_path, models={"a": model}, voices=voices))]) == EXIT_OK
    out = capsys.readouterr().out
    assert (
        "x.0: [seed 123456789(  (|seed| > 2^24: Pd would play 123456792; no message gives this state)" in out
    )
    assert "x.1: [seed -5(\n" in out and "x.2: [seed 16777216(\n" in out


def test_an_invalid_config_is_exit_code_2(bad_venue: Path, capsys) -> None:
    assert main(["seeds", "-c", str(bad_venue)]) == EXIT_INVALID
    assert "bad.toml: audio.samplerat = 48000: unknown key" in capsys.readouterr().err


def test_conditioning_sources_are_listed_under_their_voice(tmp_path: Path, model_factory, capsys) -> None:
    spec = SynthSpec(latent_size=4, ratio=1024, sr=48000, conditioning=("pitch_class", "octave"))
    voices = {
        "c": {
            "model": "a",
            "source": {"kind": "walk"},
            "conditioning": {"pitch_class": {"kind": "steps", "n_steps": 2, "offset": 5.0}, "octave": 1.0},
        }
    }
    venue = write_piece(tmp_path, models={"a": model_factory(spec)}, voices=voices)
    assert main(["seeds", "-c", str(venue)]) == EXIT_OK
    out = capsys.readouterr().out
    source = load_installation(load_config(venue), warm_up=False).voices["c"].cond_sources[0]
    assert f"# conditioning pitch_class: source steps, seed {source.seed}" in out
    assert "c.pitch_class.0: [; c.pitch_class-0 resize 2; c.pitch_class-0 0 " in out
    assert "# conditioning octave" not in out  # a constant: no source to audition
