"""A private jackd process: started, waited for, stopped (used by tests, benchmarks and venues without
a system JACK server).

jackd refuses to start under a name whose previous server process still exists, and a killed but
unreaped jackd still exists (as a zombie): every path that ends the process therefore reaps it.
"""

import os
import shutil
import signal
import subprocess
import tempfile
import time
from types import TracebackType
from typing import IO

from latentd.outputs.jack_out import JackOutputError, open_client

DRIVERS = ("dummy", "alsa")
_PROBE_INTERVAL_S = 0.05
_BANNER = ("jackdmp", "Copyright", "under certain conditions", "This is free software")


class JackServerError(RuntimeError):
    """jackd could not be started."""


class JackServer:
    """Runs ``jackd -n NAME`` as a child process. Usable as a context manager (start on enter, stop on exit).

    The dummy driver gets ``playback_channels`` playback ports (``system:playback_1`` ..) and no capture
    ports; it runs in real time, paced by the system clock.
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
        self.name = name
        self.samplerate = samplerate
        self.period = period
        self.driver = driver
        self.device = device
        self.playback_channels = playback_channels
        self.realtime = realtime
        self._proc: subprocess.Popen[bytes] | None = None
        self._output: IO[bytes] | None = None

    def command(self) -> list[str]:
        """The jackd command line this server runs."""
        jackd = shutil.which("jackd") or "jackd"
        cmd = [jackd, "-n", self.name, "-R" if self.realtime else "--no-realtime", "-d", self.driver]
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
            raise JackServerError(f"a JACK server named {self.name!r} is already running; pick another name")
        # A file, not a pipe: a pipe nobody reads would block jackd once it fills (weeks of xrun lines).
        self._output = tempfile.TemporaryFile(prefix=f"jackd-{self.name}-")  # noqa: SIM115 - closed by _reap()
        self._proc = subprocess.Popen(
            self.command(),
            stdin=subprocess.DEVNULL,
            stdout=self._output,
            stderr=subprocess.STDOUT,
            env={**os.environ, "JACK_NO_AUDIO_RESERVATION": "1"},
        )
        deadline = time.monotonic() + timeout_s
        while True:
            if self._proc.poll() is not None:
                code = self._proc.returncode
                output = self.output()
                self._reap()
                raise JackServerError(
                    f"jackd {self.name!r} exited with code {code} while starting: "
                    f"{' '.join(self.command())}\n{output}"
                )
            if self._answers():
                return
            if time.monotonic() > deadline:
                output = self.output()
                self.stop()
                raise JackServerError(
                    f"jackd {self.name!r} did not accept clients within {timeout_s} s\n{output}"
                )
            time.sleep(_PROBE_INTERVAL_S)

    def _answers(self) -> bool:
        """True if a server of this name accepts a client now."""
        try:
            open_client("latentd-probe", self.name).close()
        except JackOutputError:
            return False
        return True

    def output(self, max_chars: int = 4000) -> str:
        """The end of jackd's combined stdout/stderr while it runs (for error messages)."""
        if self._output is None:
            return ""
        self._output.seek(0)
        lines = self._output.read().decode(errors="replace").splitlines()
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
        if self._output is not None:
            self._output.close()
            self._output = None

    def __enter__(self) -> "JackServer":
        self.start()
        return self

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        self.stop()
