"""netjack2 benchmark: a worker node's audio on the master, between two network namespaces (needs root).

For each period and net-driver latency it starts a master jackd (dummy driver, 48 kHz, netmanager) and a
worker jackd (``-d net``) in namespaces joined by a veth pair, sends the master's frame counter to the
worker and back plus the worker's own counter, and reports: the round trip master → worker → master in
periods, the share of bit-exact blocks, gaps in the worker's counter (lost or repeated periods), and how
long the master takes to drop a killed worker's ports and to offer them again after its jackd restarts.
Results: ``benchmarks/results/netjack.json``.
"""

from __future__ import annotations

import argparse
import time
from pathlib import Path
from typing import Any

from benchmarks.common import RESULTS_DIR, table, write_result
from latentd.outputs.netjack import node_ports
from tests.nodes.netns import NetnsNet, unavailable_reason, wait_until
from tests.nodes.probes import MasterProbe, WorkerProbe

SAMPLERATE = 48000
SETTLE_BLOCKS = 40


def measure(period: int, latency: int, seconds: float, faults: bool) -> dict[str, Any]:
    """One master and one worker: round trip, exactness, gaps; with ``faults``, loss and return times."""
    row: dict[str, Any] = {"period": period, "latency": latency}
    with NetnsNet(1) as net:
        master = net.master_server(period=period, listen=net.master.address)
        worker = net.worker_server(0, capture_channels=1, latency=latency)
        blocks = SETTLE_BLOCKS + int(seconds * SAMPLERATE / period)
        probe = MasterProbe(master.name, capacity_blocks=blocks + 1)
        worker_probe = WorkerProbe(worker.name) if wait_until(worker.joined, 10.0) else None

        def ports() -> list[str]:
            return node_ports([p.name for p in probe.client.get_ports()], "n1")

        try:
            if worker_probe is None or not wait_until(lambda: len(ports()) == 2, 10.0):
                raise RuntimeError(f"the worker did not join:\n{worker.output()}")
            probe.connect(node_ports([p.name for p in probe.client.get_ports()], "n1", "to_slave"), ports())
            probe.record()
            wait_until(lambda: probe.recorded_blocks >= blocks, seconds + 10.0)
            report = probe.report(skip_blocks=SETTLE_BLOCKS)
            trip, count = report.round_trip_frames.most_common(1)[0] if report.round_trip_frames else (0, 0)
            row.update(
                round_trip_periods=trip / period,
                round_trip_ms=1000.0 * trip / SAMPLERATE,
                round_trip_share=count / max(report.sounding, 1),
                blocks=report.blocks,
                exact_share=report.exact_blocks / max(report.sounding, 1),
                counter_gaps=report.counter_gaps,
            )
            if faults:
                worker_probe.kill()
                start = time.monotonic()
                worker.kill()
                wait_until(lambda: not ports(), 30.0, 0.01)
                row["ports_gone_after_kill_s"] = time.monotonic() - start
                start = time.monotonic()
                worker.start(timeout_s=10.0)
                wait_until(lambda: len(ports()) == 2, 30.0, 0.01)
                row["ports_back_after_restart_s"] = time.monotonic() - start
        finally:
            if worker_probe is not None:
                worker_probe.stop()
            probe.close()
    return row


def main() -> None:
    """Run the grid and write the results."""
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--periods", type=int, nargs="+", default=[128, 256, 1024])
    parser.add_argument("--latencies", type=int, nargs="+", default=[1, 2, 5])
    parser.add_argument("--seconds", type=float, default=10.0, help="recording per setting")
    parser.add_argument("--results", type=Path, default=RESULTS_DIR)
    args = parser.parse_args()
    reason = unavailable_reason()
    if reason is not None:
        raise SystemExit(f"netjack benchmark: {reason}")
    rows = [
        measure(period, latency, args.seconds, faults=latency == args.latencies[0])
        for period in args.periods
        for latency in args.latencies
    ]
    headers = ["period", "latency", "round_trip_periods", "round_trip_ms", "exact_share", "counter_gaps"]
    print(table(headers, [[row.get(h, "") for h in headers] for row in rows]))
    for row in rows:
        if "ports_gone_after_kill_s" in row:
            print(
                f"period {row['period']}: ports gone {row['ports_gone_after_kill_s']:.2f} s after the "
                f"worker's jackd was killed, back {row['ports_back_after_restart_s']:.2f} s after its restart"
            )
    write_result("netjack", {"seconds": args.seconds, "rows": rows}, args.results)


if __name__ == "__main__":
    main()
