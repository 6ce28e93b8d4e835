"""The master's control channel to its worker nodes: commands with the block to apply them at, over UDP.

One datagram per command and worker, JSON: ``{"block": <worker block>, "command": <Command.to_json()>}``.
The master's engine gives each command its block (``engine/node_sync.py``); :class:`NodeSender` turns it
into each worker's block with that worker's measured offset (``NodeBus.offset_blocks``) and sends it to
the worker's ``address:control_port``; a node not heard (no offset) gets nothing: it follows the master
again from the next command on. :class:`NodeReceiver` runs on each worker, in a thread of its own, and
queues what arrives with ``Engine.submit_at``. Bad datagrams are logged and dropped.
"""

from __future__ import annotations

import json
import socket
import threading
from collections.abc import Mapping

import structlog

from latentd.engine import commands as c
from latentd.engine.engine import Engine
from latentd.engine.node_bus import NodeBus

log = structlog.get_logger("latentd.runtime.node_control")

_MAX_DATAGRAM = 65507


class NodeSender:
    """Sends the master's commands to its workers (a ``CommandLead`` listener; engine thread)."""

    def __init__(self, buses: Mapping[str, NodeBus], targets: Mapping[str, tuple[str, int]]) -> None:
        """Send to ``targets[node]`` with ``buses[node]``'s offset.

        Args:
            buses: The master's bus of each worker node.
            targets: Each worker's ``(address, control_port)``.
        """
        self.buses = dict(buses)
        self.targets = dict(targets)
        self.sent = 0
        self._sock = socket.socket(
            socket.AF_INET6 if any(":" in a for a, _ in targets.values()) else socket.AF_INET,
            socket.SOCK_DGRAM,
        )
        self._sock.setblocking(False)

    def __call__(self, block: int, command: c.Command) -> None:
        """Send ``command``, due at master block ``block``, to every worker heard."""
        for node, bus in self.buses.items():
            if bus.offset_blocks is None or not bus.present:
                continue
            payload = json.dumps({"block": block + bus.offset_blocks, "command": command.to_json()})
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
