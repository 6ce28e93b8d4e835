"""Problems found in configuration files, and the error that carries them all."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

from latentd.config.toml_out import toml_value

PIECE_FILE = "piece.toml"


# ---------------------------------------------------------------------------------------------- problems
class _Missing:
    """The value of a key that is not there."""

    def __repr__(self) -> str:
        return "MISSING"


MISSING: Any = _Missing()
"""``Problem.value`` of a key that is absent (or of a problem about a whole table)."""


@dataclass(frozen=True)
class Problem:
    """One thing wrong in a configuration file.

    Attributes:
        file: The file, as the user named it (relative paths stay relative).
        key: Dotted key path, e.g. ``voices.low.source.freq_hz`` or ``sections[1].voices[0]``; empty for
            problems with the file as a whole (unreadable, TOML syntax).
        value: The offending value, or ``MISSING``.
        message: What is wrong and what is allowed.
    """

    file: Path
    key: str
    value: object
    message: str

    def __str__(self) -> str:
        where = f"{self.file}: {self.key}" if self.key else str(self.file)
        if self.value is not MISSING:
            where += f" = {_show(self.value)}"
        return f"{where}: {self.message}"


class ConfigError(Exception):
    """Invalid configuration; ``problems`` lists everything found, ``str()`` prints one per line."""

    def __init__(self, problems: list[Problem]) -> None:
        self.problems = list(problems)
        super().__init__("\n".join(str(p) for p in self.problems))

    @classmethod
    def single(cls, file: Path, key: str, value: object, message: str) -> ConfigError:
        """An error with one problem."""
        return cls([Problem(file, key, value, message)])


def _show(value: object, limit: int = 80) -> str:
    """A value as it would be written in TOML, shortened for a message."""
    try:
        text = toml_value(value)
    except TypeError:
        text = repr(value)
    return text if len(text) <= limit else text[: limit - 3] + "..."
