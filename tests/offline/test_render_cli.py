"""``latentd render``: a length that is not a positive number is refused before anything is written."""

from __future__ import annotations

import pytest

from latentd.cli import main
from latentd.modelkit.builder import SynthSpec
from tests.pieces import write_piece


@pytest.mark.parametrize("seconds", ["-1", "0", "nan"])
def test_render_refuses_a_length_that_is_not_positive(tmp_path, model_factory, capsys, seconds):
    model = model_factory(SynthSpec(latent_size=4, ratio=1024, sr=48000))
    venue = write_piece(
        tmp_path, models={"a": model}, voices={"n": {"model": "a", "source": {"kind": "noise"}}}
    )
    out = tmp_path / "out.wav"
    assert main(["render", "-c", str(venue), "--seconds", seconds, "-o", str(out)]) == 2
    assert "--seconds must be a positive number of seconds" in capsys.readouterr().err
    assert not out.exists()
