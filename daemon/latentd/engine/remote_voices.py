"""The piece's voices on the other nodes of several machines: whose they are and what their node says.

Each node's engine knows which node plays each voice it does not (``RemoteVoices.owners``, from the
venue's ``[nodes]``). A worker tells the master about its voices about once a second
(``runtime/node_control.py``): a :class:`NodeReport`, the part of its snapshot that commands are checked
against (each voice's state and model facts, the models it may swap to). The master publishes what it
knows in its snapshot (:class:`RemoteView`), so a command naming a worker's voice is checked at the
master's doors (OSC, web) with the same code and words as for its own voices
(:func:`latentd.engine.command_base.check`), and ``/status`` lists those voices with their node.
"""

from __future__ import annotations

import dataclasses
import math
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from latentd.engine import commands as c
from latentd.engine.command_base import SEED_MODULUS
from latentd.engine.snapshot import EngineSnapshot, SwapRules, VoiceInfo, VoiceState, frozen_mapping

if TYPE_CHECKING:
    from latentd.engine.engine import Engine


@dataclass(frozen=True)
class NodeReport:
    """What a worker node last said of its voices.

    Attributes:
        node: The node's name.
        block: The worker's block when it made the report.
        voices: Its voices' states.
        piece_models: The models its voices may swap to.
        swap_rules: Which of them each voice can swap to.
    """

    node: str
    block: int
    voices: Mapping[str, VoiceState]
    piece_models: tuple[str, ...]
    swap_rules: SwapRules

    @classmethod
    def of(cls, node: str, snapshot: EngineSnapshot) -> NodeReport:
        """The report of ``node`` from its engine's published snapshot (any thread)."""
        return cls(node, snapshot.block, snapshot.voices, snapshot.piece_models, snapshot.swap_rules)

    def to_json(self) -> dict[str, Any]:
        """A JSON-ready dict (:meth:`from_json` reads it back)."""
        rules = self.swap_rules
        return {
            "node": self.node,
            "block": self.block,
            "voices": {name: _state_json(v) for name, v in self.voices.items()},
            "piece_models": list(self.piece_models),
            "swap_rules": {
                "shapes": {m: list(s) for m, s in rules.shapes.items()},
                "targets": {v: list(t) for v, t in rules.targets.items()},
                "refusals": {v: dict(r) for v, r in rules.refusals.items()},
            },
        }

    @classmethod
    def from_json(cls, data: Mapping[str, Any]) -> NodeReport:
        """The report ``to_json`` made.

        Raises:
            ValueError, KeyError, TypeError: ``data`` is not such a report (the message says where).
        """
        rules = data["swap_rules"]
        return cls(
            node=_text(data["node"]),
            block=int(data["block"]),
            voices=frozen_mapping({_text(n): _state(v) for n, v in data["voices"].items()}),
            piece_models=tuple(_text(m) for m in data["piece_models"]),
            swap_rules=SwapRules(
                shapes=frozen_mapping(
                    {_text(m): (int(s[0]), float(s[1])) for m, s in rules["shapes"].items()}
                ),
                targets=frozen_mapping({_text(v): tuple(map(_text, t)) for v, t in rules["targets"].items()}),
                refusals=frozen_mapping(
                    {
                        _text(v): frozen_mapping({_text(m): _text(why) for m, why in r.items()})
                        for v, r in rules["refusals"].items()
                    }
                ),
            ),
        )


def _text(value: object) -> str:
    if not isinstance(value, str):
        raise TypeError(f"expected a string, got {value!r}")
    return value


def _state_json(v: VoiceState) -> dict[str, Any]:
    info = v.info
    return {
        "seed": v.seed,
        "gain": v.gain,
        "muted": v.muted,
        "frozen": v.frozen,
        "faults": v.faults,
        "loading": v.loading,
        "model": info.model,
        "latent_size": info.latent_size,
        "latent_rate_hz": info.latent_rate_hz,
        "conditioning_names": list(info.conditioning_names),
        # JSON has no infinity: an unbounded end travels as null.
        "params": {k: [_end(lo), _end(hi)] for k, (lo, hi) in info.params.items()},
        "attributes": list(info.attributes),
    }


def _end(x: float) -> float | None:
    return x if math.isfinite(x) else None


def _state(d: Mapping[str, Any]) -> VoiceState:
    loading = d["loading"]
    params = {
        _text(k): (-math.inf if lo is None else float(lo), math.inf if hi is None else float(hi))
        for k, (lo, hi) in d["params"].items()
    }
    return VoiceState(
        seed=int(d["seed"]),
        gain=float(d["gain"]),
        muted=bool(d["muted"]),
        frozen=bool(d["frozen"]),
        faults=int(d["faults"]),
        loading=None if loading is None else _text(loading),
        info=VoiceInfo(
            model=_text(d["model"]),
            latent_size=int(d["latent_size"]),
            latent_rate_hz=float(d["latent_rate_hz"]),
            conditioning_names=tuple(map(_text, d["conditioning_names"])),
            params=frozen_mapping(params),
            attributes=tuple(map(_text, d["attributes"])),
        ),
    )


@dataclass(frozen=True)
class RemoteView:
    """The other nodes' voices as a snapshot holds them (see the module docstring).

    Attributes:
        owners: Each voice of another node → that node.
        reports: Each node heard from → its latest report.
        present: Each worker node the master mixes → whether its audio is there (False: lost).
    """

    owners: Mapping[str, str]
    reports: Mapping[str, NodeReport]
    present: Mapping[str, bool]

    def view_of(self, voice: str, view: EngineSnapshot) -> EngineSnapshot | str:
        """``view`` as the node of ``voice`` last told it (to check a command with), or why there is none."""
        node = self.owners[voice]
        report = self.reports.get(node)
        if report is None:
            return (
                f"voice {voice!r} plays on node {node!r}, which has not reported its voices yet "
                "(is its latentd running and its network up?)"
            )
        return dataclasses.replace(
            view, voices=report.voices, piece_models=report.piece_models, swap_rules=report.swap_rules
        )

    def status(self) -> dict[str, Any]:
        """``/status``'s ``remote_voices``: each voice's node, whether it is there, its state as reported."""
        out: dict[str, Any] = {}
        for voice, node in sorted(self.owners.items()):
            report = self.reports.get(node)
            state = None if report is None else report.voices.get(voice)
            entry: dict[str, Any] = {"node": node, "present": self.present.get(node, False)}
            if state is not None:
                entry.update(gain=state.gain, muted=state.muted, seed=state.seed, model=state.model)
            out[voice] = entry
        return out


class RemoteVoices:
    """One engine's knowledge of the other nodes' voices.

    Threads: the engine thread reads it (:meth:`view`, :meth:`admit`); the master's control channel
    thread gives it reports (:meth:`take_report`, which replaces ``reports`` as a whole).
    """

    def __init__(self, owners: Mapping[str, str]) -> None:
        """Know that each voice of ``owners`` plays on its node."""
        self.owners = frozen_mapping(dict(owners))
        self.reports: Mapping[str, NodeReport] = frozen_mapping({})
        # The seed each remote voice was last given here: a reseed without a seed counts from it.
        self._seeds: dict[str, int] = {}
        self._view: RemoteView | None = None
        self._present: Callable[[], Mapping[str, bool]] = dict

    def watch(self, present: Callable[[], Mapping[str, bool]]) -> None:
        """Read each worker's presence from ``present`` (engine thread, at every snapshot)."""
        self._present = present

    def take_report(self, report: NodeReport) -> None:
        """Keep ``report`` as its node's latest (any thread)."""
        self.reports = frozen_mapping({**self.reports, report.node: report})

    def view(self) -> RemoteView | None:
        """What a snapshot holds (engine thread), None without other nodes; the same object until a change."""
        if not self.owners:
            return None
        present = self._present()
        last = self._view
        if last is None or last.reports is not self.reports or last.present != present:
            self._view = RemoteView(self.owners, self.reports, frozen_mapping(dict(present)))
        return self._view

    def admit(self, engine: Engine, command: c.Command) -> c.Command | None:
        """A command as it leaves for another node's voice, or None when refused (engine thread).

        A command naming a remote voice is checked here, when it is given its block and sent, against
        what that voice's node last reported (a node not heard from yet: unchecked; the doors refuse it,
        so only the schedule's seeds pass). A reseed without a seed is made concrete here from the
        voice's last seed, so the journal, the worker and a worker heard again get the same one.
        Other commands pass unchanged.
        """
        node = self.owners.get(getattr(command, "voice", None) or "")
        if node is None:
            return command
        if node in self.reports:
            reason = engine.check(command)
            if reason is not None:
                engine.refuse(command, reason)
                return None
        if isinstance(command, c.ReseedVoice):
            seed = command.seed
            if seed is None:
                last = self._seeds.get(command.voice)
                if last is None:
                    report = self.reports.get(node)
                    state = None if report is None else report.voices.get(command.voice)
                    last = None if state is None else state.seed
                if last is None:
                    engine.refuse(command, f"the seed of voice {command.voice!r} on node {node!r} is unknown")
                    return None
                seed = (last + 1) % SEED_MODULUS
                command = dataclasses.replace(command, seed=seed)
            self._seeds[command.voice] = seed
        return command
