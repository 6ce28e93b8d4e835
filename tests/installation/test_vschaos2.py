"""vschaos2 models as users have them: read, configured and checked (on the stand-in of latentd.modelkit)."""

import io
import json
from pathlib import Path

import numpy as np
import pytest

from latentd.cli import main
from latentd.cli.common import EXIT_OK
from latentd.config import ConfigError, load_config
from latentd.installation.inspect import inspect_models
from latentd.installation.models import LoadedModel, MissingSampleRate, ModelError, read_info
from latentd.installation.piece import load_installation
from latentd.modelkit.builder import SynthSpec
from tests.pieces import write_piece

WALK = {"kind": "walk"}


def piece(tmp_path: Path, model: Path, *, samplerate: int | None = 44100, **voice: object) -> Path:
    """A venue config whose piece plays one voice ``v`` on ``model`` (model ``vs``)."""
    spec: dict[str, object] = {"path": str(model)}
    if samplerate is not None:
        spec["samplerate"] = samplerate
    return write_piece(
        tmp_path,
        models={},
        voices={"v": {"model": "vs", "source": WALK, **voice}},
        extra_piece={"models": {"vs": spec}},
    )


def problems(config: Path) -> list[tuple[str, str, str]]:
    with pytest.raises(ConfigError) as err:
        load_installation(load_config(config), warm_up=False)
    return [(Path(p.file).name, p.key, p.message) for p in err.value.problems]


def test_inspect_shows_8_latent_and_2_conditioning_inputs_without_a_sample_rate(vschaos2_model, capsys):
    assert main(["models", "inspect", "--json", str(vschaos2_model)]) == EXIT_OK
    (info,) = json.loads(capsys.readouterr().out)
    assert info["latent_size"] == 8
    assert info["conditioning"] == ["pitch", "octave"]
    assert info["conditioning_ranges"] == [[0, 12], [0, 9]]
    assert info["sr"] is None and info["declared_sr"] is None
    assert info["params"]["decode"] == [10, 512, 1, 1]
    text = io.StringIO()
    assert inspect_models([vschaos2_model], as_json=False, out=text) == 0
    assert "pitch 0..11, octave 0..8" in text.getvalue()
    assert "none declared (give `samplerate`" in text.getvalue()
    assert "min_buffer_size=4096 (read-only)" in text.getvalue()


def test_a_model_without_sample_rate_is_refused_naming_the_samplerate_key(tmp_path, vschaos2_model):
    with pytest.raises(MissingSampleRate):
        LoadedModel(vschaos2_model)
    found = problems(piece(tmp_path, vschaos2_model, samplerate=None))
    assert len(found) == 1
    file, key, message = found[0]
    assert (file, key) == ("piece.toml", "models.vs.samplerate")
    assert "declares no sample rate" in message and "`samplerate = <Hz>`" in message
    assert "resample" in message  # says why latentd needs it


def test_samplerate_in_the_piece_gives_the_rate(tmp_path, vschaos2_model):
    installation = load_installation(load_config(piece(tmp_path, vschaos2_model)), warm_up=False)
    info = installation.models["vs"].info
    assert (info.sr, info.declared_sr) == (44100, None)
    assert info.latent_rate_hz == pytest.approx(44100 / 512)


def test_samplerate_in_the_piece_overrides_the_models_own(tmp_path, model_factory):
    model = model_factory(SynthSpec(latent_size=2, ratio=512, sr=44100))
    installation = load_installation(load_config(piece(tmp_path, model, samplerate=48000)), warm_up=False)
    info = installation.models["vs"].info
    assert (info.sr, info.declared_sr) == (48000, 44100)
    assert read_info(model).sr == 44100


@pytest.mark.parametrize(
    ("conditioning", "key", "allowed"),
    [
        ({"pitch": 12}, "pitch", "pitch takes 0 <= value < 12"),
        ({"pitch": -1}, "pitch", "pitch takes 0 <= value < 12"),
        ({"octave": 9.0}, "octave", "octave takes 0 <= value < 9"),
        ({"pitch": {"kind": "steps", "offset": 6.0, "amplitude": 6.0}}, "pitch", "0 <= value < 12"),
        ({"octave": {"kind": "lfo", "intensity": 2.0, "offset": 1.0}}, "octave", "0 <= value < 9"),
    ],
)
def test_conditioning_out_of_range_is_a_config_error(tmp_path, vschaos2_model, conditioning, key, allowed):
    found = problems(piece(tmp_path, vschaos2_model, conditioning=conditioning))
    assert len(found) == 1
    file, where, message = found[0]
    assert (file, where) == ("piece.toml", f"voices.v.conditioning.{key}")
    assert allowed in message and "out of range" in message


def test_conditioning_inside_the_ranges_loads(tmp_path, vschaos2_model):
    conditioning = {
        "pitch": {"kind": "steps", "offset": 5.5, "amplitude": 5.5},
        "octave": 8.9,
    }
    installation = load_installation(load_config(piece(tmp_path, vschaos2_model, conditioning=conditioning)))
    voice = installation.voices["v"]
    assert list(voice.cond_low) == [0, 0] and list(voice.cond_high) == [11, 8]


def test_the_setter_without_argument_is_read_only(tmp_path, vschaos2_model):
    config = write_piece(
        tmp_path,
        models={},
        voices={"v": {"model": "vs", "source": WALK}},
        extra_piece={
            "models": {
                "vs": {
                    "path": str(vschaos2_model),
                    "samplerate": 44100,
                    "attributes": {"min_buffer_size": 2048},
                }
            }
        },
    )
    ((_file, key, message),) = problems(config)
    assert key == "models.vs.attributes.min_buffer_size"
    assert "read-only" in message and "set_min_buffer_size() takes no value" in message


def test_string_attributes_are_set_and_refusals_reported(vschaos2_model):
    model = LoadedModel(vschaos2_model, sr=44100)
    model.set_attribute("dimred", "PCA")
    assert model.info.attributes["dimred"] == "PCA"
    with pytest.raises(ModelError, match="returned -1"):
        model.set_attribute("dimred", "tSNE")
    with pytest.raises(ModelError, match="takes a string"):
        model.set_attribute("inversion_mode", 1.0)
    model.set_attribute("temperature", 1)  # an int where the setter takes a float
    assert model.info.attributes["temperature"] == 1.0


def test_forward_is_refused_as_a_voice_method(tmp_path, vschaos2_model):
    config = write_piece(
        tmp_path,
        models={},
        voices={"v": {"model": "vs", "source": WALK}},
        extra_piece={
            "models": {"vs": {"path": str(vschaos2_model), "samplerate": 44100, "method": "forward"}}
        },
    )
    ((_, key, message),) = problems(config)
    assert key == "models.vs.method" and "does not map latents to audio" in message


def test_a_failed_forward_poisons_decode_until_reprimed(vschaos2_model):
    model = LoadedModel(vschaos2_model, sr=44100)
    z = np.zeros((2, 10, 8), dtype=np.float32)
    model.decode(z)
    with pytest.raises(ModelError):
        model.call("forward", np.zeros((1, 3, 1024), dtype=np.float32))
    with pytest.raises(ModelError, match="decode failed"):
        model.decode(z)
    assert model.reprime(batch=2) == "set_inversion_mode('keep_input')"
    assert model.decode(z).shape == (2, 1, 8 * 512)


def test_a_reloaded_copy_drops_the_attributes_set_since_the_last_good_decode(vschaos2_model):
    model = LoadedModel(vschaos2_model, sr=44100)
    model.set_attribute("temperature", 0.5)
    z = np.zeros((1, 10, 8), dtype=np.float32)
    model.decode(z)
    model.set_attribute("inversion_mode", "griffin_lim")
    with pytest.raises(ModelError):
        model.decode(z)
    fresh, dropped = model.reloaded()
    assert dropped == {"inversion_mode": "griffin_lim"}
    assert fresh.info.attributes["temperature"] == 0.5
    assert fresh.info.attributes["inversion_mode"] == "keep_input"
    assert fresh.info.sr == 44100
    assert fresh.decode(z).shape == (1, 1, 8 * 512)
