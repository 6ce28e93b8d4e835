"""``[osc]`` in the venue config: defaults, and errors that name the file and the key."""

from __future__ import annotations

import pytest

from latentd.config import ConfigError, load_config
from latentd.control.osc_config import OscConfig


def test_defaults_listen_on_localhost_only(osc_piece):
    osc = load_config(osc_piece).venue.osc
    assert osc == OscConfig()
    assert (osc.enabled, osc.bind, osc.port, osc.max_packet_bytes, osc.reply_port) == (
        False,
        "127.0.0.1",
        9000,
        4096,
        0,
    )
    assert [str(n) for n in osc.networks()] == ["127.0.0.1/32", "::1/128"]


def test_bad_values_are_reported_with_file_and_key(osc_piece, tmp_path):
    venue = tmp_path / "venue.toml"
    piece = osc_piece.parent / "piece"
    venue.write_text(
        f'name = "v"\npiece = "{piece}"\n[osc]\nenabled = true\nport = 70000\nbind = "localhost"\n'
        'allow = ["10.0.0.0/33", "192.168.1.5/24"]\nrate = 5\n'
    )
    with pytest.raises(ConfigError) as info:
        load_config(venue)
    text = str(info.value)
    by_key = {p.key: p for p in info.value.problems}
    assert {"osc.port", "osc.bind", "osc.allow[0]", "osc.allow[1]", "osc.rate"} <= set(by_key), text
    assert all(p.file == venue for k, p in by_key.items() if k.startswith("osc."))
    assert "65535" in by_key["osc.port"].message
    assert "not an IP address" in by_key["osc.bind"].message
    assert "host bits set" in by_key["osc.allow[1]"].message


def test_allow_list_is_added_to_the_local_host():
    osc = OscConfig(allow=["192.168.1.0/24"])
    assert [str(n) for n in osc.networks()][-1] == "192.168.1.0/24"
