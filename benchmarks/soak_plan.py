"""The soak benchmark's plan: when things happen, the closures as ``[schedule]`` keys, the commands."""

from __future__ import annotations

import datetime as dt
import math
import random
from dataclasses import dataclass
from typing import Any

SAMPLERATE = 48000
CHANNELS = 8
NOMINAL_S = 1800.0  # the event times below are those of a 30-minute run
VOICES = ("ground", "tide", "glints", "shore")
LATENT_DIMS = {"ground": 4, "tide": 4, "glints": 8, "shore": 8}


@dataclass(frozen=True)
class Plan:
    """When things happen in one period's run, in seconds after the daemon is ready."""

    run_s: float
    segment_s: float
    kills_s: tuple[float, ...]
    outage_s: float
    closures_s: tuple[float, ...]  # nominal start of each one-minute closure (rounded up to a minute)
    fill_s: float
    free_s: float
    command_every_s: float = 1.0
    poll_every_s: float = 5.0
    progress_every_s: float = 60.0

    @classmethod
    def scaled(cls, minutes: float, progress_every_s: float = 60.0) -> Plan:
        """The 30-minute plan scaled to ``minutes``."""
        run_s = minutes * 60.0
        k = run_s / NOMINAL_S
        return cls(
            run_s=run_s,
            segment_s=max(1.0, 600.0 * k),
            kills_s=(450.0 * k, 1350.0 * k),
            outage_s=min(5.0, max(1.0, 60.0 * k)),
            closures_s=(240.0 * k, 840.0 * k, 1440.0 * k),
            fill_s=720.0 * k,
            free_s=780.0 * k,
            poll_every_s=min(5.0, max(1.0, run_s / 12.0)),
            progress_every_s=progress_every_s,
        )


# ------------------------------------------------------------------------------------------- the venue
def closures(plan: Plan, ready_wall: float) -> list[tuple[dt.datetime, dt.datetime]]:
    """One-minute closures in whole UTC minutes, each reopening early enough to be seen before the end."""
    out: list[tuple[dt.datetime, dt.datetime]] = []
    end = ready_wall + plan.run_s
    for nominal in plan.closures_s:
        at = math.ceil((ready_wall + nominal) / 60.0) * 60.0
        start = dt.datetime.fromtimestamp(at, dt.UTC)
        stop = start + dt.timedelta(minutes=1)
        if stop.timestamp() + 20.0 > end or (out and start < out[-1][1]) or start.date() != stop.date():
            continue
        out.append((start, stop))
    return out


def schedule_table(spans: list[tuple[dt.datetime, dt.datetime]], state_every_s: float) -> dict[str, Any]:
    """``[schedule]`` keys: open around the clock except ``spans`` (UTC), checked every second."""
    by_date: dict[dt.date, list[tuple[dt.datetime, dt.datetime]]] = {}
    for a, b in spans:
        by_date.setdefault(a.date(), []).append((a, b))
    exceptions = []
    for day, day_spans in by_date.items():
        hours, begin = [], "00:00"
        for a, b in day_spans:
            if a.strftime("%H:%M") != begin:
                hours.append(f"{begin}-{a:%H:%M}")
            begin = f"{b:%H:%M}"
        hours.append(f"{begin}-24:00")
        exceptions.append({"date": day.isoformat(), "hours": hours, "label": "soak closures"})
    table: dict[str, Any] = {"timezone": "UTC", "check_every_s": 1.0, "fade_in_s": 1.0, "fade_out_s": 2.0}
    table["state_every_s"] = state_every_s
    if exceptions:
        table["exceptions"] = exceptions
    return table


def command(rng: random.Random, k: int) -> tuple[str, list[Any]]:
    """The ``k``-th operator command: gains, biases, reseeds, sections and the master, in turn."""
    voice = VOICES[k % len(VOICES)]
    kind = k % 6
    if kind == 0:
        return f"/voice/{voice}/gain", [round(rng.uniform(0.2, 0.6), 3)]
    if kind == 1:
        return f"/voice/{voice}/bias", [rng.randrange(LATENT_DIMS[voice]), round(rng.uniform(-1.0, 1.0), 3)]
    if kind == 2:
        return f"/voice/{voice}/reseed", []
    if kind == 3:
        return "/section/next", []
    if kind == 4:
        return "/master/gain", [round(rng.uniform(0.7, 0.95), 3)]
    return f"/voice/{voice}/pan", [round(rng.uniform(-180.0, 180.0), 1)]
