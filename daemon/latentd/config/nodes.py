"""``[nodes.<name>]``: one piece on several machines joined by netjack2, and what one machine of them plays.

One node is the master: it owns the programme, schedule, OSC, recording and the speakers. The others
(workers) decode only their voices and send them to the master over netjack2 (their jackd runs the net
driver, the master's the netmanager), routed to the venue's speakers: speaker N of a worker arrives on
the master as ``<node>:from_slave_N``. A venue without ``[nodes]`` is one machine, as always.

:func:`node_config` makes the configuration one node plays: the piece cut down to that node's voices (the
sections keep their order and durations; a section with none of its voices plays silence there), and on
a worker, no OSC, recording or schedule of its own.
"""

from __future__ import annotations

import ipaddress
from collections.abc import Mapping
from dataclasses import replace
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any, Literal

from pydantic import AfterValidator, Field

from latentd.config.fields import Name, Strict
from latentd.config.problems import MISSING, Problem
from latentd.config.toml_out import _key

if TYPE_CHECKING:
    from latentd.config.loader import Config


def _check_address(value: str) -> str:
    """An IPv4 or IPv6 address."""
    try:
        ipaddress.ip_address(value)
    except ValueError:
        raise ValueError("must be an IPv4 or IPv6 address, e.g. 192.168.1.11") from None
    return value


class NodeConfig(Strict):
    """``[nodes.<name>]``: one machine of a piece played on several (netjack2)."""

    role: Literal["master", "worker"] = Field(
        description="master: plays the programme and owns OSC, schedule, recording and the speakers "
        "(exactly one node); worker: decodes its voices only, routed to the venue's speakers, and sends "
        "them to the master over netjack2, where they arrive as ports <node>:from_slave_1.."
    )
    address: Annotated[str, AfterValidator(_check_address)] = Field(
        description="the node's IP address on the wired network (the master's is what workers' jackd "
        "-d net -a names)"
    )
    voices: list[Name] = Field(
        default_factory=list,
        description="the piece's voices this node decodes; every voice of the piece is on exactly one node",
    )
    jack_server: str = Field(
        default="",
        description="JACK server this node plays on (a worker: its jackd with the net driver); "
        '"" = jack.server_name',
    )
    control_port: int = Field(
        default=9110,
        ge=1,
        le=65535,
        description="UDP port the node listens on, at its address: a worker for the master's commands "
        "(each with the block to apply it at) and beats, the master for its workers' reports of their voices",
    )
    latency_periods: int = Field(
        default=2,
        ge=1,
        le=16,
        description="a worker's netjack2 latency in JACK periods (its jackd's -l): round trip to the "
        "master and back is this + 2 periods; more rides out a slower network",
    )


def nodes_problems(
    node: str, nodes: Mapping[str, NodeConfig], voices: Mapping[str, Any], venue_file: Path
) -> list[Problem]:
    """Checks of ``node`` and ``[nodes]`` against each other and the piece's voices.

    Args:
        node: The venue's ``node`` key.
        nodes: The venue's ``[nodes]``.
        voices: The piece's voices by name (only the names are read).
        venue_file: For the problems' file.

    Returns:
        Every problem found: not exactly one master, a repeated address, a voice on no node or on two,
        a voice the piece does not have, a ``node`` that names no node.
    """
    problems: list[Problem] = []
    if not nodes:
        if node:
            problems.append(Problem(venue_file, "node", node, "names a node, but the venue has no [nodes]"))
        return problems
    masters = [name for name, n in nodes.items() if n.role == "master"]
    if len(masters) != 1:
        found = ", ".join(masters) if masters else "none"
        problems.append(
            Problem(venue_file, "nodes", MISSING, f'exactly one node has role = "master" (found: {found})')
        )
    seen_address: dict[str, str] = {}
    where: dict[str, str] = {}
    for name, n in nodes.items():
        key = f"nodes.{_key(name)}"
        address = str(ipaddress.ip_address(n.address))
        if address in seen_address:
            problems.append(
                Problem(venue_file, f"{key}.address", n.address, f"is also node {seen_address[address]!r}'s")
            )
        seen_address.setdefault(address, name)
        for voice in n.voices:
            if voice not in voices:
                known = ", ".join(voices) or "none"
                problems.append(
                    Problem(
                        venue_file, f"{key}.voices", voice, f"the piece has no such voice (voices: {known})"
                    )
                )
            elif voice in where:
                problems.append(
                    Problem(
                        venue_file, f"{key}.voices", voice, f"is on node {where[voice]!r} too: one node each"
                    )
                )
            else:
                where[voice] = name
    missing = [v for v in voices if v not in where]
    if missing:
        problems.append(
            Problem(
                venue_file,
                "nodes",
                MISSING,
                f"voices on no node: {', '.join(missing)} (list each in one node's voices)",
            )
        )
    if node and node not in nodes:
        problems.append(Problem(venue_file, "node", node, f"is no node of [nodes] ({', '.join(nodes)})"))
    return problems


def node_config(config: Config, node: str | None = None) -> Config:
    """The configuration one node plays.

    Args:
        config: The validated configuration (of every node).
        node: The node (``latentd run --node``); None = the venue's ``node`` key.

    Returns:
        ``config`` itself for a venue without ``[nodes]``; otherwise a configuration whose piece holds
        only the node's voices, its models only those they use, its sections only those voices; a
        worker's has no OSC, recording or schedule (the master's are the piece's), plays on the node's
        ``jack_server``, connects its speakers to ``system:playback_1..N`` (its net driver's ports, which go
        to the master), keeps its state in a file of its own, and leaves its output bus to the master
        (unity gain, no limiting below 0 dBFS).

    Raises:
        ValueError: ``[nodes]`` exists and no node is chosen, or the node is unknown.
    """
    venue = config.venue
    if not venue.nodes:
        return config
    name = node if node is not None else venue.node
    if not name:
        raise ValueError(
            f"{config.venue_path}: the venue has [nodes] ({', '.join(venue.nodes)}): say which node this "
            'machine is with node = "<name>" or latentd run --node NAME'
        )
    if name not in venue.nodes:
        raise ValueError(
            f"{config.venue_path}: node {name!r} is no node of [nodes] ({', '.join(venue.nodes)})"
        )
    this = venue.nodes[name]
    piece = config.piece
    voices = {v: piece.voices[v] for v in piece.voices if v in this.voices}
    used = {vc.model for vc in voices.values()} | {m for vc in voices.values() for m in vc.swap_targets or ()}
    models = {m: piece.models[m] for m in piece.models if m in used}
    sections = [s.model_copy(update={"voices": [v for v in s.voices if v in voices]}) for s in piece.sections]
    piece = piece.model_copy(update={"voices": voices, "models": models, "sections": sections})
    update: dict[str, Any] = {"node": name}
    jack = venue.jack
    if this.jack_server:
        jack = jack.model_copy(update={"server_name": this.jack_server, "start_server": False})
    if this.role == "worker":
        from latentd.control.schedule_config import ScheduleConfig
        from latentd.recording.config import RecordingConfig

        update["osc"] = venue.osc.model_copy(update={"enabled": False})
        update["recording"] = RecordingConfig()
        # Its own state file: nodes that share a folder (tests, a shared mount) must not share one.
        stem = Path(venue.schedule.state_file)
        update["schedule"] = ScheduleConfig(
            state_file=str(stem.with_name(f"{stem.stem}-{name}{stem.suffix}"))
        )
        update["output"] = venue.output.model_copy(
            update={"master_gain": 1.0, "ceiling_db": 0.0, "trims": {}}
        )
        # Its speakers are its net driver's playback ports, which go to the master.
        jack = jack.model_copy(update={"autoconnect": True, "playback_ports": []})
    update["jack"] = jack
    return replace(config, venue=venue.model_copy(update=update), piece=piece)
