"""The soak benchmark's verdicts and summary table, from the figures of each period's run."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from benchmarks.common import table

FD_SLACK = 2  # a descriptor or two comes and goes (a reconnecting JACK client, a segment being rotated)
STATE_GROWTH = 1.1  # the state file may vary with its contents, never grow with uptime
RSS_FLAT_MIB = 16.0  # growth from the end of warm-up to the end that still counts as flat (plus 5 %)


def checks(r: dict[str, Any]) -> dict[str, bool | None]:
    """Pass (True), fail (False) or not measured (None) for each promise, for one period's figures."""
    c = r["counters"]
    segs = r["segments"]
    out: dict[str, bool | None] = {
        "clean exit": r["exit_code"] == 0,
        "0 underruns outside outages": c["underruns_outside"] == 0,
        "every command answered": r["commands"]["unanswered"] == 0,
        "jackd reconnects": c["reconnects"] >= len(r["plan"]["kills_s"]) if r["events"] else None,
        "every segment readable": bool(segs)
        and all(s["readable"] and s["finite"] and s["frames"] == s["frames_in_session_json"] for s in segs),
        "replays sample-exact": all(x.get("exact") for x in r["replays"]) if r["replays"] else None,
    }
    for proc in ("main", "engine"):
        fds = r["open_fds"][proc]
        out[f"open files flat ({proc})"] = (
            None if fds["start"] is None else fds["end"] - fds["start"] <= FD_SLACK
        )
        mem = r["memory_mib"][proc]
        out[f"memory flat ({proc})"] = (
            None if mem["start"] is None else mem["end"] - mem["start"] <= RSS_FLAT_MIB + 0.05 * mem["start"]
        )
    out["state file flat"] = state_flat(r["samples"])
    pause = r["recording_pause"]
    out["pause and resume in /status"] = (
        (pause["paused_seen"] and pause["resumed_seen"]) if pause["asked"] else None
    )
    venue = r["venue"]
    out["venue closed and reopened"] = (
        (venue["closed_seen"] > 0 and venue["reopened"]) if venue["closures"] else None
    )
    return out


def state_flat(samples: Sequence[dict[str, Any]]) -> bool | None:
    """The state file ends no larger than :data:`STATE_GROWTH` × its largest size in the run's first half.

    It grows while the operator's overrides accumulate (each voice's gain, biases, pan: a fixed set), and
    must not grow with uptime after that.
    """
    sizes = [(s["t"], s["state_file_bytes"]) for s in samples if s.get("state_file_bytes")]
    if len(sizes) < 4:
        return None
    half = sizes[-1][0] / 2.0
    early = max(size for t, size in sizes if t <= half)
    return bool(sizes[-1][1] <= STATE_GROWTH * early)


def _range(series: dict[str, Any], unit: str = "") -> str:
    if series["start"] is None:
        return "-"
    slope = series["per_hour"]
    per_h = "" if slope is None else f" ({slope:+.1f}/h)"
    return f"{series['start']:.0f}→{series['end']:.0f}{unit}{per_h}"


def summary(results: Sequence[dict[str, Any]]) -> str:
    """A table of the figures, one column per period, and the verdicts below it."""
    rows: list[list[Any]] = []

    def row(name: str, fn: Any) -> None:
        rows.append([name, *[fn(r) for r in results]])

    row("minutes", lambda r: f"{r['minutes']:.1f}")
    row("underruns outside outages", lambda r: r["counters"]["underruns_outside"])
    row(
        "underruns in outages / start-up",
        lambda r: f"{r['counters']['underruns_outages']} / {r['counters']['underruns_startup']}",
    )
    row("xruns outside outages", lambda r: r["counters"]["xruns_outside"])
    row(
        "xruns in outages / start-up",
        lambda r: f"{r['counters']['xruns_outages']} / {r['counters']['xruns_startup']}",
    )
    row("jackd kills / reconnects", lambda r: f"{len(r['plan']['kills_s'])} / {r['counters']['reconnects']}")
    row("RSS main MiB", lambda r: _range(r["memory_mib"]["main"]))
    row("RSS engine MiB", lambda r: _range(r["memory_mib"]["engine"]))
    row("open fds main", lambda r: _range(r["open_fds"]["main"]))
    row("open fds engine", lambda r: _range(r["open_fds"]["engine"]))
    row("state file bytes", lambda r: _range(r["state_file_bytes"]))
    row("/dev/shm entries", lambda r: _range(r["dev_shm_entries"]))
    row(
        "segments readable",
        lambda r: f"{sum(s['readable'] and s['finite'] for s in r['segments'])}/{len(r['segments'])}",
    )
    row(
        "replays exact (* after the pause)",
        lambda r: (
            ", ".join(
                f"#{x['segment']}{'*' if x.get('after_pause') else ''}:{'yes' if x.get('exact') else 'NO'}"
                for x in r["replays"]
            )
            or "-"
        ),
    )
    row(
        "recording paused / resumed",
        lambda r: (
            f"{r['recording_pause']['paused_seen']} / {r['recording_pause']['resumed_seen']}"
            if r["recording_pause"]["asked"]
            else "not asked"
        ),
    )
    row(
        "venue closures (polls closed)",
        lambda r: f"{len(r['venue']['closures'])} ({r['venue']['closed_seen']})",
    )
    row("commands sent (unanswered)", lambda r: f"{r['commands']['sent']} ({r['commands']['unanswered']})")
    row("load average 1 min: mean / max", lambda r: f"{r['load_mean']:.2f} / {r['load_1min']['max']}")
    text = table(["", *[f"period {r['period']}" for r in results]], rows)
    verdicts = [(r["period"], checks(r)) for r in results]
    lines = [text, ""]
    for name in verdicts[0][1] if verdicts else []:
        marks = []
        for period, v in verdicts:
            value = v.get(name)
            marks.append(f"{period}: {'-' if value is None else 'PASS' if value else 'FAIL'}")
        lines.append(f"{name:32s} " + "  ".join(marks))
    return "\n".join(lines)
