"""The master's control channel to its worker nodes: commands with the block to apply them at, over UDP.

One datagram per command and worker, JSON: ``{"block": <worker block>, "command": <Command.to_json()>}``.
The master's engine gives each command its block (``engine/node_sync.py``); :class:`NodeSender` turns it
into each worker's block with that worker's measured offset (``NodeBus.offset_blocks``) and sends it to
the worker's ``address:control_port``; a node not heard (no offset) gets nothing. When a node is heard
again (it joined, or came back) it first gets the master's programme as it is at that block
(``FollowProgramme``: section, step, position, hold, and how its blocks map to the master's, to which
it sets its sources' clocks), the section end already given, if any, so it plays the section the
master plays, and the last seed given to each voice (the daily reseed). A
command that names its own block (``AdvanceSection``, ``FollowProgramme``) carries each worker's. The
master section's commands (master gain, mute, opening fades) are not sent: the master applies them to
its workers' audio as to its own. A command naming a worker's voice goes to that worker only; the
master keeps each such override (and a reset) and gives them again, after the programme, to a node heard
again, so a worker that restarted plays as the operator left it.

:class:`NodeReceiver` runs on each worker, in a thread of its own, queues what arrives with
``Engine.submit_at`` and reports the worker's voices to the master (:class:`~latentd.engine.
remote_voices.NodeReport`, ``{"report": ...}`` to the master's ``address:control_port``) about once a
second and soon after they change; :class:`NodeReports` on the master keeps them in
``Engine.remote``, against which commands naming those voices are checked.

The master's latentd beats: :class:`NodeReports` sends each worker ``{"beat": {"session": ...}}``
about every ``BEAT_EVERY_S`` while its engine plays. A worker that has heard beats and hears none for
``MASTER_LOST_S`` logs ``node.master_lost``, fades out and waits (its jackd may still have the
master's: only the master's latentd is gone). When beats come again from the same master (the same
``session``: it only paused) the worker fades in by itself; from a new master it waits for that
master's programme (``FollowProgramme``, which fades it in). Bad datagrams are logged and dropped.
"""

from __future__ import annotations

import dataclasses
import json
import socket
import threading
import time
import uuid
from abc import ABC, abstractmethod
from collections.abc import Mapping

import structlog

from latentd.engine import commands as c
from latentd.engine.engine import Engine
from latentd.engine.node_bus import NodeBus
from latentd.engine.node_sync import ProgrammeClock
from latentd.engine.remote_voices import NodeReport

log = structlog.get_logger("latentd.runtime.node_control")

# The master's own section applies these to its workers' audio too (it is mixed in before it): sent, they
# would count twice.
MASTER_SECTION = (c.SetMasterGain, c.SetMasterMute, c.SetOpen)

_MAX_DATAGRAM = 65507
REPORT_EVERY_S = 1.0  # a worker reports its voices this often, and soon after they change
BEAT_EVERY_S = 0.25  # the master's latentd beats this often (each listener tick is at most 0.2 s)
MASTER_LOST_S = 1.0  # a worker that hears no beat for this long takes the master for lost


class NodeSender:
    """Sends the master's commands to its workers (a ``CommandLead`` listener; engine thread)."""

    def __init__(
        self,
        buses: Mapping[str, NodeBus],
        targets: Mapping[str, tuple[str, int]],
        clock: ProgrammeClock | None = None,
        owners: Mapping[str, str] | None = None,
    ) -> None:
        """Send to ``targets[node]`` with ``buses[node]``'s offset.

        Args:
            buses: The master's bus of each worker node.
            targets: Each worker's ``(address, control_port)``.
            clock: The master's programme clock: a node heard again gets its programme (see
                :meth:`on_block`); None sends commands only.
            owners: Each worker's voice → its node: a command naming a voice goes to its node only
                (none for the master's own voices). None: to every worker.
        """
        self.buses = dict(buses)
        self.targets = dict(targets)
        self.clock = clock
        self.owners = owners
        self.sent = 0
        self._heard: set[str] = set()
        # The last seed given to each voice (the daily reseed): a node heard again gets them too.
        self._seeds: dict[str, c.ReseedVoice] = {}
        # The operator's overrides of each node's voices, and the nodes that missed a reset: given again
        # to a node heard again (after a restart it has lost them).
        self._kept = {node: c.Overrides() for node in self.buses}
        self._reset_missed: set[str] = set()
        self._sock = socket.socket(
            socket.AF_INET6 if any(":" in a for a, _ in targets.values()) else socket.AF_INET,
            socket.SOCK_DGRAM,
        )
        self._sock.setblocking(False)

    def __call__(self, block: int, command: c.Command) -> None:
        """Send ``command``, due at master block ``block``, to every worker heard."""
        if isinstance(command, MASTER_SECTION):
            return
        nodes = list(self.buses)
        voice = getattr(command, "voice", None)
        if voice is not None and self.owners is not None:
            nodes = [self.owners[voice]] if self.owners.get(voice) in self.buses else []
        if isinstance(command, c.ReseedVoice) and nodes:
            self._seeds[command.voice] = command
        for node in nodes:
            heard = self._heard_at(node)
            if command.resets_overrides or (voice is not None and command.override is not None):
                self._kept[node].note(command)
                if command.resets_overrides and heard is None:
                    self._reset_missed.add(node)
            if heard is None:
                if voice is not None:
                    # Overrides and seeds are given again when the node is heard; actions are missed.
                    kept = command.override is not None or isinstance(command, c.ReseedVoice)
                    log.info(
                        "node.kept" if kept else "node.missed", node=node, block=block, **command.to_json()
                    )
                continue
            self._send(node, block + heard, command)

    def _heard_at(self, node: str) -> int | None:
        """The node's offset, None while it is not heard."""
        bus = self.buses[node]
        return bus.offset_blocks if bus.present else None

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
        state = c.FollowProgramme(
            block + offset, p.step, p.entry, p.current.name, p.position, p.hold, clock_blocks=-offset
        )
        log.info("node.follow", node=node, block=block, section=state.section, position=p.position)
        if node in self._reset_missed:
            self._reset_missed.discard(node)
            self._send(node, block + offset, c.ResetOverrides())
        self._send(node, block + offset, state)
        for seed in self._seeds.values():
            if self.owners is None or self.owners.get(seed.voice) == node:
                self._send(node, block + offset, seed)
        kept = self._kept[node].values()
        for override in kept:
            self._send(node, block + offset, override)
        if kept:
            log.info("node.overrides_given", node=node, block=block, overrides=len(kept))
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


class _Listener(ABC):
    """A UDP socket bound to a node's ``address:port`` and a thread reading it: ``_tick`` at least every
    0.2 s, ``_handle`` for each datagram."""

    def __init__(self, address: str, port: int, thread_name: str) -> None:
        family = socket.AF_INET6 if ":" in address else socket.AF_INET
        self._sock = socket.socket(family, socket.SOCK_DGRAM)
        try:
            self._sock.bind((address, port))
        except OSError as exc:
            self._sock.close()
            raise OSError(f"node control channel: cannot listen on {address}:{port}: {exc.strerror}") from exc
        self._sock.settimeout(0.2)
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name=thread_name, daemon=True)

    def _run(self) -> None:
        while not self._stop.is_set():
            self._tick()
            try:
                data, sender = self._sock.recvfrom(_MAX_DATAGRAM)
            except TimeoutError:
                continue
            except OSError:
                return
            self._handle(data, sender)

    @abstractmethod
    def _tick(self) -> None:
        """What is due by time (this thread)."""

    @abstractmethod
    def _handle(self, data: bytes, sender: tuple[str, int]) -> None:
        """One datagram from ``sender`` (this thread)."""

    def stop(self) -> None:
        """Stop and close."""
        self._stop.set()
        self._thread.join(2.0)
        self._sock.close()


class NodeReceiver(_Listener):
    """A worker's end of the control channel: datagrams into ``engine.submit_at``, reports to the master."""

    def __init__(
        self,
        engine: Engine,
        address: str,
        port: int,
        *,
        node: str = "",
        master: tuple[str, int] | None = None,
        fade_s: float = 2.0,
    ) -> None:
        """Bind ``address:port`` (the worker's node address and control port).

        Args:
            engine: The worker's engine.
            address: The node's address.
            port: Its control port.
            node: The node's name, in its reports.
            master: The master's ``(address, control_port)``: its voices are reported there, and beats
                come from there (None: no reports, no beats expected).
            fade_s: The fade out when the master is lost, and in when the same master beats again.

        Raises:
            OSError: If the address cannot be bound (the error names it).
        """
        super().__init__(address, port, "node-control")
        self.engine = engine
        self.node = node
        self.master = master
        self.fade_s = fade_s
        self.received = 0
        self.reports = 0
        self.beats = 0
        self._report_failed = False
        self._last_report: tuple[float, object] = (-REPORT_EVERY_S, None)  # (monotonic time, voices)
        self.master_lost = False
        self._beat_at: float | None = None  # monotonic time of the last beat
        self._session: str | None = None  # the master that beat last

    def start(self) -> NodeReceiver:
        """Start listening."""
        self._thread.start()
        return self

    def _report(self, last: tuple[float, object]) -> tuple[float, object]:
        """Send the master a report when a second has passed or the voices changed since ``last``."""
        snapshot = self.engine.snapshot
        now = time.monotonic()
        if self.master is None or (snapshot.voices is last[1] and now - last[0] < REPORT_EVERY_S):
            return last
        payload = json.dumps({"report": NodeReport.of(self.node, snapshot).to_json()}, allow_nan=False)
        try:
            self._sock.sendto(payload.encode(), self.master)
            self.reports += 1
            self._report_failed = False
        except OSError as exc:
            if not self._report_failed:  # once until a report goes again, not every second
                log.warning(
                    "node.report_failed", master=str(self.master), bytes=len(payload), reason=str(exc)
                )
            self._report_failed = True
        return now, snapshot.voices

    def _watch(self) -> None:
        """A master that beat and beats no more is lost: fade out and wait (this thread)."""
        beat_at = self._beat_at
        if self.master_lost or beat_at is None or time.monotonic() - beat_at < MASTER_LOST_S:
            return
        log.warning(
            "node.master_lost",
            reason=f"no beat from the master's latentd for {MASTER_LOST_S:g} s",
            action="fading out; silent until the master is back",
        )
        self.engine.submit(c.SetOpen(False, self.fade_s))
        self.master_lost = True  # last: who reads it finds the fade queued

    def _beat(self, beat: Mapping[str, object], sender: tuple[str, int]) -> None:
        """A beat from the master: it is there; after a loss, fade in (the same master) or wait for the
        new master's programme."""
        if self.master is None or sender[0] != self.master[0]:
            raise ValueError(f"a beat from {sender[0]}, not from the master")
        session = str(beat["session"])
        self.beats += 1
        self._beat_at = time.monotonic()
        same = session == self._session
        self._session = session
        if not self.master_lost:
            return
        if same:
            log.info("node.master_back", same_master=True, action="fading in")
            self.engine.submit(c.SetOpen(True, self.fade_s))
        else:
            log.info("node.master_back", same_master=False, action="waiting for its programme")
        self.master_lost = False

    def _tick(self) -> None:
        self._last_report = self._report(self._last_report)
        self._watch()

    def _handle(self, data: bytes, sender: tuple[str, int]) -> None:
        try:
            message = json.loads(data)
            if "beat" in message:
                self._beat(message["beat"], sender)
                return
            block = message["block"]
            if not isinstance(block, int):
                raise TypeError(f"block must be an integer, got {block!r}")
            command = c.command_from_json(message["command"])
        except (ValueError, KeyError, TypeError) as exc:
            log.warning("node.bad_command", sender=str(sender), reason=str(exc)[:200])
            return
        self.received += 1
        self.engine.submit_at(block, command)


class NodeReports(_Listener):
    """The master's end: its workers' reports of their voices, into ``engine.remote``, and its beats to
    them (a thread)."""

    def __init__(
        self,
        engine: Engine,
        address: str,
        port: int,
        nodes: Mapping[str, str],
        targets: Mapping[str, tuple[str, int]] | None = None,
    ) -> None:
        """Bind ``address:port`` (the master's node address and control port).

        Args:
            engine: The master's engine.
            address: The master's address.
            port: Its control port.
            nodes: Each worker node → its address (a report from elsewhere is dropped).
            targets: Each worker's ``(address, control_port)``, to beat to (None: no beats).

        Raises:
            OSError: If the address cannot be bound (the error names it).
        """
        super().__init__(address, port, "node-reports")
        self.engine = engine
        self.nodes = dict(nodes)
        self.targets = dict(targets or {})
        self.received = 0
        self.beats = 0
        # One per run of this latentd: a worker tells a master that paused from a new one.
        self._beat = json.dumps({"beat": {"session": uuid.uuid4().hex}}).encode()
        self._beat_at = (-BEAT_EVERY_S, -1)  # (monotonic time, engine block) of the last beat

    def _send_beats(self) -> None:
        """Beat to every worker, while the engine plays (its blocks advance)."""
        now, block = time.monotonic(), self.engine.snapshot.block
        if now - self._beat_at[0] < BEAT_EVERY_S or block == self._beat_at[1]:
            return
        self._beat_at = (now, block)
        for node, target in self.targets.items():
            try:
                self._sock.sendto(self._beat, target)
                self.beats += 1
            except OSError as exc:
                log.warning("node.beat_failed", node=node, target=str(target), reason=str(exc))

    def start(self) -> NodeReports:
        """Start listening."""
        self._thread.start()
        return self

    def _tick(self) -> None:
        self._send_beats()

    def _handle(self, data: bytes, sender: tuple[str, int]) -> None:
        try:
            report = NodeReport.from_json(json.loads(data)["report"])
            if self.nodes.get(report.node) != sender[0]:
                raise ValueError(f"node {report.node!r} is not at {sender[0]}")
        except (ValueError, KeyError, TypeError, AttributeError) as exc:
            log.warning("node.bad_report", sender=str(sender), reason=str(exc)[:200])
            return
        self.received += 1
        if report.node not in self.engine.remote.reports:
            log.info("node.reported", node=report.node, voices=sorted(report.voices))
        self.engine.remote.take_report(report)
