"""OSC-like control load for the xrun benchmark: a separate process sending datagrams at a steady rate.

The messages are ones a remote operator sends (gains, biases, pans, section changes), built with python-osc
and sent over UDP to ``--host``/``--port``. Run by ``benchmarks.xruns``; prints how many it sent.
"""

from __future__ import annotations

import argparse
import itertools
import json
import socket
import time

from pythonosc.osc_message_builder import OscMessageBuilder


def messages(voices: list[str]) -> list[bytes]:
    """One round of operator messages over ``voices`` (each a valid command when the OSC server runs)."""
    out = []

    def msg(address: str, *args: float | int | str) -> None:
        b = OscMessageBuilder(address=address)
        for a in args:
            b.add_arg(a)
        out.append(b.build().dgram)

    for i, v in enumerate(voices):
        msg(f"/voice/{v}/gain", 0.3 + 0.05 * i)
        msg(f"/voice/{v}/bias", 0, 0.1 * i)
        msg(f"/voice/{v}/pan", float(30 * i))
    msg("/master/gain", 0.9)
    msg("/status")
    return out


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, required=True)
    parser.add_argument("--rate", type=float, default=50.0, help="datagrams per second")
    parser.add_argument("--duration", type=float, required=True, help="seconds")
    parser.add_argument("--voices", nargs="+", default=["ground", "tide", "glints", "shore"])
    args = parser.parse_args(argv)
    sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    period = 1.0 / args.rate
    sent = refused = 0
    start = time.monotonic()
    for k, data in enumerate(itertools.cycle(messages(args.voices))):
        due = start + k * period
        if due - start > args.duration:
            break
        time.sleep(max(0.0, due - time.monotonic()))
        try:
            sock.sendto(data, (args.host, args.port))
            sent += 1
        except ConnectionRefusedError:  # no server on the port (ICMP port unreachable): keep sending
            refused += 1
    print(json.dumps({"event": "osc_load", "sent": sent, "refused": refused}), flush=True)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
