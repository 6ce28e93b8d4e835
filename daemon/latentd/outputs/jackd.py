"""A private jackd process: started, waited for, stopped (used by tests, benchmarks and venues without
a system JACK server).

jackd refuses to start under a name whose previous server process still exists, and a killed but
unreaped jackd still exists (as a zombie): every path that ends the process therefore reaps it.

A private jackd ends with the process that started it, however that process ends: jackd is started
with the kernel's parent-death signal (``PR_SET_PDEATHSIG``) set to SIGTERM, so a SIGKILL of latentd
still stops jackd cleanly (it removes its own shared memory and semaphores on SIGTERM), and the next
run finds the name free. The signal follows the *thread* that started jackd: start it from a thread
that lives as long as the server (the main thread).
"""

import ctypes
import itertools
import os
import shutil
import signal
import subprocess
import threading
import time
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from types import TracebackType
from typing import IO

from latentd.outputs.jack_out import JackOutputError, open_client

DRIVERS = ("dummy", "alsa", "net")
_PROBE_INTERVAL_S = 0.05
_BANNER = ("jackdmp", "Copyright", "under certain conditions", "This is free software")
_PR_SET_PDEATHSIG = 1  # <linux/prctl.h>
_TAIL_LINES = 200  # lines of jackd's output kept for error messages
_LINE_BYTES = 4096


class JackServerError(RuntimeError):
    """jackd could not be started."""


class JackServer:
    """Runs ``jackd -n NAME`` as a child process. Usable as a context manager (start on enter, stop on exit).

    The dummy driver gets ``playback_channels`` playback ports (``system:playback_1`` ..) and no capture
    ports; it runs in real time, paced by the system clock.

    The net driver (netjack2) makes a node of another machine's JACK server: its ``playback_channels``
    playback ports are sent to the master (they arrive there as ``<net_name>:from_slave_N``), its
    ``capture_channels`` capture ports receive the master's ``<net_name>:to_slave_N``; samplerate and
    period are the master's. Such a server accepts clients at once but has its ports only while joined
    to a master (:meth:`joined`).
    """

    def __init__(
        self,
        name: str,
        samplerate: int = 48000,
        period: int = 256,
        driver: str = "dummy",
        device: str = "",
        playback_channels: int = 8,
        realtime: bool = False,
        capture_channels: int = 0,
        net: "NetOptions | None" = None,
        netns: str = "",
    ) -> None:
        """Describe the server; nothing runs yet.

        Args:
            name: Server name (unique per user); clients select it with ``servername=``.
            samplerate: Frames per second.
            period: Frames per process cycle (a power of two).
            driver: ``"dummy"`` (no sound card) or ``"alsa"``.
            device: ALSA device (e.g. ``"hw:1"``); empty means jackd's default. Ignored by ``dummy``.
            playback_channels: Playback ports to provide.
            realtime: Ask jackd for real-time scheduling (needs rtprio rights); off by default.
            capture_channels: Capture ports (net driver only: audio from the master).
            net: The net driver's options (where the master is, this node's name, its latency).
            netns: Run jackd inside this network namespace (``ip netns exec``; needs root).

        Raises:
            ValueError: If an argument is out of range.
        """
        if not name or "/" in name:
            raise ValueError(f"JackServer: name must be non-empty without '/', got {name!r}")
        if driver not in DRIVERS:
            raise ValueError(f"JackServer {name!r}: driver {driver!r} is not one of {', '.join(DRIVERS)}")
        if samplerate < 1:
            raise ValueError(f"JackServer {name!r}: samplerate must be positive, got {samplerate}")
        if period < 1 or period & (period - 1):
            raise ValueError(f"JackServer {name!r}: period must be a power of two, got {period}")
        if playback_channels < 1:
            raise ValueError(f"JackServer {name!r}: playback_channels must be >= 1, got {playback_channels}")
        if capture_channels < 0 or (capture_channels and driver != "net"):
            raise ValueError(
                f"JackServer {name!r}: capture_channels must be >= 0 and only with driver 'net', "
                f"got {capture_channels} with driver {driver!r}"
            )
        self.name = name
        self.samplerate = samplerate
        self.period = period
        self.driver = driver
        self.device = device
        self.playback_channels = playback_channels
        self.realtime = realtime
        self.capture_channels = capture_channels
        self.net = net if net is not None else NetOptions()
        self.netns = netns
        self._proc: subprocess.Popen[bytes] | None = None
        self._tail: deque[bytes] = deque(maxlen=_TAIL_LINES)
        self._reader: threading.Thread | None = None
        self._waiting = threading.Event()  # net driver: it printed that it waits for a master
        self._joined = threading.Event()  # net driver: it printed the parameters of a master it joined

    def command(self) -> list[str]:
        """The jackd command line this server runs."""
        jackd = shutil.which("jackd") or "jackd"
        prefix = ["ip", "netns", "exec", self.netns] if self.netns else []
        cmd = [*prefix, jackd, "-n", self.name, "-R" if self.realtime else "--no-realtime", "-d", self.driver]
        if self.driver == "net":
            return [
                *cmd,
                *self.net.arguments(),
                "-C",
                str(self.capture_channels),
                "-P",
                str(self.playback_channels),
            ]
        rate = ["-r", str(self.samplerate), "-p", str(self.period)]
        if self.driver == "dummy":
            return [*cmd, *rate, "-P", str(self.playback_channels), "-C", "0"]
        device = ["-d", self.device] if self.device else []
        return [*cmd, *device, *rate, "-P", "-o", str(self.playback_channels)]

    @property
    def running(self) -> bool:
        """True while the jackd process is alive."""
        return self._proc is not None and self._proc.poll() is None

    @property
    def pid(self) -> int | None:
        """Process id of jackd while it was started by this object, else None."""
        return self._proc.pid if self._proc is not None else None

    def start(self, timeout_s: float = 10.0) -> None:
        """Start jackd and wait until a client can connect.

        Args:
            timeout_s: How long to wait for the server to accept clients.

        Raises:
            JackServerError: If jackd is missing, exits, or does not accept a client in time; the message
                holds the end of jackd's output.
        """
        if self.running:
            return
        if shutil.which("jackd") is None:
            raise JackServerError("jackd is not installed (Debian/Ubuntu: apt install jackd2)")
        self._reap()
        if self._answers():
            # Otherwise the probe below would mistake the other server for ours.
            raise JackServerError(
                f"a JACK server named {self.name!r} is already running ({describe_holders(self.name)}); "
                "stop it or pick another name"
            )
        self._proc = subprocess.Popen(
            self.command(),
            stdin=subprocess.DEVNULL,
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            env={**os.environ, "JACK_NO_AUDIO_RESERVATION": "1"},
            preexec_fn=_end_with_parent(),
            # Its own process group: a Ctrl-C or a closed terminal reaches latentd, which stops jackd
            # after its client, in order.
            process_group=0,
        )
        # A thread drains the pipe for as long as jackd runs (a full pipe would block jackd: weeks of xrun
        # lines) and keeps only its last lines; no file, so a read-only /tmp does not matter.
        self._tail.clear()
        self._waiting.clear()
        self._joined.clear()
        assert self._proc.stdout is not None
        self._reader = threading.Thread(
            target=_drain,
            args=(self._proc.stdout, self._tail, self._net_line),
            name=f"jackd-{self.name}-output",
            daemon=True,
        )
        self._reader.start()
        deadline = time.monotonic() + timeout_s
        while True:
            if self._proc.poll() is not None:
                code = self._proc.returncode
                self._reap()  # its output ends with the process: all of it is read
                output = self.output()
                raise JackServerError(
                    f"jackd {self.name!r} exited with code {code} while starting: "
                    f"{' '.join(self.command())}\n{output}"
                )
            # A net server is up once it waits for its master; it is not probed with a client (see joined).
            if self._waiting.is_set() if self.driver == "net" else self._answers():
                return
            if time.monotonic() > deadline:
                self.stop()
                output = self.output()
                raise JackServerError(
                    f"jackd {self.name!r} did not accept clients within {timeout_s} s\n{output}"
                )
            time.sleep(_PROBE_INTERVAL_S)

    def _answers(self) -> bool:
        """True if a server of this name accepts a client now."""
        try:
            # Never the server's own name: a client of that name takes over the server's socket.
            open_client(
                "latentd-probe" if self.name != "latentd-probe" else "latentd-probe-2", self.name
            ).close()
        except JackOutputError:
            return False
        return True

    def joined(self) -> bool:
        """True while this server has its system ports: while it runs for dummy and alsa; for the net
        driver, while it is joined to a master (read from its output: a client opened and closed on a net
        server that waits for its master is never fully removed, and jackd complains about it forever)."""
        if self.driver != "net":
            return self.running
        return self.running and self._joined.is_set()

    def output(self, max_chars: int = 4000) -> str:
        """The end of jackd's combined stdout/stderr (for error messages); kept after it stops."""
        lines = [line.decode(errors="replace").rstrip("\n") for line in list(self._tail)]
        text = "\n".join(line for line in lines if not line.startswith(_BANNER))
        return text[-max_chars:]

    def stop(self, timeout_s: float = 5.0) -> None:
        """Stop jackd: SIGTERM, then SIGKILL after ``timeout_s``; reap it. Idempotent.

        Args:
            timeout_s: Grace period for a clean exit.
        """
        proc = self._proc
        if proc is None:
            return
        if proc.poll() is None:
            proc.send_signal(signal.SIGTERM)
            try:
                proc.wait(timeout_s)
            except subprocess.TimeoutExpired:
                proc.kill()
        self._reap()

    def kill(self) -> None:
        """Kill jackd with SIGKILL (a crash, for fault tests) and reap it."""
        proc = self._proc
        if proc is None:
            return
        if proc.poll() is None:
            proc.kill()
        self._reap()

    def _reap(self) -> None:
        proc, self._proc = self._proc, None
        if proc is not None:
            proc.wait()
        reader, self._reader = self._reader, None
        if reader is not None:
            reader.join(1.0)  # jackd has exited: its output ends

    def _net_line(self, line: bytes) -> None:
        """Follow the net driver's state in its output (called by the reader thread for every line)."""
        if self.driver != "net":
            return
        if line.startswith(b"Waiting for a master"):
            self._joined.clear()
            self._waiting.set()
        elif line.startswith(b"Slave mode :"):  # the last line of the joined master's parameters
            self._joined.set()

    def __enter__(self) -> "JackServer":
        self.start()
        return self

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        self.stop()


@dataclass(frozen=True)
class NetOptions:
    """Options of jackd's net driver (netjack2 slave), as ``jackd -d net`` takes them.

    Attributes:
        master: The master's IP address; empty = find it by multicast (225.3.19.154), which needs a
            multicast route on the interface (``ip route add 224.0.0.0/4 dev eth0``).
        port: The master's UDP port (netmanager's ``-p``).
        name: This node's name: the master's client for it is called so (``<name>:from_slave_1`` ..),
            or ``<name>-01`` .. while a client of that name still exists there.
        latency: Network latency in periods (``-l``): how long the master waits for this node's audio
            before it plays silence instead. Round trip master → node → master is ``latency + 2`` periods.
    """

    master: str = ""
    port: int = 19000
    name: str = ""
    latency: int = 5

    def arguments(self) -> list[str]:
        """The net driver's arguments."""
        args = ["-p", str(self.port), "-l", str(self.latency)]
        if self.master:
            args += ["-a", self.master]
        if self.name:
            args += ["-n", self.name]
        return args


def _drain(stream: IO[bytes], tail: deque[bytes], on_line: Callable[[bytes], None]) -> None:
    """Read jackd's output until it ends, keeping the last lines in ``tail``; close the stream."""
    with stream:
        for line in iter(lambda: stream.readline(_LINE_BYTES), b""):
            tail.append(line)
            on_line(line)


def _end_with_parent() -> Callable[[], None] | None:
    """A ``preexec_fn`` that has the kernel send the child SIGTERM when this thread ends (Linux).

    libc is looked up here, in the parent: the function that runs between fork and exec only calls it.
    None where ``prctl`` does not exist (not Linux).
    """
    try:
        prctl = ctypes.CDLL(None, use_errno=True).prctl
    except (OSError, AttributeError):
        return None
    parent = os.getpid()

    def preexec() -> None:
        prctl(_PR_SET_PDEATHSIG, int(signal.SIGTERM), 0, 0, 0)
        if os.getppid() != parent:  # the parent died before the line above took effect
            os._exit(1)

    return preexec


def jackd_pids(name: str) -> list[int]:
    """Process ids of running jackd processes serving ``name`` (read from /proc; [] where unreadable)."""
    found = []
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            argv = (entry / "cmdline").read_bytes().split(b"\0")
        except OSError:
            continue
        if not argv or os.path.basename(argv[0]) not in (b"jackd", b"jackdmp"):
            continue
        args = [a.decode(errors="replace") for a in argv[1:]]
        if "-d" in args:  # server options only: after -d come the driver's (alsa's -n is its periods)
            args = args[: args.index("-d")]
        names = {value for option, value in itertools.pairwise(args) if option in ("-n", "--name")}
        names.update(arg.split("=", 1)[1] for arg in args if arg.startswith("--name="))
        if name in names:
            found.append(int(entry.name))
    return sorted(found)


def describe_holders(name: str) -> str:
    """Who serves JACK server ``name``, for an error message: pids and parents, or a hint."""
    pids = jackd_pids(name)
    if not pids:
        return "its process is not visible here: another user's, or one started without -n"
    parts = []
    for pid in pids:
        try:
            stat = Path(f"/proc/{pid}/stat").read_text()
            ppid = int(stat.rsplit(")", 1)[1].split()[1])
        except (OSError, ValueError, IndexError):
            parts.append(f"jackd pid {pid}")
            continue
        parts.append(f"jackd pid {pid}, started by pid {ppid}")
    return "; ".join(parts) + f" (to stop it: kill {' '.join(str(p) for p in pids)})"
