"""Reading a daemon's JSON log lines in tests."""

from __future__ import annotations

import json
from collections.abc import Iterable
from pathlib import Path
from typing import Any


def log_events(lines: Iterable[str] | Path, name: str) -> list[dict[str, Any]]:
    """The JSON log entries named ``name``, from a log file or from lines; other lines are skipped."""
    if isinstance(lines, Path):
        lines = lines.read_text(errors="replace").splitlines()
    found = []
    for line in lines:
        try:
            entry = json.loads(line)
        except json.JSONDecodeError:
            continue
        if isinstance(entry, dict) and entry.get("event") == name:
            found.append(entry)
    return found
