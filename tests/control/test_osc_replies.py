"""Honest replies: a refusal inside the engine reaches its sender as ``/error``, ``/status`` counts every
refusal, string attributes are settable, ``latentd send`` fails when nothing answers, and a flood is
logged once per episode."""

from __future__ import annotations

import argparse
import socket
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import pytest

from latentd.cli.osc import add_commands
from latentd.config import load_config
from latentd.control.osc import EPISODE_QUIET_S, OscServer, make_status_provider
from latentd.control.osc_config import OscConfig
from latentd.control.osc_parse import encode_message, parse_packet
from latentd.engine import commands as c
from latentd.engine.engine import Engine
from latentd.installation.piece import load_installation
from latentd.modelkit.builder import SynthSpec
from tests.control.conftest import LOCAL, deliver
from tests.control.udp import receive, status
from tests.pieces import write_piece

TIMEOUT_S = 10.0  # generous: only a failure waits this long


class Logged:
    """A structlog-like logger that keeps (level, event, fields)."""

    def __init__(self) -> None:
        self.records: list[tuple[str, str, dict]] = []

    def __getattr__(self, level: str):
        return lambda event, **kw: self.records.append((level, event, kw))

    def events(self, name: str) -> list[dict]:
        return [kw for _, e, kw in self.records if e == name]


@contextmanager
def client() -> Iterator[socket.socket]:
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as sock:
        sock.bind(("127.0.0.1", 0))
        sock.settimeout(TIMEOUT_S)
        yield sock


@contextmanager
def playing(engine: Engine) -> Iterator[None]:
    """The engine renders blocks in a thread of its own, as in a running daemon."""
    stop = threading.Event()

    def run() -> None:
        while not stop.is_set():
            engine.next_block()
            stop.wait(0.002)

    worker = threading.Thread(target=run, name="test-engine", daemon=True)
    worker.start()
    try:
        yield
    finally:
        stop.set()
        worker.join(TIMEOUT_S)


def run_cli(argv: list[str]) -> int:
    parser = argparse.ArgumentParser(prog="latentd")
    add_commands(parser.add_subparsers(dest="command", required=True))
    args = parser.parse_args(argv)
    return args.func(args)


# ------------------------------------------------------------------------------ the engine's refusals
def test_a_value_the_model_refuses_reaches_the_sender_as_an_error_and_is_counted(serve, engine):
    server = serve()
    with client() as sock:
        # The address, the voice and the attribute are fine: only the model itself refuses -1.
        sock.sendto(encode_message("/voice/v/attr/temperature", [-1.0]), server.address)
        assert status(sock, server)["refused_commands"] == 0  # accepted by the server
        engine.next_block()  # the engine applies it and the model refuses
        error = receive(sock)
        assert error.address == "/error"
        assert error.args[0] == "/voice/v/attr/temperature"
        assert "temperature" in error.args[1] and "refused" in error.args[1]
        sock.sendto(encode_message("/voice/v/gain", [9.0]), server.address)  # refused by the server
        assert receive(sock).address == "/error"
        counted = status(sock, server)
    assert counted["refused_commands"] == 2  # one in the engine, one at the door
    assert counted["osc"]["refused"] == 1
    assert engine.command_log == []


def test_a_refusal_goes_to_its_sender_only(serve, engine):
    server = serve()
    with client() as sender, client() as other:
        sender.sendto(encode_message("/voice/v/attr/temperature", [-2.0]), server.address)
        other.sendto(encode_message("/voice/v/attr/temperature", [0.5]), server.address)
        status(sender, server), status(other, server)  # both handled
        engine.next_block()
        assert receive(sender).args[0] == "/voice/v/attr/temperature"
        assert status(other, server)["refused_commands"] == 1  # its next reply is the status, no error
    assert [cmd for _, cmd in engine.command_log] == [c.SetModelAttribute("v", "temperature", 0.5)]


def test_a_model_swap_that_fails_to_load_reaches_the_sender(tmp_path, model_factory, serve):
    spec = SynthSpec(latent_size=4, ratio=1024, sr=48000)
    spare = tmp_path / "spare.ts"
    spare.write_bytes(model_factory(spec).read_bytes())
    config = write_piece(
        tmp_path,
        models={"a": model_factory(spec), "b": spare},
        voices={"v": {"model": "a", "source": {"kind": "noise"}}},
    )
    engine = Engine(load_installation(load_config(config)), fade_in_s=0.0)
    spare.write_bytes(b"not a model any more")  # the disk changed after start-up
    server = serve(engine)
    with client() as sock, playing(engine):
        sock.sendto(encode_message("/voice/v/model", ["b"]), server.address)
        error = receive(sock)  # the load fails in the background, the voice keeps its model
    assert error.address == "/error" and error.args[0] == "/voice/v/model"
    assert "model 'b' failed to load" in error.args[1]
    assert engine.snapshot.voices["v"].model == "a"


# ------------------------------------------------------------------------------------------ string attributes
@pytest.fixture
def vschaos2_engine(tmp_path: Path, vschaos2_model: Path) -> Engine:
    config = write_piece(
        tmp_path,
        models={},
        voices={"v": {"model": "vs", "source": {"kind": "walk"}, "conditioning": {"pitch": 3, "octave": 4}}},
        extra_piece={"models": {"vs": {"path": str(vschaos2_model), "samplerate": 44100}}},
    )
    return Engine(load_installation(load_config(config)), fade_in_s=0.0)


def test_string_attributes_are_set_over_osc_and_the_models_refusal_comes_back(vschaos2_engine):
    engine = vschaos2_engine
    server = OscServer(engine, OscConfig(), make_status_provider(engine))
    assert deliver(server, "/voice/v/attr/dimred", "PCA") == []
    assert deliver(server, "/voice/v/attr/dimred", "sideways") == []  # the model decides
    assert deliver(server, "/voice/v/attr/temperature", 0.25) == []
    engine.next_block()
    replies = [m for payload, target in server.engine_replies() for m in parse_packet(payload)]
    assert [(m.address, m.args[0]) for m in replies] == [("/error", "/voice/v/attr/dimred")]
    assert "'sideways'" in replies[0].args[1]
    assert [cmd for _, cmd in engine.command_log] == [
        c.SetModelAttribute("v", "dimred", "PCA"),
        c.SetModelAttribute("v", "temperature", 0.25),
    ]
    (error,) = deliver(server, "/voice/v/attr/dimred", "x" * 300)
    assert "at most 256 characters" in error.args[1]


# ------------------------------------------------------------------------------------------ latentd send
def test_send_fails_when_nothing_answers_and_succeeds_when_the_daemon_does(serve, engine, capsys):
    with client() as sock:
        port = str(sock.getsockname()[1])  # bound by us, so nobody answers there
        assert run_cli(["send", "--port", port, "--wait", "0.3", "/section/next"]) == 1
    assert "no answer from 127.0.0.1:" in capsys.readouterr().err
    server = serve()
    port = str(server.address[1])
    with playing(engine):
        assert run_cli(["send", "--port", port, "--wait", "0.5", "/voice/v/gain", "0.5"]) == 0
        assert "accepted" in capsys.readouterr().out
        # Refused inside the engine, not at the door: send hears of it all the same.
        assert (
            run_cli(["send", "--port", port, "--wait", str(TIMEOUT_S), "/voice/v/attr/temperature", "-1"])
            == 1
        )
    assert "refused: /voice/v/attr/temperature:" in capsys.readouterr().err


# ------------------------------------------------------------------------------ the rate-limit log
def test_a_flood_is_logged_once_per_episode_with_a_count_at_its_end(engine):
    now = [0.0]
    log = Logged()
    server = OscServer(
        engine,
        OscConfig(rate_limit_per_s=10.0, rate_burst=5),
        make_status_provider(engine),
        log,
        clock=lambda: now[0],
    )
    for episode in range(2):
        for _ in range(300):  # 300 packets within 0.3 s: far over 10 per second
            now[0] += 0.001
            deliver(server, "/voice/w/trigger")
        server.tick()  # still inside the episode: nothing more is written
        assert len(log.events("osc.rate_limited")) == episode + 1
        now[0] += EPISODE_QUIET_S
        server.tick()
        ended = log.events("osc.rate_limit_ended")
        assert len(ended) == episode + 1 and ended[-1]["sender"] == LOCAL[0]
        now[0] += 10.0  # the bucket fills up again
    assert sum(e["dropped"] for e in log.events("osc.rate_limit_ended")) == server.counters.dropped_rate
    assert server.counters.dropped_rate > 500
