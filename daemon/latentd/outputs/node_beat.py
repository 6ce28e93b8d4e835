"""A worker node's side of netjack2: its heartbeat, and its speakers kept connected to the master.

On a worker, ``system:playback_1..N`` are its net driver's ports: what they carry arrives on the master.
They exist only while a master has the node, and are made anew each time one takes it, which drops
every connection to them. :class:`NodeBeat` is a JACK client of its own (``<client_name>-beat``) whose
one port plays 1.0 into ``system:playback_<N + 1>``, the channel after the speakers: the master hears the
worker's program alive (not just its jackd). Its :meth:`~NodeBeat.poll` (from the main loop) connects
the beat and the speakers again whenever the system ports are new.
"""

from __future__ import annotations

import contextlib
from collections.abc import Sequence

import jack
from structlog.typing import FilteringBoundLogger

from latentd.outputs.jack_out import open_client


class NodeBeat:
    """The heartbeat port of a worker node, and its speakers' connections to the net driver."""

    def __init__(
        self,
        speaker_ports: Sequence[str],
        *,
        client_name: str,
        server_name: str | None,
        log: FilteringBoundLogger,
    ) -> None:
        """Describe the client; nothing is opened yet.

        Args:
            speaker_ports: The output client's full port names, in speaker order (``latentd:L`` ..).
            client_name: This client's name.
            server_name: The worker's JACK server (its net driver), None for the default.
            log: For the master coming and going.
        """
        self.speaker_ports = list(speaker_ports)
        self.client_name = client_name
        self.server_name = server_name
        self.log = log
        self._client: jack.Client | None = None
        self._port: jack.OwnPort | None = None
        self._seen: set[str] = set()

    def start(self) -> None:
        """Open, register ``beat``, activate, connect what is there."""
        client = open_client(self.client_name, self.server_name)
        self._port = client.outports.register("beat")
        client.set_process_callback(self._process)
        client.activate()
        self._client = client
        self.poll()

    def stop(self) -> None:
        """Deactivate and close. Idempotent."""
        client, self._client = self._client, None
        if client is not None:
            with contextlib.suppress(jack.JackError):
                client.deactivate()
                client.close()

    def poll(self) -> None:
        """Connect the speakers and the beat to the system ports when they are new (every ~100 ms)."""
        client = self._client
        if client is None or self._port is None:
            return
        system = {port.name for port in client.get_ports("system:playback_")}
        if system == self._seen:
            return
        self._seen = system
        if not system:
            self.log.warning("node.master_lost", action="silent until a master takes this node again")
            return
        sources = [*self.speaker_ports, self._port.name]
        targets = [f"system:playback_{i + 1}" for i in range(len(sources))]
        missing = [t for t in targets if t not in system]
        for source, target in zip(sources, targets, strict=True):
            if target in system:
                with contextlib.suppress(jack.JackError):  # already connected
                    client.connect(source, target)
        self.log.info("node.master_joined", ports=len(system), missing=missing)

    def _process(self, frames: int) -> None:
        """JACK process callback: the beat. Never raises."""
        try:
            assert self._port is not None
            self._port.get_array().fill(1.0)
        except BaseException:
            return
