"""Snapshots: a live tuning merged into the piece renders like the live state, from the CLI and OSC."""

from __future__ import annotations

import json
import shutil
import socket
import time
from pathlib import Path

import numpy as np
import pytest

from latentd.cli import main
from latentd.config import load_config
from latentd.control.osc import OscServer
from latentd.control.osc_config import OscConfig
from latentd.control.osc_parse import encode_message, parse_packet
from latentd.engine import commands as c
from latentd.engine.ring import BlockRing
from latentd.modelkit.builder import SynthSpec
from latentd.offline.build import build_engine
from latentd.offline.snapshot import live_state, merge_live_state, write_snapshot
from latentd.runtime.engine_host import EngineHost, SnapshotRequests
from latentd.runtime.state import StateWriter

SR = 48000
BLOCKS = 60
# GLIDE_S = 50 ms = 9.4 blocks of 256: a live override glides in, a snapshot piece starts at the value.
# The glides leave no trace after that only where the decoder keeps no running state of the value: the
# synth's dimension 0 (pitch) drives an oscillator phase, so the overrides here glide dimensions 1..3.
GLIDE_BLOCKS = 12

PIECE = """\
# The test piece: comments and layout must survive a snapshot.
name = "snap"
seed = 7

[models.a]
path = "{model}"

[voices.n]  # noise, pinned streams
model = "a"
source = {{ kind = "noise", smooth_s = 0.2 }}

[voices.w]
model = "a"
gain = 0.8  # a quiet walk
pan = {{ azimuth_deg = 45.0 }}

[voices.w.source]
kind = "walk"
step_std = 0.3

[[sections]]
name = "all"
voices = ["n", "w"]
duration_s = 3600.0
"""

VENUE = """\
name = "test-venue"
piece = "piece"

[audio]
samplerate = 48000
blocksize = 256
layout = "quad"
frames_per_call = 4

[output]
dc_block_hz = 0.0
ceiling_db = 0.0

[logging]
level = "error"

[schedule]
state_file = "state.json"
"""

OVERRIDES = [
    c.SetVoiceGain("n", 0.5),
    c.SetLatentBias("n", 1, 0.75),
    c.SetLatentScale("w", 2, 1.5),
    c.SetLatentScale("w", 2, 2.0),  # the latest of a target counts
    c.SetLatentClamp("n", 0, -1.0, 1.0),
    c.SetLatentClamp("n", 1, -1.0, 1.0),
    c.SetLatentClamp("n", 2, -1.0, 1.0),
    c.SetLatentClamp("n", 3, -1.0, 1.0),
    c.SetSourceParam("w", "step_std", 0.6),  # the walk's first draw used 0.3: the reseed below restarts it
    c.SetSourceParam("n", "smooth_s", 0.05),
    c.SetVoicePan("n", -30.0),
    c.SetVoiceRotation("w", 20.0),
    c.ReseedVoice("w", 1234),
    c.SetMasterGain(0.9),  # a venue setting: listed, not written
]


@pytest.fixture
def venue(tmp_path: Path, model_factory) -> Path:
    model = model_factory(SynthSpec(latent_size=4, ratio=1024, sr=SR))
    (tmp_path / "piece").mkdir()
    (tmp_path / "piece" / "piece.toml").write_text(PIECE.format(model=model))
    (tmp_path / "venue.toml").write_text(VENUE)
    return tmp_path / "venue.toml"


def render(engine, blocks: int = BLOCKS) -> np.ndarray:
    return np.concatenate([engine.next_block() for _ in range(blocks)], axis=1)


def live_engine(venue: Path):
    """The original piece with the overrides applied before its first block."""
    engine = build_engine(load_config(venue), fade_in_s=0.0, live_loads=False, warm_up=False)
    for cmd in OVERRIDES:
        engine.submit(cmd)
    return engine


def test_a_snapshot_renders_like_the_live_overrides(venue: Path) -> None:
    config = load_config(venue)
    engine = live_engine(venue)
    live = render(engine)
    original = config.piece_file.read_text()
    merged = merge_live_state(config, original, live_state(engine.snapshot, engine.seed))
    path = write_snapshot(config, merged.text)
    assert path.parent == config.piece_file.parent and path.name.startswith("piece.snapshot-")
    assert config.piece_file.read_text() == original  # the piece itself is never touched
    text = path.read_text()
    assert "# The test piece: comments and layout must survive a snapshot." in text
    assert "gain = 0.8  # a quiet walk" in text  # a line the snapshot leaves alone, as it was
    assert "[voices.w.source]" in text and "step_std = 0.6" in text
    assert any("master.gain" in line and "venue" in line for line in merged.left_out)
    assert not any("clamp" in line for line in merged.left_out)  # every dimension alike: written

    snap = build_engine(load_config(venue, piece_file=path), fade_in_s=0.0, live_loads=False, warm_up=False)
    # The master gain is the venue's: give the snapshot's engine the same one, as the venue config would.
    snap.submit(c.SetMasterGain(0.9))
    again = render(snap)
    start = GLIDE_BLOCKS * 256
    np.testing.assert_array_equal(again[:, start:], live[:, start:])
    assert np.abs(live[:, start:]).max() > 0.01  # not silence
    plain = render(build_engine(config, fade_in_s=0.0, live_loads=False, warm_up=False))
    assert not np.array_equal(plain[:, start:], live[:, start:])  # the overrides are heard


def test_a_piece_cannot_express_a_freeze_nor_unlike_clamps(venue: Path) -> None:
    config = load_config(venue)
    engine = build_engine(config, fade_in_s=0.0, live_loads=False, warm_up=False)
    for cmd in (c.FreezeVoice("n", True), c.SetLatentClamp("w", 2, -0.5, 0.5), c.SetVoiceMute("w", True)):
        engine.submit(cmd)
    engine.next_block()
    merged = merge_live_state(config, config.piece_file.read_text(), live_state(engine.snapshot))
    joined = "\n".join(merged.left_out)
    assert "voice.freeze of voice 'n'" in joined
    assert "voice.clamp of voice 'w'" in joined
    assert "mute = true" in merged.text
    assert "programme position (section 'all'" in joined


def test_cli_snapshot_from_the_state_file_then_check(venue: Path, capsys) -> None:
    engine = live_engine(venue)
    engine.next_block()
    config = load_config(venue)
    StateWriter(engine, config.state_file).write()
    assert main(["snapshot", "-c", str(venue)]) == 0
    out = capsys.readouterr().out
    assert "+step_std = 0.6" in out and "+seed = 1234" in out
    assert "not kept" in out and "master.gain = 0.9" in out
    first = Path(next(line for line in out.splitlines() if line.startswith("wrote ")).split(" ", 1)[1])
    assert main(["snapshot", "-c", str(venue), "--from", str(config.state_file)]) == 0  # same second
    second = Path(capsys.readouterr().out.split("wrote ", 1)[1].splitlines()[0])
    assert second != first and second.read_text() == first.read_text()  # never over a file
    assert main(["snapshot", "-c", str(venue), "--output", str(first)]) == 1
    assert "exists" in capsys.readouterr().err

    # Adopted by copying it over piece.toml, the venue checks.
    shutil.copy(first, config.piece_file)
    assert main(["check", "-c", str(venue)]) == 0


def test_cli_snapshot_refuses_a_state_that_does_not_fit(venue: Path, capsys) -> None:
    state = venue.parent / "other.json"
    engine = live_engine(venue)
    engine.next_block()
    data = StateWriter(engine, state).snapshot()
    data["overrides"].append({"cmd": "voice.bias", "voice": "n", "dim": 9, "value": 1.0})
    state.write_text(json.dumps(data))
    assert main(["snapshot", "-c", str(venue), "--from", str(state)]) == 2
    err = capsys.readouterr().err
    assert "overrides[" in err and "dim 9 out of range" in err
    assert not list((venue.parent / "piece").glob("piece.snapshot-*"))


def test_osc_snapshot_answers_the_path_or_an_error(venue: Path) -> None:
    config = load_config(venue)
    engine = build_engine(config, fade_in_s=0.0, live_loads=False, warm_up=False)
    server = OscServer(engine, OscConfig(), lambda: {}, port=0)
    requests = SnapshotRequests(config, engine, server.answer)
    engine.handlers[c.SnapshotPiece] = requests
    engine.next_block()  # the snapshot lists the handler
    sender = ("127.0.0.1", 9999)
    assert server.handle_datagram(encode_message("/voice/w/gain", [0.25]), sender) == []
    assert server.handle_datagram(encode_message("/snapshot", []), sender) == []
    engine.next_block()  # applies both; the snapshot waits for the block after them
    engine.next_block()
    requests.join()
    [(payload, target)] = server.engine_replies()
    [message] = parse_packet(payload)
    assert target == sender and message.address == "/snapshot"
    written = Path(str(message.args[0]))
    assert "gain = 0.25" in written.read_text()

    # The piece file edited since the daemon started: the live state no longer belongs to it.
    piece_file = config.piece_file
    piece_file.write_text(piece_file.read_text().replace("gain = 0.8", "gain = 0.7"))
    server.handle_datagram(encode_message("/snapshot", []), sender)
    engine.next_block()
    engine.next_block()
    requests.join()
    [(payload, _)] = server.engine_replies()
    [message] = parse_packet(payload)
    assert message.address == "/error" and message.args[0] == "/snapshot"
    assert "no snapshot written" in str(message.args[1]) and "changed since" in str(message.args[1])
    assert len(list(piece_file.parent.glob("piece.snapshot-*"))) == 1


def test_a_pan_replaces_a_route_and_a_whole_number_parameter_becomes_an_integer(venue: Path) -> None:
    piece_file = venue.parent / "piece" / "piece.toml"
    text = piece_file.read_text().replace(
        'source = { kind = "noise", smooth_s = 0.2 }',
        'source = { kind = "presets", banks = [0.0, 1.0, 2.0] }\nroute = ["FL"]',
    )
    piece_file.write_text(text)
    config = load_config(venue)
    engine = build_engine(config, fade_in_s=0.0, live_loads=False, warm_up=False)
    engine.submit(c.SetSourceParam("n", "bank", 2.0))
    engine.submit(c.SetVoicePan("n", 10.0))
    engine.next_block()
    merged = merge_live_state(config, text, live_state(engine.snapshot))
    new = merged.text
    assert not merged.left_out[:-1], merged.left_out  # the last: the programme position
    assert "bank = 2}" in new  # a whole number, as the spec has it
    assert "route" not in new and "azimuth_deg = 10.0" in new
    snap = load_config(venue, piece_file=write_snapshot(config, new))
    voice = snap.piece.voices["n"]
    assert voice.source.bank == 2  # type: ignore[union-attr]
    assert voice.route is None and voice.pan is not None and voice.pan.azimuth_deg == 10.0


def test_a_running_host_answers_snapshot_over_udp(venue: Path) -> None:
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as probe:
        probe.bind(("127.0.0.1", 0))
        port = int(probe.getsockname()[1])
    venue.write_text(VENUE + f"\n[osc]\nenabled = true\nport = {port}\n")
    ring = BlockRing(8, 256, 4)
    outs = [np.zeros(256, np.float32) for _ in range(4)]
    host = EngineHost(load_config(venue), ring, record=False, label="snap", xruns=lambda: 0)
    host.start()
    try:
        with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as sock:
            sock.bind(("127.0.0.1", 0))
            sock.settimeout(0.05)
            sock.sendto(encode_message("/voice/n/gain", [0.3]), ("127.0.0.1", port))
            sock.sendto(encode_message("/snapshot", []), ("127.0.0.1", port))
            deadline = time.monotonic() + 20.0  # a guard against a hang, not a measurement
            reply = None
            while reply is None:
                assert time.monotonic() < deadline, "no /snapshot reply"
                while ring.read_into(outs):  # stands in for the JACK callback
                    pass
                try:
                    reply = parse_packet(sock.recv(65536))[0]
                except TimeoutError:
                    continue
    finally:
        host.stop()
    assert reply.address == "/snapshot", reply
    text = Path(str(reply.args[0])).read_text()
    assert "gain = 0.3" in text and "# The test piece" in text
