"""Several architectures in one piece: model attributes, minimum buffers, methods, RAVE- and vschaos2-like
voices playing in sync."""

import numpy as np
import pytest
import torch
from torch import Tensor, nn

from latentd.config import ConfigError, load_config
from latentd.control.osc_map import map_message
from latentd.control.osc_parse import OscMessage
from latentd.engine import commands as c
from latentd.engine.engine import Engine
from latentd.installation.models import MAX_FRAMES_PER_CALL
from latentd.installation.piece import load_installation
from latentd.modelkit.builder import SynthSpec, build_model
from tests.pieces import write_piece

SR = 48000
NOISY = {"kind": "constant", "values": [0.0, 0.0, 3.0, 0.0]}  # dim 2 high: mostly noise


def make_engine(config) -> Engine:
    return Engine(load_installation(load_config(config)), fade_in_s=0.0)


def play(engine: Engine, seconds: float) -> np.ndarray:
    blocks = int(np.ceil(seconds * engine.samplerate / engine.blocksize))
    return np.concatenate([engine.next_block() for _ in range(blocks)], axis=1)


def high_band_rms(x: np.ndarray) -> float:
    """RMS above 4 kHz: the synth's harmonics at 220 Hz barely reach it, its noise fills it."""
    spectrum = np.fft.rfft(x)
    spectrum[np.fft.rfftfreq(len(x), 1 / SR) < 4000.0] = 0.0
    return float(np.sqrt(np.mean(np.fft.irfft(spectrum, len(x)) ** 2)))


@pytest.fixture
def synth(model_factory):
    return model_factory(SynthSpec(latent_size=4, ratio=1024, sr=SR))


def test_temperature_by_command_changes_every_voice_of_the_model(tmp_path, synth):
    config = write_piece(
        tmp_path,
        models={"a": synth},
        voices={"v": {"model": "a", "source": NOISY, "route": [0]}, "w": {"model": "a", "source": NOISY}},
    )
    engine = make_engine(config)
    hot = high_band_rms(play(engine, 0.5)[0, SR // 4 :])
    engine.submit(c.SetModelAttribute("w", "temperature", 0.0))  # set through w: v shares the model
    play(engine, 0.25)
    cold = high_band_rms(play(engine, 0.5)[0, SR // 4 :])
    assert hot > 0.02 and cold < hot / 10, (hot, cold)
    assert engine.group_of("v").model.info.attributes["temperature"] == 0.0
    assert engine.command_log[-1][1] == c.SetModelAttribute("w", "temperature", 0.0)


def test_commands_while_calls_decode_beside_the_mix_repeat_sample_for_sample(tmp_path, synth):
    # Decoding beside the mix, a model attribute waits for the calls in flight; a gain does not wait.
    # Either way the samples depend on the blocks the commands are given at, never on thread timing.
    config = write_piece(
        tmp_path,
        models={"a": synth},
        voices={"v": {"model": "a", "source": NOISY, "route": [0]}, "w": {"model": "a", "source": NOISY}},
        audio={"decode_threads": 2},
    )
    commands = {20: c.SetVoiceGain("v", 0.5), 40: c.SetModelAttribute("w", "temperature", 0.0)}
    runs = []
    for _ in range(2):
        engine = make_engine(config)
        blocks = []
        for block in range(120):
            if block in commands:
                engine.submit(commands[block])
            blocks.append(engine.next_block())
        engine.decoder.close()
        runs.append(np.concatenate(blocks, axis=1))
    np.testing.assert_array_equal(runs[0], runs[1])
    hot = high_band_rms(runs[0][0, : 40 * 256])
    cold = high_band_rms(runs[0][0, 80 * 256 :])
    assert hot > 0.01 and cold < hot / 10, (hot, cold)


def test_attribute_from_the_piece_is_set_at_load(tmp_path, synth):
    config = write_piece(tmp_path, models={"a": synth}, voices={"v": {"model": "a", "source": NOISY}})
    text = (tmp_path / "piece" / "piece.toml").read_text()
    text = text.replace("[models.a]\n", "[models.a]\nattributes = { temperature = 0.25 }\n")
    (tmp_path / "piece" / "piece.toml").write_text(text)
    engine = make_engine(config)
    assert engine.group_of("v").model.info.attributes["temperature"] == 0.25


def test_attribute_refused_at_load_names_file_and_key(tmp_path, synth):
    config = write_piece(tmp_path, models={"a": synth}, voices={"v": {"model": "a", "source": NOISY}})
    text = (tmp_path / "piece" / "piece.toml").read_text()
    (tmp_path / "piece" / "piece.toml").write_text(
        text.replace("[models.a]\n", "[models.a]\nattributes = { temperature = -1.0 }\n")
    )
    with pytest.raises(ConfigError) as info:
        load_installation(load_config(config))
    problem = info.value.problems[0]
    assert problem.key == "models.a.attributes.temperature" and problem.file.name == "piece.toml"
    assert "refused" in problem.message


def test_unknown_or_refused_attribute_commands_are_refused_with_reasons(tmp_path, synth):
    config = write_piece(tmp_path, models={"a": synth}, voices={"v": {"model": "a", "source": NOISY}})
    engine = make_engine(config)
    reason = engine.check(c.SetModelAttribute("v", "warmth", 1.0))
    assert reason is not None and "warmth" in reason and "temperature" in reason
    engine.submit(c.SetModelAttribute("v", "temperature", -1.0))
    engine.next_block()
    assert engine.counters.refused_commands == 1
    assert engine.group_of("v").model.info.attributes["temperature"] == 1.0


def test_osc_attribute_route_builds_the_command():
    mapped = map_message(OscMessage("/voice/v/attr/temperature", "f", (0.5,)))
    assert mapped == c.SetModelAttribute("v", "temperature", 0.5)


def test_min_buffer_size_raises_the_frames_per_call(tmp_path, model_factory):
    model = model_factory(SynthSpec(latent_size=4, ratio=512, sr=SR, min_buffer_size=4096))
    config = write_piece(tmp_path, models={"a": model}, voices={"v": {"model": "a", "source": NOISY}})
    engine = make_engine(config)  # the venue asks for 4 frames per call: 2048 samples < 4096
    assert engine.group_of("v").frames_per_call == 8
    play(engine, 0.2)
    assert engine.counters.decode_calls * 8 * 512 >= 0.2 * SR


def test_min_buffer_size_out_of_reach_is_a_clear_error(tmp_path, model_factory):
    too_big = 512 * (MAX_FRAMES_PER_CALL + 1)
    model = model_factory(SynthSpec(latent_size=4, ratio=512, sr=SR, min_buffer_size=too_big))
    config = write_piece(tmp_path, models={"a": model}, voices={"v": {"model": "a", "source": NOISY}})
    with pytest.raises(ConfigError) as info:
        load_installation(load_config(config))
    assert f"min_buffer_size {too_big}" in str(info.value) and "models.a" in str(info.value)


class Renamed(nn.Module):
    """A synth whose latents-to-audio method is called ``render`` (no ``decode``)."""

    render_params: Tensor

    def __init__(self) -> None:
        super().__init__()
        self.core = build_model(SynthSpec(latent_size=4, ratio=256, sr=SR, streaming=False))
        self.register_buffer("render_params", torch.tensor([4, 256, 1, 1]))

    @torch.jit.export
    def get_methods(self) -> list[str]:
        return ["render"]

    @torch.jit.export
    def get_sample_rate(self) -> int:
        return 48000

    @torch.jit.export
    def render(self, z: Tensor) -> Tensor:
        return self.core.decode(z)


def test_any_method_mapping_latents_to_audio_plays(tmp_path):
    path = tmp_path / "renamed.ts"
    torch.jit.save(torch.jit.script(Renamed()), str(path))
    config = write_piece(tmp_path, models={"a": path}, voices={"v": {"model": "a", "source": NOISY}})
    text = (tmp_path / "piece" / "piece.toml").read_text()
    (tmp_path / "piece" / "piece.toml").write_text(
        text.replace("[models.a]\n", '[models.a]\nmethod = "render"\n')
    )
    assert np.abs(play(make_engine(config), 0.2)).max() > 0.01


def test_a_method_that_is_not_latents_to_audio_is_refused(tmp_path, synth):
    config = write_piece(tmp_path, models={"a": synth}, voices={"v": {"model": "a", "source": NOISY}})
    text = (tmp_path / "piece" / "piece.toml").read_text()
    (tmp_path / "piece" / "piece.toml").write_text(
        text.replace("[models.a]\n", '[models.a]\nmethod = "forward"\n')
    )
    with pytest.raises(ConfigError) as info:
        load_installation(load_config(config))
    problem = info.value.problems[0]
    assert problem.key == "models.a.method"
    assert "'forward'" in problem.message and "in_ratio 1" in problem.message and "decode" in problem.message


# --------------------------------------------------------------------------- sync over ten minutes
LOW_SR = 8000
PERIOD = 8192  # samples: 4 frames of 2048 and 16 frames of 512 at 8 kHz; 250 Hz makes 256 whole cycles


def pulse_file(path, frames_per_period: int) -> str:
    """Latents looping once per period: one loud frame, then silence (dim 3 is amplitude)."""
    z = np.zeros((1, 4, frames_per_period), dtype=np.float32)
    z[0, 2] = -8.0  # no noise
    z[0, 3] = -8.0
    z[0, 3, 0] = 3.0
    np.save(path, z)
    return str(path)


def test_rave_like_and_vschaos2_like_voices_stay_sample_aligned_for_ten_minutes(tmp_path, model_factory):
    rave = model_factory(SynthSpec(latent_size=4, ratio=2048, sr=LOW_SR, base_hz=250.0))
    vschaos = model_factory(
        SynthSpec(
            latent_size=4,
            ratio=512,
            sr=LOW_SR,
            base_hz=250.0,
            conditioning=("pitch_class", "octave"),
            min_buffer_size=4096,
        )
    )
    (tmp_path / "piece").mkdir()
    config = write_piece(
        tmp_path,
        models={"rave": rave, "vschaos": vschaos},
        voices={
            "r": {
                "model": "rave",
                "route": [0],
                "source": {"kind": "file", "path": pulse_file(tmp_path / "piece" / "r.npy", 4)},
            },
            "s": {
                "model": "vschaos",
                "route": [1],
                "conditioning": {"pitch_class": 0, "octave": 1},  # 500 Hz: 512 cycles per period
                "source": {"kind": "file", "path": pulse_file(tmp_path / "piece" / "s.npy", 16)},
            },
        },
        audio={"samplerate": LOW_SR, "blocksize": 1024, "frames_per_call": 4},
    )
    engine = make_engine(config)
    assert engine.group_of("s").frames_per_call == 8
    blocks_per_period = PERIOD // engine.blocksize
    n_periods = 10 * 60 * LOW_SR // PERIOD
    first = last = None
    for period in range(n_periods):
        audio = np.concatenate([engine.next_block() for _ in range(blocks_per_period)], axis=1)
        if period == 2:
            first = audio
    last = audio
    assert first is not None and np.abs(first[:2]).max() > 0.1
    # Each stream repeats exactly once per period: a dropped or doubled sample anywhere shows at the end.
    np.testing.assert_allclose(last[:2], first[:2], atol=1e-3)
    onset = np.argmax(np.abs(first[:2]) > 0.05, axis=1)
    assert np.array_equal(onset, np.argmax(np.abs(last[:2]) > 0.05, axis=1))
