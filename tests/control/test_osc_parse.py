"""Strict OSC parsing: well-formed packets from python-osc read back exactly; anything else is refused."""

from __future__ import annotations

import struct
from pathlib import Path

import pytest
from pythonosc.osc_bundle_builder import IMMEDIATELY, OscBundleBuilder
from pythonosc.osc_message_builder import OscMessageBuilder

from latentd.control.osc_map import ROUTES, Arg, StatusRequest, routes_markdown
from latentd.control.osc_parse import OscParseError, encode_message, parse_message, parse_packet
from latentd.engine import commands as c
from latentd.engine.commands import COMMANDS

DOCS = Path(__file__).resolve().parents[2] / "README.md"


def built(address: str, *args: tuple[object, str]) -> bytes:
    builder = OscMessageBuilder(address)
    for value, kind in args:
        builder.add_arg(value, kind)
    return builder.build().dgram


def test_python_osc_packets_parse_exactly():
    data = built("/voice/v/clamp", (2, "i"), (-1.5, "f"), (2.0, "d"), ("x", "s"), (True, "T"), (2**40, "h"))
    message = parse_message(data)
    assert message.address == "/voice/v/clamp"
    assert message.typetags == "ifdsTh"
    assert message.args == (2, -1.5, 2.0, "x", True, 2**40)
    assert encode_message("/a", [1, 0.5, "s"]) == built("/a", (1, "i"), (0.5, "f"), ("s", "s"))


def test_nested_bundles_flatten_in_order():
    inner = OscBundleBuilder(IMMEDIATELY)
    inner.add_content(OscMessageBuilder("/b").build())
    outer = OscBundleBuilder(IMMEDIATELY)
    outer.add_content(OscMessageBuilder("/a").build())
    outer.add_content(inner.build())
    assert [m.address for m in parse_packet(outer.build().dgram)] == ["/a", "/b"]


@pytest.mark.parametrize(
    ("data", "reason"),
    [
        (built("/g", (0.5, "f"))[:-1], "truncated"),
        (built("/g", (0.5, "f")) + b"\x00\x00\x00\x00", "after the last argument"),
        (built("/g", ("abc", "s"))[:-4], "missing"),
        (b"/g\x00\x00,f\x00\x00\x00\x00\x00", "truncated"),
        (b"/g\x00", "not padded"),
        (b"/g\x00\x01,\x00\x00\x00", "non-NUL padding"),
        (b"/g\x00\x00f\x00\x00\x00", "must start with ','"),
        (b"/g\x00\x00,[]\x00", "unsupported argument type '\\['"),
        (b"g\x00\x00\x00", "must start with an address"),
        (b"/\xff\x00\x00", "UTF-8"),
        (b"#bundle\x00\x00\x00", "header truncated"),
        (b"#bundle\x00" + bytes(8) + struct.pack(">i", 100) + b"/a\x00\x00", "size 100"),
        (b"#bundl\x00\x00" + bytes(8), "must be a bundle"),
    ],
)
def test_malformed_packets_are_refused_with_the_reason(data, reason):
    with pytest.raises(OscParseError, match=reason):
        parse_packet(data)


def test_bundles_nest_only_so_deep():
    packet = encode_message("/a")
    for _ in range(6):
        packet = b"#bundle\x00" + bytes(8) + struct.pack(">i", len(packet)) + packet
    with pytest.raises(OscParseError, match="nested deeper"):
        parse_packet(packet)


def test_docs_table_is_the_route_table():
    text = DOCS.read_text()
    assert routes_markdown() in text, "README.md's OSC table is out of date: paste routes_markdown() into it"
    assert all(f"`{r.template}`" in text for r in ROUTES)


# Commands that reach the engine other ways than OSC: the engine logs landed swaps, the state file
# restores the programme, the schedule opens and closes the venue, the master of several machines keeps
# its programme's time and gives it to its workers.
NOT_FROM_OSC = {c.ModelSwapped, c.RestoreProgramme, c.SetOpen, c.AdvanceSection, c.FollowProgramme}


def _sample(arg: Arg) -> object:
    return {"float": 0.0, "int": 0, "bool": True, "name": "x", "label": "x", "value": "x"}[arg.kind]


def test_every_command_of_the_table_has_a_route_or_a_reason_not_to():
    built = set()
    for route in ROUTES:
        names = {p[1:-1]: "x" for p in route.parts if p.startswith("<")}
        built.add(type(route.build(names, [_sample(a) for a in route.args])))
    built.discard(StatusRequest)
    assert set(COMMANDS.values()) == built | NOT_FROM_OSC, "a command without an OSC route (or one too many)"
