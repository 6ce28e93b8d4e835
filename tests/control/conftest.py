"""Fixtures for the OSC tests: a small two-voice, two-section piece on the synth model, and its engine."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from latentd.config import load_config
from latentd.control.osc import OscServer, make_status_provider
from latentd.control.osc_config import OscConfig
from latentd.control.osc_parse import OscArg, OscMessage, encode_message, parse_packet
from latentd.engine.engine import Engine
from latentd.installation.piece import load_installation
from latentd.modelkit.builder import SynthSpec
from tests.pieces import smooth_noise, steady_tone, write_piece

SR = 48000
LOCAL = ("127.0.0.1", 45000)


@pytest.fixture(scope="session")
def osc_piece(model_factory, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """Voice ``v`` (constant latents, dim 0 = pitch) on speaker 0, voice ``w`` (noise) on speaker 1;
    section ``a`` plays both, section ``b`` only ``w``."""
    drone = model_factory(SynthSpec(latent_size=4, ratio=1024, sr=SR))
    return write_piece(
        tmp_path_factory.mktemp("osc-piece"),
        models={"a": drone},
        voices={
            "v": steady_tone("a"),
            "w": smooth_noise("a"),
        },
        sections=[
            {"name": "a", "voices": ["v", "w"], "duration_s": 3600.0},
            {"name": "b", "voices": ["w"], "duration_s": 3600.0},
        ],
        programme={"crossfade_s": 0.05},
    )


@pytest.fixture
def make_engine(osc_piece: Path) -> Callable[[], Engine]:
    def make() -> Engine:
        return Engine(load_installation(load_config(osc_piece)), fade_in_s=0.0)

    return make


@pytest.fixture
def engine(make_engine) -> Engine:
    return make_engine()


@pytest.fixture
def serve(engine: Engine) -> Iterator[Callable[..., OscServer]]:
    """Starts OSC servers on a free loopback port for ``engine`` (or another engine: ``target``); stops
    them after the test."""
    servers: list[OscServer] = []

    def start(target: Engine | None = None, **config: Any) -> OscServer:
        live = target or engine
        server = OscServer(live, OscConfig(**config), make_status_provider(live), port=0)
        server.start()
        servers.append(server)
        return server

    yield start
    for server in servers:
        server.stop()


def make_server(engine: Engine, **config) -> OscServer:
    return OscServer(engine, OscConfig(**config), make_status_provider(engine))


def play(engine: Engine, seconds: float) -> np.ndarray:
    blocks = int(np.ceil(seconds * engine.samplerate / engine.blocksize))
    return np.concatenate([engine.next_block() for _ in range(blocks)], axis=1)


def rms(x: np.ndarray) -> float:
    return float(np.sqrt(np.mean(np.square(x, dtype=np.float64))))


def dominant_hz(x: np.ndarray) -> float:
    spectrum = np.abs(np.fft.rfft(x * np.hanning(len(x))))
    return float(np.fft.rfftfreq(len(x), 1 / SR)[np.argmax(spectrum)])


def deliver(server: OscServer, address: str, *args: OscArg, sender=LOCAL) -> list[OscMessage]:
    """Hand one message to the server's handler; return the replies it would send, parsed."""
    replies = server.handle_datagram(encode_message(address, list(args)), sender)
    return [m for payload, _ in replies for m in parse_packet(payload)]
