"""A small TOML writer for the effective configuration."""

from __future__ import annotations

import json
import math
import re
from collections.abc import Mapping
from pathlib import Path
from typing import Any


# ----------------------------------------------------------------------------------------- TOML output
def _key(name: str) -> str:
    """A TOML key: bare when it can be, quoted otherwise."""
    return name if re.fullmatch(r"[A-Za-z0-9_\-]+", name) else json.dumps(name, ensure_ascii=False)


def to_toml(data: Mapping[str, Any]) -> str:
    """A TOML document for plain data (dicts, lists, str, int, float, bool); ``None`` values are left out."""
    lines: list[str] = []
    _emit_table(lines, [], data, None)
    return "\n".join(lines).lstrip("\n") + "\n"


def _is_table(v: Any) -> bool:
    return isinstance(v, Mapping) and len(v) > 0


def _is_table_array(v: Any) -> bool:
    return isinstance(v, list) and len(v) > 0 and all(isinstance(x, Mapping) for x in v)


def _emit_table(lines: list[str], path: list[str], table: Mapping[str, Any], header: str | None) -> None:
    plain = [
        (k, v) for k, v in table.items() if v is not None and not _is_table(v) and not _is_table_array(v)
    ]
    tables = [(k, v) for k, v in table.items() if _is_table(v)]
    arrays = [(k, v) for k, v in table.items() if _is_table_array(v)]
    if header is not None:
        lines.extend(["", header])
    elif path and (plain or not (tables or arrays)):
        lines.extend(["", f"[{'.'.join(path)}]"])
    lines.extend(f"{_key(k)} = {toml_value(v)}" for k, v in plain)
    for k, v in tables:
        _emit_table(lines, [*path, _key(k)], v, None)
    for k, items in arrays:
        sub = [*path, _key(k)]
        for item in items:
            _emit_table(lines, sub, item, f"[[{'.'.join(sub)}]]")


def toml_value(v: Any) -> str:
    """One TOML value on one line."""
    if isinstance(v, bool):
        return "true" if v else "false"
    if isinstance(v, int):
        return str(v)
    if isinstance(v, float):
        if math.isnan(v):
            return "nan"
        if math.isinf(v):
            return "inf" if v > 0 else "-inf"
        return repr(v)
    if isinstance(v, str | Path):
        return json.dumps(str(v), ensure_ascii=False)
    if isinstance(v, list | tuple):
        return "[" + ", ".join(toml_value(x) for x in v) + "]"
    if isinstance(v, Mapping):
        if not v:
            return "{}"
        return (
            "{ "
            + ", ".join(f"{_key(str(k))} = {toml_value(x)}" for k, x in v.items() if x is not None)
            + " }"
        )
    raise TypeError(f"cannot write {type(v).__name__} as TOML")
