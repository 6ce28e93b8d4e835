"""Soak benchmark: the demo piece live for a long time while everything that happens to a venue happens.

For each JACK period (default 256, then 1024 frames at 48 kHz) it starts a private ``jackd -d dummy`` that
``latentd run`` joins (an external server, so the soak can kill it), and plays for ``--minutes`` with:

- recording always on, in segments of 10 minutes, on a small tmpfs mounted for the run (as root);
- one OSC command per second (voice gains, latent biases, reseeds, next section, master gain), sent the way
  ``latentd send`` sends them, and ``/status`` every 5 seconds;
- the venue closing for one minute every 10 minutes (the config's ``[schedule]``, in whole UTC minutes);
- jackd killed with SIGKILL every 15 minutes and started again 5 seconds later;
- once (first period only) the recording disk filled by a ballast file for a minute, then freed.

The event times are those of a 30-minute run and scale with ``--minutes`` (the closures need whole
minutes: a short run has none). Without the rights to mount a tmpfs the recordings go to the work folder
and the disk-full event is skipped with a note.

It reports underruns and xruns (at start-up, during the jackd outages, outside them), resident memory and
open files of both latentd processes (start, end, slope per hour), the state file's size, every segment
read back, some segments replayed with ``latentd replay --segment N`` and compared sample for sample (one
of them after the disk-full pause), the recording's pause and resume as ``/status`` showed them, and the
load average (the figures of a busy machine say so). A progress line is printed every minute.
Results: ``benchmarks/results/soak.json`` (rewritten after each period).
"""

from __future__ import annotations

import argparse
import datetime as dt
import io
import json
import os
import random
import signal
import subprocess
import time
import tomllib
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from benchmarks import soak_probe as probe
from benchmarks.common import RESULTS_DIR, read_events, write_live_config, write_result
from benchmarks.soak_plan import CHANNELS, SAMPLERATE, Plan, closures, command, schedule_table
from benchmarks.soak_report import checks, summary


@dataclass
class Observed:
    """What one period's run saw while it ran."""

    samples: list[dict[str, Any]] = field(default_factory=list)
    statuses: list[dict[str, Any]] = field(default_factory=list)
    kills: list[float] = field(default_factory=list)  # wall-clock times of the jackd SIGKILLs
    events: list[dict[str, Any]] = field(default_factory=list)
    sent: dict[str, int] = field(default_factory=dict)
    commands: int = 0
    commands_failed: int = 0
    status_missed: int = 0
    notes: list[str] = field(default_factory=list)


# -------------------------------------------------------------------------------------------- one period
class Period:
    """One period's run: its jackd, its daemon, its disk, and what was seen."""

    def __init__(
        self, period: int, plan: Plan, work: Path, *, disk_full: bool, mount: bool, replays: int = 3
    ) -> None:
        """Describe the run; :meth:`run` does it.

        Args:
            period: JACK period in frames.
            plan: When things happen.
            work: Folder for the config, the daemon's log, the state file and (without a tmpfs) recordings.
            disk_full: Fill and free the recording disk once (needs the tmpfs).
            mount: Mount a tmpfs for the recordings (needs root).
            replays: How many segments to replay and compare.
        """
        self.period, self.plan, self.work = period, plan, work
        self.disk_full, self.mount, self.replays = disk_full, mount, replays
        self.seen = Observed()
        self.disk = work / "disk"
        self.mounted = False
        self.port = 0
        self.state_file = work / "state" / "latentd-state.json"

    def _say(self, text: str) -> None:
        print(f"[{time.strftime('%H:%M:%S')} p{self.period}] {text}", flush=True)

    def prepare_disk(self) -> None:
        """Mount the tmpfs for the recordings (room for the whole run plus a margin), or note why not."""
        if not self.mount:
            self.seen.notes.append("no tmpfs asked for (--no-mount): the disk-full event is skipped")
            self.disk.mkdir(parents=True, exist_ok=True)
            return
        size = int(SAMPLERATE * CHANNELS * 4 * self.plan.run_s * 1.25) + (96 << 20)
        why = probe.mount_tmpfs(self.disk, size)
        if why is None:
            self.mounted = True
            self.seen.notes.append(f"recordings on a tmpfs of {size >> 20} MiB")
        else:
            self.seen.notes.append(f"{why}: recordings in the work folder, the disk-full event is skipped")

    def run(self) -> dict[str, Any]:
        """Play, disturb, measure; then stop and check the recordings. Returns the period's figures."""
        self.prepare_disk()
        try:
            return self._run()
        finally:
            if self.mounted:
                probe.unmount(self.disk)

    def _run(self) -> dict[str, Any]:
        from latentd.outputs.jackd import JackServer

        server = JackServer(
            f"latentd-soak-{os.getpid()}-{self.period}",
            samplerate=SAMPLERATE,
            period=self.period,
            playback_channels=CHANNELS,
        )
        server.start(timeout_s=20.0)
        spans = closures(self.plan, time.time() + 15.0)
        if not spans:
            self.seen.notes.append("no venue closure: they need whole minutes inside the run")
        extra = {
            "recording": {
                "mode": "always",
                "folder": str(self.disk),
                "segment_s": self.plan.segment_s,
                "min_free_bytes": 8 << 20,
                "min_free_percent": 0.0,
                "resume_when_space": True,
            },
            # The state file as a venue writes it (every 30 s), more often in a short run.
            "schedule": schedule_table(spans, max(1.0, min(30.0, self.plan.run_s / 10.0))),
        }
        config = write_live_config(
            self.work, server_name=server.name, client_name="latentd-soak", extra=extra
        )
        self.port = int(tomllib.loads(config.read_text())["osc"]["port"])
        log_path = self.work / "daemon.log"
        try:
            with log_path.open("wb") as log:
                daemon = subprocess.Popen(
                    [str(probe.LATENTD), "run", "-c", str(config), "--fresh"],
                    stdout=log,
                    stderr=subprocess.STDOUT,
                )
                try:
                    code = self._play(daemon, server, log_path)
                finally:
                    if daemon.poll() is None:
                        daemon.kill()
                        daemon.wait(10)
        finally:
            server.stop()
        return self._figures(code, log_path, spans)

    def _wait_ready(self, daemon: subprocess.Popen[bytes], log_path: Path) -> None:
        deadline = time.monotonic() + 180.0
        while time.monotonic() < deadline:
            if daemon.poll() is not None:
                raise RuntimeError(
                    f"latentd run exited with {daemon.returncode}:\n{log_path.read_text()[-3000:]}"
                )
            if any(e.get("event") == "ready" for e in read_events(log_path)):
                return
            time.sleep(0.2)
        raise RuntimeError(f"latentd run was not ready within 180 s:\n{log_path.read_text()[-3000:]}")

    def _play(self, daemon: subprocess.Popen[bytes], server: Any, log_path: Path) -> int:
        from latentd.cli.osc import query_status, send

        self._wait_ready(daemon, log_path)
        t0 = time.monotonic()
        engine = None
        for _ in range(50):
            if (engine := probe.engine_child(daemon.pid)) is not None:
                break
            time.sleep(0.1)
        if engine is None:
            self.seen.notes.append("the engine process was not found: its memory is not measured")
        self._say(f"ready; latentd pid {daemon.pid}, engine pid {engine}, OSC port {self.port}")
        todo: list[tuple[float, str, Callable[[], None]]] = []
        for at in self.plan.kills_s:
            todo.append((at, "jackd killed (SIGKILL)", lambda: self._kill(server)))
            todo.append(
                (at + self.plan.outage_s, "jackd started again", lambda: server.start(timeout_s=20.0))
            )
        if self.disk_full and self.mounted:
            todo.append((self.plan.fill_s, "recording disk filled", self._fill))
            todo.append((self.plan.free_s, "recording disk freed", self._free))
        todo.sort(key=lambda item: item[0])
        rng = random.Random(self.period)
        next_poll = next_progress = 0.0
        k = 0
        while (now := time.monotonic() - t0) < self.plan.run_s:
            if daemon.poll() is not None:
                self.seen.notes.append(
                    f"latentd run ended by itself after {now:.0f} s (exit {daemon.returncode})"
                )
                break
            while todo and todo[0][0] <= now:
                at, what, action = todo.pop(0)
                action()
                self.seen.events.append({"t": round(now, 1), "event": what})
                self._say(what)
            address, args = command(rng, k)
            code = send("127.0.0.1", self.port, address, args, 0.3, 0, io.StringIO())
            self.seen.commands += 1
            self.seen.commands_failed += code != 0
            parts = address.strip("/").split("/")
            kind = f"{parts[0]}.{parts[-1]}"  # voice.gain, master.gain, section.next...
            self.seen.sent[kind] = self.seen.sent.get(kind, 0) + 1
            if now >= next_poll:
                next_poll += self.plan.poll_every_s
                status = query_status("127.0.0.1", self.port, 2.0, 0)
                if status is None or "error" in status:
                    self.seen.status_missed += 1
                else:
                    self.seen.statuses.append(_status_row(now, status))
                self.seen.samples.append(self._sample(now, daemon.pid, engine))
            if now >= next_progress:
                next_progress += self.plan.progress_every_s
                self._progress(now, log_path)
            k += 1
            time.sleep(max(0.0, t0 + k * self.plan.command_every_s - time.monotonic()))
        self.seen.samples.append(self._sample(time.monotonic() - t0, daemon.pid, engine))
        self._progress(time.monotonic() - t0, log_path)
        daemon.send_signal(signal.SIGTERM)
        return daemon.wait(120.0)

    def _kill(self, server: Any) -> None:
        self.seen.kills.append(time.time())
        server.kill()

    def _fill(self) -> None:
        written = probe.fill_disk(self.disk / "ballast.bin")
        self.seen.notes.append(f"ballast of {written >> 20} MiB filled the recording disk")

    def _free(self) -> None:
        (self.disk / "ballast.bin").unlink(missing_ok=True)

    def _sample(self, now: float, pid: int, engine: int | None) -> dict[str, Any]:
        size = self.state_file.stat().st_size if self.state_file.exists() else None
        # The main process closes its JACK client while jackd is down (fewer files, less memory mapped):
        # samples from then on until the client is surely back are kept but not used for "flat".
        outage = bool(self.seen.kills) and time.time() - self.seen.kills[-1] < self.plan.outage_s + 5.0
        return {
            "t": round(now, 1),
            "in_outage": outage,
            "rss_main_mib": probe.rss_mib(pid),
            "rss_engine_mib": probe.rss_mib(engine) if engine else None,
            "fds_main": probe.open_fds(pid),
            "fds_engine": probe.open_fds(engine) if engine else None,
            "state_file_bytes": size,
            "dev_shm_entries": len(os.listdir("/dev/shm")),
            "load_1min": round(os.getloadavg()[0], 2),
        }

    def _progress(self, now: float, log_path: Path) -> None:
        s = self.seen.samples[-1] if self.seen.samples else {}
        st = self.seen.statuses[-1] if self.seen.statuses else {}
        counts = probe.split_counters(read_events(log_path), self.seen.kills)
        self._say(
            f"{now / 60:5.1f}/{self.plan.run_s / 60:.1f} min | load {s.get('load_1min')} | "
            f"RSS main {_mib(s.get('rss_main_mib'))} engine {_mib(s.get('rss_engine_mib'))} | "
            f"fds {s.get('fds_main')}/{s.get('fds_engine')} | state {s.get('state_file_bytes')} B | "
            f"underruns outside outages {counts['underruns_outside']} "
            f"(in outages {counts['underruns_outages']}) | "
            f"xruns {st.get('xruns')} | recording {st.get('recording')} seg {st.get('segments')} | "
            f"open {st.get('open')} | cmds {self.seen.commands} ({self.seen.commands_failed} unanswered) | "
            f"jackd kills {len(self.seen.kills)}"
        )

    # ----------------------------------------------------------------------------------- after the run
    def _figures(
        self, code: int, log_path: Path, spans: list[tuple[dt.datetime, dt.datetime]]
    ) -> dict[str, Any]:
        seen = self.seen
        events = read_events(log_path)
        counters = probe.split_counters(events, seen.kills)
        warm = min(120.0, self.plan.run_s * 0.1)
        steady = [s for s in seen.samples if s["t"] >= warm and not s["in_outage"]] or seen.samples
        sessions = sorted(p.parent for p in self.disk.glob("*/session.json"))
        segments = [c for session in sessions for c in probe.check_segments(session)]
        self._say(f"stopped (exit {code}); {len(segments)} segments read back; replaying")
        replays = self._replays(sessions)
        states = [s["recording"] for s in seen.statuses]
        paused_at = next((i for i, s in enumerate(states) if s == "paused"), None)
        resumed = paused_at is not None and "recording" in states[paused_at:]
        opens = [s["open"] for s in seen.statuses]
        return {
            "period": self.period,
            "period_ms": self.period / SAMPLERATE * 1e3,
            "minutes": self.plan.run_s / 60.0,
            "plan": self.plan.__dict__,
            "exit_code": code,
            "counters": counters,
            "memory_mib": {
                "main": probe.series(steady, "rss_main_mib"),
                "engine": probe.series(steady, "rss_engine_mib"),
            },
            "open_fds": {
                "main": probe.series(steady, "fds_main"),
                "engine": probe.series(steady, "fds_engine"),
            },
            "state_file_bytes": probe.series(steady, "state_file_bytes"),
            "dev_shm_entries": probe.series(seen.samples, "dev_shm_entries"),
            "load_1min": probe.series(seen.samples, "load_1min"),
            "load_mean": sum(s["load_1min"] for s in seen.samples) / max(1, len(seen.samples)),
            "segments": [c.__dict__ for c in segments],
            "replays": replays,
            "recording_pause": {
                "asked": self.disk_full and self.mounted,
                "paused_seen": paused_at is not None,
                "reasons": sorted({s["reason"] for s in seen.statuses if s.get("reason")}),
                "resumed_seen": resumed,
            },
            "venue": {
                "closures": [(a.isoformat(), b.isoformat()) for a, b in spans],
                "closed_seen": opens.count(False),
                "reopened": bool(opens) and opens[-1] is True,
            },
            "commands": {"sent": seen.commands, "unanswered": seen.commands_failed, "by_kind": seen.sent},
            "status_polls": len(seen.statuses),
            "status_missed": seen.status_missed,
            "log_events": probe.count_events(
                events,
                [
                    "jack.server_lost",
                    "jack.reconnected",
                    "recording.paused",
                    "recording.resuming",
                    "state.write_failed",
                ],
            ),
            "events": seen.events,
            "samples": seen.samples,
            "notes": seen.notes,
        }

    def _replays(self, sessions: list[Path]) -> list[dict[str, Any]]:
        """Replay the first segment, the first after a gap (the disk-full pause), and the last whole one."""
        picks: list[tuple[Path, int]] = []
        gaps: set[tuple[Path, int]] = set()
        for session in sessions:
            segs = json.loads((session / "session.json").read_text()).get("segments", [])
            # The last segment was cut by the stop: a whole one shows more.
            whole = [i for i, seg in enumerate(segs[:-1]) if seg["frames"] > 0]
            after_gap = probe.segments_after_gap(session)
            gaps.update((session, i) for i in after_gap)
            for i in whole[:1] + after_gap[:1] + whole[-1:]:
                if (session, i) not in picks:
                    picks.append((session, i))
        out = []
        for session, index in picks[: self.replays]:
            result = probe.replay_segment(
                session,
                index,
                self.work / f"replay_{index}.w64",
                timeout_s=max(300.0, 4 * self.plan.segment_s),
            )
            result["after_pause"] = (session, index) in gaps
            self._say(f"replay of segment {index}: {'exact' if result.get('exact') else result}")
            out.append(result)
        return out


def _status_row(now: float, status: dict[str, Any]) -> dict[str, Any]:
    rec = status.get("recording") or {}
    return {
        "t": round(now, 1),
        "open": status.get("open"),
        "xruns": status.get("xruns"),
        "refused": status.get("refused_commands"),
        "recording": rec.get("state") if isinstance(rec, dict) else rec,
        "reason": rec.get("reason") if isinstance(rec, dict) else None,
        "segments": rec.get("segments") if isinstance(rec, dict) else None,
    }


def _mib(value: float | None) -> str:
    return "-" if value is None else f"{value:.0f} MiB"


def run(
    periods: list[int],
    minutes: float,
    work: Path,
    *,
    mount: bool = True,
    replays: int = 3,
    results_dir: Path = RESULTS_DIR,
    name: str = "soak",
    progress_every_s: float = 60.0,
) -> dict[str, Any]:
    """Run the soak for each period in turn; write ``<results_dir>/<name>.json`` after each. Returns it."""
    plan = Plan.scaled(minutes, progress_every_s)
    cores = os.cpu_count() or 1
    print(
        f"latentd soak: {minutes:g} min per period {periods}, segments of {plan.segment_s:g} s, "
        f"jackd killed at {[round(k) for k in plan.kills_s]} s for {plan.outage_s:g} s; "
        f"load average {os.getloadavg()[0]:.2f} on {cores} cores",
        flush=True,
    )
    results: list[dict[str, Any]] = []
    data: dict[str, Any] = {}
    for i, period in enumerate(periods):
        folder = work / f"p{period}"
        folder.mkdir(parents=True, exist_ok=True)
        soak = Period(period, plan, folder, disk_full=i == 0, mount=mount, replays=replays)
        result = soak.run()
        result["checks"] = checks(result)
        busy = result["load_1min"]["max"] is not None and result["load_1min"]["max"] > cores
        if busy:
            result["notes"].append(
                f"the machine was busy: load average up to {result['load_1min']['max']} on {cores} cores "
                "(other work ran during the soak)"
            )
        results.append(result)
        data = {"samplerate": SAMPLERATE, "channels": CHANNELS, "periods": results}
        path = write_result(name, data, results_dir)
        print(summary(results), flush=True)
        for note in result["notes"]:
            print(f"note (period {period}): {note}", flush=True)
        print(f"results: {path}", flush=True)
    return data


def main(argv: list[str] | None = None) -> int:
    """``python -m benchmarks.soak``: the soak, with its figures printed and written as JSON."""
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--minutes", type=float, default=30.0, help="play time per period (default 30)")
    parser.add_argument("--periods", type=int, nargs="+", default=[256, 1024], help="JACK periods in frames")
    parser.add_argument("--replays", type=int, default=3, help="segments to replay and compare per period")
    parser.add_argument("--results", type=Path, default=RESULTS_DIR, help="folder for the JSON results")
    parser.add_argument("--name", default="soak", help="results file name (without .json)")
    parser.add_argument("--progress", type=float, default=60.0, help="seconds between progress lines")
    parser.add_argument(
        "--no-mount",
        action="store_true",
        help="do not mount a tmpfs for the recordings (skips the disk-full event)",
    )
    parser.add_argument("--work", type=Path, default=None, help="work folder (default: a temporary one)")
    args = parser.parse_args(argv)
    if args.minutes <= 0:
        parser.error(f"--minutes must be positive, got {args.minutes:g}")
    if args.work is not None:
        data = run(
            args.periods,
            args.minutes,
            args.work,
            mount=not args.no_mount,
            replays=args.replays,
            results_dir=args.results,
            name=args.name,
            progress_every_s=args.progress,
        )
    else:
        import tempfile

        with tempfile.TemporaryDirectory(prefix="latentd-soak-") as tmp:
            data = run(
                args.periods,
                args.minutes,
                Path(tmp),
                mount=not args.no_mount,
                replays=args.replays,
                results_dir=args.results,
                name=args.name,
                progress_every_s=args.progress,
            )
    failed = [p["period"] for p in data["periods"] if any(v is False for v in p["checks"].values())]
    return 1 if failed else 0


if __name__ == "__main__":
    raise SystemExit(main())
