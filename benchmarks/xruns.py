"""Xrun benchmark: the demo piece played live on a private dummy jackd, under OSC load, per JACK period.

For each period (default 256 and 1024 frames at 48 kHz) it starts a private ``jackd -d dummy``, runs
``latentd run`` (through ``benchmarks.xruns_child``, which also times the JACK process callback) for
``--minutes``, while a second process sends operator-like OSC datagrams, with recording on when the venue
config offers it. It reports xruns and underruns per hour (all, and after the first status line, i.e.
without start-up), and the callback's p50/p99/max duration. Results: ``benchmarks/results/xruns.json``.
"""

from __future__ import annotations

import argparse
import errno
import os
import socket
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

from benchmarks.common import RESULTS_DIR, free_udp_port, read_events, table, write_live_config, write_result

SAMPLERATE = 48000


def _udp_port_taken(port: int) -> bool:
    """True when something listens on the UDP port (we cannot bind it)."""
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as s:
        try:
            s.bind(("127.0.0.1", port))
        except OSError as exc:
            return exc.errno == errno.EADDRINUSE
    return False


def _venue_extras(work: Path, osc_port: int) -> tuple[dict[str, Any], list[str]]:
    """Venue tables that turn on OSC and recording, as far as this build's config knows them."""
    from latentd.config import VenueConfig

    fields = VenueConfig.model_fields
    extra: dict[str, Any] = {}
    notes = []
    if "osc" in fields:
        extra["osc"] = {"enabled": True, "port": osc_port}
    else:
        notes.append("this build has no [osc] section: the load goes to a closed UDP port")
    if "recording" in fields:
        extra["recording"] = {"mode": "always", "folder": str(work / "recordings")}
    else:
        notes.append("this build has no [recording] section: recording is off")
    return extra, notes


def run_period(
    period: int, minutes: float, work: Path, osc_rate: float, realtime: bool = False
) -> dict[str, Any]:
    """Play the demo for ``minutes`` at one JACK period; return its figures."""
    from latentd.outputs.jackd import JackServer

    duration_s = minutes * 60.0
    osc_port = free_udp_port()
    extra, notes = _venue_extras(work, osc_port)
    name = f"latentd-xruns-{os.getpid()}-{period}"
    with JackServer(
        name, samplerate=SAMPLERATE, period=period, playback_channels=8, realtime=realtime
    ) as server:
        config = write_live_config(work, server_name=server.name, client_name="latentd-xruns", extra=extra)
        log_path = work / "daemon.log"
        load_path = work / "load.log"
        with log_path.open("wb") as log, load_path.open("wb") as load_log:
            daemon = subprocess.Popen(
                [
                    sys.executable,
                    "-m",
                    "benchmarks.xruns_child",
                    "--config",
                    str(config),
                    "--duration",
                    str(duration_s),
                ],
                stdout=log,
                stderr=subprocess.STDOUT,
            )
            # Start the load once the daemon is ready, so it lands on a running engine.
            deadline = time.monotonic() + 120.0
            while time.monotonic() < deadline and daemon.poll() is None:
                if any(e.get("event") == "ready" for e in read_events(log_path)):
                    break
                time.sleep(0.2)
            osc_listening = _udp_port_taken(osc_port)
            load = subprocess.Popen(
                [
                    sys.executable,
                    "-m",
                    "benchmarks.oscload",
                    "--port",
                    str(osc_port),
                    "--rate",
                    str(osc_rate),
                    "--duration",
                    str(duration_s),
                ],
                stdout=load_log,
                stderr=subprocess.STDOUT,
            )
            try:
                code = daemon.wait(duration_s + 120.0)
            finally:
                if daemon.poll() is None:
                    daemon.terminate()
                    daemon.wait(20)
                load.terminate()
                load.wait(20)
    events = read_events(log_path)
    stopping = next((e for e in reversed(events) if e.get("event") == "stopping"), None)
    statuses = [e for e in events if e.get("event") == "status"]
    times = next((e for e in reversed(events) if e.get("event") == "callback_times"), {})
    sent = next((e for e in read_events(load_path) if e.get("event") == "osc_load"), {})
    if stopping is None:
        tail = log_path.read_text(errors="replace")[-3000:]
        raise RuntimeError(
            f"period {period}: the daemon did not stop cleanly (exit {code}); its output:\n{tail}"
        )
    hours = duration_s / 3600.0
    xruns, underruns = int(stopping["xruns"]), int(stopping["underruns"])
    first = statuses[0] if statuses else {"xruns": 0, "underruns": 0, "seconds": 0.0}
    steady_h = max(1e-9, (duration_s - 5.0) / 3600.0)
    recordings = list((work / "recordings").rglob("*.*")) if (work / "recordings").exists() else []
    if "recording" in extra and not recordings:
        notes.append(
            "recording was asked for in the config but no file was written (not wired into run yet?)"
        )
    if "osc" in extra and not osc_listening:
        notes.append(
            "no OSC server listened on the port (not wired into run yet?): load went to a closed port"
        )
    return {
        "period": period,
        "realtime": realtime,
        "period_ms": period / SAMPLERATE * 1e3,
        "minutes": minutes,
        "exit_code": code,
        "xruns": xruns,
        "underruns": underruns,
        "xruns_per_hour": xruns / hours,
        "underruns_per_hour": underruns / hours,
        "xruns_after_first_status": xruns - int(first["xruns"]),
        "xruns_per_hour_after_start": (xruns - int(first["xruns"])) / steady_h,
        "underruns_per_hour_after_start": (underruns - int(first["underruns"])) / steady_h,
        "blocks": stopping.get("blocks"),
        "callback": times,
        "osc_sent": sent.get("sent", 0),
        "osc_rate_per_s": osc_rate,
        "osc_server_listening": osc_listening,
        "recording_files": [p.name for p in recordings],
        "notes": notes,
    }


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--minutes", type=float, default=10.0, help="play time per period (default 10)")
    parser.add_argument("--periods", type=int, nargs="+", default=[256, 1024], help="JACK periods in frames")
    parser.add_argument("--osc-rate", type=float, default=50.0, help="OSC datagrams per second (default 50)")
    parser.add_argument("--results", type=Path, default=RESULTS_DIR, help="folder for xruns.json")
    parser.add_argument(
        "--realtime",
        action="store_true",
        help="run jackd with realtime scheduling (-R), as a deployed jackd.service does (needs the rights)",
    )
    args = parser.parse_args(argv)
    rows, data = [], []
    mode = "realtime jackd" if args.realtime else "jackd --no-realtime"
    print(
        f"latentd xrun benchmark: {args.minutes} min per period, {mode}; "
        f"load average {os.getloadavg()[0]:.2f}"
    )
    with tempfile.TemporaryDirectory(prefix="latentd-xruns-") as tmp:
        for period in args.periods:
            work = Path(tmp) / f"p{period}"
            work.mkdir()
            r = run_period(period, args.minutes, work, args.osc_rate, args.realtime)
            data.append(r)
            cb = r["callback"]
            rows.append(
                [
                    period,
                    f"{r['period_ms']:.1f}",
                    r["xruns"],
                    r["xruns_per_hour"],
                    r["xruns_per_hour_after_start"],
                    r["underruns"],
                    r["underruns_per_hour"],
                    cb.get("p50_us", float("nan")),
                    cb.get("p99_us", float("nan")),
                    cb.get("max_us", float("nan")),
                ]
            )
            for note in r["notes"]:
                print(f"note (period {period}): {note}")
    path = write_result("xruns", {"samplerate": SAMPLERATE, "rows": data}, args.results)
    headers = [
        "period",
        "ms",
        "xruns",
        "xruns/h",
        "xruns/h after start",
        "underruns",
        "underruns/h",
        "cb p50 µs",
        "cb p99 µs",
        "cb max µs",
    ]
    print(table(headers, rows))
    print(f"results: {path}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
