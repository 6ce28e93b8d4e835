"""Fixtures for the command-line tests: a small valid venue and an invalid one."""

from __future__ import annotations

from pathlib import Path

import pytest

from latentd.modelkit.builder import SynthSpec
from tests.pieces import write_piece

# Open every day with one daily recording: a timetable that grows with --days.
DAILY = {
    "timezone": "Europe/Berlin",
    "hours": {day: ["10:00-18:00"] for day in ("mon", "tue", "wed", "thu", "fri", "sat", "sun")},
    "recordings": [{"start": "0 12 * * *", "duration_s": 600, "label": "noon"}],
}


@pytest.fixture
def venue(tmp_path: Path, model_factory) -> Path:
    """A valid venue config (one small model, two voices, a daily schedule, OSC on port 9123)."""
    model = model_factory(SynthSpec(latent_size=4, ratio=1024, sr=48000))
    return write_piece(
        tmp_path,
        models={"a": model},
        voices={"v": {"model": "a", "source": {"kind": "noise"}}},
        extra_venue={"schedule": DAILY, "osc": {"bind": "0.0.0.0", "port": 9123}},
    )


@pytest.fixture
def bad_venue(tmp_path: Path) -> Path:
    """A venue config with a misspelt key and no piece: invalid input for every command."""
    path = tmp_path / "bad.toml"
    path.write_text('piece = "nowhere"\n\n[audio]\nsamplerat = 48000\n')
    return path
