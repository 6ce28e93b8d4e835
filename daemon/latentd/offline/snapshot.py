"""A live tuning written back into the piece: operator overrides and voice seeds merged into piece.toml.

An operator tunes a piece by ear over OSC (gains, mutes, biases, scales, clamps, pans, rotations, source
parameters, conditioning, seeds); the engine keeps the latest override per target and the state file
stores them with the voices' seeds. :func:`merge_live_state` turns that live state into a new piece file:
the original text edited in place with tomlkit, so its comments and layout stay, every value it changes
named. :func:`write_snapshot` writes it beside ``piece.toml`` as ``piece.snapshot-<UTC time>.toml``
(never over an existing file), after the venue has been checked against it.

What a piece cannot say is listed, never guessed: a frozen latent frame, a clamp that differs between
dimensions, the master bus (a venue setting), the programme position and whatever a source has played
so far (a snapshot piece starts from its beginning).
"""

from __future__ import annotations

import datetime as dt
import difflib
import json
import os
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

import tomlkit
from pydantic import ValidationError
from tomlkit.items import Table

from latentd.config import Config, load_config
from latentd.config.piece import VoiceConfig
from latentd.engine import commands as c
from latentd.engine.voice import voice_seed

if TYPE_CHECKING:
    from latentd.engine.snapshot import EngineSnapshot

# Source parameters whose spec field has another name (all others have the parameter's own name).
_PARAM_FIELDS = {"value": "values"}


@dataclass(frozen=True)
class LiveState:
    """What an operator changed: the overrides in effect and each voice's seed.

    Attributes:
        seeds: voice → its current seed.
        overrides: the operator overrides in effect (the engine snapshot's ``overrides``).
        models: voice → the model it plays now (after swaps); empty when unknown (a state file).
        piece_seed: the piece seed the engine runs with, when known (it may differ from the piece's own).
        latent_sizes: voice → latent dimensions of the model it plays (to write per-dimension lists).
        position: where the programme stands, for the printout (a piece always starts at its beginning).
    """

    seeds: Mapping[str, int]
    overrides: Sequence[c.Command]
    latent_sizes: Mapping[str, int]
    models: Mapping[str, str] = field(default_factory=dict)
    piece_seed: int | None = None
    position: str = ""


def live_state(view: EngineSnapshot, piece_seed: int | None = None) -> LiveState:
    """The live state of a running engine, from its published snapshot (any thread)."""
    return LiveState(
        seeds={name: v.seed for name, v in view.voices.items()},
        overrides=tuple(view.overrides),
        latent_sizes={name: v.latent_size for name, v in view.voices.items()},
        models={name: v.model for name, v in view.voices.items()},
        piece_seed=piece_seed,
        position=f"section {view.section!r} at {view.position_s:.1f} s",
    )


def state_file_live(path: Path, view: EngineSnapshot) -> LiveState:
    """The live state stored in a state file, checked against ``view`` (a fresh engine of the piece).

    The file is only read (a running daemon owns it). Every seed and override is checked as the state
    restore checks it; a value that fails is an error naming it.

    Raises:
        ValueError: not a state file of this piece, or a value that does not fit it.
        OSError: the file cannot be read.
    """
    from latentd.runtime.state import STATE_VERSION  # the runtime layer owns the format

    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except json.JSONDecodeError as exc:
        raise ValueError(f"{path}: not a latentd state file: {exc}") from None
    if not isinstance(data, dict) or data.get("version") != STATE_VERSION:
        raise ValueError(f"{path}: not a latentd state file of version {STATE_VERSION}")
    if data.get("piece") != view.piece:
        raise ValueError(f"{path}: the state of piece {data.get('piece')!r}, not of {view.piece!r}")
    seeds, overrides = data.get("seeds"), data.get("overrides")
    if not isinstance(seeds, dict) or not isinstance(overrides, list):
        raise ValueError(f"{path}: seeds must be a table and overrides a list")
    checked_seeds: dict[str, int] = {}
    for name, seed in seeds.items():
        if name not in view.voices:
            continue  # a voice no longer in the piece: the restore skips it too
        reason = c.check(c.ReseedVoice(name, seed), view)
        if reason is not None:
            raise ValueError(f"{path}: seeds.{name} = {seed!r}: {reason}")
        checked_seeds[name] = seed
    commands: list[c.Command] = []
    for i, entry in enumerate(overrides):
        try:
            if not isinstance(entry, dict) or entry.get("cmd") not in c.COMMANDS:
                raise ValueError('an override must be {"cmd": name, fields...} with a known command')
            cmd = c.command_from_json(entry)
            if cmd.override is None:
                raise ValueError(f"{cmd.name} is an action, not an operator override")
        except (TypeError, ValueError) as exc:
            raise ValueError(f"{path}: overrides[{i}] = {entry!r}: {exc}") from None
        reason = c.check(cmd, view)
        if reason is not None:
            raise ValueError(f"{path}: overrides[{i}] = {entry!r}: {reason}")
        commands.append(cmd)
    p = data.get("programme")
    position = ""
    if isinstance(p, dict):
        position = f"section {p.get('section')!r} at {p.get('position_s', 0.0):.1f} s"
    return LiveState(
        seeds=checked_seeds,
        overrides=commands,
        latent_sizes={name: v.latent_size for name, v in view.voices.items()},
        position=position,
    )


@dataclass(frozen=True)
class Merged:
    """A piece with a live state merged in.

    Attributes:
        text: the new piece file.
        written: one line per value written into the piece.
        left_out: one line per override a piece cannot express, with the reason.
    """

    text: str
    written: list[str]
    left_out: list[str]


def merge_live_state(config: Config, original: str, live: LiveState) -> Merged:
    """``original`` (the text of the piece file of ``config``) with ``live`` merged in."""
    doc = tomlkit.parse(original)
    written: list[str] = []
    left_out: list[str] = []
    piece = config.piece
    piece_seed = piece.seed
    if live.piece_seed is not None and live.piece_seed != piece.seed:
        doc["seed"] = piece_seed = live.piece_seed
        written.append(f"seed = {piece_seed} (the piece seed the engine ran with)")
    voices: Any = doc["voices"]
    for name, model in live.models.items():
        if name in piece.voices and model != piece.voices[name].model:
            voices[name]["model"] = model
            written.append(f"voices.{name}.model = {model!r} (swapped live)")
    for name, seed in live.seeds.items():
        vc = piece.voices.get(name)
        if vc is None:
            continue
        default = vc.seed if vc.seed is not None else voice_seed(piece_seed, name)
        if seed != default:
            voices[name]["seed"] = seed
            written.append(f"voices.{name}.seed = {seed}")
    merger = _Merger(config, doc, live, written, left_out)
    for cmd in live.overrides:
        merger.add(cmd)
    merger.finish()
    if live.position:
        left_out.append(
            f"programme position ({live.position}): a piece starts at its first section; sources start "
            "from their seeds"
        )
    return Merged(tomlkit.dumps(doc), written, left_out)


class _Merger:
    """Folds the overrides into the document, one target at a time."""

    def __init__(
        self, config: Config, doc: Any, live: LiveState, written: list[str], left_out: list[str]
    ) -> None:
        self.config = config
        self.doc = doc
        self.live = live
        self.written = written
        self.left_out = left_out
        # voice → (low, high) per dimension, from the piece's clamp then the clamp overrides.
        self.clamps: dict[str, list[tuple[float, float]]] = {}

    def voice(self, name: str) -> Any:
        return self.doc["voices"][name]

    def set(self, name: str, key: str | tuple[str, ...], value: Any, what: str | None = None) -> None:
        """Set ``voices.<name>.<key>`` (a tuple reaches into tables) if the voice stays valid, or say why."""
        table = self.voice(name)
        *path, last = (key,) if isinstance(key, str) else key
        dotted = ".".join([*path, last])
        holder = table
        for part in path:
            if part not in holder:
                holder[part] = tomlkit.inline_table()
            holder = holder[part]
        had, old = last in holder, holder.get(last)
        holder[last] = value
        problem = _voice_problem(table)
        if problem is None:
            note = f" ({what})" if what else ""
            self.written.append(f"voices.{name}.{dotted} = {_show(value)}{note}")
            return
        if had:
            holder[last] = old
        else:
            del holder[last]
        self.left_out.append(f"{what or dotted} of voice {name!r} = {_show(value)}: {problem}")

    def per_dim(self, name: str, key: str, dim: int, value: float, default: float) -> None:
        current = self.voice(name).get(key, default)
        size = self.live.latent_sizes[name]
        values = [float(x) for x in current] if isinstance(current, list) else [float(current)] * size
        values[dim] = value
        self.set(name, key, values[0] if len(set(values)) == 1 else values)

    def routing(self, name: str, key: str, value: float) -> None:
        table = self.voice(name)
        for other in ("route", "matrix"):
            if other in table:
                del table[other]  # the operator's pan replaced the fixed routing
        pan = table.get("pan")
        if pan is not None and "waypoints" in pan:
            del pan["waypoints"]  # likewise a path
        self.set(name, ("pan", key), value)

    def add(self, cmd: c.Command) -> None:
        v = getattr(cmd, "voice", None)
        if v is not None and v not in self.config.piece.voices:
            self.left_out.append(f"{cmd.name} of voice {v!r}: no such voice in the piece")
        elif isinstance(cmd, c.SetVoiceGain):
            self.set(cmd.voice, "gain", cmd.gain)
        elif isinstance(cmd, c.SetVoiceMute):
            self.set(cmd.voice, "mute", cmd.mute)
        elif isinstance(cmd, c.SetLatentBias):
            self.per_dim(cmd.voice, "bias", cmd.dim, cmd.value, 0.0)
        elif isinstance(cmd, c.SetLatentScale):
            self.per_dim(cmd.voice, "scale", cmd.dim, cmd.value, 1.0)
        elif isinstance(cmd, c.SetLatentClamp):
            clamp = self.config.piece.voices[cmd.voice].clamp
            base = (clamp[0], clamp[1]) if clamp is not None else (-float("inf"), float("inf"))
            dims = self.clamps.setdefault(cmd.voice, [base] * self.live.latent_sizes[cmd.voice])
            dims[cmd.dim] = (cmd.low, cmd.high)
        elif isinstance(cmd, c.FreezeVoice):
            if cmd.frozen:
                self.left_out.append(
                    f"voice.freeze of voice {cmd.voice!r}: a held latent frame cannot be written in a piece"
                )
        elif isinstance(cmd, c.SetSourceParam):
            key = _PARAM_FIELDS.get(cmd.key, cmd.key)
            spec_field = type(self.config.piece.voices[cmd.voice].source).model_fields.get(key)
            whole = spec_field is not None and spec_field.annotation is int and cmd.value.is_integer()
            value = int(cmd.value) if whole else cmd.value  # a presets source's bank is a whole number
            self.set(cmd.voice, ("source", key), value, f"source parameter {cmd.key}")
        elif isinstance(cmd, c.SetVoicePan):
            self.routing(cmd.voice, "azimuth_deg", cmd.azimuth_deg)
        elif isinstance(cmd, c.SetVoiceRotation):
            self.routing(cmd.voice, "rotate_deg_s", cmd.deg_per_s)
        elif isinstance(cmd, c.SetConditioning):
            self.set(cmd.voice, ("conditioning", cmd.input), cmd.value, f"conditioning input {cmd.input}")
        elif isinstance(cmd, c.SetModelAttribute):
            model = self.live.models.get(cmd.voice) or self.config.piece.voices[cmd.voice].model
            attributes = self.doc["models"][model].setdefault("attributes", tomlkit.inline_table())
            attributes[cmd.attribute] = cmd.value
            self.written.append(f"models.{model}.attributes.{cmd.attribute} = {_show(cmd.value)}")
        elif isinstance(cmd, c.SetMasterGain | c.SetMasterMute):
            key = "master_gain" if isinstance(cmd, c.SetMasterGain) else "mute"
            value = cmd.gain if isinstance(cmd, c.SetMasterGain) else cmd.mute
            where = "set [output] master_gain in the venue config" if key == "master_gain" else "unmute live"
            self.left_out.append(
                f"{cmd.name} = {_show(value)}: the master bus belongs to the venue, not the piece ({where})"
            )
        else:
            self.left_out.append(f"{cmd.name} {cmd.to_json()}: no piece setting holds it")

    def finish(self) -> None:
        for name, dims in self.clamps.items():
            if len(set(dims)) == 1 and all(abs(x) != float("inf") for x in dims[0]):
                self.set(name, "clamp", [dims[0][0], dims[0][1]])
            else:
                shown = ", ".join(f"{d}: {lo:g}..{hi:g}" for d, (lo, hi) in enumerate(dims))
                self.left_out.append(
                    f"voice.clamp of voice {name!r} ({shown}): a piece clamps every dimension of a voice "
                    "alike"
                )


def _voice_problem(table: Any) -> str | None:
    """Why the voice table no longer validates, or None."""
    try:
        VoiceConfig.model_validate(table.unwrap())
    except ValidationError as exc:
        first = exc.errors()[0]
        where = ".".join(str(p) for p in first["loc"])
        return f"{where}: {first['msg']}" if where else str(first["msg"])
    return None


def _show(value: Any) -> str:
    return tomlkit.item(value).as_string() if not isinstance(value, Table) else str(value)


def snapshot_path(piece_file: Path, now: dt.datetime | None = None) -> Path:
    """``piece.snapshot-<UTC time>.toml`` beside ``piece_file``."""
    now = (now or dt.datetime.now(dt.UTC)).astimezone(dt.UTC)
    return piece_file.with_name(f"{piece_file.stem}.snapshot-{now:%Y%m%dT%H%M%SZ}.toml")


def unified_diff(original: str, new: str, old_name: str, new_name: str) -> str:
    """The change from ``original`` to ``new`` as a unified diff."""
    lines = difflib.unified_diff(
        original.splitlines(keepends=True), new.splitlines(keepends=True), old_name, new_name
    )
    return "".join(lines)


def write_snapshot(
    config: Config, text: str, *, output: Path | None = None, now: dt.datetime | None = None
) -> Path:
    """Write ``text`` as a new file, once the venue has been checked with it; returns its path.

    Never replaces a file. By default the file goes beside the piece file (:func:`snapshot_path`), and a
    name already taken gets ``-2``, ``-3``...; an ``output`` already taken is an error. The file appears
    whole (written aside, then linked in place).

    Raises:
        latentd.config.ConfigError: the venue does not check with the new piece (nothing is written).
        FileExistsError: ``output`` exists.
        OSError: the folder cannot be written.
    """
    target = snapshot_path(config.piece_file, now) if output is None else output
    aside = target.with_name(f".{target.name}.{os.getpid()}.tmp")
    aside.write_text(text, encoding="utf-8")
    try:
        load_config(config.venue_path, piece_file=aside)
        with open(aside, "rb+") as f:
            os.fsync(f.fileno())
        for n in range(1, 1000 if output is None else 2):
            path = target if n == 1 else target.with_name(f"{target.stem}-{n}.toml")
            try:
                os.link(aside, path)  # fails when the name is taken: never overwrites
            except FileExistsError:
                continue
            return path
        raise FileExistsError(f"{target}: the file exists; a snapshot never replaces a file")
    finally:
        aside.unlink(missing_ok=True)


def snapshot_now(config: Config, view: EngineSnapshot, piece_seed: int | None) -> tuple[Path, Merged]:
    """Write the live state of a running engine (its snapshot ``view``) into a new piece file.

    Raises:
        ValueError: the piece file changed since ``config`` was loaded (the live state belongs to the
            piece as it was).
        latentd.config.ConfigError: the merged piece does not check.
        OSError: the piece folder cannot be written.
    """
    original = config.piece_file.read_text(encoding="utf-8")
    if load_config(config.venue_path).piece != config.piece:
        raise ValueError(
            f"{config.piece_file} changed since the daemon started: the live state belongs to the piece "
            "it started with; run `latentd snapshot` on the state file after a restart instead"
        )
    merged = merge_live_state(config, original, live_state(view, piece_seed))
    return write_snapshot(config, merged.text), merged


def report(merged: Merged, diff: str, path: Path) -> str:
    """What a snapshot did, for people: the diff, then what the piece could not keep."""
    lines = [diff.rstrip("\n")] if diff else ["(the live state is the piece as written: no change)"]
    lines.append(f"wrote {path}")
    if merged.left_out:
        lines.append("not kept (a piece cannot express these):")
        lines.extend(f"  - {line}" for line in merged.left_out)
    return "\n".join(lines) + "\n"
