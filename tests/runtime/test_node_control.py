"""The control channel: the master's commands reach a worker's engine with their block, over UDP."""

from __future__ import annotations

import json
import socket
import time
from collections.abc import Callable
from pathlib import Path

from structlog.testing import capture_logs

from latentd.config import load_config
from latentd.engine import commands as c
from latentd.engine.node_sync import CommandLead
from latentd.modelkit.builder import SynthSpec
from latentd.offline.build import build_engine
from latentd.runtime.node_control import NodeReceiver
from tests.pieces import write_piece


def test_a_worker_applies_the_masters_command_at_its_block(
    tmp_path: Path, model_factory: Callable[[SynthSpec], Path]
) -> None:
    model = model_factory(SynthSpec(latent_size=4, ratio=1024, sr=48000))
    source = {"kind": "lfo", "freq_hz": 0.1}
    path = write_piece(
        tmp_path,
        models={"m": model},
        voices={"a": {"model": "m", "source": source}, "b": {"model": "m", "source": source}},
        sections=[
            {"name": "one", "voices": ["a"], "duration_s": 3600.0},
            {"name": "two", "voices": ["b"], "duration_s": 3600.0},
        ],
    )
    engine = build_engine(load_config(path), fade_in_s=0.0, warm_up=False)
    engine.lead = CommandLead(0)
    receiver = NodeReceiver(engine, "127.0.0.1", 0).start()
    port = receiver._sock.getsockname()[1]
    try:
        with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as sender, capture_logs() as logs:
            sender.sendto(b"not json", ("127.0.0.1", port))
            command = {"block": 5, "command": c.GotoSection("two").to_json()}
            sender.sendto(json.dumps(command).encode(), ("127.0.0.1", port))
            deadline = time.monotonic() + 5.0
            while receiver.received < 1 and time.monotonic() < deadline:
                time.sleep(0.01)
        assert receiver.received == 1
        assert [e["event"] for e in logs] == ["node.bad_command"]
        sections = []
        for _ in range(8):
            engine.next_block()
            sections.append(engine.snapshot.section)
        assert sections == ["one"] * 5 + ["two"] * 3  # applied before block 5
    finally:
        receiver.stop()
