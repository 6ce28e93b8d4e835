"""The OSC address space: a table of routes mapping a parsed message to one engine command.

Each route names its address template, its arguments (type and range) and the command it builds. An
argument's range is the command's own (``bounds`` on the command class), so OSC, the state restore and
the engine refuse the same values. The mapping checks what it can see in the message alone (address,
argument count, types, ranges); what depends on the running piece (does the voice, section, dimension
or parameter exist?) is left to ``Engine.check``. The table also writes the address-space documentation
(:func:`routes_markdown`).
"""

from __future__ import annotations

import difflib
import math
import re
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import TypeAlias

from latentd.control.osc_parse import OscArg, OscMessage
from latentd.engine import commands as c
from latentd.engine.command_base import number_text

PATTERN_CHARS = "*?[]{}!,#"
NAME_RE = re.compile(r"[A-Za-z0-9_.\-]{1,64}")
LABEL_RE = re.compile(r"[A-Za-z0-9_\-][A-Za-z0-9_.\-]{0,63}")


@dataclass(frozen=True)
class StatusRequest:
    """``/status``: a query answered to the sender, not a command."""


@dataclass(frozen=True)
class Refusal:
    """Why a message was refused, in words for the sender and the log."""

    reason: str


Mapped: TypeAlias = c.Command | StatusRequest | Refusal


@dataclass(frozen=True)
class Arg:
    """One argument of a route: ``kind`` is float, int, bool, name, label or value (a number or a string);
    ranges are inclusive."""

    name: str
    kind: str
    low: float = -math.inf
    high: float = math.inf
    optional: bool = False

    def describe(self) -> str:
        """The argument as the docs write it, e.g. ``<gain:f 0..4>``."""
        kinds = {"float": "f", "int": "i", "bool": "i 0/1", "name": "s", "label": "s", "value": "f/s"}
        text = f"{self.name}:{kinds[self.kind]}"
        if self.kind in ("float", "int") and math.isfinite(self.low) and math.isfinite(self.high):
            text += f" {_num(self.low)}..{_num(self.high)}"
        return f"[{text}]" if self.optional else f"<{text}>"

    def convert(self, value: OscArg) -> int | float | bool | str:
        """The argument's value as the command wants it.

        Raises:
            ValueError: wrong type or out of range, saying what is allowed.
        """
        got = _describe_value(value)
        if self.kind == "value" and isinstance(value, str):
            return value  # the command and the model check the text
        if self.kind in ("name", "label"):
            if not isinstance(value, str):
                raise ValueError(f"{self.name} must be a string, got {got}")
            pattern = NAME_RE if self.kind == "name" else LABEL_RE
            if not pattern.fullmatch(value):
                raise ValueError(
                    f"{self.name} {value!r} must be 1-64 characters of letters, digits, '_', '-', '.'"
                    + (" (not starting with '.')" if self.kind == "label" else "")
                )
            return value
        if self.kind == "bool":
            if isinstance(value, bool):
                return value
            if isinstance(value, int | float) and value in (0, 1):
                return bool(value)
            raise ValueError(f"{self.name} must be 0 or 1 (or T/F), got {got}")
        if isinstance(value, bool) or not isinstance(value, int | float):
            raise ValueError(f"{self.name} must be a number, got {got}")
        if not math.isfinite(value):
            raise ValueError(f"{self.name} must be a finite number, got {got}")
        if self.kind == "int":
            if value != int(value):
                raise ValueError(f"{self.name} must be a whole number, got {got}")
            value = int(value)
        if not self.low <= value <= self.high:
            raise ValueError(f"{self.name} must be in {_num(self.low)}..{_num(self.high)}, got {value!r}")
        return value if self.kind == "int" else float(value)


_num = number_text


def _describe_value(value: OscArg) -> str:
    if isinstance(value, bool):
        return f"{'T' if value else 'F'} (boolean)"
    if isinstance(value, str):
        return f"string {value!r}"
    if isinstance(value, bytes):
        return f"blob of {len(value)} bytes"
    if value is None:
        return "nil"
    return f"{type(value).__name__} {value!r}"


Builder: TypeAlias = Callable[[dict[str, str], list], c.Command | StatusRequest]


@dataclass(frozen=True)
class Route:
    """One address template (``<name>`` parts match a plain name), its arguments and its effect."""

    template: str
    args: tuple[Arg, ...]
    build: Builder
    effect: str

    @property
    def parts(self) -> list[str]:
        return self.template.strip("/").split("/")

    def match(self, parts: Sequence[str]) -> dict[str, str] | None:
        """The named parts of an address split at '/', or None when it does not fit the template."""
        mine = self.parts
        if len(mine) != len(parts):
            return None
        names: dict[str, str] = {}
        for want, got in zip(mine, parts, strict=True):
            if want.startswith("<"):
                names[want[1:-1]] = got
            elif want != got:
                return None
        return names


def _field(command: type[c.Command], name: str, kind: str = "float", arg: str | None = None) -> Arg:
    """The argument that fills field ``name`` of ``command``, with the command's own range."""
    low, high = command.bounds.get(name, (-math.inf, math.inf))
    return Arg(arg or name, kind, low, high)


def _f(name: str) -> Arg:
    return Arg(name, "float")


_ON = Arg("on", "bool")

ROUTES: tuple[Route, ...] = (
    Route(
        "/section/next", (), lambda n, a: c.NextSection(), "crossfade to the next section of the programme"
    ),
    Route(
        "/section/goto", (Arg("section", "name"),), lambda n, a: c.GotoSection(a[0]), "crossfade to a section"
    ),
    Route(
        "/section/hold",
        (_ON,),
        lambda n, a: c.HoldSection(a[0]),
        "1: keep the current section until released; 0: release it",
    ),
    Route(
        "/voice/<v>/gain",
        (_field(c.SetVoiceGain, "gain"),),
        lambda n, a: c.SetVoiceGain(n["v"], a[0]),
        "voice gain (linear), glides over 50 ms",
    ),
    Route(
        "/voice/<v>/mute", (_ON,), lambda n, a: c.SetVoiceMute(n["v"], a[0]), "1 mutes, 0 unmutes (glides)"
    ),
    Route(
        "/voice/<v>/seed",
        (_field(c.ReseedVoice, "seed", "int"),),
        lambda n, a: c.ReseedVoice(n["v"], a[0]),
        "restart the voice's source from this seed",
    ),
    Route(
        "/voice/<v>/reseed",
        (),
        # No seed: the engine takes the voice's current seed + 1 and logs the concrete seed.
        lambda n, a: c.ReseedVoice(n["v"]),
        "restart the source from the current seed + 1 (logged with the concrete seed)",
    ),
    Route(
        "/voice/<v>/trigger", (), lambda n, a: c.TriggerVoice(n["v"]), "send a trigger to the voice's source"
    ),
    Route(
        "/voice/<v>/freeze",
        (_ON,),
        lambda n, a: c.FreezeVoice(n["v"], a[0]),
        "1 holds the current latent frame, 0 lets the source run",
    ),
    Route(
        "/voice/<v>/bias",
        (_field(c.SetLatentBias, "dim", "int"), _field(c.SetLatentBias, "value")),
        lambda n, a: c.SetLatentBias(n["v"], a[0], a[1]),
        "add a value to one latent dimension (glides)",
    ),
    Route(
        "/voice/<v>/scale",
        (_field(c.SetLatentScale, "dim", "int"), _field(c.SetLatentScale, "value")),
        lambda n, a: c.SetLatentScale(n["v"], a[0], a[1]),
        "multiply one latent dimension (glides)",
    ),
    Route(
        "/voice/<v>/clamp",
        (
            _field(c.SetLatentClamp, "dim", "int"),
            _field(c.SetLatentClamp, "low"),
            _field(c.SetLatentClamp, "high"),
        ),
        lambda n, a: c.SetLatentClamp(n["v"], a[0], a[1], a[2]),
        "clamp one latent dimension to low..high",
    ),
    Route(
        "/voice/<v>/param/<key>",
        (_f("value"),),
        lambda n, a: c.SetSourceParam(n["v"], n["key"], a[0]),
        "set a run-time parameter of the voice's source (range per parameter)",
    ),
    Route(
        "/voice/<v>/cond/<input>",
        (_f("value"),),
        lambda n, a: c.SetConditioning(n["v"], n["input"], a[0]),
        "set a conditioning input of the voice's model (glides)",
    ),
    Route(
        "/voice/<v>/attr/<name>",
        (Arg("value", "value"),),
        lambda n, a: c.SetModelAttribute(n["v"], n["name"], a[0]),
        "set an attribute of the voice's model to a number or a string (e.g. temperature, "
        "inversion_mode); affects every voice of that model",
    ),
    Route(
        "/voice/<v>/model",
        (Arg("model", "name"),),
        lambda n, a: c.SwapModel(n["v"], a[0]),
        "load one of the piece's models in the background, then crossfade the voice to it (0.5 s)",
    ),
    Route(
        "/voice/<v>/pan",
        (_field(c.SetVoicePan, "azimuth_deg"),),
        lambda n, a: c.SetVoicePan(n["v"], a[0]),
        "pan the voice to an azimuth (0 = front, positive = left)",
    ),
    Route(
        "/voice/<v>/rotate",
        (_field(c.SetVoiceRotation, "deg_per_s"),),
        lambda n, a: c.SetVoiceRotation(n["v"], a[0]),
        "rotate the voice's pan position (0 stops)",
    ),
    Route(
        "/master/gain",
        (_field(c.SetMasterGain, "gain"),),
        lambda n, a: c.SetMasterGain(a[0]),
        "master gain (glides)",
    ),
    Route(
        "/master/mute", (_ON,), lambda n, a: c.SetMasterMute(a[0]), "1 mutes everything, 0 unmutes (glides)"
    ),
    Route(
        "/record/start",
        (Arg("label", "label", optional=True),),
        lambda n, a: c.StartRecording(a[0] if a else ""),
        "start recording the master bus (label goes into the file name)",
    ),
    Route("/record/stop", (), lambda n, a: c.StopRecording(), "stop recording"),
    Route(
        "/snapshot",
        (),
        lambda n, a: c.SnapshotPiece(),
        "write the live tuning (overrides, seeds) as a new piece file beside piece.toml; reply "
        "`/snapshot <path:s>` to the sender",
    ),
    Route("/status", (), lambda n, a: StatusRequest(), "reply `/status <json:s>` to the sender"),
    Route(
        "/reset", (), lambda n, a: c.ResetOverrides(), "drop every operator override (gains, biases, pans...)"
    ),
)


def _address_problem(address: str) -> str | None:
    bad = sorted({ch for ch in address if ch in PATTERN_CHARS})
    if bad:
        return (
            f"address patterns and special characters ({' '.join(bad)}) are not supported: "
            "name the voice, section or parameter exactly"
        )
    if not address.startswith("/") or "//" in address or (address.endswith("/") and address != "/"):
        return "the address must be /part/part... with no empty parts"
    return None


def _unknown(address: str) -> str:
    templates = [r.template for r in ROUTES]
    parts = address.strip("/").split("/")
    # Compare against templates with this address's names filled in, so /voice/a/gian finds /voice/a/gain.
    filled = {}
    for route in ROUTES:
        names = route.match(parts)
        if names is None and len(route.parts) == len(parts):
            names = {p[1:-1]: parts[i] for i, p in enumerate(route.parts) if p.startswith("<")}
        text = route.template
        for key, value in (names or {}).items():
            text = text.replace(f"<{key}>", value)
        filled[text] = route.template
    close = difflib.get_close_matches(address, list(filled), n=1, cutoff=0.75)
    hint = f"; did you mean {close[0]}?" if close else f"; known: {', '.join(templates)}"
    return f"unknown address {address}{hint}"


def map_message(message: OscMessage) -> Mapped:
    """The command (or status request) a strictly parsed message asks for, or the reason it is refused."""
    address = message.address
    problem = _address_problem(address)
    if problem:
        return Refusal(problem)
    parts = address.strip("/").split("/")
    for route in ROUTES:
        names = route.match(parts)
        if names is None:
            continue
        for key, name in names.items():
            if not NAME_RE.fullmatch(name):
                return Refusal(f"<{key}> {name!r} must be a plain name: letters, digits, '_', '-', '.'")
        required = sum(not a.optional for a in route.args)
        given = len(message.args)
        if not required <= given <= len(route.args):
            want = str(required) if required == len(route.args) else f"{required} to {len(route.args)}"
            form = " ".join(a.describe() for a in route.args) or "no arguments"
            return Refusal(f"takes {want} argument(s) ({form}), got {given}")
        values = []
        for arg, value in zip(route.args, message.args, strict=False):
            try:
                values.append(arg.convert(value))
            except ValueError as exc:
                return Refusal(str(exc))
        return route.build(names, values)
    return Refusal(_unknown(address))


def routes_markdown() -> str:
    """The address space as a Markdown table (address, arguments, effect)."""
    lines = ["| address | arguments | effect |", "|---|---|---|"]
    for route in ROUTES:
        args = " ".join(f"`{a.describe()}`" for a in route.args) or "—"
        lines.append(f"| `{route.template}` | {args} | {route.effect} |")
    return "\n".join(lines) + "\n"
