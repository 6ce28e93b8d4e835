"""Write small venue configs and pieces for tests, as real TOML files."""

from __future__ import annotations

from pathlib import Path
from typing import Any


def _value(v: Any) -> str:
    if isinstance(v, bool):
        return "true" if v else "false"
    if isinstance(v, int | float):
        return repr(v)
    if isinstance(v, str | Path):
        return '"' + str(v).replace("\\", "\\\\").replace('"', '\\"') + '"'
    if isinstance(v, list | tuple):
        return "[" + ", ".join(_value(x) for x in v) + "]"
    if isinstance(v, dict):
        return "{ " + ", ".join(f"{k} = {_value(x)}" for k, x in v.items()) + " }"
    raise TypeError(f"cannot write {type(v).__name__} as TOML")


def to_toml(data: dict[str, Any]) -> str:
    """A TOML document: top-level scalars, then [tables] (one level of [a.b] nesting), then [[arrays]]."""
    lines: list[str] = []
    tables: list[tuple[str, dict[str, Any]]] = []
    arrays: list[tuple[str, list[dict[str, Any]]]] = []
    for key, v in data.items():
        if isinstance(v, dict) and all(isinstance(x, dict) for x in v.values()) and v:
            tables.extend((f"{key}.{sub}", x) for sub, x in v.items())
        elif isinstance(v, dict):
            tables.append((key, v))
        elif isinstance(v, list) and v and all(isinstance(x, dict) for x in v):
            arrays.append((key, v))
        else:
            lines.append(f"{key} = {_value(v)}")
    for name, table in tables:
        lines.append(f"\n[{name}]")
        lines.extend(f"{k} = {_value(x)}" for k, x in table.items())
    for name, items in arrays:
        for item in items:
            lines.append(f"\n[[{name}]]")
            lines.extend(f"{k} = {_value(x)}" for k, x in item.items())
    return "\n".join(lines) + "\n"


def write_piece(
    root: Path,
    *,
    models: dict[str, Path],
    voices: dict[str, dict[str, Any]],
    sections: list[dict[str, Any]] | None = None,
    audio: dict[str, Any] | None = None,
    output: dict[str, Any] | None = None,
    programme: dict[str, Any] | None = None,
    seed: int = 1,
    extra_venue: dict[str, Any] | None = None,
    extra_piece: dict[str, Any] | None = None,
) -> Path:
    """Write ``root/venue.toml`` and ``root/piece/piece.toml``; return the venue config's path."""
    piece_dir = root / "piece"
    piece_dir.mkdir(parents=True, exist_ok=True)
    piece: dict[str, Any] = {
        "name": "test-piece",
        "seed": seed,
        "models": {name: {"path": str(path)} for name, path in models.items()},
        "voices": voices,
        "sections": sections or [{"name": "all", "voices": list(voices), "duration_s": 3600.0}],
    }
    if programme:
        piece["programme"] = programme
    piece.update(extra_piece or {})
    (piece_dir / "piece.toml").write_text(to_toml(piece))
    venue: dict[str, Any] = {
        "name": "test-venue",
        "piece": "piece",
        "audio": {
            "samplerate": 48000,
            "blocksize": 256,
            "layout": "quad",
            "frames_per_call": 4,
            **(audio or {}),
        },
        "output": {"dc_block_hz": 0.0, "ceiling_db": 0.0, **(output or {})},
        "logging": {"level": "error"},
        **(extra_venue or {}),
    }
    config = root / "venue.toml"
    config.write_text(to_toml(venue))
    return config


def steady_tone(model: str, speaker: str = "FL") -> dict[str, Any]:
    """A voice of a builder model (latent_size 4) at constant latents biased to a steady, loud tone."""
    return {
        "model": model,
        "source": {"kind": "constant", "values": 0.0},
        "bias": [0.0, -2.0, -4.0, 1.0],
        "route": [speaker],
    }


def smooth_noise(model: str, speaker: str = "FR") -> dict[str, Any]:
    """A voice of smoothed noise latents on one speaker."""
    return {"model": model, "source": {"kind": "noise", "smooth_s": 0.2}, "route": [speaker]}
