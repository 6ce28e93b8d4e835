"""The OSC server over real UDP on loopback: allowlist, flood, bundles, and the operator commands."""

from __future__ import annotations

import argparse
import json
import socket
import time

import pytest

from latentd.cli.osc import add_commands, parse_arg
from latentd.control.osc import OscServer, OscServerError, make_status_provider
from latentd.control.osc_config import OscConfig
from latentd.control.osc_parse import encode_bundle, encode_message
from latentd.engine import commands as c
from tests.control.udp import receive, status

TIMEOUT_S = 10.0  # generous: only a failure waits this long


def client(host: str = "127.0.0.1") -> socket.socket:
    sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    sock.bind((host, 0))
    sock.settimeout(TIMEOUT_S)
    return sock


def test_sender_outside_the_allowlist_gets_nothing_and_changes_nothing(serve, engine):
    server = serve(allow=[])
    with client("127.0.0.2") as foreign, client() as local:
        foreign.sendto(encode_message("/voice/v/gain", [0.0]), server.address)
        foreign.sendto(encode_message("/status"), server.address)
        # The server handles packets in arrival order: once it answered this, it has seen the others.
        status(local, server)
        foreign.setblocking(False)
        with pytest.raises(BlockingIOError):
            foreign.recvfrom(65536)
    assert server.counters.dropped_foreign == 2
    engine.next_block()
    assert engine.command_log == []


def test_errors_and_status_go_back_to_the_sender(serve, engine):
    server = serve()
    with client() as sock:
        sock.sendto(encode_message("/voice/v/gain", [9.0]), server.address)
        error = receive(sock)
        assert error.address == "/error" and error.args[0] == "/voice/v/gain" and "0..4" in error.args[1]
        sock.sendto(encode_message("/voice/v/gain", [0.5]), server.address)
        assert status(sock, server)["section"] == "a"
    engine.next_block()
    assert [cmd for _, cmd in engine.command_log] == [c.SetVoiceGain("v", 0.5)]


def test_far_future_bundle_does_not_stall_the_server(serve, engine):
    server = serve()
    hour_ahead = (int(time.time()) + 2_208_988_800 + 3600) << 32  # NTP seconds in the high word
    with client() as sock:
        sock.sendto(encode_bundle([encode_message("/section/hold", [1])], timetag=hour_ahead), server.address)
        assert status(sock, server)["section"] == "a"
    engine.next_block()
    assert engine.programme.hold is True


def test_a_flood_neither_crashes_nor_stalls_the_server(serve, engine):
    server = serve(allow=["127.0.0.0/8"], rate_limit_per_s=100.0, rate_burst=50)
    good = encode_message("/voice/w/trigger")
    junk = encode_message("/voice/w/gain", ["x"])[:-3]
    with client("127.0.0.3") as flooder, client() as local:
        flooder.setsockopt(socket.SOL_SOCKET, socket.SO_SNDBUF, 1 << 20)
        for i in range(5000):
            flooder.sendto(good if i % 2 else junk, server.address)
        # The flood may have filled the socket's receive buffer, and the kernel then drops our query too
        # (UDP): ask again until answered, as an operator would.
        local.settimeout(1.0)
        answer = None
        for _ in range(30):
            local.sendto(encode_message("/status"), server.address)
            try:
                answer = json.loads(receive(local).args[0])
                break
            except TimeoutError:
                continue
    assert answer is not None and answer["section"] == "a"
    counters = server.counters
    assert counters.dropped_rate > 0
    assert counters.accepted + counters.refused <= counters.received - counters.dropped_rate
    assert counters.internal_errors == 0
    assert server._thread is not None and server._thread.is_alive()


def test_bind_failure_is_a_clear_error(engine, serve):
    server = serve()
    other = OscServer(engine, OscConfig(), make_status_provider(engine), port=server.address[1])
    with pytest.raises(OscServerError, match=r"cannot listen for OSC on 127\.0\.0\.1"):
        other.start()


# ------------------------------------------------------------------------------------------ the CLI
def run_cli(argv: list[str]) -> int:
    parser = argparse.ArgumentParser(prog="latentd")
    add_commands(parser.add_subparsers(dest="command", required=True))
    args = parser.parse_args(argv)
    return args.func(args)


def test_parse_arg_types_by_form_and_prefix():
    assert parse_arg("3") == 3 and isinstance(parse_arg("3"), int)
    assert parse_arg("-0.5") == -0.5
    assert parse_arg("1e-3") == 0.001
    assert parse_arg("drone") == "drone"
    assert parse_arg("i:7") == 7 and parse_arg("f:2") == 2.0 and isinstance(parse_arg("f:2"), float)
    assert parse_arg("s:12") == "12"
    with pytest.raises(ValueError, match="not an int"):
        parse_arg("i:x")


def test_send_round_trip(serve, engine, capsys):
    server = serve()
    port = str(server.address[1])
    assert run_cli(["send", "--port", port, "--wait", "0.2", "/voice/v/bias", "0", "f:1"]) == 0
    assert "sent /voice/v/bias" in capsys.readouterr().out
    assert run_cli(["send", "--port", port, "--wait", str(TIMEOUT_S), "/voice/v/gain", "loud"]) == 1
    assert "refused: /voice/v/gain: gain must be a number, got string 'loud'" in capsys.readouterr().err
    engine.next_block()
    assert [cmd for _, cmd in engine.command_log] == [c.SetLatentBias("v", 0, 1.0)]


def test_status_round_trip_pretty_and_json(serve, capsys):
    server = serve()
    port = str(server.address[1])
    assert run_cli(["status", "--port", port, "--timeout", str(TIMEOUT_S)]) == 0
    out = capsys.readouterr().out
    assert "section   a" in out and "uptime" in out and "  v " in out and "  w " in out
    assert run_cli(["status", "--port", port, "--json", "--timeout", str(TIMEOUT_S)]) == 0
    assert json.loads(capsys.readouterr().out)["section"] == "a"


def test_status_says_clearly_when_nothing_answers(capsys):
    with client() as sock:
        port = sock.getsockname()[1]  # bound by us, so nobody answers there
        assert run_cli(["status", "--port", str(port), "--timeout", "0.3"]) == 1
    assert f"no reply from 127.0.0.1:{port} within 0.3 s" in capsys.readouterr().err
