"""The control channel: the master's commands reach a worker's engine with their block, over UDP; a
worker heard again first gets the master's programme, then the operator's overrides of its voices."""

from __future__ import annotations

import json
import socket
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
from structlog.testing import capture_logs

from latentd.config import load_config
from latentd.engine import commands as c
from latentd.engine.engine import Engine
from latentd.engine.mix import Limiter
from latentd.engine.node_bus import NodeBus
from latentd.engine.node_sync import CommandLead, ProgrammeClock
from latentd.engine.remote_voices import NodeReport, RemoteVoices
from latentd.engine.ring import BlockRing
from latentd.modelkit.builder import SynthSpec
from latentd.offline.build import build_engine
from latentd.runtime.node_control import NodeReceiver, NodeReports, NodeSender
from tests.pieces import write_piece


def _two_sections(
    tmp_path: Path, model_factory: Callable[[SynthSpec], Path], one_s: float, two_s: float, **extra: Any
) -> Path:
    """A piece of two LFO voices, ``a`` in section "one" and ``b`` in section "two"."""
    model = model_factory(SynthSpec(latent_size=4, ratio=1024, sr=48000))
    source = {"kind": "lfo", "freq_hz": 0.1}
    return write_piece(
        tmp_path,
        models={"m": model},
        voices={"a": {"model": "m", "source": source}, "b": {"model": "m", "source": source}},
        sections=[
            {"name": "one", "voices": ["a"], "duration_s": one_s},
            {"name": "two", "voices": ["b"], "duration_s": two_s},
        ],
        **extra,
    )


def test_a_worker_applies_the_masters_command_at_its_block(
    tmp_path: Path, model_factory: Callable[[SynthSpec], Path]
) -> None:
    path = _two_sections(tmp_path, model_factory, 3600.0, 3600.0)
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


def test_a_worker_heard_again_gets_the_masters_programme_and_seeds_but_not_its_master_section(
    tmp_path: Path, model_factory: Callable[[SynthSpec], Path]
) -> None:
    path = _two_sections(tmp_path, model_factory, 0.3, 0.4, programme={"crossfade_s": 0.05})
    master = build_engine(load_config(path), fade_in_s=0.0, warm_up=False)
    master.lead = CommandLead(6)
    clock = ProgrammeClock(master, master.lead)
    ring = BlockRing(8, master.blocksize, master.n_channels + 1)
    bus = NodeBus("n1", ring, master.samplerate, cushion_blocks=1, fade_s=0.1)
    master.buses.append(bus)
    worker = build_engine(load_config(path), fade_in_s=0.0, warm_up=False)
    worker.lead = CommandLead(0)
    worker.programme.follows = True
    receiver = NodeReceiver(worker, "127.0.0.1", 0).start()
    # The worker plays "b", the master "a" (both engines have both here, to compare their programmes).
    sender = NodeSender({"n1": bus}, {"n1": receiver._sock.getsockname()}, clock, {"b": "n1"})
    master.lead.listeners.append(sender)
    master.block_start_listeners.extend([sender.on_block, clock])
    states: dict[str, dict[int, tuple[object, ...]]] = {"master": {}, "worker": {}}
    for name, engine in (("master", master), ("worker", worker)):

        def note(block: int, engine: Engine = engine, name: str = name) -> None:
            p = engine.programme
            states[name][block] = (p.current.name, p.step, p.position, p.morph_progress())

        engine.block_start_listeners.append(note)
    offset = -5  # the worker block mixed into master block m is m - 5
    try:
        # Given while the node is not heard: nothing is sent; the seed and the override are kept for
        # when it is.
        master.submit(c.ReseedVoice("b", 77))
        master.submit(c.SetVoiceGain("b", 0.25))
        for _ in range(40):
            master.next_block()
        assert sender.sent == 0
        for _ in range(20):
            worker.next_block()
        # The node is heard: its beat names the worker block it carries.
        beat = np.zeros((ring.n_channels, ring.blocksize), np.float32)
        for i in range(60):
            if i == 10:
                master.submit(c.SetMasterGain(0.5))  # heard, but the master's section is the master's
                master.submit(c.SetVoiceGain("a", 0.5))  # the master's own voice: not the worker's
            beat[-1] = master.counters.blocks + offset + 1 + Limiter.DELAY_BLOCKS
            ring.write(beat)
            master.next_block()
        assert bus.offset_blocks == offset
        deadline = time.monotonic() + 5.0
        while receiver.received < sender.sent and time.monotonic() < deadline:
            time.sleep(0.01)
        assert receiver.received == sender.sent >= 2
        while worker.counters.blocks < master.counters.blocks + offset:
            worker.next_block()
    finally:
        receiver.stop()
        sender.close()
    assert worker.snapshot.seed_of("b") == 77
    assert worker.voices["b"].gain.target == 0.25 and worker.voices["a"].gain.target == 1.0
    assert master.master_gain.target == 0.5 and worker.master_gain.target == 1.0
    heard = 41 + offset  # the state is given at the first block after the one the beat came in
    compared = range(heard, worker.counters.blocks)
    assert [states["worker"][w] for w in compared] == [states["master"][w - offset] for w in compared]
    assert len({states["worker"][w][0] for w in compared}) == 2  # and a section end given since


def test_a_worker_reports_its_voices_to_the_master_which_takes_them_from_that_node_only(
    tmp_path: Path, model_factory: Callable[[SynthSpec], Path]
) -> None:
    path = _two_sections(tmp_path, model_factory, 3600.0, 3600.0)
    master = build_engine(load_config(path), fade_in_s=0.0, warm_up=False)
    master.remote = RemoteVoices({"b": "n1"})
    worker = build_engine(load_config(path), fade_in_s=0.0, warm_up=False)
    reports = NodeReports(master, "127.0.0.1", 0, {"n1": "127.0.0.1", "n2": "10.9.9.9"}).start()
    receiver: NodeReceiver | None = None
    try:
        with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as stranger, capture_logs() as logs:
            # A report naming another node, from this address: dropped.
            forged = {"report": NodeReport.of("n2", worker.snapshot).to_json()}
            stranger.sendto(json.dumps(forged).encode(), reports._sock.getsockname())
            master_at = reports._sock.getsockname()
            receiver = NodeReceiver(worker, "127.0.0.1", 0, node="n1", master=master_at).start()
            deadline = time.monotonic() + 5.0
            while reports.received < 1 and time.monotonic() < deadline:
                time.sleep(0.01)
            worker.submit(c.SetVoiceGain("b", 0.5))
            worker.next_block()  # the voices change: reported soon, not a second later
            while master.remote.reports["n1"].voices["b"].gain != 0.5 and time.monotonic() < deadline:
                time.sleep(0.01)
    finally:
        if receiver is not None:
            receiver.stop()
        reports.stop()
    assert list(master.remote.reports) == ["n1"]
    assert master.remote.reports["n1"].voices["b"].gain == 0.5
    events = sorted(e["event"] for e in logs if e["event"].startswith("node."))
    assert events == ["node.bad_report", "node.reported"], logs


def test_a_worker_fades_out_when_the_masters_beats_stop_and_in_when_the_same_master_beats_again(
    tmp_path: Path, model_factory: Callable[[SynthSpec], Path]
) -> None:
    path = _two_sections(tmp_path, model_factory, 3600.0, 3600.0)
    master = build_engine(load_config(path), fade_in_s=0.0, warm_up=False)
    worker = build_engine(load_config(path), fade_in_s=0.0, warm_up=False)
    worker.lead = CommandLead(0)
    receiver = NodeReceiver(worker, "127.0.0.1", 0, master=("127.0.0.1", 0), fade_s=0.5)
    reports = NodeReports(master, "127.0.0.1", 0, {}, {"n1": receiver._sock.getsockname()}).start()
    receiver.master = reports._sock.getsockname()
    receiver.start()

    def wait(done: Callable[[], bool]) -> None:
        deadline = time.monotonic() + 10.0
        while not done() and time.monotonic() < deadline:
            master.next_block()  # the master's engine plays: its latentd beats
            time.sleep(0.01)

    def beat(session: str) -> None:
        with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as other:
            other.sendto(json.dumps({"beat": {"session": session}}).encode(), receiver._sock.getsockname())

    try:
        with capture_logs() as logs:
            wait(lambda: receiver.beats >= 2)
            session = json.loads(reports._beat)["beat"]["session"]
            reports.stop()  # the master's latentd is gone (its jackd may not be)
            wait(lambda: receiver.master_lost)
            worker.next_block()
            assert worker.fade.target == 0.0  # fading out
            beat("another")  # a new master: it sends its programme, which fades the worker in
            wait(lambda: not receiver.master_lost)
            wait(lambda: receiver.master_lost)
            beat("another")  # the same master, back from a pause: the worker fades in by itself
            wait(lambda: not receiver.master_lost)
            worker.next_block()
            assert worker.fade.target == 1.0
    finally:
        receiver.stop()
    assert session != "another"
    events = [(e["event"], e.get("same_master")) for e in logs if e["event"].startswith("node.master")]
    assert events == [
        ("node.master_lost", None),
        ("node.master_back", False),
        ("node.master_lost", None),
        ("node.master_back", True),
    ]
