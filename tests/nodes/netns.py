"""Machines on one machine: network namespaces joined by veth pairs, one jackd per namespace.

:class:`NetnsNet` makes a master namespace and N worker namespaces, each worker joined to the master
by its own veth pair on its own /24, with a multicast route on every link (netjack2 finds its master by
multicast). JACK clients need no namespace: jackd's sockets live in /dev/shm, which all namespaces
share, so this process joins any of the servers (one server per process: libjack keeps one server's
registry per process, so a second server's client goes in a child process).

Teardown always kills what runs in the namespaces and deletes them (deleting a namespace deletes its
veth ends); a run that was killed leaves namespaces named after its pid, which the next run removes.
"""

from __future__ import annotations

import contextlib
import itertools
import os
import re
import shutil
import signal
import subprocess
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from types import TracebackType

from latentd.outputs.jackd import JackServer, NetOptions
from latentd.outputs.netjack import load_netmanager, unload_netmanager

PREFIX = "latentd-ns-"
_counter = itertools.count()


def unavailable_reason() -> str | None:
    """Why namespaces cannot be made here (not root, no ``ip``, no netns support), or None."""
    if os.geteuid() != 0:
        return "network namespaces need root (ip netns add)"
    if shutil.which("ip") is None:
        return "iproute2's ip is not installed"
    if shutil.which("jackd") is None:
        return "jackd is not installed (apt install jackd2)"
    name = f"{PREFIX}{os.getpid()}-probe"
    done = subprocess.run(["ip", "netns", "add", name], capture_output=True, check=False)
    if done.returncode != 0:
        return f"ip netns add fails here: {done.stderr.decode(errors='replace').strip()}"
    subprocess.run(["ip", "netns", "del", name], capture_output=True, check=False)
    return None


def ip(*args: str) -> None:
    """Run ``ip ARGS``; raise with its message when it fails."""
    done = subprocess.run(["ip", *args], capture_output=True, check=False)
    if done.returncode != 0:
        raise RuntimeError(f"ip {' '.join(args)}: {done.stderr.decode(errors='replace').strip()}")


def remove_stale() -> None:
    """Delete namespaces left by earlier runs whose process is gone (and kill what runs in them)."""
    listing = subprocess.run(["ip", "netns", "list"], capture_output=True, check=False).stdout.decode()
    for line in listing.splitlines():
        name = line.split()[0] if line.split() else ""
        match = re.match(rf"^{re.escape(PREFIX)}(\d+)-", name)
        if match and not os.path.exists(f"/proc/{match.group(1)}"):
            _delete(name)


def _delete(name: str) -> None:
    pids = subprocess.run(["ip", "netns", "pids", name], capture_output=True, check=False).stdout.split()
    for pid in pids:
        with contextlib.suppress(ProcessLookupError, ValueError):
            os.kill(int(pid), signal.SIGKILL)
    subprocess.run(["ip", "netns", "del", name], capture_output=True, check=False)


@dataclass(frozen=True)
class Node:
    """One namespace: its name, its address, and the master's address as seen from it."""

    netns: str
    address: str
    master_address: str


class NetnsNet:
    """A master namespace and ``n_workers`` worker namespaces, each linked to the master by a veth pair.

    Use as a context manager; :meth:`close` runs however the block ends. Servers started with
    :meth:`master_server` / :meth:`worker_server` are stopped first (netmanager unloaded: a jackd with it
    stops in 1 s instead of 13).
    """

    def __init__(self, n_workers: int = 1) -> None:
        """Describe the network; nothing exists before ``__enter__``."""
        self.tag = f"{os.getpid()}-{next(_counter)}"
        self.master = Node(f"{PREFIX}{self.tag}-m", "", "")
        self.workers: list[Node] = []
        self._n_workers = n_workers
        self._namespaces: list[str] = []
        self._servers: list[JackServer] = []
        self._netmanagers: list[str] = []
        self._listen: dict[str, str] = {}

    def __enter__(self) -> NetnsNet:
        remove_stale()
        try:
            self._create()
        except BaseException:
            self.close()
            raise
        return self

    def _create(self) -> None:
        ip("netns", "add", self.master.netns)
        self._namespaces.append(self.master.netns)
        ip("-n", self.master.netns, "link", "set", "lo", "up")
        # A subnet per run and worker: 10.(200 + w).(pid mod 250).0/24 keeps concurrent runs apart.
        net = os.getpid() % 250
        for w in range(self._n_workers):
            ns = f"{PREFIX}{self.tag}-w{w + 1}"
            ip("netns", "add", ns)
            self._namespaces.append(ns)
            # Interface names are at most 15 characters and per namespace: short ones do.
            ip(
                "link",
                "add",
                f"lnm{self.tag}-{w}"[:15],
                "type",
                "veth",
                "peer",
                "name",
                f"lnw{self.tag}-{w}"[:15],
            )
            m_if, w_if = f"lnm{self.tag}-{w}"[:15], f"lnw{self.tag}-{w}"[:15]
            ip("link", "set", m_if, "netns", self.master.netns, "name", f"w{w + 1}")
            ip("link", "set", w_if, "netns", ns, "name", "eth0")
            m_addr, w_addr = f"10.{200 + w}.{net}.1", f"10.{200 + w}.{net}.2"
            ip("-n", self.master.netns, "addr", "add", f"{m_addr}/24", "dev", f"w{w + 1}")
            ip("-n", ns, "addr", "add", f"{w_addr}/24", "dev", "eth0")
            ip("-n", self.master.netns, "link", "set", f"w{w + 1}", "up")
            ip("-n", ns, "link", "set", "eth0", "up")
            ip("-n", ns, "link", "set", "lo", "up")
            ip("-n", ns, "route", "add", "224.0.0.0/4", "dev", "eth0")
            if w == 0:  # the master's multicast goes out on one link: enough for the first worker
                ip("-n", self.master.netns, "route", "add", "224.0.0.0/4", "dev", "w1")
            self.workers.append(Node(ns, w_addr, m_addr))
        self.master = Node(self.master.netns, self.workers[0].master_address if self.workers else "", "")

    def master_server(self, period: int = 256, playback_channels: int = 2, listen: str = "") -> JackServer:
        """Start the master's jackd (dummy driver, 48 kHz) in its namespace and load the netmanager.

        Args:
            period: Frames per period.
            playback_channels: The master's speaker ports.
            listen: The netmanager's address: empty = multicast, else one of the master's addresses.
        """
        server = JackServer(
            f"latentd-test-{self.tag}-m",
            period=period,
            playback_channels=playback_channels,
            netns=self.master.netns,
        )
        self._servers.append(server)
        server.start(timeout_s=10.0)
        self.load_netmanager(server, listen)
        return server

    def load_netmanager(self, server: JackServer, listen: str = "") -> None:
        """Load the netmanager into ``server`` (again, after a restart); unloaded at :meth:`close`."""
        self._listen[server.name] = listen or self._listen.get(server.name, "")
        load_netmanager(server.name, self._listen[server.name])
        if server.name not in self._netmanagers:
            self._netmanagers.append(server.name)

    def worker_server(
        self,
        worker: int,
        playback_channels: int = 2,
        capture_channels: int = 0,
        latency: int = 2,
        unicast: bool = True,
    ) -> JackServer:
        """Start worker ``worker``'s jackd (net driver) in its namespace; it joins the master by itself.

        Args:
            worker: Index into :attr:`workers`.
            playback_channels: Ports sent to the master.
            capture_channels: Ports received from the master.
            latency: The net driver's latency in periods.
            unicast: Name the master's address (``-a``); False = find it by multicast.
        """
        node = self.workers[worker]
        options = NetOptions(
            master=node.master_address if unicast else "", name=f"n{worker + 1}", latency=latency
        )
        server = JackServer(
            f"latentd-test-{self.tag}-w{worker + 1}",
            driver="net",
            playback_channels=playback_channels,
            capture_channels=capture_channels,
            net=options,
            netns=node.netns,
        )
        self._servers.append(server)
        server.start(timeout_s=10.0)
        return server

    def close(self) -> None:
        """Stop the servers, kill anything left in the namespaces, delete them. Idempotent."""
        for name in self._netmanagers:
            with contextlib.suppress(Exception):
                unload_netmanager(name)
        self._netmanagers.clear()
        for server in reversed(self._servers):
            with contextlib.suppress(Exception):
                server.stop(timeout_s=3.0)
            # A client killed together with its server leaves its semaphore behind (jack_sem.*_<server>_*).
            for leftover in Path("/dev/shm").glob(f"jack_sem.*_{server.name}_*"):
                leftover.unlink(missing_ok=True)
        self._servers.clear()
        for ns in reversed(self._namespaces):
            _delete(ns)
        self._namespaces.clear()

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        self.close()


def wait_until(predicate: Callable[[], bool], timeout_s: float = 10.0, interval_s: float = 0.05) -> bool:
    """Poll ``predicate()`` until it is true or ``timeout_s`` passes; its last result."""
    deadline = time.monotonic() + timeout_s
    while True:
        if predicate():
            return True
        if time.monotonic() > deadline:
            return False
        time.sleep(interval_s)
