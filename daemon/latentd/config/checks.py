"""Checks across keys and files: references, layouts, model files on disk."""

from __future__ import annotations

import difflib
import os
import typing
from collections.abc import Mapping
from pathlib import Path
from typing import Any, TypeGuard

from pydantic import (
    BaseModel,
    TypeAdapter,
    ValidationError,
)

from latentd.config.explain import _translate
from latentd.config.piece import CLAMP_ORDER, MATRIX_RAGGED, ROUTINGS, _routing_problem, pool_folder
from latentd.config.problems import MISSING, Problem
from latentd.config.toml_out import _key
from latentd.config.venue import AudioConfig, SpeakerConfig, _speakers_problem
from latentd.installation.layout import PRESETS, Layout, make_layout


# ---------------------------------------------------------------------------------------- validation
def _join(base: Path, relative: str) -> Path:
    """``relative`` resolved against ``base`` (absolute paths stay as they are), made absolute."""
    return Path(os.path.normpath(Path(base).absolute() / relative))


def _unique(problems: list[Problem]) -> list[Problem]:
    """Problems in order, each reported once (a model check and a cross-check may both find it)."""
    seen: set[tuple[str, str, str]] = set()
    out = []
    for p in problems:
        mark = (str(p.file), p.key, p.message)
        if mark not in seen:
            seen.add(mark)
            out.append(p)
    return out


def _partial(adapter: type[BaseModel] | TypeAdapter[Any], data: object) -> Any:
    """``data`` validated, or None when invalid (its problems are reported by the full validation)."""
    try:
        if isinstance(adapter, TypeAdapter):
            return adapter.validate_python(data, strict=True)
        return adapter.model_validate(data, strict=True)
    except ValidationError:
        return None


def _validate(model: type[BaseModel], data: dict[str, Any], file: Path, problems: list[Problem]) -> Any:
    """Validate strictly; on failure add readable problems and return None."""
    try:
        return model.model_validate(data, strict=True)
    except ValidationError as exc:
        errors: list[Any] = exc.errors(include_url=False)
        for key, value, message in _translate(model, errors):
            problems.append(Problem(file, key, value, message))
        return None


_SPEAKER_LIST = TypeAdapter(list[SpeakerConfig])


def _table(raw: object, key: str) -> dict[str, Any]:
    value = raw.get(key) if isinstance(raw, dict) else None
    return value if isinstance(value, dict) else {}


def _check_venue(raw: dict[str, Any], file: Path, problems: list[Problem]) -> tuple[Layout | None, bool]:
    """Checks that involve the layout (which speakers, trims, ports); returns the layout and downmix.

    They read the raw tables, so they run even when other keys of the same table are invalid.
    """
    _check_client_name(raw, file, problems)
    audio = _table(raw, "audio")
    downmix = audio.get("downmix") is True
    name = audio.get("layout", AudioConfig.model_fields["layout"].default)
    if not isinstance(name, str) or name not in typing.get_args(
        AudioConfig.model_fields["layout"].annotation
    ):
        return None, downmix
    speakers = None
    if "speakers" in audio:
        configs = _partial(_SPEAKER_LIST, audio["speakers"])
        if configs is None:
            return None, downmix
        speakers = configs
    problem = _speakers_problem(name, speakers)
    if problem:
        problems.append(Problem(file, "audio.speakers", MISSING, problem))
        return None, downmix
    layout = make_layout(name, speakers)
    for speaker in _table(_table(raw, "output"), "trims"):
        if speaker not in layout.names:
            problems.append(
                Problem(file, f"output.trims.{_key(speaker)}", MISSING, _unknown_speaker(speaker, layout))
            )
    ports = _table(raw, "jack").get("playback_ports")
    if isinstance(ports, list) and ports and len(ports) != layout.n_channels:
        message = (
            f"has {len(ports)} port(s) but layout {layout.name!r} has {layout.n_channels} speakers: "
            "give one port per speaker, or none"
        )
        problems.append(Problem(file, "jack.playback_ports", ports, message))
    return layout, downmix


def jack_server_name(name: str, server_name: str, start_server: bool) -> str:
    """The name of the JACK server a venue plays on: its own, the private one's, or "default"."""
    if server_name:
        return server_name
    return f"latentd-{name}" if start_server else "default"


def _check_client_name(raw: dict[str, Any], file: Path, problems: list[Problem]) -> None:
    """A client named like its server takes over the server's socket: the server stops answering."""
    jack = _table(raw, "jack")
    client = jack.get("client_name", "latentd")
    server = jack.get("server_name", "")
    start = jack.get("start_server", False)
    venue = raw.get("name", "")
    if not all(isinstance(v, str) for v in (client, server, venue)) or not isinstance(start, bool):
        return  # a type error, reported by the validation
    effective = jack_server_name(venue, server, start)
    if client != effective:
        return
    which = "jack.server_name" if server else "the private server's name" if start else "the default server"
    message = (
        f"equals the JACK server's name ({which}): a client named like its server takes over the server's "
        "socket and the server stops answering; choose another client_name"
    )
    problems.append(Problem(file, "jack.client_name", client, message))


def _check_piece(
    raw: dict[str, Any],
    piece_dir: Path,
    file: Path,
    layout: Layout | None,
    downmix: bool,
    venue_file: Path,
    problems: list[Problem],
) -> None:
    """References inside the piece, model files on disk, and the piece against the venue's layout.

    They read the raw tables, so a voice with a bad source still has its model and route checked.
    """
    models, voices = _table(raw, "models"), _table(raw, "voices")
    piece_layout = raw.get("layout")
    if layout is not None and isinstance(piece_layout, str) and piece_layout in PRESETS:
        needed = PRESETS[piece_layout].n_channels
        if needed > layout.n_channels and not downmix:
            message = (
                f"the piece is made for {needed} speakers but the venue layout {layout.name!r} has "
                f"{layout.n_channels}; set audio.downmix = true in {venue_file} to allow a downmix"
            )
            problems.append(Problem(file, "layout", piece_layout, message))
    pools = _table(raw, "pools")
    pool_folders = set()
    for name, entry in pools.items():
        if not isinstance(entry, dict):
            continue
        folder = pool_folder(name, entry.get("folder") or "")
        if isinstance(folder, str):
            pool_folders.add(os.path.normpath(_join(piece_dir, folder)))
        checkpoint = entry.get("checkpoint")
        if isinstance(checkpoint, str) and checkpoint and not _join(piece_dir, checkpoint).is_file():
            problems.append(
                Problem(
                    file,
                    f"pools.{_key(name)}.checkpoint",
                    checkpoint,
                    f"file not found: {_join(piece_dir, checkpoint)}",
                )
            )
    for name, entry in voices.items():
        source = entry.get("source") if isinstance(entry, dict) else None
        if (
            isinstance(source, dict)
            and source.get("kind") == "pool"
            and isinstance(source.get("folder"), str)
        ):
            folder = os.path.normpath(_join(piece_dir, source["folder"]))
            if folder not in pool_folders and not os.path.isdir(folder):
                known = ", ".join(sorted(os.path.relpath(f, piece_dir) for f in pool_folders)) or "none"
                problems.append(
                    Problem(
                        file,
                        f"voices.{_key(name)}.source.folder",
                        source["folder"],
                        f"no such folder, and no [pools.*] writes there (pool folders: {known})",
                    )
                )
    # A piece that ships without its model files says in its README where they come from.
    readme = piece_dir / "README.md"
    hint = f"; {readme} says which model file goes here and where to get it" if readme.is_file() else ""
    for name, entry in models.items():
        path = entry.get("path") if isinstance(entry, dict) else None
        if isinstance(path, str) and path and not _join(piece_dir, path).is_file():
            message = _model_file_problem(_join(piece_dir, path), hint)
            problems.append(Problem(file, f"models.{_key(name)}.path", path, message))
    # Routes and matrices name the piece's own speakers when the piece declares another layout: the
    # engine maps each of them onto the venue's speakers by azimuth.
    route_layout = layout
    if layout is not None and isinstance(piece_layout, str) and piece_layout in PRESETS:
        route_layout = PRESETS[piece_layout] if piece_layout != layout.name else layout
    for name, entry in voices.items():
        if isinstance(entry, dict):
            problems.extend(_check_voice(entry, f"voices.{_key(name)}", models, route_layout, file))
    _check_sections(raw.get("sections"), voices, file, problems)


def _model_file_problem(path: Path, hint: str) -> str:
    """Why ``path`` (not a regular file) cannot be a model file."""
    if path.is_dir():
        inside = sorted(p.name for p in path.glob("*.ts"))[:5]
        found = f" (it holds {', '.join(inside)})" if inside else " (it holds no .ts file)"
        return f"{path} is a folder, not a model file: name the TorchScript file (.ts) itself{found}"
    return f"file not found: {path}{hint}"


def _check_voice(
    entry: dict[str, Any], key: str, models: dict[str, Any], layout: Layout | None, file: Path
) -> list[Problem]:
    found: list[Problem] = []
    target = entry.get("model")
    if isinstance(target, str) and target and target not in models:
        found.append(Problem(file, f"{key}.model", target, _unknown("model", target, models, "[models.*]")))
    swap_targets = entry.get("swap_targets")
    for i, swap in enumerate(swap_targets if isinstance(swap_targets, list) else []):
        if isinstance(swap, str) and swap and swap not in models:
            message = _unknown("model", swap, models, "[models.*]")
            found.append(Problem(file, f"{key}.swap_targets[{i}]", swap, message))
    routing = _routing_problem([k for k in ROUTINGS if k in entry])
    if routing:
        found.append(Problem(file, key, MISSING, routing))
    clamp = entry.get("clamp")
    if _numbers(clamp) and len(clamp) == 2 and clamp[0] > clamp[1]:
        found.append(Problem(file, f"{key}.clamp", clamp, CLAMP_ORDER))
    matrix = entry.get("matrix")
    if isinstance(matrix, list) and matrix and all(_numbers(row) for row in matrix):
        widths = {len(row) for row in matrix}
        if len(widths) > 1:
            found.append(Problem(file, f"{key}.matrix", matrix, MATRIX_RAGGED))
        elif layout is not None and widths != {layout.n_channels}:
            message = (
                f"has {widths.pop()} column(s); the venue layout {layout.name!r} has {layout.n_channels} "
                f"speakers ({', '.join(layout.names)}): one column per speaker"
            )
            found.append(Problem(file, f"{key}.matrix", matrix, message))
    route = entry.get("route")
    if isinstance(route, list) and layout is not None:
        first: dict[int, int] = {}
        for i, speaker in enumerate(route):
            if not isinstance(speaker, str | int) or isinstance(speaker, bool):
                continue  # a type error, reported by the validation
            try:
                index = layout.index(speaker)
            except (KeyError, ValueError) as exc:
                found.append(Problem(file, f"{key}.route[{i}]", speaker, str(exc)))
                continue
            if index in first:
                found.append(
                    Problem(file, f"{key}.route[{i}]", speaker, f"the same speaker as route[{first[index]}]")
                )
            first.setdefault(index, i)
    return found


def _numbers(value: object) -> TypeGuard[list[float]]:
    return isinstance(value, list) and all(
        isinstance(x, int | float) and not isinstance(x, bool) for x in value
    )


def _check_sections(sections: object, voices: dict[str, Any], file: Path, problems: list[Problem]) -> None:
    if not isinstance(sections, list):
        return
    first: dict[str, int] = {}
    for i, entry in enumerate(sections):
        if not isinstance(entry, dict):
            continue
        name = entry.get("name")
        if isinstance(name, str):
            if name in first:
                problems.append(
                    Problem(file, f"sections[{i}].name", name, f"used twice (also sections[{first[name]}])")
                )
            first.setdefault(name, i)
        listed = entry.get("voices")
        for j, voice in enumerate(listed if isinstance(listed, list) else []):
            if isinstance(voice, str) and voice not in voices:
                message = _unknown("voice", voice, voices, "[voices.*]")
                problems.append(Problem(file, f"sections[{i}].voices[{j}]", voice, message))


def _unknown(what: str, name: str, known: Mapping[str, Any], tables: str) -> str:
    close = difflib.get_close_matches(name, list(known), n=1)
    hint = f"did you mean {close[0]!r}? " if close else ""
    allowed = ", ".join(known) if known else "none defined"
    return f"no {what} of this name; {hint}{tables} entries: {allowed}"


def _unknown_speaker(name: str, layout: Layout) -> str:
    close = difflib.get_close_matches(name, layout.names, n=1)
    hint = f"did you mean {close[0]!r}? " if close else ""
    return f"no speaker {name!r} in layout {layout.name!r}; {hint}speakers: {', '.join(layout.names)}"
