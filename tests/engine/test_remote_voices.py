"""Commands naming a worker's voice on the master: checked against what the worker reports, with the
words used for the master's own voices; journalled at their block; a reseed made concrete there."""

from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path

from latentd.config import load_config
from latentd.engine import commands as c
from latentd.engine.engine import Engine
from latentd.engine.node_sync import CommandLead
from latentd.engine.remote_voices import NodeReport, RemoteVoices
from latentd.modelkit.builder import SynthSpec
from latentd.offline.build import build_engine
from tests.pieces import write_piece

SOURCE = {"kind": "lfo", "freq_hz": 0.1}


def _pair(tmp_path: Path, model_factory: Callable[[SynthSpec], Path]) -> tuple[Engine, Engine]:
    """The master ``hub`` (voice ``a``) and the worker ``n1`` (voice ``b``) of one venue."""
    model = model_factory(SynthSpec(latent_size=4, ratio=1024, sr=48000))
    path = write_piece(
        tmp_path,
        models={"m": model},
        voices={"a": {"model": "m", "source": SOURCE}, "b": {"model": "m", "source": SOURCE}},
        extra_venue={
            "nodes": {
                "hub": {"role": "master", "address": "10.0.0.1", "voices": ["a"]},
                "n1": {"role": "worker", "address": "10.0.0.2", "voices": ["b"], "jack_server": "net"},
            }
        },
    )
    master = build_engine(load_config(path, node="hub"), fade_in_s=0.0, warm_up=False)
    worker = build_engine(load_config(path, node="n1"), fade_in_s=0.0, warm_up=False)
    master.remote = RemoteVoices({"b": "n1"})
    master.remote.watch(lambda: {"n1": True})
    master.lead = CommandLead(4)
    return master, worker


def test_a_workers_voice_is_checked_against_its_report_with_the_words_for_a_local_voice(
    tmp_path: Path, model_factory: Callable[[SynthSpec], Path]
) -> None:
    master, worker = _pair(tmp_path, model_factory)
    master.next_block()
    gain = c.SetVoiceGain("b", 0.5)
    assert "'n1', which has not reported its voices yet" in str(c.check(gain, master.snapshot))
    # The report crosses the network as JSON.
    report = json.loads(json.dumps(NodeReport.of("n1", worker.snapshot).to_json(), allow_nan=False))
    master.remote.take_report(NodeReport.from_json(report))
    master.next_block()
    view = master.snapshot
    assert c.check(gain, view) is None
    for make in (
        lambda v: c.SetSourceParam(v, "nosuch", 1.0),
        lambda v: c.SetSourceParam(v, "freq_hz", 1e9),
        lambda v: c.SetLatentBias(v, 9, 0.1),
        lambda v: c.SetConditioning(v, "pitch", 1.0),
        lambda v: c.SwapModel(v, "m"),
    ):
        local, remote = c.check(make("a"), view), c.check(make("b"), view)
        assert local is not None and remote == local.replace("'a'", "'b'"), (local, remote)
    assert c.check(c.SetVoiceGain("z", 1.0), view) == "unknown voice 'z'; voices: a, b"
    assert view.status()["remote_voices"] == {
        "b": {
            "node": "n1",
            "present": True,
            "gain": 1.0,
            "muted": False,
            "seed": worker.voices["b"].seed,
            "model": "m",
        }
    }


def test_a_command_for_a_workers_voice_is_sent_a_lead_ahead_and_journalled_at_its_block(
    tmp_path: Path, model_factory: Callable[[SynthSpec], Path]
) -> None:
    master, worker = _pair(tmp_path, model_factory)
    master.remote.take_report(NodeReport.of("n1", worker.snapshot))
    given: list[tuple[int, c.Command]] = []
    refused: list[str] = []
    journal: list[tuple[int, c.Command]] = []
    assert master.lead is not None
    master.lead.listeners.append(lambda block, cmd: given.append((block, cmd)))
    master.refusal_listeners.append(lambda cmd, reason: refused.append(reason))
    master.command_listeners.append(lambda block, cmd: journal.append((block, cmd)))
    master.submit(c.SetSourceParam("b", "nosuch", 1.0))
    master.submit(c.SetVoiceGain("b", 0.25))
    master.submit(c.ReseedVoice("b"))
    master.submit(c.ReseedVoice("b"))
    for _ in range(6):
        master.next_block()
    seed = worker.voices["b"].seed
    sent = [c.SetVoiceGain("b", 0.25), c.ReseedVoice("b", seed + 1), c.ReseedVoice("b", seed + 2)]
    assert refused == [c.check(c.SetSourceParam("a", "nosuch", 1.0), master.snapshot)]
    assert given == [(4, cmd) for cmd in sent]
    assert journal == given
    assert master.voices["a"].gain.target == 1.0  # the master's own voice is untouched
    assert not master.snapshot.overrides  # the worker keeps its voice's overrides (see node_control)
