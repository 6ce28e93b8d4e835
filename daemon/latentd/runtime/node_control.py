"""The master's control channel to its worker nodes: commands with the block to apply them at, over UDP.

One datagram per command and worker, JSON: ``{"block": <worker block>, "command": <Command.to_json()>}``.
The master's engine gives each command its block (``engine/node_sync.py``); :class:`NodeSender` turns it
into each worker's block with that worker's measured offset (``NodeBus.offset_blocks``) and sends it to
the worker's ``address:control_port``; a node not heard (no offset) gets nothing. When a node is heard
again (it joined, or came back) it first gets the master's programme as it is at that block
(``FollowProgramme``: section, step, position, hold), the section end already given, if any, so it
plays the section the master plays, and the last seed given to each voice (the daily reseed). A
command that names its own block (``AdvanceSection``, ``FollowProgramme``) carries each worker's. The
master section's commands (master gain, mute, opening fades) are not sent: the master applies them to
its workers' audio as to its own. :class:`NodeReceiver` runs on each worker, in a thread of its own,
and queues what arrives with ``Engine.submit_at``. Bad datagrams are logged and dropped.
"""

from __future__ import annotations

import dataclasses
import json
import socket
import threading
from collections.abc import Mapping

import structlog

from latentd.engine import commands as c
from latentd.engine.engine import Engine
from latentd.engine.node_bus import NodeBus
from latentd.engine.node_sync import ProgrammeClock

log = structlog.get_logger("latentd.runtime.node_control")

# The master's own section applies these to its workers' audio too (it is mixed in before it): sent, they
# would count twice.
MASTER_SECTION = (c.SetMasterGain, c.SetMasterMute, c.SetOpen)

_MAX_DATAGRAM = 65507


class NodeSender:
    """Sends the master's commands to its workers (a ``CommandLead`` listener; engine thread)."""

    def __init__(
        self,
        buses: Mapping[str, NodeBus],
        targets: Mapping[str, tuple[str, int]],
        clock: ProgrammeClock | None = None,
    ) -> None:
        """Send to ``targets[node]`` with ``buses[node]``'s offset.

        Args:
            buses: The master's bus of each worker node.
            targets: Each worker's ``(address, control_port)``.
            clock: The master's programme clock: a node heard again gets its programme (see
                :meth:`on_block`); None sends commands only.
        """
        self.buses = dict(buses)
        self.targets = dict(targets)
        self.clock = clock
        self.sent = 0
        self._heard: set[str] = set()
        # The last seed given to each voice (the daily reseed): a node heard again gets them too.
        self._seeds: dict[str, c.ReseedVoice] = {}
        self._sock = socket.socket(
            socket.AF_INET6 if any(":" in a for a, _ in targets.values()) else socket.AF_INET,
            socket.SOCK_DGRAM,
        )
        self._sock.setblocking(False)

    def __call__(self, block: int, command: c.Command) -> None:
        """Send ``command``, due at master block ``block``, to every worker heard."""
        if isinstance(command, MASTER_SECTION):
            return
        if isinstance(command, c.ReseedVoice):
            self._seeds[command.voice] = command
        for node, bus in self.buses.items():
            if bus.offset_blocks is None or not bus.present:
                continue
            self._send(node, block + bus.offset_blocks, command)

    def on_block(self, block: int) -> None:
        """At the start of master block ``block`` (engine thread): a node heard again gets the programme."""
        for node, bus in self.buses.items():
            offset = bus.offset_blocks if bus.present else None
            if (offset is not None) == (node in self._heard):
                continue
            if offset is None:
                self._heard.discard(node)
                continue
            self._heard.add(node)
            if self.clock is not None:
                self._follow(node, block, offset, self.clock)

    def _follow(self, node: str, block: int, offset: int, clock: ProgrammeClock) -> None:
        """Send ``node`` the programme as it is at master block ``block``, and the section end given."""
        p = clock.engine.programme
        state = c.FollowProgramme(block + offset, p.step, p.entry, p.current.name, p.position, p.hold)
        log.info("node.follow", node=node, block=block, section=state.section, position=p.position)
        self._send(node, block + offset, state)
        for seed in self._seeds.values():
            self._send(node, block + offset, seed)
        pending = clock.pending
        if pending is not None and pending[0] == p.entry and pending[1] > block:
            self._send(node, pending[1] + offset, c.AdvanceSection(pending[1], p.entry))

    def _send(self, node: str, block: int, command: c.Command) -> None:
        if isinstance(command, c.AdvanceSection | c.FollowProgramme):
            command = dataclasses.replace(command, due_block=block)  # the block on the worker's count
        payload = json.dumps({"block": block, "command": command.to_json()})
        try:
            self._sock.sendto(payload.encode(), self.targets[node])
            self.sent += 1
        except OSError as exc:
            log.warning("node.send_failed", node=node, target=str(self.targets[node]), reason=str(exc))

    def close(self) -> None:
        """Close the socket."""
        self._sock.close()


class NodeReceiver:
    """A worker's end of the control channel: datagrams into ``engine.submit_at``."""

    def __init__(self, engine: Engine, address: str, port: int) -> None:
        """Bind ``address:port`` (the worker's node address and control port).

        Raises:
            OSError: If the address cannot be bound (the error names it).
        """
        family = socket.AF_INET6 if ":" in address else socket.AF_INET
        self.engine = engine
        self.received = 0
        self._sock = socket.socket(family, socket.SOCK_DGRAM)
        try:
            self._sock.bind((address, port))
        except OSError as exc:
            self._sock.close()
            raise OSError(f"node control channel: cannot listen on {address}:{port}: {exc.strerror}") from exc
        self._sock.settimeout(0.2)
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name="node-control", daemon=True)

    def start(self) -> NodeReceiver:
        """Start listening."""
        self._thread.start()
        return self

    def _run(self) -> None:
        while not self._stop.is_set():
            try:
                data, sender = self._sock.recvfrom(_MAX_DATAGRAM)
            except TimeoutError:
                continue
            except OSError:
                return
            try:
                message = json.loads(data)
                block = message["block"]
                if not isinstance(block, int):
                    raise TypeError(f"block must be an integer, got {block!r}")
                command = c.command_from_json(message["command"])
            except (ValueError, KeyError, TypeError) as exc:
                log.warning("node.bad_command", sender=str(sender), reason=str(exc)[:200])
                continue
            self.received += 1
            self.engine.submit_at(block, command)

    def stop(self) -> None:
        """Stop and close."""
        self._stop.set()
        self._thread.join(2.0)
        self._sock.close()
