"""JackOutput settings that are refused before any JACK server is contacted."""

import pytest
import structlog

from latentd.engine.ring import BlockRing
from latentd.outputs.jack_out import JackOutput, JackOutputError, plan_period


def make(ring: BlockRing | None = None, **overrides: object) -> JackOutput:
    ring = ring or BlockRing(4, 256, 2)
    kwargs: dict[str, object] = {
        "client_name": "latentd",
        "port_names": ["left", "right"],
        "server_name": None,
        "connect_to": None,
        "samplerate": 48000,
        "blocksize": 256,
        "log": structlog.get_logger(),
        **overrides,
    }
    return JackOutput(ring, **kwargs)  # type: ignore[arg-type]


@pytest.mark.parametrize(
    ("overrides", "message"),
    [
        ({"port_names": ["left"]}, "1 port names given for a ring of 2 channels"),
        ({"port_names": ["left", "left"]}, "port names must be unique"),
        (
            {"port_names": ["left", "sys:right"]},
            "port name 'sys:right' must be 1..\\d+ characters without ':'",
        ),
        ({"port_names": ["left", ""]}, "port name '' must be"),
        ({"connect_to": ["system:playback_1"]}, "1 connect_to ports given for 2 channels"),
        ({"blocksize": 512}, "blocksize 512 differs from the ring's blocksize 256"),
        ({"client_name": ""}, "client name must have"),
    ],
)
def test_inconsistent_settings_are_refused_with_the_reason(
    overrides: dict[str, object], message: str
) -> None:
    with pytest.raises(ValueError, match=message):
        make(**overrides)


def test_port_names_are_prefixed_with_the_client_and_nothing_is_open_yet() -> None:
    output = make(connect_to=[])
    assert output.port_names == ["latentd:left", "latentd:right"]
    assert not output.connected


@pytest.mark.parametrize(
    ("period", "blocksize", "plan"),
    [(256, 256, (256, 1)), (256, 1024, (256, 1)), (1024, 256, (256, 4))],
)
def test_period_plan_reads_parts_or_several_blocks(
    period: int, blocksize: int, plan: tuple[int, int]
) -> None:
    assert plan_period(period, blocksize) == plan


def test_period_plan_refuses_sizes_that_do_not_nest() -> None:
    with pytest.raises(JackOutputError, match="one must be a multiple of the other"):
        plan_period(256, 384)
