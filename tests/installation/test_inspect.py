"""``latentd models inspect``: readable tables, JSON, and errors that do not stop the other files."""

import io
import json

from latentd.installation.inspect import inspect_models
from latentd.modelkit.builder import SynthSpec


def test_table_shows_contract_and_tempo(model_factory):
    path = model_factory(SynthSpec(latent_size=4, ratio=2048, sr=44100, conditioning=("pitch_class",)))
    out = io.StringIO()
    assert inspect_models([path], as_json=False, out=out) == 0
    text = out.getvalue()
    assert "decode [5, 2048, 1, 1]" in text
    assert "latent rate   21.53 Hz" in text
    assert "conditioning  pitch_class" in text
    assert "streaming     yes (64 batch rows)" in text
    assert "temperature=1.0" in text
    assert "k=11   117.45" in text


def test_json_lists_every_model_and_reports_errors(model_factory, tmp_path):
    good = model_factory(SynthSpec(latent_size=2, ratio=512, sr=44100, n_channels=2, streaming=False))
    broken = tmp_path / "broken.ts"
    broken.write_text("nope")
    out = io.StringIO()
    assert inspect_models([broken, good], as_json=True, out=out) == 2
    records = json.loads(out.getvalue())
    assert records[0]["path"] == str(broken) and "not a TorchScript archive" in records[0]["error"]
    info = records[1]
    assert (info["latent_size"], info["ratio"], info["sr"], info["n_channels"]) == (2, 512, 44100, 2)
    assert info["streaming"] is False
    assert info["params"]["decode"] == [2, 512, 2, 1]
    assert {"k": 1, "bpm": 5167.97} in info["tempo"]


def test_table_mode_prints_each_error_and_continues(model_factory, tmp_path):
    missing = tmp_path / "missing.ts"
    out = io.StringIO()
    assert inspect_models([missing, model_factory(SynthSpec())], as_json=False, out=out) == 2
    text = out.getvalue()
    assert f"error: {missing}: model file not found" in text
    assert "ratio         1024" in text
