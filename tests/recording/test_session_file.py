"""session.json as a type: what the recorder writes reads back the same, and a bad file is named."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from latentd.recording.session_file import (
    LatentFiles,
    ModelFile,
    SegmentInfo,
    SessionFileError,
    SessionInfo,
    SessionStatic,
)


def info() -> SessionInfo:
    static = SessionStatic(
        piece="p",
        venue="v",
        venue_path=Path("/etc/latentd/v.toml"),
        piece_file=Path("/srv/p/piece.toml"),
        config_hash="ab",
        models={"m": ModelFile("/srv/p/m.ts", "cd")},
        seed=7,
        samplerate=48000,
        blocksize=256,
        speakers=["L", "R"],
        torch_threads=2,
        fade_in_s=3.0,
    )
    return SessionInfo(
        format="w64",
        subtype="float32",
        static=static,
        label="night",
        voice_seeds={"a": 1},
        start_utc="2026-01-01T00:00:00+00:00",
        end_utc=None,
        start_block=20,
        stop_block=None,
        stop_reason=None,
        segments=[SegmentInfo("x_000.w64", 20, 0, 512), SegmentInfo("x_001.w64", 22, 512, 100)],
        latents={"a": LatentFiles("a_latents.wav", "a.npy", 9)},
        stats={"xruns": 0},
    )


def test_the_document_reads_back_as_it_was_written(tmp_path: Path) -> None:
    data = info().to_json()
    assert data["channels"] == 2 and data["frames"] == 612 and data["venue_config"] == "/etc/latentd/v.toml"
    assert data["models"] == {"m": {"path": "/srv/p/m.ts", "sha256": "cd"}}
    (tmp_path / "session.json").write_text(json.dumps(data), encoding="utf-8")
    read = SessionInfo.read(tmp_path)
    assert read.to_json() == data
    assert read.static.venue_path == Path("/etc/latentd/v.toml") and read.segments[1].start_frame == 512


def test_a_session_file_without_a_needed_key_is_refused_with_its_path(tmp_path: Path) -> None:
    data = info().to_json()
    del data["seed"]
    path = tmp_path / "session.json"
    path.write_text(json.dumps(data), encoding="utf-8")
    with pytest.raises(SessionFileError, match=r"session\.json: no 'seed'"):
        SessionInfo.read(path)
    path.write_text("{", encoding="utf-8")
    with pytest.raises(SessionFileError, match="not a session file"):
        SessionInfo.read(path)
