"""The supervisor's lifecycle without JACK: signal flags, a start-up that fails, a shutdown after nothing."""

from __future__ import annotations

import signal
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

from latentd.config import ConfigError, load_config
from latentd.modelkit.builder import SynthSpec
from latentd.runtime.supervisor import Supervisor
from tests.pieces import write_piece


@pytest.fixture
def handlers() -> Iterator[None]:
    """The test process's stop-signal handlers and GIL switch interval, restored after the test."""
    saved = {s: signal.getsignal(s) for s in (signal.SIGTERM, signal.SIGINT)}
    interval = sys.getswitchinterval()
    yield
    for s, h in saved.items():
        signal.signal(s, h)
    sys.setswitchinterval(interval)


def config_for(tmp_path: Path, model: Path):
    voices = {"v": {"model": "tone", "source": {"kind": "constant", "values": 0.0}}}
    venue = write_piece(
        tmp_path,
        models={"tone": model},
        voices=voices,
        audio={"engine_process": False},
        extra_venue={"jack": {"start_server": False, "autoconnect": False}},
    )
    return load_config(venue)


def test_first_signal_asks_to_stop_second_forces(tmp_path, model_factory, handlers):
    sup = Supervisor(config_for(tmp_path, model_factory(SynthSpec(latent_size=4, ratio=1024, sr=48000))))
    sup._on_signal(signal.SIGTERM, None)
    assert sup.flags.stop and not sup.flags.force
    with pytest.raises(SystemExit) as exc:  # a start-up step that is still loading is interrupted
        sup._on_signal(signal.SIGINT, None)
    assert exc.value.code == 130 and sup.flags.force


def test_a_second_signal_during_shutdown_only_shortens_it(tmp_path, model_factory, handlers):
    sup = Supervisor(config_for(tmp_path, model_factory(SynthSpec(latent_size=4, ratio=1024, sr=48000))))
    sup.shutdown()  # after no start-up at all: nothing to undo
    sup._on_signal(signal.SIGTERM, None)
    sup._on_signal(signal.SIGTERM, None)
    assert sup.flags.force


def test_a_bad_model_stops_the_startup_and_everything_is_undone(tmp_path, handlers):
    bad = tmp_path / "garbage.ts"
    bad.write_text("not a model")
    sup = Supervisor(config_for(tmp_path, bad))
    before = signal.getsignal(signal.SIGTERM)
    with pytest.raises(ConfigError, match=r"models\.tone\.path"):
        sup.run()
    assert sup.host is not None and sup.host.engine is None and sup.output is None
    assert signal.getsignal(signal.SIGTERM) == before
    assert sup.stack_dump is not None and not sup.stack_dump._installed
