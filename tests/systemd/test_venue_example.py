"""The venue config install.sh ships: everything the service writes lands in its state directory."""

from __future__ import annotations

import shutil
import tomllib
from pathlib import Path

from latentd.config import load_config
from latentd.config.writable import writable_places, writable_problems

ROOT = Path(__file__).resolve().parents[2]
EXAMPLE = ROOT / "systemd" / "venue.example.toml"
STATE_DIRECTORY = "/var/lib/latentd"  # StateDirectory=latentd in latentd.service


def test_the_service_state_directory_is_the_one_the_example_names() -> None:
    unit = (ROOT / "systemd" / "latentd.service").read_text()
    assert "StateDirectory=latentd" in unit and f"ReadWritePaths={STATE_DIRECTORY}" in unit
    assert "ProtectSystem=strict" in unit


def test_every_writable_place_of_the_example_is_in_the_state_directory(
    tmp_path: Path, demo_models: dict[str, Path]
) -> None:
    # The example as installed, with the state directory moved under tmp_path.
    state = tmp_path / STATE_DIRECTORY.lstrip("/")
    piece = state / "pieces" / "demo"
    (piece / "models").mkdir(parents=True)
    shutil.copy(ROOT / "installation" / "demo" / "piece.toml", piece / "piece.toml")
    for name, path in demo_models.items():
        shutil.copy(path, piece / "models" / f"{name}.ts")
    etc = tmp_path / "etc" / "latentd"
    etc.mkdir(parents=True)
    venue = etc / "venue.toml"
    venue.write_text(EXAMPLE.read_text().replace(STATE_DIRECTORY, str(state)))
    config = load_config(venue)
    places = writable_places(config)
    assert {p.key for p in places} >= {"schedule.state_file", "recording.folder", "output.render_dir"}
    for place in places:
        assert place.path.is_relative_to(state), f"{place.key} = {place.value} is outside {STATE_DIRECTORY}"
    assert writable_problems(config) == []
    # Every venue-level place is named explicitly, so the file shows where things go.
    raw = tomllib.loads(EXAMPLE.read_text())
    for place in places:
        if place.file == config.venue_path:
            section, key = place.key.split(".")
            assert raw[section][key].startswith(STATE_DIRECTORY + "/"), place.key
