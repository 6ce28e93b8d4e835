"""``latentd models inspect``: print what model files offer, as a readable table or as JSON."""

import json
from dataclasses import astuple
from pathlib import Path
from typing import TextIO

from latentd.installation.models import ModelError, ModelInfo, read_info


def info_to_dict(info: ModelInfo) -> dict[str, object]:
    """A JSON-ready view of a model's contract, with its latent rate and tempo table."""
    return {
        "path": str(info.path),
        "methods": list(info.methods),
        "params": {
            name: [p.in_channels, p.in_ratio, p.out_channels, p.out_ratio] for name, p in info.params.items()
        },
        "method": info.method,
        "latent_size": info.latent_size,
        "full_latent_size": info.full_latent_size,
        "ratio": info.ratio,
        "sr": info.sr or None,
        "declared_sr": info.declared_sr,
        "latent_rate_hz": info.latent_rate_hz or None,
        "n_channels": info.n_channels,
        "conditioning": list(info.conditioning),
        "conditioning_ranges": [list(r) if r else None for r in info.conditioning_ranges],
        "input_labels": list(info.input_labels),
        "streaming": info.streaming,
        "cache_rows": info.cache_rows,
        "attributes": {name: _jsonable(value) for name, value in info.attributes.items()},
        "tempo": [{"k": k, "bpm": round(bpm, 2)} for k, bpm in info.tempo_table()] if info.sr else [],
    }


def _jsonable(value: object) -> object:
    if value is None or isinstance(value, bool | int | float | str):
        return value
    if isinstance(value, list | tuple):
        return [_jsonable(v) for v in value]
    return repr(value)


def format_info(info: ModelInfo) -> str:
    """A readable table of one model's contract and its tempo table."""
    methods = "  ".join(
        f"{name} {list(astuple(info.params[name]))}" if name in info.params else f"{name} (no params)"
        for name in info.methods
    )
    full = (
        f" (full_latent_size {info.full_latent_size})"
        if info.full_latent_size not in (None, info.latent_size)
        else ""
    )
    streaming = f"yes ({info.cache_rows} batch rows)" if info.streaming else "no (clicks at block edges)"
    attributes = (
        ", ".join(
            f"{k}={v!r}" + (" (read-only)" if k in info.read_only else "") for k, v in info.attributes.items()
        )
        or "none"
    )
    conditioning = ", ".join(
        name + (f" {r[0]}..{r[1] - 1}" if r else "")
        for name, r in zip(info.conditioning, info.conditioning_ranges, strict=False)
    )
    sr = f"{info.sr} Hz" if info.sr else "none declared (give `samplerate` in its [models.<name>] table)"
    rate = f"{info.latent_rate_hz:.2f} Hz" if info.sr else "unknown without a sample rate"
    rows = [
        ("file", str(info.path)),
        ("methods", methods),
        ("method", info.method),
        ("latent_size", f"{info.latent_size}{full}"),
        ("ratio", str(info.ratio)),
        ("sr", sr),
        ("latent rate", rate),
        ("channels", str(info.n_channels)),
        ("conditioning", conditioning or "none"),
        ("streaming", streaming),
        ("attributes", attributes),
    ]
    lines = [info.path.name]
    lines += [f"  {key:<13} {value}" for key, value in rows]
    if not info.sr:
        return "\n".join(lines)
    lines.append("  tempo         loop of k latent frames -> BPM = 60 * (sr / ratio) / k")
    table = [f"k={k:<2} {bpm:8.2f}" for k, bpm in info.tempo_table()]
    for start in range(0, len(table), 4):
        lines.append("                " + "   ".join(table[start : start + 4]))
    return "\n".join(lines)


def inspect_models(paths: list[Path], as_json: bool, out: TextIO) -> int:
    """Print each model's contract (a table, or a JSON list with ``--json``).

    Every file is tried; a file that fails is reported (``error: ...``, or an object with an ``error`` key
    in JSON) and the others still print.

    Returns:
        0 when every file was read, 2 when at least one failed.
    """
    status = 0
    records: list[dict[str, object]] = []
    for path in paths:
        try:
            info = read_info(Path(path), require_sr=False)
        except ModelError as exc:
            status = 2
            if as_json:
                records.append({"path": str(path), "error": str(exc)})
            else:
                print(f"error: {exc}", file=out)
            continue
        if as_json:
            records.append(info_to_dict(info))
        else:
            print(format_info(info), file=out)
            print(file=out)
    if as_json:
        print(json.dumps(records, indent=2), file=out)
    return status
