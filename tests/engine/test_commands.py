"""The command table: every command declares its override key and its handler; float fields are checked."""

from __future__ import annotations

import dataclasses
import math
import typing
from dataclasses import dataclass
from pathlib import Path

import pytest

from latentd.config import load_config
from latentd.engine import commands as c
from latentd.engine.command_base import COMMANDS, SEED_MODULUS, Command, check
from latentd.engine.engine import Engine
from latentd.installation.piece import load_installation
from latentd.modelkit.builder import SynthSpec
from tests.pieces import write_piece


@pytest.fixture(scope="module")
def engine(tmp_path_factory, model_factory) -> Engine:
    model = model_factory(SynthSpec(latent_size=4, ratio=1024, sr=48000))
    config = write_piece(
        tmp_path_factory.mktemp("commands"),
        models={"a": model},
        voices={"v": {"model": "a", "source": {"kind": "noise"}}},
    )
    return Engine(load_installation(load_config(config)), fade_in_s=0.0)


def test_a_command_without_an_override_declaration_fails_where_it_is_defined():
    with pytest.raises(TypeError, match="must declare `override`"):

        @dataclass(frozen=True)
        class Louder(Command):
            name: typing.ClassVar[str] = "test.louder"
            voice: str

            def apply(self, engine: Engine) -> None:
                pass

    assert "test.louder" not in COMMANDS


def test_a_command_without_a_handler_fails_where_it_is_defined():
    with pytest.raises(TypeError, match="has no handler"):

        @dataclass(frozen=True)
        class Quieter(Command):
            name: typing.ClassVar[str] = "test.quieter"
            override = ("voice",)
            voice: str

    assert "test.quieter" not in COMMANDS


def test_an_override_key_must_name_fields_of_the_command():
    with pytest.raises(TypeError, match="unknown fields"):

        @dataclass(frozen=True)
        class Tilt(Command):
            name: typing.ClassVar[str] = "test.tilt"
            override = ("voice", "band")
            voice: str

            def apply(self, engine: Engine) -> None:
                pass


def test_two_commands_cannot_share_a_name():
    with pytest.raises(TypeError, match="is taken"):

        @dataclass(frozen=True)
        class Gain(Command):
            name: typing.ClassVar[str] = "voice.gain"
            override = ("voice",)
            voice: str

            def apply(self, engine: Engine) -> None:
                pass


@pytest.mark.parametrize("name", sorted(COMMANDS))
def test_every_command_in_the_table_has_a_handler_and_an_override_declaration(name):
    cls = COMMANDS[name]
    assert cls.apply is not Command.apply
    assert "override" in vars(cls)
    assert cls.override is None or set(cls.override) <= {f.name for f in dataclasses.fields(cls)}


@pytest.mark.parametrize("name", sorted(COMMANDS))
def test_the_float_fields_of_every_command_come_from_its_annotations(name):
    cls = COMMANDS[name]
    hints = typing.get_type_hints(cls)
    assert cls.floats == tuple(f.name for f in dataclasses.fields(cls) if hints[f.name] is float)


def test_a_new_float_field_is_checked_for_finiteness_without_any_list(engine):
    @dataclass(frozen=True)
    class SetWobble(Command):
        name: typing.ClassVar[str] = "test.wobble"
        override = ("voice",)
        voice: str
        depth_hz: float

        def apply(self, engine: Engine) -> None:
            pass

    try:
        assert SetWobble.floats == ("depth_hz",)
        assert engine.check(SetWobble("v", math.nan)) == "depth_hz must be a finite number, got nan"
        assert engine.check(SetWobble("v", math.inf)) == "depth_hz must be a finite number, got inf"
        assert engine.check(SetWobble("v", 2.0)) is None
        assert SetWobble("v", 2.0).override_key() == ("test.wobble", "v")
    finally:
        del COMMANDS["test.wobble"]


def test_overrides_and_actions_are_told_apart_by_the_table():
    assert c.SetLatentBias("v", 2, 0.5).override_key() == ("voice.bias", "v", 2)
    assert c.SetMasterGain(0.5).override_key() == ("master.gain",)
    assert c.NextSection().override_key() is None
    assert c.ReseedVoice("v", 3).override_key() is None


def test_json_round_trip_for_every_command_shape():
    for cmd in (c.SetLatentClamp("v", 1, -1.0, 1.0), c.ReseedVoice("v", 7), c.StartRecording("x")):
        assert c.command_from_json(cmd.to_json()) == cmd


def test_reseed_without_a_seed_is_resolved_and_logged_with_the_next_seed(engine: Engine, tmp_path: Path):
    seed = engine.snapshot.voices["v"].seed
    engine.submit(c.ReseedVoice("v"))
    engine.submit(c.ReseedVoice("v"))
    engine.next_block()
    logged = [cmd for _, cmd in engine.command_log if isinstance(cmd, c.ReseedVoice)]
    assert logged[-2:] == [c.ReseedVoice("v", seed + 1), c.ReseedVoice("v", seed + 2)]
    assert engine.snapshot.voices["v"].seed == seed + 2


def test_reseed_after_the_largest_seed_wraps_to_0_so_pd_can_take_every_seed(engine: Engine):
    engine.submit(c.ReseedVoice("v", SEED_MODULUS - 1))
    engine.submit(c.ReseedVoice("v"))
    engine.next_block()
    assert SEED_MODULUS == 2**24 and engine.snapshot.voices["v"].seed == 0
    assert "0..16777215" in str(check(c.ReseedVoice("v", SEED_MODULUS), engine.snapshot))


def test_the_engine_and_other_threads_refuse_with_the_same_checks(engine: Engine):
    commands = [
        c.SetVoiceGain("nobody", 0.5),
        c.SetLatentBias("v", 4, 0.0),
        c.SetLatentClamp("v", 0, 1.0, -1.0),
        c.SetSourceParam("v", "speed", 1.0),
        c.SetSourceParam("v", "smooth_s", 61.0),
        c.SetConditioning("v", "pitch", 1.0),
        c.SetModelAttribute("v", "warmth", 1.0),
        c.SwapModel("v", "a"),
        c.GotoSection("nowhere"),
        c.StartRecording(""),
        c.SetMasterGain(math.nan),
        c.SetVoiceGain("v", 0.5),
    ]
    view = engine.snapshot
    reasons = [c.check(cmd, view) for cmd in commands]
    assert reasons == [engine.check(cmd) for cmd in commands]
    assert reasons[-1] is None and all(reason is not None for reason in reasons[:-1])
