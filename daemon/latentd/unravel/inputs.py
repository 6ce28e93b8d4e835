"""Finding the input files of the toolkit's commands, and the error every command reports."""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from pathlib import Path


class UnravelError(ValueError):
    """Bad input to a toolkit command: the message says what is wrong, where, and what is allowed."""


def find_inputs(inputs: Iterable[Path], suffixes: Sequence[str], what: str) -> list[Path]:
    """The files named by ``inputs``: files as given, folders scanned (not recursively) for ``suffixes``.

    Hidden files are skipped, each file is listed once, folder contents in name order.

    Args:
        inputs: files and folders.
        suffixes: lower-case suffixes with the dot, e.g. ``(".wav", ".flac")``.
        what: what the files are, for messages ("audio", "latent").

    Raises:
        UnravelError: an input does not exist, a file has another suffix, or no file was found.
    """
    allowed = ", ".join(suffixes)
    inputs = [Path(p) for p in inputs]
    found: list[Path] = []
    seen: set[Path] = set()
    for path in inputs:
        if path.is_dir():
            candidates = sorted(
                p
                for p in path.iterdir()
                if p.is_file() and not p.name.startswith(".") and p.suffix.lower() in suffixes
            )
        elif path.is_file():
            if path.suffix.lower() not in suffixes:
                raise UnravelError(f"{path}: not a {what} file (allowed suffixes: {allowed})")
            candidates = [path]
        else:
            raise UnravelError(f"{path}: no such file or folder")
        for candidate in candidates:
            key = candidate.resolve()
            if key not in seen:
                seen.add(key)
                found.append(candidate)
    if not found:
        where = ", ".join(str(p) for p in inputs) or "(no inputs given)"
        raise UnravelError(f"no {what} files found in {where} (looked for {allowed})")
    return found


def output_names(files: Sequence[Path], suffix: str, output: Path, strip: str = "") -> list[Path]:
    """``output/<stem><suffix>`` for each file, refusing two inputs that would write the same file.

    Args:
        files: input files.
        suffix: suffix of the outputs, e.g. ``".npy"``.
        output: the output folder.
        strip: a trailing part of stems to drop (``".latent"`` for ``x.latent.wav``).

    Raises:
        UnravelError: two inputs share a stem, or an output would overwrite an input.
    """
    outs: dict[Path, Path] = {}
    inputs = {f.resolve() for f in files}
    for file in files:
        stem = file.stem
        if strip and stem.endswith(strip) and stem != strip:
            stem = stem[: -len(strip)]
        out = Path(output) / f"{stem}{suffix}"
        if out in outs:
            raise UnravelError(
                f"{outs[out]} and {file} would both be written to {out}; rename one or run them separately"
            )
        if out.resolve() in inputs:
            raise UnravelError(f"{file}: its output {out} would overwrite an input; choose another --output")
        outs[out] = file
    return list(outs)
