"""The command base: what every command class declares, the table they fill, the overrides they keep.

A command class (see :mod:`latentd.engine.commands`) declares in one place:

- ``name``: the stable name used in command logs;
- ``override``: the fields naming what an operator override sets (``()`` for the master bus), or None
  for actions; the engine keeps the latest override per target and the state file restores them;
- its float fields, found from the annotations, which the engine refuses when not finite;
- ``bounds``: the inclusive range of its numeric fields (``{"gain": (0.0, 4.0)}``), declared once and
  used by every door: the OSC routes take their argument ranges from it, the state restore and the
  engine refuse a value outside it;
- ``refusal(view)``: why it is refused beyond the common checks (optional), read from an
  :class:`~latentd.engine.snapshot.EngineSnapshot` only;
- ``apply(engine)``: its handler, run in the engine thread between blocks; a handler that touches a
  running model first waits for that model's calls decoding in the background
  (``engine.decoder.wait(group)``); nothing else waits for them.

:func:`check` runs every check against a snapshot, so the OSC thread (against the published
``engine.snapshot``) and the engine thread (against a snapshot of now) refuse with the same code.

A class that misses ``name``, ``override`` or ``apply`` fails when it is defined; every class defined
lands in :data:`COMMANDS` by itself. Every field is checked against its annotation (a gain read from a
file must be a number, a voice name a string), so a command built from JSON is checked like one built
by an OSC route. A command may carry an ``origin`` (who sent it, e.g. an OSC sender): it is never
logged, compared or stored, and the engine hands it back with a refusal so the sender hears why.

Adding an OSC command touches four places: the command class with its handler
(``engine/voice_commands.py`` for a voice's, else ``engine/commands.py``), its route
(``control/osc_map.py``), the README's OSC table (a test compares it with the routes) and the tests
(``tests/control/test_osc.py``; a test fails for a command that has no route and no reason not to have
one). The finiteness check, the state file's overrides and the
command log follow from the class.
"""

from __future__ import annotations

import dataclasses
import inspect
import math
from collections.abc import Mapping
from dataclasses import dataclass, field
from types import MappingProxyType
from typing import TYPE_CHECKING, Any, ClassVar

from latentd.sources.pd import PD_EXACT_LIMIT

if TYPE_CHECKING:
    from latentd.engine.engine import Engine
    from latentd.engine.snapshot import EngineSnapshot

# Voice seeds are 0..2^24 - 1, seeds a Pd patch takes exactly (its messages hold 32-bit floats); the
# next seed after the largest is 0.
SEED_MODULUS = PD_EXACT_LIMIT

COMMANDS: dict[str, type[Command]] = {}


@dataclass(frozen=True)
class Command:
    """Base of every command; see the module docstring for what a subclass declares."""

    name: ClassVar[str] = "command"
    override: ClassVar[tuple[str, ...] | None] = None
    floats: ClassVar[tuple[str, ...]] = ()  # set for each class from its ``float`` annotations
    kinds: ClassVar[Mapping[str, str]] = {}  # field → its annotation as written, set for each class
    bounds: ClassVar[Mapping[str, tuple[float, float]]] = {}  # field → inclusive (low, high)
    resets_overrides: ClassVar[bool] = False  # True: applying it drops every override
    # Who sent it (e.g. an OSC sender), handed back with a refusal; never logged, compared or stored.
    origin: object = field(default=None, kw_only=True, compare=False, repr=False)

    def __init_subclass__(cls, *, abstract: bool = False, **kwargs: Any) -> None:
        super().__init_subclass__(**kwargs)
        if abstract:
            return
        for declared in ("name", "override"):
            if declared not in cls.__dict__:
                raise TypeError(
                    f"command {cls.__name__} must declare `{declared}` (see latentd.engine.command_base)"
                )
        if cls.apply is Command.apply:
            raise TypeError(f"command {cls.__name__} has no handler: define `apply(self, engine)`")
        if cls.name in COMMANDS:
            raise TypeError(f"command name {cls.name!r} of {cls.__name__} is taken by {COMMANDS[cls.name]}")
        annotations: dict[str, Any] = inspect.get_annotations(cls)  # this class's own, as written
        fields = [f for f, kind in annotations.items() if not str(kind).startswith("ClassVar")]
        unknown = [f for f in cls.override or () if f not in fields]
        if unknown:
            raise TypeError(f"command {cls.__name__}: override names unknown fields {unknown}")
        unbounded = [f for f in cls.bounds if f not in fields]
        if unbounded:
            raise TypeError(f"command {cls.__name__}: bounds name unknown fields {unbounded}")
        cls.floats = tuple(f for f in fields if annotations[f] in ("float", float))
        cls.kinds = {f: _kind_text(annotations[f]) for f in fields}
        COMMANDS[cls.name] = cls

    def to_json(self) -> dict[str, Any]:
        """A JSON-ready dict: ``{"cmd": name, **fields}`` (the origin is left out)."""
        data: dict[str, Any] = {"cmd": self.name}
        for f in dataclasses.fields(self):
            if f.name != "origin":
                data[f.name] = getattr(self, f.name)
        return data

    def override_key(self) -> tuple[object, ...] | None:
        """What this command overrides (its name and target fields), or None for an action."""
        if self.override is None:
            return None
        return (self.name, *(getattr(self, f) for f in self.override))

    def refusal(self, view: EngineSnapshot) -> str | None:
        """Why this command is refused, past the common checks (voice, dim, finiteness), or None.

        Reads ``view`` only (any thread); refusals that need the engine's own state are raised by
        :meth:`apply` instead.
        """
        return None

    def resolve(self, engine: Engine) -> Command:
        """The command as it is applied and logged (e.g. "the next seed" made concrete)."""
        return self

    def apply(self, engine: Engine) -> None:
        """Change the engine (engine thread, between blocks; ``refusal`` has returned None).

        Every command class defines its own (``__init_subclass__`` refuses a class without one), so this
        declaration, the contract, never runs.

        Raises:
            ValueError: the change could not be made; the command is refused with this reason.
        """


def check(command: Command, view: EngineSnapshot) -> str | None:
    """Why ``command`` would be refused (unknown voice, section, dimension...), or None if it is valid.

    A pure function of the command and ``view``: the OSC thread passes the published snapshot, the
    engine thread a snapshot of now. The common checks live here; each command adds its own
    (``refusal``) and every float field of a command must be finite.
    """
    for attr, kind in command.kinds.items():
        reason = _value_problem(attr, kind, getattr(command, attr), command.bounds.get(attr))
        if reason is not None:
            return reason
    voice_name = getattr(command, "voice", None)
    if voice_name is not None:
        voice = view.voices.get(voice_name)
        remote = view.remote
        if voice is None and remote is not None and voice_name in remote.owners:
            # Another node's voice (several machines): checked against what that node last reported.
            theirs = remote.view_of(voice_name, view)
            if isinstance(theirs, str):
                return theirs
            view = theirs
            voice = view.voices.get(voice_name)
            if voice is None:
                node = remote.owners[voice_name]
                return f"voice {voice_name!r} is not among the voices node {node!r} reports playing"
        if voice is None:
            known = [*view.voices, *(remote.owners if remote is not None else ())]
            return f"unknown voice {voice_name!r}; voices: {', '.join(known)}"
        dim = getattr(command, "dim", None)
        if dim is not None and not 0 <= dim < voice.latent_size:
            return f"dim {dim} out of range 0..{voice.latent_size - 1} for voice {voice_name!r}"
    return command.refusal(view)


_TYPES: dict[str, tuple[type, ...]] = {
    "float": (int, float),
    "int": (int,),
    "bool": (bool,),
    "str": (str,),
    "None": (type(None),),
}
_TYPE_WORDS = {"float": "a number", "int": "a whole number", "bool": "true or false", "str": "a string"}


def _kind_text(annotation: object) -> str:
    """An annotation as written (``"float | str"``), also when it is a type rather than a string."""
    if isinstance(annotation, str):
        return annotation
    return getattr(annotation, "__name__", None) or str(annotation)


def ranges(**bounds: tuple[float, float]) -> Mapping[str, tuple[float, float]]:
    """A command's ``bounds``, read-only: ``bounds = ranges(gain=(0.0, 4.0))``."""
    return MappingProxyType(bounds)


def number_text(x: float) -> str:
    """A bound as people write it: ``4`` rather than ``4.0``, ``0.5`` as is."""
    return str(int(x)) if x == int(x) else f"{x:g}"


def _value_problem(attr: str, kind: str, value: object, bounds: tuple[float, float] | None) -> str | None:
    """Why ``value`` does not fit field ``attr`` (its annotation ``kind`` and ``bounds``), or None."""
    options = [k.strip() for k in kind.split("|")]
    if all(k in _TYPES for k in options):
        # bool is an int in Python: a flag is never taken for a number, nor a number for a flag.
        fits = any(
            isinstance(value, _TYPES[k]) and (k == "bool" or not isinstance(value, bool)) for k in options
        )
        if not fits:
            words = " or ".join(_TYPE_WORDS[k] for k in options if k in _TYPE_WORDS)  # None goes unsaid
            return f"{attr} must be {words}, got {value!r}"
    if isinstance(value, float) and not math.isfinite(value):
        return f"{attr} must be a finite number, got {value}"
    if bounds is not None and isinstance(value, int | float) and not isinstance(value, bool):
        low, high = bounds
        if not low <= value <= high:
            if math.isinf(high):
                return f"{attr} must be at least {number_text(low)}, got {value!r}"
            return f"{attr} must be in {number_text(low)}..{number_text(high)}, got {value!r}"
    return None


class Overrides:
    """The operator overrides in effect: the latest command per target since the last reset.

    Kept by the engine as commands are applied (and rebuilt from a command log by
    :func:`overrides_from_log`); :meth:`values` lists them oldest change first.
    """

    def __init__(self) -> None:
        self._latest: dict[tuple[object, ...], Command] = {}
        self._values: tuple[Command, ...] = ()

    def note(self, command: Command) -> None:
        """Take an applied command into account."""
        if command.resets_overrides:
            self._latest.clear()
        else:
            key = command.override_key()
            if key is None:
                return
            self._latest.pop(key, None)  # keep the order of the latest changes
            self._latest[key] = command
        self._values = tuple(self._latest.values())

    def values(self) -> tuple[Command, ...]:
        """The overrides, oldest change first (the same tuple until the next change)."""
        return self._values


def overrides_from_log(command_log: list[tuple[int, Command]]) -> list[Command]:
    """The overrides in effect after ``command_log``: the latest command per target, since the last reset."""
    overrides = Overrides()
    for _, cmd in command_log:
        overrides.note(cmd)
    return list(overrides.values())
