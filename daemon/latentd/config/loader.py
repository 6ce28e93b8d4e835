"""Strict configuration: the venue config (``configs/<venue>.toml``) and the piece (``piece.toml``).

Both files are TOML, validated into frozen pydantic models that forbid unknown keys and take no strings
for numbers. :func:`load_config` reads both and reports EVERY problem found in either file at once, each
as ``file: key.path = value: what is wrong and what is allowed`` (a :class:`ConfigError` holding
:class:`Problem` values). It checks types and ranges (pydantic), then the references between and across
the files: voices → models, sections → voices, routes → the venue's speakers, trims → speakers, the
piece's layout → the venue's layout, model files on disk.

Relative paths: ``piece`` and ``output.render_dir`` are relative to the venue config file; model paths are
relative to the piece folder.

Adding a venue section (``[osc]``, ``[recording]``, ``[schedule]``, ...): write a frozen model that
forbids extra keys and whose fields all have defaults and a description (what the key means, its unit,
what is allowed), add it to ``venue.VenueConfig`` with ``Field(default_factory=...)``, put any check that
needs another section or the layout in ``checks._check_venue``, and regenerate ``docs/configuration.md``
with ``latentd config --reference``.
"""

from __future__ import annotations

import os
import re
import tomllib
from dataclasses import dataclass
from pathlib import Path
from typing import IO, Any

from latentd.config.checks import _check_piece, _check_venue, _join, _unique, _validate
from latentd.config.nodes import node_config, nodes_problems
from latentd.config.problems import MISSING, PIECE_FILE, ConfigError, Problem
from latentd.config.schema import PieceConfig, VenueConfig
from latentd.config.toml_out import to_toml
from latentd.installation.layout import Layout


# ----------------------------------------------------------------------------------- the loaded config
def piece_file_in(piece_dir: Path) -> Path:
    """The piece file of a piece folder (the one place its name is joined to a folder)."""
    return piece_dir / PIECE_FILE


@dataclass(frozen=True)
class Config:
    """The effective configuration: both files validated, with the places they were read from.

    Attributes:
        venue: The venue config.
        piece: The piece.
        venue_path: Absolute path of the venue config file.
        piece_dir: Absolute path of the piece folder.
    """

    venue: VenueConfig
    piece: PieceConfig
    venue_path: Path
    piece_dir: Path

    @property
    def piece_file(self) -> Path:
        """Absolute path of ``piece.toml``."""
        return piece_file_in(self.piece_dir)

    @property
    def render_dir(self) -> Path:
        """Absolute folder for renders (``output.render_dir`` is relative to the venue config)."""
        return _join(self.venue_path.parent, self.venue.output.render_dir)

    @property
    def state_file(self) -> Path:
        """Absolute path of the state file (``schedule.state_file`` is relative to the venue config)."""
        return _join(self.venue_path.parent, self.venue.schedule.state_file)

    @property
    def layout(self) -> Layout:
        """The venue's speaker layout."""
        return self.venue.audio.make_layout()

    def model_path(self, name: str) -> Path:
        """Absolute path of the file of model ``name`` (model paths are relative to the piece folder)."""
        if name not in self.piece.models:
            raise KeyError(f"no model {name!r}; models: {', '.join(self.piece.models)}")
        return _join(self.piece_dir, self.piece.models[name].path)

    def piece_path(self, relative: str) -> Path:
        """Absolute path of a file or folder named relative to the piece folder."""
        return _join(self.piece_dir, relative)

    def to_toml_dict(self) -> dict[str, Any]:
        """The effective configuration as plain data, defaults filled and paths made absolute."""
        venue = self.venue.model_dump(mode="json", exclude_none=True)
        venue["piece"] = str(self.piece_dir)
        venue["output"]["render_dir"] = str(self.render_dir)
        piece = self.piece.model_dump(mode="json", exclude_none=True)
        for name, model in piece["models"].items():
            model["path"] = str(self.model_path(name))
        return {"venue": venue, "piece": piece}


def load_config(path: Path | str, *, piece_file: Path | None = None, node: str | None = None) -> Config:
    """Read and check a venue config and the piece it names.

    Args:
        path: The venue config file.
        piece_file: read this file instead of the piece folder's ``piece.toml`` (a snapshot beside it,
            checked before it is adopted); paths in it stay relative to the piece folder.
        node: the node of ``[nodes]`` this machine is (``latentd run --node``); None = the venue's ``node``
            key. With a node chosen, the configuration is that node's (``config.nodes.node_config``).

    Raises:
        ConfigError: with every problem found in both files (the piece is checked even when the venue
            file has problems, as long as its ``piece`` entry leads to a piece file).
    """
    venue_file = Path(path)
    problems: list[Problem] = []
    venue: VenueConfig | None = None
    piece: PieceConfig | None = None
    piece_dir: Path | None = None
    layout: Layout | None = None
    downmix = False
    venue_raw = _read_toml(venue_file, problems)
    if venue_raw is not None:
        venue = _validate(VenueConfig, venue_raw, venue_file, problems)
        layout, downmix = _check_venue(venue_raw, venue_file, problems)
        piece_dir = _find_piece(venue_raw, venue_file, problems)
    if piece_dir is not None:
        piece_file = piece_file_in(piece_dir) if piece_file is None else piece_file
        piece_raw = _read_toml(piece_file, problems)
        if piece_raw is not None:
            piece = _validate(PieceConfig, piece_raw, piece_file, problems)
            _check_piece(piece_raw, piece_dir, piece_file, layout, downmix, venue_file, problems)
    if venue is not None and piece is not None:
        problems += nodes_problems(venue.node, venue.nodes, piece.voices, venue_file)
    if venue is not None and node is not None and node not in venue.nodes:
        known = ", ".join(venue.nodes) or "none: the venue has no [nodes]"
        problems.append(Problem(venue_file, "node", node, f"(--node) is no node of [nodes] ({known})"))
    if problems or venue is None or piece is None or piece_dir is None:
        raise ConfigError(_unique(problems))
    config = Config(venue=venue, piece=piece, venue_path=venue_file.resolve(), piece_dir=piece_dir.resolve())
    return node_config(config, node) if venue.nodes and (node or venue.node) else config


def print_effective(config: Config, out: IO[str]) -> None:
    """Write the effective configuration to ``out`` as TOML (it reads back with tomllib)."""
    out.write("# latentd: effective configuration (defaults filled, paths absolute)\n")
    out.write(f"# venue config: {config.venue_path}\n")
    out.write(f"# piece: {config.piece_file}\n")
    out.write(to_toml(config.to_toml_dict()))


# --------------------------------------------------------------------------------------- reading files


def _read_toml(file: Path, problems: list[Problem]) -> dict[str, Any] | None:
    try:
        text = file.read_bytes().decode("utf-8")
    except OSError as exc:
        problems.append(Problem(file, "", MISSING, f"cannot read the file: {exc.strerror or exc}"))
        return None
    except UnicodeDecodeError as exc:
        problems.append(
            Problem(file, "", MISSING, f"not UTF-8 text (byte {exc.start}): TOML files are UTF-8")
        )
        return None
    try:
        data = tomllib.loads(text)
        if _too_deep(data):  # the checks and the messages that show values recurse as tomllib does
            raise RecursionError
        return data
    except RecursionError:  # tomllib recurses once per level of nested arrays and inline tables
        line = _deep_nesting_line(text)
        problems.append(
            Problem(
                file,
                "",
                MISSING,
                f"arrays or inline tables nested too deeply (from line {line}): a latentd config "
                "nests them only a few levels",
            )
        )
        return None
    except tomllib.TOMLDecodeError as exc:
        message = str(exc)
        found = re.search(r"\s*\(at line (\d+), column (\d+)\)$", message)
        if found:
            duplicate = _duplicate_key(text, int(found.group(1)), message)
            if duplicate is not None:
                problems.append(Problem(file, duplicate[0], MISSING, duplicate[1]))
                return None
            where = f"line {found.group(1)}, column {found.group(2)}"
            message = message[: found.start()]
        else:
            where = "the end of the file" if "end of document" in message else "an unknown position"
            message = re.sub(r"\s*\(at end of document\)$", "", message)
        problems.append(Problem(file, "", MISSING, f"TOML syntax error at {where}: {message}"))
        return None


MAX_NESTING = 64  # bracket depth past which the "too deep" message names the line
_HEADER_RE = re.compile(r"^\s*\[\[?\s*([^\]]+?)\s*\]\]?\s*(#.*)?$")
_KEY_RE = re.compile(r"^\s*([A-Za-z0-9_\-.\"' ]+?)\s*=")


def _too_deep(data: object) -> bool:
    """Whether ``data`` nests lists and tables more than :data:`MAX_NESTING` levels (without recursing)."""
    stack: list[tuple[object, int]] = [(data, 0)]
    while stack:
        value, depth = stack.pop()
        if depth > MAX_NESTING:
            return True
        if isinstance(value, dict):
            stack.extend((v, depth + 1) for v in value.values())
        elif isinstance(value, list):
            stack.extend((v, depth + 1) for v in value)
    return False


def _deep_nesting_line(text: str) -> int:
    """The line where brackets first nest deeper than :data:`MAX_NESTING` (strings are not parsed)."""
    depth = 0
    for number, line in enumerate(text.splitlines(), start=1):
        for ch in line:
            depth += 1 if ch in "[{" else -1 if ch in "]}" else 0
            if depth > MAX_NESTING:
                return number
    return 1


def _duplicate_key(text: str, line_no: int, message: str) -> tuple[str, str] | None:
    """(key path, message) when tomllib's ``message`` is about a key or table given twice, else None."""
    if not message.startswith(("Cannot overwrite a value", "Cannot declare", "Duplicate inline table key")):
        return None
    lines = text.splitlines()
    if not 1 <= line_no <= len(lines):
        return None
    line = lines[line_no - 1]
    inline = re.search(r"Duplicate inline table key '([^']+)'", message)
    header = _HEADER_RE.match(line)
    table = ""
    for earlier in reversed(lines[: line_no - 1]):
        found = _HEADER_RE.match(earlier)
        if found:
            table = found.group(1).replace(" ", "")
            break
    if header is not None:
        key, kind = header.group(1).replace(" ", ""), "table"
        first = _first_line(
            lines,
            line_no,
            lambda text: (m := _HEADER_RE.match(text)) is not None and m.group(1).replace(" ", "") == key,
        )
    else:
        assigned = _KEY_RE.match(line)
        if assigned is None:
            return None
        name = inline.group(1) if inline else assigned.group(1).strip()
        key, kind = (f"{table}.{name}" if table and not inline else name), "key"
        first = (
            None
            if inline
            else _first_line(
                lines,
                line_no,
                lambda text: (m := _KEY_RE.match(text)) is not None and m.group(1).strip() == name,
                stop_at_header=True,
            )
        )
    where = f" (first given at line {first})" if first else ""
    advice = "merge the two tables" if kind == "table" else "keep one of the two"
    return key, f"duplicate {kind} {key!r} at line {line_no}{where}: give each {kind} once; {advice}"


def _first_line(lines: list[str], line_no: int, same: Any, *, stop_at_header: bool = False) -> int | None:
    """The number of the first line before ``line_no`` for which ``same(line)`` holds."""
    first = None
    for number in range(line_no - 1, 0, -1):
        text = lines[number - 1]
        if same(text):
            first = number
        elif stop_at_header and _HEADER_RE.match(text):
            break
    return first


def _find_piece(venue_raw: dict[str, Any], venue_file: Path, problems: list[Problem]) -> Path | None:
    """The piece folder named by the venue config, if it holds a piece file (else a problem, or None)."""
    rel = venue_raw.get("piece")
    if not isinstance(rel, str) or not rel:
        return None  # already reported by the venue validation
    folder = Path(os.path.normpath(venue_file.parent / rel))
    if not folder.is_dir():
        message = f"no such folder: {_join(venue_file.parent, rel)} (the piece folder, relative to this file)"
        problems.append(Problem(venue_file, "piece", rel, message))
        return None
    if not piece_file_in(folder).is_file():
        problems.append(
            Problem(venue_file, "piece", rel, f"the folder {folder.absolute()} has no {PIECE_FILE}")
        )
        return None
    return folder
