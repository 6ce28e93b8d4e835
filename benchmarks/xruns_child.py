"""``latentd run`` with the JACK process callback timed: run by ``benchmarks.xruns`` as a subprocess.

The callback's duration is taken around :meth:`JackOutput._process` by a subclass that writes each duration
into a preallocated int64 ring (no allocation that grows, no locks, no I/O in the JACK thread). After the run
the child prints one JSON line ``{"event": "callback_times", ...}`` with percentiles in microseconds.
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path
from typing import Any, ClassVar

import numpy as np

import latentd.runtime.supervisor
from latentd.outputs.jack_out import JackOutput
from latentd.realtime import realtime

RING = 1 << 20  # ~91 min of 256-frame periods at 48 kHz: long runs keep the most recent ones


class TimedJackOutput(JackOutput):
    """A JackOutput whose process callback records its own duration (ns) into a preallocated ring."""

    instances: ClassVar[list[TimedJackOutput]] = []

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.durations_ns = np.zeros(RING, dtype=np.int64)
        self.timed = 0
        TimedJackOutput.instances.append(self)

    @realtime
    def _process(self, frames: int) -> None:
        """Time the real callback. Real-time; never raises (the parent's callback never raises either)."""
        start = time.perf_counter_ns()
        JackOutput._process(self, frames)
        try:
            self.durations_ns[self.timed & (RING - 1)] = time.perf_counter_ns() - start
            self.timed += 1
        except BaseException:
            return

    def summary(self) -> dict[str, Any]:
        """Percentiles of the callback durations, in microseconds."""
        n = min(self.timed, RING)
        d = self.durations_ns[:n] / 1e3
        if n == 0:
            return {"callbacks_timed": 0}
        return {
            "callbacks_timed": int(self.timed),
            "p50_us": float(np.percentile(d, 50)),
            "p99_us": float(np.percentile(d, 99)),
            "p999_us": float(np.percentile(d, 99.9)),
            "max_us": float(d.max()),
        }


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--config", type=Path, required=True)
    parser.add_argument("--duration", type=float, required=True)
    args = parser.parse_args(argv)
    latentd.runtime.supervisor.JackOutput = TimedJackOutput  # type: ignore[misc]
    code = latentd.runtime.supervisor.run_from_file(args.config, args.duration)
    outputs = TimedJackOutput.instances
    stats = outputs[-1].summary() if outputs else {"callbacks_timed": 0}
    print(json.dumps({"event": "callback_times", **stats}), flush=True)
    return code


if __name__ == "__main__":
    sys.exit(main())
